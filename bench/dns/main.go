// Command dns is benchmark P2 (docs/benchmarks.md): the global balancer's
// authoritative DNS against PowerDNS, CoreDNS and Knot DNS, side by side
// in one run, all on loopback, loaded by dnsperf with the same query file.
//
// The servers, each tuned for the machine's cores as its own
// documentation advises (servers.go prints the settings and the UDP
// sockets each really bound):
//
//	glb-v1         `meridian glb` (geo steering), the default build (miekg/dns
//	               v1): one SO_REUSEPORT UDP socket per GOMAXPROCS
//	glb-v2         the same built with -tags dnsv2 (codeberg.org/miekg/dns
//	               v2); skipped, with the reason, when that build fails or
//	               does not link v2
//	pdns-lua       PowerDNS Authoritative 4.7: LUA record ifportup(...,
//	               {selector='pickclosest'}) over the same clusters, geoip
//	               backend; reuseport=yes, a receiver thread per core,
//	               packet cache on (cache-ttl=20, its default)
//	pdns-lua-nopc  the same with the packet cache off (cache-ttl=0)
//	coredns        CoreDNS v1.15.0, a static `file` zone (no steering) with
//	               `multisocket` per core: a plain Go authoritative server
//	knot           Knot DNS, the same static zone, a UDP worker per core: the
//	               ceiling, a plain authoritative server written for speed
//
// The balancer reads its config from a real hub (kube-apiserver + etcd)
// with three Clusters at Virginia, Ireland and Mumbai, and probes their
// endpoints, which are backend processes on 127.0.3.1–3 (shared with P3:
// bench/internal/glbfixture). The queries are one A query per client /24,
// drawn with a fixed seed from the db-ip database: 40 % Europe, 40 % the
// Americas, 20 % India, each with its subnet in EDNS Client Subnet. The
// peers get a GeoIP2-City database converted from db-ip for exactly those
// networks (bench/dns/geoconv).
//
// Phases: (1) every query once to each server, counting answers that name
// the nearest cluster; then -rounds interleaved rounds (every server in
// turn, then again): (2) dnsperf at full speed for -duration, giving QPS
// and the server's CPU time per answered query (/proc/<pid>/stat), and
// (3) dnsperf capped at -rate QPS with per-query latencies, for p50/p99
// below saturation. It prints each figure's median and spread (min–max)
// over the rounds and ends with one line per figure that starts with P2
// and carries its target; ratios use the medians, CPU per query first.
// The first two are the headline (issue 14): the balancer's CPU per query
// at most 2× Knot's and at most 0.5× PowerDNS's,
//
//	P2 cpu_per_query=<glb>us knot=<knot>us ratio=<glb/knot> rounds=<lo>-<hi> target<=2x ok|short
//	P2 cpu_per_query=<glb>us pdns_lua=<pdns>us ratio=<glb/pdns> rounds=<lo>-<hi> target<=0.5x ok|short
//
// for the default build (the same with "glb-v2" for the dnsv2 build).
// Peers come from scripts/bench-peers.sh; run from the repository root:
//
//	go run ./bench/dns               (or: make bench)
//	go run ./bench/dns -rounds 1 -duration 3s    (a quick run)
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"syscall"
	"time"

	"meridian.dev/meridian/bench/internal/glbfixture"
	"meridian.dev/meridian/glb/geo"
	"meridian.dev/meridian/internal/controlplane"
)

type config struct {
	rounds       int
	duration     time.Duration
	subnets      int
	seed         uint64
	perf         dnsperfArgs
	rate         int
	rateDuration time.Duration
	noV2         bool
	meridian     string
}

func main() {
	glbfixture.ServeBackendIfAsked()
	var c config
	fs := flag.NewFlagSet("bench/dns", flag.ExitOnError)
	fs.IntVar(&c.rounds, "rounds", 3, "rounds of full-speed dnsperf; each server runs once per round, the verdict uses the median")
	fs.DurationVar(&c.duration, "duration", 5*time.Second, "length of each full-speed dnsperf run")
	fs.IntVar(&c.subnets, "subnets", 1000, "client /24 subnets in the query file (one query each)")
	fs.Uint64Var(&c.seed, "seed", 1, "seed for drawing the subnets")
	fs.IntVar(&c.perf.clients, "clients", 16, "dnsperf -c: UDP sockets it sends from (many, so SO_REUSEPORT spreads them over every server socket)")
	fs.IntVar(&c.perf.outstanding, "outstanding", 100, "dnsperf -q: queries in flight at most")
	fs.IntVar(&c.rate, "rate", 5000, "QPS of the latency phase (dnsperf -Q), below every server's saturation")
	fs.DurationVar(&c.rateDuration, "rate-duration", 5*time.Second, "length of each latency run")
	fs.BoolVar(&c.noV2, "no-v2", false, "skip the dnsv2 build")
	fs.StringVar(&c.meridian, "meridian", "", "use this meridian binary as glb-v1 instead of building one from the checkout")
	_ = fs.Parse(os.Args[1:])
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := run(ctx, c)
	stop()
	if err != nil {
		fmt.Fprintln(os.Stderr, "bench/dns:", err)
		os.Exit(1)
	}
}

