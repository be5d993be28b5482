//go:build !dnsv2

package dns

import (
	"context"
	"testing"
	"time"

	mdns "github.com/miekg/dns"

	unbound "meridian.dev/meridian/internal/resolver"
	"meridian.dev/meridian/internal/testbin"
)

// validating starts a signed server with keys and an Unbound that trusts
// anchor for the zone, and returns a function that asks Unbound.
func validating(t *testing.T, prefixes []string, anchor string) func(name string, qtype uint16) *mdns.Msg {
	t.Helper()
	if _, err := testbin.Unbound(); err != nil {
		testbin.Need(t, err)
	}
	cfg := testConfig()
	cfg.RRL = RRL{} // on, as in production: a resolver asks little
	cfg.DNSSEC = DNSSEC{KeyFiles: prefixes}
	_, addr := startServer(t, cfg)
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	res, err := unbound.Start(ctx, unbound.Options{Zone: zone, Upstream: addr, TrustAnchors: []string{anchor}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(res.Stop)
	return func(name string, qtype uint16) *mdns.Msg {
		t.Helper()
		q := query(name, qtype)
		q.RecursionDesired = true
		q.SetEdns0(1232, true)
		c := &mdns.Client{Net: "tcp", Timeout: 10 * time.Second}
		r, _, err := c.Exchange(q, res.Addr().String())
		if err != nil {
			t.Fatalf("asking Unbound for %s %s: %v\n%s", name, mdns.TypeToString[qtype], err, res.Log())
		}
		if testing.Verbose() {
			t.Logf("Unbound: %s %s -> %s AD %v\n%v", name, mdns.TypeToString[qtype], mdns.RcodeToString[r.Rcode], r.AuthenticatedData, r)
		}
		return r
	}
}

// Unbound, a real validating resolver anchored at the zone's key, finds
// the signed answers secure (AD) — a steered A, and the black-lie denials
// of a name that does not exist and of a type a name lacks — and finds
// answers signed with another key bogus (SERVFAIL).
func TestDNSSECValidatedByUnbound(t *testing.T) {
	t.Parallel()
	prefixes, keys := zoneKeys(t, true)
	var anchor string
	for _, k := range keys {
		if k.Flags&mdns.SEP != 0 {
			anchor = k.String()
		}
	}
	ask := validating(t, prefixes, anchor)

	r := ask("app."+zone, mdns.TypeA)
	if r.Rcode != mdns.RcodeSuccess || !r.AuthenticatedData || len(rrsOfType(r.Answer, mdns.TypeA)) != 1 {
		t.Errorf("app A through Unbound: %s AD %v answers %v; want NOERROR, AD, one A", mdns.RcodeToString[r.Rcode], r.AuthenticatedData, r.Answer)
	}
	for _, q := range []struct {
		name  string
		qtype uint16
	}{{"nope." + zone, mdns.TypeA}, {"v4only." + zone, mdns.TypeAAAA}, {zone, mdns.TypeMX}} {
		r := ask(q.name, q.qtype)
		if (r.Rcode != mdns.RcodeSuccess && r.Rcode != mdns.RcodeNameError) || !r.AuthenticatedData || len(r.Answer) != 0 {
			t.Errorf("%s %s through Unbound: %s AD %v answers %v; want a validated denial (AD, no answer)",
				q.name, mdns.TypeToString[q.qtype], mdns.RcodeToString[r.Rcode], r.AuthenticatedData, r.Answer)
		}
	}

	// The same zone served with other keys than the anchor: bogus.
	other, _ := zoneKeys(t, false)
	ask = validating(t, other, anchor)
	for _, q := range []struct {
		name  string
		qtype uint16
	}{{"app." + zone, mdns.TypeA}, {"nope." + zone, mdns.TypeA}} {
		if r := ask(q.name, q.qtype); r.Rcode != mdns.RcodeServerFailure || r.AuthenticatedData || len(r.Answer) != 0 {
			t.Errorf("%s signed with a key the anchor does not know: %s AD %v; want SERVFAIL", q.name, mdns.RcodeToString[r.Rcode], r.AuthenticatedData)
		}
	}
}
