//go:build !dnsv2

package dns

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	mdns "github.com/miekg/dns"

	"meridian.dev/meridian/internal/testbin"
)

// zoneKeys makes dnssec-keygen-compatible key files for the test zone in a
// temporary directory: one combined signing key, or a KSK and a ZSK. It
// returns their prefixes and DNSKEYs by key tag.
func zoneKeys(t testing.TB, split bool) ([]string, map[uint16]*mdns.DNSKEY) {
	t.Helper()
	dir := t.TempDir()
	roles := []bool{false}
	if split {
		roles = []bool{false, true}
	}
	var prefixes []string
	keys := map[uint16]*mdns.DNSKEY{}
	for _, zsk := range roles {
		prefix, text, _, err := GenerateKey(dir, zone, zsk)
		if err != nil {
			t.Fatal(err)
		}
		rr, err := mdns.NewRR(text)
		if err != nil {
			t.Fatal(err)
		}
		k := rr.(*mdns.DNSKEY)
		keys[k.KeyTag()] = k
		prefixes = append(prefixes, prefix)
	}
	return prefixes, keys
}

func signedConfig(t testing.TB, split bool) (Config, map[uint16]*mdns.DNSKEY) {
	prefixes, keys := zoneKeys(t, split)
	cfg := testConfig()
	cfg.DNSSEC = DNSSEC{KeyFiles: prefixes}
	return cfg, keys
}

// verifySection checks every RRSIG in a section against the RRset it
// covers and the key it names, returning the key tags that signed each
// type.
func verifySection(t *testing.T, section []mdns.RR, keys map[uint16]*mdns.DNSKEY) map[uint16][]uint16 {
	t.Helper()
	signedBy := map[uint16][]uint16{}
	now := time.Now()
	for _, rr := range section {
		sig, ok := rr.(*mdns.RRSIG)
		if !ok {
			continue
		}
		var set []mdns.RR
		for _, x := range section {
			if x.Header().Rrtype == sig.TypeCovered && strings.EqualFold(x.Header().Name, sig.Hdr.Name) {
				set = append(set, x)
			}
		}
		k := keys[sig.KeyTag]
		if k == nil {
			t.Fatalf("RRSIG by unknown key %d", sig.KeyTag)
		}
		if err := sig.Verify(k, set); err != nil {
			t.Errorf("RRSIG over %s %s does not verify: %v", sig.Hdr.Name, mdns.TypeToString[sig.TypeCovered], err)
		}
		if !sig.ValidityPeriod(now) || !sig.ValidityPeriod(now.Add(-50*time.Minute)) || sig.ValidityPeriod(now.Add(25*time.Hour)) {
			t.Errorf("RRSIG valid %d..%d: want backdated an hour, expiring in 24h", sig.Inception, sig.Expiration)
		}
		signedBy[sig.TypeCovered] = append(signedBy[sig.TypeCovered], sig.KeyTag)
	}
	return signedBy
}

func exchange(t *testing.T, s *Server, proto string, q *mdns.Msg) *mdns.Msg {
	t.Helper()
	pkt, err := q.Pack()
	if err != nil {
		t.Fatal(err)
	}
	out := s.handle(pkt, proto, resolver)
	r := new(mdns.Msg)
	if err := r.Unpack(out); err != nil {
		t.Fatalf("response does not parse: %v", err)
	}
	return r
}

