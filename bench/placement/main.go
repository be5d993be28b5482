// Command placement benchmarks the hub's placement (P5, see
// docs/benchmarks.md): a synthetic fleet of 1,000 clusters in 20 regions
// at their real locations (mixed GPU products, capacities, autoscaler
// headroom, costs and labels) and 10,000 models (varied resources,
// residency on a quarter of them, one to three regions, demand from a few
// regions). It measures, with wall time and the peak of the Go heap
// sampled every few milliseconds:
//
//	(a) full     PlaceAll of every model on the fleet
//	(b) replace  PlaceAll again, with (a) as the previous placement and the
//	             largest cluster (the one that holds the most replicas in
//	             (a)) unhealthy
//	(c) moved    PlaceAll again, with (a) as the previous placement and the
//	             capacity of the cluster running the most GPUs 10% lower:
//	             how many replicas moved (the sum over models and clusters
//	             of |new − old|, halved); then the same for the cluster
//	             lost in (b), for comparison
//
// Each of (a) and (b) runs -runs times; the verdict uses the median. It is
// not a test and asserts nothing: it prints, and ends with one line per
// figure that starts with P5 and carries the target. Run it from the
// repository root:
//
//	go run ./bench/placement                  (or: make bench)
//	go run ./bench/placement -models 1000     (a quick run)
package main

import (
	"cmp"
	"context"
	"flag"
	"fmt"
	"maps"
	"math/rand/v2"
	"os"
	"runtime"
	"runtime/metrics"
	"runtime/pprof"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"meridian.dev/meridian/hub/placement"
)

type config struct {
	clusters, models, runs int
	seed                   uint64
	sample                 time.Duration
	cpuProfile             string
	hub                    bool
	hubClusters, hubModels int
	hubTimeout             time.Duration
}

func main() {
	var c config
	fs := flag.NewFlagSet("bench/placement", flag.ExitOnError)
	fs.IntVar(&c.clusters, "clusters", 1000, "clusters in the synthetic fleet")
	fs.IntVar(&c.models, "models", 10000, "models to place")
	fs.IntVar(&c.runs, "runs", 3, "how many times (a) and (b) run; the verdict uses the median time")
	fs.Uint64Var(&c.seed, "seed", 1, "seed of the synthetic fleet and models")
	fs.DurationVar(&c.sample, "sample", 2*time.Millisecond, "how often the heap is sampled for its peak")
	fs.StringVar(&c.cpuProfile, "cpuprofile", "", "write a CPU profile of the (a) runs to this file")
	fs.BoolVar(&c.hub, "hub", true, "also time the hub's own path, on a real kube-apiserver and etcd ((d) and (e))")
	fs.IntVar(&c.hubClusters, "hub-clusters", 0, "clusters for the hub path (default -clusters)")
	fs.IntVar(&c.hubModels, "hub-models", 0, "models for the hub path (default -models)")
	fs.DurationVar(&c.hubTimeout, "hub-timeout", 15*time.Minute, "give up on a hub-path step after this long")
	_ = fs.Parse(os.Args[1:])
	c.hubClusters, c.hubModels = cmp.Or(c.hubClusters, c.clusters), cmp.Or(c.hubModels, c.models)
	if err := run(c); err != nil {
		fmt.Fprintln(os.Stderr, "bench/placement:", err)
		os.Exit(1)
	}
}

