package dns

import (
	"encoding/binary"
	"net/netip"
	"sync"
	"sync/atomic"

	"github.com/prometheus/client_golang/prometheus"
)

// This file is the precomputed path: a geo-steered A or AAAA query is
// answered without the DNS library and without allocating. It reads the
// question and the OPT record (with its ECS option) straight from the
// packet, asks the Steerer as the full path does, finds the answer section
// for that outcome already encoded, and writes header, question, answer
// and OPT into the caller's buffer. Whatever it does not handle exactly as
// the full path (handler.go) would, it leaves to the full path: anything
// but one A/AAAA question in IN with at most an OPT, names with characters
// other than letters, digits, '-' and '_', EDNS options other than one
// valid ECS (source prefix > 0), cookies and padding, a DO bit while the
// zone is signed, NXDOMAIN and NODATA, and answers that would need TC.
//
// The answers are precomputed per (name, type, steering outcome): the
// outcome is what the Steerer returned (its addresses of the asked family,
// in order, and the TTL), so an answer is never stale. When the Steerer's
// view changes (a new snapshot steers a name elsewhere, a cluster's
// address changes), the next query sees a new outcome, its answer section
// is encoded once and published, and the outcomes of the old view are
// dropped when a name's list is full (maxOutcomes). Names enter the table
// when the full path has answered them from the Steerer with addresses.
//
// The answer's owner name is a pointer to the question (as sent, so it
// carries the query's letter case); the full path writes the lower-case
// name. Both are the same name to every resolver (RFC 4343).

const (
	// maxNames bounds the names with precomputed answers; a table that
	// would grow past it starts again empty.
	maxNames = 4096
	// maxOutcomes bounds the outcomes kept per name and type; a list that
	// would grow past it starts again with the new outcome.
	maxOutcomes = 16
	// maxNameLen is the longest name in wire form (RFC 1035 section 2.3.4).
	maxNameLen = 255

	flagRD = 1 << 8
	flagCD = 1 << 4
	flagAA = 1 << 10
	flagTC = 1 << 9
	flagDO = 1 << 15

	optionECS     = 8
	optionCookie  = 10
	optionPadding = 12
)

// answerTable holds the precomputed answers. Readers take no lock: the
// name map and each outcome list are replaced whole (copy on write).
type answerTable struct {
	mu    sync.Mutex // serialises writers
	names atomic.Pointer[map[string]*cachedName]
}

// cachedName is one name with precomputed answers.
type cachedName struct {
	name string // lower-case, fully qualified: the Query.Name asked
	// outcomes by type: [0] A, [1] AAAA.
	outcomes [2]atomic.Pointer[[]*outcome]
}

// outcome is one steering outcome with its answer section encoded.
type outcome struct {
	ttl   uint32
	addrs []netip.Addr // of the asked family, in the Steerer's order
	rrs   []byte       // the answer records, owners pointing at the question
}

// lookup returns the entry for the lower-case wire-form name key.
func (t *answerTable) lookup(key []byte) *cachedName {
	m := t.names.Load()
	if m == nil {
		return nil
	}
	return (*m)[string(key)]
}

// learn adds name (wire form key) to the table.
func (t *answerTable) learn(key []byte, name string) {
	t.mu.Lock()
	defer t.mu.Unlock()
	old := t.names.Load()
	if old != nil {
		if _, ok := (*old)[string(key)]; ok {
			return
		}
	}
	m := map[string]*cachedName{}
	if old != nil && len(*old) < maxNames {
		for k, v := range *old {
			m[k] = v
		}
	}
	m[string(key)] = &cachedName{name: name}
	t.names.Store(&m)
}

