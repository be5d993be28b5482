package resolver

import (
	"errors"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/miekg/dns"
)

var (
	amsterdam = netip.MustParsePrefix("193.0.0.0/24")
	mumbai    = netip.MustParsePrefix("13.126.0.0/24")
	euWest    = netip.MustParseAddr("127.0.1.2")
	apSouth   = netip.MustParseAddr("127.0.1.3")
	usEast    = netip.MustParseAddr("127.0.1.1")
)

// bySubnet answers eu-west to Amsterdam, ap-south to Mumbai and us-east to
// everyone else, as the balancer would.
func bySubnet(p netip.Prefix) netip.Addr {
	switch p {
	case amsterdam:
		return euWest
	case mumbai:
		return apSouth
	}
	return usEast
}

// ask sends an A question with the client's ECS subnet to the resolver
// and returns the answer's address, its TTL and the echoed ECS scope.
func ask(t *testing.T, r *Resolver, proto, name string, subnet netip.Prefix) (netip.Addr, uint32, int) {
	t.Helper()
	q := new(dns.Msg)
	q.SetQuestion(dns.Fqdn(name), dns.TypeA)
	q.SetEdns0(1232, false)
	q.IsEdns0().Option = append(q.IsEdns0().Option, &dns.EDNS0_SUBNET{
		Code: dns.EDNS0SUBNET, Family: 1, SourceNetmask: uint8(subnet.Bits()), Address: subnet.Addr().AsSlice(),
	})
	c := &dns.Client{Net: proto, Timeout: 5 * time.Second}
	m, _, err := c.Exchange(q, r.Addr().String())
	if err != nil {
		t.Fatalf("asking %s over %s: %v", name, proto, err)
	}
	if m.Rcode != dns.RcodeSuccess || len(m.Answer) != 1 {
		t.Fatalf("asking %s over %s: %s with %d answers", name, proto, dns.RcodeToString[m.Rcode], len(m.Answer))
	}
	a, ok := m.Answer[0].(*dns.A)
	if !ok {
		t.Fatalf("answer %v is not an A record", m.Answer[0])
	}
	scope := -1
	if opt := m.IsEdns0(); opt != nil {
		for _, o := range opt.Option {
			if e, ok := o.(*dns.EDNS0_SUBNET); ok {
				scope = int(e.SourceScope)
			}
		}
	}
	addr, _ := netip.AddrFromSlice(a.A)
	return addr.Unmap(), a.Hdr.Ttl, scope
}

// TestSubnetCache: the balancer sees each client's own subnet, each subnet
// gets its own answer, a repeated question within the TTL comes from
// Unbound's cache with less TTL left, and after the TTL the balancer is
// asked again. Over UDP and over TCP, with the zone as a stub and as a
// forward zone.
func TestSubnetCache(t *testing.T) {
	t.Parallel()
	const ttl = 3
	for _, mode := range []struct {
		name    string
		forward bool
	}{{"stub", false}, {"forward", true}} {
		t.Run(mode.name, func(t *testing.T) {
			t.Parallel()
			up := startUpstream(t, ttl, bySubnet)
			r := startResolver(t, up.addr, Options{Forward: mode.forward, Verbosity: 2})
			for _, proto := range []string{"udp", "tcp"} {
				t.Run(proto, func(t *testing.T) {
					t.Parallel()
					name := "sentiment-" + proto + "." + zone
					start := time.Now()
					a1, ttl1, scope := ask(t, r, proto, name, amsterdam)
					if a1 != euWest || scope != 24 {
						t.Fatalf("Amsterdam got %v with scope /%d, want %v with /24", a1, scope, euWest)
					}
					if a, _, _ := ask(t, r, proto, name, mumbai); a != apSouth {
						t.Fatalf("Mumbai got %v, want %v (its own answer, not Amsterdam's)", a, apSouth)
					}
					got := up.asked(name)
					if len(got) != 2 || got[0].subnet != amsterdam || got[1].subnet != mumbai {
						t.Fatalf("the balancer was asked %+v, want once with %v then once with %v", got, amsterdam, mumbai)
					}
					if got[0].rd == !mode.forward {
						t.Errorf("RD %v in the question to the balancer, want %v", got[0].rd, mode.forward)
					}

					time.Sleep(1100 * time.Millisecond)
					a2, ttl2, _ := ask(t, r, proto, name, amsterdam)
					if a2 != euWest || ttl2 >= ttl1 {
						t.Fatalf("Amsterdam again after 1.1 s got %v TTL %d, want %v from the cache with TTL below %d", a2, ttl2, euWest, ttl1)
					}
					if a, _, _ := ask(t, r, proto, name, mumbai); a != apSouth {
						t.Fatalf("Mumbai again got %v, want %v", a, apSouth)
					}
					if n := len(up.asked(name)); n != 2 {
						t.Fatalf("the balancer was asked %d times within the TTL, want 2 (the rest from the cache)", n)
					}

					// Unbound counts in whole seconds and hands out a TTL of 0 during
					// the last one: the answer is gone no later than TTL + 1 s.
					time.Sleep(time.Until(start.Add(ttl*time.Second + 1200*time.Millisecond)))
					a3, ttl3, _ := ask(t, r, proto, name, amsterdam)
					t.Logf("TTLs %d %d %d; now %v", ttl1, ttl2, ttl3, time.Since(start))
					if a3 != euWest {
						t.Fatalf("Amsterdam after the TTL got %v, want %v", a3, euWest)
					}
					got = up.asked(name)
					if len(got) != 3 || got[2].subnet != amsterdam {
						t.Fatalf("after the TTL the balancer was asked %+v, want a third time with %v", got, amsterdam)
					}
				})
			}
		})
	}
}

// TestUpstreamDown: with the balancer gone, a client gets SERVFAIL (or
// its own timeout) in bounded time, never an answer and never a hang.
func TestUpstreamDown(t *testing.T) {
	t.Parallel()
	up := startUpstream(t, 5, bySubnet)
	r := startResolver(t, up.addr, Options{})
	up.stop()
	for _, proto := range []string{"udp", "tcp"} {
		q := new(dns.Msg)
		q.SetQuestion("down-"+proto+"."+zone, dns.TypeA)
		c := &dns.Client{Net: proto, Timeout: 3 * time.Second}
		start := time.Now()
		m, _, err := c.Exchange(q, r.Addr().String())
		took := time.Since(start)
		t.Logf("%s: %v after %v", proto, describe(m, err), took.Round(time.Millisecond))
		switch {
		case err != nil && !isTimeout(err):
			t.Fatalf("%s: %v, want SERVFAIL or a timeout", proto, err)
		case err == nil && m.Rcode != dns.RcodeServerFailure:
			t.Fatalf("%s: %s, want SERVFAIL", proto, describe(m, nil))
		case took > 4*time.Second:
			t.Fatalf("%s: took %v", proto, took)
		}
	}
}

func describe(m *dns.Msg, err error) string {
	if err != nil {
		return err.Error()
	}
	return dns.RcodeToString[m.Rcode] + " with " + strings.TrimSpace(strings.Repeat("A ", len(m.Answer)))
}

func isTimeout(err error) bool {
	var te interface{ Timeout() bool }
	return errors.As(err, &te) && te.Timeout()
}
