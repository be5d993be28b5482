package glb

import (
	"context"
	"net/http"
	"net/http/httptest"
	"sync/atomic"
	"testing"
	"time"

	v1 "meridian.dev/meridian/crds/v1alpha1"
	"meridian.dev/meridian/internal/testbin"
)

// The probes follow each GlobalEndpoint's healthCheck: its interval (the
// prober turns faster but does not probe sooner) and its failure
// threshold (one failure is enough where the endpoint says so).
func TestProbesFollowTheEndpointsHealthCheck(t *testing.T) {
	t.Parallel()
	var hits, failing atomic.Int64
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		hits.Add(1)
		if failing.Load() != 0 {
			w.WriteHeader(http.StatusServiceUnavailable)
		}
	}))
	defer srv.Close()
	other := httptest.NewServer(http.HandlerFunc(func(http.ResponseWriter, *http.Request) {}))
	defer other.Close()
	snap := &Snapshot{Endpoints: []Endpoint{{Namespace: "default", Name: "sentiment", Hostname: "sentiment.infer.test",
		Model: "sentiment", Steering: v1.SteerFailover, FailoverOrder: []string{"eu-west", "us-east"}, TTL: 5,
		HealthEvery: 500 * time.Millisecond, Failures: 1}}}
	for name, url := range map[string]string{"eu-west": srv.URL, "us-east": other.URL} {
		snap.Clusters = append(snap.Clusters, Cluster{Name: name, Region: name, Health: v1.HealthReady, Headroom: 0.5,
			Models: map[string]ModelTarget{"sentiment": {Endpoint: url, Ready: 1}}})
	}
	src := &Source{}
	src.set(snap)
	b := NewBalancer(src, nil, nil, "test", quiet()) // default threshold 2
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go b.Probe(ctx, 20*time.Millisecond, time.Second)

	time.Sleep(2 * time.Second)
	if n := hits.Load(); n < 3 || n > 7 {
		t.Errorf("%d probes in 2 s with a 500 ms interval and a 20 ms turn, want about 5 (a probe every turn would be 100)", n)
	}
	if got := leader(b, "sentiment.infer.test"); got != "eu-west" {
		t.Fatalf("leader %q, want eu-west while healthy", got)
	}
	failing.Store(1)
	before := hits.Load()
	// One failed probe must be enough: eu-west leaves before the next
	// probe, 500 ms later.
	testbin.Eventually(t, "eu-west out", 5*time.Second, func() bool { return leader(b, "sentiment.infer.test") == "us-east" })
	if n := hits.Load() - before; n != 1 {
		t.Errorf("eu-west went out after %d failed probes, want 1 (the endpoint's failureThreshold)", n)
	}
}

// An endpoint probed a hair less than its interval ago is due on this
// turn: turns start late or early by a little, and waiting for the next
// turn would stretch the interval (500ms to 750ms with 250ms turns), and
// the time to take a dead region out with it.
func TestProbeDueHalfATurnEarly(t *testing.T) {
	t.Parallel()
	var hits atomic.Int64
	srv := httptest.NewServer(http.HandlerFunc(func(http.ResponseWriter, *http.Request) { hits.Add(1) }))
	defer srv.Close()
	snap := &Snapshot{Endpoints: []Endpoint{{Namespace: "default", Name: "sentiment", Hostname: "sentiment.infer.test",
		Model: "sentiment", Steering: v1.SteerFailover, FailoverOrder: []string{"eu-west"}, TTL: 5,
		HealthEvery: 500 * time.Millisecond, Failures: 2}}}
	snap.Clusters = []Cluster{{Name: "eu-west", Region: "eu-west", Health: v1.HealthReady, Headroom: 0.5,
		Models: map[string]ModelTarget{"sentiment": {Endpoint: srv.URL, Ready: 1}}}}
	src := &Source{}
	src.set(snap)
	b := NewBalancer(src, nil, nil, "test", quiet())
	key := src.Current().Clusters[0].Models["sentiment"].probe
	turn := 250 * time.Millisecond
	for _, tc := range []struct {
		ago  time.Duration
		want int64
	}{
		{500*time.Millisecond - time.Millisecond, 1},             // due: a turn that starts 1ms early still probes
		{500*time.Millisecond - turn/2 - 10*time.Millisecond, 0}, // not yet: the next turn is nearer the interval
	} {
		hits.Store(0)
		last := map[string]time.Time{key: time.Now().Add(-tc.ago)}
		b.probeOnce(context.Background(), srv.Client(), src.Current(), turn, time.Second, last)
		if n := hits.Load(); n != tc.want {
			t.Errorf("probed %v ago with a 500ms interval and %v turns: %d probes, want %d", tc.ago, turn, n, tc.want)
		}
	}
}
