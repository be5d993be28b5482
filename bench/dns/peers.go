package main

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"meridian.dev/meridian/bench/internal/glbfixture"
)

// zoneApex is the zone's SOA, NS and name-server glue in master-file
// form, the same for PowerDNS and CoreDNS.
func zoneApex() string {
	z := glbfixture.Zone
	return fmt.Sprintf(`$ORIGIN %[1]s
@ 3600 IN SOA ns1.%[1]s hostmaster.%[1]s 1 3600 600 604800 30
@ 3600 IN NS ns1.%[1]s
ns1 3600 IN A 127.0.0.1
`, z)
}

// startPowerDNS runs pdns_server on 127.0.0.1:port with its own config
// directory: the bind backend holds the zone, whose endpoint is a LUA
// record — ifportup on the clusters' addresses (PowerDNS checks the port
// itself, as Meridian probes), choosing among the live ones with
// pickclosest, which locates the client (the ECS subnet) and each
// candidate in the geoip backend's database. enable-lua-records=shared
// keeps one Lua state for all queries, PowerDNS's fast mode (the default
// builds one per query and is about ten times slower).
func startPowerDNS(s *glbfixture.Stack, dir string, port, probePort int, mmdb string) (*glbfixture.Proc, error) {
	pd := filepath.Join(dir, "pdns")
	if err := os.MkdirAll(pd, 0o755); err != nil {
		return nil, err
	}
	var addrs []string
	for _, site := range glbfixture.Sites {
		addrs = append(addrs, "'"+site.Addr.String()+"'")
	}
	zone := zoneApex() + fmt.Sprintf("sentiment %d IN LUA A \"ifportup(%d, {%s}, {selector='pickclosest'})\"\n",
		glbfixture.TTL, probePort, strings.Join(addrs, ","))
	files := map[string]string{
		"zone":       zone,
		"named.conf": fmt.Sprintf("zone %q { type master; file %q; };\n", strings.TrimSuffix(glbfixture.Zone, "."), filepath.Join(pd, "zone")),
		"pdns.conf": strings.Join([]string{
			"launch=bind,geoip",
			"bind-config=" + filepath.Join(pd, "named.conf"),
			"geoip-database-files=mmdb:" + mmdb,
			"edns-subnet-processing=yes",
			"enable-lua-records=shared",
			"local-address=127.0.0.1",
			fmt.Sprintf("local-port=%d", port),
			"socket-dir=" + pd,
			"daemon=no", "guardian=no", "disable-syslog=yes", "loglevel=4",
			// No security-status query to the outside world: loopback only.
			"security-poll-suffix=",
			"",
		}, "\n"),
	}
	for name, body := range files {
		if err := os.WriteFile(filepath.Join(pd, name), []byte(body), 0o644); err != nil {
			return nil, err
		}
	}
	p, err := glbfixture.Start(dir, "pdns", nil, "pdns_server", "--config-dir="+pd)
	if err != nil {
		return nil, fmt.Errorf("%w (scripts/bench-peers.sh installs PowerDNS)", err)
	}
	return s.Add(p), nil
}

// startCoreDNS runs CoreDNS on 127.0.0.1:port serving the zone from a
// static file: sentiment answers the first cluster's address to everyone.
// It is the baseline of a plain authoritative server in Go, with no
// steering at all.
func startCoreDNS(s *glbfixture.Stack, dir, bin string, port int) (*glbfixture.Proc, error) {
	cd := filepath.Join(dir, "coredns")
	if err := os.MkdirAll(cd, 0o755); err != nil {
		return nil, err
	}
	zone := zoneApex() + fmt.Sprintf("sentiment %d IN A %s\n", glbfixture.TTL, glbfixture.Sites[0].Addr)
	corefile := fmt.Sprintf("%s:%d {\n  bind 127.0.0.1\n  file %s\n}\n", glbfixture.Zone, port, filepath.Join(cd, "zone"))
	for name, body := range map[string]string{"zone": zone, "Corefile": corefile} {
		if err := os.WriteFile(filepath.Join(cd, name), []byte(body), 0o644); err != nil {
			return nil, err
		}
	}
	p, err := glbfixture.Start(dir, "coredns", nil, bin, "-conf", filepath.Join(cd, "Corefile"), "-quiet")
	if err != nil {
		return nil, err
	}
	return s.Add(p), nil
}

// corednsVersion is the CoreDNS release measured.
const corednsVersion = "v1.15.0"

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
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return "", err
	}
	files := map[string]string{
		"go.mod":   "module peers/coredns\n\ngo 1.26\n",
		"tools.go": "//go:build tools\n\npackage tools\n\nimport _ \"github.com/coredns/coredns\"\n",
	}
	for name, body := range files {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(body), 0o644); err != nil {
			return "", err
		}
	}
	if err := glbfixture.Go(ctx, dir, "get", "github.com/coredns/coredns@"+corednsVersion); err != nil {
		return "", err
	}
	if err := glbfixture.Go(ctx, dir, "build", "-mod=mod", "-o", bin, "github.com/coredns/coredns"); err != nil {
		return "", err
	}
	return bin, os.WriteFile(stamp, []byte(corednsVersion+"\n"), 0o644)
}
