// Package dns is the authoritative DNS core of Meridian's global balancer.
//
// A [Server] answers for one zone over UDP and TCP on the same port. It owns
// the protocol (SOA and NS at the apex, NODATA and NXDOMAIN with the SOA,
// REFUSED outside the zone, EDNS(0), EDNS Client Subnet, truncation and
// response rate limiting) and asks a [Steerer] which addresses a name
// should resolve to for a given client. The Steerer sees only plain Go
// types ([Query], [Answer], [netip.Addr]).
//
// # The DNS library seam
//
// The package builds on github.com/miekg/dns v1 by default and on its
// successor codeberg.org/miekg/dns (v2) with the build tag dnsv2, so both
// can be measured side by side (docs/glb.md, "DNS library"). Only the
// library's part is built twice:
//
//   - handler.go makes every protocol decision (opcode, counts, EDNS and
//     ECS checks, zone, steering, NODATA/NXDOMAIN, rate limiting, size
//     limit, metrics) on library-free types: the request's facts
//     (decoded, clientSubnet) and the methods of a response.
//   - wire_v1.go (!dnsv2) and wire_v2.go (dnsv2) define, with the same
//     names and signatures, request (parseRequest), response (newReply,
//     headerReply, addSOA/addNS/addAddr/addHINFO, addOPT/addSubnet, slip,
//     encode with truncation) and the name checks Config uses (isDomainName,
//     isSubDomain, fqdn). ecs_v2.go reads and writes the OPT record at the
//     byte level where v2 gets it wrong.
//   - server.go (sockets), rrl.go, metrics.go, config.go and steer.go
//     never see the library.
//
// The tests use v1 as a client only, on the wire, so one suite checks
// either build: go test ./glb/dns/ and go test -tags dnsv2 ./glb/dns/.
//
// Configuration ([Config]) is validated and defaulted once in [New], apart
// from the request path; metrics live in metrics.go and register on the
// registry passed to New.
package dns
