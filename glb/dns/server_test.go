package dns

import (
	"context"
	"errors"
	"net"
	"net/netip"
	"os/exec"
	"strconv"
	"strings"
	"testing"
	"time"

	mdns "github.com/miekg/dns"
	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"

	"meridian.dev/meridian/internal/testbin"
)

// startServer runs a Server on 127.0.0.1:0 until the test ends and returns
// its address, the same port for UDP and TCP.
func startServer(t *testing.T, cfg Config) (*Server, string) {
	t.Helper()
	s, addr, _ := startServerRegistry(t, cfg)
	return s, addr
}

// startServerRegistry is startServer that also returns the registry of
// the server's metrics.
func startServerRegistry(t *testing.T, cfg Config) (*Server, string, *prometheus.Registry) {
	t.Helper()
	s, reg := newTestServer(t, cfg)
	ctx, cancel := context.WithCancel(context.Background())
	errc := make(chan error, 1)
	go func() { errc <- s.ListenAndServe(ctx, "127.0.0.1:0") }()
	actx, acancel := context.WithTimeout(ctx, 5*time.Second)
	defer acancel()
	ap, err := s.Addr(actx)
	if err != nil {
		cancel()
		t.Fatalf("server did not bind: %v", err)
	}
	t.Cleanup(func() {
		cancel()
		select {
		case err := <-errc:
			if err != nil {
				t.Errorf("ListenAndServe: %v", err)
			}
		case <-time.After(5 * time.Second):
			t.Error("server did not stop")
		}
	})
	return s, ap.String(), reg
}

func TestServerUDPAndTCP(t *testing.T) {
	t.Parallel()
	s, addr := startServer(t, testConfig())
	if s.UDPAddr().String() != addr || s.TCPAddr().String() != addr {
		t.Fatalf("UDP %v TCP %v, want both %s", s.UDPAddr(), s.TCPAddr(), addr)
	}
	tests := []struct {
		name  string
		req   *mdns.Msg
		rcode int
		n     int
		tc    bool
	}{
		{"A", query("app."+zone, mdns.TypeA), mdns.RcodeSuccess, 1, false},
		{"AAAA", query("app."+zone, mdns.TypeAAAA), mdns.RcodeSuccess, 1, false},
		{"SOA", query(zone, mdns.TypeSOA), mdns.RcodeSuccess, 1, false},
		{"NS", query(zone, mdns.TypeNS), mdns.RcodeSuccess, 2, false},
		{"NXDOMAIN", query("nope."+zone, mdns.TypeA), mdns.RcodeNameError, 0, false},
		{"REFUSED", query("example.org.", mdns.TypeA), mdns.RcodeRefused, 0, false},
		{"ECS", query("app."+zone, mdns.TypeA, ecs(1, "193.0.0.0", 24, 0)), mdns.RcodeSuccess, 1, false},
		{"big", query("big."+zone, mdns.TypeA, edns(1232)), mdns.RcodeSuccess, 200, true},
	}
	for _, proto := range []string{"udp", "tcp"} {
		c := &mdns.Client{Net: proto, Timeout: 2 * time.Second}
		for _, tt := range tests {
			t.Run(proto+"/"+tt.name, func(t *testing.T) {
				r, _, err := c.Exchange(tt.req, addr)
				if err != nil {
					t.Fatalf("exchange: %v", err)
				}
				if r.Rcode != tt.rcode || !r.Response || r.Id != tt.req.Id {
					t.Fatalf("rcode %s, want %s", mdns.RcodeToString[r.Rcode], mdns.RcodeToString[tt.rcode])
				}
				wantTC := tt.tc && proto == "udp"
				if r.Truncated != wantTC {
					t.Fatalf("TC %v, want %v", r.Truncated, wantTC)
				}
				if !wantTC && len(r.Answer) != tt.n {
					t.Fatalf("%d answers, want %d: %v", len(r.Answer), tt.n, r.Answer)
				}
			})
		}
	}
	// dns.Exchange, the one-shot UDP form, too.
	r, err := mdns.Exchange(query("app."+zone, mdns.TypeA), addr)
	if err != nil || len(r.Answer) != 1 || !r.Authoritative {
		t.Fatalf("dns.Exchange: %v %v", err, r)
	}
}

