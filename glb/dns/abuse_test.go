package dns

import (
	"net"
	"net/netip"
	"testing"
	"time"

	mdns "github.com/miekg/dns"

	"meridian.dev/meridian/internal/testbin"
)

// udpFrom is a UDP socket bound to a loopback source address, so a test
// can be two clients in different /24s.
func udpFrom(t *testing.T, src string) *net.UDPConn {
	t.Helper()
	c, err := net.ListenUDP("udp", net.UDPAddrFromAddrPort(netip.AddrPortFrom(netip.MustParseAddr(src), 0)))
	if err != nil {
		t.Fatalf("binding a UDP socket on %s: %v", src, err)
	}
	t.Cleanup(func() { _ = c.Close() })
	return c
}

// exchangeUDP sends q from c to addr and reads one reply.
func exchangeUDP(t *testing.T, c *net.UDPConn, addr string, q *mdns.Msg) (*mdns.Msg, int, int) {
	t.Helper()
	pkt, err := q.Pack()
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.WriteToUDPAddrPort(pkt, netip.MustParseAddrPort(addr)); err != nil {
		t.Fatal(err)
	}
	return readReply(t, c, len(pkt))
}

func readReply(t *testing.T, c *net.UDPConn, qlen int) (*mdns.Msg, int, int) {
	t.Helper()
	buf := make([]byte, 65535)
	_ = c.SetReadDeadline(time.Now().Add(5 * time.Second))
	n, err := c.Read(buf)
	if err != nil {
		t.Fatalf("no reply: %v", err)
	}
	r := new(mdns.Msg)
	if err := r.Unpack(buf[:n]); err != nil {
		t.Fatalf("reply does not parse: %v", err)
	}
	return r, qlen, n
}

// A flood from one source over real UDP is limited — most responses
// dropped, every other limited one slipped as a truncated reply — while a
// client in another /24 is answered in full, and the flooder is still
// answered over TCP, which is not limited.
func TestRRLLimitsAFloodFromOneSource(t *testing.T) {
	t.Parallel()
	cfg := testConfig()
	cfg.RRL = RRL{ResponsesPerSecond: 5, Burst: 10, Slip: 2, Window: 15 * time.Second}
	_, addr, reg := startServerRegistry(t, cfg)
	flooder := udpFrom(t, "127.0.0.1")
	const flood = 300
	start := time.Now()
	for i := range flood {
		q := query("app."+zone, mdns.TypeA)
		q.Id = uint16(i)
		pkt, _ := q.Pack()
		if _, err := flooder.WriteToUDPAddrPort(pkt, netip.MustParseAddrPort(addr)); err != nil {
			t.Fatal(err)
		}
		if (i+1)%50 == 0 { // in waves the socket buffers hold
			testbin.Eventually(t, "the wave read", 10*time.Second, func() bool {
				n, _ := testbin.MetricIfAny(t, reg, "meridian_glb_dns_requests_total", map[string]string{"proto": "udp", "type": "A"})
				return n == float64(i+1)
			})
		}
	}
	// Every query is decided: answered (in full or slipped) or dropped.
	var answered, dropped float64
	testbin.Eventually(t, "every flood query answered or dropped", 10*time.Second, func() bool {
		answered, _ = testbin.MetricIfAny(t, reg, "meridian_glb_dns_responses_total", map[string]string{"rcode": "NOERROR"})
		dropped = testbin.Metric(t, reg, "meridian_glb_dns_rrl_dropped_total", nil) -
			testbin.Metric(t, reg, "meridian_glb_dns_rrl_slipped_total", nil)
		return answered+dropped == flood
	})
	elapsed := time.Since(start)
	full, slipped := 0, 0
	for range int(answered) {
		r, _, _ := readReply(t, flooder, 0)
		switch {
		case r.Truncated && len(r.Answer) == 0:
			slipped++
		case !r.Truncated && len(r.Answer) == 1:
			full++
		default:
			t.Fatalf("a reply neither full nor slipped: %v", r)
		}
	}
	maxFull := 10 + int(5*elapsed.Seconds()) + 1 // the burst, and what the rate refilled
	t.Logf("flood of %d from one /24 in %v: %d answered in full, %d slipped (TC), %.0f dropped", flood, elapsed, full, slipped, dropped)
	if full < 10 || full > maxFull {
		t.Errorf("%d full answers, want the burst of 10 up to %d", full, maxFull)
	}
	if limited := flood - full; slipped < limited/2-1 || slipped > limited/2+1 || dropped < float64(limited/2-1) {
		t.Errorf("%d limited: %d slipped and %.0f dropped, want about half each (slip 2)", limited, slipped, dropped)
	}
	if got := testbin.Metric(t, reg, "meridian_glb_dns_rrl_slipped_total", nil); int(got) != slipped {
		t.Errorf("meridian_glb_dns_rrl_slipped_total %v, the client saw %d", got, slipped)
	}
	if got := testbin.Metric(t, reg, "meridian_glb_dns_rrl_networks", nil); got != 1 {
		t.Errorf("meridian_glb_dns_rrl_networks %v, want 1", got)
	}

	// Another network is served normally meanwhile.
	other := udpFrom(t, "127.0.1.1")
	for range 5 {
		r, _, _ := exchangeUDP(t, other, addr, query("app."+zone, mdns.TypeA))
		if r.Truncated || len(r.Answer) != 1 {
			t.Fatalf("a client in another /24 was limited: %v", r)
		}
	}
	// The flooder's network is still limited (its debt), but over TCP it is answered.
	c := &mdns.Client{Net: "tcp", Timeout: 2 * time.Second}
	if r, _, err := c.Exchange(query("app."+zone, mdns.TypeA), addr); err != nil || len(r.Answer) != 1 {
		t.Fatalf("TCP from the flooding network: %v %v", r, err)
	}
}

