package gossip

import (
	"bytes"
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"encoding/binary"
	"net"
	"reflect"
	"strconv"
	"testing"
	"time"

	"github.com/hashicorp/memberlist"

	"meridian.dev/meridian/internal/testbin"
)

// Memberlist's message types for suspect and dead (net.go; part of its
// protocol, so fixed).
const (
	mlSuspectMsg byte = 3
	mlDeadMsg    byte = 5
)

// forgedVerdict returns memberlist's suspect or dead message about node as
// an intruder would craft it: the message type, then the msgpack map
// memberlist decodes into its suspect and dead structs, with an
// incarnation high enough to override whatever the members know.
func forgedVerdict(msgType byte, node string) []byte {
	b := []byte{msgType, 0x83} // a map of three entries
	b = msgpackString(b, "Incarnation")
	b = binary.BigEndian.AppendUint32(append(b, 0xce), 1<<30) // uint32
	b = msgpackString(b, "Node")
	b = msgpackString(b, node)
	b = msgpackString(b, "From")
	return msgpackString(b, "intruder")
}

func msgpackString(b []byte, s string) []byte {
	if len(s) < 32 {
		return append(append(b, 0xa0|byte(len(s))), s...)
	}
	return append(append(b, 0xd9, byte(len(s))), s...)
}

// seal encrypts a packet as memberlist does without a label: encryption
// version 1, a 12-byte nonce, then AES-GCM.
func seal(t *testing.T, key, msg []byte) []byte {
	t.Helper()
	block, err := aes.NewCipher(key)
	if err != nil {
		t.Fatal(err)
	}
	gcm, err := cipher.NewGCM(block)
	if err != nil {
		t.Fatal(err)
	}
	out := make([]byte, 1+gcm.NonceSize())
	out[0] = 1
	if _, err := rand.Read(out[1:]); err != nil {
		t.Fatal(err)
	}
	return gcm.Seal(out, out[1:], msg, nil)
}

// mlNode addresses n for a raw memberlist instance.
func mlNode(t *testing.T, n *testNode) *memberlist.Node {
	t.Helper()
	host, port, err := net.SplitHostPort(n.Addr())
	if err != nil {
		t.Fatal(err)
	}
	p, _ := strconv.Atoi(port)
	return &memberlist.Node{Name: n.Name(), Addr: net.ParseIP(host), Port: uint16(p)}
}

func undecryptable(t *testing.T, n *testNode, transport string) float64 {
	return testbin.Metric(t, n.reg, "meridian_gossip_undecryptable_total", map[string]string{"transport": transport})
}

// TestIntruderCannotDeclareMembersDead sends every member of an encrypted
// pool, over raw UDP, memberlist's suspect and dead messages about every
// member — in plaintext, sealed with a key the pool does not hold, and
// as garbage — and tries to join with a wrong key and with none. Every
// packet and stream is dropped and counted, and every member stays alive.
// The same dead message sealed with the pool's key is then obeyed, which
// shows that the forgeries were well formed: only the key stopped them.
func TestIntruderCannotDeclareMembersDead(t *testing.T) {
	t.Parallel()
	timing := Local()
	key, wrong := newKey(t), newKey(t)
	nodes := startCluster(t, "victim", 3, Config{Timing: timing, KeyringFile: writeKeyring(t, keyringPath(t, "pool"), key)})

	conn, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = conn.Close() }()
	send := func(to *testNode, pkt []byte) {
		t.Helper()
		addr, err := net.ResolveUDPAddr("udp", to.Addr())
		if err != nil {
			t.Fatal(err)
		}
		if _, err := conn.WriteTo(pkt, addr); err != nil {
			t.Fatal(err)
		}
	}

	var forged [][]byte
	for _, target := range nodes {
		for _, typ := range []byte{mlSuspectMsg, mlDeadMsg} {
			msg := forgedVerdict(typ, target.Name())
			forged = append(forged, msg, seal(t, wrong, msg))
		}
	}
	garbage := bytes.Repeat([]byte("\x13garbage"), 20)
	forged = append(forged, garbage, seal(t, wrong, garbage), []byte{1})
	for _, n := range nodes {
		before := undecryptable(t, n, transportPacket)
		for _, pkt := range forged {
			send(n, pkt)
		}
		// Memberlist handles a node's packets one at a time, in order:
		// once all are counted, all were dropped before being read.
		testbin.Eventually(t, n.Name()+" drops every forged packet", 5*time.Second, func() bool {
			return undecryptable(t, n, transportPacket) == before+float64(len(forged))
		})
	}

	// Whole intruder nodes, with a wrong key and with none, cannot join.
	if _, err := startNode(t, Config{NodeName: "intruder-wrong", KeyringFile: writeKeyring(t, keyringPath(t, "wrong"), wrong), Join: []string{nodes[1].Addr()}}); err == nil {
		t.Fatal("an intruder with a wrong key joined")
	}
	if _, err := startNode(t, Config{NodeName: "intruder-plain", Join: []string{nodes[2].Addr()}}); err == nil {
		t.Fatal("an intruder without a key joined")
	}
	for _, n := range nodes[1:] {
		if undecryptable(t, n, transportStream) < 1 {
			t.Errorf("%s did not count the intruder's join stream as undecryptable", n.Name())
		}
	}

	for _, n := range nodes {
		if alive := countStatus(n.Peers(), StatusAlive); alive != 2 || n.obs.leftCount() != 0 {
			t.Errorf("%s after the forgeries: %d alive peers, %d departures (%+v); want 2 and 0", n.Name(), alive, n.obs.leftCount(), n.Peers())
		}
	}

	// Control: the pool key makes the same forgery work.
	send(nodes[1], seal(t, key, forgedVerdict(mlDeadMsg, nodes[0].Name())))
	testbin.Eventually(t, "victim-1 obeys a dead message sealed with the pool key", 5*time.Second, func() bool {
		p, _, ok := nodes[1].obs.leftAt(nodes[0].Name())
		return ok && p.Status == StatusDead
	})
	// victim-0 hears of it and refutes.
	testbin.Eventually(t, "victim-0 refutes", timing.PushPullInterval+5*time.Second, func() bool {
		p, _ := nodes[1].Peer(nodes[0].Name())
		return p.Status == StatusAlive
	})
}

