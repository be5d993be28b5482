// Command inference benchmarks Meridian's model server against raw ONNX
// Runtime called in-process, side by side in one run on this machine, and
// prints the figures and their ratios (see docs/benchmarks.md):
//
//	P1a  textdir at saturation: the server's CPU time per image (binary
//	     tensor extension, one image per request, -concurrency keep-alive
//	     connections) over raw in-process Run's CPU time per image at its
//	     best batch size; and, as information, server images/s over raw
//	     images/s.
//	P1b  sentiment at light load: latency the server adds to one in-process
//	     run (p50, p99), one sequential client.
//
// P1a's server runs in a child process, this binary re-executed in a
// hidden mode (child.go), so that its CPU time is read apart from the load
// generator's and the raw side's, which stay in this process. P1b's server
// runs in this process, as it always has: a latency figure, it would
// otherwise also time waking the child's idle threads. It is not a test and
// asserts nothing: it prints. All traffic goes to 127.0.0.1 listeners. Run
// it from the repository root:
//
//	go run ./bench/inference        (or: make bench)
package main

import (
	"bufio"
	"context"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"time"

	ort "github.com/yalue/onnxruntime_go"

	"meridian.dev/meridian/inference"
	"meridian.dev/meridian/internal/httpserve"
)

type config struct {
	duration    time.Duration
	sweep       time.Duration
	slices      int
	concurrency int
	requests    int
	models      string
	ortLib      string
	rawCallers  int
	cpuProfile  string
	memProfile  string
}

func main() {
	var c config
	fs := flag.NewFlagSet("bench/inference", flag.ExitOnError)
	fs.DurationVar(&c.duration, "duration", 15*time.Second,
		"length of each measured P1a load phase: server with binary bodies, raw ONNX Runtime at the best batch size\n"+
			"(both split into -slices alternating slices), and server with JSON bodies")
	fs.DurationVar(&c.sweep, "sweep", 1500*time.Millisecond,
		"P1a: how long raw ONNX Runtime runs at each batch size 1,2,4,8,16,32 to find the best one (after a warm-up)")
	fs.IntVar(&c.slices, "slices", 5,
		"P1a: the server-binary and raw best-batch phases alternate in this many slices each, so slow drift on a\n"+
			"shared machine hits both sides alike")
	fs.IntVar(&c.concurrency, "concurrency", 16,
		"P1a: concurrent keep-alive connections of the load generator, each with one request (one image) in flight")
	fs.IntVar(&c.rawCallers, "raw-callers", 0,
		"P1a: goroutines calling Run at once on the raw session; 0 means the model's workers from config.yaml,\n"+
			"so the raw side gets the same parallelism as the server's workers")
	fs.IntVar(&c.requests, "n", 3000,
		"P1b: measured runs per side (raw and server), after 300 warm-up runs each; also bounded to 60s per side")
	fs.StringVar(&c.models, "models", "models", "model repository to load (run from the repository root: ./models)")
	fs.StringVar(&c.ortLib, "ort-lib", "",
		"ONNX Runtime shared library; default $"+inference.LibraryEnv+", else .cache/onnxruntime/libonnxruntime.so.1 (make deps)")
	fs.StringVar(&c.cpuProfile, "cpuprofile", "",
		"write a CPU profile of the server process during one extra, unmeasured P1a server-binary phase\n"+
			"(-duration long) to this file; the server runs in a child process, so the profile shows the server\n"+
			"alone, without the load generator")
	fs.StringVar(&c.memProfile, "memprofile", "",
		"write allocation profiles of the server process, FILE.base and FILE, before and after the same extra\n"+
			"phase as -cpuprofile (run without -cpuprofile, it runs that phase anyway);\n"+
			"go tool pprof -sample_index=alloc_space -base FILE.base FILE")
	fs.Usage = func() {
		fmt.Fprintf(fs.Output(), `Usage: go run ./bench/inference [flags]

Runs Meridian's model server (for P1a in a child process, this binary run again;
for P1b in this process; on 127.0.0.1 listeners, result cache off) against raw
ONNX Runtime in this process on the same model files with the same session
options, and prints figures and ratios:

  P1a  textdir at saturation: the server process's CPU time per image over raw
       Run's CPU time per image at its best batch size (target <= 1.15); server
       images/s over raw images/s as information (the load generator shares
       the machine's cores with the server)
  P1b  sentiment latency added by the server at p50 (target <= 150us) and p99

It asserts nothing. With the defaults P1a and P1b take about a minute and a half (-cpuprofile or
-memprofile add one more -duration).

Flags:
`)
		fs.PrintDefaults()
	}
	_ = fs.Parse(os.Args[1:])
	if fs.NArg() > 0 {
		fs.Usage()
		os.Exit(2)
	}
	if c.duration <= 0 || c.sweep <= 0 || c.slices < 1 || c.concurrency < 1 || c.requests < 1 || c.rawCallers < 0 {
		fmt.Fprintln(os.Stderr, "bench: -duration, -sweep, -slices, -concurrency and -n must be positive, -raw-callers >= 0")
		os.Exit(2)
	}
	if os.Getenv(childEnv) == "serve" { // the server child (child.go), never a user's mode
		if err := serveChild(c); err != nil {
			fmt.Fprintln(os.Stderr, "bench server child:", err)
			os.Exit(1)
		}
		return
	}
	if err := run(c); err != nil {
		fmt.Fprintln(os.Stderr, "bench:", err)
		os.Exit(1)
	}
}