// amplification is one query's response size over its size, over real
// UDP.
type amplification struct {
	name  string
	q     *mdns.Msg
	bound float64 // the most response bytes per query byte allowed
	check func(t *testing.T, r *mdns.Msg)
}

func measureAmplification(t *testing.T, addr string, cases []amplification) {
	t.Helper()
	c := udpFrom(t, "127.0.0.1")
	for _, tc := range cases {
		r, qn, rn := exchangeUDP(t, c, addr, tc.q)
		ratio := float64(rn) / float64(qn)
		t.Logf("%-22s query %4d B  response %4d B  amplification %5.2fx (bound %.1fx)  rcode %s TC %v answers %d",
			tc.name, qn, rn, ratio, tc.bound, mdns.RcodeToString[r.Rcode], r.Truncated, len(r.Answer))
		if ratio > tc.bound {
			t.Errorf("%s: amplification %.2fx is over the bound %.1fx", tc.name, ratio, tc.bound)
		}
		if rn > DefaultMaxUDPSize {
			t.Errorf("%s: a %d-byte UDP response, over MaxUDPSize %d", tc.name, rn, DefaultMaxUDPSize)
		}
		if tc.check != nil {
			tc.check(t, r)
		}
	}
}

// rfc8482 checks that ANY got the minimal answer: one HINFO "RFC8482"
// (and its signature on a signed zone).
func rfc8482(t *testing.T, r *mdns.Msg) {
	var records []mdns.RR
	for _, rr := range r.Answer {
		if rr.Header().Rrtype != mdns.TypeRRSIG {
			records = append(records, rr)
		}
	}
	if len(records) != 1 {
		t.Fatalf("ANY: %d answers, want one HINFO", len(records))
	}
	if h, ok := records[0].(*mdns.HINFO); !ok || h.Cpu != "RFC8482" {
		t.Errorf("ANY answered %v, want HINFO \"RFC8482\"", records[0])
	}
}

func truncatedAtLimit(t *testing.T, r *mdns.Msg) {
	if !r.Truncated {
		t.Error("a 200-record answer over UDP is not truncated")
	}
}

// Response bytes ÷ query bytes over real UDP for the queries reflection
// attacks use — ANY, a name with many records, NXDOMAIN — each asking for
// a 4096-byte buffer. The bounds are the ones glb/dns/README.md documents.
func TestAmplification(t *testing.T) {
	t.Parallel()
	cfg := testConfig() // rate limiting off: this measures one answer
	_, addr := startServer(t, cfg)
	measureAmplification(t, addr, []amplification{
		{"ANY", query("app."+zone, mdns.TypeANY, edns(4096)), 2.5, rfc8482},
		{"ANY (no EDNS)", query("app."+zone, mdns.TypeANY), 2.5, rfc8482},
		{"NXDOMAIN", query("nope."+zone, mdns.TypeA, edns(4096)), 3, nil},
		{"A", query("app."+zone, mdns.TypeA, edns(4096)), 2, nil},
		{"NS with glue", query(zone, mdns.TypeNS, edns(4096)), 4, nil},
		{"200 A records", query("big."+zone, mdns.TypeA, edns(4096)), DefaultMaxUDPSize / 40.0, truncatedAtLimit},
	})
}
