package main

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"math"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/go-logr/logr"
	"github.com/prometheus/client_golang/prometheus"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/rest"
	"k8s.io/klog/v2"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/cluster"
	ctrllog "sigs.k8s.io/controller-runtime/pkg/log"

	v1 "meridian.dev/meridian/crds/v1alpha1"
	"meridian.dev/meridian/hub"
	"meridian.dev/meridian/hub/nsmembers"
	"meridian.dev/meridian/hub/placement"
	"meridian.dev/meridian/internal/controlplane"
	"meridian.dev/meridian/internal/scheme"
)

// hubResult is what the hub path measured.
type hubResult struct {
	full, failover time.Duration
	affected       int
	models         int
	victim         string
}

// runHub times the hub's own path on a real kube-apiserver and etcd: the
// synthetic fleet's clusters as members that are namespaces of that API
// server (hub/nsmembers), each with its ClusterReport and a Cluster
// object carrying its labels and cost; the models as InferenceModels in
// namespace default; then the real hub (hub.Run) with the production
// timing. It measures (d) full: from the hub's start to every model's
// placement written (its status, after its ModelDeployments), and (e)
// failover: from the member holding the most ModelDeployments turning
// Unreachable to every model it held placed again.
func runHub(ctx context.Context, c config, clusters []placement.Cluster, models []placement.Model) (hubResult, error) {
	var res hubResult
	// The hub's logs are discarded (a run prints its figures); so are
	// client-go's and controller-runtime's before the hub sets its own.
	klog.SetLogger(logr.Discard())
	ctrllog.SetLogger(logr.Discard())
	t := time.Now()
	cp, err := controlplane.Start(ctx, controlplane.Options{})
	if err != nil {
		return res, fmt.Errorf("starting kube-apiserver and etcd (make controlplane builds them): %w", err)
	}
	defer func() { _ = cp.Stop() }()
	cfg := rest.CopyConfig(cp.Config)
	cfg.QPS, cfg.Burst = 2000, 4000
	cl, err := client.New(cfg, client.Options{Scheme: scheme.Scheme})
	if err != nil {
		return res, err
	}
	fmt.Printf("P5 hub: kube-apiserver and etcd up in %s\n", time.Since(t).Round(time.Millisecond))

	t = time.Now()
	if err := parallel(len(clusters), func(i int) error { return writeMember(ctx, cl, clusters[i]) }); err != nil {
		return res, err
	}
	fmt.Printf("P5 hub: %d members written (namespace, ClusterReport, Cluster) in %s\n", len(clusters), time.Since(t).Round(time.Millisecond))
	t = time.Now()
	var refused atomic.Int64
	if err := parallel(len(models), func(i int) error {
		err := cl.Create(ctx, inferenceModel(models[i]))
		if apierrors.IsInvalid(err) {
			refused.Add(1) // a contradiction the API's validation catches
			return nil
		}
		return err
	}); err != nil {
		return res, fmt.Errorf("creating InferenceModels: %w", err)
	}
	created := len(models) - int(refused.Load())
	fmt.Printf("P5 hub: %d InferenceModels created in %s (%d refused by the API's validation)\n", created, time.Since(t).Round(time.Millisecond), refused.Load())

	shared, err := cluster.New(cfg, func(o *cluster.Options) { o.Scheme = scheme.Scheme })
	if err != nil {
		return res, err
	}
	provider := nsmembers.New(shared, memberPrefix)
	reg := prometheus.NewRegistry()
	opts := hub.Options{
		// Every member's probe reaches the same API server here, not one
		// each: probe every 10s rather than the preset's 500ms, so 1,000
		// members cost 100 reads/s instead of 2,000. The failover clock
		// starts when the member is Unreachable, after the probes.
		HealthPeriod: 10 * time.Second, ProbeTimeout: 5 * time.Second, HeartbeatGrace: 24 * time.Hour,
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil)), Registry: reg,
	}
	timing, _ := opts.EffectiveTiming()
	fmt.Printf("P5 hub: timing %s\n", timing)
	hctx, stop := context.WithCancel(ctx)
	defer stop()
	hubErr := make(chan error, 1)
	start := time.Now()
	go func() { hubErr <- hub.Run(hctx, cp.Config, provider, opts) }()

	// (d) full placement: every model's status written once.
	for placed := 0; placed < created; {
		select {
		case err := <-hubErr:
			return res, fmt.Errorf("the hub stopped: %w", err)
		case <-time.After(250 * time.Millisecond):
		}
		placed = seriesOf(reg, "meridian_hub_placed_replicas")
		if time.Since(start) > c.hubTimeout {
			return res, fmt.Errorf("only %d of %d models placed after %s", placed, created, c.hubTimeout)
		}
	}
	res.full = time.Since(start)
	res.models = created
	fmt.Printf("P5 (d) hub full: %d models placed through the API server in %s\n", created, res.full.Round(time.Millisecond))

	// (e) failover.
	if err := settle(ctx, cl); err != nil {
		return res, err
	}
	victim, affected, err := busiestMember(ctx, cl)
	if err != nil {
		return res, err
	}
	res.victim, res.affected = victim, len(affected)
	before, err := versions(ctx, cl)
	if err != nil {
		return res, err
	}
	provider.Cut(victim, true)
	cut := time.Now()
	for health(ctx, cl, victim) != v1.HealthUnreachable {
		time.Sleep(20 * time.Millisecond)
		if time.Since(cut) > time.Minute {
			return res, fmt.Errorf("%s never turned Unreachable", victim)
		}
	}
	unreachable := time.Now()
	fmt.Printf("P5 (e) hub failover: %s Unreachable %s after the cut (probe every %s); it held %d models\n",
		victim, unreachable.Sub(cut).Round(time.Millisecond), opts.HealthPeriod, len(affected))
	for {
		now, err := versions(ctx, cl)
		if err != nil {
			return res, err
		}
		left := 0
		for name := range affected {
			if now[name] == before[name] {
				left++
			}
		}
		if left == 0 {
			res.failover = time.Since(unreachable)
			break
		}
		if time.Since(unreachable) > c.hubTimeout {
			return res, fmt.Errorf("%d of %d models still not placed again after %s", left, len(affected), c.hubTimeout)
		}
		time.Sleep(100 * time.Millisecond)
	}
	kept, err := keptUnreachable(ctx, cl, victim, affected)
	if err != nil {
		return res, err
	}
	fmt.Printf("P5 (e) hub failover: every one of the %d models placed again %s after Unreachable; %d list %s as unreachable, left in place\n",
		len(affected), res.failover.Round(time.Millisecond), kept, victim)
	stop()
	return res, nil
}

