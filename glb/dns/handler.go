package dns

import (
	"encoding/binary"
	"net"
	"net/netip"
	"strings"
	"time"

	mdns "github.com/miekg/dns"
)

// This file is the request path: one raw DNS message in, one raw message
// (or nothing) out. It is the only place, with server.go and config.go,
// that knows the DNS library.

// Transports, as used in the requests_total proto label.
const (
	protoUDP = "udp"
	protoTCP = "tcp"
)

const (
	headerLen = 12
	qrBit     = 1 << 15
)

// handle answers one raw DNS message that arrived over proto from remote.
// It returns nil when nothing must be sent: the packet is too short to
// answer, is itself a response, or was dropped by rate limiting.
func (s *Server) handle(pkt []byte, proto string, remote netip.Addr) []byte {
	start := time.Now()
	defer func() { s.metrics.duration.Observe(time.Since(start).Seconds()) }()

	if len(pkt) < headerLen {
		s.metrics.requests.WithLabelValues(proto, "invalid").Inc()
		return nil // no ID to answer to
	}
	if binary.BigEndian.Uint16(pkt[2:4])&qrBit != 0 {
		s.metrics.requests.WithLabelValues(proto, "invalid").Inc()
		return nil // never answer a response: that is how loops start
	}
	req := new(mdns.Msg)
	var resp *mdns.Msg
	if err := req.Unpack(pkt); err != nil {
		s.metrics.requests.WithLabelValues(proto, "invalid").Inc()
		resp = headerReply(pkt, mdns.RcodeFormatError)
	} else {
		qtype := "invalid"
		if len(req.Question) == 1 {
			qtype = typeLabel(req.Question[0].Qtype)
		}
		s.metrics.requests.WithLabelValues(proto, qtype).Inc()
		resp = s.answer(req, remote)
	}
	return s.pack(resp, req, proto, remote)
}

// headerReply is the reply to a message whose body could not be parsed:
// its ID and opcode, no sections.
func headerReply(pkt []byte, rcode int) *mdns.Msg {
	m := new(mdns.Msg)
	m.Id = binary.BigEndian.Uint16(pkt[0:2])
	m.Response = true
	m.Opcode = int(pkt[2]>>3) & 0xF
	m.Rcode = rcode
	return m
}

// answer builds the response to a parsed request. It never changes req.
func (s *Server) answer(req *mdns.Msg, remote netip.Addr) (resp *mdns.Msg) {
	resp = new(mdns.Msg)
	resp.SetReply(req)
	resp.Authoritative = false
	resp.RecursionAvailable = false

	defer func() {
		if r := recover(); r != nil { // a Steerer must not take the server down
			resp.Answer, resp.Ns = nil, nil
			resp.Rcode = mdns.RcodeServerFailure
		}
	}()

	if req.Opcode != mdns.OpcodeQuery {
		resp.Rcode = mdns.RcodeNotImplemented
		return resp
	}
	if len(req.Question) != 1 || len(req.Answer) != 0 || len(req.Ns) != 0 {
		resp.Question = nil
		resp.Rcode = mdns.RcodeFormatError
		return resp
	}

	// EDNS(0): at most one OPT, version 0.
	var opt *mdns.OPT
	for _, rr := range req.Extra {
		if o, ok := rr.(*mdns.OPT); ok {
			if opt != nil {
				resp.Rcode = mdns.RcodeFormatError
				return resp
			}
			opt = o
		}
	}
	var ecs *mdns.EDNS0_SUBNET
	if opt != nil {
		ropt := &mdns.OPT{Hdr: mdns.RR_Header{Name: ".", Rrtype: mdns.TypeOPT}}
		ropt.SetUDPSize(s.cfg.MaxUDPSize)
		ropt.SetDo(opt.Do()) // RFC 3225: copy DO
		resp.Extra = append(resp.Extra, ropt)
		if opt.Version() != 0 {
			resp.Rcode = mdns.RcodeBadVers
			return resp
		}
		for _, o := range opt.Option {
			sub, ok := o.(*mdns.EDNS0_SUBNET)
			if !ok {
				continue
			}
			if ecs != nil || !validECS(sub) {
				resp.Rcode = mdns.RcodeFormatError
				return resp
			}
			ecs = sub
		}
	}

	q := req.Question[0]
	name := strings.ToLower(q.Name)
	switch {
	case q.Qclass != mdns.ClassINET:
		resp.Rcode = mdns.RcodeRefused // no zone in any other class
		return resp
	case q.Qtype == mdns.TypeOPT:
		resp.Rcode = mdns.RcodeFormatError
		return resp
	case !mdns.IsSubDomain(s.cfg.Zone, name):
		resp.Rcode = mdns.RcodeRefused // not authoritative, no recursion
		return resp
	case q.Qtype == mdns.TypeAXFR || q.Qtype == mdns.TypeIXFR:
		resp.Rcode = mdns.RcodeRefused // zone transfers are not offered
		return resp
	}
	resp.Authoritative = true

	client, clientPrefix := steeringClient(ecs, remote)
	scope := s.resolve(resp, name, q.Qtype, client, clientPrefix)
	if ecs != nil {
		echo := *ecs
		echo.SourceScope = uint8(min(scope, maxBits(ecs.Family)))
		opt := resp.Extra[0].(*mdns.OPT)
		opt.Option = append(opt.Option, &echo)
	}
	return resp
}

