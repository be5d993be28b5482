package glb

import (
	"context"
	"net/netip"
	"sync/atomic"
	"testing"
	"time"

	mdns "github.com/miekg/dns"

	"meridian.dev/meridian/agent/activator"
	v1 "meridian.dev/meridian/crds/v1alpha1"
	"meridian.dev/meridian/glb/dns"
	"meridian.dev/meridian/glb/geo"
	"meridian.dev/meridian/glb/steer"
	"meridian.dev/meridian/internal/testbin"
)

// fleetSnapshot is three regions, each serving sentiment from its own
// loopback address, as `meridian up` lays them out.
func fleetSnapshot() *Snapshot {
	cluster := func(name string, lat, lon float64, ip string) Cluster {
		return Cluster{Name: name, Region: name, Lat: lat, Lon: lon, HasLocation: true, Health: v1.HealthReady, Headroom: 0.8,
			Models: map[string]ModelTarget{"sentiment": {Endpoint: "http://" + ip + ":8000", Ready: 1}}}
	}
	return &Snapshot{
		Endpoints: []Endpoint{{Namespace: "default", Name: "sentiment", Hostname: "sentiment.infer.test", Model: "sentiment", Steering: v1.SteerGeo, TTL: 30}},
		Clusters: []Cluster{
			cluster("ap-south", 19.08, 72.88, "127.0.1.3"),
			cluster("eu-west", 53.35, -6.26, "127.0.1.2"),
			cluster("us-east", 39.04, -77.49, "127.0.1.1"),
		},
	}
}

func openGeo(t testing.TB) *geo.DB {
	t.Helper()
	db, err := geo.Open(testbin.GeoDatabases(t))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = db.Close() })
	return db
}

// serveDNS serves b's answers for infer.test over real UDP and returns a
// function that asks for sentiment.infer.test's A record on behalf of a
// client subnet (EDNS Client Subnet), and answers the one address and the
// ECS scope.
func serveDNS(t *testing.T, b *Balancer) func(subnet string) (string, uint8) {
	t.Helper()
	srv, err := dns.New(dns.Config{Zone: "infer.test.", NS: []string{"ns1.infer.test."},
		Glue: map[string][]netip.Addr{"ns1.infer.test.": {netip.MustParseAddr("127.0.0.1")}},
		SOA:  dns.SOA{MName: "ns1.infer.test.", RName: "hostmaster.infer.test."}}, b, nil)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	served := make(chan struct{})
	go func() { _ = srv.ListenAndServe(ctx, "127.0.0.1:0"); close(served) }()
	// The server stops before the geo database closes (cleanups run last
	// registered first).
	t.Cleanup(func() { cancel(); <-served })
	addr, err := srv.Addr(ctx)
	if err != nil {
		t.Fatal(err)
	}
	return func(subnet string) (string, uint8) {
		t.Helper()
		p := netip.MustParsePrefix(subnet)
		m := new(mdns.Msg)
		m.SetQuestion("sentiment.infer.test.", mdns.TypeA)
		o := &mdns.OPT{Hdr: mdns.RR_Header{Name: ".", Rrtype: mdns.TypeOPT}}
		o.SetUDPSize(1232)
		o.Option = append(o.Option, &mdns.EDNS0_SUBNET{Code: mdns.EDNS0SUBNET, Family: 1, SourceNetmask: uint8(p.Bits()), Address: p.Addr().AsSlice()})
		m.Extra = append(m.Extra, o)
		r, err := mdns.Exchange(m, addr.String())
		if err != nil {
			t.Fatal(err)
		}
		if len(r.Answer) != 1 {
			t.Fatalf("%s: %v", subnet, r)
		}
		var scope uint8
		if opt := r.IsEdns0(); opt != nil {
			for _, o := range opt.Option {
				if e, ok := o.(*mdns.EDNS0_SUBNET); ok {
					scope = e.SourceScope
				}
			}
		}
		return r.Answer[0].(*mdns.A).A.String(), scope
	}
}

// Real DNS over UDP with EDNS Client Subnet: European, American and Indian
// clients get their region's address, and a dead region's clients move.
func TestDNSSteersClientsToTheirRegion(t *testing.T) {
	src := &Source{}
	src.set(fleetSnapshot())
	b := NewBalancer(src, openGeo(t), nil, "test", quiet())
	ask := serveDNS(t, b)
	for subnet, want := range map[string]string{
		"193.0.0.0/24":   "127.0.1.2", // Amsterdam -> eu-west
		"141.20.1.0/24":  "127.0.1.2", // Berlin -> eu-west
		"3.80.0.0/24":    "127.0.1.1", // Ashburn -> us-east
		"200.160.2.0/24": "127.0.1.1", // Sao Paulo -> us-east
		"13.126.0.0/24":  "127.0.1.3", // Mumbai -> ap-south
		"13.112.0.0/24":  "127.0.1.3", // Tokyo -> ap-south
	} {
		if got, scope := ask(subnet); got != want || scope == 0 || scope > 24 {
			t.Errorf("%s answered %s scope /%d, want %s with a scope within /24", subnet, got, scope, want)
		}
	}

	// eu-west dies: Europeans go to the next nearest healthy region.
	snap := fleetSnapshot()
	snap.Clusters[1].Health = v1.HealthUnreachable
	src.set(snap)
	if got, _ := ask("193.0.0.0/24"); got != "127.0.1.1" {
		t.Errorf("with eu-west down Amsterdam got %s, want us-east's 127.0.1.1", got)
	}

	// The balancer's own probes take a cluster out too, after the threshold.
	src.set(fleetSnapshot())
	now := time.Now()
	for range 3 {
		b.health.Observe(probeKey("eu-west", "sentiment", "http://127.0.1.2:8000"), false, now)
	}
	if got, _ := ask("193.0.0.0/24"); got == "127.0.1.2" {
		t.Error("a cluster failing the balancer's probes still got traffic")
	}

	// The model moves to a new address in eu-west (or the failures were
	// of a stale last-known-good copy): the new endpoint is judged on its
	// own, with no inherited failures or hold-down.
	moved := fleetSnapshot()
	for i, c := range moved.Clusters {
		if c.Name == "eu-west" {
			moved.Clusters[i].Models["sentiment"] = ModelTarget{Endpoint: "http://127.0.1.4:8000", Ready: 1}
		}
	}
	src.set(moved)
	if got, _ := ask("193.0.0.0/24"); got != "127.0.1.4" {
		t.Errorf("eu-west's new endpoint inherited the old one's failures: Amsterdam got %s, want 127.0.1.4", got)
	}
}

