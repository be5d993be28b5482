package gossip

import (
	"errors"
	"fmt"
	"reflect"
	"testing"
	"time"

	"meridian.dev/meridian/internal/testbin"
)

// TestClusterSharesState forms a 5-node pool with the Local preset and
// checks that every node sees every other node's NodeState after
// SetLocalState, by gossip or, at the latest, the next push/pull.
func TestClusterSharesState(t *testing.T) {
	t.Parallel()
	timing := Local()
	nodes := startCluster(t, "share", 5, Config{Timing: timing})

	want := make(map[string]NodeState)
	set := time.Now()
	for i, n := range nodes {
		if err := n.SetLocalState(NodeState{Models: digests(n.Name(), i+1)}); err != nil {
			t.Fatal(err)
		}
		want[n.Name()] = n.LocalState()
		if got := want[n.Name()]; got.Cluster != n.Name() || got.Region != "region-"+n.Name() || got.Updated.IsZero() {
			t.Fatalf("SetLocalState did not fill Cluster, Region and Updated: %+v", got)
		}
	}
	testbin.Eventually(t, "every node has every other node's state", timing.PushPullInterval+5*time.Second, func() bool {
		return statesConverged(nodes, want)
	})
	t.Logf("5 nodes had each other's states %s after the first SetLocalState", time.Since(set).Round(time.Millisecond))

	p, _ := nodes[0].Peer(nodes[3].Name())
	if p.Meta != (Meta{Cluster: "share-3", Region: "region-share-3", Endpoint: "https://share-3.example.com"}) {
		t.Errorf("meta of share-3 as seen by share-0 = %+v", p.Meta)
	}
	if p.Status != StatusAlive || p.Addr != nodes[3].Addr() {
		t.Errorf("peer share-3 = %+v, want alive at %s", p, nodes[3].Addr())
	}

	for _, n := range nodes {
		if got := testbin.Metric(t, n.reg, "meridian_gossip_members", map[string]string{"state": "alive"}); got != 5 {
			t.Errorf("%s: members{alive} = %v, want 5", n.Name(), got)
		}
		if got := testbin.Metric(t, n.reg, "meridian_gossip_events_total", map[string]string{"event": "join"}); got != 4 {
			t.Errorf("%s: events{join} = %v, want 4", n.Name(), got)
		}
		if got := testbin.Metric(t, n.reg, "meridian_gossip_events_total", map[string]string{"event": "update"}); got < 4 {
			t.Errorf("%s: events{update} = %v, want ≥ 4", n.Name(), got)
		}
	}
	testbin.Eventually(t, "observers saw the latest states", 5*time.Second, func() bool {
		for _, n := range nodes {
			n.obs.mu.Lock()
			seen := make(map[string]NodeState)
			for _, o := range n.obs.updated {
				seen[o.peer.Name] = o.peer.State
			}
			n.obs.mu.Unlock()
			for name, s := range want {
				if name != n.Name() && !reflect.DeepEqual(seen[name], s) {
					return false
				}
			}
		}
		return true
	})
}

// TestStatePaths checks each way a NodeState travels on its own, with
// push/pull pushed out to ten minutes so that nothing arrives by
// anti-entropy: a small state by gossip broadcast, a large one by direct
// TCP send, and everything a member already knows by the push/pull of a
// join.
func TestStatePaths(t *testing.T) {
	t.Parallel()
	timing := Local()
	timing.PushPullInterval = 10 * time.Minute
	nodes := startCluster(t, "paths", 3, Config{Timing: timing})

	small := NodeState{Models: digests("small", 2)}
	if err := nodes[0].SetLocalState(small); err != nil {
		t.Fatal(err)
	}
	want := map[string]NodeState{"paths-0": nodes[0].LocalState()}
	testbin.Eventually(t, "the small state arrives by broadcast", 5*time.Second, func() bool { return statesConverged(nodes, want) })
	// Peers relay states that are new to them, back to the origin too; the
	// origin must take its own state for what it is and not republish.
	version := func() uint64 {
		nodes[0].mu.Lock()
		defer nodes[0].mu.Unlock()
		return nodes[0].local.version
	}
	v := version()
	time.Sleep(10 * timing.GossipInterval)
	if got := version(); got != v {
		t.Errorf("paths-0 republished its state %d times with nothing changed", got-v)
	}

	big := NodeState{Models: digests("a-cluster-with-a-long-name", 60)}
	if err := nodes[1].SetLocalState(big); err != nil {
		t.Fatal(err)
	}
	if msg := encodeState(stateEntry{origin: "paths-1", state: nodes[1].LocalState()}); len(msg) <= maxBroadcast {
		t.Fatalf("test state is %d bytes, want more than %d", len(msg), maxBroadcast)
	}
	want["paths-1"] = nodes[1].LocalState()
	testbin.Eventually(t, "the large state arrives by direct send", 5*time.Second, func() bool { return statesConverged(nodes, want) })

	// A newcomer joining one member gets all states in the join's push/pull.
	late := mustStart(t, Config{NodeName: "paths-late", Timing: timing, Join: []string{nodes[2].Addr()}})
	for name, s := range want {
		if p, _ := late.Peer(name); !reflect.DeepEqual(p.State, s) {
			t.Errorf("newcomer's state of %s = %+v, want %+v", name, p.State, s)
		}
	}
}