func TestServerTCPPipelined(t *testing.T) {
	t.Parallel()
	_, addr := startServer(t, testConfig())
	conn, err := mdns.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = conn.Close() }()
	for i := range 5 {
		q := query("app."+zone, mdns.TypeA)
		q.Id = uint16(100 + i)
		if err := conn.WriteMsg(q); err != nil {
			t.Fatal(err)
		}
	}
	for i := range 5 {
		r, err := conn.ReadMsg()
		if err != nil || r.Id != uint16(100+i) || len(r.Answer) != 1 {
			t.Fatalf("reply %d: %v %v", i, err, r)
		}
	}
}

// TestServerMalformedUDP sends garbage and truncated packets raw over UDP:
// each gets FORMERR or nothing, and the server keeps answering.
func TestServerMalformedUDP(t *testing.T) {
	t.Parallel()
	_, addr := startServer(t, testConfig())
	good, _ := query("app."+zone, mdns.TypeA, edns(1232)).Pack()
	packets := map[string][]byte{
		"empty":          {},
		"one byte":       {0},
		"short header":   good[:11],
		"header only":    good[:12],
		"cut question":   good[:20],
		"cut OPT":        good[:len(good)-3],
		"garbage":        []byte("\x12\x34\x01\x00\x00\x01\x00\x00\x00\x00\x00\x00\xff\xff\xff\xff\xff"),
		"pointer loop":   append(append([]byte{}, good[:12]...), 0xc0, 0x0c, 0, 1, 0, 1),
		"huge counts":    append([]byte{0xab, 0xcd, 0x01, 0x00, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff}, good[12:]...),
		"a response":     append([]byte{0, 1, 0x80, 0}, good[4:]...),
		"bad ECS family": rawECS(9, 8, 0, []byte{1}),
	}
	conn, err := net.Dial("udp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = conn.Close() }()
	buf := make([]byte, 65535)
	for name, pkt := range packets {
		if _, err := conn.Write(pkt); err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		_ = conn.SetReadDeadline(time.Now().Add(200 * time.Millisecond))
		n, err := conn.Read(buf)
		if err != nil {
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				continue // dropped: fine
			}
			t.Fatalf("%s: read: %v", name, err)
		}
		if n < 12 {
			t.Fatalf("%s: %d-byte reply", name, n)
		}
		if rcode := buf[3] & 0xF; rcode != mdns.RcodeFormatError {
			t.Errorf("%s: rcode %d, want FORMERR", name, rcode)
		}
		if buf[2]&0x80 == 0 {
			t.Errorf("%s: reply without QR", name)
		}
	}
	r, err := mdns.Exchange(query("app."+zone, mdns.TypeA), addr)
	if err != nil || len(r.Answer) != 1 {
		t.Fatalf("server stopped answering after garbage: %v", err)
	}
}

