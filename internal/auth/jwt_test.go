package auth

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/go-jose/go-jose/v4"

	"meridian.dev/meridian/internal/testbin"
)

func jwtOptions(t *testing.T, set []byte) Options {
	return Options{
		JWKSFile:  writeFile(t, t.TempDir(), "jwks.json", string(set)),
		Issuer:    testIssuer,
		Audiences: []string{testAudience},
	}
}

// TestJWT checks what a JWT must be to pass: signed by a key of the set
// with an accepted algorithm, from the issuer, for the audience, within
// its validity (give or take the clock skew), naming a tenant.
func TestJWT(t *testing.T) {
	t.Parallel()
	es, rs, ed := newKey(t, "es", jose.ES256), newKey(t, "rs", jose.RS256), newKey(t, "ed", jose.EdDSA)
	forger := newKey(t, "es", jose.ES256) // same kid, another key
	stranger := newKey(t, "nobody", jose.ES256)
	d := newDoor(t, jwtOptions(t, jwks(t, es, rs, ed)))
	now := time.Now()
	set := func(k string, v any) func(map[string]any) { return func(c map[string]any) { c[k] = v } }
	del := func(k string) func(map[string]any) { return func(c map[string]any) { delete(c, k) } }
	hs, err := jose.NewSigner(jose.SigningKey{Algorithm: jose.HS256, Key: []byte("0123456789abcdef0123456789abcdef")}, nil)
	if err != nil {
		t.Fatal(err)
	}
	hsToken := signWith(t, hs, claims(now, "acme"))

	for _, tc := range []struct {
		name     string
		header   []string
		code     int
		body     string // 200: the tenant the handler saw; else part of the error
		wwwError string // the challenge's error code; "" for a bare challenge
	}{
		{"ES256", bearer(es.sign(t, claims(now, "acme"))), 200, "jwt:acme", ""},
		{"RS256", bearer(rs.sign(t, claims(now, "acme"))), 200, "jwt:acme", ""},
		{"EdDSA", bearer(ed.sign(t, claims(now, "acme"))), 200, "jwt:acme", ""},
		{"tenant claim before sub", bearer(es.sign(t, claims(now, "user-7", set("tenant", "beta")))), 200, "jwt:beta", ""},
		{"single audience string", bearer(es.sign(t, claims(now, "acme", set("aud", testAudience)))), 200, "jwt:acme", ""},
		{"expired within the skew", bearer(es.sign(t, claims(now, "acme", set("exp", now.Add(-30*time.Second).Unix())))), 200, "jwt:acme", ""},
		{"no credentials", nil, 401, "credentials required", ""},
		{"expired", bearer(es.sign(t, claims(now, "acme", set("exp", now.Add(-2*time.Minute).Unix())))), 401, "expired", "invalid_token"},
		{"not yet valid", bearer(es.sign(t, claims(now, "acme", set("nbf", now.Add(5*time.Minute).Unix())))), 401, "not valid yet", "invalid_token"},
		{"issued in the future", bearer(es.sign(t, claims(now, "acme", set("iat", now.Add(5*time.Minute).Unix())))), 401, "future", "invalid_token"},
		{"wrong issuer", bearer(es.sign(t, claims(now, "acme", set("iss", "https://evil.test/")))), 401, "wrong issuer", "invalid_token"},
		{"wrong audience", bearer(es.sign(t, claims(now, "acme", set("aud", "someone-else")))), 401, "wrong audience", "invalid_token"},
		{"no expiry", bearer(es.sign(t, claims(now, "acme", del("exp")))), 401, "no expiry", "invalid_token"},
		{"no tenant", bearer(es.sign(t, claims(now, "", del("sub")))), 401, "names no tenant", "invalid_token"},
		{"bad signature", bearer(forger.sign(t, claims(now, "acme"))), 401, "bad signature", "invalid_token"},
		{"unknown kid", bearer(stranger.sign(t, claims(now, "acme"))), 401, "unknown key", "invalid_token"},
		{"HS256 refused", bearer(hsToken), 401, "RS256, ES256 or EdDSA", "invalid_token"},
		{"tampered payload", bearer(tamper(es.sign(t, claims(now, "acme")))), 401, "bad signature", "invalid_token"},
		{"basic scheme", []string{"Authorization", "Basic YWNtZTpzZWNyZXQ="}, 401, "unknown credentials", "invalid_token"},
		{"empty bearer", []string{"Authorization", "Bearer "}, 401, "send one credential", "invalid_request"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			a := d.infer(t, "sentiment", tc.header...)
			if a.code != tc.code || !strings.Contains(a.body, tc.body) {
				t.Fatalf("got %d %q, want %d containing %q", a.code, a.body, tc.code, tc.body)
			}
			if tc.code != 401 {
				return
			}
			c := a.h.Get("WWW-Authenticate")
			if !strings.HasPrefix(c, `Bearer realm="meridian"`) {
				t.Errorf("WWW-Authenticate = %q, want a Bearer challenge", c)
			}
			if got := strings.Contains(c, "error="); got != (tc.wwwError != "") || !strings.Contains(c, tc.wwwError) {
				t.Errorf("WWW-Authenticate = %q, want error %q", c, tc.wwwError)
			}
		})
	}
	if n := testbin.Metric(t, d.reg, "meridian_auth_requests_total", map[string]string{"result": "unauthenticated"}); n < 14 {
		t.Errorf("unauthenticated = %v, want every 401 counted", n)
	}
}

