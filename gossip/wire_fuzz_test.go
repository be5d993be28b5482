package gossip

import (
	"bytes"
	"net"
	"reflect"
	"testing"

	"github.com/hashicorp/memberlist"
)

// The seed corpus of both targets is in testdata/fuzz, so `go test` runs
// every seed; `go test -fuzz=FuzzDecode ./gossip` explores from there.

// FuzzDecode feeds arbitrary bytes to every decoder of wire.go: none may
// panic, and whatever decodes must survive re-encoding unchanged.
func FuzzDecode(f *testing.F) {
	addSeeds(f)
	f.Fuzz(func(t *testing.T, b []byte) {
		if e, err := decodeStateMessage(b); err == nil {
			again, err := decodeStateMessage(encodeState(e))
			if err != nil || !reflect.DeepEqual(again, e) {
				t.Fatalf("re-encoded state differs: %v", err)
			}
		}
		if s, err := decodeSnapshot(b); err == nil {
			again, err := decodeSnapshot(encodeSnapshot(s))
			if err != nil || !reflect.DeepEqual(again, s) {
				t.Fatalf("re-encoded snapshot differs: %v", err)
			}
		}
		if m, err := decodeMeta(b); err == nil && len(b) > 0 {
			if again, err := decodeMeta(encodeMeta(m)); err != nil || again != m {
				t.Fatalf("re-encoded meta differs: %v", err)
			}
		}
	})
}

// FuzzReceive feeds arbitrary bytes to a running node through every way
// a member's bytes reach this package — a broadcast or direct message, a
// push/pull state and node metadata — as a member holding the pool key
// could send them. Nothing may panic, every state the node then holds must
// be valid, the peer table stays bounded, and no input changes the keys.
func FuzzReceive(f *testing.F) {
	addSeeds(f)
	key := make([]byte, 32)
	path := f.TempDir() + "/keys"
	if err := WriteKeyring(path, key); err != nil {
		f.Fatal(err)
	}
	n, err := Start(f.Context(), Config{NodeName: "fuzz", BindAddr: "127.0.0.1", KeyringFile: path, KeyringCheckInterval: -1})
	if err != nil {
		f.Fatal(err)
	}
	f.Cleanup(func() { _ = n.Shutdown() })
	d := &delegate{n: n}
	f.Fuzz(func(t *testing.T, b []byte) {
		d.NotifyMsg(bytes.Clone(b))
		d.MergeRemoteState(bytes.Clone(b), false)
		d.NotifyUpdate(&memberlist.Node{Name: "fuzz-peer", Addr: net.IPv4(127, 0, 0, 9), Port: 1, Meta: bytes.Clone(b)})
		for _, p := range n.Peers() {
			if err := p.State.validate(); err != nil {
				t.Fatalf("the node holds an invalid state for %s: %v", p.Name, err)
			}
		}
		n.mu.Lock()
		peers := len(n.peers)
		n.mu.Unlock()
		if peers > maxPeers {
			t.Fatalf("peer table holds %d entries, the most is %d", peers, maxPeers)
		}
		if got := n.Keys(); len(got) != 1 || !bytes.Equal(got[0], key) {
			t.Fatalf("an input changed the keyring: %d keys", len(got))
		}
	})
}

// addSeeds adds the in-code seeds: one valid message of each kind and the
// garbage TestRejectsGarbage uses.
func addSeeds(f *testing.F) {
	f.Add(encodeState(stateEntry{origin: "a", version: 3, state: NodeState{Cluster: "c", Models: digests("c", 2)}}))
	f.Add(encodeSnapshot([]stateEntry{{origin: "a", version: 1}, {origin: "b", version: 2, state: NodeState{Models: digests("b", 1)}}}))
	f.Add(encodeMeta(nodeMeta{Meta: Meta{Cluster: "c", Region: "r", Endpoint: "https://c.example.com"}, leaving: true}))
	f.Add(keyOpMessage("a", 1, make([]byte, 32)))
	for _, g := range garbage() {
		f.Add(g)
	}
}
