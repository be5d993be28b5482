package glb

import (
	"log/slog"
	"net/netip"
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
	b.countDNS(choice, q)
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

// countDNS counts a query as demand (DNSDemandPolicy): by the client the
// answer was steered for when that is the resolver itself or a trusted
// resolver vouches for it with ECS, otherwise by the resolver's own
// location.
func (b *Balancer) countDNS(choice Choice, q dns.Query) {
	d := b.demand
	if d == nil {
		return
	}
	source, region := q.Resolver, choice.ClientRegion
	if !source.IsValid() { // a caller that steers without a packet
		source = q.Client
	}
	if q.Client != source && !d.trusts(source) {
		d.untrusted.Inc()
		region = b.regionOf(source)
	}
	d.addDNS(choice.Endpoint, region, source)
}

// regionOf is the fleet region nearest to a, "" when it cannot be located.
func (b *Balancer) regionOf(a netip.Addr) string {
	snap := b.src.Current()
	if b.geo == nil || snap == nil {
		return ""
	}
	loc, _, ok := b.geo.Locate(a)
	if !ok {
		return ""
	}
	return nearestRegion(snap, loc.Lat, loc.Lon)
}

// DNSOptions are the DNS server's abuse controls and signing (the
// `meridian glb` --dns-rrl-*, --dns-ecs-*, --dns-demand-* and --dnssec-*
// flags). The zero value rate-limits with dns.RRL's defaults, counts
// demand by each query's source, and serves the zone unsigned.
type DNSOptions struct {
	// RRL is response rate limiting, on unless RRL.Off.
	RRL dns.RRL
	// DNSSEC signs the zone online when it names keys.
	DNSSEC dns.DNSSEC
	// Demand says which queries count as demand, and where from.
	Demand DNSDemandPolicy
}

// applyDNS puts o into the DNS server's cfg and the demand counter d,
// and says in the log what is off.
func applyDNS(cfg *dns.Config, d *Demand, o DNSOptions, log *slog.Logger) {
	cfg.RRL, cfg.DNSSEC = o.RRL, o.DNSSEC
	d.SetDNSPolicy(o.Demand)
	if o.RRL.Off {
		log.Warn("DNS RESPONSE RATE LIMITING IS OFF: anyone who can spoof a source address can use this server to flood a victim; turn it back on (drop --dns-rrl=false) unless this is a benchmark")
	}
	if len(o.DNSSEC.KeyFiles) == 0 {
		log.Info("DNSSEC off: the zone is served unsigned (--dnssec-key-file signs it)")
	}
}
