package agent

import (
	"context"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	autoscalingv2 "k8s.io/api/autoscaling/v2"
	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"meridian.dev/meridian/agent/kube"
	"meridian.dev/meridian/agent/metricsapi"
	v1 "meridian.dev/meridian/crds/v1alpha1"
	"meridian.dev/meridian/internal/controlplane"
	"meridian.dev/meridian/internal/hostip"
	"meridian.dev/meridian/internal/testbin"
)

// The blog's own manifests (kube/testdata/adopt: the sentiment Deployment
// and Service, its three alternative HPAs, the GPU Deployment), applied
// with the real kubectl to a control plane with the real
// kube-controller-manager (HPA controller), scheduler, metrics-server and
// a real node running Meridian's image, under load offered at fixed rates
// to the pods' endpoints:
//
//	(a) the CPU HPA as written: its containers have no requests, so the
//	    HPA cannot compute a utilization — `kubectl get hpa` shows
//	    <unknown>, ScalingActive is False (FailedGetResourceMetric,
//	    missing request for cpu) and the Deployment stays at one replica;
//	    a ModelDeployment adopting them says so (AdoptionHealthy False,
//	    MissingResourceRequests). The GPU Deployment stays Pending: no
//	    node offers nvidia.com/gpu.
//	(b) the fix the docs give (requests: cpu 50m, memory 512Mi) with the
//	    CPU and memory HPA: metrics-server's values show in `kubectl get
//	    hpa` and the HPA scales the Deployment up.
//	(c) the requests_per_second HPA, on the agent's metrics adapter:
//	    scales up under load and, once the load stops, back down to one.
//
// The downscale stabilization window is 15s here (Kubernetes' default is
// 5m), so that (c) sees the scale-down in seconds.
func TestBlogManifestsScaleOnARealNode(t *testing.T) {
	ip, err := hostip.IPv4()
	if err != nil {
		t.Skipf("the API server cannot dial metrics-server or the adapter: %v (it rejects loopback endpoints)", err)
	}
	start := time.Now()
	// The agent adopts the user's objects (keeping the HPA's own range)
	// and runs its metrics adapter, which finds the user's pods through
	// the adopted Deployment's selector (they carry none of Meridian's
	// labels).
	adapterReady := make(chan struct{})
	r := startRealRegion(t, realRegionOptions{
		Nodes: []string{"blog-node"},
		ControlPlane: controlplane.Options{
			MetricsServer: true, HPADownscaleStabilization: 15 * time.Second,
		},
		Agent: func(o *Options) {
			o.Kube = kube.Options{} // it deploys no image of its own
			o.SyncPeriod = time.Second
			o.MetricsAPI = &metricsapi.Options{
				Listen: net.JoinHostPort(ip.String(), "0"),
				Ready:  adapterReady,
			}
		},
	})
	cp, ref, ctx := r.cp, r.ref, r.ctx
	c := cp.Client
	cs := kubernetes.NewForConfigOrDie(cp.Config)
	bin, err := controlplane.FindBinDir()
	if err != nil {
		t.Fatal(err)
	}
	// The helpers take the (sub)test they fail.
	kubectl := func(t *testing.T, args ...string) string {
		t.Helper()
		out, err := exec.Command(filepath.Join(bin, "kubectl"), append([]string{"--kubeconfig", cp.Kubeconfig, "-n", "default"}, args...)...).CombinedOutput()
		if err != nil {
			t.Fatalf("kubectl %s: %v\n%s", strings.Join(args, " "), err, out)
		}
		return string(out)
	}
	// apply applies one of the user's files as written, with the image
	// swapped for Meridian's by digest.
	apply := func(t *testing.T, file string) {
		t.Helper()
		b, err := os.ReadFile(filepath.Join("kube", "testdata", "adopt", file))
		if err != nil {
			t.Fatal(err)
		}
		p := filepath.Join(t.TempDir(), file)
		if err := os.WriteFile(p, []byte(strings.ReplaceAll(string(b), "image: meridian:dev", "image: "+ref)), 0o600); err != nil {
			t.Fatal(err)
		}
		t.Logf("kubectl apply -f %s: %s", file, strings.TrimSpace(kubectl(t, "apply", "-f", p)))
	}
	const depName, svcName, hpaName = "sentiment-inference-deployment", "sentiment-inference-service", "sentiment-inference-hpa"
	key := func(name string) client.ObjectKey { return client.ObjectKey{Namespace: "default", Name: name} }
	hpa := func() *autoscalingv2.HorizontalPodAutoscaler {
		h := &autoscalingv2.HorizontalPodAutoscaler{}
		if err := c.Get(ctx, key(hpaName), h); err != nil {
			return &autoscalingv2.HorizontalPodAutoscaler{}
		}
		return h
	}
	replicas := func() int32 {
		d := &appsv1.Deployment{}
		if c.Get(ctx, key(depName), d) != nil || d.Spec.Replicas == nil {
			return -1
		}
		return *d.Spec.Replicas
	}
	// targets is the TARGETS column of plain `kubectl get hpa`.
	targets := func(t *testing.T) string {
		t.Helper()
		out := kubectl(t, "get", "hpa", hpaName)
		lines := strings.Split(strings.TrimSpace(out), "\n")
		if len(lines) != 2 {
			t.Fatalf("kubectl get hpa:\n%s", out)
		}
		from, to := strings.Index(lines[0], "TARGETS"), strings.Index(lines[0], "MINPODS")
		if from < 0 || to < from || len(lines[1]) < to {
			t.Fatalf("kubectl get hpa: no TARGETS column:\n%s", out)
		}
		t.Logf("kubectl get hpa:\n%s", out)
		return strings.TrimSpace(lines[1][from:to])
	}
	deleteHPA := func(t *testing.T) {
		t.Helper()
		kubectl(t, "delete", "hpa", hpaName, "--wait=true")
		testbin.Eventually(t, "the old HPA to go", 30*time.Second, func() bool {
			return apierrors.IsNotFound(c.Get(ctx, key(hpaName), &autoscalingv2.HorizontalPodAutoscaler{}))
		})
	}

	load := &blogLoad{c: c, service: svcName}
	loadCtx, stopLoad := context.WithCancel(ctx)
	go load.run(loadCtx)
	t.Cleanup(stopLoad)

	apply(t, "deployment-service.yaml")
	apply(t, "hpa-cpu-v1.yaml")
	apply(t, "gpu-deployment.yaml")
	md := &v1.ModelDeployment{
		ObjectMeta: metav1.ObjectMeta{Name: "sentiment", Namespace: "default"},
		Spec: v1.ModelDeploymentSpec{
			Model: v1.ModelSource{Name: "sentiment"}, Runtime: v1.RuntimeKubernetes,
			Adopt: &v1.Adoption{Deployment: depName, Service: svcName, HorizontalPodAutoscaler: hpaName,
				ReplicaRange: v1.ReplicaRangeHorizontalPodAutoscaler},
		},
	}
	if err := c.Create(ctx, md); err != nil {
		t.Fatal(err)
	}
	adoption := func() metav1.Condition {
		got := &v1.ModelDeployment{}
		if c.Get(ctx, client.ObjectKeyFromObject(md), got) == nil {
			if cd := meta.FindStatusCondition(got.Status.Conditions, "AdoptionHealthy"); cd != nil {
				return *cd
			}
		}
		return metav1.Condition{}
	}
	testbin.Eventually(t, "the user's pod ready on the real node", 3*time.Minute, func() bool {
		return load.endpoints(ctx) == 1
	})
	t.Logf("pod ready after %s", time.Since(start).Round(time.Second))
	// About 70m of CPU per 50 requests/s on a 2-core machine: 100/s on
	// one replica is well above half of the 50m CPU request of (b).
	load.rate.Store(100)

	t.Run("(a) CPU HPA without requests: <unknown>, and the adoption says why", func(t *testing.T) {
		var msg string
		testbin.Eventually(t, "ScalingActive=False FailedGetResourceMetric (missing request for cpu)", 3*time.Minute, func() bool {
			cd := hpaCondition(hpa(), autoscalingv2.ScalingActive)
			if cd == nil {
				return false
			}
			msg = cd.Message
			return cd.Status == corev1.ConditionFalse && cd.Reason == "FailedGetResourceMetric" && strings.Contains(cd.Message, "missing request for cpu")
		})
		t.Logf("HPA ScalingActive=False: %s", msg)
		if got := targets(t); !strings.Contains(got, "<unknown>") {
			t.Errorf("TARGETS %q: want cpu: <unknown>/50%%", got)
		}
		testbin.Eventually(t, "AdoptionHealthy=False MissingResourceRequests", time.Minute, func() bool {
			cd := adoption()
			return cd.Status == metav1.ConditionFalse && cd.Reason == "MissingResourceRequests" && strings.Contains(cd.Message, "resources.requests.cpu")
		})
		t.Logf("ModelDeployment AdoptionHealthy=False: %s", adoption().Message)
		if n := replicas(); n != 1 {
			t.Errorf("the Deployment has %d replicas; an HPA without a utilization cannot have scaled it", n)
		}

		var pods corev1.PodList
		var why string
		testbin.Eventually(t, "the GPU Deployment's pod Pending, unschedulable for want of nvidia.com/gpu", time.Minute, func() bool {
			if c.List(ctx, &pods, client.InNamespace("default"), client.MatchingLabels{"app": "gpu-inference"}) != nil || len(pods.Items) != 1 {
				return false
			}
			p := pods.Items[0]
			for _, cd := range p.Status.Conditions {
				if cd.Type == corev1.PodScheduled && cd.Status == corev1.ConditionFalse && cd.Reason == corev1.PodReasonUnschedulable {
					why = cd.Message
				}
			}
			return p.Status.Phase == corev1.PodPending && strings.Contains(why, "Insufficient nvidia.com/gpu")
		})
		t.Logf("GPU pod: %s", why)
	})

	t.Run("(b) with requests: metrics-server's values in kubectl get hpa, and a scale-up", func(t *testing.T) {
		kubectl(t, "set", "resources", "deployment", depName, "--requests=cpu=50m,memory=512Mi")
		deleteHPA(t)
		apply(t, "hpa-cpu-memory-v2.yaml")
		var cpu, mem *autoscalingv2.MetricValueStatus
		testbin.Eventually(t, "current CPU and memory utilization in the HPA's status, and a scale-up", 4*time.Minute, func() bool {
			h := hpa()
			cpu, mem = nil, nil
			for _, m := range h.Status.CurrentMetrics {
				if m.Type == autoscalingv2.ResourceMetricSourceType && m.Resource != nil && m.Resource.Current.AverageUtilization != nil {
					switch m.Resource.Name {
					case corev1.ResourceCPU:
						cpu = &m.Resource.Current
					case corev1.ResourceMemory:
						mem = &m.Resource.Current
					}
				}
			}
			return cpu != nil && mem != nil && h.Status.DesiredReplicas > 1 && replicas() > 1
		})
		t.Logf("HPA current: cpu %d%% (%s per pod), memory %d%% (%s per pod) -> %d replicas",
			*cpu.AverageUtilization, cpu.AverageValue, *mem.AverageUtilization, mem.AverageValue, replicas())
		got := targets(t)
		if strings.Contains(got, "<unknown>") || !strings.Contains(got, "cpu: ") || !strings.Contains(got, "memory: ") {
			t.Errorf("TARGETS %q: want current cpu and memory values", got)
		}
		testbin.Eventually(t, "AdoptionHealthy=True with both requests", time.Minute, func() bool {
			return adoption().Status == metav1.ConditionTrue
		})
		t.Logf("kubectl top pods:\n%s", kubectl(t, "top", "pods", "-l", "app=sentiment-inference"))
	})

	t.Run("(c) requests_per_second HPA on the agent's adapter: up under load, down after", func(t *testing.T) {
		load.rate.Store(0)
		select {
		case <-adapterReady:
		case <-time.After(2 * time.Minute):
			t.Fatal("the agent's metrics adapter did not register")
		}
		deleteHPA(t)
		kubectl(t, "scale", "deployment", depName, "--replicas=1")
		testbin.Eventually(t, "one ready replica", 2*time.Minute, func() bool { return load.endpoints(ctx) == 1 })
		// The adapter's rates span its last two scrapes: wait until they
		// no longer hold (b)'s load, so that what the HPA reads next is
		// this load's.
		testbin.Eventually(t, "requests_per_second near 0 through custom.metrics.k8s.io once (b)'s load stopped", time.Minute, func() bool {
			var list struct {
				Items []struct {
					Value resource.Quantity `json:"value"`
				} `json:"items"`
			}
			raw, err := cs.RESTClient().Get().AbsPath("/apis/custom.metrics.k8s.io/v1beta2/namespaces/default/pods/*/requests_per_second").
				Param("labelSelector", "app=sentiment-inference").DoRaw(ctx)
			if err != nil || json.Unmarshal(raw, &list) != nil || len(list.Items) == 0 {
				return false
			}
			for _, it := range list.Items {
				if it.Value.AsApproximateFloat64() >= 1 {
					return false
				}
			}
			return true
		})
		apply(t, "hpa-requests-per-second.yaml")
		load.rate.Store(30) // 30/s on one replica: three times the target of 10
		var rps *autoscalingv2.MetricValueStatus
		testbin.Eventually(t, "requests_per_second above 10 in the HPA's status, and a scale-up", 3*time.Minute, func() bool {
			h := hpa()
			rps = nil
			for _, m := range h.Status.CurrentMetrics {
				if m.Type == autoscalingv2.PodsMetricSourceType && m.Pods != nil && m.Pods.Metric.Name == metricsapi.MetricRequestsPerSecond && m.Pods.Current.AverageValue != nil {
					rps = &m.Pods.Current
				}
			}
			return rps != nil && h.Status.DesiredReplicas > 1 && replicas() > 1
		})
		if v := rps.AverageValue.AsApproximateFloat64(); v <= 10 {
			t.Errorf("the HPA scaled on requests_per_second %v per pod; want above the target 10", v)
		}
		t.Logf("HPA current: requests_per_second %s per pod -> %d replicas", rps.AverageValue, replicas())
		if got := targets(t); strings.Contains(got, "<unknown>") {
			t.Errorf("TARGETS %q: want the current requests_per_second", got)
		}
		if cd := adoption(); cd.Status != metav1.ConditionTrue {
			t.Errorf("AdoptionHealthy %s %s: %s; requests_per_second is served", cd.Status, cd.Reason, cd.Message)
		}
		load.rate.Store(0)
		stopped := time.Now()
		testbin.Eventually(t, "the scale-down to one replica once the load stopped", 3*time.Minute, func() bool { return replicas() == 1 })
		t.Logf("scaled down to 1 replica %s after the load stopped; load offered %d requests, %d answered 200 OK",
			time.Since(stopped).Round(time.Second), load.sent.Load(), load.ok.Load())
	})
	t.Logf("whole test %s", time.Since(start).Round(time.Second))
}

