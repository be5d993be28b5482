package dns

import (
	"bytes"
	"context"
	"net"
	"net/netip"
	"runtime"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	mdns "github.com/miekg/dns"
	"github.com/prometheus/client_golang/prometheus"

	"meridian.dev/meridian/internal/testbin"
)

func cookie() msgOpt {
	return func(m *mdns.Msg) {
		o := m.IsEdns0()
		if o == nil {
			m.SetEdns0(1232, false)
			o = m.IsEdns0()
		}
		o.Option = append(o.Option, &mdns.EDNS0_COOKIE{Code: mdns.EDNS0COOKIE, Cookie: "0102030405060708"})
	}
}

func withDO() msgOpt {
	return func(m *mdns.Msg) {
		if o := m.IsEdns0(); o != nil {
			o.SetDo()
			return
		}
		m.SetEdns0(1232, true)
	}
}

func withFlags(rd, cd bool) msgOpt {
	return func(m *mdns.Msg) { m.RecursionDesired, m.CheckingDisabled = rd, cd }
}

// fastTaken says whether the precomputed path answers pkt.
func fastTaken(s *Server, pkt []byte, proto string) bool {
	var q fastQuery
	if !parseFast(pkt, &q) {
		return false
	}
	q.resolver = resolver
	var h fullHint
	_, ok := s.answerFast(pkt, &q, proto, make([]byte, 65535), &h)
	return ok
}

// lowerNames lower-cases the owner names of a message's records: the
// precomputed path points the answer's owner at the question, as sent,
// where the full path writes the lower-case name.
func lowerNames(t *testing.T, raw []byte) string {
	t.Helper()
	m := new(mdns.Msg)
	if err := m.Unpack(raw); err != nil {
		t.Fatalf("response does not parse: %v", err)
	}
	for _, rr := range m.Answer {
		rr.Header().Name = strings.ToLower(rr.Header().Name)
	}
	return m.String()
}