// keyOpMessage is a key operation in the layout wire version 2 nodes used
// to accept from any member: id, sender, operation (1 install, 2 use,
// 3 remove), key.
func keyOpMessage(from string, op byte, key []byte) []byte {
	var e encoder
	e.header(kindKeyOp)
	e.uvarint(42)
	e.string(from)
	e.byte(op)
	e.bytes(key)
	return e.b
}

// TestKeyHoldersCannotChangeKeys gives a balancer-like observer the pool
// key, as a balancer needs it to read the agents' health, and has it ask
// every agent, over TCP and UDP, to install a key of its own, make it
// primary and remove the pool's key. Every agent refuses and counts it;
// the keys stay as the files say and the pool keeps working.
func TestKeyHoldersCannotChangeKeys(t *testing.T) {
	t.Parallel()
	timing := Local()
	key := newKey(t)
	path := writeKeyring(t, keyringPath(t, "pool"), key)
	agents := startCluster(t, "agent", 2, Config{Timing: timing, KeyringFile: path})
	for _, a := range agents {
		if err := a.SetLocalState(NodeState{Models: digests(a.Name(), 2)}); err != nil {
			t.Fatal(err)
		}
	}
	glb := mustStart(t, Config{NodeName: "glb", Timing: timing, Meta: Meta{Region: "edge"}, KeyringFile: path, Join: []string{agents[0].Addr()}})
	testbin.Eventually(t, "the observer reads every agent's state", timing.PushPullInterval+5*time.Second, func() bool {
		for _, a := range agents {
			if p, _ := glb.Peer(a.Name()); !reflect.DeepEqual(p.State, a.LocalState()) {
				return false
			}
		}
		return true
	})

	evil := newKey(t)
	ops := [][]byte{keyOpMessage("glb", 1, evil), keyOpMessage("glb", 2, evil), keyOpMessage("glb", 3, key)}
	ml := glb.ml.Load()
	for _, a := range agents {
		to := mlNode(t, a)
		for _, op := range ops {
			if err := ml.SendReliable(to, op); err != nil {
				t.Fatal(err)
			}
			if err := ml.SendBestEffort(to, op); err != nil {
				t.Fatal(err)
			}
		}
	}
	for _, a := range agents {
		testbin.Eventually(t, a.Name()+" refuses every key operation", 5*time.Second, func() bool {
			return testbin.Metric(t, a.reg, "meridian_gossip_rejected_total", map[string]string{"reason": rejectForbidden}) == float64(2*len(ops))
		})
		if got := a.Keys(); !reflect.DeepEqual(got, [][]byte{key}) {
			t.Errorf("%s holds %d keys after the observer's requests, want only the pool key", a.Name(), len(got))
		}
	}

	// The pool is whole: a new state still reaches the observer.
	if err := agents[1].SetLocalState(NodeState{Models: digests("after", 3)}); err != nil {
		t.Fatal(err)
	}
	want := agents[1].LocalState()
	testbin.Eventually(t, "state still flows", timing.PushPullInterval+5*time.Second, func() bool {
		p, _ := glb.Peer(agents[1].Name())
		return p.Status == StatusAlive && reflect.DeepEqual(p.State, want)
	})
}