// TestServerRRLFlood floods from one source: most responses are withheld,
// about every Slip-th one comes back truncated, TCP still answers.
func TestServerRRLFlood(t *testing.T) {
	t.Parallel()
	cfg := testConfig()
	cfg.RRL = RRL{ResponsesPerSecond: 5, Burst: 5, Slip: 2}
	s, addr := startServer(t, cfg)
	conn, err := net.Dial("udp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = conn.Close() }()
	const flood = 200
	q := query("app."+zone, mdns.TypeA)
	pkt, _ := q.Pack()
	for range flood {
		if _, err := conn.Write(pkt); err != nil {
			t.Fatal(err)
		}
	}
	full, truncated := 0, 0
	buf := make([]byte, 65535)
	for {
		_ = conn.SetReadDeadline(time.Now().Add(300 * time.Millisecond))
		n, err := conn.Read(buf)
		if err != nil {
			break
		}
		r := new(mdns.Msg)
		if err := r.Unpack(buf[:n]); err != nil {
			t.Fatal(err)
		}
		if r.Truncated {
			if len(r.Answer) != 0 {
				t.Errorf("slipped reply carries %d answers", len(r.Answer))
			}
			truncated++
		} else {
			full++
		}
	}
	// The flood takes well under a second: burst 5 plus a few refills.
	if full < 5 || full > 15 {
		t.Errorf("%d full responses to %d queries, want about the burst of 5", full, flood)
	}
	if truncated < 80 || truncated > 100 {
		t.Errorf("%d truncated (slipped) responses, want about half of the %d limited", truncated, flood-full)
	}
	var m dto.Metric
	if err := s.metrics.rrlDrops.Write(&m); err != nil {
		t.Fatal(err)
	}
	if dropped := m.GetCounter().GetValue(); int(dropped) != flood-full {
		t.Errorf("rrl_dropped_total %v, want %d", dropped, flood-full)
	}
	c := &mdns.Client{Net: "tcp", Timeout: 2 * time.Second}
	if r, _, err := c.Exchange(q, addr); err != nil || len(r.Answer) != 1 {
		t.Errorf("TCP during UDP rate limiting: %v %v", err, r)
	}
}

func TestShutdownStopsServing(t *testing.T) {
	t.Parallel()
	s, _ := newTestServer(t, testConfig())
	errc := make(chan error, 1)
	go func() { errc <- s.ListenAndServe(context.Background(), "127.0.0.1:0") }()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	ap, err := s.Addr(ctx)
	if err != nil {
		t.Fatal(err)
	}
	idle, err := net.Dial("tcp", ap.String()) // an idle TCP client must not hold shutdown
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = idle.Close() }()
	time.Sleep(50 * time.Millisecond)
	if err := s.Shutdown(ctx); err != nil {
		t.Fatalf("Shutdown: %v", err)
	}
	if err := <-errc; err != nil {
		t.Fatalf("ListenAndServe: %v", err)
	}
	c := &mdns.Client{Net: "tcp", Timeout: 300 * time.Millisecond}
	if _, _, err := c.Exchange(query(zone, mdns.TypeSOA), ap.String()); err == nil {
		t.Error("server still answers after Shutdown")
	}
}

// TestKdig queries the server with Knot's kdig, an independent client, with
// an ECS option, and checks the answer and the echoed CLIENT-SUBNET scope.
func TestKdig(t *testing.T) {
	t.Parallel()
	kdig, err := testbin.Kdig()
	if err != nil {
		testbin.Need(t, err)
	}
	_, addr := startServer(t, testConfig())
	ap := netip.MustParseAddrPort(addr)
	for _, proto := range []string{"+notcp", "+tcp"} {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		out, err := exec.CommandContext(ctx, kdig, "@"+ap.Addr().String(), "-p", strconv.Itoa(int(ap.Port())), proto,
			"+subnet=193.0.0.0/24", "app."+zone, "A").CombinedOutput()
		cancel()
		text := string(out)
		if err != nil {
			t.Fatalf("kdig %s: %v\n%s", proto, err, text)
		}
		if testing.Verbose() {
			t.Log(text)
		}
		for _, want := range []string{"status: NOERROR", "Flags: qr aa", "ANSWER: 1;", "198.51.100.1", "CLIENT-SUBNET: 193.0.0.0/24/8"} {
			if !strings.Contains(text, want) {
				t.Errorf("kdig %s output lacks %q:\n%s", proto, want, text)
			}
		}
		if strings.Contains(text, " ra;") || strings.Contains(text, " ra ") {
			t.Errorf("kdig %s: RA set:\n%s", proto, text)
		}
	}
}

// Several UDP sockets share the port (SO_REUSEPORT): clients from many
// source ports are spread over them and every one is answered; another
// socket of this user can join the port, so they really share it.
func TestServerUDPSocketsShareThePort(t *testing.T) {
	t.Parallel()
	cfg := testConfig()
	cfg.UDPSockets = 4
	s, addr := startServer(t, cfg)
	if len(s.udp) != 4 {
		t.Fatalf("%d UDP sockets, want 4", len(s.udp))
	}
	for i := range 32 {
		c := &mdns.Client{Net: "udp", Timeout: 2 * time.Second} // a new source port each time
		r, _, err := c.Exchange(query("app."+zone, mdns.TypeA), addr)
		if err != nil || r.Rcode != mdns.RcodeSuccess || len(r.Answer) != 1 {
			t.Fatalf("client %d: %v %v", i, r, err)
		}
	}
	ap := netip.MustParseAddrPort(addr)
	extra, err := listenUDP(ap, 1)
	if err != nil {
		t.Fatalf("a fifth socket could not join the port: %v", err)
	}
	_ = extra[0].Close()
}
