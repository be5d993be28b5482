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
	"meridian.dev/meridian/glb/steer"
	"meridian.dev/meridian/internal/netns"
	"meridian.dev/meridian/internal/testbin"
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

	first := func() string { return leader(b, "sentiment.infer.test") }
	testbin.Eventually(t, "us-east, the fastest, first", 10*time.Second, func() bool { return first() == "us-east" })
	delays["us-east"].Store(int64(100 * time.Millisecond))
	testbin.Eventually(t, "eu-west first once us-east slows down", 10*time.Second, func() bool { return first() == "eu-west" })
	if rtt, ok := b.rtt(probeKey("eu-west", "sentiment", snap.Clusters[1].Models["sentiment"].Endpoint)); !ok || rtt < 15*time.Millisecond {
		t.Errorf("eu-west's measured RTT %v (%v), want at least its 15 ms delay", rtt, ok)
	}
}

// Across real network hops: three hosts in their own network namespaces,
// joined to this one by veth links, each answering after its own delay
// (this kernel has no netem to delay the links themselves). Latency
// steering picks the nearest by measured round trip and moves when it
// slows; a cut link takes the host out and a healed one brings it back.
// Needs root and iproute2 (CI runs as root); elsewhere the loopback test
// above covers the steering without real links.
func TestSteeringAcrossNetworkNamespaces(t *testing.T) {
	if why := netns.Available(); why != "" {
		t.Skip("separate hosts unavailable: " + why)
	}
	t.Parallel()
	snap := &Snapshot{Endpoints: []Endpoint{{Namespace: "default", Name: "sentiment", Hostname: "sentiment.infer.test",
		Model: "sentiment", Steering: v1.SteerLatency, TTL: 5}}}
	hosts, delays := map[string]*netns.Host{}, map[string]*atomic.Int64{}
	for i, name := range []string{"us-east", "eu-west", "ap-south"} {
		h, err := netns.New(i + 1)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(h.Close)
		hosts[name] = h
		d := &atomic.Int64{}
		d.Store(int64(time.Duration(10*(i+1)) * time.Millisecond)) // us-east nearest
		delays[name] = d
		ln, err := h.Listen()
		if err != nil {
			t.Fatal(err)
		}
		srv := &http.Server{Handler: http.HandlerFunc(func(http.ResponseWriter, *http.Request) { time.Sleep(time.Duration(d.Load())) }),
			ReadHeaderTimeout: time.Second}
		go func() { _ = srv.Serve(ln) }()
		t.Cleanup(func() { _ = srv.Close() })
		snap.Clusters = append(snap.Clusters, Cluster{Name: name, Region: name, Health: v1.HealthReady, Headroom: 0.5,
			Models: map[string]ModelTarget{"sentiment": {Endpoint: "http://" + ln.Addr().String(), Ready: 1}}})
	}
	src := &Source{}
	src.set(snap)
	b := NewBalancer(src, nil, steer.NewHealth(steer.HealthConfig{FailureThreshold: 2, HoldDown: time.Second}), "ams", quiet())
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go b.Probe(ctx, 100*time.Millisecond, 500*time.Millisecond)
	first := func() string { return leader(b, "sentiment.infer.test") }

	testbin.Eventually(t, "us-east (10 ms away) first", 15*time.Second, func() bool { return first() == "us-east" })
	delays["us-east"].Store(int64(80 * time.Millisecond))
	testbin.Eventually(t, "eu-west first once us-east slows to 80 ms", 15*time.Second, func() bool { return first() == "eu-west" })
	if err := hosts["eu-west"].Cut(); err != nil {
		t.Fatal(err)
	}
	testbin.Eventually(t, "eu-west out once its link is cut", 15*time.Second, func() bool { return first() == "ap-south" })
	if err := hosts["eu-west"].Heal(); err != nil {
		t.Fatal(err)
	}
	testbin.Eventually(t, "eu-west back after the heal and the hold-down", 15*time.Second, func() bool { return first() == "eu-west" })
}

// leader is the cluster b answers host with first, "" for none.
func leader(b *Balancer, host string) string {
	c, _ := b.ByHost(host, netip.Addr{})
	if len(c.Targets) == 0 {
		return ""
	}
	return c.Targets[0].Cluster
}
