package agent

import (
	"context"
	"fmt"
	"math"
	"net/http"
	"slices"
	"sync"
	"time"

	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"meridian.dev/meridian/agent/autoscaler"
	"meridian.dev/meridian/agent/process"
	v1 "meridian.dev/meridian/crds/v1alpha1"
	"meridian.dev/meridian/internal/httpserve"
	"meridian.dev/meridian/internal/tracing"
)

// local is one ModelDeployment on the process runtime: its replicas, its
// front, and the loop that measures, decides and reports every SyncPeriod.
type local struct {
	a      *Agent
	key    types.NamespacedName
	model  string // the model's name, fixed for this local's life
	front  *process.Front
	stats  *versionStats
	scaler *autoscaler.Autoscaler
	scrape *process.Scraper
	cancel context.CancelFunc
	done   chan struct{}

	mu       sync.Mutex
	spec     v1.ModelDeploymentSpec
	pools    map[int64]*process.Supervisor // by version; 0: every version
	weights  map[int64]int32               // the pools' shares of traffic
	retiring map[int64]*process.Supervisor // versions no longer listed, serving until the others are ready
	affinity process.Affinity
	current  int32
	load     v1.ModelLoad
	history  []timedLoads // for the stable window
}

type timedLoads struct {
	at    time.Time
	loads []process.Load
}

// startLocal starts replicas and a front for md.
func (a *Agent) startLocal(md *v1.ModelDeployment) (*local, error) {
	key := client.ObjectKeyFromObject(md)
	l := &local{
		a: a, key: key, model: md.Spec.Model.Name, spec: md.Spec,
		scaler: autoscaler.New(),
		scrape: process.NewScraper(),
		stats:  newVersionStats(),
		pools:  map[int64]*process.Supervisor{}, retiring: map[int64]*process.Supervisor{},
		done: make(chan struct{}),
	}
	front, err := process.NewFront(key.String(), process.FrontOptions{
		Listen: a.opts.Process.FrontHost + ":0", Logger: a.log, TLS: a.opts.Process.TLS,
		HTTP: httpserve.Options{Registerer: a.opts.Registry},
		Wrap: func(h http.Handler) http.Handler {
			return tracing.Handler(nil, "agent.front", withModel(md.Spec.Model.Name, a.door.Wrap(h)))
		},
		Observe: func(r process.Result) { l.stats.observe(r, a.metrics, l) },
	})
	if err != nil {
		return nil, err
	}
	l.front = front
	l.current = max(minReplicas(md.Spec.Autoscaling), 1)
	l.mu.Lock()
	l.applyVersions(md.Spec)
	l.mu.Unlock()
	ctx, cancel := context.WithCancel(context.Background())
	l.cancel = cancel
	go l.loop(ctx)
	a.log.Info("model deployment started", "modeldeployment", key, "model", md.Spec.Model.Name, "endpoint", l.endpoint(), "replicas", l.current)
	return l, nil
}

func minReplicas(a v1.Autoscaling) int32 {
	if a.MinReplicas == nil {
		return 1
	}
	return *a.MinReplicas
}

func (l *local) endpoint() string {
	if l.a.opts.Process.TLS != nil {
		return "https://" + l.front.Addr()
	}
	return "http://" + l.front.Addr()
}

// update takes a new spec; bounds and targets apply at the next decision.
func (l *local) update(spec v1.ModelDeploymentSpec) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.spec = spec
	l.applyVersions(spec)
}

// stop drains the front and the replicas.
func (l *local) stop() {
	l.cancel()
	<-l.done
	l.front.Close(5 * time.Second)
	l.mu.Lock()
	defer l.mu.Unlock()
	for _, sup := range l.pools {
		sup.Close()
	}
	for _, sup := range l.retiring {
		sup.Close()
	}
}

func (l *local) loop(ctx context.Context) {
	defer close(l.done)
	t := time.NewTicker(l.a.opts.SyncPeriod)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			l.sync(ctx)
		}
	}
}

