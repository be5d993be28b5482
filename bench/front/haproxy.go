package main

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"meridian.dev/meridian/bench/internal/glbfixture"
)

// haproxyConfig is the peer's configuration: round-robin over the three
// backends with active health checks of the same path the balancer
// probes, fast checks after a failure, and layer-7 retries that move a
// failed request to another server (redispatch) on every error that is
// safe to retry — the settings under which HAProxy lost no request when a
// backend died in the trials PEERS.md records (with retry-on conn-failure
// only, it lost some). Two threads, its default on two cores. bind adds
// options to the bind line and rules go in the frontend: P3-TLS's TLS
// termination and JWT check (secure.go); both empty for plain P3.
func haproxyConfig(listen, bind, rules string, backends []*glbfixture.Backend) string {
	var servers []string
	for _, b := range backends {
		servers = append(servers, fmt.Sprintf("  server %s %s check", b.Name, b.Addr))
	}
	return fmt.Sprintf(`global
  maxconn 4096

defaults
  mode http
  timeout connect 1s
  timeout client 30s
  timeout server 30s
  retries 3
  option redispatch 1
  retry-on all-retryable-errors

frontend front
  bind %s%s
%s  default_backend clusters

backend clusters
  balance roundrobin
  option httpchk GET %s
  default-server inter 500ms fastinter 250ms fall 2 rise 2
%s
`, listen, bind, rules, glbfixture.ProbePath, strings.Join(servers, "\n"))
}

// startHAProxy runs haproxy, called name, in the foreground (-db) with
// that config.
func startHAProxy(s *glbfixture.Stack, dir, name, listen, bind, rules string, backends []*glbfixture.Backend) (*glbfixture.Proc, error) {
	cfg := filepath.Join(dir, name+".cfg")
	if err := os.WriteFile(cfg, []byte(haproxyConfig(listen, bind, rules, backends)), 0o644); err != nil {
		return nil, err
	}
	p, err := glbfixture.Start(dir, name, nil, "haproxy", "-db", "-f", cfg)
	if err != nil {
		return nil, fmt.Errorf("%w (scripts/bench-peers.sh installs HAProxy)", err)
	}
	return s.Add(p), nil
}