// env is what both benchmarks share: the flags, the server child and its
// address, and the model specs (paths, config.yaml) read from the
// repository.
type env struct {
	cfg    config
	addr   string // 127.0.0.1:PORT of the server child: HTTP/1.1, and h2c for gRPC
	base   string // http://127.0.0.1:PORT
	server *serverProc
	specs  map[string]inference.ModelSpec
}

func run(c config) error {
	printMachine()

	lib, err := inference.FindLibrary(c.ortLib)
	if err != nil {
		return err
	}
	if err := inference.InitRuntime(lib); err != nil {
		return err
	}
	fmt.Printf("onnxruntime: %s (%s)\n", ort.GetVersion(), lib)

	specs, err := inference.ScanRepository(c.models)
	if err != nil {
		return err
	}
	e := &env{cfg: c, specs: make(map[string]inference.ModelSpec)}
	for _, s := range specs { // ascending versions: the last one is the latest
		e.specs[s.Name] = s
	}
	for _, name := range []string{"textdir", "sentiment"} {
		if _, ok := e.specs[name]; !ok {
			return fmt.Errorf("model %s is not in %s (run `make deps`)", name, c.models)
		}
	}

	child := c
	child.ortLib = lib // the library this process loaded
	if e.server, err = startServer(child); err != nil {
		return fmt.Errorf("starting the server child: %w", err)
	}
	defer func() { _ = e.server.stop() }()
	serverProcess = e.server
	e.addr = e.server.addr
	e.base = "http://" + e.addr
	fmt.Printf("server: %s in child process %d (%s), models from %s, result cache off\n",
		e.base, e.server.cmd.Process.Pid, e.server.clockName(), c.models)
	fmt.Printf("flags: -duration %s -sweep %s -slices %d -concurrency %d -raw-callers %d -n %d\n",
		c.duration, c.sweep, c.slices, c.concurrency, c.rawCallers, c.requests)
	fmt.Println()

	start := time.Now()
	p1a, err := e.benchTextdir()
	if err != nil {
		return fmt.Errorf("P1a: %w", err)
	}
	fmt.Println()
	runtime.GC()
	p1b, err := e.benchSentimentInProcess()
	if err != nil {
		return fmt.Errorf("P1b: %w", err)
	}
	fmt.Println()
	fmt.Printf("total %s\n\n", time.Since(start).Round(time.Second))

	fmt.Printf("P1a cpu_per_image=%.0fus raw=%.0fus ratio=%.3f target<=1.15 %s\n",
		p1a.srvCPUPerImage*1e6, p1a.rawCPUPerImage*1e6, p1a.cpuRatio, verdict(p1a.cpuRatio > 0 && p1a.cpuRatio <= 1.15))
	fmt.Printf("P1a img_per_s_ratio=%.3f target=none (informational: server img/s over raw best; the load generator shares the cores with the server)\n", p1a.ratio)
	fmt.Printf("P1a server_cores=%.2f loadgen_cpu_per_req=%.0fus others=%.2f steal=%.2f target=none (informational: server-binary slices)\n",
		p1a.srvCores, p1a.loadgenCPUPerReq*1e6, p1a.others, p1a.steal)
	fmt.Printf("P1a json_ratio=%.3f target=none (informational: JSON bodies instead of binary)\n", p1a.jsonRatio)
	fmt.Printf("P1a mean_batch=%.2f target=none (informational: rows per model run the server formed, binary phase)\n", p1a.meanBatch)
	fmt.Printf("P1a errors=%d target=0 %s\n", p1a.errors, verdict(p1a.errors == 0))
	fmt.Printf("P1b p50_added=%s target<=150us %s\n", us(p1b.p50Added), verdict(p1b.p50Added <= 150*time.Microsecond))
	fmt.Printf("P1b p99_added=%s target=none (informational)\n", us(p1b.p99Added))
	fmt.Printf("P1b errors=%d target=0 %s\n", p1b.errors, verdict(p1b.errors == 0))
	return runP1c(c, e.server) // gRPC vs HTTP (grpc.go), on the same server child
}