// The precomputed path answers exactly as the full path does: for every
// query, its response is the full path's message (byte for byte on the
// default build for lower-case queries; the letter case of the answer's
// owner aside), and it takes the queries it should.
func TestFastPathMatchesFullPath(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name string
		q    *mdns.Msg
		fast bool // over UDP, once the name is known
		tcp  bool // over TCP (default: as over UDP)
	}{
		{"A", query("app."+zone, mdns.TypeA), true, true},
		{"A EDNS", query("app."+zone, mdns.TypeA, edns(1232)), true, true},
		{"A EDNS 512", query("app."+zone, mdns.TypeA, edns(512), ecs(1, "193.0.0.0", 24, 0)), true, true},
		{"A ECS europe", query("app."+zone, mdns.TypeA, ecs(1, "193.0.0.0", 24, 0)), true, true},
		{"A ECS elsewhere", query("app."+zone, mdns.TypeA, ecs(1, "192.0.2.0", 24, 0)), true, true},
		{"A ECS /20", query("app."+zone, mdns.TypeA, ecs(1, "193.0.16.0", 20, 0)), true, true},
		{"A ECS /32", query("app."+zone, mdns.TypeA, ecs(1, "193.0.0.1", 32, 0)), true, true},
		{"A ECS v6", query("app."+zone, mdns.TypeA, ecs(2, "2001:db8::", 56, 0)), true, true},
		{"AAAA ECS v6", query("app."+zone, mdns.TypeAAAA, ecs(2, "2001:db8:1::", 48, 0)), true, true},
		{"A ECS and cookie", query("app."+zone, mdns.TypeA, ecs(1, "193.0.0.0", 24, 0), cookie()), true, true},
		{"A DO unsigned", query("app."+zone, mdns.TypeA, withDO(), ecs(1, "193.0.0.0", 24, 0)), true, true},
		{"A RD CD", query("app."+zone, mdns.TypeA, withFlags(true, true)), true, true},
		{"A v6 filtered", query("v4only."+zone, mdns.TypeA, ecs(1, "193.0.0.0", 24, 0)), true, true},
		{"A client echo", query("client."+zone, mdns.TypeA, ecs(1, "198.18.0.0", 15, 0)), true, true},
		{"A mixed case", query("ApP.Z.eXample.", mdns.TypeA, ecs(1, "193.0.0.0", 24, 0)), true, true},
		{"A big UDP (TC)", query("big."+zone, mdns.TypeA, edns(1232)), false, true},
		{"NODATA AAAA", query("v4only."+zone, mdns.TypeAAAA, ecs(1, "193.0.0.0", 24, 0)), false, false},
		{"NODATA empty", query("empty."+zone, mdns.TypeA), false, false},
		{"NXDOMAIN", query("nope."+zone, mdns.TypeA, ecs(1, "193.0.0.0", 24, 0)), false, false},
		{"SERVFAIL", query("panic."+zone, mdns.TypeA), false, false},
		{"apex A", query(zone, mdns.TypeA), false, false},
		{"glue A", query("ns1."+zone, mdns.TypeA), false, false},
		{"ECS source 0", query("app."+zone, mdns.TypeA, ecs(1, "0.0.0.0", 0, 0)), false, false},
		{"ECS bad scope", query("app."+zone, mdns.TypeA, ecs(1, "193.0.0.0", 24, 8)), false, false},
		{"ECS host bits", query("app."+zone, mdns.TypeA, ecs(1, "193.0.16.0", 20, 0)), false, false}, // with a bit set below
		{"MX", query("app."+zone, mdns.TypeMX), false, false},
		{"outside", query("app.example.org.", mdns.TypeA), false, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			pkt, err := tc.q.Pack()
			if err != nil {
				t.Fatal(err)
			}
			if tc.name == "ECS host bits" {
				pkt[len(pkt)-1] |= 1 // the last address byte, beyond the /20
			}
			for _, proto := range []string{protoUDP, protoTCP} {
				fast, _ := newTestServer(t, testConfig())
				full, _ := newTestServer(t, testConfig())
				buf := make([]byte, 65535)
				for i := range 3 { // the first query teaches the name
					got := fast.handleInto(pkt, proto, resolver, buf)
					want := full.handleFull(pkt, proto, resolver, nil)
					// The same bytes on the default build (the dnsv2 library does
					// not compress the answer's owner), else the same message.
					if !bytes.Equal(got, want) && lowerNames(t, got) != lowerNames(t, want) {
						t.Fatalf("%s query %d:\n%s\nwant\n%s", proto, i, lowerNames(t, got), lowerNames(t, want))
					}
				}
				wantFast := tc.fast
				if proto == protoTCP {
					wantFast = tc.tcp
				}
				if got := fastTaken(fast, pkt, proto); got != wantFast {
					t.Errorf("%s: precomputed path taken %v, want %v", proto, got, wantFast)
				}
			}
		})
	}
}

// Rate limiting applies on the precomputed path as on the full path: the
// same sequence of sent, slipped (TC, no records, the OPT with ECS) and
// dropped responses, byte for byte, and the same metrics.
func TestFastPathRRL(t *testing.T) {
	t.Parallel()
	cfg := testConfig()
	cfg.RRL = RRL{ResponsesPerSecond: 0.001, Burst: 2, Slip: 2}
	fast, freg := newTestServer(t, cfg)
	full, _ := newTestServer(t, cfg)
	pkt, _ := query("app."+zone, mdns.TypeA, ecs(1, "193.0.0.0", 24, 0)).Pack()
	fast.handleInto(pkt, protoUDP, netip.MustParseAddr("198.51.100.1"), make([]byte, 1232)) // learn the name, from elsewhere
	var sent, slipped, dropped int
	for i := range 8 {
		got := fast.handleInto(pkt, protoUDP, resolver, make([]byte, 1232))
		want := full.handleFull(pkt, protoUDP, resolver, nil)
		if (got == nil) != (want == nil) || got != nil && !bytes.Equal(got, want) && lowerNames(t, got) != lowerNames(t, want) {
			t.Fatalf("query %d: %x, want %x", i, got, want)
		}
		switch {
		case got == nil:
			dropped++
		case got[2]&0x02 != 0:
			slipped++
		default:
			sent++
		}
	}
	if sent != 2 || slipped != 3 || dropped != 3 {
		t.Errorf("sent %d slipped %d dropped %d, want 2 3 3", sent, slipped, dropped)
	}
	for name, want := range map[string]float64{
		"meridian_glb_dns_rrl_dropped_total": 6, "meridian_glb_dns_rrl_slipped_total": 3, "meridian_glb_dns_truncated_total": 3,
	} {
		if got, _ := testbin.MetricIfAny(t, freg, name, nil); got != want {
			t.Errorf("%s = %v, want %v", name, got, want)
		}
	}
}