func TestDNSSECSignsAnswersAndDenials(t *testing.T) {
	t.Parallel()
	cfg, keys := signedConfig(t, true)
	s, reg := newTestServer(t, cfg)
	var ksk, zsk uint16
	for tag, k := range keys {
		if k.Flags&mdns.SEP != 0 {
			ksk = tag
		} else {
			zsk = tag
		}
	}

	// DNSKEY: both keys, signed by the KSK only.
	r := exchange(t, s, protoTCP, query(zone, mdns.TypeDNSKEY, do))
	if n := len(rrsOfType(r.Answer, mdns.TypeDNSKEY)); n != 2 || r.Rcode != mdns.RcodeSuccess {
		t.Fatalf("DNSKEY: %d keys, rcode %d; want 2", n, r.Rcode)
	}
	if by := verifySection(t, r.Answer, keys); !slices.Equal(by[mdns.TypeDNSKEY], []uint16{ksk}) {
		t.Errorf("DNSKEY signed by %v, want the KSK %d", by[mdns.TypeDNSKEY], ksk)
	}

	// A steered answer: signed by the ZSK.
	r = exchange(t, s, protoTCP, query("app."+zone, mdns.TypeA, do))
	if by := verifySection(t, r.Answer, keys); !slices.Equal(by[mdns.TypeA], []uint16{zsk}) {
		t.Errorf("A signed by %v, want the ZSK %d", by[mdns.TypeA], zsk)
	}

	// NXDOMAIN as a black lie: NOERROR, an NSEC at the name covering only
	// it, with RRSIG NSEC NXNAME; the SOA and NSEC signed.
	r = exchange(t, s, protoUDP, query("nope."+zone, mdns.TypeA, do))
	nsec := checkBlackLie(t, r, keys, "nope."+zone)
	if !slices.Equal(nsec.TypeBitMap, []uint16{mdns.TypeRRSIG, mdns.TypeNSEC, mdns.TypeNXNAME}) {
		t.Errorf("NXDOMAIN NSEC bitmap %v, want RRSIG NSEC NXNAME", typeNames(nsec.TypeBitMap))
	}
	// NODATA: the bitmap lists what the name has but the type asked.
	r = exchange(t, s, protoUDP, query("v4only."+zone, mdns.TypeAAAA, do))
	nsec = checkBlackLie(t, r, keys, "v4only."+zone)
	if slices.Contains(nsec.TypeBitMap, mdns.TypeAAAA) || !slices.Contains(nsec.TypeBitMap, mdns.TypeA) {
		t.Errorf("NODATA NSEC bitmap %v, want A and not AAAA", typeNames(nsec.TypeBitMap))
	}
	r = exchange(t, s, protoUDP, query(zone, mdns.TypeMX, do))
	nsec = checkBlackLie(t, r, keys, zone)
	for _, want := range []uint16{mdns.TypeSOA, mdns.TypeNS, mdns.TypeDNSKEY} {
		if !slices.Contains(nsec.TypeBitMap, want) {
			t.Errorf("apex NSEC bitmap %v lacks %s", typeNames(nsec.TypeBitMap), mdns.TypeToString[want])
		}
	}

	// With CO (compact answers OK, RFC 9824): the same denial, with the
	// NXDOMAIN rcode back and CO in the reply.
	co := query("nope."+zone, mdns.TypeA, do, func(m *mdns.Msg) { m.IsEdns0().SetCo() })
	r = exchange(t, s, protoUDP, co)
	if r.Rcode != mdns.RcodeNameError || !r.IsEdns0().Co() || len(rrsOfType(r.Ns, mdns.TypeNSEC)) != 1 {
		t.Errorf("DO+CO: rcode %s CO %v authority %v; want NXDOMAIN, CO, the signed NSEC", mdns.RcodeToString[r.Rcode], r.IsEdns0().Co(), r.Ns)
	}
	verifySection(t, r.Ns, keys)

	// Without DO: the unsigned answer, and a real NXDOMAIN.
	r = exchange(t, s, protoUDP, query("nope."+zone, mdns.TypeA, edns(1232)))
	if r.Rcode != mdns.RcodeNameError || len(rrsOfType(r.Ns, mdns.TypeRRSIG)) != 0 || len(rrsOfType(r.Ns, mdns.TypeNSEC)) != 0 {
		t.Errorf("without DO: rcode %s, authority %v; want NXDOMAIN with the SOA alone", mdns.RcodeToString[r.Rcode], r.Ns)
	}

	// The steered answer again, for another client with the same answer:
	// its signature comes from the cache.
	cached := testbin.Metric(t, reg, "meridian_glb_dns_dnssec_signatures_total", map[string]string{"result": "cached"})
	signed := testbin.Metric(t, reg, "meridian_glb_dns_dnssec_signatures_total", map[string]string{"result": "signed"})
	r = exchange(t, s, protoTCP, query("app."+zone, mdns.TypeA, do, ecs(1, "8.8.8.0", 24, 0)))
	verifySection(t, r.Answer, keys)
	if got := testbin.Metric(t, reg, "meridian_glb_dns_dnssec_signatures_total", map[string]string{"result": "cached"}); got != cached+1 {
		t.Errorf("cached signatures %v -> %v, want one more", cached, got)
	}
	// Another answer (Europe's address) is signed afresh.
	r = exchange(t, s, protoTCP, query("app."+zone, mdns.TypeA, do, ecs(1, "193.0.0.0", 24, 0)))
	verifySection(t, r.Answer, keys)
	if got := testbin.Metric(t, reg, "meridian_glb_dns_dnssec_signatures_total", map[string]string{"result": "signed"}); got != signed+1 {
		t.Errorf("signed signatures %v -> %v, want one more", signed, got)
	}
}

