//go:build dnsv2

package dns

import (
	"encoding/binary"
	"errors"
	"net/netip"
)

// The OPT record at the byte level, for the v2 build. At the pinned
// version codeberg.org/miekg/dns reads an ECS address only when it has
// all 4 (16) bytes, though RFC 7871 sends just the bytes of the source
// prefix (a /24 has 3), writes a wrong address when it packs one, and
// keeps only the last of several OPT records. So the v2 build finds the
// OPT in the packet, reads the ECS options from it, and writes its own
// OPT (wire_v2.go). None of this depends on the library.

const (
	optCodeSubnet = 8 // EDNS option code of ECS
	rrFixedLen    = 10
)

var errECS = errors.New("dns: malformed client subnet option")

// rawOPT counts the OPT records in the additional section of pkt and
// returns the RDATA of the first. pkt has already been parsed by the
// library; every read is bounds-checked all the same.
func rawOPT(pkt []byte) (n int, rdata []byte) {
	if len(pkt) < headerLen {
		return 0, nil
	}
	count := func(i int) int { return int(binary.BigEndian.Uint16(pkt[i:])) }
	qd, an, ns, ar := count(4), count(6), count(8), count(10)
	off := headerLen
	for range qd {
		if off = skipName(pkt, off) + 4; off < 4 {
			return n, rdata
		}
	}
	for i := range an + ns + ar {
		if off = skipName(pkt, off); off < 0 || off+rrFixedLen > len(pkt) {
			return n, rdata
		}
		typ, rdlen := binary.BigEndian.Uint16(pkt[off:]), count(off+8)
		off += rrFixedLen
		if off+rdlen > len(pkt) {
			return n, rdata
		}
		if i >= an+ns && typ == typeOPT {
			if n++; n == 1 {
				rdata = pkt[off : off+rdlen]
			}
		}
		off += rdlen
	}
	return n, rdata
}

// skipName returns the offset just past the name at off, or -1.
func skipName(pkt []byte, off int) int {
	for off < len(pkt) {
		switch c := pkt[off]; {
		case c == 0:
			return off + 1
		case c&0xC0 == 0xC0: // a compression pointer ends the name
			return off + 2
		case c&0xC0 == 0:
			off += 1 + int(c)
		default:
			return -1
		}
	}
	return -1
}

// subnetsIn reads the ECS options in an OPT's RDATA: how many there are,
// and the first. Like v1, an option that cannot be read at all (too
// short, unknown family, prefixes beyond the family) is an error, which
// makes the request FORMERR.
func subnetsIn(opt []byte) (n int, first clientSubnet, err error) {
	for len(opt) >= 4 {
		code, l := binary.BigEndian.Uint16(opt), int(binary.BigEndian.Uint16(opt[2:]))
		if l > len(opt)-4 {
			return n, first, errECS
		}
		data := opt[4 : 4+l]
		opt = opt[4+l:]
		if code != optCodeSubnet {
			continue
		}
		c, err := parseSubnet(data)
		if err != nil {
			return n, first, err
		}
		if n++; n == 1 {
			first = c
		}
	}
	return n, first, nil
}

// parseSubnet reads one ECS option; the address bytes, which are as many
// as the source prefix needs, are zero-padded to the family's length.
func parseSubnet(b []byte) (clientSubnet, error) {
	if len(b) < 4 {
		return clientSubnet{}, errECS
	}
	c := clientSubnet{family: binary.BigEndian.Uint16(b), source: b[2], scope: b[3]}
	switch c.family {
	case 0: // dig's "no client information" form
		if c.source != 0 {
			return c, errECS
		}
		return c, nil
	case 1:
		var a [4]byte
		copy(a[:], b[4:])
		c.addr = netip.AddrFrom4(a)
	case 2:
		var a [16]byte
		copy(a[:], b[4:])
		c.addr = netip.AddrFrom16(a)
	default:
		return c, errECS
	}
	if int(max(c.source, c.scope)) > maxBits(c.family) {
		return c, errECS
	}
	return c, nil
}

// appendSubnet appends c as an ECS option: the address cut to the bytes
// of its source prefix (RFC 7871 section 6). c has passed validECS, so no
// bit beyond the prefix is set.
func appendSubnet(b []byte, c clientSubnet) []byte {
	var addr []byte
	if c.family != 0 {
		addr = c.addr.AsSlice()[:(int(c.source)+7)/8]
	}
	b = binary.BigEndian.AppendUint16(b, optCodeSubnet)
	b = binary.BigEndian.AppendUint16(b, uint16(4+len(addr)))
	b = binary.BigEndian.AppendUint16(b, c.family)
	b = append(b, c.source, c.scope)
	return append(b, addr...)
}
