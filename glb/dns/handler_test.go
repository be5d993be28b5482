package dns

import (
	"fmt"
	"net"
	"net/netip"
	"slices"
	"strings"
	"testing"
	"time"

	mdns "github.com/miekg/dns"
	"github.com/prometheus/client_golang/prometheus"
)

const zone = "z.example."

var (
	resolver = netip.MustParseAddr("203.0.113.7")
	europe   = netip.MustParsePrefix("193.0.0.0/8")
)

// testSteerer answers a few fixed names; app.z.example. depends on whether
// the client is in 193.0.0.0/8 (scope 8).
func testSteerer(q Query) (Answer, bool) {
	switch q.Name {
	case "app." + zone:
		if q.Type == TypeAAAA {
			return Answer{Addrs: []netip.Addr{netip.MustParseAddr("2001:db8::1")}, TTL: 20}, true
		}
		if europe.Contains(q.Client) {
			return Answer{Addrs: []netip.Addr{netip.MustParseAddr("198.51.100.1")}, TTL: 20, Scope: 8}, true
		}
		return Answer{Addrs: []netip.Addr{netip.MustParseAddr("192.0.2.1")}, TTL: 20, Scope: 8}, true
	case "v4only." + zone:
		if q.Type == TypeA {
			// A v6 address in the list must be ignored for an A answer.
			return Answer{Addrs: []netip.Addr{netip.MustParseAddr("192.0.2.2"), netip.MustParseAddr("2001:db8::2")}}, true
		}
		return Answer{}, false
	case "empty." + zone:
		return Answer{}, true
	case "big." + zone:
		var as []netip.Addr
		for i := range 200 {
			as = append(as, netip.AddrFrom4([4]byte{10, 0, byte(i / 256), byte(i)}))
		}
		return Answer{Addrs: as}, true
	case "panic." + zone:
		panic("steerer bug")
	case "client." + zone: // echoes the client it was asked about
		return Answer{Addrs: []netip.Addr{q.Client}, TTL: uint32(q.ClientPrefix)}, true
	}
	return Answer{}, false
}

func testConfig() Config {
	return Config{
		Zone: "Z.example",
		NS:   []string{"ns1.z.example.", "ns2.other.example."},
		Glue: map[string][]netip.Addr{"ns1.z.example.": {
			netip.MustParseAddr("192.0.2.53"), netip.MustParseAddr("2001:db8::53"),
		}},
		SOA:        SOA{Serial: 2026112701, Minimum: 10},
		DefaultTTL: 30,
		MaxUDPSize: 1232,
		// Every query here comes from one resolver; rrl_test.go and
		// abuse_test.go turn rate limiting back on.
		RRL: RRL{Off: true},
	}
}

func newTestServer(t testing.TB, cfg Config) (*Server, *prometheus.Registry) {
	t.Helper()
	reg := prometheus.NewRegistry()
	s, err := New(cfg, SteererFunc(testSteerer), reg)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	return s, reg
}

type msgOpt func(*mdns.Msg)

func query(name string, qtype uint16, opts ...msgOpt) *mdns.Msg {
	m := new(mdns.Msg)
	m.SetQuestion(name, qtype)
	for _, o := range opts {
		o(m)
	}
	return m
}

func edns(size uint16) msgOpt {
	return func(m *mdns.Msg) { m.SetEdns0(size, false) }
}

func ecs(family uint16, addr string, source, scope uint8) msgOpt {
	return func(m *mdns.Msg) {
		o := m.IsEdns0()
		if o == nil {
			m.SetEdns0(1232, false)
			o = m.IsEdns0()
		}
		o.Option = append(o.Option, &mdns.EDNS0_SUBNET{
			Code: mdns.EDNS0SUBNET, Family: family, SourceNetmask: source, SourceScope: scope,
			Address: net.ParseIP(addr),
		})
	}
}

