package glb

import (
	"context"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"sync/atomic"
	"testing"
	"time"

	v1 "meridian.dev/meridian/crds/v1alpha1"
)

// Latency steering follows the round trips the balancer's own probes
// measure: real HTTP endpoints on loopback that answer after different
// delays, then the fastest slows down and the answer moves.
func TestLatencySteeringFollowsMeasuredRTT(t *testing.T) {
	t.Parallel()
	delays := map[string]*atomic.Int64{}
	snap := &Snapshot{Endpoints: []Endpoint{{Namespace: "default", Name: "sentiment", Hostname: "sentiment.infer.test",
		Model: "sentiment", Steering: v1.SteerLatency, TTL: 5}}}
	for i, name := range []string{"us-east", "eu-west", "ap-south"} {
		d := &atomic.Int64{}
		d.Store(int64(time.Duration(i+1) * 15 * time.Millisecond)) // us-east fastest
		delays[name] = d
		srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
			time.Sleep(time.Duration(d.Load()))
		}))
		t.Cleanup(srv.Close)
		snap.Clusters = append(snap.Clusters, Cluster{Name: name, Region: name, Health: v1.HealthReady, Headroom: 0.5,
			Models: map[string]ModelTarget{"sentiment": {Endpoint: srv.URL, Ready: 1}}})
	}
	src := &Source{}
	src.set(snap)
	b := NewBalancer(src, nil, nil, "ams", quiet())
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go b.Probe(ctx, 50*time.Millisecond, time.Second)

	first := func() string {
		c, _ := b.ByHost("sentiment.infer.test", netip.Addr{})
		if len(c.Targets) == 0 {
			return ""
		}
		return c.Targets[0].Cluster
	}
	waitUntil(t, 10*time.Second, "us-east, the fastest, first", func() bool { return first() == "us-east" })
	delays["us-east"].Store(int64(100 * time.Millisecond))
	waitUntil(t, 10*time.Second, "eu-west first once us-east slows down", func() bool { return first() == "eu-west" })
	if rtt, ok := b.rtt(probeKey("eu-west", "sentiment", snap.Clusters[1].Models["sentiment"].Endpoint)); !ok || rtt < 15*time.Millisecond {
		t.Errorf("eu-west's measured RTT %v (%v), want at least its 15 ms delay", rtt, ok)
	}
}
