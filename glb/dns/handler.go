package dns

import (
	"encoding/binary"
	"net/netip"
	"slices"
	"strings"
	"time"
)

// This file is the request path: one raw DNS message in, one raw message
// (or nothing) out. It makes every protocol decision but touches no DNS
// library: decoding the request into a [request] and encoding the
// [response] are the library's part, in wire_v1.go or wire_v2.go.

// Transports, as used in the requests_total proto label.
const (
	protoUDP = "udp"
	protoTCP = "tcp"
)

const (
	headerLen = 12
	qrBit     = 1 << 15
)

// DNS numbers the answer logic needs; the library files use their own.
const (
	typeNS     uint16 = 2
	typeSOA    uint16 = 6
	typeOPT    uint16 = 41
	typeRRSIG  uint16 = 46
	typeNSEC   uint16 = 47
	typeDNSKEY uint16 = 48
	typeNXNAME uint16 = 128
	typeIXFR   uint16 = 251
	typeAXFR   uint16 = 252
	typeANY    uint16 = 255

	classINET uint16 = 1

	opcodeQuery = 0

	rcodeSuccess        = 0
	rcodeFormatError    = 1
	rcodeServerFailure  = 2
	rcodeNameError      = 3
	rcodeNotImplemented = 4
	rcodeRefused        = 5
	rcodeBadVers        = 16
)

// decoded is what the answer logic needs to know about a parsed request;
// the library file fills it in while decoding.
type decoded struct {
	opcode                    int
	qdcount, ancount, nscount int
	name                      string // the first question's, as sent
	qtype, qclass             uint16

	opts    int    // OPT records: more than one is FORMERR
	version uint8  // EDNS version of the (first) OPT
	do      bool   // DNSSEC OK bit of the OPT
	co      bool   // Compact Answers OK bit of the OPT (RFC 9824)
	udpSize uint16 // the OPT's buffer size; 0 without EDNS

	subnets int          // ECS options: more than one is FORMERR
	subnet  clientSubnet // the first ECS option
}

// clientSubnet is an EDNS Client Subnet option (RFC 7871), free of any
// library's types.
type clientSubnet struct {
	family        uint16
	source, scope uint8
	// addr is the ADDRESS field zero-padded to the family's length; the
	// zero Addr when it could not be read.
	addr netip.Addr
}

// section names a response section for the record-adding methods.
type section int

const (
	answerSection section = iota
	authoritySection
	additionalSection
)

// handle answers one raw DNS message that arrived over proto from remote.
// It returns nil when nothing must be sent: the packet is too short to
// answer, is itself a response, or was dropped by rate limiting.
// handle is handleInto with a buffer of its own (for tests: the read loops
// reuse theirs).
func (s *Server) handle(pkt []byte, proto string, remote netip.Addr) []byte {
	return s.handleInto(pkt, proto, remote, make([]byte, 65535))
}

// handleInto is handle with buf, the caller's buffer (one per read loop),
// for the precomputed path (fast.go) to write its response into: that
// path allocates nothing. A response from the full path is a new slice.
func (s *Server) handleInto(pkt []byte, proto string, remote netip.Addr, buf []byte) []byte {
	start := time.Now()
	defer func() { s.metrics.duration.Observe(time.Since(start).Seconds()) }()

	var hint *fullHint
	if s.answers != nil && buf != nil {
		var q fastQuery
		if parseFast(pkt, &q) {
			q.resolver = remote.Unmap()
			var h fullHint
			if out, ok := s.answerFast(pkt, &q, proto, buf, &h); ok {
				return out
			}
			if h.learn || h.steered {
				if h.learn {
					h.key = slices.Clone(q.key[:q.keyLen])
				}
				hint = &h
			}
		}
	}
	return s.handleFull(pkt, proto, remote, hint)
}

// handleFull is the full request path, through the DNS library. hint,
// when not nil, is what the precomputed path learnt of the query.
func (s *Server) handleFull(pkt []byte, proto string, remote netip.Addr, hint *fullHint) []byte {
	if len(pkt) < headerLen {
		s.metrics.requests.WithLabelValues(proto, "invalid").Inc()
		return nil // no ID to answer to
	}
	if binary.BigEndian.Uint16(pkt[2:4])&qrBit != 0 {
		s.metrics.requests.WithLabelValues(proto, "invalid").Inc()
		return nil // never answer a response: that is how loops start
	}
	req, err := parseRequest(pkt)
	var resp *response
	if err != nil {
		s.metrics.requests.WithLabelValues(proto, "invalid").Inc()
		resp = headerReply(pkt, rcodeFormatError)
	} else {
		qtype := "invalid"
		if req.qdcount == 1 {
			qtype = typeLabel(req.qtype)
		}
		s.metrics.requests.WithLabelValues(proto, qtype).Inc()
		resp = s.answer(req, remote, hint)
	}
	return s.pack(resp, req, proto, remote)
}