// rrs renders a section compactly: "A 192.0.2.1", "SOA", "NS ns1.z.example.".
func rrs(section []mdns.RR) []string {
	var out []string
	for _, rr := range section {
		switch v := rr.(type) {
		case *mdns.OPT:
			continue
		case *mdns.A:
			out = append(out, "A "+v.A.String())
		case *mdns.AAAA:
			out = append(out, "AAAA "+v.AAAA.String())
		case *mdns.NS:
			out = append(out, "NS "+v.Ns)
		default:
			out = append(out, mdns.TypeToString[rr.Header().Rrtype])
		}
	}
	return out
}

func ecsOf(m *mdns.Msg) *mdns.EDNS0_SUBNET {
	if o := m.IsEdns0(); o != nil {
		for _, e := range o.Option {
			if s, ok := e.(*mdns.EDNS0_SUBNET); ok {
				return s
			}
		}
	}
	return nil
}

type want struct {
	rcode    int
	aa, tc   bool
	answer   []string
	ns       []string
	extra    []string
	opt      bool
	ecsScope int // -1: no ECS option expected
	nothing  bool
}

func TestHandle(t *testing.T) {
	t.Parallel()
	soa := []string{"SOA"}
	tests := []struct {
		name  string
		req   *mdns.Msg
		raw   []byte // overrides req
		proto string
		want  want
	}{
		{"SOA at apex", query(zone, mdns.TypeSOA), nil, protoUDP,
			want{rcode: mdns.RcodeSuccess, aa: true, answer: soa, ecsScope: -1}},
		{"apex case-insensitive", query("Z.EXAMPLE.", mdns.TypeSOA), nil, protoUDP,
			want{rcode: mdns.RcodeSuccess, aa: true, answer: soa, ecsScope: -1}},
		{"NS at apex with glue", query(zone, mdns.TypeNS), nil, protoUDP,
			want{rcode: mdns.RcodeSuccess, aa: true, answer: []string{"NS ns1.z.example.", "NS ns2.other.example."},
				extra: []string{"A 192.0.2.53", "AAAA 2001:db8::53"}, ecsScope: -1}},
		{"A of in-zone NS from glue", query("ns1."+zone, mdns.TypeA), nil, protoUDP,
			want{rcode: mdns.RcodeSuccess, aa: true, answer: []string{"A 192.0.2.53"}, ecsScope: -1}},
		{"MX of NS name is NODATA", query("ns1."+zone, mdns.TypeMX), nil, protoUDP,
			want{rcode: mdns.RcodeSuccess, aa: true, ns: soa, ecsScope: -1}},
		{"A at apex with no steered records is NODATA", query(zone, mdns.TypeA), nil, protoUDP,
			want{rcode: mdns.RcodeSuccess, aa: true, ns: soa, ecsScope: -1}},
		{"A steered by resolver", query("app."+zone, mdns.TypeA), nil, protoUDP,
			want{rcode: mdns.RcodeSuccess, aa: true, answer: []string{"A 192.0.2.1"}, ecsScope: -1}},
		{"AAAA steered", query("APP."+zone, mdns.TypeAAAA), nil, protoTCP,
			want{rcode: mdns.RcodeSuccess, aa: true, answer: []string{"AAAA 2001:db8::1"}, ecsScope: -1}},
		{"RD ignored, RA clear", func() *mdns.Msg { m := query("app."+zone, mdns.TypeA); m.RecursionDesired = true; return m }(), nil, protoUDP,
			want{rcode: mdns.RcodeSuccess, aa: true, answer: []string{"A 192.0.2.1"}, ecsScope: -1}},
		{"A ignores v6 addrs from steerer", query("v4only."+zone, mdns.TypeA), nil, protoUDP,
			want{rcode: mdns.RcodeSuccess, aa: true, answer: []string{"A 192.0.2.2"}, ecsScope: -1}},
		{"AAAA with only IPv4 targets is NODATA", query("v4only."+zone, mdns.TypeAAAA), nil, protoUDP,
			want{rcode: mdns.RcodeSuccess, aa: true, ns: soa, ecsScope: -1}},
		{"TXT of existing name is NODATA", query("app."+zone, mdns.TypeTXT), nil, protoUDP,
			want{rcode: mdns.RcodeSuccess, aa: true, ns: soa, ecsScope: -1}},
		{"existing name without addresses is NODATA", query("empty."+zone, mdns.TypeA), nil, protoUDP,
			want{rcode: mdns.RcodeSuccess, aa: true, ns: soa, ecsScope: -1}},
		{"unknown name is NXDOMAIN", query("nope."+zone, mdns.TypeA), nil, protoUDP,
			want{rcode: mdns.RcodeNameError, aa: true, ns: soa, ecsScope: -1}},
		{"unknown name AAAA is NXDOMAIN", query("nope."+zone, mdns.TypeAAAA), nil, protoUDP,
			want{rcode: mdns.RcodeNameError, aa: true, ns: soa, ecsScope: -1}},
		{"outside the zone is REFUSED", query("example.com.", mdns.TypeA), nil, protoUDP,
			want{rcode: mdns.RcodeRefused, ecsScope: -1}},
		{"suffix but not subdomain is REFUSED", query("xz.example.", mdns.TypeA), nil, protoUDP,
			want{rcode: mdns.RcodeRefused, ecsScope: -1}},
		{"parent of zone is REFUSED", query("example.", mdns.TypeSOA), nil, protoUDP,
			want{rcode: mdns.RcodeRefused, ecsScope: -1}},
		{"CHAOS class is REFUSED", func() *mdns.Msg {
			m := query("app."+zone, mdns.TypeA)
			m.Question[0].Qclass = mdns.ClassCHAOS
			return m
		}(), nil, protoUDP,
			want{rcode: mdns.RcodeRefused, ecsScope: -1}},
		{"NXNAME meta-type is FORMERR", query("app."+zone, mdns.TypeNXNAME), nil, protoUDP,
			want{rcode: mdns.RcodeFormatError, ecsScope: -1}},
		{"AXFR is REFUSED", query(zone, mdns.TypeAXFR), nil, protoTCP,
			want{rcode: mdns.RcodeRefused, ecsScope: -1}},
		{"ANY gets RFC 8482 HINFO", query("app."+zone, mdns.TypeANY), nil, protoUDP,
			want{rcode: mdns.RcodeSuccess, aa: true, answer: []string{"HINFO"}, ecsScope: -1}},
		{"opcode NOTIFY is NOTIMP", func() *mdns.Msg { m := query(zone, mdns.TypeSOA); m.Opcode = mdns.OpcodeNotify; return m }(), nil, protoUDP,
			want{rcode: mdns.RcodeNotImplemented, ecsScope: -1}},
		{"opcode UPDATE is NOTIMP", func() *mdns.Msg { m := query(zone, mdns.TypeSOA); m.Opcode = mdns.OpcodeUpdate; return m }(), nil, protoUDP,
			want{rcode: mdns.RcodeNotImplemented, ecsScope: -1}},
		{"no question is FORMERR", &mdns.Msg{MsgHdr: mdns.MsgHdr{Id: 7}}, nil, protoUDP,
			want{rcode: mdns.RcodeFormatError, ecsScope: -1}},
		{"two questions is FORMERR", func() *mdns.Msg {
			m := query(zone, mdns.TypeSOA)
			m.Question = append(m.Question, m.Question[0])
			return m
		}(), nil, protoUDP, want{rcode: mdns.RcodeFormatError, ecsScope: -1}},
		{"two OPT records is FORMERR", func() *mdns.Msg {
			m := query(zone, mdns.TypeSOA, edns(1232))
			m.Extra = append(m.Extra, m.Extra[0])
			return m
		}(), nil, protoUDP, want{rcode: mdns.RcodeFormatError, opt: true, ecsScope: -1}},
		{"EDNS version 1 is BADVERS", func() *mdns.Msg {
			m := query(zone, mdns.TypeSOA, edns(1232))
			m.IsEdns0().SetVersion(1)
			return m
		}(), nil, protoUDP, want{rcode: mdns.RcodeBadVers, opt: true, ecsScope: -1}},
		{"response is not answered", func() *mdns.Msg { m := query(zone, mdns.TypeSOA); m.Response = true; return m }(), nil, protoUDP,
			want{nothing: true}},
		{"short packet is dropped", nil, []byte{1, 2, 3}, protoUDP, want{nothing: true}},
		{"truncated body is FORMERR", nil, func() []byte { b, _ := query("app."+zone, mdns.TypeA).Pack(); return b[:20] }(), protoUDP,
			want{rcode: mdns.RcodeFormatError, ecsScope: -1}},
		{"EDNS echoes OPT", query("app."+zone, mdns.TypeA, edns(4096)), nil, protoUDP,
			want{rcode: mdns.RcodeSuccess, aa: true, answer: []string{"A 192.0.2.1"}, opt: true, ecsScope: -1}},
		{"ECS steers and echoes scope", query("app."+zone, mdns.TypeA, ecs(1, "193.0.0.0", 24, 0)), nil, protoUDP,
			want{rcode: mdns.RcodeSuccess, aa: true, answer: []string{"A 198.51.100.1"}, opt: true, ecsScope: 8}},
		{"ECS outside Europe", query("app."+zone, mdns.TypeA, ecs(1, "8.8.8.0", 24, 0)), nil, protoUDP,
			want{rcode: mdns.RcodeSuccess, aa: true, answer: []string{"A 192.0.2.1"}, opt: true, ecsScope: 8}},
		{"ECS IPv6", query("app."+zone, mdns.TypeAAAA, ecs(2, "2001:db8:1::", 48, 0)), nil, protoUDP,
			want{rcode: mdns.RcodeSuccess, aa: true, answer: []string{"AAAA 2001:db8::1"}, opt: true, ecsScope: 0}},
		{"ECS on NXDOMAIN is echoed", query("nope."+zone, mdns.TypeA, ecs(1, "193.0.0.0", 24, 0)), nil, protoUDP,
			want{rcode: mdns.RcodeNameError, aa: true, ns: soa, opt: true, ecsScope: 0}},
		{"ECS source prefix 0 steers by resolver", query("client."+zone, mdns.TypeA, ecs(1, "0.0.0.0", 0, 0)), nil, protoUDP,
			want{rcode: mdns.RcodeSuccess, aa: true, answer: []string{"A 203.0.113.7"}, opt: true, ecsScope: 0}},
		{"ECS bits beyond prefix is FORMERR", nil, rawECS(1, 24, 0, []byte{193, 0, 0, 1}), protoUDP,
			want{rcode: mdns.RcodeFormatError, opt: true, ecsScope: -1}},
		{"ECS well-formed raw", nil, rawECS(1, 24, 0, []byte{193, 0, 0}), protoUDP,
			want{rcode: mdns.RcodeSuccess, aa: true, answer: []string{"A 198.51.100.1"}, opt: true, ecsScope: 8}},
		{"ECS non-zero scope in query is FORMERR", query("app."+zone, mdns.TypeA, ecs(1, "193.0.0.0", 24, 8)), nil, protoUDP,
			want{rcode: mdns.RcodeFormatError, opt: true, ecsScope: -1}},
		{"ECS prefix 33 for IPv4 is FORMERR", nil, rawECS(1, 33, 0, []byte{193, 0, 0, 0, 0}), protoUDP,
			want{rcode: mdns.RcodeFormatError, ecsScope: -1}},
		{"ECS unknown family is FORMERR", nil, rawECS(3, 8, 0, []byte{193}), protoUDP,
			want{rcode: mdns.RcodeFormatError, ecsScope: -1}},
		{"two ECS options is FORMERR", query("app."+zone, mdns.TypeA, ecs(1, "193.0.0.0", 24, 0), ecs(1, "193.0.0.0", 24, 0)), nil, protoUDP,
			want{rcode: mdns.RcodeFormatError, opt: true, ecsScope: -1}},
		{"large answer truncated at 512 without EDNS", query("big."+zone, mdns.TypeA), nil, protoUDP,
			want{rcode: mdns.RcodeSuccess, aa: true, tc: true, ecsScope: -1}},
		{"large answer not truncated over TCP", query("big."+zone, mdns.TypeA), nil, protoTCP,
			want{rcode: mdns.RcodeSuccess, aa: true, answer: slices.Repeat([]string{"A"}, 200), ecsScope: -1}},
		{"panicking steerer is SERVFAIL", query("panic."+zone, mdns.TypeA), nil, protoUDP,
			want{rcode: mdns.RcodeServerFailure, aa: true, ecsScope: -1}},
	}
	s, _ := newTestServer(t, testConfig())
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			pkt := tt.raw
			if pkt == nil {
				var err error
				if pkt, err = tt.req.Pack(); err != nil {
					t.Fatalf("packing query: %v", err)
				}
			}
			out := s.handle(pkt, tt.proto, resolver)
			if tt.want.nothing {
				if out != nil {
					t.Fatalf("got a response, want none")
				}
				return
			}
			if out == nil {
				t.Fatal("got no response")
			}
			r := new(mdns.Msg)
			if err := r.Unpack(out); err != nil {
				t.Fatalf("unpacking response: %v", err)
			}
			checkResponse(t, pkt, r, tt.want)
		})
	}
}

