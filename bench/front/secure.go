package main

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/go-jose/go-jose/v4"
	"github.com/go-jose/go-jose/v4/jwt"

	"meridian.dev/meridian/bench/internal/glbfixture"
	"meridian.dev/meridian/internal/tlsx"
)

// The TLS variant of P3 (P3-TLS): the proxies terminate HTTPS with the
// same certificate (ECDSA P-256, issued by a Meridian CA made for the
// run) and pass requests on in plain HTTP to the same backends; wrk sends
// an ES256 JWT as a Bearer header on keep-alive connections. The
// balancer checks it with its auth door (--auth-jwks-file, --auth-issuer,
// --auth-audience), which verifies a token's signature once and then
// remembers it for a minute. HAProxy 2.6 has no such memory, so it runs
// twice: "haproxy-tls" only wants a Bearer header present (the cheap
// check; any string passes), the peer of P3-TLS's ratio, and
// "haproxy-jwt" verifies the signature, issuer, audience and expiry on
// every request with its jwt_verify converter (haproxyRules).
const (
	jwtIssuer   = "https://idp.bench.meridian.test/"
	jwtAudience = "meridian-bench"
	jwtKeyID    = "bench-es256"
)

// secure is what the TLS variant's proxies and load generator are given.
type secure struct {
	certDir string // the front's certificate, cert-manager layout
	pem     string // the same certificate and its key in one file (HAProxy's crt)
	jwks    string // the JSON Web Key Set holding the token's public key
	pubKey  string // that public key as PEM (HAProxy's jwt_verify)
	token   string // an ES256 JWT the issuer signed for tenant "bench"
	forged  string // the same claims signed by another key under the same key id
	client  *http.Client
}

// newSecure issues the certificate and signs the token under dir.
func newSecure(dir string) (*secure, error) {
	pki := tlsx.LocalPKI{Dir: filepath.Join(dir, "pki")}
	if _, err := pki.Ensure(tlsx.CertRequest{Name: "front", IssueOptions: tlsx.IssueOptions{
		DNSNames: []string{"localhost"}, IPs: []net.IP{net.IPv4(127, 0, 0, 1)}, Usage: tlsx.UsageServer}}); err != nil {
		return nil, fmt.Errorf("issuing the bench certificate: %w", err)
	}
	sc := &secure{certDir: pki.Path("front"), pem: filepath.Join(dir, "front.pem"),
		jwks: filepath.Join(dir, "jwks.json"), pubKey: filepath.Join(dir, "jwt-pub.pem")}
	var chain []byte
	for _, f := range []string{"tls.crt", "tls.key"} {
		b, err := os.ReadFile(filepath.Join(sc.certDir, f))
		if err != nil {
			return nil, err
		}
		chain = append(chain, b...)
	}
	if err := os.WriteFile(sc.pem, chain, 0o600); err != nil {
		return nil, err
	}
	ca, err := os.ReadFile(filepath.Join(pki.CAPath(), "ca.crt"))
	if err != nil {
		return nil, err
	}
	roots := x509.NewCertPool()
	if !roots.AppendCertsFromPEM(ca) {
		return nil, fmt.Errorf("no certificate in %s", pki.CAPath())
	}
	sc.client = &http.Client{Timeout: 5 * time.Second,
		Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: roots, MinVersion: tls.VersionTLS12}}}
	if err := sc.signToken(); err != nil {
		return nil, err
	}
	return sc, nil
}

// signToken makes an ES256 key, publishes its public half as a JWKS and
// a PEM file, and signs a token valid for a day; and a forged one.
func (sc *secure) signToken() error {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return err
	}
	other, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return err
	}
	set := jose.JSONWebKeySet{Keys: []jose.JSONWebKey{{Key: key.Public(), KeyID: jwtKeyID, Algorithm: string(jose.ES256), Use: "sig"}}}
	b, err := json.Marshal(set)
	if err != nil {
		return err
	}
	if err := os.WriteFile(sc.jwks, b, 0o644); err != nil {
		return err
	}
	der, err := x509.MarshalPKIXPublicKey(key.Public())
	if err != nil {
		return err
	}
	if err := os.WriteFile(sc.pubKey, pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der}), 0o644); err != nil {
		return err
	}
	if sc.token, err = signJWT(key); err != nil {
		return err
	}
	sc.forged, err = signJWT(other)
	return err
}

