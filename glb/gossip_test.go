package glb

import (
	"errors"
	"fmt"
	"maps"
	"net/netip"
	"slices"
	"testing"
	"time"

	"meridian.dev/meridian/glb/steer"
	"meridian.dev/meridian/gossip"
	"meridian.dev/meridian/internal/testbin"
)

// An agent that dies (no Leave) takes its cluster out of the answers as
// soon as gossip declares it dead — while its HTTP endpoint still passes
// every probe — and when it returns the cluster is answered again only
// after the hold-down.
func TestGossipDeadAgentTakesItsClusterOutUntilHoldDownAfterReturn(t *testing.T) {
	t.Parallel()
	r := newGossipRig(t)
	eu := r.agents["eu-west"]
	addr := eu.Addr()

	// The pool is three agents and the balancer.
	bound := gossipTiming().DeadWithin(4)
	killed := time.Now()
	if err := eu.Shutdown(); err != nil {
		t.Fatal(err)
	}
	testbin.Eventually(t, fmt.Sprintf("eu-west is out of the answers (DeadWithin %s)", bound), 3*bound, func() bool {
		return r.first("sentiment") == "us-east" && r.first("textdir") == "us-east"
	})
	t.Logf("eu-west out %s after its agent died (DeadWithin(4) = %s)", time.Since(killed).Round(time.Millisecond), bound)
	if !r.b.health.Healthy(probeKey("eu-west", "sentiment", r.endpoints["eu-west"].URL), time.Now()) {
		t.Fatal("the probes failed eu-west too: this test no longer shows gossip acting alone")
	}
	for _, c := range []struct {
		name   string
		labels map[string]string
		want   float64
	}{
		{"meridian_glb_gossip_peers", map[string]string{"state": "dead"}, 1},
		{"meridian_glb_gossip_peers", map[string]string{"state": "alive"}, 2},
		{"meridian_glb_gossip_marked_down_total", map[string]string{"reason": "dead"}, 1},
		{"meridian_glb_target_up", map[string]string{"cluster": "eu-west", "model": "sentiment", "source": "gossip"}, 0},
		{"meridian_glb_target_up", map[string]string{"cluster": "eu-west", "model": "sentiment", "source": "probe"}, 1},
		{"meridian_glb_target_up", map[string]string{"cluster": "us-east", "model": "sentiment", "source": "gossip"}, 1},
	} {
		if got := testbin.Metric(t, r.reg, c.name, c.labels); got != c.want {
			t.Errorf("%s%v = %v, want %v", c.name, c.labels, got, c.want)
		}
	}

	// The agent restarts where it was (memberlist takes a dead member back
	// only at its old address) and joins through the balancer.
	startAgent(t, "eu-west", addr, r.keys, []string{r.node.Addr()}, rigModels...)
	var since time.Time
	testbin.Eventually(t, "the balancer sees eu-west alive again", 30*time.Second, func() bool {
		p, ok := r.node.Peer("eu-west")
		since = p.Since
		return ok && p.Status == gossip.StatusAlive
	})
	testbin.Eventually(t, "eu-west answers again", testHoldDown+20*time.Second, func() bool { return r.first("sentiment") == "eu-west" })
	took := time.Since(since)
	if took < testHoldDown {
		t.Errorf("eu-west answered %s after its agent came back, before the %s hold-down", took, testHoldDown)
	}
	t.Logf("eu-west answered again %s after its agent came back (hold-down %s)", took.Round(time.Millisecond), testHoldDown)
}