// server is one DNS server under test, with its figures per round.
type server struct {
	name    string
	about   string // what it is and how it is tuned for the cores
	port    int
	skipped string // why it is not measured, if it is not
	steers  bool
	start   func(port int) (*glbfixture.Proc, error)
	check   check
	pid     int
	sockets int // UDP sockets bound to its port
	threads int
	qps     []float64 // per full-speed round
	cpuPerQ []float64 // server CPU seconds per answered query, per full-speed round
	others  []float64 // cores the rest of the machine used, per full-speed round
	lost    int
	p50s    []float64 // per latency round, seconds
	p99s    []float64
	latLost int
}

func run(ctx context.Context, c config) error {
	fmt.Printf("P2: machine %d cores, %s; %s\n", runtime.NumCPU(), runtime.Version(), time.Now().UTC().Format(time.RFC3339))
	if err := requirePeers(); err != nil {
		return err
	}
	root, err := controlplane.RepoRoot()
	if err != nil {
		return err
	}
	cache, err := glbfixture.CacheDir()
	if err != nil {
		return err
	}
	s := &glbfixture.Stack{}
	defer s.Stop()
	dir, err := os.MkdirTemp("", "meridian-bench-dns-")
	if err != nil {
		return err
	}
	s.Defer(func() { _ = os.RemoveAll(dir) })

	// Binaries: both balancer builds from this checkout, and CoreDNS.
	v1 := c.meridian
	if v1 == "" {
		v1 = filepath.Join(cache, "meridian")
		if err := glbfixture.Build(ctx, v1); err != nil {
			return err
		}
	}
	v2 := filepath.Join(cache, "meridian-dnsv2")
	v2skip := "skipped by -no-v2"
	if !c.noV2 {
		v2skip = buildV2(ctx, v2)
	}
	coredns, err := buildCoreDNS(ctx, root)
	if err != nil {
		return fmt.Errorf("building CoreDNS: %w", err)
	}

	// The query set and the peers' geo database.
	subnets, err := querySet(ctx, root, dir, c)
	if err != nil {
		return err
	}
	qfile := filepath.Join(dir, "queries.bin")
	mmdb := filepath.Join(dir, "peers-geo.mmdb")

	// The fleet: backends at the clusters' addresses, the hub.
	var siteAddrs []netip.Addr
	for _, site := range glbfixture.Sites {
		siteAddrs = append(siteAddrs, site.Addr)
	}
	probePort, err := glbfixture.FreePort(siteAddrs...)
	if err != nil {
		return err
	}
	var endpoints []string
	for _, site := range glbfixture.Sites {
		b, err := glbfixture.StartBackend(s, dir, site.Name, netip.AddrPortFrom(site.Addr, uint16(probePort)).String())
		if err != nil {
			return err
		}
		endpoints = append(endpoints, b.URL())
	}
	hub, err := glbfixture.StartHub(ctx, s, endpoints)
	if err != nil {
		return err
	}

	// The servers, each tuned for the machine's cores.
	cores := runtime.NumCPU()
	bins := binaries{v1: v1, v2: v2, v2skip: v2skip, coredns: coredns}
	servers := newServers(s, dir, hub, bins, probePort, mmdb, cores)
	if err := startServers(s, servers, subnets); err != nil {
		return err
	}
	printServers(servers, cores)

	// (1) Do they steer?
	for _, sv := range servers {
		if sv.skipped == "" {
			sv.check = checkAnswers(sv.port, subnets)
		}
	}
	printChecks(servers, len(subnets))

	// (2) Throughput and (3) latency below saturation, in interleaved
	// rounds (A B C D, A B C D, ...), so drift on the shared machine hits
	// all alike and every figure gets a median and a spread.
	for r := 1; r <= c.rounds; r++ {
		for _, sv := range servers {
			if sv.skipped == "" {
				if err := measure(ctx, s, sv, c, qfile, r, 0); err != nil {
					return err
				}
			}
		}
		for _, sv := range servers {
			if sv.skipped == "" {
				if err := measure(ctx, s, sv, c, qfile, r, c.rate); err != nil {
					return err
				}
			}
		}
	}
	verdicts(servers, c)
	return nil
}

