package auth_test

import (
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"

	"github.com/prometheus/client_golang/prometheus"

	"meridian.dev/meridian/internal/auth"
)

// A model server behind the door: tenant acme may call sentiment, at most
// 10 requests a second.
func Example() {
	dir, _ := os.MkdirTemp("", "auth-example")
	defer func() { _ = os.RemoveAll(dir) }()
	keys := filepath.Join(dir, "keys")
	tenants := filepath.Join(dir, "tenants.yaml")
	_ = os.WriteFile(keys, []byte("acme 4f3c2b1a0e9d8c7b6a5f4e3d\n"), 0o600)
	_ = os.WriteFile(tenants, []byte("tenants:\n  acme: {rate: 10, models: [sentiment]}\n"), 0o600)

	a, err := auth.New(auth.Options{
		APIKeysFile: keys,
		TenantsFile: tenants,
		ModelOf:     auth.ModelFromPath(map[string]string{"/analyze": "sentiment"}),
	}, prometheus.NewRegistry(), slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		fmt.Println(err)
		return
	}
	defer a.Close()
	models := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		t, _ := auth.TenantFrom(r.Context())
		fmt.Fprintf(w, "served %s", t.Name)
	})
	srv := httptest.NewServer(a.Wrap(models))
	defer srv.Close()

	for _, path := range []string{"/analyze", "/v2/models/textdir/infer"} {
		req, _ := http.NewRequest(http.MethodPost, srv.URL+path, nil)
		req.Header.Set("Authorization", "Bearer 4f3c2b1a0e9d8c7b6a5f4e3d")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			fmt.Println(err)
			return
		}
		body, _ := io.ReadAll(resp.Body)
		_ = resp.Body.Close()
		fmt.Println(path, resp.StatusCode, string(body))
	}
	// Output:
	// /analyze 200 served acme
	// /v2/models/textdir/infer 403 {"error":"tenant may not use model textdir"}
}