// A digest that says a model is unhealthy, or has no ready replica, takes
// that model (and only that model) in that cluster out of the answers,
// though the probes pass; a ready digest brings it back after the
// hold-down.
func TestGossipUnreadyDigestSkipsThatModel(t *testing.T) {
	t.Parallel()
	r := newGossipRig(t)
	eu := r.agents["eu-west"]
	sentiment := func(ready int32, healthy bool) gossip.ModelDigest {
		return gossip.ModelDigest{Namespace: "default", Name: "sentiment", Model: "sentiment", ReadyReplicas: ready, Healthy: healthy}
	}
	textdir := gossip.ModelDigest{Namespace: "default", Name: "textdir", Model: "textdir", ReadyReplicas: 1, Healthy: true}

	// has waits until the balancer's node holds the digest (gossip's
	// dissemination, tested in package gossip); the verdict must follow at
	// once.
	has := func(d gossip.ModelDigest) {
		t.Helper()
		testbin.Eventually(t, fmt.Sprintf("the balancer has the digest %+v", d), 30*time.Second, func() bool {
			p, _ := r.node.Peer("eu-west")
			return len(p.State.Models) == 2 && p.State.Models[0] == d
		})
	}

	eu.publish(t, sentiment(2, false), textdir)
	has(sentiment(2, false))
	testbin.Eventually(t, "unhealthy sentiment leaves eu-west", 5*time.Second, func() bool { return r.first("sentiment") == "us-east" })
	if got := r.first("textdir"); got != "eu-west" {
		t.Errorf("textdir answered %q while only sentiment was unhealthy in eu-west", got)
	}
	if got := testbin.Metric(t, r.reg, "meridian_glb_gossip_marked_down_total", map[string]string{"reason": "unready"}); got != 1 {
		t.Errorf("marked_down_total{unready} = %v, want 1", got)
	}

	// Healthy but without a ready replica is not ready either.
	eu.publish(t, sentiment(0, true), textdir)
	has(sentiment(0, true))
	for deadline := time.Now().Add(testHoldDown + time.Second); time.Now().Before(deadline); time.Sleep(50 * time.Millisecond) {
		if got := r.first("sentiment"); got != "us-east" {
			t.Fatalf("sentiment answered %q with no ready replica in eu-west", got)
		}
	}

	ready := time.Now()
	eu.publish(t, sentiment(1, true), textdir)
	has(sentiment(1, true))
	testbin.Eventually(t, "ready sentiment answers from eu-west again", testHoldDown+5*time.Second, func() bool { return r.first("sentiment") == "eu-west" })
	if took := time.Since(ready); took < testHoldDown {
		t.Errorf("sentiment came back %s after its digest said ready, before the %s hold-down", took, testHoldDown)
	}
}

// A digest of a model scaled to zero — healthy, no ready replica, its
// activator answering — keeps that model in the answers (after the warm
// clusters, as the hub's snapshot marks it cold); one with no replica that
// is not at zero on purpose takes it out at once. The flag crosses a real
// pool on the wire.
func TestGossipScaledToZeroDigestKeepsTheModel(t *testing.T) {
	t.Parallel()
	r := newGossipRig(t)
	eu := r.agents["eu-west"]
	// The hub's snapshot says the same: eu-west's sentiment is cold. (A
	// new snapshot, as the Source publishes: the current one is being read.)
	snap := *r.b.src.Current()
	snap.Clusters = append([]Cluster(nil), snap.Clusters...)
	for i, c := range snap.Clusters {
		snap.Clusters[i].Models = maps.Clone(c.Models)
		if c.Name == "eu-west" {
			snap.Clusters[i].Models["sentiment"] = ModelTarget{Endpoint: c.Models["sentiment"].Endpoint, Cold: true}
		}
	}
	r.b.src.set(&snap)
	textdir := gossip.ModelDigest{Namespace: "default", Name: "textdir", Model: "textdir", ReadyReplicas: 1, Healthy: true}
	has := func(d gossip.ModelDigest) {
		t.Helper()
		testbin.Eventually(t, fmt.Sprintf("the balancer has the digest %+v", d), 30*time.Second, func() bool {
			p, _ := r.node.Peer("eu-west")
			return len(p.State.Models) == 2 && p.State.Models[0] == d
		})
	}
	ranked := func() []string {
		var out []string
		for _, t := range r.b.ByModel("sentiment", netip.Addr{}).Targets {
			out = append(out, t.Cluster)
		}
		return out
	}

	zero := gossip.ModelDigest{Namespace: "default", Name: "sentiment", Model: "sentiment", Healthy: true, ScaledToZero: true}
	eu.publish(t, zero, textdir)
	has(zero)
	for deadline := time.Now().Add(testHoldDown + time.Second); time.Now().Before(deadline); time.Sleep(50 * time.Millisecond) {
		if got := ranked(); len(got) != 3 || got[0] != "us-east" || got[2] != "eu-west" {
			t.Fatalf("sentiment ranked %v with eu-west scaled to zero, want us-east first and eu-west last, still answered", got)
		}
	}
	if got, _ := testbin.MetricIfAny(t, r.reg, "meridian_glb_gossip_marked_down_total", map[string]string{"reason": "unready"}); got > 0 {
		t.Errorf("marked_down_total{unready} = %v for a model scaled to zero, want none", got)
	}

	// No replica, not on purpose (lost, or not scheduled): out at once.
	lost := gossip.ModelDigest{Namespace: "default", Name: "sentiment", Model: "sentiment", DesiredReplicas: 1}
	eu.publish(t, lost, textdir)
	has(lost)
	testbin.Eventually(t, "eu-west out of sentiment's answers", 5*time.Second, func() bool { return !slices.Contains(ranked(), "eu-west") })
}

