package main

import (
	"crypto/x509"
	"net"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/spf13/pflag"

	"meridian.dev/meridian/internal/tlsx"
)

// `ca init` then `ca issue` write a CA and a certificate that loads and
// verifies against the CA's ca.crt, with the names, usage and lifetime
// asked for; init refuses to replace a CA without --force.
func TestCAInitIssue(t *testing.T) {
	dir := t.TempDir()
	caDir, out := filepath.Join(dir, "ca"), filepath.Join(dir, "glb")
	if msg, err := run("ca", "init", "--dir", caDir); err != nil || !strings.Contains(msg, "keep "+filepath.Join(caDir, "tls.key")+" secret") {
		t.Fatalf("ca init: %q %v", msg, err)
	}
	if _, err := run("ca", "init", "--dir", caDir); err == nil || !strings.Contains(err.Error(), "--force") {
		t.Errorf("ca init over a CA: %v, want a refusal naming --force", err)
	}
	msg, err := run("ca", "issue", "--ca-dir", caDir, "--out-dir", out, "--dns", "glb,glb.meridian-system.svc", "--ip", "127.0.0.1",
		"--uri", "spiffe://example.com/glb", "--usage", "both", "--ttl", "1h")
	if err != nil || !strings.Contains(msg, "usage server+client") {
		t.Fatalf("ca issue: %q %v", msg, err)
	}
	ca, err := tlsx.LoadCA(tlsx.Dir(caDir))
	if err != nil {
		t.Fatal(err)
	}
	r, err := tlsx.NewReloader(tlsx.Dir(out), tlsx.ReloaderOptions{Name: "glb"})
	if err != nil {
		t.Fatal(err)
	}
	leaf := r.Certificate().Leaf
	if !strings.Contains(msg, leaf.SerialNumber.Text(16)) {
		t.Errorf("output %q does not name serial %s", msg, leaf.SerialNumber.Text(16))
	}
	roots := x509.NewCertPool()
	roots.AddCert(ca.Cert)
	for _, name := range []string{"glb", "glb.meridian-system.svc", "127.0.0.1"} {
		for _, u := range []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth} {
			if _, err := leaf.Verify(x509.VerifyOptions{Roots: roots, DNSName: name, KeyUsages: []x509.ExtKeyUsage{u}}); err != nil {
				t.Errorf("%s for %v: %v", name, u, err)
			}
		}
	}
	if len(leaf.URIs) != 1 || leaf.URIs[0].String() != "spiffe://example.com/glb" || !leaf.IPAddresses[0].Equal(net.IPv4(127, 0, 0, 1)) {
		t.Errorf("SANs: %v %v", leaf.URIs, leaf.IPAddresses)
	}
	if d := time.Until(leaf.NotAfter); d > time.Hour || d < 59*time.Minute {
		t.Errorf("--ttl 1h: expires in %v", d)
	}
	explicit := filepath.Join(dir, "hub")
	if _, err := run("ca", "issue", "--ca-cert", filepath.Join(caDir, "tls.crt"), "--ca-key", filepath.Join(caDir, "tls.key"), "--out-dir", explicit, "--dns", "hub"); err != nil {
		t.Fatalf("ca issue --ca-cert --ca-key: %v", err)
	}
	if b, err := tlsx.Dir(explicit).Read(); err != nil || string(b.CA) != string(ca.Bundle().CA) {
		t.Errorf("issued from explicit CA files: ca.crt is not the CA (%v)", err)
	}
	if _, err := run("ca", "init", "--dir", caDir, "--force"); err != nil {
		t.Errorf("ca init --force: %v", err)
	}
	if again, _ := tlsx.LoadCA(tlsx.Dir(caDir)); again == nil || again.Cert.Equal(ca.Cert) {
		t.Error("ca init --force kept the old CA")
	}
}

func TestCAIssueRejectsBadFlags(t *testing.T) {
	caDir := filepath.Join(t.TempDir(), "ca")
	if _, err := run("ca", "init", "--dir", caDir); err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(t.TempDir(), "x")
	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"ca", "issue", "--out-dir", out, "--dns", "x"}, "--ca-dir"},
		{[]string{"ca", "issue", "--ca-dir", caDir, "--out-dir", out}, "at least one DNS name"},
		{[]string{"ca", "issue", "--ca-dir", caDir, "--out-dir", out, "--dns", "x", "--usage", "peer"}, "--usage"},
		{[]string{"ca", "issue", "--ca-dir", caDir, "--out-dir", out, "--uri", "glb"}, "--uri"},
		{[]string{"ca", "issue", "--ca-dir", t.TempDir(), "--out-dir", out, "--dns", "x"}, "tls.crt"},
		{[]string{"ca", "init"}, `required flag(s) "dir"`},
		{[]string{"ca", "issue", "--ca-dir", caDir, "--out-dir", caDir + "/", "--dns", "x"}, "the CA's own directory"},
	} {
		if _, err := run(c.args...); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%v: %v, want an error naming %q", c.args, err, c.want)
		}
	}
}

// Every flag of the ca subcommands says what it does.
func TestCAFlagsExplained(t *testing.T) {
	ca, _, err := newRoot().Find([]string{"ca"})
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range ca.Commands() {
		c.Flags().VisitAll(func(f *pflag.Flag) {
			if len(f.Usage) < 15 {
				t.Errorf("ca %s --%s: help %q explains nothing", c.Name(), f.Name, f.Usage)
			}
		})
		if c.Example == "" {
			t.Errorf("ca %s has no example", c.Name())
		}
	}
}
