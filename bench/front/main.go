// Command front is benchmark P3 (docs/benchmarks.md): the global
// balancer's HTTP front (`meridian glb --http-listen`) against HAProxy 2.6
// before the same three backends, side by side in one run, all on
// loopback, loaded by wrk with the same sentiment inference request.
//
// The balancer reads its config from a real hub (kube-apiserver + etcd)
// with three Clusters whose model endpoints are the backends, and probes
// them; HAProxy round-robins over the same backends with health checks
// and layer-7 retries (haproxy.go). The backends are minimal HTTP servers,
// each its own process (bench/internal/glbfixture, shared with P2), so
// that the proxies' own cost is what differs and a backend can be killed.
//
// Phases: (1) -rounds rounds at full speed (-conns connections, -duration
// each), direct to a backend, through HAProxy and through the front in
// turn: requests/s, the median per side; (2) the same rounds at light
// load (-light-conns), for the p99 each proxy adds over direct; (3)
// backend loss: wrk through both proxies at once, and after -kill-after
// the backend every side uses (us-east: loopback clients have no
// location, so the front sends them along the failover order) is killed
// with SIGKILL; the failed requests of each. It ends with one line per
// figure that starts with P3 and carries its target.
//
// P3-TLS (-tls, on by default) runs in the same rounds a second balancer
// and two more HAProxies before the same backends, all terminating HTTPS
// with the same certificate; wrk sends an ES256 JWT as a Bearer header,
// which the balancer verifies, one HAProxy only wants present and the
// other verifies on every request (secure.go). Its lines start with
// P3-TLS and set its figures beside plain P3's. Peers come from
// scripts/bench-peers.sh; run from the repository root:
//
//	go run ./bench/front             (or: make bench)
//	go run ./bench/front -rounds 1 -duration 3s    (a quick run)
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"net/http"
	"net/netip"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"runtime"
	"strings"
	"syscall"
	"time"

	"meridian.dev/meridian/bench/internal/glbfixture"
)

type config struct {
	rounds                  int
	duration                time.Duration
	conns, lightConns       int
	lossDuration, killAfter time.Duration
	lossConns               int
	meridian                string
	tls                     bool
}

func main() {
	glbfixture.ServeBackendIfAsked()
	var c config
	fs := flag.NewFlagSet("bench/front", flag.ExitOnError)
	fs.IntVar(&c.rounds, "rounds", 3, "rounds of phases 1 and 2; each side runs once per round, the verdict uses the median")
	fs.DurationVar(&c.duration, "duration", 5*time.Second, "length of each wrk run in phases 1 and 2")
	fs.IntVar(&c.conns, "conns", 50, "wrk connections at full speed")
	fs.IntVar(&c.lightConns, "light-conns", 1, "wrk connections at light load (added p99)")
	fs.DurationVar(&c.lossDuration, "loss-duration", 10*time.Second, "length of the backend-loss run")
	fs.DurationVar(&c.killAfter, "kill-after", 3*time.Second, "when the backend is killed in the backend-loss run")
	fs.IntVar(&c.lossConns, "loss-conns", 16, "wrk connections per proxy in the backend-loss run")
	fs.BoolVar(&c.tls, "tls", true, "also run P3-TLS: HTTPS and a JWT on every request, through a second HAProxy and balancer in the same rounds")
	fs.StringVar(&c.meridian, "meridian", "", "use this meridian binary instead of building one from the checkout")
	_ = fs.Parse(os.Args[1:])
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := run(ctx, c)
	stop()
	if err != nil {
		fmt.Fprintln(os.Stderr, "bench/front:", err)
		os.Exit(1)
	}
}

// side is one way to reach the backends.
type side struct {
	name   string
	base   string
	pid    int    // the proxy's; 0 for direct
	script string // wrk's
	client *http.Client
	token  string // sent as a Bearer credential, when set
	heavy  []load
	light  []load
}