// checkBlackLie checks a NOERROR denial with an NSEC at name whose next
// name is name's immediate successor, all signed, and returns the NSEC.
func checkBlackLie(t *testing.T, r *mdns.Msg, keys map[uint16]*mdns.DNSKEY, name string) *mdns.NSEC {
	t.Helper()
	if r.Rcode != mdns.RcodeSuccess || len(r.Answer) != 0 {
		t.Fatalf("%s: rcode %s with %d answers, want NOERROR and none", name, mdns.RcodeToString[r.Rcode], len(r.Answer))
	}
	by := verifySection(t, r.Ns, keys)
	if len(by[mdns.TypeSOA]) != 1 || len(by[mdns.TypeNSEC]) != 1 {
		t.Errorf("%s: signed types %v, want the SOA and the NSEC", name, by)
	}
	nsecs := rrsOfType(r.Ns, mdns.TypeNSEC)
	if len(nsecs) != 1 {
		t.Fatalf("%s: %d NSEC records, want 1", name, len(nsecs))
	}
	n := nsecs[0].(*mdns.NSEC)
	if n.Hdr.Name != name || n.NextDomain != `\000.`+name || n.Hdr.Ttl != 10 {
		t.Errorf("NSEC %s -> %s TTL %d, want %s -> \\000.%s TTL 10", n.Hdr.Name, n.NextDomain, n.Hdr.Ttl, name, name)
	}
	return n
}

func rrsOfType(section []mdns.RR, t uint16) []mdns.RR {
	var out []mdns.RR
	for _, rr := range section {
		if rr.Header().Rrtype == t {
			out = append(out, rr)
		}
	}
	return out
}

func typeNames(types []uint16) []string {
	var out []string
	for _, t := range types {
		out = append(out, mdns.Type(t).String())
	}
	return out
}

// One key alone signs everything, DNSKEY included.
func TestDNSSECCombinedKey(t *testing.T) {
	t.Parallel()
	cfg, keys := signedConfig(t, false)
	s, _ := newTestServer(t, cfg)
	for _, q := range []*mdns.Msg{query(zone, mdns.TypeDNSKEY, do), query(zone, mdns.TypeSOA, do), query(zone, mdns.TypeNS, do)} {
		r := exchange(t, s, protoTCP, q)
		if by := verifySection(t, r.Answer, keys); len(by[q.Question[0].Qtype]) != 1 {
			t.Errorf("%s: signed %v, want one RRSIG", mdns.TypeToString[q.Question[0].Qtype], by)
		}
	}
}

// A signed answer too large for the client's buffer is truncated, and
// never exceeds it.
func TestDNSSECTruncatesOverUDP(t *testing.T) {
	t.Parallel()
	cfg, _ := signedConfig(t, false)
	s, _ := newTestServer(t, cfg)
	q := query("big."+zone, mdns.TypeA)
	q.SetEdns0(1232, true)
	pkt, _ := q.Pack()
	out := s.handle(pkt, protoUDP, resolver)
	r := new(mdns.Msg)
	if err := r.Unpack(out); err != nil || len(out) > 1232 || !r.Truncated {
		t.Fatalf("%d bytes, TC %v, err %v: want at most 1232 with TC", len(out), r.Truncated, err)
	}
}

// Keys that are not a matching ECDSA P-256 zone key are refused at New,
// saying how to make good ones.
func TestDNSSECRejectsBadKeys(t *testing.T) {
	t.Parallel()
	a, _ := zoneKeys(t, false)
	b, _ := zoneKeys(t, false)
	// a's public half with b's private half.
	priv, err := os.ReadFile(b[0] + ".private")
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(a[0]+".private", priv, 0o600); err != nil {
		t.Fatal(err)
	}
	other := filepath.Join(t.TempDir(), "other")
	otherPrefix, _, _, err := GenerateKey(other+"-dir", "other.example.", false)
	if err == nil {
		t.Fatalf("GenerateKey into a missing directory succeeded: %s", otherPrefix)
	}
	for name, prefixes := range map[string][]string{"mismatched private key": a, "missing files": {other}, "a key twice": {b[0], b[0] + ".key"}} {
		cfg := testConfig()
		cfg.DNSSEC.KeyFiles = prefixes
		_, err := New(cfg, SteererFunc(testSteerer), nil)
		if err == nil || !strings.Contains(err.Error(), "dnssec-keygen") {
			t.Errorf("%s: New returned %v, want an error that says how to make keys", name, err)
		}
	}
	cfg := testConfig()
	dir := t.TempDir()
	wrongZone, _, _, err := GenerateKey(dir, "other.example.", false)
	if err != nil {
		t.Fatal(err)
	}
	cfg.DNSSEC.KeyFiles = []string{wrongZone + ".key"}
	if _, err := New(cfg, SteererFunc(testSteerer), nil); err == nil || !strings.Contains(err.Error(), "not the zone") {
		t.Errorf("a key for another zone: New returned %v", err)
	}
}