// signJWT signs the bench's claims, valid for a day, with key.
func signJWT(key *ecdsa.PrivateKey) (string, error) {
	sig, err := jose.NewSigner(jose.SigningKey{Algorithm: jose.ES256, Key: jose.JSONWebKey{Key: key, KeyID: jwtKeyID}},
		(&jose.SignerOptions{}).WithType("JWT"))
	if err != nil {
		return "", err
	}
	now := time.Now()
	return jwt.Signed(sig).Claims(map[string]any{
		"iss": jwtIssuer, "aud": jwtAudience, "sub": "bench",
		"iat": now.Unix(), "nbf": now.Unix(), "exp": now.Add(24 * time.Hour).Unix(),
	}).Serialize()
}

// glbArgs turn on the balancer's HTTPS front and its JWT door.
func (sc *secure) glbArgs() []string {
	return []string{"--tls-dir", sc.certDir, "--auth-jwks-file", sc.jwks,
		"--auth-issuer", jwtIssuer, "--auth-audience", jwtAudience}
}

// haproxyBind is the TLS variant's bind options.
func (sc *secure) haproxyBind() string { return " ssl crt " + sc.pem }

// haproxyRules make HAProxy refuse (403; the balancer answers 401) a
// request without a Bearer credential and, with verify, also one whose
// token is not what the balancer's door accepts: alg ES256, the
// signature against the public key, the issuer, the audience and the
// expiry. The issuer and audience are compared as strings (the token
// carries a single audience).
func (sc *secure) haproxyRules(verify bool) string {
	if !verify {
		return "  http-request deny unless { http_auth_bearer -m found }\n"
	}
	return fmt.Sprintf(`  http-request set-var(txn.bearer) http_auth_bearer
  http-request set-var(txn.now) date
  http-request deny unless { var(txn.bearer),jwt_header_query('$.alg') -m str ES256 }
  http-request deny unless { var(txn.bearer),jwt_verify("ES256","%s") -m int 1 }
  http-request deny unless { var(txn.bearer),jwt_payload_query('$.iss') -m str %s }
  http-request deny unless { var(txn.bearer),jwt_payload_query('$.aud') -m str %s }
  http-request deny if { var(txn.bearer),jwt_payload_query('$.exp','int'),sub(txn.now) -m int lt 0 }
`, sc.pubKey, jwtIssuer, jwtAudience)
}

// refused sends one inference request with token as its Bearer
// credential (none if empty) and wants it refused: the side's door is
// shut to that client.
func (sc *secure) refused(base, token string) (int, error) {
	req, err := http.NewRequest(http.MethodPost, base+glbfixture.InferPath, strings.NewReader(glbfixture.InferBody))
	if err != nil {
		return 0, err
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := sc.client.Do(req)
	if err != nil {
		return 0, err
	}
	_ = resp.Body.Close()
	if resp.StatusCode != http.StatusUnauthorized && resp.StatusCode != http.StatusForbidden {
		return resp.StatusCode, fmt.Errorf("%s answered %s to a request it should refuse, want 401 or 403", base, resp.Status)
	}
	return resp.StatusCode, nil
}

// checkDoors proves each side's door does what P3-TLS says it does: all
// refuse a request without a token; the balancer and haproxy-jwt also
// refuse a forged one, which haproxy-tls lets through.
func (sc *secure) checkDoors(sides []*side) error {
	for _, sd := range sides {
		code, err := sc.refused(sd.base, "")
		if err != nil {
			return err
		}
		forged := "passes (Bearer present is all it checks)"
		if sd.name == "haproxy-tls" {
			if err := answeredBy(&side{base: sd.base, client: sc.client, token: sc.forged}, ""); err != nil {
				return fmt.Errorf("%s with a forged token: %w, want it let through", sd.name, err)
			}
		} else {
			fc, err := sc.refused(sd.base, sc.forged)
			if err != nil {
				return err
			}
			forged = fmt.Sprintf("refused %d", fc)
		}
		fmt.Printf("P3-TLS: %s: no token refused %d; forged token %s\n", sd.name, code, forged)
	}
	return nil
}
