package dns

import (
	"context"
	"net"
	"net/netip"
	"testing"
	"time"

	mdns "github.com/miekg/dns"
)

// BenchmarkHandle measures the request path alone, raw query in and raw
// answer out, with no sockets: the part that changes with the DNS
// library. Run it with and without -tags dnsv2 and compare with benchstat
// (docs/glb.md, "DNS library"). B/resp is the size of the answer.
func BenchmarkHandle(b *testing.B) {
	const zone = "infer.example.com."
	steer := SteererFunc(func(q Query) (Answer, bool) {
		if q.Name != "sentiment."+zone {
			return Answer{}, false
		}
		if q.Type == TypeAAAA {
			return Answer{Addrs: []netip.Addr{netip.MustParseAddr("2001:db8::10")}, Scope: 24}, true
		}
		return Answer{Addrs: []netip.Addr{netip.MustParseAddr("192.0.2.10")}, Scope: 24}, true
	})
	s, err := New(Config{Zone: zone, NS: []string{"ns1.example.net."}, RRL: RRL{Off: true}}, steer, nil)
	if err != nil {
		b.Fatal(err)
	}
	for _, bc := range []struct {
		name string
		q    *mdns.Msg
	}{
		{"A_ECS", query("sentiment."+zone, mdns.TypeA, ecs(1, "193.0.0.0", 24, 0))},
		{"NXDOMAIN_ECS", query("nope."+zone, mdns.TypeA, ecs(1, "193.0.0.0", 24, 0))},
		{"A_noEDNS", query("sentiment."+zone, mdns.TypeA)},
	} {
		pkt, err := bc.q.Pack()
		if err != nil {
			b.Fatal(err)
		}
		b.Run(bc.name, func(b *testing.B) {
			b.ReportAllocs()
			var out []byte
			buf := make([]byte, 65535) // as a read loop's
			for b.Loop() {
				if out = s.handleInto(pkt, protoUDP, resolver, buf); out == nil {
					b.Fatal("no answer")
				}
			}
			b.ReportMetric(float64(len(out)), "B/resp")
		})
	}
}

// BenchmarkServeUDP is the whole UDP loop on loopback: clients (one
// connected socket each, b.RunParallel) send a steered A query with ECS
// and wait for the answer. With -cpuprofile, go tool pprof -top
// -focus=serveUDP shows where the server's time per query goes: the
// socket calls, the precomputed path, the Steerer (here a fixed answer).
func BenchmarkServeUDP(b *testing.B) {
	const zone = "infer.example.com."
	v4 := []netip.Addr{netip.MustParseAddr("192.0.2.10")}
	s, err := New(Config{Zone: zone, NS: []string{"ns1.example.net."}, RRL: RRL{Off: true}},
		SteererFunc(func(Query) (Answer, bool) { return Answer{Addrs: v4, Scope: 24}, true }), nil)
	if err != nil {
		b.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { _ = s.ListenAndServe(ctx, "127.0.0.1:0"); close(done) }()
	defer func() { cancel(); <-done }()
	ap, err := s.Addr(ctx)
	if err != nil {
		b.Fatal(err)
	}
	pkt, err := query("sentiment."+zone, mdns.TypeA, ecs(1, "193.0.0.0", 24, 0)).Pack()
	if err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		c, err := net.DialUDP("udp", nil, net.UDPAddrFromAddrPort(ap))
		if err != nil {
			b.Error(err)
			return
		}
		defer func() { _ = c.Close() }()
		in := make([]byte, 1232)
		for pb.Next() {
			_ = c.SetReadDeadline(time.Now().Add(time.Second))
			if _, err := c.Write(pkt); err != nil {
				b.Error(err)
				return
			}
			if _, err := c.Read(in); err != nil {
				b.Error(err)
				return
			}
		}
	})
}
