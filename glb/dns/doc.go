// Package dns is the authoritative DNS core of Meridian's global balancer.
//
// A [Server] answers for one zone over UDP and TCP on the same port. It owns
// the protocol (SOA and NS at the apex, NODATA and NXDOMAIN with the SOA,
// REFUSED outside the zone, EDNS(0), EDNS Client Subnet, truncation and
// response rate limiting) and asks a [Steerer] which addresses a name
// should resolve to for a given client. The Steerer sees only plain Go
// types ([Query], [Answer], [netip.Addr]), so the DNS library behind this
// package (github.com/miekg/dns v1 today) can be swapped without touching
// the steering side: only handler.go, server.go and config.go import it.
//
// Configuration ([Config]) is validated and defaulted once in [New], apart
// from the request path; metrics live in metrics.go and register on the
// registry passed to New.
package dns