// blogLoad offers /analyze requests at rate per second, round-robin over
// the ready endpoints of the Service's EndpointSlices (the pods' IPs,
// reachable from the host; no kube-proxy routes the ClusterIP), each with
// a text of its own so that no result cache answers. Requests beyond 200
// in flight are not sent.
type blogLoad struct {
	c       client.Client
	service string
	rate    atomic.Int64

	mu    sync.Mutex
	addrs []string

	sent, ok atomic.Int64
}

// endpoints refreshes the ready endpoints and returns how many there are.
func (l *blogLoad) endpoints(ctx context.Context) int {
	var slices discoveryv1.EndpointSliceList
	if err := l.c.List(ctx, &slices, client.InNamespace("default"), client.MatchingLabels{discoveryv1.LabelServiceName: l.service}); err != nil {
		return -1
	}
	var addrs []string
	for _, s := range slices.Items {
		port := int32(8000)
		if len(s.Ports) > 0 && s.Ports[0].Port != nil {
			port = *s.Ports[0].Port
		}
		for _, e := range s.Endpoints {
			if e.Conditions.Ready != nil && *e.Conditions.Ready && len(e.Addresses) > 0 {
				addrs = append(addrs, net.JoinHostPort(e.Addresses[0], fmt.Sprint(port)))
			}
		}
	}
	l.mu.Lock()
	l.addrs = addrs
	l.mu.Unlock()
	return len(addrs)
}

