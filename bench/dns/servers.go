package main

import (
	"fmt"
	"net/netip"
	"os"
	"strconv"
	"strings"
	"time"

	"meridian.dev/meridian/bench/internal/glbfixture"
)

// binaries are the builds the servers run.
type binaries struct {
	v1, v2, v2skip, coredns string
}

// newServers lists the servers in the order each round runs them, each
// with how it is started and tuned for cores.
func newServers(s *glbfixture.Stack, dir string, hub *glbfixture.Hub, b binaries, probePort int, mmdb string, cores int) []*server {
	glb := func(name, bin string) func(int) (*glbfixture.Proc, error) {
		return func(port int) (*glbfixture.Proc, error) {
			return glbfixture.StartGLB(s, dir, name, hub, glbfixture.GLB{Binary: bin, DNS: fmt.Sprintf("127.0.0.1:%d", port)})
		}
	}
	glbAbout := fmt.Sprintf("UDP sockets = GOMAXPROCS = %d (SO_REUSEPORT, glb/dns default), 2 readers each; geo steering", cores)
	pdns := func(name string, packetCache bool) *server {
		set := pdnsSettings(cores, packetCache)
		return &server{name: name, steers: true,
			about: fmt.Sprintf("PowerDNS %s, LUA ifportup+pickclosest: %s", version("pdns_server", "--version"), strings.Join(set, " ")),
			start: func(port int) (*glbfixture.Proc, error) {
				return startPowerDNS(s, dir, name, port, probePort, mmdb, set)
			}}
	}
	cd, kn := corednsSettings(cores), knotSettings(cores)
	return []*server{
		{name: "glb-v1", steers: true, about: "meridian glb, miekg/dns v1: " + glbAbout, start: glb("glb-v1", b.v1)},
		{name: "glb-v2", steers: true, skipped: b.v2skip, about: "meridian glb -tags dnsv2: " + glbAbout, start: glb("glb-v2", b.v2)},
		pdns("pdns-lua", true),
		pdns("pdns-lua-nopc", false),
		{name: "coredns", about: fmt.Sprintf("CoreDNS %s, static file zone: %s", corednsVersion, strings.Join(cd, " ")),
			start: func(port int) (*glbfixture.Proc, error) { return startCoreDNS(s, dir, b.coredns, port, cd) }},
		{name: "knot", about: fmt.Sprintf("Knot DNS %s, static zone (the ceiling): %s", version("knotd", "--version"), strings.Join(kn, ", ")),
			start: func(port int) (*glbfixture.Proc, error) { return startKnot(s, dir, port, kn) }},
	}
}

// startServers starts every server on a free loopback port and waits
// until it answers (the steering ones: until they steer), then records
// its sockets and threads.
func startServers(s *glbfixture.Stack, servers []*server, subnets []subnet) error {
	loop := netip.MustParseAddr("127.0.0.1")
	for _, sv := range servers {
		if sv.skipped != "" {
			continue
		}
		var err error
		if sv.port, err = glbfixture.FreePort(loop); err != nil {
			return err
		}
		p, err := sv.start(sv.port)
		if err != nil {
			return err
		}
		sv.pid = p.PID()
	}
	for _, sv := range servers {
		if sv.skipped != "" {
			continue
		}
		wait := waitSteering(sv.port, subnets)
		if !sv.steers {
			wait = waitAnswer(sv.port, subnets[0])
		}
		if err := s.WaitFor(sv.name+" to answer", 60*time.Second, wait); err != nil {
			return err
		}
		sv.sockets, sv.threads = udpSockets(sv.port), threads(sv.pid)
	}
	return nil
}

// printServers says what each server is, how it is tuned and what it
// really bound.
func printServers(servers []*server, cores int) {
	fmt.Printf("P2: servers, each tuned for %d cores as its own documentation advises:\n", cores)
	for _, sv := range servers {
		if sv.skipped != "" {
			fmt.Printf("P2:   %-13s %s\n", sv.name, sv.skipped)
			continue
		}
		fmt.Printf("P2:   %-13s %s [bound %d UDP sockets, %d threads]\n", sv.name, sv.about, sv.sockets, sv.threads)
	}
}

// udpSockets counts the IPv4 UDP sockets bound to port (/proc/net/udp).
func udpSockets(port int) int {
	b, err := os.ReadFile("/proc/net/udp")
	if err != nil {
		return 0
	}
	suffix := fmt.Sprintf(":%04X", port)
	n := 0
	for _, line := range strings.Split(string(b), "\n") {
		if f := strings.Fields(line); len(f) > 1 && strings.HasSuffix(f[1], suffix) {
			n++
		}
	}
	return n
}

// threads is the number of threads of pid.
func threads(pid int) int {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/status")
	if err != nil {
		return 0
	}
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, "Threads:"); ok {
			n, _ := strconv.Atoi(strings.TrimSpace(v))
			return n
		}
	}
	return 0
}