func checkResponse(t *testing.T, pkt []byte, r *mdns.Msg, w want) {
	t.Helper()
	if id := uint16(pkt[0])<<8 | uint16(pkt[1]); r.Id != id || !r.Response {
		t.Errorf("id %d response %v, want id %d response", r.Id, r.Response, id)
	}
	if r.Rcode != w.rcode {
		t.Errorf("rcode %s, want %s", mdns.RcodeToString[r.Rcode], mdns.RcodeToString[w.rcode])
	}
	if r.Authoritative != w.aa || r.Truncated != w.tc || r.RecursionAvailable {
		t.Errorf("AA %v TC %v RA %v, want AA %v TC %v RA false", r.Authoritative, r.Truncated, r.RecursionAvailable, w.aa, w.tc)
	}
	if w.tc { // a truncated answer holds whatever fitted
	} else if w.answer != nil && w.answer[0] == "A" { // count only
		if len(r.Answer) != len(w.answer) {
			t.Errorf("%d answers, want %d", len(r.Answer), len(w.answer))
		}
	} else if got := rrs(r.Answer); !slices.Equal(got, w.answer) {
		t.Errorf("answer %q, want %q", got, w.answer)
	}
	if got := rrs(r.Ns); !slices.Equal(got, w.ns) {
		t.Errorf("authority %q, want %q", got, w.ns)
	}
	if got := rrs(r.Extra); !slices.Equal(got, w.extra) {
		t.Errorf("additional %q, want %q", got, w.extra)
	}
	if (r.IsEdns0() != nil) != w.opt && w.rcode != mdns.RcodeFormatError {
		t.Errorf("OPT present %v, want %v", r.IsEdns0() != nil, w.opt)
	}
	e := ecsOf(r)
	switch {
	case w.ecsScope < 0 && e != nil:
		t.Errorf("unexpected ECS option %v", e)
	case w.ecsScope >= 0 && e == nil:
		t.Errorf("no ECS option, want scope %d", w.ecsScope)
	case e != nil && int(e.SourceScope) != w.ecsScope:
		t.Errorf("ECS scope %d, want %d", e.SourceScope, w.ecsScope)
	}
	for _, rr := range r.Ns {
		if soa, ok := rr.(*mdns.SOA); ok && soa.Hdr.Ttl != 10 {
			t.Errorf("negative SOA TTL %d, want min(DefaultTTL, Minimum) = 10", soa.Hdr.Ttl)
		}
	}
}

