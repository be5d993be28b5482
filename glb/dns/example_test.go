package dns_test

import (
	"context"
	"fmt"
	"net/netip"

	mdns "github.com/miekg/dns"

	"meridian.dev/meridian/glb/dns"
)

// A Server for one zone with a Steerer that sends everyone to one address.
func Example() {
	steer := dns.SteererFunc(func(q dns.Query) (dns.Answer, bool) {
		if q.Name != "sentiment.infer.example.com." {
			return dns.Answer{}, false // NXDOMAIN
		}
		if q.Type == dns.TypeAAAA {
			return dns.Answer{}, true // exists, IPv4 only: NODATA
		}
		return dns.Answer{Addrs: []netip.Addr{netip.MustParseAddr("192.0.2.10")}, TTL: 30}, true
	})
	srv, err := dns.New(dns.Config{
		Zone: "infer.example.com.",
		NS:   []string{"ns1.example.net."},
	}, steer, nil)
	if err != nil {
		fmt.Println(err)
		return
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go func() { _ = srv.ListenAndServe(ctx, "127.0.0.1:0") }()
	addr, err := srv.Addr(ctx)
	if err != nil {
		fmt.Println(err)
		return
	}

	q := new(mdns.Msg)
	q.SetQuestion("sentiment.infer.example.com.", mdns.TypeA)
	r, err := mdns.Exchange(q, addr.String())
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println(mdns.RcodeToString[r.Rcode], r.Authoritative, r.Answer[0].(*mdns.A).A)
	// Output: NOERROR true 192.0.2.10
}
