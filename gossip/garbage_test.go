package gossip

import (
	"io"
	"net"
	"reflect"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/hashicorp/memberlist"

	"meridian.dev/meridian/internal/testbin"
)

// rogue is a plain memberlist member that speaks Meridian's delegate
// protocol version but sends garbage: in its node meta, in its push/pull
// state and in its broadcasts.
type rogue struct {
	mu         sync.Mutex
	broadcasts [][]byte
}

func (r *rogue) NodeMeta(int) []byte    { return []byte{0xff, 0x00, 0x13} }
func (r *rogue) NotifyMsg([]byte)       {}
func (r *rogue) LocalState(bool) []byte { return []byte("\x01\x02this is not a snapshot") }
func (r *rogue) MergeRemoteState([]byte, bool) {
}
func (r *rogue) GetBroadcasts(overhead, limit int) [][]byte {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := r.broadcasts
	r.broadcasts = nil
	return out
}

// garbage returns payloads that must each be rejected, by reason.
func garbage() map[string][]byte {
	valid := encodeState(stateEntry{origin: "rogue", version: 1, state: NodeState{Cluster: "c", Models: digests("c", 2)}})
	nan := encodeState(stateEntry{origin: "rogue", version: 2, state: NodeState{Models: []ModelDigest{{Name: "m"}}}})
	// Overwrite the RequestsPerSecond float of the only digest with NaN:
	// it sits before P95 (8), queue (1) and healthy (1) at the end.
	copy(nan[len(nan)-2-16:], []byte{0, 0, 0, 0, 0, 0, 0xf8, 0x7f})
	hugeField := []byte{wireVersion, kindState, 0x90, 0x4e} // a 10000-byte origin name
	return map[string][]byte{
		"random":          []byte("\x9a\x13garbage garbage garbage"),
		"future version":  append([]byte{wireVersion + 1}, valid[1:]...),
		"unknown kind":    {wireVersion, 99, 1, 2, 3},
		"truncated state": valid[:len(valid)-5],
		"trailing bytes":  append(append([]byte(nil), valid...), 0, 0),
		"NaN load":        nan,
		"huge field":      hugeField,
	}
}

// TestRejectsGarbage joins a rogue memberlist member to a node and feeds
// it garbage over every path — node meta, push/pull state, gossip
// broadcasts, direct TCP and UDP messages — and checks that each payload
// is counted as rejected and that the node keeps working.
func TestRejectsGarbage(t *testing.T) {
	t.Parallel()
	a := mustStart(t, Config{NodeName: "victim"})

	r := &rogue{}
	mc := memberlist.DefaultLocalConfig()
	mc.Name = "rogue"
	mc.BindAddr, mc.BindPort = "127.0.0.1", 0
	mc.Delegate = r
	mc.DelegateProtocolVersion, mc.DelegateProtocolMin, mc.DelegateProtocolMax = wireVersion, wireVersion, wireVersion
	mc.LogOutput = io.Discard
	ml, err := memberlist.Create(mc)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = ml.Shutdown() })

	rejected := func() float64 {
		total := 0.0
		for _, reason := range rejectReasons {
			total += testbin.Metric(t, a.reg, "meridian_gossip_rejected_total", map[string]string{"reason": reason})
		}
		return total
	}

	// Join: the rogue's meta and its push/pull state are both garbage.
	if _, err := ml.Join([]string{a.Addr()}); err != nil {
		t.Fatal(err)
	}
	testbin.Eventually(t, "the rogue's meta and push/pull state are rejected", 5*time.Second, func() bool {
		return rejected() >= 2
	})
	if p, ok := a.Peer("rogue"); !ok || p.Status != StatusAlive || p.Meta != (Meta{}) || p.HasState {
		t.Errorf("rogue as seen by victim = %+v, want alive without meta or state", p)
	}

	host, port, _ := net.SplitHostPort(a.Addr())
	portNum, _ := strconv.Atoi(port)
	to := &memberlist.Node{Name: a.Name(), Addr: net.ParseIP(host), Port: uint16(portNum)}
	payloads := garbage()
	for name, b := range payloads {
		before := rejected()
		if err := ml.SendReliable(to, b); err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		testbin.Eventually(t, name+" over TCP is rejected", 5*time.Second, func() bool { return rejected() == before+1 })
	}
	before := rejected()
	for _, b := range payloads {
		if err := ml.SendBestEffort(to, b); err != nil {
			t.Fatal(err)
		}
	}
	r.mu.Lock()
	r.broadcasts = [][]byte{payloads["random"], payloads["NaN load"]}
	r.mu.Unlock()
	testbin.Eventually(t, "UDP and broadcast garbage is rejected", 5*time.Second, func() bool {
		return rejected() >= before+float64(len(payloads))+2
	})
	for _, reason := range []string{rejectMalformed, rejectVersion, rejectTooLarge, rejectInvalid} {
		if testbin.Metric(t, a.reg, "meridian_gossip_rejected_total", map[string]string{"reason": reason}) == 0 {
			t.Errorf("no payload was rejected as %s", reason)
		}
	}

	// The victim is fine: a real node joins and they share state.
	b := mustStart(t, Config{NodeName: "healthy", Join: []string{a.Addr()}})
	if err := b.SetLocalState(NodeState{Models: digests("healthy", 3)}); err != nil {
		t.Fatal(err)
	}
	want := b.LocalState()
	testbin.Eventually(t, "victim gets healthy's state", Local().PushPullInterval+5*time.Second, func() bool {
		p, _ := a.Peer("healthy")
		return reflect.DeepEqual(p.State, want)
	})
	if p, _ := a.Peer("rogue"); p.HasState {
		t.Errorf("victim holds a state for the rogue: %+v", p.State)
	}
}
