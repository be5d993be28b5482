package glb

import (
	"context"
	"net"
	"net/netip"
	"slices"
	"testing"

	"meridian.dev/meridian/glb/dns"
)

// A region whose load balancer publishes a hostname (as cloud load
// balancers do) is answered with the addresses that name resolves to,
// through the system's real resolver ("localhost" is in every /etc/hosts);
// when the name stops resolving, the last addresses stay rather than the
// region dropping out of the answers.
func TestHostnameEndpointsAreAnsweredWithTheirAddresses(t *testing.T) {
	src := NewSource(nil, "", 0, quiet())
	snap := fleetSnapshot()
	snap.Clusters[1].Models["sentiment"] = ModelTarget{Endpoint: "http://localhost:8000", Ready: 1}
	src.resolveNames(context.Background(), snap)
	src.set(snap)
	if got := snap.Clusters[1].Models["sentiment"].Addrs; !slices.Contains(got, netip.MustParseAddr("127.0.0.1")) {
		t.Fatalf("localhost resolved to %v, want 127.0.0.1 among them", got)
	}
	b := NewBalancer(src, openGeo(t), nil, "test", quiet())
	amsterdam := netip.MustParseAddr("193.0.0.1")
	ask := func() []netip.Addr {
		t.Helper()
		ans, ok := b.Steer(dns.Query{Name: "sentiment.infer.test.", Type: dns.TypeA, Client: amsterdam, ClientPrefix: 24})
		if !ok {
			t.Fatal("the name does not exist")
		}
		return ans.Addrs
	}
	if got := ask(); len(got) != 1 || got[0] != netip.MustParseAddr("127.0.0.1") {
		t.Fatalf("Amsterdam got %v, want eu-west's load balancer name resolved: 127.0.0.1", got)
	}

	// The name stops resolving (its owner broke DNS): the next refresh
	// keeps what it had.
	src.lookup = func(context.Context, string, string) ([]netip.Addr, error) {
		return nil, &net.DNSError{Err: "no such host", Name: "localhost", IsNotFound: true}
	}
	next := fleetSnapshot()
	next.Clusters[1].Models["sentiment"] = ModelTarget{Endpoint: "http://localhost:8000", Ready: 1}
	src.resolveNames(context.Background(), next)
	src.set(next)
	if got := ask(); len(got) != 1 || got[0] != netip.MustParseAddr("127.0.0.1") {
		t.Fatalf("after a failed lookup Amsterdam got %v, want the last addresses", got)
	}

	// Another name that does not resolve, never seen before, has no address:
	// its region is skipped.
	never := fleetSnapshot()
	never.Clusters[1].Models["sentiment"] = ModelTarget{Endpoint: "http://lb.example.invalid:8000", Ready: 1}
	src.resolveNames(context.Background(), never)
	src.set(never)
	if got := ask(); len(got) != 1 || got[0] != netip.MustParseAddr("127.0.1.1") {
		t.Fatalf("with eu-west's name unresolved Amsterdam got %v, want us-east's 127.0.1.1", got)
	}
}