func run(c config) error {
	fmt.Printf("P5: machine %d cores, GOMAXPROCS %d, %s\n", runtime.NumCPU(), runtime.GOMAXPROCS(0), runtime.Version())
	start := time.Now()
	r := rand.New(rand.NewPCG(c.seed, 0x5eed))
	clusters := syntheticFleet(r, c.clusters)
	models := syntheticModels(r, c.models)
	fmt.Printf("P5: %d clusters in %d regions, %d models, generated in %s\n",
		len(clusters), len(regions), len(models), time.Since(start).Round(time.Millisecond))

	runtime.GC()
	mem := startSampler(c.sample)
	defer mem.stop()
	base := mem.now()
	fmt.Printf("P5: heap before placing (the fleet and the models): %s\n", mib(base.heap))

	// (a) full placement.
	if c.cpuProfile != "" {
		f, err := os.Create(c.cpuProfile)
		if err != nil {
			return fmt.Errorf("creating the CPU profile: %w", err)
		}
		defer func() { _ = f.Close() }()
		if err := pprof.StartCPUProfile(f); err != nil {
			return fmt.Errorf("starting the CPU profile: %w", err)
		}
	}
	mem.reset()
	full, fullTimes := timed(c.runs, func() map[string]placement.Result {
		return placement.PlaceAll(models, clusters, nil)
	})
	fullPeak := mem.peak()
	if c.cpuProfile != "" {
		pprof.StopCPUProfile()
	}
	fmt.Printf("P5 (a) full: %s per run (%s)\n", median(fullTimes).Round(time.Millisecond), durations(fullTimes))
	fmt.Printf("P5 (a) full: peak heap in use %s, peak heap objects %s, peak Sys %s\n",
		mib(fullPeak.heap), mib(fullPeak.objects), mib(fullPeak.sys))
	describe("(a) full", full, len(clusters))

	// (b) the largest cluster is lost.
	prev := previousOf(full)
	lost := busiest(clusters, prev)
	name := clusters[lost].Name
	failed := slices.Clone(clusters)
	failed[lost].Healthy = false
	mem.reset()
	replaced, replaceTimes := timed(c.runs, func() map[string]placement.Result {
		return placement.PlaceAll(models, failed, prev)
	})
	replacePeak := mem.peak()
	after := previousOf(replaced)
	fmt.Printf("P5 (b) replace: lost %s (%d GPUs, %d cores free) holding %d replicas of %d models; %d replicas moved; now %d on it\n",
		name, gpusOf(clusters[lost]), clusters[lost].Free.MilliCPU/1000, onCluster(prev, name), modelsOn(prev, name),
		moved(prev, after), onCluster(after, name))
	fmt.Printf("P5 (b) replace: %s per run (%s); peak heap in use %s\n",
		median(replaceTimes).Round(time.Millisecond), durations(replaceTimes), mib(replacePeak.heap))
	describe("(b) replace", replaced, len(clusters))

	// (c) a cluster's capacity shrinks by 10%: the one running the most
	// GPUs, the scarcest resource, where it matters most; then, for
	// comparison, the cluster lost in (b).
	placed := total(prev)
	var movedOnChange int
	for k, i := range []int{gpuBusiest(clusters, models, prev), lost} {
		shrunk := slices.Clone(clusters)
		shrink(&shrunk[i], 0.9)
		t := time.Now()
		changed := previousOf(placement.PlaceAll(models, shrunk, prev))
		elapsed := time.Since(t)
		n, c := moved(prev, changed), clusters[i]
		if k == 0 {
			movedOnChange = n
		}
		fmt.Printf("P5 (c) -10%%: %s (running %d replicas using %d of its %d GPUs, %d cores free) capacity -10%%: %d replicas moved, %d of them off it, in %s\n",
			c.Name, onCluster(prev, c.Name), gpusUsed(models, prev, c.Name), gpusOf(c), c.Free.MilliCPU/1000,
			n, onCluster(prev, c.Name)-onCluster(changed, c.Name), elapsed.Round(time.Millisecond))
	}

	fullMed, replaceMed := median(fullTimes), median(replaceTimes)
	fmt.Printf("P5 full=%.2fs target<=5s %s\n", fullMed.Seconds(), verdict(fullMed <= 5*time.Second))
	fmt.Printf("P5 full_peak_mem=%dMiB target<=1024MiB %s\n", fullPeak.heap>>20, verdict(fullPeak.heap <= 1<<30))
	fmt.Printf("P5 replace=%.2fs target<=1s %s\n", replaceMed.Seconds(), verdict(replaceMed <= time.Second))
	fmt.Printf("P5 moved_on_10pct_change=%d replicas (of %d placed)\n", movedOnChange, placed)
	if !c.hub {
		return nil
	}
	mem.stop()
	hr := rand.New(rand.NewPCG(c.seed, 0x5eed))
	hubClusters, hubModels := syntheticFleet(hr, c.hubClusters), syntheticModels(hr, c.hubModels)
	res, err := runHub(context.Background(), c, hubClusters, hubModels)
	if err != nil {
		return fmt.Errorf("the hub path: %w", err)
	}
	scale := fmt.Sprintf("%d models, %d clusters", res.models, len(hubClusters))
	fmt.Printf("P5 hub_full=%.2fs (%s) target<=5s %s\n", res.full.Seconds(), scale, verdict(res.full <= 5*time.Second))
	fmt.Printf("P5 hub_failover=%.2fs (%d models on %s) target<=1s %s\n", res.failover.Seconds(), res.affected, res.victim, verdict(res.failover <= time.Second))
	return nil
}