// rawECS builds an A query for app.z.example. whose OPT carries an ECS
// option written byte by byte, for options the library refuses to pack.
func rawECS(family uint16, source, scope uint8, addr []byte) []byte {
	m := query("app."+zone, mdns.TypeA)
	b, _ := m.Pack()
	b[11] = 1 // ARCOUNT
	data := append([]byte{byte(family >> 8), byte(family), source, scope}, addr...)
	opt := []byte{0, 0, 41, 0x04, 0xd0, 0, 0, 0, 0}
	rdlen := 4 + len(data)
	opt = append(opt, byte(rdlen>>8), byte(rdlen), 0, 8, byte(len(data)>>8), byte(len(data)))
	return append(append(b, opt...), data...)
}

func TestSteererSeesClient(t *testing.T) {
	t.Parallel()
	var got []Query
	s, err := New(testConfig(), SteererFunc(func(q Query) (Answer, bool) {
		got = append(got, q)
		return Answer{}, false
	}), nil)
	if err != nil {
		t.Fatal(err)
	}
	pkt, _ := query("X.Z.example.", mdns.TypeAAAA, ecs(1, "193.0.2.0", 24, 0)).Pack()
	s.handle(pkt, protoUDP, resolver)
	want := []Query{
		{Name: "x.z.example.", Type: TypeAAAA, Client: netip.MustParseAddr("193.0.2.0"), ClientPrefix: 24, Resolver: resolver},
		{Name: "x.z.example.", Type: TypeA, Client: netip.MustParseAddr("193.0.2.0"), ClientPrefix: 24, Resolver: resolver},
	}
	if !slices.Equal(got, want) {
		t.Errorf("steerer asked %+v, want %+v (both types, ECS client, lower-case name)", got, want)
	}
}