// A region whose model is scaled to zero stays in the DNS answers, behind
// the warm ones: its address is the agent's activator (a real one here),
// which passes the balancer's health probes without being woken by them.
// Americans, nearest to the cold us-east, are sent to warm eu-west while
// it serves, and to us-east's activator once eu-west is out.
func TestDNSKeepsAClusterScaledToZeroAfterWarmOnes(t *testing.T) {
	warm := startEndpoint(t, "127.0.1.2") // eu-west's replicas
	act, err := activator.New(activator.Options{Host: netip.MustParseAddr("127.0.1.1"), Logger: quiet()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(act.Close)
	var activations atomic.Int32
	coldAddr, err := act.Register("default", "sentiment", activator.Target{
		Activate: func(context.Context) error { activations.Add(1); return nil },
		Backends: func(context.Context) ([]activator.Backend, error) { return nil, nil }, // scaled to zero
	})
	if err != nil {
		t.Fatal(err)
	}
	snap := &Snapshot{
		Endpoints: []Endpoint{{Namespace: "default", Name: "sentiment", Hostname: "sentiment.infer.test", Model: "sentiment", Steering: v1.SteerGeo, TTL: 30}},
		Clusters: []Cluster{
			{Name: "eu-west", Region: "eu-west", Lat: 53.35, Lon: -6.26, HasLocation: true, Health: v1.HealthReady, Headroom: 0.8,
				Models: map[string]ModelTarget{"sentiment": {Endpoint: warm.URL, Ready: 1}}},
			{Name: "us-east", Region: "us-east", Lat: 39.04, Lon: -77.49, HasLocation: true, Health: v1.HealthReady, Headroom: 0.8,
				Models: map[string]ModelTarget{"sentiment": {Endpoint: "http://" + coldAddr.String(), Cold: true}}},
		},
	}
	src := &Source{}
	src.set(snap)
	b := NewBalancer(src, openGeo(t), steer.NewHealth(steer.HealthConfig{FailureThreshold: 2, HoldDown: time.Second}), "test", quiet())
	ask := serveDNS(t, b)
	ctx, cancel := context.WithCancel(context.Background())
	probing := make(chan struct{})
	go func() { b.Probe(ctx, 50*time.Millisecond, time.Second); close(probing) }()
	t.Cleanup(func() { cancel(); <-probing })

	// The activator passes the probes: a round trip is recorded only for a 200.
	coldProbe := probeKey("us-east", "sentiment", "http://"+coldAddr.String())
	testbin.Eventually(t, "a passed probe of us-east's activator", 10*time.Second, func() bool { _, ok := b.rtt(coldProbe); return ok })
	time.Sleep(300 * time.Millisecond) // several more probes

	const ashburn, amsterdam = "3.80.0.0/24", "193.0.0.0/24"
	for subnet, want := range map[string]string{ashburn: "127.0.1.2", amsterdam: "127.0.1.2"} {
		if got, _ := ask(subnet); got != want {
			t.Errorf("%s answered %s with eu-west warm, want eu-west's %s (the cold us-east is nearer to Ashburn but comes after)", subnet, got, want)
		}
	}
	if c := b.ByModel("sentiment", netip.MustParseAddr("3.80.0.1")); len(c.Targets) != 2 || c.Targets[0].Cluster != "eu-west" || c.Targets[1].Cluster != "us-east" {
		t.Errorf("HTTP front's order for Ashburn: %+v; want eu-west, then the cold us-east", c.Targets)
	}

	// eu-west fails its probes: the cold region answers for everyone.
	warm.failing.Store(true)
	testbin.Eventually(t, "eu-west out of the answers", 10*time.Second, func() bool { got, _ := ask(amsterdam); return got != "127.0.1.2" })
	for _, subnet := range []string{ashburn, amsterdam} {
		if got, _ := ask(subnet); got != "127.0.1.1" {
			t.Errorf("%s answered %s with eu-west out, want us-east's activator at 127.0.1.1", subnet, got)
		}
	}
	if !b.health.Healthy(coldProbe, time.Now()) {
		t.Error("us-east's activator failed the balancer's probes")
	}
	if n := activations.Load(); n != 0 {
		t.Errorf("the balancer's probes woke the model at zero %d times", n)
	}
	if last := act.LastRequest("default", "sentiment"); !last.IsZero() {
		t.Errorf("the balancer's probes count as the model's last request (%v): it would never stay idle", last)
	}
}
