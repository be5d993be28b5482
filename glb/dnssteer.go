package glb

import (
	"strings"

	"meridian.dev/meridian/glb/dns"
)

// Steer answers a DNS question for the authoritative server: the best
// usable cluster's address of the asked family, with the GlobalEndpoint's
// TTL and the ECS scope the choice depended on. A name that no
// GlobalEndpoint has does not exist; a name whose clusters are all
// unusable exists with no address (NODATA), so resolvers retry soon.
func (b *Balancer) Steer(q dns.Query) (dns.Answer, bool) {
	choice, ok := b.ByHost(strings.TrimSuffix(q.Name, "."), q.Client)
	if !ok {
		return dns.Answer{}, false
	}
	b.demand.add(choice.Endpoint, choice.ClientRegion, demandDNS)
	ans := dns.Answer{TTL: uint32(max(choice.Endpoint.TTL, 0)), Scope: min(choice.Scope, q.ClientPrefix)}
	for _, t := range choice.Targets {
		for _, a := range t.Addrs {
			if (q.Type == dns.TypeA) == a.Is4() {
				ans.Addrs = append(ans.Addrs, a)
			}
		}
		if len(ans.Addrs) > 0 {
			break
		}
	}
	return ans, true
}
