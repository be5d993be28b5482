package dns

import (
	"errors"
	"slices"
	"strings"
	"time"
)

// DNSSEC configures online signing of the zone (RFC 4035, with the
// minimally covering NSEC records of RFC 4470 and RFC 9824 for negative
// answers; doc.go says why). Answers to queries with the DO bit carry
// RRSIGs made when the answer is built, so steered answers, which differ
// by client, are signed as they are given out. The zero value (no
// KeyFiles) serves the zone unsigned.
type DNSSEC struct {
	// KeyFiles are the zone's keys as BIND key file prefixes, such as
	// "/etc/meridian/Kinfer.example.com.+013+12345": the prefix plus ".key"
	// holds the DNSKEY record and plus ".private" its private key, as
	// dnssec-keygen and GenerateKey write them. ECDSA P-256 (algorithm 13)
	// only. Either one key (a combined signing key, whatever its flags) or
	// key-signing keys (flags 257, SEP), which sign the DNSKEY RRset, with
	// zone-signing keys (256), which sign the rest.
	KeyFiles []string
	// Validity is how long a signature is valid after it is made.
	// Default 24h.
	Validity time.Duration
	// InceptionSkew backdates each signature's inception, so validators
	// whose clocks run behind accept it. Default 1h.
	InceptionSkew time.Duration
	// CacheSize bounds how many RRsets keep their signatures for reuse
	// (least recently used forgotten first); a signature is reused for at
	// most Validity/4, so every one handed out has at least three
	// quarters of its validity left. Default 10000.
	CacheSize int
}

// Defaults for DNSSEC.
const (
	DefaultSignatureValidity = 24 * time.Hour
	DefaultInceptionSkew     = time.Hour
	DefaultSignatureCache    = 10000
)

func (d DNSSEC) withDefaults() (DNSSEC, error) {
	if len(d.KeyFiles) == 0 {
		return d, nil
	}
	setDefault(&d.Validity, DefaultSignatureValidity)
	setDefault(&d.InceptionSkew, DefaultInceptionSkew)
	setDefault(&d.CacheSize, DefaultSignatureCache)
	if d.Validity < time.Minute || d.InceptionSkew < 0 || d.CacheSize < 0 {
		return d, errors.New("DNSSEC: validity must be at least a minute, the inception skew and cache size positive")
	}
	for i, f := range d.KeyFiles {
		d.KeyFiles[i] = strings.TrimSuffix(strings.TrimSuffix(f, ".key"), ".private")
	}
	return d, nil
}

// denyAndSign makes the answer to a DO query verifiable: an empty answer
// (NODATA, or NXDOMAIN told as a "black lie") gets an NSEC record at the
// query name that covers nothing but that name, then every RRset of the
// answer and authority sections gets its RRSIGs. A query with the CO bit
// (compact answers OK, RFC 9824) gets the NXDOMAIN rcode back, and CO.
func (s *Server) denyAndSign(resp *response, name string, qtype uint16, co bool) {
	rcode := resp.currentRcode()
	if resp.answers() == 0 && (rcode == rcodeSuccess || rcode == rcodeNameError) {
		if co {
			resp.setCompactOK()
		} else {
			resp.setRcode(rcodeSuccess)
		}
		next := `\000.` + name // the name's immediate successor (RFC 4470)
		resp.addNSEC(name, next, nsecTypes(name == s.cfg.Zone, rcode == rcodeNameError, qtype), s.negativeTTL())
	}
	signed, cached, err := resp.sign(s.signer, time.Now())
	s.metrics.signatures.WithLabelValues("signed").Add(float64(signed))
	s.metrics.signatures.WithLabelValues("cached").Add(float64(cached))
	if err != nil {
		resp.clearRecords()
		resp.setRcode(rcodeServerFailure)
	}
}

// nsecTypes is the type bitmap of a black-lie NSEC. A name that does not
// exist has only the NSEC and its RRSIG, and NXNAME (RFC 9824) to tell it
// apart from an empty non-terminal. A name that exists lists every type it
// may have but the one asked for: the steered A and AAAA (which of them
// has addresses varies by client and health, and claiming a type is
// harmless where denying one would let a resolver's aggressive NSEC
// cache deny it to other clients), and SOA, NS and DNSKEY at the apex.
func nsecTypes(apex, nxdomain bool, qtype uint16) []uint16 {
	if nxdomain {
		return []uint16{typeRRSIG, typeNSEC, typeNXNAME}
	}
	types := []uint16{TypeA, TypeAAAA, typeRRSIG, typeNSEC}
	if apex {
		types = append(types, typeNS, typeSOA, typeDNSKEY)
	}
	// The NSEC and its RRSIG exist at the name whatever was asked.
	types = slices.DeleteFunc(types, func(t uint16) bool { return t == qtype && t != typeRRSIG && t != typeNSEC })
	slices.Sort(types)
	return types
}
