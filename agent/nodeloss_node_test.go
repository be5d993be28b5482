package agent

import (
	"context"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"meridian.dev/meridian/agent/kube"
	v1 "meridian.dev/meridian/crds/v1alpha1"
	"meridian.dev/meridian/internal/testbin"
)

// A node's kubelet dies (SIGKILL) under load, with the control plane's
// default timings: the node turns NotReady after the node-monitor grace
// period, its replica is marked not ready and leaves the Service's
// endpoints, so the load balancer stops sending to it; after the replicas'
// node-loss toleration (kube.DefaultNodeLossToleration, 30s, not
// Kubernetes' 300s) it is evicted and replaced on the surviving node, and
// the ModelDeployment is back to 2 ready replicas. Requests sent at a fixed
// rate to the region's endpoint all succeed through it: the lost node's
// containers keep running (as on a real node whose kubelet crashed) until
// the replica leaves the endpoints, and the survivor serves after that.
//
// Then the second kubelet dies: no replica is ready anywhere, and the
// ModelDeployment and the ClusterReport say 0 ready replicas. That is what
// takes the region out of the balancer's answers: the report keeps the
// model's endpoint, but glb's steer.Target.Usable requires
// ReadyReplicas > 0 (glb/balancer.go takes it from the hub's Cluster
// status, which mirrors this ClusterReport), and the agent's gossip digest
// says Healthy only with ReadyReplicas > 0 or a deliberate scale to zero
// (agent/gossip.go), which
// glb/gossip.go's judgeModels reads to drop the model in seconds; the
// balancer's probe of the endpoint fails too, as the load balancer closes
// connections it has no ready endpoint for.
func TestNodeLossReschedulesReplicasAndEmptiesTheRegion(t *testing.T) {
	r := startRealRegion(t, realRegionOptions{Nodes: []string{"node-a", "node-b"}, Pool: 93})
	cp, nodes, ctx := r.cp, r.nodes, r.ctx
	var load *loadTally
	t.Cleanup(func() {
		if load != nil {
			load.wait()
		}
	})

	md := &v1.ModelDeployment{
		ObjectMeta: metav1.ObjectMeta{Name: "sentiment", Namespace: "default"},
		Spec: v1.ModelDeploymentSpec{
			Model:       v1.ModelSource{Name: "sentiment"},
			Resources:   v1.Resources{CPU: resource.MustParse("500m"), Memory: resource.MustParse("512Mi")},
			Autoscaling: v1.Autoscaling{MinReplicas: ptr.To[int32](2), MaxReplicas: 2},
		},
	}
	if err := cp.Client.Create(ctx, md); err != nil {
		t.Fatal(err)
	}
	endpoint := r.endpoint
	getMD := func() *v1.ModelDeployment {
		got := &v1.ModelDeployment{}
		if err := cp.Client.Get(ctx, client.ObjectKeyFromObject(md), got); err != nil {
			return nil
		}
		return got
	}
	testbin.Eventually(t, "2 ready replicas behind the load balancer's address", 3*time.Minute, func() bool {
		got := getMD()
		return got != nil && got.Status.ReadyReplicas == 2 && got.Status.Endpoint == endpoint
	})
	pods := livePods(t, cp.Client, md)
	if len(pods) != 2 || pods[0].Spec.NodeName == pods[1].Spec.NodeName {
		t.Fatalf("replicas on nodes %v; want one on each node (the runtime's topology spread)", podNodes(pods))
	}
	for _, p := range pods {
		if got := tolerationSeconds(&p, corev1.TaintNodeUnreachable); got != int64(kube.DefaultNodeLossToleration/time.Second) {
			t.Errorf("pod %s tolerates %s for %ds; want the runtime's %v", p.Name, corev1.TaintNodeUnreachable, got, kube.DefaultNodeLossToleration)
		}
	}
	var lost corev1.Pod
	for _, p := range pods {
		if p.Spec.NodeName == "node-a" {
			lost = p
		}
	}
	lostMetrics := "http://" + lost.Status.PodIP + ":8000/metrics"

	load = startLoad(ctx, endpoint, 100*time.Millisecond)
	readiness := watchReadyReplicas(ctx, getMD)
	time.Sleep(3 * time.Second) // some traffic on both replicas first

	killed := time.Now()
	since := func() time.Duration { return time.Since(killed).Round(100 * time.Millisecond) }
	nodes["node-a"].KillKubelet()
	t.Logf("node-a's kubelet killed (SIGKILL); its replica %s keeps running", lost.Name)

	testbin.Eventually(t, "node-a NotReady", 3*time.Minute, func() bool { return !nodeReady(ctx, cp.Client, "node-a") })
	tNotReady := since()
	testbin.Eventually(t, "the ModelDeployment to count 1 ready replica", time.Minute, func() bool {
		got := getMD()
		return got != nil && got.Status.ReadyReplicas == 1
	})
	tDropped := since()
	testbin.Eventually(t, "the lost replica out of the Service's ready endpoints", time.Minute, func() bool {
		return !endpointReady(ctx, cp.Client, md, lost.Status.PodIP)
	})
	tUnendpointed := since()
	// Give the load balancer a moment to act on the EndpointSlice; from
	// then on the lost replica, still running, must get no request.
	time.Sleep(5 * time.Second)
	servedBefore, err := requestsServed(lostMetrics)
	if err != nil {
		t.Fatalf("reading the lost replica's metrics at %s (its container keeps running): %v", lostMetrics, err)
	}

	testbin.Eventually(t, "the lost replica evicted", 3*time.Minute, func() bool {
		p := &corev1.Pod{}
		return cp.Client.Get(ctx, client.ObjectKeyFromObject(&lost), p) != nil || p.DeletionTimestamp != nil
	})
	tEvicted := since()
	testbin.Eventually(t, "2 ready replicas again, both on node-b", 3*time.Minute, func() bool {
		got := getMD()
		if got == nil || got.Status.ReadyReplicas != 2 {
			return false
		}
		ps := livePods(t, cp.Client, md)
		if len(ps) != 2 {
			return false
		}
		for _, p := range ps {
			if p.Spec.NodeName != "node-b" || !podReady(&p) {
				return false
			}
		}
		return true
	})
	tRecovered := since()
	if lows := readiness.min(killed, time.Now()); lows != 1 {
		t.Errorf("ready replicas went down to %d while node-a was lost; want 1 (the survivor stays ready)", lows)
	}
	time.Sleep(5 * time.Second) // traffic on the replacement
	servedAfter, err := requestsServed(lostMetrics)
	if err != nil {
		t.Fatalf("reading the lost replica's metrics: %v", err)
	}
	if servedAfter != servedBefore {
		t.Errorf("the lost replica answered %v requests after it left the endpoints; the load balancer must send only to ready endpoints", servedAfter-servedBefore)
	}
	oneLost := load.snapshot()
	t.Logf("node-a lost, at fixed rate: %s", oneLost.between(killed, time.Now()))
	if f := oneLost.between(killed, time.Now()); f.failed > 0 || f.ok == 0 {
		t.Errorf("requests during the loss of one node: %s; want every one answered (the survivor serves, the lost replica until it leaves the endpoints)", f)
	}
	recovered := killed.Add(tRecovered)
	if f := oneLost.between(recovered, time.Now()); f.ok == 0 || f.failed > 0 {
		t.Errorf("requests after the replacement was ready: %s; want them answered", f)
	}

	killed2 := time.Now()
	nodes["node-b"].KillKubelet()
	t.Logf("node-b's kubelet killed too")
	testbin.Eventually(t, "0 ready replicas once node-b is NotReady", 3*time.Minute, func() bool {
		got := getMD()
		if got == nil {
			return false
		}
		c := meta.FindStatusCondition(got.Status.Conditions, "Ready")
		return got.Status.ReadyReplicas == 0 && c != nil && c.Status == metav1.ConditionFalse
	})
	tEmpty := time.Since(killed2).Round(100 * time.Millisecond)
	testbin.Eventually(t, "the ClusterReport to report the model with 0 ready replicas", time.Minute, func() bool {
		rep := &v1.ClusterReport{}
		if cp.Client.Get(ctx, client.ObjectKey{Name: v1.ClusterReportName}, rep) != nil {
			return false
		}
		for _, m := range rep.Status.Models {
			if m.Name == md.Name {
				return m.ReadyReplicas == 0
			}
		}
		return false
	})
	testbin.Eventually(t, "the region's endpoint to refuse requests (no ready endpoint)", time.Minute, func() bool {
		return post(endpoint) != nil
	})
	tRefused := time.Since(killed2).Round(100 * time.Millisecond)
	all := load.stop()
	t.Logf("both nodes lost: %s (after %v the ModelDeployment had 0 ready replicas)", all.between(killed2, time.Now()), tEmpty)
	t.Logf("timings after node-a's kubelet died: NotReady %v, ModelDeployment 1/2 ready %v, out of the endpoints %v, evicted %v, 2/2 ready on node-b %v",
		tNotReady, tDropped, tUnendpointed, tEvicted, tRecovered)
	t.Logf("timings after node-b's kubelet died: 0 ready %v, endpoint refusing %v", tEmpty, tRefused)
	t.Logf("ready replicas over time: %s", readiness.String(killed))
}