// benchSentimentInProcess runs P1b against a server in this process, as
// P1b always has: a latency figure, it would otherwise also measure waking
// a second process's idle threads on every request (measured: p50 added
// 200-380us from the child against 66-91us in process). The server is the
// same inference.New on the same listener wrapper as the child's, started
// after P1a (whose raw side must have this process alone) and closed after
// P1b.
func (e *env) benchSentimentInProcess() (p1bResult, error) {
	logger := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	srv, err := inference.New(inference.Options{ModelRepository: e.cfg.models, CacheSize: 0, Logger: logger})
	if err != nil {
		return p1bResult{}, err
	}
	defer srv.Close()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return p1bResult{}, err
	}
	hs, err := httpserve.New(srv.Handler(), httpserve.Options{Name: "inference"}) // as meridian serve's listener
	if err != nil {
		_ = ln.Close()
		return p1bResult{}, err
	}
	go func() { _ = hs.Serve(httpserve.Listener(ln)) }()
	defer func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = hs.Shutdown(ctx)
	}()
	local := *e
	local.base = "http://" + ln.Addr().String()
	fmt.Printf("P1b server: %s in this process (not the child: see benchSentimentInProcess)\n", local.base)
	return local.benchSentiment()
}

func verdict(ok bool) string {
	if ok {
		return "ok"
	}
	return "short"
}

// openRaw opens the model the way the server's openSession does: intra-op
// threads from config.yaml (0 leaves ONNX Runtime's default) and
// session.intra_op.allow_spinning=0.
func openRaw(spec inference.ModelSpec) (*ort.DynamicAdvancedSession, error) {
	ins, outs, err := ort.GetInputOutputInfo(spec.Path)
	if err != nil {
		return nil, err
	}
	opts, err := ort.NewSessionOptions()
	if err != nil {
		return nil, err
	}
	defer func() { _ = opts.Destroy() }()
	if n := spec.Config.IntraOpThreads; n > 0 {
		if err := opts.SetIntraOpNumThreads(n); err != nil {
			return nil, err
		}
	}
	if err := opts.AddSessionConfigEntry("session.intra_op.allow_spinning", "0"); err != nil {
		return nil, err
	}
	names := func(infos []ort.InputOutputInfo) []string {
		out := make([]string, len(infos))
		for i, in := range infos {
			out[i] = in.Name
		}
		return out
	}
	return ort.NewDynamicAdvancedSession(spec.Path, names(ins), names(outs), opts)
}

func describeSession(spec inference.ModelSpec) string {
	threads := "default (0)"
	if n := spec.Config.IntraOpThreads; n > 0 {
		threads = strconv.Itoa(n)
	}
	return fmt.Sprintf("intra_op_threads=%s allow_spinning=0; server: workers=%d max_batch_size=%d max_queue_delay=%s queue_size=%d",
		threads, spec.Config.Workers, spec.Config.MaxBatchSize, spec.Config.MaxQueueDelay.Duration, spec.Config.QueueSize)
}

// printMachine prints what the figures depend on.
func printMachine() {
	model := "unknown"
	if f, err := os.Open("/proc/cpuinfo"); err == nil {
		sc := bufio.NewScanner(f)
		for sc.Scan() {
			if k, v, ok := strings.Cut(sc.Text(), ":"); ok && strings.TrimSpace(k) == "model name" {
				model = strings.TrimSpace(v)
				break
			}
		}
		_ = f.Close()
	}
	load := ""
	if b, err := os.ReadFile("/proc/loadavg"); err == nil {
		load = strings.Join(strings.Fields(string(b))[:3], " ")
	}
	host, _ := os.Hostname()
	fmt.Printf("machine: nproc=%d GOMAXPROCS=%d cpu=%q %s/%s host=%s loadavg=%s\n",
		runtime.NumCPU(), runtime.GOMAXPROCS(0), model, runtime.GOOS, runtime.GOARCH, host, load)
	fmt.Printf("go: %s\n", runtime.Version())
	fmt.Printf("date: %s\n", time.Now().UTC().Format(time.RFC3339))
}

