// Command agent is benchmarks P6 and P7. P6: a 5x step in offered load on
// textdir, served by the agent's process runtime on a real control plane,
// and the seconds until the clients' p95 is back under its target — once
// with Meridian's autoscaling settings and once with the Kubernetes HPA's
// defaults (15s sync, no burst mode, default policies), side by side. P7:
// the same step through the real Kubernetes path (real node, the agent's
// metrics adapter, the real HPA) against the process runtime (p7.go).
//
//	go run ./bench/agent   (make bench runs it after `make build`)
package main

import (
	"bytes"
	"cmp"
	"context"
	"encoding/binary"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"math"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	autoscalingv2 "k8s.io/api/autoscaling/v2"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"meridian.dev/meridian/agent"
	v1 "meridian.dev/meridian/crds/v1alpha1"
	"meridian.dev/meridian/internal/controlplane"
)

var (
	meridianBin = flag.String("meridian", "bin/meridian", "meridian binary run as replicas (make build makes it)")
	baseFor     = flag.Duration("base", 15*time.Second, "time at the base load before the step")
	stepFor     = flag.Duration("step", 45*time.Second, "time at 5x the base load")
	maxReps     = flag.Int("max-replicas", 4, "maxReplicas of the ModelDeployment")
	hpaCheck    = flag.Bool("hpa-defaults", true, "also run with the Kubernetes HPA's defaults, for comparison")
	p7Run       = flag.Bool("p7", true, "also run P7: the same step through the real HPA on a real node (needs root; skipped with the reason otherwise)")
	p6Run       = flag.Bool("p6", true, "run P6")
)

func main() {
	flag.Parse()
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "bench/agent:", err)
		os.Exit(1)
	}
}

func run() error {
	bin, err := filepath.Abs(*meridianBin)
	if err != nil {
		return err
	}
	if _, err := os.Stat(bin); err != nil {
		return fmt.Errorf("%w; run `make build` first", err)
	}
	fmt.Printf("P6/P7: machine %d cores, %s\n", runtime.NumCPU(), runtime.Version())
	if !*p6Run {
		return p7(bin, textdirBody(), 25*time.Millisecond)
	}
	repo, err := textdirRepo()
	if err != nil {
		return err
	}
	defer func() { _ = os.RemoveAll(repo) }()

	img := textdirBody()
	capacity, unloaded, err := calibrate(bin, repo, img)
	if err != nil {
		return err
	}
	// The step must stay within what two cores can serve through the
	// front and the load generator (about one replica's closed-loop
	// figure here), or no replica count can bring p95 back.
	base := 0.19 * capacity
	target := max(3*unloaded, 25*time.Millisecond)
	fmt.Printf("P6: one replica (1 ORT thread) serves %.0f img/s, p95 %.1fms unloaded; base load %.0f/s, step to %.0f/s; p95 target %s\n",
		capacity, ms(unloaded), base, 5*base, target)

	meridian := scenario{name: "meridian", sync: time.Second, window: 5 * time.Second, burst: true}
	res, err := meridian.run(bin, repo, img, base, target)
	if err != nil {
		return err
	}
	var hpa *result
	if *hpaCheck {
		defaults := scenario{name: "hpa-defaults", sync: 15 * time.Second, window: 15 * time.Second}
		if hpa, err = defaults.run(bin, repo, img, base, target); err != nil {
			return err
		}
	}
	fmt.Println()
	verdict := "short"
	if res.recovered && res.recovery <= 15*time.Second {
		verdict = "ok"
	}
	fmt.Printf("P6 recovery=%s target<=15s %s (replicas %d -> %d)\n", res.String(), verdict, res.startReplicas, res.endReplicas)
	fmt.Printf("P6 scale_reaction=%s (step to more replicas, all ready)\n", res.reactionString())
	fmt.Printf("P6 requests: %d sent, %d failed, %d dropped (failed and dropped ones are not in the p95)\n", res.sent, res.failed, res.dropped)
	if hpa != nil {
		fmt.Printf("P6 hpa_defaults_recovery=%s (replicas %d -> %d; sync 15s, no burst mode, default policies)\n", hpa.String(), hpa.startReplicas, hpa.endReplicas)
		fmt.Printf("P6 hpa_defaults_scale_reaction=%s; %d sent, %d failed, %d dropped\n", hpa.reactionString(), hpa.sent, hpa.failed, hpa.dropped)
	}
	if *p7Run {
		return p7(bin, img, target)
	}
	return nil
}

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }

// textdirRepo is the bundled textdir model with one ORT thread per
// replica, so replicas, not threads, add capacity.
func textdirRepo() (string, error) {
	dir, err := os.MkdirTemp("", "meridian-p6-")
	if err != nil {
		return "", err
	}
	src, err := filepath.Abs("models/textdir/1/model.onnx")
	if err != nil {
		return "", err
	}
	if err := os.MkdirAll(filepath.Join(dir, "textdir", "1"), 0o755); err != nil {
		return "", err
	}
	if err := os.Symlink(src, filepath.Join(dir, "textdir", "1", "model.onnx")); err != nil {
		return "", err
	}
	cfg := "max_batch_size: 8\nqueue_size: 512\nworkers: 1\nintra_op_threads: 1\nno_cache: true\n"
	return dir, os.WriteFile(filepath.Join(dir, "textdir", "config.yaml"), []byte(cfg), 0o644)
}

// textdirBody is one 3x48x192 image in the binary tensor extension, so
// the replicas spend their CPU on the model rather than on JSON numbers.
func textdirBody() []byte {
	raw := make([]byte, 0, 4*3*48*192)
	for i := range 3 * 48 * 192 {
		v := float32(0.9)
		if i%192%12 < 7 && i/192%48 > 14 && i/192%48 < 34 {
			v = -0.8
		}
		raw = binary.LittleEndian.AppendUint32(raw, math.Float32bits(v))
	}
	header := fmt.Sprintf(`{"inputs":[{"name":"x","datatype":"FP32","shape":[1,3,48,192],"parameters":{"binary_data_size":%d}}]}`, len(raw))
	headerLen = strconv.Itoa(len(header))
	return append([]byte(header), raw...)
}

// headerLen is the Inference-Header-Content-Length of textdirBody.
var headerLen string

func serveArgs(repo string) []string {
	lib, _ := filepath.Abs(".cache/onnxruntime/libonnxruntime.so.1")
	return []string{"--models", repo, "--ort-lib", lib, "--cache-size", "0", "--log-level", "warn"}
}

// calibrate measures one replica's closed-loop throughput and its p95 at
// one request at a time.
func calibrate(bin, repo string, img []byte) (float64, time.Duration, error) {
	cmd := exec.Command(bin, append([]string{"serve", "--listen", "127.0.0.1:18631"}, serveArgs(repo)...)...)
	if err := cmd.Start(); err != nil {
		return 0, 0, err
	}
	defer func() { _ = cmd.Process.Kill(); _ = cmd.Wait() }()
	url := "http://127.0.0.1:18631"
	for i := 0; ; i++ {
		if resp, err := http.Get(url + "/v2/health/ready"); err == nil {
			_ = resp.Body.Close()
			if resp.StatusCode == 200 {
				break
			}
		}
		if i > 300 {
			return 0, 0, fmt.Errorf("calibration replica never became ready")
		}
		time.Sleep(50 * time.Millisecond)
	}
	var lat []time.Duration
	for range 100 {
		start := time.Now()
		if err := infer(url, img); err != nil {
			return 0, 0, err
		}
		lat = append(lat, time.Since(start))
	}
	var done atomic.Int64
	stop := time.Now().Add(3 * time.Second)
	var wg sync.WaitGroup
	for range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for time.Now().Before(stop) {
				if infer(url, img) == nil {
					done.Add(1)
				}
			}
		}()
	}
	wg.Wait()
	return float64(done.Load()) / 3, percentile(lat, 0.95), nil
}

var httpClient = &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{MaxIdleConnsPerHost: 256}}

func infer(url string, body []byte) error {
	req, err := http.NewRequest(http.MethodPost, url+"/v2/models/textdir/infer", bytes.NewReader(body))
	if err != nil {
		return err
	}
	req.Header.Set("Inference-Header-Content-Length", headerLen)
	req.Header.Set("Content-Type", "application/octet-stream")
	resp, err := httpClient.Do(req)
	if err != nil {
		return err
	}
	defer func() { _ = resp.Body.Close() }()
	_, _ = io.Copy(io.Discard, resp.Body)
	if resp.StatusCode != 200 {
		return fmt.Errorf("status %d", resp.StatusCode)
	}
	return nil
}

