package main

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"meridian.dev/meridian/bench/internal/glbfixture"
)

// corednsVersion is the CoreDNS release measured (its multisocket plugin
// came in v1.12.1).
const corednsVersion = "v1.15.0"

// corednsSettings are the Corefile lines besides bind and file:
// multisocket with a socket (and server) per core, as the plugin's README
// advises for more than one core (its default is GOMAXPROCS; stated).
func corednsSettings(cores int) []string {
	return []string{fmt.Sprintf("multisocket %d", cores)}
}

// startCoreDNS runs CoreDNS on 127.0.0.1:port serving the static zone:
// the baseline of a plain authoritative server in Go, with no steering.
func startCoreDNS(s *glbfixture.Stack, dir, bin string, port int, settings []string) (*glbfixture.Proc, error) {
	cd := filepath.Join(dir, "coredns")
	corefile := fmt.Sprintf("%s:%d {\n  bind 127.0.0.1\n  %s\n  file %s\n}\n", glbfixture.Zone, port,
		strings.Join(settings, "\n  "), filepath.Join(cd, "zone"))
	if err := writeFiles(cd, map[string]string{"zone": staticZone(), "Corefile": corefile}); err != nil {
		return nil, err
	}
	p, err := glbfixture.Start(dir, "coredns", nil, bin, "-conf", filepath.Join(cd, "Corefile"), "-quiet")
	if err != nil {
		return nil, err
	}
	return s.Add(p), nil
}

// buildCoreDNS builds CoreDNS from the Go module proxy in a throwaway
// module under .cache/peers/coredns (git-ignored) unless it is there
// already. A cold build takes about ten minutes on two cores.
func buildCoreDNS(ctx context.Context, root string) (string, error) {
	dir := filepath.Join(root, ".cache", "peers", "coredns")
	bin := filepath.Join(dir, "coredns")
	stamp := filepath.Join(dir, "version")
	if b, err := os.ReadFile(stamp); err == nil && strings.TrimSpace(string(b)) == corednsVersion {
		if _, err := os.Stat(bin); err == nil {
			return bin, nil
		}
	}
	fmt.Printf("P2: building CoreDNS %s from the Go module proxy in %s (about 10 min cold) ...\n", corednsVersion, dir)
	err := writeFiles(dir, map[string]string{
		"go.mod":   "module peers/coredns\n\ngo 1.26\n",
		"tools.go": "//go:build tools\n\npackage tools\n\nimport _ \"github.com/coredns/coredns\"\n",
	})
	if err != nil {
		return "", err
	}
	if err := glbfixture.Go(ctx, dir, "get", "github.com/coredns/coredns@"+corednsVersion); err != nil {
		return "", err
	}
	if err := glbfixture.Go(ctx, dir, "build", "-mod=mod", "-o", bin, "github.com/coredns/coredns"); err != nil {
		return "", err
	}
	return bin, os.WriteFile(stamp, []byte(corednsVersion+"\n"), 0o644)
}
