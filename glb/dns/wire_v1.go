//go:build !dnsv2

package dns

import (
	"encoding/binary"
	"net"
	"net/netip"

	mdns "github.com/miekg/dns"
)

// This file is the DNS library's part of the request path on
// github.com/miekg/dns v1, the default build: decode a request, build and
// encode a response, and check names. wire_v2.go has the same functions on
// codeberg.org/miekg/dns (build tag dnsv2).

// request is a parsed query: the facts the answer logic needs, and the
// library's message to build the reply from.
type request struct {
	decoded
	msg *mdns.Msg
}

// parseRequest decodes a query; an error means the packet is malformed.
func parseRequest(pkt []byte) (*request, error) {
	m := new(mdns.Msg)
	if err := m.Unpack(pkt); err != nil {
		return nil, err
	}
	r := &request{msg: m}
	r.opcode = m.Opcode
	r.qdcount, r.ancount, r.nscount = len(m.Question), len(m.Answer), len(m.Ns)
	if len(m.Question) > 0 {
		q := m.Question[0]
		r.name, r.qtype, r.qclass = q.Name, q.Qtype, q.Qclass
	}
	for _, rr := range m.Extra {
		o, ok := rr.(*mdns.OPT)
		if !ok {
			continue
		}
		r.opts++
		if r.opts > 1 {
			continue // FORMERR anyway
		}
		r.version, r.do, r.co, r.udpSize = o.Version(), o.Do(), o.Co(), o.UDPSize()
		for _, e := range o.Option {
			if sub, ok := e.(*mdns.EDNS0_SUBNET); ok {
				r.subnets++
				if r.subnets == 1 {
					r.subnet = subnetOf(sub)
				}
			}
		}
	}
	return r, nil
}

func subnetOf(e *mdns.EDNS0_SUBNET) clientSubnet {
	c := clientSubnet{family: e.Family, source: e.SourceNetmask, scope: e.SourceScope}
	switch e.Family {
	case 1:
		if ip4 := e.Address.To4(); ip4 != nil {
			c.addr = netip.AddrFrom4([4]byte(ip4))
		}
	case 2:
		if ip16 := e.Address.To16(); ip16 != nil {
			c.addr = netip.AddrFrom16([16]byte(ip16))
		}
	}
	return c
}

// response is a reply being built.
type response struct {
	msg *mdns.Msg
	opt *mdns.OPT // the echoed OPT, nil without EDNS
}

// newReply starts the reply to req: its ID, opcode, question, RD and CD.
func newReply(req *request) *response {
	m := new(mdns.Msg)
	m.SetReply(req.msg)
	return &response{msg: m}
}

// headerReply is the reply to a message whose body could not be parsed:
// its ID and opcode, no sections.
func headerReply(pkt []byte, rcode int) *response {
	m := new(mdns.Msg)
	m.Id = binary.BigEndian.Uint16(pkt[0:2])
	m.Response = true
	m.Opcode = int(pkt[2]>>3) & 0xF
	m.Rcode = rcode
	return &response{msg: m}
}

func (r *response) setRcode(rcode int) { r.msg.Rcode = rcode }
func (r *response) setAuthoritative()  { r.msg.Authoritative = true }
func (r *response) dropQuestion()      { r.msg.Question = nil }
func (r *response) clearRecords()      { r.msg.Answer, r.msg.Ns = nil, nil }
func (r *response) answers() int       { return len(r.msg.Answer) }

// addOPT adds the response's OPT record, first in the additional section.
func (r *response) addOPT(udpSize uint16, do bool) {
	r.opt = &mdns.OPT{Hdr: mdns.RR_Header{Name: ".", Rrtype: mdns.TypeOPT}}
	r.opt.SetUDPSize(udpSize)
	r.opt.SetDo(do)
	r.msg.Extra = append(r.msg.Extra, r.opt)
}

// addSubnet echoes the query's ECS option with the answer's scope; it
// needs addOPT first.
func (r *response) addSubnet(c clientSubnet, scope uint8) {
	r.opt.Option = append(r.opt.Option, &mdns.EDNS0_SUBNET{
		Code: mdns.EDNS0SUBNET, Family: c.family, SourceNetmask: c.source, SourceScope: scope,
		Address: net.IP(c.addr.AsSlice()),
	})
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

func hdr(name string, t uint16, ttl uint32) mdns.RR_Header {
	return mdns.RR_Header{Name: name, Rrtype: t, Class: mdns.ClassINET, Ttl: ttl}
}

func (r *response) addSOA(sec section, zone string, c *SOA, ttl uint32) {
	r.add(sec, &mdns.SOA{
		Hdr: hdr(zone, mdns.TypeSOA, ttl),
		Ns:  c.MName, Mbox: c.RName, Serial: c.Serial,
		Refresh: c.Refresh, Retry: c.Retry, Expire: c.Expire, Minttl: c.Minimum,
	})
}

func (r *response) addNS(zone, ns string, ttl uint32) {
	r.add(answerSection, &mdns.NS{Hdr: hdr(zone, mdns.TypeNS, ttl), Ns: ns})
}

func (r *response) addAddr(sec section, name string, a netip.Addr, ttl uint32) {
	a = a.Unmap()
	if a.Is4() {
		r.add(sec, &mdns.A{Hdr: hdr(name, mdns.TypeA, ttl), A: net.IP(a.AsSlice())})
		return
	}
	r.add(sec, &mdns.AAAA{Hdr: hdr(name, mdns.TypeAAAA, ttl), AAAA: net.IP(a.AsSlice())})
}

func (r *response) addHINFO(name, cpu string, ttl uint32) {
	r.add(answerSection, &mdns.HINFO{Hdr: hdr(name, mdns.TypeHINFO, ttl), Cpu: cpu})
}

// slip is the rate limiter's reply: a copy with TC set and no records but
// the OPT, so a real client retries over TCP.
func (r *response) slip() *response {
	m := r.msg.Copy()
	m.Answer, m.Ns = nil, nil
	m.Extra = onlyOPT(m.Extra)
	m.Truncated = true
	return &response{msg: m}
}

func onlyOPT(extra []mdns.RR) []mdns.RR {
	for _, rr := range extra {
		if rr.Header().Rrtype == mdns.TypeOPT {
			return []mdns.RR{rr}
		}
	}
	return nil
}

// encode packs the reply, cut to limit bytes with TC set when it does not
// fit (limit 0: no limit). It returns the bytes (nil if even a SERVFAIL
// cannot be packed), the rcode sent, and whether TC is set.
func (r *response) encode(limit int) ([]byte, int, bool) {
	m := r.msg
	if limit > 0 {
		m.Truncate(limit)
	}
	truncated := m.Truncated
	m.Compress = true
	out, err := m.Pack()
	if err != nil {
		fail := new(mdns.Msg)
		fail.SetRcode(m, mdns.RcodeServerFailure)
		fail.Question = m.Question
		m = fail
		if out, err = m.Pack(); err != nil {
			return nil, 0, truncated
		}
	}
	return out, m.Rcode, truncated
}

// Names in Config are checked and written the library's way.

func isDomainName(s string) bool {
	_, ok := mdns.IsDomainName(s)
	return ok
}

func isSubDomain(parent, child string) bool { return mdns.IsSubDomain(parent, child) }

func fqdn(s string) string { return mdns.Fqdn(s) }
