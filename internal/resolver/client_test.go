package resolver

import (
	"context"
	"errors"
	"net"
	"net/http"
	"net/netip"
	"sync"
	"testing"
	"time"
)

// startSites runs one HTTP server per address, all on one port, each
// answering with its name in X-Meridian-Cluster; it returns the port and
// the servers by address.
func startSites(t *testing.T, sites map[netip.Addr]string) (int, map[netip.Addr]*http.Server) {
	t.Helper()
	for range 50 {
		ls := map[netip.Addr]net.Listener{}
		port := 0
		ok := true
		for a := range sites {
			l, err := net.Listen("tcp4", netip.AddrPortFrom(a, uint16(port)).String())
			if err != nil {
				ok = false
				break
			}
			ls[a] = l
			port = l.Addr().(*net.TCPAddr).Port
		}
		if !ok {
			for _, l := range ls {
				_ = l.Close()
			}
			continue
		}
		servers := map[netip.Addr]*http.Server{}
		for a, l := range ls {
			name := sites[a]
			s := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
				w.Header().Set("X-Meridian-Cluster", name)
				_, _ = w.Write([]byte("ok\n"))
			})}
			servers[a] = s
			go func() { _ = s.Serve(l) }()
			t.Cleanup(func() { _ = s.Close() })
		}
		return port, servers
	}
	t.Fatal("no port free on every site address")
	return 0, nil
}

// TestClientFollowsAnswer: a client near Amsterdam follows the balancer's
// answer through Unbound, from one site to another no later than the TTL
// (plus Unbound's whole second) after the change, without asking per
// request; and when its cached site dies it fails, without re-resolving,
// until the TTL ends, then reaches the new answer.
func TestClientFollowsAnswer(t *testing.T) {
	t.Parallel()
	const ttl = 2 * time.Second
	siteA, siteB := netip.MustParseAddr("127.0.0.1"), netip.MustParseAddr("127.0.0.2")
	port, servers := startSites(t, map[netip.Addr]string{siteA: "a", siteB: "b"})

	var mu sync.Mutex
	current := siteA
	set := func(a netip.Addr) { mu.Lock(); current = a; mu.Unlock() }
	up := startUpstream(t, uint32(ttl/time.Second), func(p netip.Prefix) netip.Addr {
		if p != amsterdam {
			return usEast // only Amsterdam's subnet may reach the sites
		}
		mu.Lock()
		defer mu.Unlock()
		return current
	})
	r := startResolver(t, up.addr, Options{})
	name := "sentiment." + zone
	c, err := NewClient(ClientOptions{Resolver: r.Addr(), Host: name, Subnet: amsterdam, Port: port, Path: "/analyze", Timeout: 2 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	ctx := context.Background()

	// A burst of concurrent first requests shares one resolution.
	var wg sync.WaitGroup
	for range 8 {
		wg.Go(func() {
			if res := c.Do(ctx); !res.OK || res.Cluster != "a" {
				t.Errorf("first requests: %+v, want OK from a", res)
			}
		})
	}
	wg.Wait()
	if n := len(up.asked(name)); n != 1 {
		t.Fatalf("the balancer was asked %d times for 8 concurrent first requests, want 1", n)
	}

	// run sends a request every 50 ms for d and returns what each saw, with
	// its time.
	type sample struct {
		at  time.Time
		res Result
	}
	run := func(d time.Duration) []sample {
		var out []sample
		for end := time.Now().Add(d); time.Now().Before(end); time.Sleep(50 * time.Millisecond) {
			out = append(out, sample{time.Now(), c.Do(ctx)})
		}
		return out
	}

	// 1. The answer moves from a to b: requests follow within TTL + 1 s.
	changed := time.Now()
	set(siteB)
	var movedAt time.Time
	for _, s := range run(ttl + 2*time.Second) {
		if !s.res.OK {
			t.Fatalf("request at +%v failed: %v", s.at.Sub(changed), s.res.Err)
		}
		switch {
		case s.res.Cluster == "b" && s.res.Addr == netip.AddrPortFrom(siteB, uint16(port)):
			if movedAt.IsZero() {
				movedAt = s.at
			}
		case !movedAt.IsZero():
			t.Fatalf("request at +%v went back to %s (%v) after following the change", s.at.Sub(changed), s.res.Cluster, s.res.Addr)
		}
	}
	if movedAt.IsZero() || movedAt.Sub(changed) > ttl+time.Second+100*time.Millisecond {
		t.Fatalf("requests moved to b at +%v after the change, want within the TTL %v + 1 s", movedAt.Sub(changed), ttl)
	}
	t.Logf("followed the change after %v (TTL %v)", movedAt.Sub(changed).Round(time.Millisecond), ttl)

	// 2. Site b dies and the answer moves back to a at once: requests fail
	// while the cached answer lasts (no re-resolution on failure), then
	// reach a.
	asked := len(up.asked(name))
	_ = servers[siteB].Close()
	died := time.Now()
	set(siteA)
	var failures int
	var recoveredAt, cachedUntil time.Time
	for _, s := range run(ttl + 2*time.Second) {
		switch {
		case !s.res.OK && recoveredAt.IsZero():
			failures++
			if s.res.Addr.Addr() != siteB {
				t.Errorf("failed request at +%v: addr %v, want the cached %v", s.at.Sub(died), s.res.Addr, siteB)
			}
			if !cachedUntil.IsZero() && s.at.Before(cachedUntil) && s.res.Resolved {
				t.Errorf("request at +%v resolved again before the cached answer's TTL ended (at +%v) because a connection failed", s.at.Sub(died), cachedUntil.Sub(died))
			}
			if until := s.at.Add(s.res.TTL); until.After(cachedUntil) {
				cachedUntil = until
			}
			var oe *net.OpError
			if !errors.As(s.res.Err, &oe) {
				t.Errorf("failed request at +%v: %v, want a connection error", s.at.Sub(died), s.res.Err)
			}
		case s.res.OK && s.res.Cluster == "a":
			if recoveredAt.IsZero() {
				recoveredAt = s.at
			}
		default:
			t.Fatalf("request at +%v after recovering: %+v", s.at.Sub(died), s.res)
		}
	}
	if recoveredAt.IsZero() || recoveredAt.Sub(died) > ttl+time.Second+100*time.Millisecond {
		t.Fatalf("requests reached a at +%v after b died, want within the TTL %v + 1 s", recoveredAt.Sub(died), ttl)
	}
	if n := len(up.asked(name)) - asked; n > 3 {
		t.Fatalf("the balancer was asked %d times in %v, want at most one per TTL, not one per failure", n, ttl+2*time.Second)
	}
	t.Logf("%d requests failed on the dead site's cached address, then reached a after %v", failures, recoveredAt.Sub(died).Round(time.Millisecond))
}

// TestClientResolveFailure: when the resolver cannot answer, each request
// fails within its timeout with the resolution error, and nothing is
// cached.
func TestClientResolveFailure(t *testing.T) {
	t.Parallel()
	up := startUpstream(t, 5, bySubnet)
	r := startResolver(t, up.addr, Options{})
	up.stop()
	c, err := NewClient(ClientOptions{Resolver: r.Addr(), Host: "down." + zone, Subnet: amsterdam, Port: 1, Timeout: time.Second, ResolveTimeout: 500 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	for range 2 {
		start := time.Now()
		res := c.Do(context.Background())
		if res.OK || res.Err == nil || !res.Resolved || res.Addr.IsValid() || time.Since(start) > 1500*time.Millisecond {
			t.Fatalf("%+v after %v, want a resolution error within the timeout", res, time.Since(start))
		}
	}
}
