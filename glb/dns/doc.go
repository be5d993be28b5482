// Package dns is the authoritative DNS core of Meridian's global balancer.
//
// A [Server] answers for one zone over UDP and TCP on the same port. It owns
// the protocol (SOA and NS at the apex, NODATA and NXDOMAIN with the SOA,
// REFUSED outside the zone, EDNS(0), EDNS Client Subnet, truncation,
// response rate limiting and online DNSSEC signing) and asks a [Steerer]
// which addresses a name should resolve to for a given client. The
// Steerer sees only plain Go types ([Query], [Answer], [netip.Addr]).
//
// # Abuse controls
//
// Response rate limiting ([RRL]) is on unless turned off: an
// authoritative server answers anyone, and over UDP "anyone" includes a
// spoofed victim. Every UDP response is at most MaxUDPSize (1232) bytes
// whatever buffer the query claims, ANY gets the one-record answer of RFC
// 8482, and the amplification of each kind of answer is measured over
// real UDP in abuse_test.go and dnssec_test.go (README.md has the
// figures). [Query.Resolver] tells a Steerer who sent the query, so that
// it can refuse to believe an ECS address for anything beyond steering
// that one answer (the balancer counts demand by it only from trusted
// resolvers).
//
// # DNSSEC: black lies, not NSEC3 white lies
//
// Answers are steered per client, so the zone cannot be signed ahead of
// time: [DNSSEC] signs online, each RRset as it is given out, with ECDSA
// P-256 (small signatures, cheap to make). A signature is cached by the
// RRset's content, so the few distinct answers a steered name has are
// signed once per quarter of the validity, and the cache is bounded.
//
// Negative answers use "black lies" (RFC 4470's minimally covering NSEC,
// in the compact form of RFC 9824): a name that does not exist is
// answered NOERROR with one NSEC at the name itself whose next name is the
// name's immediate successor (\000.name) and whose bitmap holds only
// RRSIG, NSEC and NXNAME; a missing type at an existing name gets the same
// NSEC listing the types the name has. We chose this over NSEC3 "white
// lies" (two NSEC3 records covering the hashed name, and a third for the
// closest encloser): one NSEC and one signature instead of up to three of
// each, so negative answers are smaller (less amplification) and cost one
// signing instead of three; no hashing, whose only purpose — hiding the
// zone's names from walking — black lies already serve, as no NSEC ever
// names another existing name. The cost is that NXDOMAIN reads as NODATA
// to clients that look only at the rcode with DO set (those that send the
// CO bit of RFC 9824 get NXDOMAIN back); queries without DO still get a
// real NXDOMAIN. The unsigned dnsv2 build (below) refuses keys.
//
// # The precomputed path
//
// Most queries are one A or AAAA question for a steered name, with ECS.
// fast.go answers them without the DNS library and without allocating:
// it reads the question and the OPT (ECS) from the packet, asks the
// Steerer as the full path does, and copies the answer section it
// precomputed for that (name, type, steering outcome) — the Steerer's
// addresses of the family and TTL — into the read loop's own buffer,
// with the query's ID, question, RD/CD bits, and the OPT echoing the DO
// bit and the ECS option with the answer's scope. Outcomes are encoded
// the first time they are seen and published copy-on-write, so a change
// in the Steerer's view (a new snapshot) is a new outcome at once; the
// table is bounded (maxNames, maxOutcomes per name). A name enters it
// once the full path has answered it from the Steerer with addresses.
// Rate limiting, the metrics and the duration histogram run as on the
// full path. Everything else takes the full path: other types and
// classes, NXDOMAIN and NODATA, answers that would be truncated, names
// with characters outside letters, digits, '-' and '_', EDNS options
// other than ECS, cookies and padding, ECS with source prefix 0, and any
// query with DO while the zone is signed (DNSSEC stays on the full path).
// fast_test.go checks that both paths answer alike (FuzzFastPath fuzzes
// it) and that a steered query allocates nothing (testing.AllocsPerRun,
// on the handler and over a real UDP socket). The one difference: the
// answer's owner name points at the question, so it carries the query's
// letter case where the full path writes it lower-case.
//
// The server binds Config.UDPSockets UDP sockets (default GOMAXPROCS) on
// one port with SO_REUSEPORT, each with its own read loops
// (Config.UDPWorkers, default 2) and buffers. On Linux a read loop reads
// and writes up to 8 datagrams per system call (recvmmsg, sendmmsg:
// udp_linux.go); elsewhere one (server.go).
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
//   - fast.go (the precomputed path) reads and writes the wire itself,
//     the same in both builds.
//   - server.go (sockets), rrl.go, metrics.go, config.go, dnssec.go
//     (which negative answers get an NSEC and what it lists) and steer.go
//     never see the library. dnssec_v1.go (keys, signing, the signature
//     cache) is v1 only; dnssec_v2.go refuses keys.
//
// The tests use v1 as a client only, on the wire, so one suite checks
// either build: go test ./glb/dns/ and go test -tags dnsv2 ./glb/dns/.
//
// Configuration ([Config]) is validated and defaulted once in [New], apart
// from the request path; metrics live in metrics.go and register on the
// registry passed to New.
package dns
