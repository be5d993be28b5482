//go:build dnsv2

package dns

import (
	"encoding/binary"
	"encoding/hex"
	"net/netip"

	mdns "codeberg.org/miekg/dns"
	"codeberg.org/miekg/dns/dnsutil"
	"codeberg.org/miekg/dns/rdata"
)

// This file is the DNS library's part of the request path on
// codeberg.org/miekg/dns (v2, build tag dnsv2): the same functions as
// wire_v1.go. Where v2 at the pinned version gets EDNS wrong for an
// authoritative server, the OPT record is read and written here at the
// byte level (ecs_v2.go); docs/glb.md says what and why.

// request is a parsed query: the facts the answer logic needs, and the
// library's message to build the reply from.
type request struct {
	decoded
	msg *mdns.Msg
}

// parseRequest decodes a query; an error means the packet is malformed.
func parseRequest(pkt []byte) (*request, error) {
	m := &mdns.Msg{Data: pkt}
	if err := m.Unpack(); err != nil {
		return nil, err
	}
	r := &request{msg: m}
	r.opcode = int(m.Opcode)
	r.qdcount, r.ancount, r.nscount = len(m.Question), len(m.Answer), len(m.Ns)
	if len(m.Question) > 0 {
		q := m.Question[0]
		// An unknown type comes back as an RFC3597 record, whose Type
		// method RRToType uses.
		r.name, r.qtype, r.qclass = q.Header().Name, mdns.RRToType(q), q.Header().Class
	}
	// v2 folds the OPT record into Msg fields and keeps only the last of
	// several, so they are counted in the packet itself.
	var opt []byte
	r.opts, opt = rawOPT(pkt)
	if r.opts > 0 {
		r.version, r.do, r.udpSize = m.Version, m.Security, m.UDPSize
		var err error
		if r.subnets, r.subnet, err = subnetsIn(opt); err != nil {
			return nil, err
		}
	}
	return r, nil
}

// response is a reply being built. The OPT record is kept as its fields
// and written by encode.
type response struct {
	msg     *mdns.Msg
	rcode   int // with the extended bits, which go into the OPT
	opt     bool
	udpSize uint16
	do      bool
	echo    *clientSubnet // ECS option to echo, scope set
}

// newReply starts the reply to req: its ID, opcode, question, RD and CD.
// dnsutil.SetReply is not used: it also copies the DO bit into the Msg,
// which makes v2 write an OPT of its own.
func newReply(req *request) *response {
	q := req.msg
	m := &mdns.Msg{}
	m.ID, m.Response, m.Opcode = q.ID, true, q.Opcode
	if q.Opcode == mdns.OpcodeQuery {
		m.RecursionDesired, m.CheckingDisabled = q.RecursionDesired, q.CheckingDisabled
	}
	if len(q.Question) > 0 {
		m.Question = q.Question[:1]
	}
	return &response{msg: m}
}

// headerReply is the reply to a message whose body could not be parsed:
// its ID and opcode, no sections.
func headerReply(pkt []byte, rcode int) *response {
	m := &mdns.Msg{}
	m.ID = binary.BigEndian.Uint16(pkt[0:2])
	m.Response = true
	m.Opcode = (pkt[2] >> 3) & 0xF
	return &response{msg: m, rcode: rcode}
}

func (r *response) setRcode(rcode int) { r.rcode = rcode }
func (r *response) setAuthoritative()  { r.msg.Authoritative = true }
func (r *response) dropQuestion()      { r.msg.Question = nil }
func (r *response) clearRecords()      { r.msg.Answer, r.msg.Ns = nil, nil }
func (r *response) answers() int       { return len(r.msg.Answer) }

// addOPT gives the response an OPT record.
func (r *response) addOPT(udpSize uint16, do bool) {
	r.opt, r.udpSize, r.do = true, udpSize, do
}

// addSubnet echoes the query's ECS option with the answer's scope.
func (r *response) addSubnet(c clientSubnet, scope uint8) {
	c.scope = scope
	r.echo = &c
}

func (r *response) add(sec section, rr mdns.RR) {
	switch sec {
	case answerSection:
		r.msg.Answer = append(r.msg.Answer, rr)
	case authoritySection:
		r.msg.Ns = append(r.msg.Ns, rr)
	default:
		r.msg.Extra = append(r.msg.Extra, rr)
	}
}

func hdr(name string, ttl uint32) mdns.Header {
	return mdns.Header{Name: name, Class: mdns.ClassINET, TTL: ttl}
}

func (r *response) addSOA(sec section, zone string, c *SOA, ttl uint32) {
	r.add(sec, &mdns.SOA{Hdr: hdr(zone, ttl), SOA: rdata.SOA{
		Ns: c.MName, Mbox: c.RName, Serial: c.Serial,
		Refresh: c.Refresh, Retry: c.Retry, Expire: c.Expire, Minttl: c.Minimum,
	}})
}