// timed runs place n times (at least once) and returns the last result
// and each run's wall time. A run's result is garbage once the next run
// starts, as the hub's previous placement is.
func timed(n int, place func() map[string]placement.Result) (map[string]placement.Result, []time.Duration) {
	times := make([]time.Duration, max(n, 1))
	var last map[string]placement.Result
	for i := range times {
		t := time.Now()
		r := place()
		times[i] = time.Since(t)
		if i == len(times)-1 {
			last = r
		}
	}
	return last, times
}

func verdict(ok bool) string {
	if ok {
		return "ok"
	}
	return "short"
}

// describe prints what a placement achieved.
func describe(what string, results map[string]placement.Result, clusters int) {
	var satisfied, replicas, assignments, excluded int
	problems := map[string]int{}
	for _, res := range results {
		if res.Satisfied {
			satisfied++
		} else {
			problems[problemKind(res.Problem)]++
		}
		replicas += int(res.Replicas)
		assignments += len(res.Assignments)
		excluded += len(res.Excluded)
	}
	fmt.Printf("P5 %s: %d of %d models satisfied; %d replicas on %d assignments; %d exclusions (%.0f per model of %d clusters)\n",
		what, satisfied, len(results), replicas, assignments, excluded, float64(excluded)/float64(max(len(results), 1)), clusters)
	for _, k := range slices.Sorted(maps.Keys(problems)) {
		fmt.Printf("P5 %s:   unsatisfied %5d × %s\n", what, problems[k], k)
	}
}

// problemKind reduces a Problem to its first clause without numbers and
// names, to count problems by kind.
func problemKind(p string) string {
	p, _, _ = strings.Cut(p, ";")
	p, _, _ = strings.Cut(p, ":")
	var b strings.Builder
	for _, w := range strings.Fields(p) {
		if strings.ContainsAny(w, "0123456789") {
			w = "N"
		}
		b.WriteString(w + " ")
	}
	return strings.TrimSpace(b.String())
}

// busiest is the index of the cluster that holds the most replicas in
// the placement p: the largest by what it runs, whose loss moves the most.
func busiest(clusters []placement.Cluster, p map[string]map[string]int32) int {
	held := map[string]int{}
	for _, m := range p {
		for c, n := range m {
			held[c] += int(n)
		}
	}
	best := 0
	for i, c := range clusters {
		if b := clusters[best]; held[c.Name] > held[b.Name] || held[c.Name] == held[b.Name] && c.Name < b.Name {
			best = i
		}
	}
	return best
}

// gpuBusiest is the index of the cluster whose replicas in p use the most
// GPUs.
func gpuBusiest(clusters []placement.Cluster, models []placement.Model, p map[string]map[string]int32) int {
	best, most := 0, -1
	for i, c := range clusters {
		if n := gpusUsed(models, p, c.Name); n > most {
			best, most = i, n
		}
	}
	return best
}

func gpusUsed(models []placement.Model, p map[string]map[string]int32, cluster string) int {
	var n int
	for _, m := range models {
		n += int(p[m.Key][cluster]) * m.PerReplica.GPUs
	}
	return n
}

func gpusOf(c placement.Cluster) int {
	var n int
	for _, v := range c.Free.GPUs {
		n += v
	}
	for _, v := range c.Addable {
		n += v
	}
	return n
}

// shrink scales a cluster's capacity, with maps of its own.
func shrink(c *placement.Cluster, f float64) {
	c.Free.MilliCPU = int64(float64(c.Free.MilliCPU) * f)
	c.Free.MemoryBytes = int64(float64(c.Free.MemoryBytes) * f)
	scale := func(m map[string]int) map[string]int {
		out := make(map[string]int, len(m))
		for k, v := range m {
			out[k] = int(float64(v) * f)
		}
		return out
	}
	c.Free.GPUs, c.Addable = scale(c.Free.GPUs), scale(c.Addable)
}