// answer builds the response to a parsed request. It never changes req.
func (s *Server) answer(req *request, remote netip.Addr, hint *fullHint) (resp *response) {
	resp = newReply(req)

	defer func() {
		if r := recover(); r != nil { // a Steerer must not take the server down
			resp.clearRecords()
			resp.setRcode(rcodeServerFailure)
		}
	}()

	if req.opcode != opcodeQuery {
		resp.setRcode(rcodeNotImplemented)
		return resp
	}
	if req.qdcount != 1 || req.ancount != 0 || req.nscount != 0 {
		resp.dropQuestion()
		resp.setRcode(rcodeFormatError)
		return resp
	}

	// EDNS(0): at most one OPT, version 0, at most one valid ECS option.
	if req.opts > 1 {
		resp.setRcode(rcodeFormatError)
		return resp
	}
	if req.opts == 1 {
		resp.addOPT(s.cfg.MaxUDPSize, req.do) // RFC 3225: copy DO
		if req.version != 0 {
			resp.setRcode(rcodeBadVers)
			return resp
		}
		if req.subnets > 1 || req.subnets == 1 && !validECS(req.subnet) {
			resp.setRcode(rcodeFormatError)
			return resp
		}
	}
	var ecs *clientSubnet
	if req.opts == 1 && req.subnets == 1 {
		ecs = &req.subnet
	}

	name := strings.ToLower(req.name)
	switch {
	case req.qclass != classINET:
		resp.setRcode(rcodeRefused) // no zone in any other class
		return resp
	case req.qtype == typeOPT || req.qtype == typeNXNAME: // meta-types (RFC 9824 section 3.5)
		resp.setRcode(rcodeFormatError)
		return resp
	case !isSubDomain(s.cfg.Zone, name):
		resp.setRcode(rcodeRefused) // not authoritative, no recursion
		return resp
	case req.qtype == typeAXFR || req.qtype == typeIXFR:
		resp.setRcode(rcodeRefused) // zone transfers are not offered
		return resp
	}
	resp.setAuthoritative()

	client, clientPrefix := steeringClient(ecs, remote)
	q := Query{Name: name, Type: req.qtype, Client: client, ClientPrefix: clientPrefix, Resolver: remote.Unmap()}
	scope := s.resolve(resp, q, hint)
	if s.signer != nil && req.do {
		s.denyAndSign(resp, name, req.qtype, req.co)
	}
	if ecs != nil {
		resp.addSubnet(*ecs, uint8(min(scope, maxBits(ecs.family))))
	}
	return resp
}

// resolve fills the answer and authority sections for a question in the
// zone and returns the ECS scope the answer depended on.
func (s *Server) resolve(resp *response, q Query, hint *fullHint) int {
	c := &s.cfg
	name, qtype := q.Name, q.Type
	apex := name == c.Zone
	if apex {
		switch qtype {
		case typeSOA:
			resp.addSOA(answerSection, c.Zone, &c.SOA, c.DefaultTTL)
			return 0
		case typeDNSKEY:
			if s.signer != nil {
				resp.addDNSKEY(s.signer)
				return 0
			}
		case typeNS:
			for _, ns := range c.NS {
				resp.addNS(c.Zone, ns, c.NSTTL)
			}
			for _, ns := range c.NS {
				for _, a := range c.Glue[ns] {
					resp.addAddr(additionalSection, ns, a, c.NSTTL)
				}
			}
			return 0
		}
	}
	if glue, ok := c.Glue[name]; ok {
		for _, a := range glue {
			if (qtype == TypeA) == a.Unmap().Is4() && (qtype == TypeA || qtype == TypeAAAA) {
				resp.addAddr(answerSection, name, a, c.NSTTL)
			}
		}
		if resp.answers() == 0 {
			resp.addSOA(authoritySection, c.Zone, &c.SOA, s.negativeTTL())
		}
		return 0
	}
	if qtype == typeANY {
		// RFC 8482: answer ANY with one synthesised HINFO record.
		resp.addHINFO(name, "RFC8482", c.DefaultTTL)
		return 0
	}

	scope := 0
	exists := apex
	if qtype == TypeA || qtype == TypeAAAA {
		var ans Answer
		var ok bool
		if hint != nil && hint.steered {
			ans, ok = hint.ans, hint.ok // the precomputed path asked already
		} else {
			ans, ok = s.steerer.Steer(q)
		}
		if ok {
			exists = true
			scope = ans.Scope
			ttl := ans.TTL
			if ttl == 0 {
				ttl = c.DefaultTTL
			}
			for _, a := range ans.Addrs {
				if a.IsValid() && (qtype == TypeA) == a.Unmap().Is4() {
					resp.addAddr(answerSection, name, a, ttl)
				}
			}
			if resp.answers() > 0 {
				if hint != nil && hint.key != nil {
					s.answers.learn(hint.key, name) // the next query takes the precomputed path
				}
				return scope
			}
		}
	}
	// No records of this type: does the name exist for any address type?
	for _, t := range []uint16{TypeA, TypeAAAA} {
		if exists {
			break
		}
		if t == qtype {
			continue // already asked
		}
		other := q
		other.Type = t
		ans, ok := s.steerer.Steer(other)
		if ok {
			exists = true
			scope = max(scope, ans.Scope)
		}
	}
	if !exists {
		resp.setRcode(rcodeNameError)
	}
	resp.addSOA(authoritySection, c.Zone, &c.SOA, s.negativeTTL())
	return scope
}

