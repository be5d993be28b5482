package metricsapi

import (
	"cmp"
	"context"
	"log/slog"
	"maps"
	"math"
	"net"
	"strconv"
	"sync"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"meridian.dev/meridian/agent/kube"
	"meridian.dev/meridian/agent/process"
	"meridian.dev/meridian/crds/v1alpha1"
)

// ScraperOptions configure a Scraper.
type ScraperOptions struct {
	// Pods lists the pods to scrape (the agent's cached client).
	Pods client.Reader
	// Selector picks the pods to scrape, in every namespace. Default the
	// pods of Meridian model replicas (app.kubernetes.io/name=meridian-model).
	// The pods of Deployments that ModelDeployments adopt (spec.adopt) are
	// scraped too, found by each Deployment's own selector: a user's pods
	// carry the user's labels, not Meridian's.
	Selector labels.Selector
	// Period between scrapes. Default 5s.
	Period time.Duration
	// MaxAge is how old a pod's last good scrape may be before the pod is
	// left out. Default 3 periods.
	MaxAge time.Duration
	// Address says where a pod's metrics are served, host:port; false
	// skips the pod. Default PodAddress. Tests map pods without containers
	// (kwok) to real replicas here.
	Address func(*corev1.Pod) (string, bool)
	// Parallel bounds the scrapes in flight. Default 16.
	Parallel int
	// Logger; default slog.Default().
	Logger *slog.Logger
	// Metrics receive the scraper's meridian_agent_metricsapi_* series; nil
	// records nothing.
	Metrics *Metrics
}

// DefaultPeriod is the Scraper's default period.
const DefaultPeriod = 5 * time.Second

// Scraper reads the /metrics of every ready replica pod each period and
// keeps each pod's latest rates, p95 and queue length. It implements
// Source.
type Scraper struct {
	opts ScraperOptions

	mu   sync.Mutex
	pods map[types.NamespacedName]*podState
}

type podState struct {
	addr    string
	scraper *process.Scraper // one per pod: its history is this pod's alone
	prevAt  time.Time        // last good scrape
	last    PodMetrics
	fresh   bool // last holds a good reading
}

// NewScraper returns a Scraper; Run drives it.
func NewScraper(opts ScraperOptions) *Scraper {
	opts.Period = cmp.Or(opts.Period, DefaultPeriod)
	opts.MaxAge = cmp.Or(opts.MaxAge, 3*opts.Period)
	opts.Parallel = cmp.Or(opts.Parallel, 16)
	if opts.Selector == nil {
		opts.Selector = labels.SelectorFromSet(labels.Set{kube.NameLabel: kube.NameValue})
	}
	if opts.Address == nil {
		opts.Address = PodAddress
	}
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	return &Scraper{opts: opts, pods: make(map[types.NamespacedName]*podState)}
}

// PodAddress is where a pod's `meridian serve` answers: its IP and the
// container port named "http" (kube.PortName), else 8000.
func PodAddress(pod *corev1.Pod) (string, bool) {
	if pod.Status.PodIP == "" {
		return "", false
	}
	port := kube.DefaultPort
	for _, c := range pod.Spec.Containers {
		for _, p := range c.Ports {
			if p.Name == kube.PortName {
				port = p.ContainerPort
			}
		}
	}
	return net.JoinHostPort(pod.Status.PodIP, strconv.Itoa(int(port))), true
}

// Run scrapes every period until ctx ends.
func (s *Scraper) Run(ctx context.Context) error {
	t := time.NewTicker(s.opts.Period)
	defer t.Stop()
	for {
		s.ScrapeOnce(ctx)
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
	}
}

// selectedPods are the pods Selector picks and those of adopted
// Deployments, each once.
func (s *Scraper) selectedPods(ctx context.Context) (corev1.PodList, error) {
	var list corev1.PodList
	if err := s.opts.Pods.List(ctx, &list, client.MatchingLabelsSelector{Selector: s.opts.Selector}); err != nil {
		return list, err
	}
	var mds v1alpha1.ModelDeploymentList
	if err := s.opts.Pods.List(ctx, &mds); err != nil {
		// Meridian's own replicas are still scraped.
		s.opts.Logger.Warn("metrics adapter: listing ModelDeployments to find adopted Deployments' pods", "err", err)
		return list, nil
	}
	seen := make(map[types.UID]bool, len(list.Items))
	for _, p := range list.Items {
		seen[p.UID] = true
	}
	for _, md := range mds.Items {
		if md.Spec.Adopt == nil || md.Spec.Adopt.Deployment == "" {
			continue
		}
		var dep appsv1.Deployment
		if err := s.opts.Pods.Get(ctx, types.NamespacedName{Namespace: md.Namespace, Name: md.Spec.Adopt.Deployment}, &dep); err != nil {
			continue // the ModelDeployment's status says what is missing
		}
		sel, err := metav1.LabelSelectorAsSelector(dep.Spec.Selector)
		if err != nil || sel.Empty() {
			continue
		}
		var pods corev1.PodList
		if err := s.opts.Pods.List(ctx, &pods, client.InNamespace(md.Namespace), client.MatchingLabelsSelector{Selector: sel}); err != nil {
			return list, err
		}
		for _, p := range pods.Items {
			if !seen[p.UID] {
				seen[p.UID] = true
				list.Items = append(list.Items, p)
			}
		}
	}
	return list, nil
}