// livePods are md's pods that are not being deleted.
func livePods(t *testing.T, c client.Client, md *v1.ModelDeployment) []corev1.Pod {
	t.Helper()
	var list corev1.PodList
	if err := c.List(context.Background(), &list, client.InNamespace(md.Namespace), client.MatchingLabels(kube.Labels(md))); err != nil {
		t.Fatal(err)
	}
	var out []corev1.Pod
	for _, p := range list.Items {
		if p.DeletionTimestamp == nil {
			out = append(out, p)
		}
	}
	return out
}

func podNodes(pods []corev1.Pod) []string {
	var out []string
	for _, p := range pods {
		out = append(out, p.Name+"@"+p.Spec.NodeName)
	}
	return out
}

func podReady(p *corev1.Pod) bool {
	for _, c := range p.Status.Conditions {
		if c.Type == corev1.PodReady {
			return c.Status == corev1.ConditionTrue
		}
	}
	return false
}

func tolerationSeconds(p *corev1.Pod, key string) int64 {
	for _, tl := range p.Spec.Tolerations {
		if tl.Key == key && tl.Effect == corev1.TaintEffectNoExecute && tl.TolerationSeconds != nil {
			return *tl.TolerationSeconds
		}
	}
	return -1
}

func nodeReady(ctx context.Context, c client.Client, name string) bool {
	n := &corev1.Node{}
	if err := c.Get(ctx, client.ObjectKey{Name: name}, n); err != nil {
		return true // not known to be otherwise
	}
	for _, cond := range n.Status.Conditions {
		if cond.Type == corev1.NodeReady {
			return cond.Status == corev1.ConditionTrue
		}
	}
	return false
}

