package tlsx_test

import (
	"context"
	"strings"
	"testing"

	"github.com/spf13/pflag"

	"meridian.dev/meridian/internal/tlsx"
)

// A server and a client configured from their flags alone speak mutual
// TLS; without TLS flags the server gets no config, and asking for client
// certificates without TLS is refused.
func TestFlags(t *testing.T) {
	t.Parallel()
	ca := newCA(t)
	serverDir, _ := fleetDir(t, issue(t, ca, tlsx.UsageServer, "region"), "unused")
	clientDir, _ := fleetDir(t, issue(t, ca, tlsx.UsageClient, "glb"), "unused")
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)

	parse := func(register func(fs *pflag.FlagSet), args ...string) {
		t.Helper()
		fs := pflag.NewFlagSet("test", pflag.ContinueOnError)
		register(fs)
		if err := fs.Parse(args); err != nil {
			t.Fatal(err)
		}
	}
	var sf tlsx.ServerFlags
	parse(func(fs *pflag.FlagSet) { sf.Register(fs, "tls", "the test server") },
		"--tls-dir", serverDir, "--tls-require-client-cert", "--tls-allowed-client", "glb,spiffe://x/y")
	cfg, err := sf.Config(ctx, tlsx.ReloaderOptions{Logger: quiet()})
	if err != nil || cfg == nil {
		t.Fatalf("server config: %v %v", cfg, err)
	}
	url, _ := serveTLS(t, cfg)
	var cf tlsx.ClientFlags
	parse(func(fs *pflag.FlagSet) { cf.Register(fs, "upstream-tls", "the test server") },
		"--upstream-tls-dir", clientDir, "--upstream-tls-server-name", "127.0.0.1")
	c, err := cf.Client(ctx, tlsx.ReloaderOptions{Logger: quiet()})
	if err != nil {
		t.Fatal(err)
	}
	tr := tlsx.NewTransport(c)
	t.Cleanup(tr.CloseIdleConnections)
	if _, body, _, err := get(t, tr, url); err != nil || body == "" {
		t.Fatalf("mutual TLS from flags: %q %v", body, err)
	}

	var plain tlsx.ServerFlags
	parse(func(fs *pflag.FlagSet) { plain.Register(fs, "tls", "x") })
	if cfg, err := plain.Config(ctx, tlsx.ReloaderOptions{}); cfg != nil || err != nil {
		t.Errorf("no TLS flags: %v %v, want no config", cfg, err)
	}
	var half tlsx.ServerFlags
	parse(func(fs *pflag.FlagSet) { half.Register(fs, "tls", "x") }, "--tls-require-client-cert")
	if _, err := half.Config(ctx, tlsx.ReloaderOptions{}); err == nil || !strings.Contains(err.Error(), "--tls-dir") {
		t.Errorf("client certificates without TLS: %v", err)
	}
	var missing tlsx.ServerFlags
	parse(func(fs *pflag.FlagSet) { missing.Register(fs, "tls", "x") }, "--tls-dir", t.TempDir())
	if _, err := missing.Config(ctx, tlsx.ReloaderOptions{Logger: quiet()}); err == nil || !strings.Contains(err.Error(), "--tls-") || !strings.Contains(err.Error(), "tls.crt") {
		t.Errorf("an empty --tls-dir: %v", err)
	}
}
