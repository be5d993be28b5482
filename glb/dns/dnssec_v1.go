//go:build !dnsv2

package dns

import (
	"crypto"
	"crypto/ecdh"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/hashicorp/golang-lru/v2/simplelru"
	mdns "github.com/miekg/dns"
)

// This file is online DNSSEC signing on github.com/miekg/dns v1: the
// zone's keys, the signature cache and the response's DNSSEC records.
// The dnsv2 build has no signing (dnssec_v2.go refuses keys).

// signer holds the zone's keys and the signatures it made recently.
type signer struct {
	zone     string
	dnskeys  []mdns.RR  // the DNSKEY RRset, TTL set
	keySig   []*zoneKey // sign the DNSKEY RRset
	dataSig  []*zoneKey // sign everything else
	validity time.Duration
	skew     time.Duration

	mu    sync.Mutex
	cache *simplelru.LRU[[sha256.Size]byte, cachedSigs]
}

type zoneKey struct {
	dnskey *mdns.DNSKEY
	priv   crypto.Signer
	tag    uint16
}

// cachedSigs are one RRset's signatures, one per signing key.
type cachedSigs struct {
	sigs []mdns.RR
	made time.Time
}

// newSigner loads cfg's keys for zone; nil without keys. dnskeyTTL is the
// DNSKEY RRset's TTL.
func newSigner(cfg DNSSEC, zone string, dnskeyTTL uint32) (*signer, error) {
	if len(cfg.KeyFiles) == 0 {
		return nil, nil
	}
	s := &signer{zone: zone, validity: cfg.Validity, skew: cfg.InceptionSkew}
	var ksk, zsk []*zoneKey
	for _, prefix := range cfg.KeyFiles {
		k, err := readKey(prefix, zone)
		if err == nil && slices.ContainsFunc(s.dnskeys, func(rr mdns.RR) bool { return rr.(*mdns.DNSKEY).PublicKey == k.dnskey.PublicKey }) {
			err = errors.New("the same key is given twice")
		}
		if err != nil {
			return nil, fmt.Errorf("dns: %w", keyFileError(prefix, err))
		}
		rr := *k.dnskey
		rr.Hdr.Ttl = dnskeyTTL
		s.dnskeys = append(s.dnskeys, &rr)
		if k.dnskey.Flags&mdns.SEP != 0 {
			ksk = append(ksk, k)
		} else {
			zsk = append(zsk, k)
		}
	}
	// One kind only: those keys sign everything (a combined signing key).
	s.keySig, s.dataSig = orKeys(ksk, zsk), orKeys(zsk, ksk)
	var err error
	if s.cache, err = simplelru.NewLRU[[sha256.Size]byte, cachedSigs](max(cfg.CacheSize, 1), nil); err != nil {
		return nil, fmt.Errorf("dns: %w", err)
	}
	return s, nil
}

// orKeys is a unless it is empty, else b.
func orKeys(a, b []*zoneKey) []*zoneKey {
	if len(a) > 0 {
		return a
	}
	return b
}

// readKey reads prefix.key and prefix.private and checks that they are an
// ECDSA P-256 zone key of zone and belong together.
func readKey(prefix, zone string) (*zoneKey, error) {
	f, err := os.Open(prefix + ".key")
	if err != nil {
		return nil, err
	}
	defer func() { _ = f.Close() }()
	rr, err := mdns.ReadRR(f, prefix+".key")
	if err != nil {
		return nil, err
	}
	k, ok := rr.(*mdns.DNSKEY)
	switch {
	case !ok:
		return nil, errors.New(".key holds no DNSKEY record")
	case !strings.EqualFold(k.Hdr.Name, zone):
		return nil, fmt.Errorf("the key is for %s, not the zone %s", k.Hdr.Name, zone)
	case k.Algorithm != mdns.ECDSAP256SHA256:
		return nil, fmt.Errorf("algorithm %d: only ECDSAP256SHA256 (13) is supported", k.Algorithm)
	case k.Flags&mdns.ZONE == 0 || k.Protocol != 3:
		return nil, errors.New("not a zone key (flags 256 or 257, protocol 3)")
	}
	pf, err := os.Open(prefix + ".private")
	if err != nil {
		return nil, err
	}
	defer func() { _ = pf.Close() }()
	priv, err := k.ReadPrivateKey(pf, prefix+".private")
	if err != nil {
		return nil, err
	}
	// The library takes the public half from the DNSKEY, so derive it
	// from the private scalar to see that the two files belong together.
	ec, ok := priv.(*ecdsa.PrivateKey)
	if !ok || k.PublicKey != derivedPublicKey(ec) {
		return nil, errors.New(".private does not hold the private key of the DNSKEY in .key")
	}
	return &zoneKey{dnskey: k, priv: ec, tag: k.KeyTag()}, nil
}