func (r *response) addNS(zone, ns string, ttl uint32) {
	r.add(answerSection, &mdns.NS{Hdr: hdr(zone, ttl), NS: rdata.NS{Ns: ns}})
}

func (r *response) addAddr(sec section, name string, a netip.Addr, ttl uint32) {
	a = a.Unmap()
	if a.Is4() {
		r.add(sec, &mdns.A{Hdr: hdr(name, ttl), A: rdata.A{Addr: a}})
		return
	}
	r.add(sec, &mdns.AAAA{Hdr: hdr(name, ttl), AAAA: rdata.AAAA{Addr: a}})
}

func (r *response) addHINFO(name, cpu string, ttl uint32) {
	r.add(answerSection, &mdns.HINFO{Hdr: hdr(name, ttl), HINFO: rdata.HINFO{Cpu: cpu}})
}

// slip is the rate limiter's reply: a copy with TC set and no records but
// the OPT, so a real client retries over TCP.
func (r *response) slip() *response {
	c := *r
	c.msg = r.msg.Copy() // shallow: the sections are replaced, not changed
	c.msg.Answer, c.msg.Ns, c.msg.Extra = nil, nil, nil
	c.msg.Truncated = true
	return &c
}

// encode packs the reply, cut to limit bytes with TC set when it does not
// fit (limit 0: no limit). It returns the bytes (nil if even a SERVFAIL
// cannot be packed), the rcode sent, and whether TC is set.
func (r *response) encode(limit int) ([]byte, int, bool) {
	m := r.msg
	m.Rcode = uint16(r.rcode & 0xF)
	fixed := 0
	if r.opt { // first in the additional section, so cutting keeps it
		m.Extra = append([]mdns.RR{r.optRR()}, m.Extra...)
		fixed = 1
	}
	err := m.Pack()
	if err == nil && limit > 0 && len(m.Data) > limit {
		err = truncate(m, limit, fixed)
	}
	if err != nil {
		fail := &mdns.Msg{MsgHeader: mdns.MsgHeader{
			ID: m.ID, Response: true, Opcode: m.Opcode, Rcode: mdns.RcodeServerFailure,
			RecursionDesired: m.RecursionDesired, CheckingDisabled: m.CheckingDisabled,
		}, Question: m.Question}
		if fail.Pack() != nil {
			return nil, 0, m.Truncated
		}
		return fail.Data, mdns.RcodeServerFailure, m.Truncated
	}
	return m.Data, r.rcode, m.Truncated
}

// truncate packs m with the most records that fit in limit bytes (answer,
// then authority, then additional; the first fixed additional records are
// always kept) and sets TC. v2 has no Truncate of its own; the search
// packs a few times, which only oversized answers pay for.
func truncate(m *mdns.Msg, limit, fixed int) error {
	all := [3][]mdns.RR{m.Answer, m.Ns, m.Extra}
	keep := func(n int) {
		m.Answer = all[0][:min(n, len(all[0]))]
		n -= len(m.Answer)
		m.Ns = all[1][:min(n, len(all[1]))]
		n -= len(m.Ns)
		m.Extra = all[2][:min(fixed+n, len(all[2]))]
	}
	// lo records fit (none always do); hi+1, at first all of them, do not.
	lo, hi := 0, len(all[0])+len(all[1])+len(all[2])-fixed-1
	for lo < hi {
		mid := (lo + hi + 1) / 2
		keep(mid)
		if m.Pack() == nil && len(m.Data) <= limit {
			lo = mid
		} else {
			hi = mid - 1
		}
	}
	keep(lo)
	m.Truncated = true
	return m.Pack()
}

// optRR is the response's OPT record, written as an opaque record: v2
// writes its own OPT only for a buffer size above 512 and cannot encode
// an ECS option correctly (ecs_v2.go).
func (r *response) optRR() mdns.RR {
	ttl := uint32(r.rcode>>4) << 24 // extended rcode; EDNS version 0
	if r.do {
		ttl |= 1 << 15
	}
	var opts []byte
	if r.echo != nil {
		opts = appendSubnet(nil, *r.echo)
	}
	return &mdns.RFC3597{
		Hdr:     mdns.Header{Name: ".", Class: r.udpSize, TTL: ttl},
		RFC3597: rdata.RFC3597{RRType: mdns.TypeOPT, Data: hex.EncodeToString(opts)},
	}
}

// Names in Config are checked and written the library's way.

func isDomainName(s string) bool { return s != "" && dnsutil.IsName(s) }

func isSubDomain(parent, child string) bool { return dnsutil.IsBelow(parent, child) }

func fqdn(s string) string { return dnsutil.Fqdn(s) }
