package resolver

import (
	"context"
	"net"
	"net/netip"
	"sync"
	"testing"
	"time"

	"github.com/miekg/dns"

	"meridian.dev/meridian/internal/testbin"
)

const zone = "infer.meridian.example."

// upstream is a small authoritative server for zone on loopback, UDP and
// TCP on one port, standing in for the balancer: it answers A questions
// with answer(subnet), echoes ECS with the source prefix as scope (as the
// balancer does for a /24 it locates), and records what it was asked.
type upstream struct {
	addr netip.AddrPort
	ttl  uint32

	mu      sync.Mutex
	answer  func(subnet netip.Prefix) netip.Addr
	queries []seen
	udp     *dns.Server
	tcp     *dns.Server
}

// seen is one question the upstream was asked.
type seen struct {
	name   string
	qtype  uint16
	subnet netip.Prefix // zero without ECS
	rd     bool
	at     time.Time
}

func startUpstream(t *testing.T, ttl uint32, answer func(netip.Prefix) netip.Addr) *upstream {
	t.Helper()
	u := &upstream{ttl: ttl, answer: answer}
	pc, l, err := listenBoth("127.0.0.1")
	if err != nil {
		t.Fatal(err)
	}
	u.addr = netip.MustParseAddrPort(pc.LocalAddr().String())
	u.udp = &dns.Server{PacketConn: pc, Handler: u}
	u.tcp = &dns.Server{Listener: l, Handler: u}
	started := make(chan struct{}, 2)
	u.udp.NotifyStartedFunc = func() { started <- struct{}{} }
	u.tcp.NotifyStartedFunc = func() { started <- struct{}{} }
	go func() { _ = u.udp.ActivateAndServe() }()
	go func() { _ = u.tcp.ActivateAndServe() }()
	<-started
	<-started
	t.Cleanup(u.stop)
	return u
}

// stop shuts the upstream down; its port then refuses or drops queries.
func (u *upstream) stop() {
	_ = u.udp.Shutdown()
	_ = u.tcp.Shutdown()
}

// asked returns the A questions for name seen so far.
func (u *upstream) asked(name string) []seen {
	u.mu.Lock()
	defer u.mu.Unlock()
	var out []seen
	for _, q := range u.queries {
		if q.name == dns.Fqdn(name) && q.qtype == dns.TypeA {
			out = append(out, q)
		}
	}
	return out
}

func (u *upstream) ServeDNS(w dns.ResponseWriter, req *dns.Msg) {
	m := new(dns.Msg)
	m.SetReply(req)
	m.Authoritative = true
	if len(req.Question) != 1 {
		m.Rcode = dns.RcodeFormatError
		_ = w.WriteMsg(m)
		return
	}
	q := req.Question[0]
	s := seen{name: dns.CanonicalName(q.Name), qtype: q.Qtype, rd: req.RecursionDesired, at: time.Now()}
	var ecs *dns.EDNS0_SUBNET
	if opt := req.IsEdns0(); opt != nil {
		m.SetEdns0(1232, false)
		for _, o := range opt.Option {
			if e, ok := o.(*dns.EDNS0_SUBNET); ok {
				a, _ := netip.AddrFromSlice(e.Address)
				s.subnet = netip.PrefixFrom(a.Unmap(), int(e.SourceNetmask)).Masked()
				echo := *e
				echo.SourceScope = e.SourceNetmask
				ecs = &echo
			}
		}
		if ecs != nil {
			m.IsEdns0().Option = append(m.IsEdns0().Option, ecs)
		}
	}
	u.mu.Lock()
	u.queries = append(u.queries, s)
	answer := u.answer
	u.mu.Unlock()
	soa := &dns.SOA{Hdr: dns.RR_Header{Name: zone, Rrtype: dns.TypeSOA, Class: dns.ClassINET, Ttl: u.ttl},
		Ns: "ns." + zone, Mbox: "hostmaster." + zone, Serial: 1, Refresh: 60, Retry: 60, Expire: 600, Minttl: u.ttl}
	switch {
	case !dns.IsSubDomain(zone, s.name):
		m.Rcode = dns.RcodeRefused
	case s.name == zone && q.Qtype == dns.TypeNS:
		m.Answer = append(m.Answer, &dns.NS{Hdr: dns.RR_Header{Name: zone, Rrtype: dns.TypeNS, Class: dns.ClassINET, Ttl: u.ttl}, Ns: "ns." + zone})
	case s.name == zone && q.Qtype == dns.TypeSOA:
		m.Answer = append(m.Answer, soa)
	case q.Qtype == dns.TypeA && s.name != zone:
		m.Answer = append(m.Answer, &dns.A{Hdr: dns.RR_Header{Name: q.Name, Rrtype: dns.TypeA, Class: dns.ClassINET, Ttl: u.ttl},
			A: answer(s.subnet).AsSlice()})
	default:
		m.Ns = append(m.Ns, soa)
	}
	_ = w.WriteMsg(m)
}

// startResolver runs Unbound in front of up until the test ends.
func startResolver(t *testing.T, up netip.AddrPort, o Options) *Resolver {
	t.Helper()
	if _, err := testbin.Unbound(); err != nil {
		testbin.Need(t, err)
	}
	o.Zone = zone
	o.Upstream = up.String()
	ctx, cancel := context.WithCancel(context.Background())
	r, err := Start(ctx, o)
	if err != nil {
		cancel()
		t.Fatal(err)
	}
	t.Cleanup(func() {
		cancel()
		r.Stop()
		if t.Failed() {
			t.Logf("unbound's log:\n%s", r.Log())
		}
	})
	return r
}

// listenBoth listens on one port of ip for UDP and TCP.
func listenBoth(ip string) (net.PacketConn, net.Listener, error) {
	var err error
	for range 50 {
		var pc net.PacketConn
		if pc, err = net.ListenPacket("udp4", ip+":0"); err != nil {
			return nil, nil, err
		}
		l, lerr := net.Listen("tcp4", pc.LocalAddr().String())
		if lerr == nil {
			return pc, l, nil
		}
		_ = pc.Close()
		err = lerr
	}
	return nil, nil, err
}