func (l *blogLoad) run(ctx context.Context) {
	hc := &http.Client{Timeout: 10 * time.Second}
	inflight := make(chan struct{}, 200)
	refresh := time.NewTicker(time.Second)
	defer refresh.Stop()
	tick := time.NewTicker(10 * time.Millisecond)
	defer tick.Stop()
	var n int64
	var owed float64
	last := time.Now()
	for {
		select {
		case <-ctx.Done():
			return
		case <-refresh.C:
			l.endpoints(ctx)
		case now := <-tick.C:
			owed += now.Sub(last).Seconds() * float64(l.rate.Load())
			last = now
			l.mu.Lock()
			addrs := l.addrs
			l.mu.Unlock()
			for ; owed >= 1; owed-- {
				if len(addrs) == 0 {
					continue
				}
				select {
				case inflight <- struct{}{}:
				default:
					continue
				}
				n++
				addr := addrs[n%int64(len(addrs))]
				l.sent.Add(1)
				go func(i int64) {
					defer func() { <-inflight }()
					if code, _, _, err := analyze(hc, "http://"+addr, fmt.Sprintf("review %d: what a lovely day, I really enjoyed it", i)); err == nil && code == http.StatusOK {
						l.ok.Add(1)
					}
				}(n)
			}
		}
	}
}
