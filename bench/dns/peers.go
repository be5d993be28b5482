package main

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"

	"meridian.dev/meridian/bench/internal/glbfixture"
)

// Every peer is tuned for the machine's cores as its own documentation
// advises, as the balancer is (one SO_REUSEPORT UDP socket per
// GOMAXPROCS, glb/dns Config.UDPSockets): PowerDNS with reuseport=yes and
// a receiver thread per core, CoreDNS with its multisocket plugin, Knot
// with a UDP worker (and socket) per core. The runs print the UDP sockets
// each server really bound (/proc/net/udp) and its threads.

// zoneApex is the zone's SOA, NS and name-server glue in master-file
// form, the same for every peer.
func zoneApex() string {
	z := glbfixture.Zone
	return fmt.Sprintf(`$ORIGIN %[1]s
@ 3600 IN SOA ns1.%[1]s hostmaster.%[1]s 1 3600 600 604800 30
@ 3600 IN NS ns1.%[1]s
ns1 3600 IN A 127.0.0.1
`, z)
}

// staticZone is the zone of the static baselines (CoreDNS, Knot):
// sentiment answers the first cluster's address to everyone.
func staticZone() string {
	return zoneApex() + fmt.Sprintf("sentiment %d IN A %s\n", glbfixture.TTL, glbfixture.Sites[0].Addr)
}

// writeFiles writes name -> body into dir, creating it.
func writeFiles(dir string, files map[string]string) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	for name, body := range files {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(body), 0o644); err != nil {
			return err
		}
	}
	return nil
}

// pdnsSettings are PowerDNS's tuning lines, the same in its config and
// in the report. receiver-threads is one per core, each with its own
// socket (reuseport=yes), as PowerDNS's performance notes advise;
// distributor-threads is its default, stated. cache-ttl is the packet
// cache (20 s is PowerDNS's default; 0 turns it off), query-cache-ttl
// the backend query cache (its default, in both variants).
func pdnsSettings(cores int, packetCache bool) []string {
	cacheTTL := 0
	if packetCache {
		cacheTTL = 20
	}
	return []string{"reuseport=yes", fmt.Sprintf("receiver-threads=%d", cores), "distributor-threads=3",
		fmt.Sprintf("cache-ttl=%d", cacheTTL), "query-cache-ttl=20", "negquery-cache-ttl=60"}
}

// startPowerDNS runs pdns_server on 127.0.0.1:port with its own config
// directory: the bind backend holds the zone, whose endpoint is a LUA
// record — ifportup on the clusters' addresses (PowerDNS checks the port
// itself, as Meridian probes), choosing among the live ones with
// pickclosest, which locates the client (the ECS subnet) and each
// candidate in the geoip backend's database. enable-lua-records=shared
// keeps one Lua state per thread, PowerDNS's fast mode (the default
// builds one per query and is about ten times slower).
func startPowerDNS(s *glbfixture.Stack, dir, name string, port, probePort int, mmdb string, settings []string) (*glbfixture.Proc, error) {
	pd := filepath.Join(dir, name)
	var addrs []string
	for _, site := range glbfixture.Sites {
		addrs = append(addrs, "'"+site.Addr.String()+"'")
	}
	zone := zoneApex() + fmt.Sprintf("sentiment %d IN LUA A \"ifportup(%d, {%s}, {selector='pickclosest'})\"\n",
		glbfixture.TTL, probePort, strings.Join(addrs, ","))
	conf := append([]string{
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
	}, settings...)
	err := writeFiles(pd, map[string]string{
		"zone":       zone,
		"named.conf": fmt.Sprintf("zone %q { type master; file %q; };\n", strings.TrimSuffix(glbfixture.Zone, "."), filepath.Join(pd, "zone")),
		"pdns.conf":  strings.Join(conf, "\n") + "\n",
	})
	if err != nil {
		return nil, err
	}
	p, err := glbfixture.Start(dir, name, nil, "pdns_server", "--config-dir="+pd)
	if err != nil {
		return nil, fmt.Errorf("%w (scripts/bench-peers.sh installs PowerDNS)", err)
	}
	return s.Add(p), nil
}

// knotSettings are Knot's tuning lines: a UDP worker per core (Knot's
// default, stated), each with its own SO_REUSEPORT socket on Linux, and
// ECS answered with an ECS option (scope 0), as the balancer and
// PowerDNS answer it.
func knotSettings(cores int) []string {
	return []string{fmt.Sprintf("udp-workers: %d", cores), "tcp-workers: 1", "background-workers: 1", "edns-client-subnet: on"}
}

// startKnot runs knotd on 127.0.0.1:port serving the static zone, the
// ceiling of a plain authoritative server written for speed in C.
func startKnot(s *glbfixture.Stack, dir string, port int, settings []string) (*glbfixture.Proc, error) {
	kd := filepath.Join(dir, "knot")
	conf := fmt.Sprintf(`server:
    rundir: %q
    listen: 127.0.0.1@%d
    %s
log:
  - target: stderr
    any: warning
database:
    storage: %q
zone:
  - domain: %s
    storage: %q
    file: zone
`, kd, port, strings.Join(settings, "\n    "), filepath.Join(kd, "db"), glbfixture.Zone, kd)
	if err := writeFiles(filepath.Join(kd, "db"), nil); err != nil {
		return nil, err
	}
	if err := writeFiles(kd, map[string]string{"zone": staticZone(), "knot.conf": conf}); err != nil {
		return nil, err
	}
	p, err := glbfixture.Start(dir, "knot", nil, "knotd", "-c", filepath.Join(kd, "knot.conf"))
	if err != nil {
		return nil, fmt.Errorf("%w (scripts/bench-peers.sh installs Knot DNS)", err)
	}
	return s.Add(p), nil
}

var reVersion = regexp.MustCompile(`\d+\.\d+\.\d+`)

// version is the first x.y.z that `bin args...` prints, or "?".
func version(bin string, args ...string) string {
	b, _ := exec.Command(bin, args...).CombinedOutput()
	if v := reVersion.Find(b); v != nil {
		return string(v)
	}
	return "?"
}

// requirePeers fails unless the load generator and the Debian peers are
// installed.
func requirePeers() error {
	for _, b := range []string{"dnsperf", "pdns_server", "knotd"} {
		if _, err := exec.LookPath(b); err != nil {
			return fmt.Errorf("%s is not installed; run scripts/bench-peers.sh (make bench does)", b)
		}
	}
	return nil
}
