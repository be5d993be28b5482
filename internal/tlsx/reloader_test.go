package tlsx_test

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"meridian.dev/meridian/internal/testbin"
	"meridian.dev/meridian/internal/tlsx"
)

// A rotated server certificate reaches new connections without a restart,
// whichever way the files are replaced, while a connection opened before
// keeps its certificate and the listener is never touched.
func TestServerCertificateRotatesWithoutRestart(t *testing.T) {
	t.Parallel()
	explicit := func(dir string) tlsx.Files {
		return tlsx.Files{Cert: filepath.Join(dir, "server.pem"), Key: filepath.Join(dir, "server-key.pem"), CA: filepath.Join(dir, "ca.pem")}
	}
	for _, w := range []struct {
		name  string
		files func(dir string) tlsx.Files
		write func(t *testing.T, dir string, b tlsx.Bundle)
	}{
		{"kubelet secret volume", tlsx.Dir, kubeletWrite},
		{"WriteDir", tlsx.Dir, func(t *testing.T, dir string, b tlsx.Bundle) {
			if err := b.WriteDir(dir); err != nil {
				t.Fatal(err)
			}
		}},
		{"explicit paths rewritten in place", explicit, func(t *testing.T, dir string, b tlsx.Bundle) {
			f := explicit(dir)
			for path, data := range map[string][]byte{f.Key: b.Key, f.Cert: b.Cert, f.CA: b.CA} {
				if err := os.WriteFile(path, data, 0o600); err != nil {
					t.Fatal(err)
				}
			}
		}},
	} {
		t.Run(w.name, func(t *testing.T) {
			t.Parallel()
			ca := newCA(t)
			first, second := issue(t, ca, tlsx.UsageServer, "server"), issue(t, ca, tlsx.UsageServer, "server")
			dir := t.TempDir()
			w.write(t, dir, first)
			reg := prometheus.NewRegistry()
			m, err := tlsx.NewMetrics(reg)
			if err != nil {
				t.Fatal(err)
			}
			r, err := tlsx.NewReloader(w.files(dir), tlsx.ReloaderOptions{Name: "server", Interval: 10 * time.Millisecond, Metrics: m, Logger: quiet()})
			if err != nil {
				t.Fatal(err)
			}
			ctx, cancel := context.WithCancel(context.Background())
			var wg sync.WaitGroup
			wg.Go(func() { r.Run(ctx) })
			t.Cleanup(func() { cancel(); wg.Wait() })
			cfg, err := tlsx.ServerConfig(r, tlsx.ServerOptions{})
			if err != nil {
				t.Fatal(err)
			}
			url, _ := serveTLS(t, cfg)

			before := trusting(t, first)
			if got, _, _, err := get(t, before, url); err != nil || got.Cmp(serial(t, first)) != 0 {
				t.Fatalf("before the rotation: serial %v, %v; want %v", got, err, serial(t, first))
			}
			w.write(t, dir, second)
			testbin.Eventually(t, "a new connection to see the rotated certificate", 10*time.Second, func() (bool, string) {
				tr := trusting(t, first)
				defer tr.CloseIdleConnections()
				got, _, _, err := get(t, tr, url)
				return err == nil && got.Cmp(serial(t, second)) == 0, fmt.Sprintf("serial %v, %v", got, err)
			})
			if got, _, _, err := get(t, before, url); err != nil || got.Cmp(serial(t, first)) != 0 {
				t.Errorf("the connection opened before the rotation: serial %v, %v; want it kept at %v", got, err, serial(t, first))
			}
			if got := testbin.Metric(t, reg, "meridian_tls_reload_total", map[string]string{"name": "server", "result": "success"}); got != 2 {
				t.Errorf("successful loads: %v, want 2 (start and rotation)", got)
			}
			want := float64(r.Certificate().Leaf.NotAfter.Unix())
			if got := testbin.Metric(t, reg, "meridian_tls_certificate_expiry_timestamp_seconds", map[string]string{"name": "server", "cert": "leaf"}); got != want {
				t.Errorf("expiry gauge: %v, want the rotated certificate's %v", got, want)
			}
		})
	}
}

