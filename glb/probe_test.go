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