// Gossip saying alive and healthy never brings back a cluster whose
// endpoint fails the balancer's probes: both must agree for up.
func TestGossipAliveNeverOverridesAFailingProbe(t *testing.T) {
	t.Parallel()
	r := newGossipRig(t)
	eu := r.agents["eu-west"]

	r.endpoints["eu-west"].failing.Store(true)
	testbin.Eventually(t, "the probes take eu-west out", 30*time.Second, func() bool { return r.first("sentiment") == "us-east" })
	// The agent keeps gossiping fresh, healthy digests, well past a hold-down.
	for until := time.Now().Add(testHoldDown + 2*time.Second); time.Now().Before(until); time.Sleep(100 * time.Millisecond) {
		eu.publish(t, gossip.ModelDigest{Namespace: "default", Name: "sentiment", Model: "sentiment", ReadyReplicas: 1, Healthy: true,
			RequestsPerSecond: float64(time.Now().UnixMilli() % 1000)})
		if got := r.first("sentiment"); got != "us-east" {
			t.Fatalf("sentiment answered %q while eu-west fails its probes and gossip says healthy", got)
		}
	}
	if !r.b.gossip.healthy("eu-west", "sentiment", time.Now()) {
		t.Fatal("gossip did not call eu-west healthy: this test no longer shows probes winning")
	}
	if got := testbin.Metric(t, r.reg, "meridian_glb_target_up", map[string]string{"cluster": "eu-west", "model": "sentiment", "source": "probe"}); got != 0 {
		t.Errorf("target_up{probe} for a failing endpoint = %v, want 0", got)
	}

	// The endpoint recovers: back after the probes' hold-down.
	r.endpoints["eu-west"].failing.Store(false)
	testbin.Eventually(t, "eu-west answers again", testHoldDown+20*time.Second, func() bool { return r.first("sentiment") == "eu-west" })
}

// Without gossip the verdict is the hub's and the probes' alone: a nil
// gossipHealth (no pool) lets every target serve.
func TestNoGossipLeavesHealthToHubAndProbes(t *testing.T) {
	var g *gossipHealth
	if !g.healthy("eu-west", "sentiment", time.Now()) {
		t.Fatal("no gossip took a target out")
	}
	src := &Source{}
	src.set(fleetSnapshot())
	b := NewBalancer(src, nil, nil, "test", quiet())
	if c := b.ByModel("sentiment", netip.Addr{}); len(c.Targets) != 3 {
		t.Fatalf("without gossip %d clusters answer, want all 3", len(c.Targets))
	}
}

// An agent stopped on purpose announces its leave; its replicas may well
// keep serving (a rolling upgrade), so gossip has no opinion and the
// cluster stays in the answers while its probes pass.
func TestGossipLeftAgentHasNoOpinion(t *testing.T) {
	t.Parallel()
	r := newGossipRig(t)
	if err := r.agents["eu-west"].Leave(5 * time.Second); err != nil {
		t.Fatal(err)
	}
	testbin.Eventually(t, "the balancer sees eu-west's agent leave", 30*time.Second, func() bool {
		p, ok := r.node.Peer("eu-west")
		return ok && p.Status == gossip.StatusLeft
	})
	for deadline := time.Now().Add(2 * time.Second); time.Now().Before(deadline); time.Sleep(100 * time.Millisecond) {
		if got := r.first("sentiment"); got != "eu-west" {
			t.Fatalf("sentiment answered %q after eu-west's agent left on purpose, want eu-west (probes pass)", got)
		}
	}
}

// Gossip fails open: when the balancer sees no live agent at all (it is
// cut off from the pool, or every agent is down while their replicas
// serve), it sets gossip aside and the probes decide.
func TestGossipFailsOpenWithoutAnyLiveAgent(t *testing.T) {
	t.Parallel()
	r := newGossipRig(t)
	for _, a := range r.agents {
		if err := a.Shutdown(); err != nil {
			t.Fatal(err)
		}
	}
	testbin.Eventually(t, "the balancer sees every agent dead", 60*time.Second, func() bool {
		for _, c := range rigClusters {
			if p, ok := r.node.Peer(c); !ok || p.Status != gossip.StatusDead {
				return false
			}
		}
		return true
	})
	if got := r.first("sentiment"); got != "eu-west" {
		t.Fatalf("sentiment answered %q with no agent alive, want eu-west: gossip must fail open", got)
	}
}

// The balancer refuses to join the agents' pool in plaintext on an address
// the network can reach, and says to give it the pool's keyring.
func TestGossipBalancerNeedsAKeyringOffLoopback(t *testing.T) {
	t.Parallel()
	b := NewBalancer(&Source{}, nil, steer.NewHealth(steer.HealthConfig{}), "test", quiet())
	_, _, err := b.joinGossip(t.Context(), gossip.Config{BindAddr: "0.0.0.0", Timing: gossipTiming()}, steer.HealthConfig{})
	if !errors.Is(err, gossip.ErrNoKeyring) {
		t.Fatalf("joining on 0.0.0.0 without a keyring = %v, want gossip.ErrNoKeyring", err)
	}
	if b.gossip != nil {
		t.Error("a balancer that failed to join judges by gossip")
	}
}
