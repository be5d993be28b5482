package charts_test

import (
	"crypto/ecdsa"
	"crypto/rand"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"math/big"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	mdns "github.com/miekg/dns"
)

// The credentials and files a chart's Secrets hold, made with the real
// meridian binary (meridian ca, meridian glb dnssec-keygen) or as an
// identity provider would, and the checks of what a component serves.

// run runs meridian with args and fails the test if it fails.
func run(t *testing.T, args ...string) {
	t.Helper()
	if out, err := exec.Command(meridian, args...).CombinedOutput(); err != nil {
		t.Fatalf("meridian %s: %v\n%s", strings.Join(args, " "), err, out)
	}
}

// issue issues a certificate from the CA in caDir, as a Secret's data.
func issue(t *testing.T, caDir, work string, args ...string) map[string][]byte {
	t.Helper()
	dir, err := os.MkdirTemp(work, "cert-")
	if err != nil {
		t.Fatal(err)
	}
	run(t, append([]string{"ca", "issue", "--ca-dir", caDir, "--out-dir", dir}, args...)...)
	out := map[string][]byte{}
	for _, k := range []string{"tls.crt", "tls.key", "ca.crt"} {
		out[k] = read(t, filepath.Join(dir, k))
	}
	return out
}

func read(t *testing.T, path string) []byte {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func serial(t *testing.T, certPEM []byte) *big.Int {
	t.Helper()
	b, _ := pem.Decode(certPEM)
	if b == nil {
		t.Fatal("no PEM certificate")
	}
	c, err := x509.ParseCertificate(b.Bytes)
	if err != nil {
		t.Fatal(err)
	}
	return c.SerialNumber
}

// servedSerial is the serial of the certificate addr serves (zero when
// the handshake fails).
func servedSerial(t *testing.T, addr string) *big.Int {
	t.Helper()
	conn, err := tls.DialWithDialer(&net.Dialer{Timeout: 5 * time.Second}, "tcp", addr, &tls.Config{InsecureSkipVerify: true}) //nolint:gosec // reads the served certificate; verification is the HTTP client's
	if err != nil {
		return new(big.Int)
	}
	defer func() { _ = conn.Close() }()
	return conn.ConnectionState().PeerCertificates[0].SerialNumber
}

func freeAddr(t *testing.T) string {
	t.Helper()
	for range 10 {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		addr := ln.Addr().String()
		_ = ln.Close()
		if pc, err := net.ListenPacket("udp", addr); err == nil { // DNS takes both
			_ = pc.Close()
			return addr
		}
	}
	t.Fatal("no port free for TCP and UDP")
	return ""
}

// unreachableKubeconfig points at a hub that is not there: the balancer
// answers from its (empty) last-known-good state, which is all this test
// asks of the hub.
func unreachableKubeconfig(t *testing.T, dir string) string {
	t.Helper()
	p := filepath.Join(dir, "kubeconfig")
	const kc = `apiVersion: v1
kind: Config
clusters: [{name: hub, cluster: {server: "https://127.0.0.1:1"}}]
users: [{name: glb, user: {token: none}}]
contexts: [{name: hub, context: {cluster: hub, user: glb}}]
current-context: hub
`
	if err := os.WriteFile(p, []byte(kc), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

var b64 = base64.RawURLEncoding

func jwks(t *testing.T, k *ecdsa.PublicKey) []byte {
	t.Helper()
	point, err := k.Bytes() // 0x04, X, Y
	if err != nil {
		t.Fatal(err)
	}
	b, err := json.Marshal(map[string]any{"keys": []map[string]string{{
		"kty": "EC", "crv": "P-256", "alg": "ES256", "use": "sig", "kid": "k1",
		"x": b64.EncodeToString(point[1:33]), "y": b64.EncodeToString(point[33:]),
	}}})
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func signJWT(t *testing.T, k *ecdsa.PrivateKey, iss, aud, tenant string) string {
	t.Helper()
	head, _ := json.Marshal(map[string]string{"alg": "ES256", "typ": "JWT", "kid": "k1"})
	now := time.Now()
	claims, _ := json.Marshal(map[string]any{"iss": iss, "aud": aud, "tenant": tenant,
		"iat": now.Unix(), "exp": now.Add(10 * time.Minute).Unix()})
	signed := b64.EncodeToString(head) + "." + b64.EncodeToString(claims)
	sum := sha256.Sum256([]byte(signed))
	r, s, err := ecdsa.Sign(rand.Reader, k, sum[:])
	if err != nil {
		t.Fatal(err)
	}
	return signed + "." + b64.EncodeToString(append(r.FillBytes(make([]byte, 32)), s.FillBytes(make([]byte, 32))...))
}

// checkSigned asserts that the zone's DNSKEY set is the Secret's two keys,
// signed by the key-signing one.
func checkSigned(t *testing.T, addr string, secret map[string][]byte) {
	t.Helper()
	want := map[uint16]uint16{} // key tag: flags
	for _, name := range []string{"ksk", "zsk"} {
		rr, err := mdns.NewRR(string(secret[name+".key"]))
		if err != nil || rr == nil {
			t.Fatalf("%s.key: %v", name, err)
		}
		k := rr.(*mdns.DNSKEY)
		want[k.KeyTag()] = k.Flags
	}
	m := new(mdns.Msg)
	m.SetQuestion("infer.example.com.", mdns.TypeDNSKEY)
	m.SetEdns0(4096, true)
	in, _, err := (&mdns.Client{Net: "tcp", Timeout: 5 * time.Second}).Exchange(m, addr)
	if err != nil {
		t.Fatalf("DNSKEY query: %v", err)
	}
	got, signers := map[uint16]uint16{}, map[uint16]bool{}
	for _, rr := range in.Answer {
		switch r := rr.(type) {
		case *mdns.DNSKEY:
			got[r.KeyTag()] = r.Flags
		case *mdns.RRSIG:
			signers[r.KeyTag] = true
		}
	}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("DNSKEY set %v (tag: flags), want the Secret's %v", got, want)
	}
	for tag, flags := range want {
		if flags == 257 && !signers[tag] {
			t.Errorf("DNSKEY set not signed by the key-signing key %d: %v", tag, signers)
		}
	}
}