// A steered answer on the precomputed path allocates nothing: parsing the
// question and ECS, the Steerer (this one allocates nothing either), the
// lookup, rate limiting and the metrics. AllocsPerRun fails this test if
// an allocation comes back.
func TestFastPathAllocatesNothing(t *testing.T) {
	cfg := testConfig()
	cfg.RRL = RRL{ResponsesPerSecond: 1e9, Burst: 1e9} // on, never limiting
	v4, v6 := []netip.Addr{netip.MustParseAddr("192.0.2.1")}, []netip.Addr{netip.MustParseAddr("2001:db8::1")}
	steer := SteererFunc(func(q Query) (Answer, bool) {
		if q.Type == TypeAAAA {
			return Answer{Addrs: v6, TTL: 20, Scope: 24}, true
		}
		return Answer{Addrs: v4, TTL: 20, Scope: 24}, true
	})
	s, err := New(cfg, steer, prometheus.NewRegistry())
	if err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 1232)
	for _, tc := range []struct {
		name  string
		q     *mdns.Msg
		proto string
	}{
		{"A ECS", query("app."+zone, mdns.TypeA, ecs(1, "193.0.0.0", 24, 0)), protoUDP},
		{"AAAA ECS v6", query("app."+zone, mdns.TypeAAAA, ecs(2, "2001:db8:1::", 48, 0)), protoUDP},
		{"A no EDNS", query("app."+zone, mdns.TypeA), protoUDP},
		{"A ECS TCP", query("app."+zone, mdns.TypeA, ecs(1, "193.0.0.0", 24, 0)), protoTCP},
	} {
		pkt, _ := tc.q.Pack()
		if s.handleInto(pkt, tc.proto, resolver, buf) == nil {
			t.Fatalf("%s: no answer", tc.name)
		}
		if !fastTaken(s, pkt, tc.proto) {
			t.Fatalf("%s: not on the precomputed path", tc.name)
		}
		if n := testing.AllocsPerRun(1000, func() {
			if s.handleInto(pkt, tc.proto, resolver, buf) == nil {
				panic("no answer")
			}
		}); n != 0 {
			t.Errorf("%s: %v allocations per query, want 0", tc.name, n)
		}
	}
}

// The whole UDP loop — read, answer, write — allocates nothing per query:
// the allocations of the process (server and this client) over many
// round trips on a real socket.
func TestServeUDPAllocatesNothing(t *testing.T) {
	v4 := []netip.Addr{netip.MustParseAddr("192.0.2.1")}
	cfg := testConfig()
	cfg.UDPSockets, cfg.UDPWorkers = 1, 1
	s, err := New(cfg, SteererFunc(func(Query) (Answer, bool) { return Answer{Addrs: v4, Scope: 24}, true }), nil)
	if err != nil {
		t.Fatal(err)
	}
	addr := serve(t, s)
	c, err := net.DialUDP("udp", nil, net.UDPAddrFromAddrPort(netip.MustParseAddrPort(addr)))
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = c.Close() }()
	_ = c.SetDeadline(time.Now().Add(time.Minute))
	pkt, _ := query("app."+zone, mdns.TypeA, ecs(1, "193.0.0.0", 24, 0)).Pack()
	in := make([]byte, 1232)
	roundTrip := func() {
		if _, err := c.Write(pkt); err != nil {
			panic(err)
		}
		if n, err := c.Read(in); err != nil || n == 0 {
			panic(err)
		}
	}
	for range 10 {
		roundTrip()
	}
	if n := testing.AllocsPerRun(2000, roundTrip); n != 0 {
		t.Errorf("%v allocations per query over UDP, want 0", n)
	}
}