func previousOf(results map[string]placement.Result) map[string]map[string]int32 {
	prev := make(map[string]map[string]int32, len(results))
	for k, r := range results {
		m := make(map[string]int32, len(r.Assignments))
		for _, a := range r.Assignments {
			m[a.Cluster] = a.Replicas
		}
		prev[k] = m
	}
	return prev
}

// moved is half the sum over models and clusters of |new − old|: the
// replicas that changed cluster.
func moved(before, after map[string]map[string]int32) int {
	var sum int
	for key, b := range before {
		a := after[key]
		for c, n := range b {
			sum += abs(int(a[c]) - int(n))
		}
		for c, n := range a {
			if _, ok := b[c]; !ok {
				sum += int(n)
			}
		}
	}
	for key, a := range after {
		if _, ok := before[key]; !ok {
			for _, n := range a {
				sum += int(n)
			}
		}
	}
	return sum / 2
}

func abs(x int) int { return max(x, -x) }

func onCluster(p map[string]map[string]int32, cluster string) int {
	var n int
	for _, m := range p {
		n += int(m[cluster])
	}
	return n
}

func modelsOn(p map[string]map[string]int32, cluster string) int {
	var n int
	for _, m := range p {
		if m[cluster] > 0 {
			n++
		}
	}
	return n
}

func total(p map[string]map[string]int32) int {
	var n int
	for _, m := range p {
		for _, v := range m {
			n += int(v)
		}
	}
	return n
}

func median(d []time.Duration) time.Duration {
	s := slices.Clone(d)
	slices.Sort(s)
	return s[len(s)/2]
}

func durations(d []time.Duration) string {
	parts := make([]string, len(d))
	for i, v := range d {
		parts[i] = v.Round(time.Millisecond).String()
	}
	return "runs: " + strings.Join(parts, ", ")
}

func mib(b uint64) string { return fmt.Sprintf("%dMiB", b>>20) }

// memSample is one reading of the runtime's memory classes, in bytes:
// heap holds the heap's spans in use (objects + unused: HeapInuse),
// objects the heap objects, live or not yet swept (HeapAlloc), sys all the
// memory the runtime mapped (Sys).
type memSample struct{ heap, objects, sys uint64 }

// sampler reads runtime/metrics every few milliseconds (no stop-the-world)
// and keeps the largest values since the last reset.
type sampler struct {
	mu      sync.Mutex
	max     memSample
	done    chan struct{}
	stopped atomic.Bool
	wg      sync.WaitGroup
	samples []metrics.Sample
}

func startSampler(every time.Duration) *sampler {
	s := &sampler{done: make(chan struct{}), samples: []metrics.Sample{
		{Name: "/memory/classes/heap/objects:bytes"},
		{Name: "/memory/classes/heap/unused:bytes"},
		{Name: "/memory/classes/total:bytes"},
	}}
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		tick := time.NewTicker(every)
		defer tick.Stop()
		for {
			select {
			case <-s.done:
				return
			case <-tick.C:
				s.record()
			}
		}
	}()
	return s
}

func (s *sampler) read() memSample {
	metrics.Read(s.samples)
	objects, unused, sys := s.samples[0].Value.Uint64(), s.samples[1].Value.Uint64(), s.samples[2].Value.Uint64()
	return memSample{heap: objects + unused, objects: objects, sys: sys}
}

func (s *sampler) record() {
	s.mu.Lock()
	defer s.mu.Unlock()
	m := s.read()
	s.max.heap, s.max.objects, s.max.sys = max(s.max.heap, m.heap), max(s.max.objects, m.objects), max(s.max.sys, m.sys)
}

// now is a reading taken at once.
func (s *sampler) now() memSample {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.read()
}

func (s *sampler) reset() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.max = s.read()
}

// peak is the largest reading since the last reset, including one taken
// now.
func (s *sampler) peak() memSample {
	s.record()
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.max
}

func (s *sampler) stop() {
	if s.stopped.CompareAndSwap(false, true) {
		close(s.done)
		s.wg.Wait()
	}
}