func run(ctx context.Context, c config) error {
	fmt.Printf("P3: machine %d cores, %s\n", runtime.NumCPU(), runtime.Version())
	for _, b := range []string{"wrk", "haproxy"} {
		if _, err := exec.LookPath(b); err != nil {
			return fmt.Errorf("%s is not installed; run scripts/bench-peers.sh (make bench does)", b)
		}
	}
	s := &glbfixture.Stack{}
	defer s.Stop()
	dir, err := os.MkdirTemp("", "meridian-bench-front-")
	if err != nil {
		return err
	}
	s.Defer(func() { _ = os.RemoveAll(dir) })
	bin := c.meridian
	if bin == "" {
		cache, err := glbfixture.CacheDir()
		if err != nil {
			return err
		}
		bin = filepath.Join(cache, "meridian")
		if err := glbfixture.Build(ctx, bin); err != nil {
			return err
		}
	}
	script, err := writeWrkScript(dir, "infer", "")
	if err != nil {
		return err
	}
	var sc *secure
	var tlsScript string
	if c.tls {
		if sc, err = newSecure(dir); err != nil {
			return err
		}
		if tlsScript, err = writeWrkScript(dir, "infer-tls", sc.token); err != nil {
			return err
		}
	}

	// The backends, the hub, and the two proxies before them.
	var addrs []netip.Addr
	for _, site := range glbfixture.Sites {
		addrs = append(addrs, site.Addr)
	}
	port, err := glbfixture.FreePort(addrs...)
	if err != nil {
		return err
	}
	var backends []*glbfixture.Backend
	var endpoints []string
	for _, site := range glbfixture.Sites {
		b, err := glbfixture.StartBackend(s, dir, site.Name, netip.AddrPortFrom(site.Addr, uint16(port)).String())
		if err != nil {
			return err
		}
		backends = append(backends, b)
		endpoints = append(endpoints, b.URL())
	}
	hub, err := glbfixture.StartHub(ctx, s, endpoints)
	if err != nil {
		return err
	}
	loop := netip.MustParseAddr("127.0.0.1")
	var ports [7]int
	for i := range ports {
		if ports[i], err = glbfixture.FreePort(loop); err != nil {
			return err
		}
	}
	direct := &side{name: "direct", base: backends[0].URL(), script: script, client: http.DefaultClient}
	haproxy, front, err := startProxies(s, dir, "", hub, bin, ports[0:3], backends, nil)
	if err != nil {
		return err
	}
	haproxy.script, front.script = script, script
	sides := []*side{direct, haproxy, front}
	var tlsSides []*side
	if c.tls {
		hs, fs, err := startProxies(s, dir, "-tls", hub, bin, ports[3:6], backends, sc)
		if err != nil {
			return err
		}
		hp, err := startHAProxy(s, dir, "haproxy-jwt", fmt.Sprintf("127.0.0.1:%d", ports[6]), sc.haproxyBind(), sc.haproxyRules(true), backends)
		if err != nil {
			return err
		}
		hj := &side{name: "haproxy-jwt", base: fmt.Sprintf("https://127.0.0.1:%d", ports[6]), pid: hp.PID(), client: sc.client, token: sc.token}
		hs.script, fs.script, hj.script = tlsScript, tlsScript, tlsScript
		tlsSides = []*side{hs, fs, hj}
		sides = append(sides, tlsSides...)
	}
	for _, sd := range sides {
		want := backends[0].Name // HAProxy round-robins: any backend will do
		if strings.HasPrefix(sd.name, "haproxy") {
			want = ""
		}
		if err := s.WaitFor(sd.name+" to answer", 60*time.Second, func() error { return answeredBy(sd, want) }); err != nil {
			return err
		}
	}
	if sc != nil {
		if err := sc.checkDoors(tlsSides); err != nil {
			return err
		}
	}

	// (1) Throughput and (2) light load, in rounds, each side in turn.
	for r := 1; r <= c.rounds; r++ {
		for _, conns := range []int{c.conns, c.lightConns} {
			for _, sd := range sides {
				l, err := measure(ctx, s, sd, conns, c.duration, backends)
				if err != nil {
					return err
				}
				if conns == c.conns {
					sd.heavy = append(sd.heavy, l)
				} else {
					sd.light = append(sd.light, l)
				}
				fmt.Printf("P3: round %d %-7s %3d conns %8.0f req/s p50 %s p99 %s (failed %d; %.0f backend connections opened per 1000 requests)\n",
					r, sd.name, conns, l.rps, us(l.p50), us(l.p99), l.failed, 1000*l.newConns)
			}
		}
	}

	// (3) Backend loss through both proxies at once.
	lost, err := backendLoss(ctx, c, script, []*side{haproxy, front}, backends[0])
	if err != nil {
		return err
	}
	verdicts(c, direct, haproxy, front, tlsSides, lost)
	return nil
}