// endpointReady says whether ip is a ready endpoint in the EndpointSlices
// of md's Service.
func endpointReady(ctx context.Context, c client.Client, md *v1.ModelDeployment, ip string) bool {
	var slices discoveryv1.EndpointSliceList
	if err := c.List(ctx, &slices, client.InNamespace(md.Namespace), client.MatchingLabels{discoveryv1.LabelServiceName: md.Name}); err != nil {
		return true
	}
	for _, es := range slices.Items {
		for _, ep := range es.Endpoints {
			for _, a := range ep.Addresses {
				if a == ip && ptr.Deref(ep.Conditions.Ready, false) {
					return true
				}
			}
		}
	}
	return false
}

// requestsServed is the meridian_inference_requests_total of a replica.
func requestsServed(metricsURL string) (float64, error) {
	resp, err := http.Get(metricsURL)
	if err != nil {
		return 0, err
	}
	defer func() { _ = resp.Body.Close() }()
	parser := expfmt.NewTextParser(model.UTF8Validation)
	families, err := parser.TextToMetricFamilies(resp.Body)
	if err != nil {
		return 0, err
	}
	var sum float64
	if f := families["meridian_inference_requests_total"]; f != nil {
		for _, m := range f.GetMetric() {
			sum += m.GetCounter().GetValue()
		}
	}
	return sum, nil
}

// noKeepAlive opens a connection per request, so every request is placed
// by the load balancer anew, as requests from many clients are.
var noKeepAlive = &http.Client{Timeout: 15 * time.Second, Transport: &http.Transport{DisableKeepAlives: true}}