// cpuTime is this process's user+system CPU time so far.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// machineTime reads /proc/stat: CPU time all processes on the machine have
// used (user, nice, system, irq, softirq) and time the hypervisor stole.
func machineTime() (busy, steal time.Duration) {
	b, err := os.ReadFile("/proc/stat")
	if err != nil {
		return 0, 0
	}
	line, _, _ := strings.Cut(string(b), "\n")
	f := strings.Fields(line)
	if len(f) < 9 || f[0] != "cpu" {
		return 0, 0
	}
	tick := func(i int) time.Duration {
		n, _ := strconv.ParseInt(f[i], 10, 64)
		return time.Duration(n) * 10 * time.Millisecond // USER_HZ is 100 on Linux
	}
	return tick(1) + tick(2) + tick(3) + tick(6) + tick(7), tick(8)
}

// serverProcess is the server child, once started: every meter reads its
// CPU time too.
var serverProcess *serverProc

// serverCPU is the server child's CPU time so far; 0 before it runs.
func serverCPU() time.Duration {
	if serverProcess == nil {
		return 0
	}
	return serverProcess.cpu()
}

// meter measures one phase's wall and CPU time: this process's (cores():
// the load generator in a server phase, raw Run in a raw phase), the
// server child's (srvCores()) and, from /proc/stat, every other process's
// (others()) and the hypervisor's steal, which tell how noisy the phase
// was.
type meter struct {
	wall0                     time.Time
	cpu0, srv0, busy0, steal0 time.Duration
	wall, cpu, srv, busy, stl time.Duration
}

func startMeter() meter {
	busy, steal := machineTime()
	return meter{wall0: time.Now(), cpu0: cpuTime(), srv0: serverCPU(), busy0: busy, steal0: steal}
}

func (m *meter) stop() {
	m.wall = time.Since(m.wall0)
	m.cpu = cpuTime() - m.cpu0
	m.srv = serverCPU() - m.srv0
	busy, steal := machineTime()
	m.busy, m.stl = busy-m.busy0, steal-m.steal0
}

// add sums another phase into m (walls and CPU times add up).
func (m *meter) add(o meter) {
	m.wall += o.wall
	m.cpu += o.cpu
	m.srv += o.srv
	m.busy += o.busy
	m.stl += o.stl
}

// cores is the cores this process used.
func (m meter) cores() float64 { return m.per(m.cpu) }

// srvCores is the cores the server child used.
func (m meter) srvCores() float64 { return m.per(m.srv) }

// others is the cores that other processes on the machine used. /proc/stat
// counts in ticks of 10 ms, so it is exact to about 0.01 core on a slice
// of a few seconds.
func (m meter) others() float64 { return max(0, m.per(m.busy-m.cpu-m.srv)) }

func (m meter) per(d time.Duration) float64 {
	if m.wall <= 0 {
		return 0
	}
	return d.Seconds() / m.wall.Seconds()
}

// noise describes the other load on the machine during the phase.
func (m meter) noise() string {
	return fmt.Sprintf("others %.2f steal %.2f", m.others(), m.per(m.stl))
}

// snapshot is one read of the server's /metrics: every sample by its
// series (name and labels as written).
type snapshot map[string]float64

// scrape reads the server's /metrics.
func (e *env) scrape() (snapshot, error) {
	resp, err := http.Get(e.base + "/metrics")
	if err != nil {
		return nil, err
	}
	defer func() { _ = resp.Body.Close() }()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("GET /metrics: %s", resp.Status)
	}
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		return nil, err
	}
	out := make(snapshot)
	for _, line := range strings.Split(string(body), "\n") {
		if line == "" || line[0] == '#' {
			continue
		}
		i := strings.LastIndexByte(line, ' ')
		if i < 0 {
			continue
		}
		v, err := strconv.ParseFloat(line[i+1:], 64)
		if err != nil {
			return nil, fmt.Errorf("metrics line %q: %w", line, err)
		}
		out[line[:i]] = v
	}
	return out, nil
}

// get sums the series named name (any labels) that carry the label
// model="..." when model is not empty.
func (s snapshot) get(name, model string) float64 {
	var sum float64
	for k, v := range s {
		series, labels, _ := strings.Cut(k, "{")
		if series == name && (model == "" || strings.Contains(labels, `model="`+model+`"`)) {
			sum += v
		}
	}
	return sum
}

// delta is how much the series grew from s to after.
func (s snapshot) delta(after snapshot, name, model string) float64 {
	return after.get(name, model) - s.get(name, model)
}
