package auth

import (
	"context"
	"io"
	"log/slog"
	"net/http"
	"testing"
	"time"

	"github.com/go-jose/go-jose/v4"
)

// FuzzCredentials feeds arbitrary Authorization and X-API-Key values to
// the credential parser and the JWT verifier: nothing panics, and nothing
// but the seed's own signed token names its tenant.
func FuzzCredentials(f *testing.F) {
	key := newKey(f, "k", jose.ES256)
	valid := key.sign(f, claims(time.Now(), "fuzz-tenant"))
	for _, s := range []string{
		"Bearer " + valid, "bearer  " + valid, "Bearer " + tamper(valid), "Bearer a.b.c", "Bearer ..",
		"Bearer eyJhbGciOiJub25lIn0.eyJzdWIiOiJ4In0.", "Basic Zm9vOmJhcg==", "Bearer", "Bearer =", "", "Bearer a b",
	} {
		f.Add(s, "")
	}
	f.Add("", "some-api-key-0123456789")
	src := &jwksSource{log: slog.New(slog.NewTextHandler(io.Discard, nil))}
	set, err := parseJWKS(jwks(f, key), src.log)
	if err != nil {
		f.Fatal(err)
	}
	src.set.Store(set)
	v := &jwtVerifier{keys: src, issuer: testIssuer, audiences: []string{testAudience}, skew: time.Minute, claims: DefaultTenantClaims, now: time.Now, cache: newJWTCache()}
	f.Fuzz(func(t *testing.T, authz, apiKey string) {
		h := http.Header{}
		if authz != "" {
			h.Set("Authorization", authz)
		}
		if apiKey != "" {
			h.Set(APIKeyHeader, apiKey)
		}
		cred, err := credentialFrom(h)
		if err != nil || cred.kind != credBearer || !looksLikeJWT(cred.secret) {
			return
		}
		tenant, err := v.verify(context.Background(), cred.secret)
		if err == nil && tenant != "fuzz-tenant" {
			t.Fatalf("a fuzzed token was accepted as tenant %q", tenant)
		}
	})
}
