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