// resolve fills the answer and authority sections for a question in the
// zone and returns the ECS scope the answer depended on.
func (s *Server) resolve(resp *mdns.Msg, name string, qtype uint16, client netip.Addr, prefix int) int {
	apex := name == s.cfg.Zone
	if apex {
		switch qtype {
		case mdns.TypeSOA:
			resp.Answer = append(resp.Answer, s.soa(s.cfg.DefaultTTL))
			return 0
		case mdns.TypeNS:
			for _, ns := range s.cfg.NS {
				resp.Answer = append(resp.Answer, &mdns.NS{Hdr: s.hdr(s.cfg.Zone, mdns.TypeNS, s.cfg.NSTTL), Ns: ns})
			}
			for _, ns := range s.cfg.NS {
				for _, a := range s.cfg.Glue[ns] {
					resp.Extra = append(resp.Extra, s.addrRR(ns, a, s.cfg.NSTTL))
				}
			}
			return 0
		}
	}
	if glue, ok := s.cfg.Glue[name]; ok {
		for _, a := range glue {
			if (qtype == mdns.TypeA) == a.Unmap().Is4() && (qtype == mdns.TypeA || qtype == mdns.TypeAAAA) {
				resp.Answer = append(resp.Answer, s.addrRR(name, a, s.cfg.NSTTL))
			}
		}
		if len(resp.Answer) == 0 {
			resp.Ns = append(resp.Ns, s.soa(s.negativeTTL()))
		}
		return 0
	}
	if qtype == mdns.TypeANY {
		// RFC 8482: answer ANY with one synthesised HINFO record.
		resp.Answer = append(resp.Answer, &mdns.HINFO{Hdr: s.hdr(name, mdns.TypeHINFO, s.cfg.DefaultTTL), Cpu: "RFC8482"})
		return 0
	}

	scope := 0
	exists := apex
	if qtype == mdns.TypeA || qtype == mdns.TypeAAAA {
		ans, ok := s.steerer.Steer(Query{Name: name, Type: qtype, Client: client, ClientPrefix: prefix})
		if ok {
			exists = true
			scope = ans.Scope
			ttl := ans.TTL
			if ttl == 0 {
				ttl = s.cfg.DefaultTTL
			}
			for _, a := range ans.Addrs {
				if a.IsValid() && (qtype == mdns.TypeA) == a.Unmap().Is4() {
					resp.Answer = append(resp.Answer, s.addrRR(name, a, ttl))
				}
			}
			if len(resp.Answer) > 0 {
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
		ans, ok := s.steerer.Steer(Query{Name: name, Type: t, Client: client, ClientPrefix: prefix})
		if ok {
			exists = true
			scope = max(scope, ans.Scope)
		}
	}
	if !exists {
		resp.Rcode = mdns.RcodeNameError
	}
	resp.Ns = append(resp.Ns, s.soa(s.negativeTTL()))
	return scope
}

func (s *Server) hdr(name string, t uint16, ttl uint32) mdns.RR_Header {
	return mdns.RR_Header{Name: name, Rrtype: t, Class: mdns.ClassINET, Ttl: ttl}
}

func (s *Server) soa(ttl uint32) *mdns.SOA {
	c := s.cfg.SOA
	return &mdns.SOA{
		Hdr: s.hdr(s.cfg.Zone, mdns.TypeSOA, ttl),
		Ns:  c.MName, Mbox: c.RName, Serial: c.Serial,
		Refresh: c.Refresh, Retry: c.Retry, Expire: c.Expire, Minttl: c.Minimum,
	}
}

// negativeTTL is the SOA TTL in NXDOMAIN and NODATA answers (RFC 2308).
func (s *Server) negativeTTL() uint32 { return min(s.cfg.DefaultTTL, s.cfg.SOA.Minimum) }

func (s *Server) addrRR(name string, a netip.Addr, ttl uint32) mdns.RR {
	a = a.Unmap()
	if a.Is4() {
		return &mdns.A{Hdr: s.hdr(name, mdns.TypeA, ttl), A: net.IP(a.AsSlice())}
	}
	return &mdns.AAAA{Hdr: s.hdr(name, mdns.TypeAAAA, ttl), AAAA: net.IP(a.AsSlice())}
}

// validECS checks an EDNS Client Subnet option from a query (RFC 7871
// section 6): a known family, a source prefix within it, a zero scope, and
// no address bits set beyond the source prefix.
func validECS(e *mdns.EDNS0_SUBNET) bool {
	if e.Family == 0 { // dig's "no client information" form, prefix 0
		return e.SourceNetmask == 0 && e.SourceScope == 0
	}
	if e.Family != 1 && e.Family != 2 {
		return false
	}
	if int(e.SourceNetmask) > maxBits(e.Family) || e.SourceScope != 0 {
		return false
	}
	a, ok := ecsAddr(e)
	if !ok {
		return false
	}
	p, err := a.Prefix(int(e.SourceNetmask))
	return err == nil && p.Addr() == a
}

func ecsAddr(e *mdns.EDNS0_SUBNET) (netip.Addr, bool) {
	switch e.Family {
	case 1:
		ip4 := e.Address.To4()
		if ip4 == nil {
			return netip.Addr{}, false
		}
		return netip.AddrFrom4([4]byte(ip4)), true
	case 2:
		ip16 := e.Address.To16()
		if ip16 == nil {
			return netip.Addr{}, false
		}
		return netip.AddrFrom16([16]byte(ip16)), true
	}
	return netip.Addr{}, false
}

func maxBits(family uint16) int {
	if family == 2 {
		return 128
	}
	return 32
}

// steeringClient is the address to steer by: the ECS address when the
// query carries one with a source prefix, else the resolver's.
func steeringClient(ecs *mdns.EDNS0_SUBNET, remote netip.Addr) (netip.Addr, int) {
	if ecs != nil && ecs.SourceNetmask > 0 {
		if a, ok := ecsAddr(ecs); ok {
			return a, int(ecs.SourceNetmask)
		}
	}
	remote = remote.Unmap()
	return remote, remote.BitLen()
}

// typeLabel bounds the query-type label of requests_total.
func typeLabel(t uint16) string {
	switch t {
	case mdns.TypeA, mdns.TypeAAAA, mdns.TypeSOA, mdns.TypeNS, mdns.TypeANY:
		return mdns.TypeToString[t]
	}
	return "other"
}

// pack applies rate limiting (UDP only) and the size limit, counts the
// response and encodes it. req may be only partly parsed.
func (s *Server) pack(resp, req *mdns.Msg, proto string, remote netip.Addr) []byte {
	if proto == protoUDP {
		switch s.rrl.allow(remote) {
		case rrlDrop:
			s.metrics.rrlDrops.Inc()
			return nil
		case rrlSlip:
			s.metrics.rrlDrops.Inc()
			resp = resp.Copy()
			resp.Answer, resp.Ns = nil, nil
			resp.Extra = onlyOPT(resp.Extra)
			resp.Truncated = true
		}
		size := minUDPSize
		if o := req.IsEdns0(); o != nil {
			size = int(min(max(o.UDPSize(), minUDPSize), s.cfg.MaxUDPSize))
		}
		resp.Truncate(size)
		if resp.Truncated {
			s.metrics.truncated.Inc()
		}
	}
	resp.Compress = true
	out, err := resp.Pack()
	if err != nil {
		fail := new(mdns.Msg)
		fail.SetRcode(resp, mdns.RcodeServerFailure)
		fail.Question = resp.Question
		resp = fail
		if out, err = resp.Pack(); err != nil {
			return nil
		}
	}
	s.metrics.responses.WithLabelValues(rcodeLabel(resp.Rcode)).Inc()
	return out
}

func onlyOPT(extra []mdns.RR) []mdns.RR {
	for _, rr := range extra {
		if rr.Header().Rrtype == mdns.TypeOPT {
			return []mdns.RR{rr}
		}
	}
	return nil
}

func rcodeLabel(rcode int) string {
	if s, ok := mdns.RcodeToString[rcode]; ok {
		return s
	}
	return "other"
}