// find returns the outcome matching what the Steerer answered, encoding
// and publishing it the first time it is seen; nil when ans has no address
// of the family.
func (t *answerTable) find(e *cachedName, qtype uint16, ans *Answer, ttl uint32) *outcome {
	slot := &e.outcomes[typeIndex(qtype)]
	if l := slot.Load(); l != nil {
		for _, o := range *l {
			if o.matches(qtype, ans.Addrs, ttl) {
				return o
			}
		}
	}
	o := newOutcome(qtype, ans.Addrs, ttl)
	if o == nil {
		return nil
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	var l []*outcome
	if old := slot.Load(); old != nil && len(*old) < maxOutcomes {
		l = append(l, *old...)
	}
	l = append(l, o)
	slot.Store(&l)
	return o
}

func typeIndex(qtype uint16) int {
	if qtype == TypeAAAA {
		return 1
	}
	return 0
}

// ofFamily says whether a is an address the full path puts in an answer
// of type qtype.
func ofFamily(a netip.Addr, qtype uint16) bool {
	return a.IsValid() && (qtype == TypeA) == a.Unmap().Is4()
}

// matches compares the outcome with the Steerer's addresses (those of the
// family, in order) and TTL.
func (o *outcome) matches(qtype uint16, addrs []netip.Addr, ttl uint32) bool {
	if o.ttl != ttl {
		return false
	}
	i := 0
	for _, a := range addrs {
		if !ofFamily(a, qtype) {
			continue
		}
		if i >= len(o.addrs) || o.addrs[i] != a.Unmap() {
			return false
		}
		i++
	}
	return i == len(o.addrs)
}

// newOutcome encodes the answer records for addrs; nil without any
// address of the family.
func newOutcome(qtype uint16, addrs []netip.Addr, ttl uint32) *outcome {
	o := &outcome{ttl: ttl}
	for _, a := range addrs {
		if !ofFamily(a, qtype) {
			continue
		}
		a = a.Unmap()
		o.addrs = append(o.addrs, a)
		raw := a.AsSlice()
		rr := make([]byte, 12, 12+len(raw))
		binary.BigEndian.PutUint16(rr[0:], 0xC000|headerLen) // the question's name
		binary.BigEndian.PutUint16(rr[2:], qtype)
		binary.BigEndian.PutUint16(rr[4:], classINET)
		binary.BigEndian.PutUint32(rr[6:], ttl)
		binary.BigEndian.PutUint16(rr[10:], uint16(len(raw)))
		o.rrs = append(o.rrs, append(rr, raw...)...)
	}
	if len(o.addrs) == 0 {
		return nil
	}
	return o
}

// fastQuery is what the precomputed path reads from a query; it lives on
// the stack.
type fastQuery struct {
	flags    uint16
	qEnd     int // end of the question section
	qtype    uint16
	key      [maxNameLen]byte // the name in wire form, lower-cased
	keyLen   int
	edns     bool
	udpSize  uint16
	do       bool
	ecs      bool
	ecsAt    int // offset of the ECS option's data (family) in the packet
	ecsLen   int // length of that data
	family   uint16
	source   uint8
	ecsAddr  netip.Addr
	resolver netip.Addr
}

// parseFast reads a query the precomputed path can answer; false sends it
// to the full path.
func parseFast(pkt []byte, q *fastQuery) bool {
	if len(pkt) < headerLen {
		return false
	}
	q.flags = binary.BigEndian.Uint16(pkt[2:])
	if q.flags&qrBit != 0 || (q.flags>>11)&0xF != opcodeQuery {
		return false
	}
	if binary.BigEndian.Uint16(pkt[4:]) != 1 || binary.BigEndian.Uint16(pkt[6:]) != 0 ||
		binary.BigEndian.Uint16(pkt[8:]) != 0 {
		return false
	}
	arcount := binary.BigEndian.Uint16(pkt[10:])
	if arcount > 1 {
		return false
	}
	off := headerLen
	for {
		if off >= len(pkt) {
			return false
		}
		l := int(pkt[off])
		if l == 0 {
			break
		}
		if l > 63 || off+1+l >= len(pkt) || q.keyLen+1+l+1 > maxNameLen {
			return false // a pointer, or too long
		}
		q.key[q.keyLen] = byte(l)
		for i, c := range pkt[off+1 : off+1+l] {
			switch {
			case c >= 'a' && c <= 'z', c >= '0' && c <= '9', c == '-', c == '_':
			case c >= 'A' && c <= 'Z':
				c += 'a' - 'A'
			default:
				return false // would need escaping in the name's text form
			}
			q.key[q.keyLen+1+i] = c
		}
		q.keyLen += 1 + l
		off += 1 + l
	}
	q.key[q.keyLen] = 0
	q.keyLen++
	off++
	if off+4 > len(pkt) || binary.BigEndian.Uint16(pkt[off+2:]) != classINET {
		return false
	}
	q.qtype = binary.BigEndian.Uint16(pkt[off:])
	if q.qtype != TypeA && q.qtype != TypeAAAA {
		return false
	}
	off += 4
	q.qEnd = off
	if arcount == 0 {
		return off == len(pkt)
	}
	// The OPT: root owner, type, size, extended rcode, version, flags.
	if off+11 > len(pkt) || pkt[off] != 0 || binary.BigEndian.Uint16(pkt[off+1:]) != typeOPT ||
		pkt[off+5] != 0 || pkt[off+6] != 0 {
		return false
	}
	q.edns = true
	q.udpSize = binary.BigEndian.Uint16(pkt[off+3:])
	q.do = binary.BigEndian.Uint16(pkt[off+7:])&flagDO != 0
	rdlen := int(binary.BigEndian.Uint16(pkt[off+9:]))
	off += 11
	if off+rdlen != len(pkt) {
		return false
	}
	for off < len(pkt) {
		if off+4 > len(pkt) {
			return false
		}
		code, n := binary.BigEndian.Uint16(pkt[off:]), int(binary.BigEndian.Uint16(pkt[off+2:]))
		off += 4
		if off+n > len(pkt) {
			return false
		}
		switch code {
		case optionECS:
			if q.ecs || !parseECS(pkt[off:off+n], q) {
				return false
			}
			q.ecs, q.ecsAt, q.ecsLen = true, off, n
		case optionCookie, optionPadding: // ignored, as the full path does
		default:
			return false
		}
		off += n
	}
	return true
}

// parseECS reads a valid ECS option with a non-zero source prefix and
// exactly the address bytes it needs (RFC 7871 section 6).
func parseECS(b []byte, q *fastQuery) bool {
	if len(b) < 4 {
		return false
	}
	q.family, q.source = binary.BigEndian.Uint16(b), b[2]
	if b[3] != 0 || q.source == 0 || (q.family != 1 && q.family != 2) || int(q.source) > maxBits(q.family) {
		return false
	}
	need := (int(q.source) + 7) / 8
	if len(b) != 4+need {
		return false
	}
	addr := b[4:]
	if r := q.source % 8; r != 0 && addr[need-1]&(0xFF>>r) != 0 {
		return false // bits set beyond the source prefix
	}
	if q.family == 1 {
		var a [4]byte
		copy(a[:], addr)
		q.ecsAddr = netip.AddrFrom4(a)
	} else {
		var a [16]byte
		copy(a[:], addr)
		q.ecsAddr = netip.AddrFrom16(a)
	}
	return true
}

// fastMetrics are the series the precomputed path counts, resolved once
// (WithLabelValues allocates on every call).
type fastMetrics struct {
	requests [2][2]prometheus.Counter // [udp, tcp][A, AAAA]
	noerror  prometheus.Counter
}

func newFastMetrics(m *metrics) fastMetrics {
	var f fastMetrics
	for i, proto := range []string{protoUDP, protoTCP} {
		f.requests[i][0] = m.requests.WithLabelValues(proto, "A")
		f.requests[i][1] = m.requests.WithLabelValues(proto, "AAAA")
	}
	f.noerror = m.responses.WithLabelValues(rcodeLabel(rcodeSuccess))
	return f
}

// fullHint is what the precomputed path hands the full path when it
// gives up on a query it parsed: the name's key, so a positive answer
// from the Steerer enters the name in the table, and the Steerer's answer
// when it was already asked (so it is asked once per query: a Steerer
// may count queries).
type fullHint struct {
	learn   bool   // answerFast: the name is not in the table yet
	key     []byte // the name's key, when learn
	steered bool
	ans     Answer
	ok      bool
}

// answerFast answers q into buf. It returns handled false when the full
// path must answer (hint says what was learnt), else the response (nil:
// dropped by rate limiting).
func (s *Server) answerFast(pkt []byte, q *fastQuery, proto string, buf []byte, hint *fullHint) (out []byte, handled bool) {
	if s.signer != nil && q.do {
		return nil, false // signed answers take the full path
	}
	e := s.answers.lookup(q.key[:q.keyLen])
	if e == nil {
		hint.learn = true
		return nil, false
	}
	sq := Query{Name: e.name, Type: q.qtype, Resolver: q.resolver}
	if q.ecs {
		sq.Client, sq.ClientPrefix = q.ecsAddr, int(q.source)
	} else {
		sq.Client, sq.ClientPrefix = q.resolver, q.resolver.BitLen()
	}
	ans, ok, panicked := s.steerSafe(sq)
	if panicked {
		return nil, false // the full path asks again and answers SERVFAIL
	}
	hint.steered, hint.ans, hint.ok = true, ans, ok
	if !ok {
		return nil, false // NXDOMAIN, or NODATA if the other type exists
	}
	ttl := ans.TTL
	if ttl == 0 {
		ttl = s.cfg.DefaultTTL
	}
	o := s.answers.find(e, q.qtype, &ans, ttl)
	if o == nil {
		return nil, false // NODATA
	}

	// Sizes: the full path truncates what does not fit; leave that to it.
	qlen := q.qEnd - headerLen
	size := headerLen + qlen + len(o.rrs)
	if q.edns {
		size += 11
		if q.ecs {
			size += 4 + q.ecsLen
		}
	}
	limit := len(buf)
	if proto == protoUDP {
		limit = minUDPSize
		if q.edns {
			limit = int(min(max(q.udpSize, minUDPSize), s.cfg.MaxUDPSize))
		}
		limit = min(limit, len(buf))
	}
	if size > limit {
		return nil, false
	}

	pi := 0
	if proto == protoTCP {
		pi = 1
	}
	s.fastMetrics.requests[pi][typeIndex(q.qtype)].Inc()
	rrs, ancount, flags := o.rrs, uint16(len(o.addrs)), uint16(qrBit|flagAA)|q.flags&(flagRD|flagCD)
	if proto == protoUDP {
		switch s.rrl.allow(q.resolver) {
		case rrlDrop:
			s.metrics.rrlDrops.Inc()
			return nil, true
		case rrlSlip: // TC and no records but the OPT, as response.slip
			s.metrics.rrlDrops.Inc()
			s.metrics.rrlSlips.Inc()
			s.metrics.truncated.Inc()
			rrs, ancount, flags = nil, 0, flags|flagTC
		}
	}

	b := buf[:0]
	b = append(b, pkt[0], pkt[1])
	b = binary.BigEndian.AppendUint16(b, flags)
	b = binary.BigEndian.AppendUint16(b, 1)
	b = binary.BigEndian.AppendUint16(b, ancount)
	b = binary.BigEndian.AppendUint16(b, 0)
	arcount := uint16(0)
	if q.edns {
		arcount = 1
	}
	b = binary.BigEndian.AppendUint16(b, arcount)
	b = append(b, pkt[headerLen:q.qEnd]...)
	b = append(b, rrs...)
	if q.edns {
		b = append(b, 0) // root
		b = binary.BigEndian.AppendUint16(b, typeOPT)
		b = binary.BigEndian.AppendUint16(b, s.cfg.MaxUDPSize)
		b = append(b, 0, 0) // extended rcode, version
		var oflags uint16
		if q.do {
			oflags = flagDO
		}
		b = binary.BigEndian.AppendUint16(b, oflags)
		if q.ecs {
			b = binary.BigEndian.AppendUint16(b, uint16(4+q.ecsLen))
			b = binary.BigEndian.AppendUint16(b, optionECS)
			b = binary.BigEndian.AppendUint16(b, uint16(q.ecsLen))
			at := len(b)
			b = append(b, pkt[q.ecsAt:q.ecsAt+q.ecsLen]...)
			b[at+3] = uint8(min(ans.Scope, maxBits(q.family))) // the scope
		} else {
			b = binary.BigEndian.AppendUint16(b, 0)
		}
	}
	s.fastMetrics.noerror.Inc()
	return b, true
}

// steerSafe asks the Steerer, reporting a panic instead of raising it.
func (s *Server) steerSafe(q Query) (ans Answer, ok, panicked bool) {
	defer func() {
		if r := recover(); r != nil {
			ans, ok, panicked = Answer{}, false, true
		}
	}()
	ans, ok = s.steerer.Steer(q)
	return ans, ok, false
}