// sync measures the replicas, lets the autoscaler decide, applies the
// decision, and writes the ModelDeployment's status.
func (l *local) sync(ctx context.Context) {
	now := time.Now()
	loads := l.scrape.Scrape(ctx, l.replicas())

	l.mu.Lock()
	spec := l.spec
	l.history = append(l.history, timedLoads{now, loads})
	window := l.a.opts.MetricsWindow
	for len(l.history) > 1 && now.Sub(l.history[0].at) > window {
		l.history = l.history[1:]
	}
	stable := average(l.history)
	l.mu.Unlock()

	in := autoscaler.Input{
		Now: now, Spec: spec.Autoscaling, CurrentReplicas: l.current,
		Samples: samples(stable, spec.Resources), ShortWindow: samples(loads, spec.Resources),
	}
	d := l.scaler.Decide(in)
	l.a.metrics.burst.WithLabelValues(l.key.Namespace, l.key.Name).Set(b2f(d.Burst))
	if d.DesiredReplicas != l.current {
		l.a.metrics.decisions.WithLabelValues(l.key.Namespace, l.key.Name, string(d.Reason)).Inc()
		direction := "ScaledUp"
		if d.DesiredReplicas < l.current {
			direction = "ScaledDown"
		}
		l.a.event(ctx, l.key, direction, fmt.Sprintf("%d -> %d replicas (%s): %s", l.current, d.DesiredReplicas, d.Reason, d.Message))
		l.a.log.Info("scaling", "modeldeployment", l.key, "from", l.current, "to", d.DesiredReplicas, "reason", d.Reason, "message", d.Message)
		l.mu.Lock()
		l.current = d.DesiredReplicas
		l.mu.Unlock()
	}
	l.mu.Lock()
	l.settle()
	l.mu.Unlock()
	l.writeStatus(ctx, loads, d)
}

func (l *local) writeStatus(ctx context.Context, loads []process.Load, d autoscaler.Decision) {
	replicas := l.replicas()
	var ready, restarts int32
	var failing string
	for _, r := range replicas {
		if r.Ready {
			ready++
		} else if r.Restarts > 0 && r.LastError != "" {
			failing = r.LastError
		}
		restarts += int32(r.Restarts)
	}
	var rps, queue float64
	for _, ld := range loads {
		rps += ld.RequestsPerSecond
		queue += ld.QueueLength
	}
	p95 := process.P95(loads)
	if math.IsNaN(p95) {
		p95 = 0
	}
	l.a.metrics.replicas.WithLabelValues(l.key.Namespace, l.key.Name, "desired").Set(float64(l.current))
	l.a.metrics.replicas.WithLabelValues(l.key.Namespace, l.key.Name, "ready").Set(float64(ready))
	l.a.metrics.restarts.WithLabelValues(l.key.Namespace, l.key.Name).Set(float64(restarts))

	md := &v1.ModelDeployment{}
	if err := l.a.client.Get(ctx, l.key, md); err != nil {
		return // deleted: the reconciler stops us
	}
	base := md.DeepCopy()
	st := &md.Status
	if st.DesiredReplicas != l.current {
		st.LastScaleTime = &metav1.Time{Time: time.Now()}
	}
	st.ObservedGeneration = md.Generation
	st.Replicas, st.ReadyReplicas, st.DesiredReplicas = int32(len(replicas)), ready, l.current
	st.Endpoint = l.endpoint()
	st.RequestsPerSecond = *resource.NewMilliQuantity(int64(rps*1000), resource.DecimalSI)
	st.P95Latency = metav1.Duration{Duration: time.Duration(p95 * float64(time.Second))}
	st.QueueLength = int32(queue)
	st.Versions = l.versionStatus()
	setConditions(md, ready, l.current, failing, d)
	l.mu.Lock()
	l.load = v1.ModelLoad{
		Namespace: l.key.Namespace, Name: l.key.Name, Model: md.Spec.Model.Name, Endpoint: st.Endpoint,
		DesiredReplicas: l.current, ReadyReplicas: ready, RequestsPerSecond: st.RequestsPerSecond,
		P95Latency: st.P95Latency, QueueLength: st.QueueLength,
	}
	l.mu.Unlock()
	if err := l.a.client.Status().Patch(ctx, md, client.MergeFrom(base)); err != nil {
		l.a.log.Warn("writing ModelDeployment status", "modeldeployment", l.key, "err", err)
	}
}