// A changed set that does not load is refused: the old pair keeps
// serving, every attempt is counted, the error is logged once, and the
// fixed files are picked up.
func TestBadNewFilesKeepThePreviousPair(t *testing.T) {
	t.Parallel()
	ca, other := newCA(t), newCA(t)
	for _, c := range []struct {
		name  string
		spoil func(b tlsx.Bundle) tlsx.Bundle
	}{
		{"truncated certificate", func(b tlsx.Bundle) tlsx.Bundle { b.Cert = b.Cert[:len(b.Cert)/2]; return b }},
		{"key of another certificate", func(b tlsx.Bundle) tlsx.Bundle { b.Key = issue(t, ca, tlsx.UsageServer, "x").Key; return b }},
		{"CA bundle that is not PEM", func(b tlsx.Bundle) tlsx.Bundle { b.CA = []byte("not a certificate\n"); return b }},
		{"CA bundle holding a key", func(b tlsx.Bundle) tlsx.Bundle { b.CA = append(b.CA, b.Key...); return b }},
		{"expired certificate", func(tlsx.Bundle) tlsx.Bundle {
			b, err := other.Issue(tlsx.IssueOptions{DNSNames: []string{"server"}, Usage: tlsx.UsageServer, TTL: time.Nanosecond})
			if err != nil {
				t.Fatal(err)
			}
			return b
		}},
	} {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			good, fixed := issue(t, ca, tlsx.UsageServer, "server"), issue(t, ca, tlsx.UsageServer, "server")
			dir := t.TempDir()
			if err := good.WriteDir(dir); err != nil {
				t.Fatal(err)
			}
			reg := prometheus.NewRegistry()
			m, err := tlsx.NewMetrics(reg)
			if err != nil {
				t.Fatal(err)
			}
			logs := &logLines{}
			r, err := tlsx.NewReloader(tlsx.Dir(dir), tlsx.ReloaderOptions{Name: "front", Metrics: m, Logger: slog.New(slog.NewTextHandler(logs, nil))})
			if err != nil {
				t.Fatal(err)
			}
			cfg, err := tlsx.ServerConfig(r, tlsx.ServerOptions{})
			if err != nil {
				t.Fatal(err)
			}
			url, _ := serveTLS(t, cfg)

			if err := c.spoil(fixed).WriteDir(dir); err != nil {
				t.Fatal(err)
			}
			for range 2 {
				if err := r.Reload(); err == nil {
					t.Fatal("Reload accepted a bad set")
				}
			}
			if got, _, _, err := get(t, trusting(t, good), url); err != nil || got.Cmp(serial(t, good)) != 0 {
				t.Fatalf("after a bad set: serial %v, %v; want the previous %v", got, err, serial(t, good))
			}
			if got := testbin.Metric(t, reg, "meridian_tls_reload_total", map[string]string{"name": "front", "result": "error"}); got != 2 {
				t.Errorf("errors counted: %v, want 2 (one per attempt)", got)
			}
			if got := logs.count("refusing a changed TLS certificate set"); got != 1 {
				t.Errorf("logged the refusal %d times, want once:\n%s", got, logs.String())
			}

			if err := fixed.WriteDir(dir); err != nil {
				t.Fatal(err)
			}
			if err := r.Reload(); err != nil {
				t.Fatalf("the fixed set: %v", err)
			}
			if got, _, _, err := get(t, trusting(t, good), url); err != nil || got.Cmp(serial(t, fixed)) != 0 {
				t.Fatalf("after fixing the files: serial %v, %v; want %v", got, err, serial(t, fixed))
			}
		})
	}
}

// The expiry gauge carries the leaf's and the CA bundle's NotAfter.
func TestExpiryGauge(t *testing.T) {
	t.Parallel()
	ca := newCA(t)
	b, err := ca.Issue(tlsx.IssueOptions{DNSNames: []string{"hub"}, Usage: tlsx.UsageBoth, TTL: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	if err := b.WriteDir(dir); err != nil {
		t.Fatal(err)
	}
	reg := prometheus.NewRegistry()
	m, err := tlsx.NewMetrics(reg)
	if err != nil {
		t.Fatal(err)
	}
	reloader(t, tlsx.Dir(dir), m, "hub")
	lf := leaf(t, b)
	if got := testbin.Metric(t, reg, "meridian_tls_certificate_expiry_timestamp_seconds", map[string]string{"name": "hub", "cert": "leaf"}); got != float64(lf.NotAfter.Unix()) {
		t.Errorf("leaf expiry %v, want %v", got, lf.NotAfter.Unix())
	}
	if d := time.Until(lf.NotAfter); d > time.Hour || d < 59*time.Minute {
		t.Errorf("a one-hour certificate expires in %v", d)
	}
	if got := testbin.Metric(t, reg, "meridian_tls_certificate_expiry_timestamp_seconds", map[string]string{"name": "hub", "cert": "ca"}); got != float64(ca.Cert.NotAfter.Unix()) {
		t.Errorf("CA expiry %v, want %v", got, ca.Cert.NotAfter.Unix())
	}
	if _, err := tlsx.NewMetrics(reg); err == nil || !strings.Contains(err.Error(), "already registered") {
		t.Errorf("registering twice on one registry: %v", err)
	}
}

// NewReloader says what is wrong with what it was given.
func TestNewReloaderRefuses(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	for _, c := range []struct {
		files tlsx.Files
		name  string
		want  string
	}{
		{tlsx.Dir(dir), "x", filepath.Join(dir, "tls.crt")},
		{tlsx.Files{Cert: "a.pem"}, "x", "certificate and its key together"},
		{tlsx.Files{}, "x", "no files"},
		{tlsx.Dir(dir), "", "Name is required"},
	} {
		if _, err := tlsx.NewReloader(c.files, tlsx.ReloaderOptions{Name: c.name, Logger: quiet()}); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%+v: %v, want an error naming %q", c.files, err, c.want)
		}
	}
}