// publicKey is an ECDSA P-256 public key as a DNSKEY carries it (RFC 6605).
func publicKey(pub *ecdsa.PublicKey) string {
	b, err := pub.Bytes() // 0x04 || X || Y
	if err != nil {
		return ""
	}
	return base64.StdEncoding.EncodeToString(b[1:])
}

// derivedPublicKey is the DNSKEY public key of priv's private scalar, ""
// if it is not a P-256 scalar.
func derivedPublicKey(priv *ecdsa.PrivateKey) string {
	d, err := priv.Bytes()
	if err != nil {
		return ""
	}
	k, err := ecdh.P256().NewPrivateKey(d)
	if err != nil {
		return ""
	}
	return base64.StdEncoding.EncodeToString(k.PublicKey().Bytes()[1:])
}

// rrset is one owner name's records of one type, in a section.
type rrset struct {
	rrs []mdns.RR
	// key is the cache key: a hash of the RRset's content, canonical (its
	// records in presentation form, lower-cased and sorted), so the
	// cache's memory is bounded by its size alone.
	key [sha256.Size]byte
}

// rrsets groups a section's records into RRsets, in order of appearance.
func rrsets(section []mdns.RR) []*rrset {
	var out []*rrset
	idx := map[[2]string]*rrset{}
	for _, rr := range section {
		h := rr.Header()
		k := [2]string{strings.ToLower(h.Name), mdns.Type(h.Rrtype).String()}
		set, ok := idx[k]
		if !ok {
			set = &rrset{}
			idx[k] = set
			out = append(out, set)
		}
		set.rrs = append(set.rrs, rr)
	}
	for _, set := range out {
		lines := make([]string, len(set.rrs))
		for i, rr := range set.rrs {
			lines[i] = strings.ToLower(rr.String())
		}
		slices.Sort(lines)
		set.key = sha256.Sum256([]byte(strings.Join(lines, "\n")))
	}
	return out
}

// signatures are rs's RRSIGs, from the cache while they are young enough,
// else made now. made reports whether they were made now.
func (s *signer) signatures(rs *rrset, now time.Time) (sigs []mdns.RR, made bool, err error) {
	s.mu.Lock()
	c, ok := s.cache.Get(rs.key)
	s.mu.Unlock()
	if ok && now.Sub(c.made) < s.validity/4 && !now.Before(c.made) {
		return c.sigs, false, nil
	}
	keys := s.dataSig
	if rs.rrs[0].Header().Rrtype == mdns.TypeDNSKEY {
		keys = s.keySig
	}
	for _, k := range keys {
		sig := &mdns.RRSIG{
			Hdr:        mdns.RR_Header{Rrtype: mdns.TypeRRSIG, Class: mdns.ClassINET, Ttl: rs.rrs[0].Header().Ttl},
			Algorithm:  k.dnskey.Algorithm,
			KeyTag:     k.tag,
			SignerName: s.zone,
			Inception:  uint32(now.Add(-s.skew).Unix()),
			Expiration: uint32(now.Add(s.validity).Unix()),
		}
		if err := sig.Sign(k.priv, rs.rrs); err != nil {
			return nil, false, fmt.Errorf("dns: signing %s: %w", rs.rrs[0].Header().Name, err)
		}
		sigs = append(sigs, sig)
	}
	s.mu.Lock()
	s.cache.Add(rs.key, cachedSigs{sigs: sigs, made: now})
	s.mu.Unlock()
	return sigs, true, nil
}