// negativeTTL is the SOA TTL in NXDOMAIN and NODATA answers (RFC 2308).
func (s *Server) negativeTTL() uint32 { return min(s.cfg.DefaultTTL, s.cfg.SOA.Minimum) }

// validECS checks an EDNS Client Subnet option from a query (RFC 7871
// section 6): a known family, a source prefix within it, a zero scope, and
// no address bits set beyond the source prefix.
func validECS(e clientSubnet) bool {
	if e.family == 0 { // dig's "no client information" form, prefix 0
		return e.source == 0 && e.scope == 0
	}
	if e.family != 1 && e.family != 2 {
		return false
	}
	if int(e.source) > maxBits(e.family) || e.scope != 0 || !e.addr.IsValid() {
		return false
	}
	p, err := e.addr.Prefix(int(e.source))
	return err == nil && p.Addr() == e.addr
}

func maxBits(family uint16) int {
	if family == 2 {
		return 128
	}
	return 32
}

// steeringClient is the address to steer by: the ECS address when the
// query carries one with a source prefix, else the resolver's.
func steeringClient(ecs *clientSubnet, remote netip.Addr) (netip.Addr, int) {
	if ecs != nil && ecs.source > 0 && ecs.addr.IsValid() {
		return ecs.addr, int(ecs.source)
	}
	remote = remote.Unmap()
	return remote, remote.BitLen()
}

// typeLabel bounds the query-type label of requests_total.
func typeLabel(t uint16) string {
	switch t {
	case TypeA:
		return "A"
	case TypeAAAA:
		return "AAAA"
	case typeSOA:
		return "SOA"
	case typeNS:
		return "NS"
	case typeANY:
		return "ANY"
	}
	return "other"
}

// rcodeLabels names the rcodes this server sends, in the responses_total
// label, with the names miekg/dns v1 gives them (16, BADVERS here, shares
// its number with TSIG's BADSIG), so the metric does not change with the
// library.
var rcodeLabels = map[int]string{
	rcodeSuccess:        "NOERROR",
	rcodeFormatError:    "FORMERR",
	rcodeServerFailure:  "SERVFAIL",
	rcodeNameError:      "NXDOMAIN",
	rcodeNotImplemented: "NOTIMP",
	rcodeRefused:        "REFUSED",
	rcodeBadVers:        "BADSIG",
}

func rcodeLabel(rcode int) string {
	if s, ok := rcodeLabels[rcode]; ok {
		return s
	}
	return "other"
}

// pack applies rate limiting (UDP only) and the size limit, counts the
// response and encodes it. req is nil when the request did not parse.
func (s *Server) pack(resp *response, req *request, proto string, remote netip.Addr) []byte {
	limit := 0 // no limit over TCP
	if proto == protoUDP {
		switch s.rrl.allow(remote) {
		case rrlDrop:
			s.metrics.rrlDrops.Inc()
			return nil
		case rrlSlip:
			s.metrics.rrlDrops.Inc()
			s.metrics.rrlSlips.Inc()
			resp = resp.slip()
		}
		limit = minUDPSize
		if req != nil && req.opts > 0 {
			limit = int(min(max(req.udpSize, minUDPSize), s.cfg.MaxUDPSize))
		}
	}
	out, rcode, truncated := resp.encode(limit)
	if truncated {
		s.metrics.truncated.Inc()
	}
	if out == nil {
		return nil
	}
	s.metrics.responses.WithLabelValues(rcodeLabel(rcode)).Inc()
	return out
}