// With the default of one socket per GOMAXPROCS (at least two here), the
// server answers on the port from every socket: clients from many source
// ports are spread over them by the kernel.
func TestServerAnswersFromEverySocket(t *testing.T) {
	t.Parallel()
	n := max(runtime.GOMAXPROCS(0), 2)
	cfg := testConfig()
	if runtime.GOMAXPROCS(0) < 2 {
		cfg.UDPSockets = n // a one-core machine still tests several
	}
	s, addr := startServer(t, cfg)
	if len(s.udp) != n {
		t.Fatalf("%d UDP sockets, want %d (GOMAXPROCS)", len(s.udp), n)
	}
	for i := 0; ; i++ {
		c := &mdns.Client{Net: "udp", Timeout: 2 * time.Second} // a new source port each time
		r, _, err := c.Exchange(query("app."+zone, mdns.TypeA, ecs(1, "193.0.0.0", 24, 0)), addr)
		if err != nil || r.Rcode != mdns.RcodeSuccess || len(r.Answer) != 1 {
			t.Fatalf("client %d: %v %v", i, r, err)
		}
		all := true
		for j := range s.udpSent {
			all = all && s.udpSent[j].Load() > 0
		}
		if all && i >= 16 {
			break
		}
		if i == 500 {
			t.Fatalf("after %d clients some socket never answered", i)
		}
	}
}

// serve runs s on 127.0.0.1:0 until the test ends and returns its address.
func serve(t *testing.T, s *Server) string {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { _ = s.ListenAndServe(ctx, "127.0.0.1:0"); close(done) }()
	t.Cleanup(func() { cancel(); <-done })
	actx, acancel := context.WithTimeout(ctx, 5*time.Second)
	defer acancel()
	ap, err := s.Addr(actx)
	if err != nil {
		t.Fatalf("server did not bind: %v", err)
	}
	return ap.String()
}

// Many queries in flight from one client arrive together and are read
// and answered in batches (recvmmsg and sendmmsg on Linux): every query
// gets its own answer — steered, NXDOMAIN or FORMERR — and a packet that
// is itself a response gets none.
func TestServeUDPBatches(t *testing.T) {
	t.Parallel()
	_, addr := startServer(t, testConfig())
	c, err := net.DialUDP("udp", nil, net.UDPAddrFromAddrPort(netip.MustParseAddrPort(addr)))
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = c.Close() }()
	const n = 200
	want := map[uint16]int{} // ID → rcode
	for i := range n {
		var m *mdns.Msg
		switch i % 4 {
		case 0, 1:
			m = query("app."+zone, mdns.TypeA, ecs(1, "193.0.0.0", 24, 0))
		case 2:
			m = query("nope."+zone, mdns.TypeA)
		case 3:
			m = query("app."+zone, mdns.TypeA)
			m.Response = true // never answered
		}
		m.Id = uint16(1000 + i)
		pkt, _ := m.Pack()
		if !m.Response {
			want[m.Id] = map[bool]int{true: mdns.RcodeNameError, false: mdns.RcodeSuccess}[i%4 == 2]
		}
		if _, err := c.Write(pkt); err != nil {
			t.Fatal(err)
		}
	}
	buf := make([]byte, 65535)
	_ = c.SetReadDeadline(time.Now().Add(10 * time.Second))
	for len(want) > 0 {
		k, err := c.Read(buf)
		if err != nil {
			t.Fatalf("%d answers missing: %v", len(want), err)
		}
		r := new(mdns.Msg)
		if err := r.Unpack(buf[:k]); err != nil {
			t.Fatal(err)
		}
		rc, ok := want[r.Id]
		if !ok {
			t.Fatalf("unexpected answer %d", r.Id)
		}
		if r.Rcode != rc || (rc == mdns.RcodeSuccess) != (len(r.Answer) == 1) {
			t.Fatalf("answer %d: %v", r.Id, r)
		}
		delete(want, r.Id)
	}
}

// The plain read loop (a datagram per system call, where recvmmsg is not
// to be had) answers too.
func TestServeUDPPlain(t *testing.T) {
	t.Parallel()
	s, _ := newTestServer(t, testConfig())
	conns, err := listenUDP(netip.MustParseAddrPort("127.0.0.1:0"), 1)
	if err != nil {
		t.Fatal(err)
	}
	var sent atomic.Uint64
	done := make(chan struct{})
	go func() { s.serveUDPPlain(conns[0], &sent); close(done) }()
	r, _, err := (&mdns.Client{Timeout: 5 * time.Second}).Exchange(query("app."+zone, mdns.TypeA), conns[0].LocalAddr().String())
	if err != nil || len(r.Answer) != 1 || sent.Load() != 1 {
		t.Errorf("answer %v, %v; %d sent", r, err, sent.Load())
	}
	_ = s.Shutdown(context.Background())
	_ = conns[0].Close()
	<-done
}
