package drill

import (
	"strings"
	"testing"
	"time"
)

func TestLongestGap(t *testing.T) {
	t0 := time.Unix(1000, 0)
	at := func(s float64) time.Time { return t0.Add(time.Duration(s * float64(time.Second))) }
	good := []time.Time{at(9), at(-1), at(0.5), at(1), at(5), at(5.2)} // unordered; one before the fault
	cases := []struct {
		name     string
		from, to time.Time
		want     time.Duration
	}{
		{"between answers", at(0), at(6), 4 * time.Second},
		{"up to the end", at(0), at(12), 4 * time.Second},
		{"the tail is longest", at(0), at(15), 6 * time.Second},
		{"from the fault to the first answer", at(-0.5), at(5.5), 4 * time.Second},
		{"no fault", time.Time{}, at(20), 0},
	}
	for _, c := range cases {
		if got := longestGap(good, c.from, c.to); got != c.want {
			t.Errorf("%s: %s, want %s", c.name, got, c.want)
		}
	}
	if got := longestGap(nil, at(0), at(3)); got != 3*time.Second {
		t.Errorf("no good answer at all: %s, want the whole 3s", got)
	}
}

// The verdict lines hold each kind's figures against its target, and a
// run whose load was not offered is short.
func TestVerdictsPerKindOfClient(t *testing.T) {
	det, dns := Seconds(1.1), Seconds(1.6)
	r := &Result{Drill: RegionLoss, Fault: "blackhole", Timing: "production", Membership: "push", DetectionTarget: 2, DNSTTL: 5, Detected: &det, DNSResteered: &dns,
		Front: Clients{Kind: FrontClients, Offered: 100, Sent: 80, LoadOffered: false, Shortfall: "phase 0 sent 80 of 100"},
		DNS:   Clients{Kind: DNSClients, Offered: 100, Sent: 100, LoadOffered: true, Failed: 30, LongestGap: 7.5}}
	lines := strings.Join(r.Verdicts(), "\n")
	for _, want := range []string{
		"P4-blackhole detection=1.10s target<=2s ok",
		"P4-blackhole dns_resteer=1.60s target<=2s ok",
		"P4-blackhole front_clients offered=100 (0.0/s) sent=80 achieved=0.0/s target=offered short (phase 0 sent 80 of 100)",
		"P4-blackhole dns_clients longest_gap=7.50s target<=ttl+2s(7s) short",
		"P4-blackhole dns_clients failed=30 dropped=0 target=none ok",
	} {
		if !strings.Contains(lines, want) {
			t.Errorf("missing %q in\n%s", want, lines)
		}
	}
}