// sign adds the RRSIGs of every RRset in the answer and authority
// sections; it returns how many RRSIGs were made and how many reused.
func (r *response) sign(s *signer, now time.Time) (signed, cached int, err error) {
	for _, sec := range []*[]mdns.RR{&r.msg.Answer, &r.msg.Ns} {
		var out []mdns.RR
		for _, set := range rrsets(*sec) {
			sigs, made, err := s.signatures(set, now)
			if err != nil {
				return signed, cached, err
			}
			if made {
				signed += len(sigs)
			} else {
				cached += len(sigs)
			}
			out = append(append(out, set.rrs...), sigs...)
		}
		*sec = out
	}
	return signed, cached, nil
}

func (r *response) currentRcode() int { return r.msg.Rcode }

// setCompactOK sets the CO bit of the response's OPT (RFC 9824).
func (r *response) setCompactOK() { r.opt.SetCo() }

// addDNSKEY answers with the zone's DNSKEY RRset.
func (r *response) addDNSKEY(s *signer) { r.msg.Answer = append(r.msg.Answer, s.dnskeys...) }

// addNSEC adds an NSEC record to the authority section.
func (r *response) addNSEC(name, next string, types []uint16, ttl uint32) {
	r.add(authoritySection, &mdns.NSEC{Hdr: hdr(name, mdns.TypeNSEC, ttl), NextDomain: next, TypeBitMap: types})
}

// GenerateKey makes an ECDSA P-256 key for zone, a zone-signing key
// (flags 256) when zsk is set, else a key-signing key (257, which alone
// signs everything), and writes it into dir as BIND's dnssec-keygen does:
// K<zone>.+013+<tag>.key with the DNSKEY and .private with the private key
// (mode 0600). It returns the files' prefix, for DNSSEC.KeyFiles, the
// DNSKEY record, for a trust anchor, and its DS (SHA-256), for the parent
// zone.
func GenerateKey(dir, zone string, zsk bool) (prefix, dnskey, ds string, err error) {
	zone = canonical(zone)
	if !isDomainName(zone) || zone == "." {
		return "", "", "", fmt.Errorf("dns: %q is not a zone name", zone)
	}
	k := &mdns.DNSKEY{
		Hdr:       mdns.RR_Header{Name: zone, Rrtype: mdns.TypeDNSKEY, Class: mdns.ClassINET, Ttl: DefaultNSTTL},
		Flags:     mdns.ZONE,
		Protocol:  3,
		Algorithm: mdns.ECDSAP256SHA256,
	}
	kind := "zone-signing"
	if !zsk {
		k.Flags |= mdns.SEP
		kind = "key-signing"
	}
	priv, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return "", "", "", fmt.Errorf("dns: generating a key: %w", err)
	}
	k.PublicKey = publicKey(&priv.PublicKey)
	prefix = filepath.Join(dir, fmt.Sprintf("K%s+%03d+%05d", zone, k.Algorithm, k.KeyTag()))
	pub := fmt.Sprintf("; This is a %s key, keyid %d, for %s\n%s\n", kind, k.KeyTag(), zone, k.String())
	if err := os.WriteFile(prefix+".key", []byte(pub), 0o644); err != nil {
		return "", "", "", fmt.Errorf("dns: %w", err)
	}
	if err := os.WriteFile(prefix+".private", []byte(k.PrivateKeyString(priv)), 0o600); err != nil {
		return "", "", "", fmt.Errorf("dns: %w", err)
	}
	return prefix, k.String(), k.ToDS(mdns.SHA256).String(), nil
}

// keyFileError wraps a key file problem with what to do about it.
func keyFileError(prefix string, err error) error {
	return fmt.Errorf("DNSSEC key %s: %w (make keys with `meridian glb dnssec-keygen --zone <zone>` or BIND's `dnssec-keygen -a ECDSAP256SHA256 <zone>`)", prefix, err)
}
