package main

import (
	"cmp"
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"runtime"
	"strings"
	"time"

	autoscalingv2 "k8s.io/api/autoscaling/v2"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"meridian.dev/meridian/agent"
	v1 "meridian.dev/meridian/crds/v1alpha1"
	"meridian.dev/meridian/internal/controlplane"
	"meridian.dev/meridian/internal/loadgen"
)

// scenario is one run of the step with one set of autoscaling settings.
type scenario struct {
	bench        string // "P6" or "P7", for the output
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

// result is what one scenario's step did.
type result struct {
	load    *loadgen.Report
	seconds []second
	// stepP95 is over every request due after the step, failed and
	// dropped ones counted as misses; stepMisses of stepRequests missed.
	stepP95                  time.Duration
	stepMisses, stepRequests int
	failures                 string // by kind
	machine                  string // its load while the step ran
	recovered                bool
	recovery                 time.Duration
	reacted                  bool
	reaction                 time.Duration // step to more replicas than at the step, all ready
	startReplicas            int32
	stepReplicas             int32 // desired at the step
	endReplicas              int32
}

func (r result) reactionString() string {
	if !r.reacted && r.stepReplicas >= int32(*maxReps) {
		return fmt.Sprintf("none (already %d replicas at the step)", r.stepReplicas)
	}
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

// loadString says what load the step really offered.
func (r result) loadString() string {
	st := r.load.Phases[1]
	return fmt.Sprintf("step offered %.0f/s achieved %.0f/s, max lateness %s, load %s",
		st.OfferedRate(), st.AchievedRate(), r.load.MaxLateness.Round(time.Millisecond), r.load.Verdict())
}

// countString counts every request of the run, misses included.
func (r result) countString() string {
	l := r.load
	return fmt.Sprintf("%d offered, %d sent, %d ok, %d failed (%s), %d dropped; after the step p95=%s over all %d requests (%d failed or dropped, counted as misses)",
		l.Offered, l.Sent, l.OK, l.Failed, r.failures, l.Dropped, durString(r.stepP95), r.stepRequests, r.stepMisses)
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
		return nil, fmt.Errorf("%s: starting the control plane: %w", s.name, err)
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
			return nil, fmt.Errorf("%s: starting the node: %w", s.name, err)
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

	md := s.deployment(target)
	if err := cp.Client.Create(ctx, md); err != nil {
		return nil, fmt.Errorf("%s: creating the ModelDeployment: %w", s.name, err)
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

	fmt.Printf("\n%s scenario %s: sync %s, window %s, burst %v, endpoint %s; %.0f/s for %s, then %.0f/s for %s (table after the run)\n",
		s.bench, s.name, s.sync, s.window, s.burst, url, base, *baseFor, 5*base, *stepFor)
	res := &result{startReplicas: status().DesiredReplicas}
	loadBefore := loadAverage()
	rep, results, samples, err := s.offer(url, img, base, status)
	if err != nil {
		return nil, fmt.Errorf("%s: offering the load: %w", s.name, err)
	}
	res.machine = fmt.Sprintf("load average (1 min) %s at the start, %s at the end, %d cores", loadBefore, loadAverage(), runtime.NumCPU())
	res.endReplicas = status().DesiredReplicas
	res.load, res.seconds = rep, bySecond(rep, results)
	res.recovery, res.recovered = recovery(res.seconds, target)
	res.stepP95, res.stepMisses, res.stepRequests = stepP95(results)
	res.failures = failures(results)
	step := rep.Phases[1].Start
	res.stepReplicas = res.startReplicas
	if len(samples) > 0 {
		res.stepReplicas = sampleAt(samples, step).desired
	}
	for _, sm := range samples {
		if sm.at.After(step) && sm.desired > res.stepReplicas && sm.ready >= sm.desired {
			res.reacted, res.reaction = true, sm.at.Sub(step)
			break
		}
	}
	printSeconds(res.seconds, samples, step)
	fmt.Printf("   machine: %s\n", res.machine)
	return res, nil
}

// offer runs the step's load and samples the deployment's status every
// 200ms while it runs.
func (s scenario) offer(url string, img []byte, base float64, status func() v1.ModelDeploymentStatus) (*loadgen.Report, []loadgen.Result, []sample, error) {
	type offered struct {
		rep     *loadgen.Report
		results []loadgen.Result
		err     error
	}
	done := make(chan offered, 1)
	go func() {
		rep, results, err := offerStep(url, img, base)
		done <- offered{rep, results, err}
	}()
	var samples []sample
	tick := time.NewTicker(200 * time.Millisecond) // samples, not load: a dropped tick costs nothing
	defer tick.Stop()
	for {
		select {
		case o := <-done:
			return o.rep, o.results, samples, o.err
		case <-tick.C:
			st := status()
			samples = append(samples, sample{at: time.Now(), desired: st.DesiredReplicas, ready: st.ReadyReplicas, queue: st.QueueLength})
		}
	}
}

func printSeconds(secs []second, samples []sample, step time.Time) {
	fmt.Println("   t(s)  offered/s  answered/s  missed/s  p95(ms)  desired  ready  queue")
	for _, s := range secs {
		if s.t == 0 {
			fmt.Println("   --- 5x step ---")
		}
		sm := sample{}
		if len(samples) > 0 {
			sm = sampleAt(samples, step.Add(time.Duration(s.t+1)*time.Second))
		}
		fmt.Printf("%7d  %9d  %10d  %8d  %7s  %7d  %5d  %5d\n", s.t, s.offered, s.ok, s.offered-s.ok, s.p95String(), sm.desired, sm.ready, sm.queue)
	}
}

// loadAverage is the machine's one-minute load average, or "?".
func loadAverage() string {
	b, err := os.ReadFile("/proc/loadavg")
	if f := strings.Fields(string(b)); err == nil && len(f) > 0 {
		return f[0]
	}
	return "?"
}

// deployment is the ModelDeployment the scenario scales: 1 to
// -max-replicas, the p95 target and a queue target of 4, and with burst
// mode Meridian's burst policy and fast scale-up.
func (s scenario) deployment(target time.Duration) *v1.ModelDeployment {
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
	return &v1.ModelDeployment{
		ObjectMeta: metav1.ObjectMeta{Name: "textdir", Namespace: "default"},
		Spec: v1.ModelDeploymentSpec{Model: v1.ModelSource{Name: "textdir"}, Autoscaling: as,
			Resources: v1.Resources{CPU: resource.MustParse(cmp.Or(s.cpu, "1")), Memory: resource.MustParse("512Mi")}},
	}
}