// startProxies starts an HAProxy and a balancer (their names end in
// suffix) on 127.0.0.1 ports[0] (HAProxy), ports[1] (the balancer's DNS)
// and ports[2] (its HTTP front), plain, or with HTTPS and the balancer's
// JWT check (HAProxy's Bearer-present check) when sc is set.
func startProxies(s *glbfixture.Stack, dir, suffix string, hub *glbfixture.Hub, bin string, ports []int,
	backends []*glbfixture.Backend, sc *secure) (haproxy, front *side, err error) {
	scheme, bind, rules, client, token := "http", "", "", http.DefaultClient, ""
	var args []string
	if sc != nil {
		scheme, bind, rules, client, token, args = "https", sc.haproxyBind(), sc.haproxyRules(false), sc.client, sc.token, sc.glbArgs()
	}
	hp, err := startHAProxy(s, dir, "haproxy"+suffix, fmt.Sprintf("127.0.0.1:%d", ports[0]), bind, rules, backends)
	if err != nil {
		return nil, nil, err
	}
	gp, err := glbfixture.StartGLB(s, dir, "glb"+suffix, hub, glbfixture.GLB{Binary: bin,
		DNS: fmt.Sprintf("127.0.0.1:%d", ports[1]), HTTP: fmt.Sprintf("127.0.0.1:%d", ports[2]), Args: args})
	if err != nil {
		return nil, nil, err
	}
	haproxy = &side{name: "haproxy" + suffix, base: fmt.Sprintf("%s://127.0.0.1:%d", scheme, ports[0]), pid: hp.PID(), client: client, token: token}
	front = &side{name: "glb" + suffix, base: fmt.Sprintf("%s://127.0.0.1:%d", scheme, ports[2]), pid: gp.PID(), client: client, token: token}
	return haproxy, front, nil
}

// measure runs wrk once against a side and prints the cores each part
// used: the proxy, the backends, wrk, and everything else on the machine;
// and counts the connections the backends accepted meanwhile.
func measure(ctx context.Context, s *glbfixture.Stack, sd *side, conns int, d time.Duration, backends []*glbfixture.Backend) (load, error) {
	pids := []int{os.Getpid()}
	for _, b := range backends {
		pids = append(pids, b.PID())
	}
	if sd.pid != 0 {
		pids = append(pids, sd.pid)
	}
	c0, err := accepted(backends)
	if err != nil {
		return load{}, err
	}
	before := glbfixture.SampleCPU(pids...)
	l, err := runWrk(ctx, sd.script, sd.base, conns, d)
	if err != nil {
		return l, err
	}
	use := glbfixture.SampleCPU(pids...).Since(before)
	if err := s.Check(); err != nil {
		return l, err
	}
	c1, err := accepted(backends)
	if err != nil {
		return l, err
	}
	var be float64
	for _, p := range pids[1 : 1+len(backends)] {
		be += use.Procs[p]
	}
	if l.requests > 0 {
		l.newConns = float64(c1-c0) / float64(l.requests)
	}
	if l.rps > 0 {
		l.proxyCPU = use.Procs[sd.pid] / l.rps
	}
	fmt.Printf("P3: cores: proxy %.2f (%.1fus/request) backends %.2f wrk %.2f others %.2f\n", use.Procs[sd.pid], 1e6*l.proxyCPU, be, l.cores, use.Others(l.cores))
	return l, nil
}

// accepted sums the connections the backends have accepted.
func accepted(backends []*glbfixture.Backend) (int64, error) {
	var n int64
	for _, b := range backends {
		c, err := b.Conns()
		if err != nil {
			return 0, err
		}
		n += c
	}
	return n, nil
}

// answeredBy sends one inference request (with the side's token, if any)
// and wants a 200 from the named backend (any, if want is ""): the side
// is up and, for the front, has read the hub and sends loopback clients
// to the first cluster of the failover order.
func answeredBy(sd *side, want string) error {
	req, err := http.NewRequest(http.MethodPost, sd.base+glbfixture.InferPath, strings.NewReader(glbfixture.InferBody))
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/json")
	if sd.token != "" {
		req.Header.Set("Authorization", "Bearer "+sd.token)
	}
	resp, err := sd.client.Do(req)
	if err != nil {
		return err
	}
	_ = resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return errors.New(resp.Status)
	}
	if got := resp.Header.Get("X-Backend"); want != "" && got != want {
		return fmt.Errorf("answered by %s, want %s", got, want)
	}
	return nil
}

// backendLoss loads both proxies with wrk at once and kills the backend
// after c.killAfter; it returns the failed requests of each.
func backendLoss(ctx context.Context, c config, script string, proxies []*side, victim *glbfixture.Backend) ([]load, error) {
	out := make([]load, len(proxies))
	errs := make([]error, len(proxies))
	done := make(chan int, len(proxies))
	for i, sd := range proxies {
		go func() {
			out[i], errs[i] = runWrk(ctx, script, sd.base, c.lossConns, c.lossDuration)
			done <- i
		}()
	}
	select {
	case <-time.After(c.killAfter):
	case <-ctx.Done():
	}
	victim.Kill()
	fmt.Printf("P3: backend loss: killed %s (SIGKILL) after %s of %s\n", victim.Name, c.killAfter, c.lossDuration)
	for range proxies {
		<-done
	}
	for i, sd := range proxies {
		if errs[i] != nil {
			return nil, errs[i]
		}
		fmt.Printf("P3: backend loss %-7s %d requests, %d failed (%s)\n", sd.name, out[i].requests, out[i].failed, out[i].errors())
	}
	return out, nil
}

func us(d time.Duration) string { return fmt.Sprintf("%dus", d.Microseconds()) }
