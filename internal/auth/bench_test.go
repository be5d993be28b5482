package auth

import (
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/go-jose/go-jose/v4"
)

// BenchmarkDoor measures what the door adds to a request: an API key
// lookup, or a JWT check (its first one verifies the signature, the
// others hit the verified-token cache), and a tenant's token bucket.
func BenchmarkDoor(b *testing.B) {
	key := newKey(b, "k", jose.ES256)
	dir := b.TempDir()
	a, err := New(Options{
		APIKeysFile: writeFile(b, dir, "keys", keysFile),
		JWKSFile:    writeFile(b, dir, "jwks.json", string(jwks(b, key))),
		Issuer:      testIssuer, Audiences: []string{testAudience},
		TenantsFile: writeFile(b, dir, "tenants.yaml", "tenants:\n  acme: {rate: 1e9, maxConcurrent: 1000000, models: [sentiment]}\n"),
	}, nil, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(a.Close)
	h := a.Wrap(http.HandlerFunc(func(http.ResponseWriter, *http.Request) {}))
	for _, bc := range []struct{ name, authz string }{
		{"api-key", "Bearer " + acmeKey},
		{"jwt", "Bearer " + key.sign(b, claims(time.Now(), "acme"))},
	} {
		b.Run(bc.name, func(b *testing.B) {
			b.ReportAllocs()
			b.RunParallel(func(pb *testing.PB) {
				req := httptest.NewRequest(http.MethodPost, "/v2/models/sentiment/infer", nil)
				req.Header.Set("Authorization", bc.authz)
				for pb.Next() {
					w := httptest.NewRecorder()
					h.ServeHTTP(w, req)
					if w.Code != 200 {
						b.Errorf("%d %s", w.Code, w.Body)
						return
					}
				}
			})
		})
	}
}