func percentile(d []time.Duration, q float64) time.Duration {
	if len(d) == 0 {
		return 0
	}
	s := slices.Clone(d)
	slices.Sort(s)
	return s[int(math.Ceil(q*float64(len(s))))-1]
}

// scenario is one run of the step with one set of autoscaling settings.
type scenario struct {
	name         string
	sync, window time.Duration
	burst        bool
	// kube runs the replicas as Pods on a real node, scaled by the real
	// HPA on the agent's metrics adapter (P7); otherwise the process
	// runtime's autoscaler scales local processes.
	kube bool
	// cpu is each replica's CPU request; default 1.
	cpu string
}

type result struct {
	sent, failed, dropped      int64
	recovered                  bool
	recovery                   time.Duration
	reacted                    bool
	reaction                   time.Duration // step to more replicas, all ready
	startReplicas, endReplicas int32
}

func (r result) reactionString() string {
	if !r.reacted {
		return "none"
	}
	return fmt.Sprintf("%.1fs", r.reaction.Seconds())
}

func (r result) String() string {
	if !r.recovered {
		return "never"
	}
	return fmt.Sprintf("%.1fs", r.recovery.Seconds())
}

func (s scenario) run(bin, repo string, img []byte, base float64, target time.Duration) (*result, error) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	cpOpts := controlplane.Options{}
	if s.kube {
		cpOpts = controlplane.Options{ControllerManager: true, Scheduler: true, NodeLifecycle: true}
	}
	cp, err := controlplane.Start(ctx, cpOpts)
	if err != nil {
		return nil, err
	}
	defer func() { _ = cp.Stop() }()
	opts := agent.Options{
		ClusterName: "bench", Identity: v1.ClusterIdentity{Region: "local"},
		Process:    agent.ProcessOptions{Binary: bin, ModelRepository: repo, ServeArgs: serveArgs(repo)[2:]},
		SyncPeriod: s.sync, MetricsWindow: s.window, ReportPeriod: 10 * time.Second,
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil)),
	}
	if s.kube {
		stopNode, err := startNode(ctx, cp, &opts)
		if err != nil {
			return nil, err
		}
		defer stopNode()
	}
	agentDone := make(chan error, 1)
	go func() { agentDone <- agent.Run(ctx, cp.Config, opts) }()
	defer func() {
		cancel()
		if err := <-agentDone; err != nil {
			fmt.Fprintln(os.Stderr, "agent:", err)
		}
	}()

	as := v1.Autoscaling{
		MinReplicas: ptr.To[int32](1), MaxReplicas: int32(*maxReps),
		Targets: v1.MetricTargets{P95Latency: &metav1.Duration{Duration: target}, QueueLength: ptr.To[int32](4)},
	}
	if s.burst {
		as.Burst = &v1.BurstPolicy{Threshold: resource.MustParse("2"), Window: metav1.Duration{Duration: s.sync}}
		as.Behavior = &autoscalingv2.HorizontalPodAutoscalerBehavior{ScaleUp: &autoscalingv2.HPAScalingRules{
			StabilizationWindowSeconds: ptr.To[int32](0),
			Policies:                   []autoscalingv2.HPAScalingPolicy{{Type: autoscalingv2.PercentScalingPolicy, Value: 200, PeriodSeconds: 1}},
		}}
	}
	md := &v1.ModelDeployment{
		ObjectMeta: metav1.ObjectMeta{Name: "textdir", Namespace: "default"},
		Spec: v1.ModelDeploymentSpec{Model: v1.ModelSource{Name: "textdir"}, Autoscaling: as,
			Resources: v1.Resources{CPU: resource.MustParse(cmp.Or(s.cpu, "1")), Memory: resource.MustParse("512Mi")}},
	}
	if err := cp.Client.Create(ctx, md); err != nil {
		return nil, err
	}
	status := func() v1.ModelDeploymentStatus {
		got := &v1.ModelDeployment{}
		_ = cp.Client.Get(ctx, client.ObjectKeyFromObject(md), got)
		return got.Status
	}
	// Ready and reachable: on the kubernetes runtime the endpoint is the
	// load balancer's address once it has one.
	for i := 0; status().ReadyReplicas < 1 || !ready(status().Endpoint); i++ {
		if i > 1800 {
			return nil, fmt.Errorf("%s: no ready replica at a reachable endpoint", s.name)
		}
		time.Sleep(100 * time.Millisecond)
	}
	url := status().Endpoint

	fmt.Printf("\n%s scenario %s: sync %s, window %s, burst %v, endpoint %s\n", s.bench(), s.name, s.sync, s.window, s.burst, url)
	fmt.Println("   t(s)  offered/s  answered/s  p95(ms)  desired  ready  queue")
	gen := &openLoop{url: url, body: img}
	gen.start(base)
	res := &result{startReplicas: status().DesiredReplicas}
	stepAt := time.Now().Add(*baseFor)
	end := stepAt.Add(*stepFor)
	var good int
	for now := time.Now(); now.Before(end); now = time.Now() {
		time.Sleep(time.Second)
		if !gen.stepped && time.Now().After(stepAt) {
			gen.setRate(5 * base)
			gen.stepped = true
			fmt.Println("   --- 5x step ---")
		}
		answered, p95 := gen.window()
		st := status()
		t := time.Since(stepAt).Seconds()
		fmt.Printf("%7.1f  %9.0f  %10.0f  %7.1f  %7d  %5d  %5d\n", t, gen.rate(), answered, ms(p95), st.DesiredReplicas, st.ReadyReplicas, st.QueueLength)
		if gen.stepped && !res.reacted && st.DesiredReplicas > res.startReplicas && st.ReadyReplicas >= st.DesiredReplicas {
			res.reacted, res.reaction = true, time.Since(stepAt)
		}
		if gen.stepped && !res.recovered {
			if p95 <= target && answered > 0 {
				good++
				if good == 3 { // three seconds in a row under target
					res.recovered, res.recovery = true, time.Since(stepAt)-2*time.Second
				}
			} else {
				good = 0
			}
		}
	}
	gen.stop()
	res.endReplicas = status().DesiredReplicas
	res.sent, res.failed, res.dropped = gen.sent.Load(), gen.failed.Load(), gen.dropped.Load()
	return res, nil
}