const memberPrefix = "m-"

// parallel runs do(0..n-1) on 32 goroutines and returns the first error.
func parallel(n int, do func(int) error) error {
	var next atomic.Int64
	var first error
	var once sync.Once
	var wg sync.WaitGroup
	for range 32 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := int(next.Add(1) - 1); i < n; i = int(next.Add(1) - 1) {
				if err := do(i); err != nil {
					once.Do(func() { first = err })
					return
				}
			}
		}()
	}
	wg.Wait()
	return first
}

// writeMember writes what a member's agent and its operator would: its
// namespace, its ClusterReport (a stale heartbeat for the unhealthy 1%)
// and its Cluster with labels, provider and cost.
func writeMember(ctx context.Context, cl client.Client, c placement.Cluster) error {
	name := memberPrefix + c.Name
	if err := cl.Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: name}}); err != nil {
		return err
	}
	id := v1.ClusterIdentity{Region: v1.RegionName(c.Region)}
	if c.HasLocation {
		id.Location = &v1.GeoLocation{Latitude: fmt.Sprintf("%.4f", c.Lat), Longitude: fmt.Sprintf("%.4f", c.Lon)}
	}
	beat := metav1.Now()
	if !c.Healthy {
		beat = metav1.NewTime(beat.Add(-48 * time.Hour))
	}
	capacity := v1.Capacity{
		CPU: *resource.NewMilliQuantity(2*c.Free.MilliCPU, resource.DecimalSI), FreeCPU: *resource.NewMilliQuantity(c.Free.MilliCPU, resource.DecimalSI),
		Memory: *resource.NewQuantity(2*c.Free.MemoryBytes, resource.BinarySI), FreeMemory: *resource.NewQuantity(c.Free.MemoryBytes, resource.BinarySI),
	}
	for _, g := range gpus {
		if free, add := c.Free.GPUs[g.product], c.Addable[g.product]; free+add > 0 {
			capacity.GPUs = append(capacity.GPUs, v1.GPUCapacity{Type: g.product, Allocatable: int32(free), Free: int32(free), Addable: int32(add)})
		}
	}
	rep := &v1.ClusterReport{ObjectMeta: metav1.ObjectMeta{Name: v1.ClusterReportName}, Spec: id,
		Status: v1.ClusterReportStatus{Heartbeat: &beat, Capacity: capacity}}
	if err := nsmembers.WriteReport(ctx, cl, name, rep); err != nil {
		return err
	}
	cost := resource.MustParse(fmt.Sprintf("%.2f", c.CostPerGPUHour))
	return cl.Create(ctx, &v1.Cluster{ObjectMeta: metav1.ObjectMeta{Name: name, Labels: c.Labels},
		Spec: v1.ClusterSpec{ClusterIdentity: id, Provider: c.Labels["provider"], CostPerGPUHour: &cost}})
}