// measure runs dnsperf once against sv: at full speed when rate is 0,
// else at rate QPS for its latencies. The server's CPU time over the run,
// divided by the queries it answered, is its CPU per query. It prints the
// run with the cores the server, dnsperf and everything else used.
func measure(ctx context.Context, s *glbfixture.Stack, sv *server, c config, qfile string, round, rate int) error {
	d := c.duration
	if rate > 0 {
		d = c.rateDuration
	}
	before := glbfixture.SampleCPU(sv.pid, os.Getpid())
	p, err := runDnsperf(ctx, c.perf, qfile, sv.port, d, rate)
	if err != nil {
		return err
	}
	after := glbfixture.SampleCPU(sv.pid, os.Getpid())
	if err := s.Check(); err != nil {
		return err
	}
	use := after.Since(before)
	cpuPerQ := (after.ProcSeconds(sv.pid) - before.ProcSeconds(sv.pid)) / float64(max(p.completed, 1))
	cores := fmt.Sprintf("cores: server %.2f dnsperf %.2f others %.2f", use.Procs[sv.pid], p.cores, use.Others(p.cores))
	if rate == 0 {
		sv.qps = append(sv.qps, p.qps)
		sv.cpuPerQ = append(sv.cpuPerQ, cpuPerQ)
		sv.others = append(sv.others, use.Others(p.cores))
		sv.lost += p.lost
		fmt.Printf("P2: round %d %-13s %6.1fus CPU/query %8.0f qps (answered %d, lost %d, NOERROR %d; %s)\n", round, sv.name,
			1e6*cpuPerQ, p.qps, p.completed, p.lost, p.noerror, cores)
		return nil
	}
	slices.Sort(p.lat)
	p50, p99 := percentile(p.lat, 0.5), percentile(p.lat, 0.99)
	sv.p50s, sv.p99s = append(sv.p50s, p50), append(sv.p99s, p99)
	sv.latLost += p.lost
	fmt.Printf("P2: round %d %-13s at %d qps: p50 %s p99 %s p99.9 %s (%d answers, lost %d; %.1fus CPU/query; %s)\n", round, sv.name, rate,
		ms(p50), ms(p99), ms(percentile(p.lat, 0.999)), len(p.lat), p.lost, 1e6*cpuPerQ, cores)
	return nil
}

// buildV2 builds the balancer with -tags dnsv2 and returns why it cannot
// be measured, or "". A build that succeeds but does not link
// codeberg.org/miekg/dns is not a v2 build (the tag selects nothing yet).
func buildV2(ctx context.Context, out string) string {
	if err := glbfixture.Build(ctx, out, "dnsv2"); err != nil {
		return "dnsv2 build failed: " + firstLine(err.Error())
	}
	b, err := exec.CommandContext(ctx, "go", "version", "-m", out).Output()
	if err != nil {
		return "dnsv2 build unreadable: " + err.Error()
	}
	if !strings.Contains(string(b), "codeberg.org/miekg/dns") {
		return "dnsv2 build failed: the dnsv2 tag does not link codeberg.org/miekg/dns yet"
	}
	return ""
}

// querySet draws the subnets, writes the query file and converts their
// networks into the peers' geo database.
func querySet(ctx context.Context, root, dir string, c config) ([]subnet, error) {
	db, err := geo.Open(filepath.Join(root, geo.DefaultIPv4Path), filepath.Join(root, geo.DefaultIPv6Path))
	if err != nil {
		return nil, fmt.Errorf("%w (make deps fetches the geo database)", err)
	}
	subnets, err := pickSubnets(db, c.subnets, c.seed)
	_ = db.Close()
	if err != nil {
		return nil, err
	}
	if err := writeQueryFile(filepath.Join(dir, "queries.bin"), subnets); err != nil {
		return nil, err
	}
	tsv := filepath.Join(dir, "peers-geo.tsv")
	if err := writeGeoInput(tsv, subnets); err != nil {
		return nil, err
	}
	if err := glbfixture.Go(ctx, filepath.Join(root, "bench", "dns", "geoconv"), "run", ".", "-in", tsv, "-out", filepath.Join(dir, "peers-geo.mmdb")); err != nil {
		return nil, fmt.Errorf("converting the geo database: %w", err)
	}
	byGroup := map[string]int{}
	byWant := map[netip.Addr]int{}
	for _, s := range subnets {
		byGroup[s.group]++
		byWant[s.want]++
	}
	fmt.Printf("P2: %d client /24s (europe %d, americas %d, india %d); nearest cluster:", len(subnets), byGroup["europe"], byGroup["americas"], byGroup["india"])
	for _, site := range glbfixture.Sites {
		fmt.Printf(" %s %d", site.Name, byWant[site.Addr])
	}
	fmt.Println()
	return subnets, nil
}

func firstLine(s string) string {
	if i := strings.IndexByte(s, '\n'); i >= 0 {
		line := s[:i]
		// The go command's first error line is more telling than the
		// "exit status" wrapper.
		if rest := strings.TrimSpace(s[i+1:]); rest != "" {
			for _, l := range strings.Split(rest, "\n") {
				if strings.Contains(l, ".go:") || strings.Contains(l, "cannot") || strings.Contains(l, "missing") {
					return strings.TrimSpace(l)
				}
			}
		}
		return line
	}
	return s
}

func ms(sec float64) string { return fmt.Sprintf("%.3fms", sec*1000) }

var errNoAnswer = errors.New("no answer yet")