// post sends one /analyze request and checks its answer.
func post(endpoint string) error {
	code, _, body, err := analyze(noKeepAlive, endpoint, "I love this, it is amazing")
	if err != nil {
		return err
	}
	if code != http.StatusOK || !strings.Contains(body, `"POSITIVE"`) {
		return fmt.Errorf("%d %s", code, body)
	}
	return nil
}

// loadTally sends requests at a fixed rate, each on its own, and keeps
// every outcome.
type loadTally struct {
	cancel context.CancelFunc
	wg     sync.WaitGroup
	mu     sync.Mutex
	sent   []outcome
}

type outcome struct {
	at  time.Time
	err error
}

func startLoad(ctx context.Context, endpoint string, every time.Duration) *loadTally {
	ctx, cancel := context.WithCancel(ctx)
	l := &loadTally{cancel: cancel}
	l.wg.Add(1)
	go func() {
		defer l.wg.Done()
		tick := time.NewTicker(every)
		defer tick.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case at := <-tick.C:
				l.wg.Add(1)
				go func() {
					defer l.wg.Done()
					err := post(endpoint)
					l.mu.Lock()
					l.sent = append(l.sent, outcome{at: at, err: err})
					l.mu.Unlock()
				}()
			}
		}
	}()
	return l
}

func (l *loadTally) wait() { l.cancel(); l.wg.Wait() }

// stop ends the load, waits for the requests in flight, and returns them all.
func (l *loadTally) stop() outcomes { l.wait(); return l.snapshot() }

// snapshot is what has been answered so far.
func (l *loadTally) snapshot() outcomes {
	l.mu.Lock()
	defer l.mu.Unlock()
	return append(outcomes(nil), l.sent...)
}

type outcomes []outcome

// tally counts the requests sent in [from, to).
type tally struct {
	ok, failed int
	firstErr   error
}

func (t tally) String() string {
	s := fmt.Sprintf("%d answered, %d failed", t.ok, t.failed)
	if t.firstErr != nil {
		s += fmt.Sprintf(" (first: %v)", t.firstErr)
	}
	return s
}

func (all outcomes) between(from, to time.Time) tally {
	var t tally
	for _, o := range all {
		if o.at.Before(from) || !o.at.Before(to) {
			continue
		}
		if o.err != nil {
			t.failed++
			if t.firstErr == nil {
				t.firstErr = o.err
			}
		} else {
			t.ok++
		}
	}
	return t
}

// readyTimeline records the ModelDeployment's ready replicas as they change.
type readyTimeline struct {
	mu      sync.Mutex
	changes []readyChange
}

type readyChange struct {
	at    time.Time
	ready int32
}

func watchReadyReplicas(ctx context.Context, get func() *v1.ModelDeployment) *readyTimeline {
	r := &readyTimeline{}
	go func() {
		for ctx.Err() == nil {
			if md := get(); md != nil {
				r.mu.Lock()
				if n := len(r.changes); n == 0 || r.changes[n-1].ready != md.Status.ReadyReplicas {
					r.changes = append(r.changes, readyChange{at: time.Now(), ready: md.Status.ReadyReplicas})
				}
				r.mu.Unlock()
			}
			time.Sleep(200 * time.Millisecond)
		}
	}()
	return r
}

// min is the fewest ready replicas seen in [from, to], counting the value
// current at from.
func (r *readyTimeline) min(from, to time.Time) int32 {
	r.mu.Lock()
	defer r.mu.Unlock()
	low := int32(-1)
	for i, c := range r.changes {
		if c.at.After(to) {
			break
		}
		if c.at.Before(from) && i+1 < len(r.changes) && !r.changes[i+1].at.After(from) {
			continue
		}
		if low < 0 || c.ready < low {
			low = c.ready
		}
	}
	return low
}

func (r *readyTimeline) String(since time.Time) string {
	r.mu.Lock()
	defer r.mu.Unlock()
	var parts []string
	for _, c := range r.changes {
		parts = append(parts, fmt.Sprintf("%d at %+v", c.ready, c.at.Sub(since).Round(100*time.Millisecond)))
	}
	return strings.Join(parts, ", ")
}