// inferenceModel is m as an InferenceModel in namespace default (the only
// one a namespace member has). A fleet-wide replica count (m.Replicas)
// has no field in the API and is left out.
func inferenceModel(m placement.Model) *v1.InferenceModel {
	im := &v1.InferenceModel{ObjectMeta: metav1.ObjectMeta{Name: strings.ReplaceAll(m.Key, "/", "-"), Namespace: "default"}}
	s := &im.Spec
	s.Model = v1.ModelSource{Name: "bench"}
	s.Resources.CPU = *resource.NewMilliQuantity(m.PerReplica.MilliCPU, resource.DecimalSI)
	s.Resources.Memory = *resource.NewQuantity(m.PerReplica.MemoryBytes, resource.BinarySI)
	if m.PerReplica.GPUs > 0 {
		s.Resources.GPU = &v1.GPURequirement{Count: int32(m.PerReplica.GPUs), Type: m.PerReplica.GPUType}
	}
	s.Autoscaling = v1.Autoscaling{MinReplicas: ptr.To(m.MinPerCluster), MaxReplicas: m.MaxPerCluster}
	if m.MaxTotal > 0 {
		s.MaxReplicas = ptr.To(max(m.MaxTotal, m.MinPerCluster)) // the API refuses less
	}
	p := &s.Placement
	p.MinRegions, p.MaxClusters = m.MinRegions, m.MaxClusters
	for _, r := range m.AllowedRegions {
		p.AllowedRegions = append(p.AllowedRegions, v1.RegionName(r))
	}
	if m.Selector != nil {
		p.ClusterSelector = &metav1.LabelSelector{MatchLabels: m.Selector}
	}
	p.Preferences = v1.PlacementPreferences{Proximity: ptr.To(m.Weights.Proximity), Cost: ptr.To(m.Weights.Cost), Capacity: ptr.To(m.Weights.Capacity)}
	// The API takes one entry per region: sum the synthetic repeats.
	rps := map[string]float64{}
	for _, d := range m.Demand {
		if rps[d.Region] == 0 {
			p.Demand = append(p.Demand, v1.RegionDemand{Region: v1.RegionName(d.Region)})
		}
		rps[d.Region] += d.RequestsPerSecond
	}
	for i := range p.Demand {
		p.Demand[i].RequestsPerSecond = *resource.NewMilliQuantity(int64(math.Round(rps[string(p.Demand[i].Region)]*1000)), resource.DecimalSI)
	}
	return im
}

// seriesOf counts the series of a gauge in reg.
func seriesOf(reg *prometheus.Registry, name string) int {
	mfs, err := reg.Gather()
	if err != nil {
		return 0
	}
	for _, mf := range mfs {
		if mf.GetName() == name {
			return len(mf.GetMetric())
		}
	}
	return 0
}

// settle waits until no InferenceModel changed for two seconds: the
// reconciles that follow the first (after the finalizer was added) are
// done.
func settle(ctx context.Context, cl client.Client) error {
	last, err := versions(ctx, cl)
	if err != nil {
		return err
	}
	for stable := time.Now(); time.Since(stable) < 2*time.Second; {
		time.Sleep(500 * time.Millisecond)
		now, err := versions(ctx, cl)
		if err != nil {
			return err
		}
		for k, v := range now {
			if last[k] != v {
				stable = time.Now()
				break
			}
		}
		last = now
	}
	return nil
}

// versions is every InferenceModel's resourceVersion, read as metadata.
func versions(ctx context.Context, cl client.Client) (map[string]string, error) {
	list := &metav1.PartialObjectMetadataList{}
	list.SetGroupVersionKind(v1.GroupVersion.WithKind("InferenceModelList"))
	if err := cl.List(ctx, list, client.InNamespace("default")); err != nil {
		return nil, fmt.Errorf("listing InferenceModels: %w", err)
	}
	out := make(map[string]string, len(list.Items))
	for _, o := range list.Items {
		out[o.Name] = o.ResourceVersion
	}
	return out, nil
}

// busiestMember is the member holding the most ModelDeployments, with the
// models they belong to.
func busiestMember(ctx context.Context, cl client.Client) (string, map[string]bool, error) {
	list := &metav1.PartialObjectMetadataList{}
	list.SetGroupVersionKind(v1.GroupVersion.WithKind("ModelDeploymentList"))
	if err := cl.List(ctx, list); err != nil {
		return "", nil, fmt.Errorf("listing ModelDeployments: %w", err)
	}
	by := map[string]map[string]bool{}
	best := ""
	for _, o := range list.Items {
		if by[o.Namespace] == nil {
			by[o.Namespace] = map[string]bool{}
		}
		by[o.Namespace][o.Labels[hub.InferenceModelLabel]] = true
		if len(by[o.Namespace]) > len(by[best]) || len(by[o.Namespace]) == len(by[best]) && o.Namespace < best {
			best = o.Namespace
		}
	}
	if best == "" {
		return "", nil, fmt.Errorf("the hub wrote no ModelDeployment")
	}
	return best, by[best], nil
}

func health(ctx context.Context, cl client.Client, name string) v1.ClusterHealth {
	c := &v1.Cluster{}
	if err := cl.Get(ctx, client.ObjectKey{Name: name}, c); err != nil {
		return ""
	}
	return c.Status.Health
}

// keptUnreachable counts the models that list victim as unreachable.
func keptUnreachable(ctx context.Context, cl client.Client, victim string, models map[string]bool) (int, error) {
	n := 0
	for name := range models {
		im := &v1.InferenceModel{}
		if err := cl.Get(ctx, client.ObjectKey{Namespace: "default", Name: name}, im); err != nil {
			return 0, err
		}
		for _, a := range im.Status.Clusters {
			if a.Cluster == victim && strings.HasPrefix(a.Reason, "unreachable") {
				n++
			}
		}
	}
	return n, nil
}