// setConditions writes Ready, Progressing and Degraded.
func setConditions(md *v1.ModelDeployment, ready, desired int32, failing string, d autoscaler.Decision) {
	cond := func(t v1.ConditionType, ok bool, reason v1.ConditionReason, msg string) {
		v1.SetCondition(&md.Status.Conditions, t, ok, reason, msg, md.Generation)
	}
	if ready > 0 {
		cond(v1.ConditionReady, true, v1.ReasonReplicasReady, fmt.Sprintf("%d of %d replicas ready", ready, desired))
	} else {
		cond(v1.ConditionReady, false, v1.ReasonNoReadyReplica, fmt.Sprintf("0 of %d replicas ready", desired))
	}
	if ready < desired {
		cond(v1.ConditionProgressing, true, v1.ReasonReplicasStarting, fmt.Sprintf("waiting for %d more replicas to be ready", desired-ready))
	} else {
		cond(v1.ConditionProgressing, false, v1.ConditionReason(d.Reason), d.Message)
	}
	if failing != "" {
		cond(v1.ConditionDegraded, true, v1.ReasonReplicaFailing, failing)
	} else {
		cond(v1.ConditionDegraded, false, v1.ReasonAsExpected, "no replica is failing")
	}
}

// average merges each replica's loads over the window.
func average(history []timedLoads) []process.Load {
	byReplica := map[string][]process.Load{}
	var order []string
	for _, h := range history {
		for _, l := range h.loads {
			if _, ok := byReplica[l.Replica]; !ok {
				order = append(order, l.Replica)
			}
			byReplica[l.Replica] = append(byReplica[l.Replica], l)
		}
	}
	out := make([]process.Load, 0, len(order))
	for _, id := range order {
		ls := byReplica[id]
		last := ls[len(ls)-1]
		avg := process.Load{Replica: id, Ready: last.Ready, MemoryBytes: last.MemoryBytes, QueueLength: last.QueueLength, P95Seconds: math.NaN()}
		var p95s []float64
		n := 0.0
		for _, l := range ls {
			if !l.Rated {
				continue
			}
			n++
			avg.Rated = true
			avg.CPUCores += l.CPUCores
			avg.RequestsPerSecond += l.RequestsPerSecond
			if !math.IsNaN(l.P95Seconds) {
				p95s = append(p95s, l.P95Seconds)
			}
		}
		if n > 0 {
			avg.CPUCores /= n
			avg.RequestsPerSecond /= n
		}
		if len(p95s) > 0 {
			avg.P95Seconds = slices.Max(p95s) // the worst interval in the window
		}
		out = append(out, avg)
	}
	return out
}

// samples turns replica loads into autoscaler samples; utilizations are
// relative to the replica's requests, as the HPA's are.
func samples(loads []process.Load, res v1.Resources) []autoscaler.Sample {
	out := make([]autoscaler.Sample, 0, len(loads))
	cpuReq := res.CPU.AsApproximateFloat64()
	memReq := res.Memory.AsApproximateFloat64()
	for _, l := range loads {
		s := autoscaler.Sample{Replica: l.Replica, Ready: l.Ready}
		if memReq > 0 {
			s.MemoryUtilization = float(100 * l.MemoryBytes / memReq)
		}
		s.QueueLength = float(l.QueueLength)
		if l.Rated {
			if cpuReq > 0 {
				s.CPUUtilization = float(100 * l.CPUCores / cpuReq)
			}
			s.RequestsPerSecond = float(l.RequestsPerSecond)
			if !math.IsNaN(l.P95Seconds) {
				s.P95LatencySeconds = float(l.P95Seconds)
			}
		}
		out = append(out, s)
	}
	return out
}

func float(f float64) *float64 { return &f }

func b2f(b bool) float64 {
	if b {
		return 1
	}
	return 0
}