// ScrapeOnce lists the selected pods and scrapes the ready ones.
func (s *Scraper) ScrapeOnce(ctx context.Context) {
	start := time.Now()
	list, err := s.selectedPods(ctx)
	if err != nil {
		if ctx.Err() == nil {
			s.opts.Logger.Warn("metrics adapter: listing pods", "err", err)
		}
		return
	}
	type job struct {
		key  types.NamespacedName
		pod  *corev1.Pod
		st   *podState
		addr string
	}
	var jobs []job
	seen := make(map[types.NamespacedName]bool, len(list.Items))
	s.mu.Lock()
	for i := range list.Items {
		pod := &list.Items[i]
		key := types.NamespacedName{Namespace: pod.Namespace, Name: pod.Name}
		if !podReady(pod) {
			continue
		}
		addr, ok := s.opts.Address(pod)
		if !ok {
			continue
		}
		seen[key] = true
		st := s.pods[key]
		if st == nil || st.addr != addr { // new pod, or a new address: no history
			st = &podState{addr: addr, scraper: process.NewScraper()}
			s.pods[key] = st
		}
		jobs = append(jobs, job{key, pod, st, addr})
	}
	for key := range s.pods {
		if !seen[key] {
			delete(s.pods, key)
		}
	}
	s.mu.Unlock()

	sem := make(chan struct{}, s.opts.Parallel)
	var wg sync.WaitGroup
	var failed int
	var fmu sync.Mutex
	for _, j := range jobs {
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer func() { <-sem; wg.Done() }()
			if !s.scrape(ctx, j.pod, j.st, j.addr) {
				fmu.Lock()
				failed++
				fmu.Unlock()
			}
		}()
	}
	wg.Wait()
	s.opts.Metrics.observeRound(time.Since(start), len(jobs)-failed, failed)
}

// scrape reads one pod; false when its metrics could not be read.
func (s *Scraper) scrape(ctx context.Context, pod *corev1.Pod, st *podState, addr string) bool {
	loads := st.scraper.Scrape(ctx, []process.Replica{{ID: pod.Name, Addr: addr, Ready: true}})
	now := time.Now()
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(loads) == 0 {
		st.fresh = false // left out until a scrape succeeds again
		s.opts.Logger.Debug("metrics adapter: scrape failed", "pod", pod.Namespace+"/"+pod.Name, "addr", addr)
		return false
	}
	l := loads[0]
	m := PodMetrics{
		Namespace: pod.Namespace, Name: pod.Name, Labels: maps.Clone(pod.Labels), Timestamp: now,
		Values: map[string]float64{MetricQueueLength: l.QueueLength},
	}
	if l.Rated && !st.prevAt.IsZero() {
		m.Window = now.Sub(st.prevAt)
		m.Values[MetricRequestsPerSecond] = l.RequestsPerSecond
		if !math.IsNaN(l.P95Seconds) {
			m.Values[MetricP95LatencySeconds] = l.P95Seconds
		}
	}
	st.prevAt, st.last, st.fresh = now, m, true
	return true
}

// PodMetrics returns the fresh measurements of the pods in namespace (all
// namespaces when empty).
func (s *Scraper) PodMetrics(namespace string) []PodMetrics {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []PodMetrics
	for key, st := range s.pods {
		if namespace != "" && key.Namespace != namespace {
			continue
		}
		if !st.fresh || time.Since(st.last.Timestamp) > s.opts.MaxAge {
			continue
		}
		out = append(out, st.last)
	}
	return out
}

func podReady(pod *corev1.Pod) bool {
	if pod.DeletionTimestamp != nil || pod.Status.Phase != corev1.PodRunning {
		return false
	}
	for _, c := range pod.Status.Conditions {
		if c.Type == corev1.PodReady {
			return c.Status == corev1.ConditionTrue
		}
	}
	return false
}