// statesConverged says whether every node holds want's state for every
// other node in want.
func statesConverged(nodes []*testNode, want map[string]NodeState) bool {
	for _, n := range nodes {
		for name, s := range want {
			if name == n.Name() {
				continue
			}
			if p, ok := n.Peer(name); !ok || !p.HasState || !reflect.DeepEqual(p.State, s) {
				return false
			}
		}
	}
	return true
}

// TestFailureDetectedWithinBound kills one node of five without Leave and
// checks that the other four mark it dead within the Local preset's
// DeadWithin bound, with a 3× margin for a loaded test machine, and that
// their Observers get PeerLeft.
//
// The pool uses Local timing with LAN's RetransmitMult of 4 instead of
// Local's 2, which leaves nothing else of DeadWithin changed. With 2, each
// suspect and dead message reaches only about half of a 5-node pool
// directly, and in about one run in thirty here the first member to suspect
// the victim heard none of the others' confirmations or verdicts and sat
// out its own suspicion timer to MaxDeadWithin (about 19s after the kill).
func TestFailureDetectedWithinBound(t *testing.T) {
	t.Parallel()
	const size = 5
	timing := Local()
	timing.RetransmitMult = LAN().RetransmitMult
	nodes := startCluster(t, "fail", size, Config{Timing: timing})
	bound := timing.DeadWithin(size)
	limit := 3 * bound

	victim := nodes[size-1]
	killed := time.Now()
	if err := victim.Shutdown(); err != nil {
		t.Fatal(err)
	}
	survivors := nodes[:size-1]
	testbin.Eventually(t, fmt.Sprintf("survivors mark %s dead (bound %s, limit %s)", victim.Name(), bound, limit), limit, func() bool {
		for _, n := range survivors {
			if _, _, ok := n.obs.leftAt(victim.Name()); !ok {
				return false
			}
		}
		return true
	})
	var slowest time.Duration
	suspects := 0.0
	for _, n := range survivors {
		p, at, _ := n.obs.leftAt(victim.Name())
		took := at.Sub(killed)
		slowest = max(slowest, took)
		t.Logf("%s marked %s %s after %s (DeadWithin(%d) = %s)", n.Name(), p.Name, p.Status, took.Round(time.Millisecond), size, bound)
		if p.Status != StatusDead {
			t.Errorf("%s: PeerLeft status = %s, want dead", n.Name(), p.Status)
		}
		if got, _ := n.Peer(victim.Name()); got.Status != StatusDead {
			t.Errorf("%s: Peers shows %s as %s, want dead", n.Name(), victim.Name(), got.Status)
		}
		if got := testbin.Metric(t, n.reg, "meridian_gossip_members", map[string]string{"state": "dead"}); got != 1 {
			t.Errorf("%s: members{dead} = %v, want 1", n.Name(), got)
		}
		if got := testbin.Metric(t, n.reg, "meridian_gossip_events_total", map[string]string{"event": "leave"}); got != 1 {
			t.Errorf("%s: events{leave} = %v, want 1", n.Name(), got)
		}
		suspects += testbin.Metric(t, n.reg, "meridian_gossip_events_total", map[string]string{"event": "suspect"})
	}
	t.Logf("slowest detection %s; DeadWithin(%d) = %s, MaxDeadWithin = %s", slowest.Round(time.Millisecond), size, bound, timing.MaxDeadWithin(size))
	// Whoever probed the victim first suspected it before it was declared
	// dead; this also pins the memberlist log line logBridge watches.
	if suspects < 1 {
		t.Errorf("no survivor counted a suspect event")
	}
}

// TestLeaveIsGraceful checks that a node that leaves is reported left,
// not dead, and without waiting for the suspicion timeout.
func TestLeaveIsGraceful(t *testing.T) {
	t.Parallel()
	timing := Local()
	nodes := startCluster(t, "leave", 3, Config{Timing: timing})
	if err := nodes[2].Leave(5 * time.Second); err != nil {
		t.Fatal(err)
	}
	// Within DeadWithin, generous as the leave only needs to spread; the
	// status tells a leave from a failure.
	testbin.Eventually(t, "the others see leave-2 left", timing.DeadWithin(3), func() bool {
		for _, n := range nodes[:2] {
			if p, _, ok := n.obs.leftAt("leave-2"); !ok || p.Status != StatusLeft {
				return false
			}
		}
		return true
	})
	if err := nodes[2].Shutdown(); err != nil {
		t.Fatal(err)
	}
	if err := nodes[2].Leave(time.Second); !errors.Is(err, ErrShutdown) {
		t.Errorf("Leave after Shutdown = %v, want ErrShutdown", err)
	}
	if err := nodes[2].SetLocalState(NodeState{}); !errors.Is(err, ErrShutdown) {
		t.Errorf("SetLocalState after Shutdown = %v, want ErrShutdown", err)
	}
}