// FuzzHandleSigned is FuzzHandle on a signed zone: whatever arrives, the
// answer is well formed, and every signature in it verifies.
func FuzzHandleSigned(f *testing.F) {
	for _, m := range []*mdns.Msg{
		query("app."+zone, mdns.TypeA, do),
		query("app."+zone, mdns.TypeA, do, ecs(1, "193.0.0.0", 24, 0)),
		query("nope."+zone, mdns.TypeA, do),
		query("v4only."+zone, mdns.TypeAAAA, do),
		query(zone, mdns.TypeDNSKEY, do),
		query(zone, mdns.TypeDNSKEY),
		query(zone, mdns.TypeNS, do),
		query(zone, mdns.TypeANY, do),
		query("ns1."+zone, mdns.TypeAAAA, do),
		query("big."+zone, mdns.TypeA, do),
		query(zone, mdns.TypeNSEC, do),
		query("a.b.c.nope."+zone, mdns.TypeRRSIG, do),
		query("nope."+zone, mdns.TypeAAAA, do, func(m *mdns.Msg) { m.IsEdns0().SetCo() }),
		query("nope."+zone, mdns.TypeNXNAME, do),
	} {
		b, err := m.Pack()
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b, false)
		f.Add(b, true)
	}
	cfg, keys := signedConfig(f, true)
	s, _ := newTestServer(f, cfg)
	f.Fuzz(func(t *testing.T, pkt []byte, tcp bool) {
		r := fuzzOnce(t, s, pkt, tcp)
		if r == nil || r.Truncated {
			return
		}
		verifySection(t, r.Answer, keys)
		verifySection(t, r.Ns, keys)
	})
}

// BenchmarkHandleSigned is BenchmarkHandle's A query with the DO bit on a
// signed zone: signatures come from the cache after the first.
func BenchmarkHandleSigned(b *testing.B) {
	cfg, _ := signedConfig(b, false)
	s, _ := newTestServer(b, cfg)
	for _, bc := range []struct {
		name string
		q    *mdns.Msg
	}{
		{"A_DO", query("app."+zone, mdns.TypeA, do)},
		{"NXDOMAIN_DO", query("nope."+zone, mdns.TypeA, do)},
	} {
		pkt, err := bc.q.Pack()
		if err != nil {
			b.Fatal(err)
		}
		b.Run(bc.name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				if s.handle(pkt, protoUDP, resolver) == nil {
					b.Fatal("no answer")
				}
			}
		})
	}
}

// TestAmplification's queries, and DNSKEY, with the DO bit on a zone
// signed with a KSK and a ZSK: signatures make answers bigger, and the
// bounds README.md documents for signed answers still hold.
func TestAmplificationSigned(t *testing.T) {
	t.Parallel()
	cfg, _ := signedConfig(t, true)
	_, addr := startServer(t, cfg)
	do4096 := func(m *mdns.Msg) { m.SetEdns0(4096, true) }
	measureAmplification(t, addr, []amplification{
		{"ANY +DO", query("app."+zone, mdns.TypeANY, do4096), 5, rfc8482},
		{"NXDOMAIN +DO", query("nope."+zone, mdns.TypeA, do4096), 10, nil},
		{"A +DO", query("app."+zone, mdns.TypeA, do4096), 5, nil},
		{"DNSKEY +DO", query(zone, mdns.TypeDNSKEY, do4096), 10, nil},
		{"200 A records +DO", query("big."+zone, mdns.TypeA, do4096), DefaultMaxUDPSize / 40.0, truncatedAtLimit},
	})
}
