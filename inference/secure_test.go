package inference

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"meridian.dev/meridian/internal/auth"
	"meridian.dev/meridian/internal/testbin"
	"meridian.dev/meridian/internal/tlsx"
)

// Serve with TLS and auth on: HTTPS only, the model answers a tenant's
// key, refuses a request without one (401) or over its quota (429), and
// /metrics needs an admin; a plain-HTTP client gets no model answer.
func TestServeTLSAndAuth(t *testing.T) {
	needRuntime(t)
	dir := t.TempDir()
	pki := tlsx.LocalPKI{Dir: filepath.Join(dir, "pki")}
	if _, err := pki.Ensure(tlsx.CertRequest{Name: "serve", IssueOptions: tlsx.IssueOptions{DNSNames: []string{"localhost"}, IPs: []net.IP{net.IPv4(127, 0, 0, 1)}}}); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	r, err := tlsx.NewReloader(tlsx.Dir(pki.Path("serve")), tlsx.ReloaderOptions{Name: "serve", Logger: log})
	if err != nil {
		t.Fatal(err)
	}
	cfg, err := tlsx.ServerConfig(r, tlsx.ServerOptions{})
	if err != nil {
		t.Fatal(err)
	}
	keys, tenants := filepath.Join(dir, "keys"), filepath.Join(dir, "tenants.yaml")
	writeTestFile(t, keys, "acme acme-key-0123456789abcdef\nops ops-key-0123456789abcdef\n")
	writeTestFile(t, tenants, "tenants:\n  acme: {rate: 0.001, burst: 2, models: [sentiment]}\n  ops: {admin: true}\n")
	srv, err := New(Options{ModelRepository: testbin.Models(t), Registry: prometheus.NewRegistry(), Logger: log, TLS: cfg,
		Auth: auth.Options{APIKeysFile: keys, TenantsFile: tenants}})
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	served := make(chan error, 1)
	go func() { served <- srv.Serve(ctx, ln, time.Second) }()
	defer func() {
		cancel()
		if err := <-served; err != nil {
			t.Errorf("Serve: %v", err)
		}
	}()

	ca, err := os.ReadFile(filepath.Join(pki.CAPath(), "ca.crt"))
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(ca)
	hc := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}}}
	base := "https://" + ln.Addr().String()
	do := func(method, path, key string) (int, http.Header) {
		t.Helper()
		req, _ := http.NewRequest(method, base+path, strings.NewReader(`{"text":"I love this"}`))
		if key != "" {
			req.Header.Set("Authorization", "Bearer "+key)
		}
		resp, err := hc.Do(req)
		if err != nil {
			t.Fatalf("%s %s: %v", method, path, err)
		}
		_, _ = io.Copy(io.Discard, resp.Body)
		_ = resp.Body.Close()
		if resp.TLS == nil {
			t.Errorf("%s %s answered without TLS", method, path)
		}
		return resp.StatusCode, resp.Header
	}
	if code, _ := do(http.MethodPost, "/analyze", ""); code != http.StatusUnauthorized {
		t.Errorf("no key: %d, want 401", code)
	}
	for i := range 2 {
		if code, _ := do(http.MethodPost, "/analyze", "acme-key-0123456789abcdef"); code != http.StatusOK {
			t.Errorf("acme request %d: %d, want 200", i, code)
		}
	}
	if code, h := do(http.MethodPost, "/analyze", "acme-key-0123456789abcdef"); code != http.StatusTooManyRequests || h.Get("Retry-After") == "" {
		t.Errorf("acme over its burst: %d Retry-After %q, want 429 with Retry-After", code, h.Get("Retry-After"))
	}
	if code, _ := do(http.MethodGet, "/metrics", "acme-key-0123456789abcdef"); code != http.StatusForbidden {
		t.Errorf("/metrics as acme: %d, want 403", code)
	}
	if code, _ := do(http.MethodGet, "/metrics", "ops-key-0123456789abcdef"); code != http.StatusOK {
		t.Errorf("/metrics as the admin: %d, want 200", code)
	}
	if code, _ := do(http.MethodGet, "/v2/health/ready", ""); code != http.StatusOK {
		t.Errorf("readiness without a key: %d, want 200 (probes carry no credentials)", code)
	}
	// Plain HTTP to the TLS port: refused (Go's TLS server answers 400).
	resp, err := http.Post("http://"+ln.Addr().String()+"/analyze", "application/json", strings.NewReader(`{"text":"hi"}`))
	if err != nil {
		t.Fatalf("plain HTTP to the TLS listener: %v, want a 400", err)
	}
	_ = resp.Body.Close()
	if resp.StatusCode != http.StatusBadRequest {
		t.Errorf("plain HTTP to the TLS listener: %d, want 400", resp.StatusCode)
	}
}

func writeTestFile(t *testing.T, path, body string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(body), 0o600); err != nil {
		t.Fatal(err)
	}
}
