package dns

import (
	"bytes"
	"testing"

	mdns "github.com/miekg/dns"
)

// FuzzHandle feeds raw packets to the request path. Whatever arrives, the
// server must not panic, and anything it sends back must be a well-formed
// response with the query's ID that fits the UDP size limit.
func FuzzHandle(f *testing.F) {
	for _, m := range []*mdns.Msg{
		query("app."+zone, mdns.TypeA),
		query("app."+zone, mdns.TypeAAAA, edns(4096)),
		query("app."+zone, mdns.TypeA, ecs(1, "193.0.0.0", 24, 0)),
		query("app."+zone, mdns.TypeAAAA, ecs(2, "2001:db8::", 32, 0)),
		query(zone, mdns.TypeNS),
		query("big."+zone, mdns.TypeA),
		query("nope."+zone, mdns.TypeMX),
		query("example.org.", mdns.TypeA),
		// DNSSEC-bearing queries: DO set (answered unsigned here; FuzzHandleSigned
		// signs them), and the DNSSEC types.
		query("app."+zone, mdns.TypeA, do),
		query("nope."+zone, mdns.TypeA, do),
		query(zone, mdns.TypeDNSKEY, do),
		query(zone, mdns.TypeRRSIG, do),
		query("app."+zone, mdns.TypeNSEC, do),
		query(zone, mdns.TypeDS, do),
		query("big."+zone, mdns.TypeA, do),
		func() *mdns.Msg { m := query("v4only."+zone, mdns.TypeAAAA, do); m.CheckingDisabled = true; return m }(),
	} {
		b, err := m.Pack()
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b, false)
		f.Add(b, true)
	}
	good, _ := query("app."+zone, mdns.TypeA, edns(1232)).Pack()
	f.Add([]byte{}, false)
	f.Add(good[:11], false)
	f.Add(good[:20], false)
	f.Add(append(append([]byte{}, good[:12]...), 0xc0, 0x0c, 0, 1, 0, 1), false)
	f.Add(rawECS(1, 24, 0, []byte{193, 0, 0, 1}), false)
	f.Add(rawECS(3, 8, 0, []byte{1}), false)
	f.Add(rawECS(2, 129, 0, make([]byte, 17)), true)

	cfg := testConfig()
	s, _ := newTestServer(f, cfg)
	f.Fuzz(func(t *testing.T, pkt []byte, tcp bool) { fuzzOnce(t, s, pkt, tcp) })
}

// FuzzFastPath checks the precomputed path against the full path: for
// any packet, once the name is known, the response is the full path's
// (the answer's owner may carry the query's letter case).
func FuzzFastPath(f *testing.F) {
	for _, m := range []*mdns.Msg{
		query("app."+zone, mdns.TypeA),
		query("APP."+zone, mdns.TypeA, edns(512)),
		query("app."+zone, mdns.TypeAAAA, edns(4096)),
		query("app."+zone, mdns.TypeA, ecs(1, "193.0.0.0", 24, 0)),
		query("app."+zone, mdns.TypeA, ecs(1, "193.0.16.0", 20, 0), cookie()),
		query("app."+zone, mdns.TypeAAAA, ecs(2, "2001:db8::", 32, 0)),
		query("v4only."+zone, mdns.TypeA, ecs(1, "193.0.0.0", 24, 0)),
		query("client."+zone, mdns.TypeA, ecs(1, "10.0.0.0", 8, 0)),
		query("big."+zone, mdns.TypeA),
		query("app."+zone, mdns.TypeA, do),
	} {
		b, err := m.Pack()
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b, false)
		f.Add(b, true)
	}
	f.Fuzz(func(t *testing.T, pkt []byte, tcp bool) {
		proto := protoUDP
		if tcp {
			proto = protoTCP
		}
		fast, _ := newTestServer(t, testConfig())
		full, _ := newTestServer(t, testConfig())
		buf := make([]byte, 65535)
		for range 2 { // the first may teach the name
			got := fast.handleInto(pkt, proto, resolver, buf)
			want := full.handleFull(pkt, proto, resolver, nil)
			if got == nil || want == nil {
				if got != nil || want != nil {
					t.Fatalf("response %x, want %x", got, want)
				}
				return
			}
			if !bytes.Equal(got, want) && lowerNames(t, got) != lowerNames(t, want) {
				t.Fatalf("response\n%s\nwant\n%s", lowerNames(t, got), lowerNames(t, want))
			}
		}
	})
}

// fuzzOnce answers pkt and checks whatever comes back.
func fuzzOnce(t *testing.T, s *Server, pkt []byte, tcp bool) *mdns.Msg {
	proto := protoUDP
	if tcp {
		proto = protoTCP
	}
	out := s.handle(pkt, proto, resolver)
	if out == nil {
		return nil
	}
	if len(pkt) < headerLen {
		t.Fatalf("answered a %d-byte packet", len(pkt))
	}
	if !tcp && len(out) > int(s.cfg.MaxUDPSize) {
		t.Fatalf("UDP response of %d bytes exceeds %d", len(out), s.cfg.MaxUDPSize)
	}
	r := new(mdns.Msg)
	if err := r.Unpack(out); err != nil {
		t.Fatalf("response does not parse: %v", err)
	}
	if !r.Response || r.Id != uint16(pkt[0])<<8|uint16(pkt[1]) || r.RecursionAvailable {
		t.Fatalf("bad response header: %+v", r.MsgHdr)
	}
	return r
}

func do(m *mdns.Msg) { m.SetEdns0(1232, true) }