func TestHandleTruncatesToClientSize(t *testing.T) {
	t.Parallel()
	s, _ := newTestServer(t, testConfig())
	for _, size := range []uint16{512, 1000, 1232, 4096} {
		pkt, _ := query("big."+zone, mdns.TypeA, edns(size)).Pack()
		out := s.handle(pkt, protoUDP, resolver)
		limit := min(int(size), 1232)
		if len(out) > limit {
			t.Errorf("EDNS size %d: response %d bytes, want <= %d", size, len(out), limit)
		}
		r := new(mdns.Msg)
		if err := r.Unpack(out); err != nil || !r.Truncated || r.IsEdns0() == nil {
			t.Errorf("EDNS size %d: err %v, TC %v, OPT %v; want TC and OPT", size, err, r.Truncated, r.IsEdns0() != nil)
		}
	}
}

func TestNewRejectsBadConfig(t *testing.T) {
	t.Parallel()
	for name, mutate := range map[string]func(*Config){
		"no zone":            func(c *Config) { c.Zone = "" },
		"no NS":              func(c *Config) { c.NS = nil },
		"in-zone NS no glue": func(c *Config) { c.Glue = nil },
		"glue for stranger":  func(c *Config) { c.Glue["ns9.z.example."] = []netip.Addr{resolver} },
		"small UDP size":     func(c *Config) { c.MaxUDPSize = 100 },
		"bad RRL prefix":     func(c *Config) { c.RRL = RRL{IPv4PrefixLen: 40} },
		"bad RRL window":     func(c *Config) { c.RRL = RRL{Window: -time.Second} },
		"missing DNSSEC key": func(c *Config) { c.DNSSEC.KeyFiles = []string{"/nonexistent/Kz.example.+013+00001"} },
		"negative sockets":   func(c *Config) { c.UDPSockets = -1 },
	} {
		c := testConfig()
		mutate(&c)
		if _, err := New(c, SteererFunc(testSteerer), nil); err == nil {
			t.Errorf("%s: New succeeded, want an error", name)
		}
	}
	if _, err := New(testConfig(), nil, nil); err == nil {
		t.Error("nil steerer: New succeeded")
	}
}

func TestMetricsRegistered(t *testing.T) {
	t.Parallel()
	s, reg := newTestServer(t, testConfig())
	pkt, _ := query("app."+zone, mdns.TypeA).Pack()
	s.handle(pkt, protoUDP, resolver)
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, mf := range mfs {
		names = append(names, mf.GetName())
	}
	for _, n := range []string{
		"meridian_glb_dns_requests_total", "meridian_glb_dns_responses_total",
		"meridian_glb_dns_request_duration_seconds", "meridian_glb_dns_rrl_dropped_total",
		"meridian_glb_dns_truncated_total",
	} {
		if !slices.Contains(names, n) {
			t.Errorf("metric %s not registered (have %s)", n, strings.Join(names, ", "))
		}
	}
	if _, err := New(testConfig(), SteererFunc(testSteerer), reg); err == nil {
		t.Error("registering twice on one registry succeeded")
	}
	_ = fmt.Sprint()
}
