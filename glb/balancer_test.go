package glb

import (
	"context"
	"net/netip"
	"path/filepath"
	"testing"
	"time"

	mdns "github.com/miekg/dns"

	v1 "meridian.dev/meridian/crds/v1alpha1"
	"meridian.dev/meridian/glb/dns"
	"meridian.dev/meridian/glb/geo"
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
	db, err := geo.Open(filepath.Join("..", geo.DefaultIPv4Path), filepath.Join("..", geo.DefaultIPv6Path))
	if err != nil {
		t.Fatalf("%v (run `make deps`)", err)
	}
	t.Cleanup(func() { _ = db.Close() })
	return db
}

// Real DNS over UDP with EDNS Client Subnet: European, American and Indian
// clients get their region's address, and a dead region's clients move.
func TestDNSSteersClientsToTheirRegion(t *testing.T) {
	src := &Source{}
	src.set(fleetSnapshot())
	b := NewBalancer(src, openGeo(t), nil, "test", quiet())
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
	ask := func(subnet string) (string, uint8) {
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
