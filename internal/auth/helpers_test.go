package auth

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/go-jose/go-jose/v4"
	"github.com/go-jose/go-jose/v4/jwt"
	"github.com/prometheus/client_golang/prometheus"
)

const (
	testIssuer   = "https://idp.example.test/"
	testAudience = "meridian"
)

// signingKey is a freshly generated private key with its key id and
// algorithm.
type signingKey struct {
	kid  string
	alg  jose.SignatureAlgorithm
	priv crypto.Signer
}

var (
	rsaOnce sync.Once
	rsaKey  *rsa.PrivateKey
)

// newKey generates a key for alg (RSA keys are costly: one is shared).
func newKey(t testing.TB, kid string, alg jose.SignatureAlgorithm) signingKey {
	t.Helper()
	var (
		priv crypto.Signer
		err  error
	)
	switch alg {
	case jose.RS256:
		rsaOnce.Do(func() { rsaKey, err = rsa.GenerateKey(rand.Reader, 2048) })
		priv = rsaKey
	case jose.ES256:
		priv, err = ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	case jose.EdDSA:
		_, priv, err = ed25519.GenerateKey(rand.Reader)
	}
	if err != nil || priv == nil {
		t.Fatalf("generating a %s key: %v", alg, err)
	}
	return signingKey{kid: kid, alg: alg, priv: priv}
}

// sign makes a JWT signed by k with claims.
func (k signingKey) sign(t testing.TB, claims map[string]any) string {
	t.Helper()
	sig, err := jose.NewSigner(jose.SigningKey{Algorithm: k.alg, Key: jose.JSONWebKey{Key: k.priv, KeyID: k.kid}},
		(&jose.SignerOptions{}).WithType("JWT"))
	if err != nil {
		t.Fatal(err)
	}
	tok, err := jwt.Signed(sig).Claims(claims).Serialize()
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

// claims are valid claims for tenant sub at now, changed by edits.
func claims(now time.Time, sub string, edits ...func(map[string]any)) map[string]any {
	c := map[string]any{
		"iss": testIssuer, "aud": []string{"other", testAudience}, "sub": sub,
		"iat": now.Unix(), "nbf": now.Unix(), "exp": now.Add(time.Hour).Unix(),
	}
	for _, e := range edits {
		e(c)
	}
	return c
}

// jwks is the public JSON Web Key Set of keys.
func jwks(t testing.TB, keys ...signingKey) []byte {
	t.Helper()
	var set jose.JSONWebKeySet
	for _, k := range keys {
		set.Keys = append(set.Keys, jose.JSONWebKey{Key: k.priv.Public(), KeyID: k.kid, Algorithm: string(k.alg), Use: "sig"})
	}
	data, err := json.Marshal(set)
	if err != nil {
		t.Fatal(err)
	}
	return data
}

// jwksServer is an identity provider's JWKS endpoint on loopback.
type jwksServer struct {
	*httptest.Server
	body    atomic.Pointer[[]byte]
	fetches atomic.Int64
}

func newJWKSServer(t testing.TB, keys ...signingKey) *jwksServer {
	s := &jwksServer{}
	s.publish(t, keys...)
	s.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		s.fetches.Add(1)
		w.Header().Set("Content-Type", "application/jwk-set+json")
		_, _ = w.Write(*s.body.Load())
	}))
	t.Cleanup(s.Close)
	return s
}

func (s *jwksServer) publish(t testing.TB, keys ...signingKey) {
	b := jwks(t, keys...)
	s.body.Store(&b)
}

// writeFile writes content to name in dir and returns its path.
func writeFile(t testing.TB, dir, name, content string) string {
	t.Helper()
	p := filepath.Join(dir, name)
	if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

// door is an Authenticator in front of a handler that answers with the
// tenant it was given, served on loopback.
type door struct {
	*Authenticator
	url string
	reg *prometheus.Registry
}

func newDoor(t testing.TB, opts Options) *door {
	t.Helper()
	return newDoorWith(t, opts, http.HandlerFunc(echoTenant))
}

func newDoorWith(t testing.TB, opts Options, h http.Handler) *door {
	t.Helper()
	reg := prometheus.NewRegistry()
	a, err := New(opts, reg, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	t.Cleanup(a.Close)
	srv := httptest.NewServer(a.Wrap(h))
	t.Cleanup(srv.Close)
	return &door{Authenticator: a, url: srv.URL, reg: reg}
}

func echoTenant(w http.ResponseWriter, r *http.Request) {
	t, ok := TenantFrom(r.Context())
	if !ok {
		_, _ = io.WriteString(w, "no tenant")
		return
	}
	_, _ = io.WriteString(w, string(t.Method)+":"+t.Name)
}

// answer is what the door answered.
type answer struct {
	code int
	body string
	h    http.Header
}

// do sends method path with headers (pairs of name, value) to the door.
func (d *door) do(t testing.TB, method, path string, headers ...string) answer {
	t.Helper()
	req, err := http.NewRequest(method, d.url+path, strings.NewReader("{}"))
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i+1 < len(headers); i += 2 {
		req.Header.Add(headers[i], headers[i+1])
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = resp.Body.Close() }()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return answer{code: resp.StatusCode, body: string(body), h: resp.Header}
}

func (d *door) infer(t testing.TB, model string, headers ...string) answer {
	t.Helper()
	return d.do(t, http.MethodPost, "/v2/models/"+model+"/infer", headers...)
}

func bearer(tok string) []string { return []string{"Authorization", "Bearer " + tok} }

// fakeClock is a clock tests move by hand.
type fakeClock struct {
	mu  sync.Mutex
	now time.Time
}

func newFakeClock() *fakeClock { return &fakeClock{now: time.Unix(1_800_000_000, 0)} }

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *fakeClock) Advance(d time.Duration) {
	c.mu.Lock()
	c.now = c.now.Add(d)
	c.mu.Unlock()
}