func (s scenario) bench() string {
	if s.kube {
		return "P7"
	}
	return "P6"
}

// ready says whether a model endpoint answers its readiness check.
func ready(endpoint string) bool {
	if endpoint == "" {
		return false
	}
	resp, err := http.Get(endpoint + "/v2/health/ready")
	if err != nil {
		return false
	}
	_ = resp.Body.Close()
	return resp.StatusCode == http.StatusOK
}

// openLoop offers requests at a fixed rate whatever the answers take, as
// real users do, with up to 256 in flight.
type openLoop struct {
	url     string
	body    []byte
	stepped bool

	// sent, failed and dropped count every request the generator was due
	// to send: dropped ones found 256 already in flight.
	sent, failed, dropped atomic.Int64

	mu      sync.Mutex
	perSec  float64
	lat     []time.Duration
	quit    chan struct{}
	slots   chan struct{}
	stopped sync.WaitGroup
}

func (g *openLoop) start(rate float64) {
	g.perSec, g.quit, g.slots = rate, make(chan struct{}), make(chan struct{}, 256)
	g.stopped.Add(1)
	go func() {
		defer g.stopped.Done()
		next := time.Now()
		for {
			g.mu.Lock()
			interval := time.Duration(float64(time.Second) / g.perSec)
			g.mu.Unlock()
			next = next.Add(interval)
			time.Sleep(time.Until(next))
			select {
			case <-g.quit:
				return
			default:
			}
			g.sent.Add(1)
			select {
			case g.slots <- struct{}{}:
				go func() {
					start := time.Now()
					err := infer(g.url, g.body)
					<-g.slots
					if err != nil {
						g.failed.Add(1)
						return
					}
					g.mu.Lock()
					g.lat = append(g.lat, time.Since(start))
					g.mu.Unlock()
				}()
			default: // 256 in flight: the request is dropped, as a timed-out user would give up
				g.dropped.Add(1)
			}
		}
	}()
}

func (g *openLoop) setRate(r float64) { g.mu.Lock(); g.perSec = r; g.mu.Unlock() }
func (g *openLoop) rate() float64     { g.mu.Lock(); defer g.mu.Unlock(); return g.perSec }
func (g *openLoop) stop()             { close(g.quit); g.stopped.Wait() }

// window returns the answers and p95 since the last call.
func (g *openLoop) window() (float64, time.Duration) {
	g.mu.Lock()
	lat := g.lat
	g.lat = nil
	g.mu.Unlock()
	return float64(len(lat)), percentile(lat, 0.95)
}