func signWith(t *testing.T, s jose.Signer, c map[string]any) string {
	t.Helper()
	payload, err := json.Marshal(c)
	if err != nil {
		t.Fatal(err)
	}
	obj, err := s.Sign(payload)
	if err != nil {
		t.Fatal(err)
	}
	tok, err := obj.CompactSerialize()
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

// tamper rewrites the token's payload to name another tenant, keeping the
// signature.
func tamper(tok string) string {
	parts := strings.Split(tok, ".")
	payload, _ := base64.RawURLEncoding.DecodeString(parts[1])
	payload = bytes.Replace(payload, []byte(`"acme"`), []byte(`"evil"`), 1)
	return parts[0] + "." + base64.RawURLEncoding.EncodeToString(payload) + "." + parts[2]
}

// TestJWKSRotation rotates the identity provider's keys: a token signed by
// a new key is refused while the published set lacks it, and accepted
// once the set has it, through the refresh that its unknown kid causes.
func TestJWKSRotation(t *testing.T) {
	t.Parallel()
	old, next := newKey(t, "2026-11", jose.ES256), newKey(t, "2026-12", jose.EdDSA)
	idp := newJWKSServer(t, old)
	d := newDoor(t, Options{JWKSURL: idp.URL, Issuer: testIssuer, Audiences: []string{testAudience}, JWKSMinRefresh: time.Nanosecond})
	now := time.Now()
	if a := d.infer(t, "m", bearer(old.sign(t, claims(now, "acme")))...); a.code != 200 {
		t.Fatalf("old key: %d %s", a.code, a.body)
	}
	tok := next.sign(t, claims(now, "acme"))
	if a := d.infer(t, "m", bearer(tok)...); a.code != 401 {
		t.Fatalf("key not yet published: %d %s, want 401", a.code, a.body)
	}
	idp.publish(t, old, next)
	before := idp.fetches.Load()
	if a := d.infer(t, "m", bearer(tok)...); a.code != 200 || a.body != "jwt:acme" {
		t.Fatalf("rotated key: %d %s, want 200", a.code, a.body)
	}
	if got := idp.fetches.Load() - before; got != 1 {
		t.Errorf("%d fetches for one unknown kid, want 1", got)
	}
	if n := testbin.Metric(t, d.reg, "meridian_auth_jwks_fetches_total", map[string]string{"result": "ok"}); n != 3 {
		t.Errorf("jwks fetches ok = %v, want 3: at start and for each unknown kid", n)
	}
}

// TestUnknownKidsCannotHammerTheProvider sends tokens with made-up key
// ids: within the minimum refresh interval they cause no fetch.
func TestUnknownKidsCannotHammerTheProvider(t *testing.T) {
	t.Parallel()
	idp := newJWKSServer(t, newKey(t, "real", jose.ES256))
	d := newDoor(t, Options{JWKSURL: idp.URL, Issuer: testIssuer, Audiences: []string{testAudience}, JWKSMinRefresh: time.Hour})
	testbin.Eventually(t, "the start fetch", 5*time.Second, func() bool { return idp.fetches.Load() == 1 })
	now := time.Now()
	for i := range 20 {
		k := newKey(t, "made-up-"+string(rune('a'+i)), jose.ES256)
		if a := d.infer(t, "m", bearer(k.sign(t, claims(now, "acme")))...); a.code != http.StatusUnauthorized {
			t.Fatalf("made-up kid: %d, want 401", a.code)
		}
	}
	if n := idp.fetches.Load(); n != 1 {
		t.Errorf("%d fetches, want only the start fetch", n)
	}
}

// TestVerifiedTokenCache checks that remembering verified tokens changes
// nothing a client can see: a token stops working when it expires, and
// when its key leaves the key set.
func TestVerifiedTokenCache(t *testing.T) {
	t.Parallel()
	clock := newFakeClock()
	k, other := newKey(t, "k", jose.ES256), newKey(t, "other", jose.ES256)
	opts := jwtOptions(t, jwks(t, k, other))
	opts.Now, opts.ClockSkew, opts.ReloadInterval = clock.Now, time.Second, 5*time.Millisecond
	d := newDoor(t, opts)
	now := clock.Now()
	short := bearer(k.sign(t, claims(now, "acme", func(c map[string]any) { c["exp"] = now.Add(10 * time.Second).Unix() })))
	for range 3 {
		if a := d.infer(t, "m", short...); a.code != 200 {
			t.Fatalf("fresh token: %d %s", a.code, a.body)
		}
	}
	clock.Advance(12 * time.Second)
	if a := d.infer(t, "m", short...); a.code != 401 || !strings.Contains(a.body, "expired") {
		t.Fatalf("token past its expiry and the skew: %d %s, want 401 expired", a.code, a.body)
	}

	long := bearer(k.sign(t, claims(clock.Now(), "acme")))
	if a := d.infer(t, "m", long...); a.code != 200 {
		t.Fatalf("token: %d %s", a.code, a.body)
	}
	tmp := writeFile(t, t.TempDir(), "jwks.json", string(jwks(t, other)))
	if err := os.Rename(tmp, opts.JWKSFile); err != nil {
		t.Fatal(err)
	}
	testbin.Eventually(t, "the withdrawn key's token to be refused", 5*time.Second, func() bool {
		return d.infer(t, "m", long...).code == 401
	})
}

// TestJWKSRefreshedOnTTL starts while the identity provider is down,
// picks up its keys once it answers (fetches are retried every
// JWKSMinRefresh until one succeeds, without any request asking), then
// follows a rotation.
func TestJWKSRefreshedOnTTL(t *testing.T) {
	t.Parallel()
	k1, k2 := newKey(t, "k1", jose.ES256), newKey(t, "k2", jose.ES256)
	idp := newJWKSServer(t, k1)
	var down atomic.Bool
	down.Store(true)
	flaky := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if down.Load() {
			http.Error(w, "down", http.StatusServiceUnavailable)
			return
		}
		idp.Config.Handler.ServeHTTP(w, r)
	}))
	t.Cleanup(flaky.Close)
	d := newDoor(t, Options{JWKSURL: flaky.URL, Issuer: testIssuer, Audiences: []string{testAudience},
		JWKSRefresh: 20 * time.Millisecond, JWKSMinRefresh: 20 * time.Millisecond})
	now := time.Now()
	if a := d.infer(t, "m", bearer(k1.sign(t, claims(now, "acme")))...); a.code != 401 {
		t.Fatalf("no keys yet: %d, want 401", a.code)
	}
	down.Store(false)
	testbin.Eventually(t, "the keys once the provider answers", 5*time.Second, func() bool {
		return d.infer(t, "m", bearer(k1.sign(t, claims(now, "acme")))...).code == 200
	})
	idp.publish(t, k2)
	testbin.Eventually(t, "the rotated key after a refresh", 5*time.Second, func() bool {
		return d.infer(t, "m", bearer(k2.sign(t, claims(now, "acme")))...).code == 200
	})
	if n := testbin.Metric(t, d.reg, "meridian_auth_jwks_fetches_total", map[string]string{"result": "error"}); n < 1 {
		t.Errorf("failed fetches = %v, want the ones while the provider was down", n)
	}
}
