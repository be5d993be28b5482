package dns

import (
	"net/netip"
	"testing"

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
