package dns

import (
	"net/netip"
	"testing"
	"time"
)

func TestRateLimiter(t *testing.T) {
	t.Parallel()
	now := time.Unix(1_700_000_000, 0)
	r := newRateLimiter(RRL{ResponsesPerSecond: 2, Burst: 2, Slip: 3, TableSize: 4, IPv4PrefixLen: 24, IPv6PrefixLen: 56},
		func() time.Time { return now })
	a := netip.MustParseAddr("198.51.100.1")
	sameNet := netip.MustParseAddr("198.51.100.200")
	var got []rrlVerdict
	for _, c := range []netip.Addr{a, sameNet, a, a, a, sameNet, a} {
		got = append(got, r.allow(c))
	}
	want := []rrlVerdict{rrlSend, rrlSend, rrlDrop, rrlDrop, rrlSlip, rrlDrop, rrlDrop}
	for i := range want {
		if got[i] != want[i] {
			t.Fatalf("verdicts %v, want %v (one /24 shares a bucket, every 3rd limited slips)", got, want)
		}
	}
	if v := r.allow(netip.MustParseAddr("198.51.101.1")); v != rrlSend {
		t.Errorf("another /24 was limited: %v", v)
	}
	now = now.Add(time.Second) // refills 2 tokens
	refill := []rrlVerdict{r.allow(a), r.allow(a), r.allow(a)}
	if refill[0] != rrlSend || refill[1] != rrlSend || refill[2] == rrlSend {
		t.Error("bucket did not refill to exactly the rate")
	}
	v6a, v6b := netip.MustParseAddr("2001:db8:0:1::1"), netip.MustParseAddr("2001:db8:0:ff::1") // same /56
	r.allow(v6a)
	r.allow(v6a)
	if v := r.allow(v6b); v == rrlSend {
		t.Error("two addresses in one IPv6 /56 have separate buckets")
	}
}

// TestRateLimiterBounded: a flood from spoofed sources cannot grow the
// table past TableSize.
func TestRateLimiterBounded(t *testing.T) {
	t.Parallel()
	r := newRateLimiter(RRL{ResponsesPerSecond: 1, Burst: 1, Slip: 2, TableSize: 1000, IPv4PrefixLen: 24, IPv6PrefixLen: 56}, time.Now)
	for i := range 100_000 {
		r.allow(netip.AddrFrom4([4]byte{10, byte(i >> 16), byte(i >> 8), byte(i)}))
	}
	if n := r.len(); n > 1000 {
		t.Fatalf("table holds %d networks, want at most 1000", n)
	}
	if newRateLimiter(RRL{Off: true, ResponsesPerSecond: 1}, time.Now) != nil {
		t.Error("RRL.Off should disable rate limiting")
	}
}

// A network that keeps flooding runs its bucket into debt, up to Window's
// worth, so it stays limited after the burst would have refilled, and is
// served again once its rate over the window is low; exempt networks are
// never limited.
func TestRateLimiterWindowAndExempt(t *testing.T) {
	t.Parallel()
	now := time.Unix(1_700_000_000, 0)
	r := newRateLimiter(RRL{ResponsesPerSecond: 10, Burst: 10, Window: 5 * time.Second, Slip: -1, TableSize: 8,
		IPv4PrefixLen: 24, IPv6PrefixLen: 56, Exempt: []netip.Prefix{netip.MustParsePrefix("192.0.2.0/28")}},
		func() time.Time { return now })
	a := netip.MustParseAddr("198.51.100.1")
	sent := 0
	for range 1000 { // 10 to spend, then 990 limited: the debt stops at 50
		if r.allow(a) == rrlSend {
			sent++
		}
	}
	if sent != 10 {
		t.Fatalf("%d sent, want the burst of 10", sent)
	}
	now = now.Add(2 * time.Second) // 20 tokens: still 30 in debt
	if v := r.allow(a); v == rrlSend {
		t.Error("served 2s after a flood whose debt was 5s deep")
	}
	now = now.Add(4 * time.Second) // 40 more: above zero again
	if v := r.allow(a); v != rrlSend {
		t.Errorf("still limited after the window: %v", v)
	}
	for r.allow(a) == rrlSend { // drain the network's bucket
	}
	if r.allow(netip.MustParseAddr("::ffff:198.51.100.7")) == rrlSend {
		t.Error("an IPv4-mapped address of a limited network has a bucket of its own")
	}
	for range 100 {
		if v := r.allow(netip.MustParseAddr("192.0.2.9")); v != rrlSend {
			t.Fatalf("an exempt network was limited: %v", v)
		}
	}
}
