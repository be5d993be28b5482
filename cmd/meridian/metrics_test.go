package main

import (
	"crypto/tls"
	"crypto/x509"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/spf13/pflag"
	ctrlmetrics "sigs.k8s.io/controller-runtime/pkg/metrics"

	"meridian.dev/meridian/internal/tlsx"
)

// /metrics serves Meridian's registry and controller-runtime's together.
func TestMetricsServeControllerRuntimesToo(t *testing.T) {
	reg := prometheus.NewRegistry()
	ours := prometheus.NewCounter(prometheus.CounterOpts{Name: "meridian_test_total", Help: "a Meridian metric"})
	reg.MustRegister(ours)
	ctrls := prometheus.NewCounter(prometheus.CounterOpts{Name: "controller_runtime_test_total", Help: "one in controller-runtime's registry"})
	ctrlmetrics.Registry.MustRegister(ctrls)
	t.Cleanup(func() { ctrlmetrics.Registry.Unregister(ctrls) })
	ours.Inc()
	ctrls.Inc()
	srv := httptest.NewServer(metricsHandler(reg))
	defer srv.Close()
	resp, err := srv.Client().Get(srv.URL + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = resp.Body.Close() }()
	b, _ := io.ReadAll(resp.Body)
	for _, want := range []string{"meridian_test_total 1", "controller_runtime_test_total 1"} {
		if !strings.Contains(string(b), want) {
			t.Errorf("/metrics lacks %q", want)
		}
	}
}

// --metrics-tls-dir serves /metrics over HTTPS only, with the listener
// hardened (its meridian_http_* series beside the component's).
func TestMetricsOverTLS(t *testing.T) {
	dir := t.TempDir()
	pki := tlsx.LocalPKI{Dir: dir}
	if _, err := pki.Ensure(tlsx.CertRequest{Name: "metrics", IssueOptions: tlsx.IssueOptions{IPs: []net.IP{net.IPv4(127, 0, 0, 1)}}}); err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	_ = ln.Close()
	var m metricsFlags
	fs := pflag.NewFlagSet("test", pflag.ContinueOnError)
	m.register(fs, "127.0.0.1:9090", "test metrics")
	if err := fs.Parse([]string{"--metrics-addr", addr, "--metrics-tls-dir", pki.Path("metrics")}); err != nil {
		t.Fatal(err)
	}
	reg := prometheus.NewRegistry()
	tm, err := tlsx.NewMetrics(reg)
	if err != nil {
		t.Fatal(err)
	}
	if err := m.serve(reg, tm, slog.New(slog.NewTextHandler(io.Discard, nil))); err != nil {
		t.Fatal(err)
	}
	ca, err := os.ReadFile(filepath.Join(pki.CAPath(), "ca.crt"))
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(ca)
	hc := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}}}
	resp, err := hc.Get("https://" + addr + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	_ = resp.Body.Close()
	if resp.StatusCode != http.StatusOK || !strings.Contains(string(b), `meridian_http_open_connections{server="metrics"}`) {
		t.Errorf("GET https /metrics: %d\n%.300s\nwant 200 with the listener's own series", resp.StatusCode, b)
	}
	plain, err := http.Get("http://" + addr + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	_ = plain.Body.Close()
	if plain.StatusCode != http.StatusBadRequest {
		t.Errorf("plain HTTP to the TLS metrics listener: %d, want 400", plain.StatusCode)
	}
}
