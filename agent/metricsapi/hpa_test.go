package metricsapi

import (
	"context"
	"encoding/json"
	"fmt"
	"net"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	appsv1 "k8s.io/api/apps/v1"
	autoscalingv2 "k8s.io/api/autoscaling/v2"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/client-go/kubernetes"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"meridian.dev/meridian/agent/kube"
	"meridian.dev/meridian/internal/controlplane"
	"meridian.dev/meridian/internal/hostip"
	"meridian.dev/meridian/internal/testbin"
)

// podMap is the test's Address seam: kwok pods run no containers, so each
// pod of the Deployment is mapped, first come first served, to one of the
// real `meridian serve` replicas on loopback; pods beyond the replicas get
// no address and have no metrics, as pods that cannot be scraped.
type podMap struct {
	mu    sync.Mutex
	free  []string
	byPod map[string]string
}

func (m *podMap) address(pod *corev1.Pod) (string, bool) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if a, ok := m.byPod[pod.Name]; ok {
		return a, true
	}
	if len(m.free) == 0 {
		return "", false
	}
	a := m.free[0]
	m.free = m.free[1:]
	m.byPod[pod.Name] = a
	return a, true
}

// drive sends rps requests per second to r until ctx ends.
func drive(ctx context.Context, r replica, rps int) {
	t := time.NewTicker(time.Second / time.Duration(rps))
	defer t.Stop()
	for i := 0; ; i++ {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			go func() { _ = r.analyze(fmt.Sprintf("what a lovely day %d", i)) }()
		}
	}
}

// startAdapter runs the adapter against cp until stop is called.
func startAdapter(t *testing.T, cp *controlplane.ControlPlane, ip net.IP, addr func(*corev1.Pod) (string, bool), reg *prometheus.Registry) (stop func()) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	ready := make(chan struct{})
	done := make(chan error, 1)
	go func() {
		done <- Run(ctx, cp.Config, cp.Client, Options{
			Listen: net.JoinHostPort(ip.String(), "0"), Period: time.Second,
			Address: addr, Logger: quiet(), Registry: reg, Ready: ready,
		})
	}()
	select {
	case <-ready:
	case err := <-done:
		t.Fatalf("adapter: %v", err)
	case <-time.After(2 * time.Minute):
		t.Fatal("adapter did not register")
	}
	var once sync.Once
	stop = func() {
		once.Do(func() {
			cancel()
			if err := <-done; err != nil {
				t.Errorf("adapter: %v", err)
			}
		})
	}
	t.Cleanup(stop)
	return stop
}

func available(ctx context.Context, c client.Client, name string) bool {
	u := &unstructured.Unstructured{}
	u.SetAPIVersion("apiregistration.k8s.io/v1")
	u.SetKind("APIService")
	if err := c.Get(ctx, client.ObjectKey{Name: name}, u); err != nil {
		return false
	}
	conds, _, _ := unstructured.NestedSlice(u.Object, "status", "conditions")
	for _, c := range conds {
		m, _ := c.(map[string]any)
		if m["type"] == "Available" && m["status"] == "True" {
			return true
		}
	}
	return false
}

func modelDeployment(name string, replicas int32) *appsv1.Deployment {
	labels := map[string]string{kube.NameLabel: kube.NameValue, kube.InstanceLabel: name, kube.ModelLabel: "sentiment"}
	return &appsv1.Deployment{
		ObjectMeta: metav1.ObjectMeta{Namespace: "default", Name: name},
		Spec: appsv1.DeploymentSpec{
			Replicas: ptr.To(replicas),
			Selector: &metav1.LabelSelector{MatchLabels: labels},
			Template: corev1.PodTemplateSpec{
				ObjectMeta: metav1.ObjectMeta{Labels: labels},
				Spec: corev1.PodSpec{Containers: []corev1.Container{{Name: kube.ContainerName, Image: kube.DefaultImage,
					Ports: []corev1.ContainerPort{{Name: kube.PortName, ContainerPort: kube.DefaultPort}}}}},
			},
		},
	}
}

func rpsHPA(name string) *autoscalingv2.HorizontalPodAutoscaler {
	target := resource.MustParse("10")
	return &autoscalingv2.HorizontalPodAutoscaler{
		ObjectMeta: metav1.ObjectMeta{Namespace: "default", Name: name},
		Spec: autoscalingv2.HorizontalPodAutoscalerSpec{
			ScaleTargetRef: autoscalingv2.CrossVersionObjectReference{APIVersion: "apps/v1", Kind: "Deployment", Name: name},
			MinReplicas:    ptr.To[int32](2), MaxReplicas: 10,
			Metrics: []autoscalingv2.MetricSpec{{Type: autoscalingv2.PodsMetricSourceType, Pods: &autoscalingv2.PodsMetricSource{
				Metric: autoscalingv2.MetricIdentifier{Name: MetricRequestsPerSecond},
				Target: autoscalingv2.MetricTarget{Type: autoscalingv2.AverageValueMetricType, AverageValue: &target},
			}}},
		},
	}
}

func condition(hpa *autoscalingv2.HorizontalPodAutoscaler, typ autoscalingv2.HorizontalPodAutoscalerConditionType) *autoscalingv2.HorizontalPodAutoscalerCondition {
	for i := range hpa.Status.Conditions {
		if hpa.Status.Conditions[i].Type == typ {
			return &hpa.Status.Conditions[i]
		}
	}
	return nil
}

// TestRealHPAScalesOnAdapterMetrics runs the real kube-apiserver (with the
// aggregation layer), kube-controller-manager's HPA controller, the
// scheduler and a kwok node. The adapter registers itself, scrapes two real
// `meridian serve` replicas (mapped to the Deployment's kwok pods through
// the Address seam) that each get 35 requests per second, and serves them
// through the API server; an autoscaling/v2 HPA on requests_per_second
// (AverageValue 10) scales the Deployment up and shows the value. Then the
// adapter goes down: a second HPA on pods with the same load reports
// ScalingActive=False (FailedGetPodsMetric) and holds its count.
func TestRealHPAScalesOnAdapterMetrics(t *testing.T) {
	ip, err := hostip.IPv4()
	if err != nil {
		t.Skipf("the API server cannot dial the adapter: %v (it rejects loopback endpoints, so the test needs a non-loopback IPv4 on this host)", err)
	}
	ctx := context.Background()
	cp := controlplane.ForTest(t, controlplane.Options{ControllerManager: true, Scheduler: true, Nodes: []controlplane.Node{{Name: "node-a"}}})
	replicas := []replica{startReplica(t), startReplica(t)}
	loadCtx, stopLoad := context.WithCancel(ctx)
	defer stopLoad()
	for _, r := range replicas {
		go drive(loadCtx, r, 35)
	}
	pods := &podMap{free: []string{replicas[0].addr, replicas[1].addr}, byPod: map[string]string{}}
	reg := prometheus.NewRegistry()
	stopAdapter := startAdapter(t, cp, ip, pods.address, reg)
	for _, name := range APIServiceNames() {
		testbin.Eventually(t, "APIService "+name+" Available", 2*time.Minute, func() bool { return available(ctx, cp.Client, name) })
	}

	if err := cp.Client.Create(ctx, modelDeployment("sentiment", 2)); err != nil {
		t.Fatal(err)
	}
	cs := kubernetes.NewForConfigOrDie(cp.Config)
	var list struct {
		Items []struct {
			DescribedObject struct{ Name string } `json:"describedObject"`
			Value           resource.Quantity     `json:"value"`
		} `json:"items"`
	}
	testbin.Eventually(t, "requests_per_second of both pods through the API server", 2*time.Minute, func() bool {
		raw, err := cs.RESTClient().Get().AbsPath("/apis/custom.metrics.k8s.io/v1beta2/namespaces/default/pods/*/requests_per_second").
			Param("labelSelector", kube.InstanceLabel+"=sentiment").DoRaw(ctx)
		if err != nil || json.Unmarshal(raw, &list) != nil || len(list.Items) != 2 {
			return false
		}
		for _, it := range list.Items {
			if it.Value.AsApproximateFloat64() <= 10 {
				return false
			}
		}
		return true
	})
	t.Logf("custom.metrics.k8s.io: %s=%s, %s=%s", list.Items[0].DescribedObject.Name, &list.Items[0].Value,
		list.Items[1].DescribedObject.Name, &list.Items[1].Value)
	raw, err := cs.RESTClient().Get().AbsPath("/apis/external.metrics.k8s.io/v1beta1/namespaces/default/queue_length").
		Param("labelSelector", ModelDeploymentLabel+"=sentiment").DoRaw(ctx)
	if err != nil {
		t.Fatalf("external queue_length: %v", err)
	}
	var ext struct {
		Items []struct {
			MetricLabels map[string]string `json:"metricLabels"`
		} `json:"items"`
	}
	if err := json.Unmarshal(raw, &ext); err != nil || len(ext.Items) != 1 || ext.Items[0].MetricLabels[ModelMetricLabel] != "sentiment" {
		t.Fatalf("external queue_length: %s (%v)", raw, err)
	}

	if err := cp.Client.Create(ctx, rpsHPA("sentiment")); err != nil {
		t.Fatal(err)
	}
	hpa := &autoscalingv2.HorizontalPodAutoscaler{}
	testbin.Eventually(t, "the HPA to scale the Deployment up on requests_per_second", 3*time.Minute, func() bool {
		if cp.Client.Get(ctx, client.ObjectKey{Namespace: "default", Name: "sentiment"}, hpa) != nil {
			return false
		}
		return hpa.Status.DesiredReplicas > 2 && len(hpa.Status.CurrentMetrics) == 1
	})
	cur := hpa.Status.CurrentMetrics[0].Pods
	if cur == nil || cur.Metric.Name != MetricRequestsPerSecond || cur.Current.AverageValue == nil || cur.Current.AverageValue.AsApproximateFloat64() <= 10 {
		t.Fatalf("HPA current metrics %+v: want requests_per_second above the target 10", hpa.Status.CurrentMetrics)
	}
	t.Logf("HPA: current requests_per_second %s per pod -> %d replicas", cur.Current.AverageValue, hpa.Status.DesiredReplicas)
	dep := &appsv1.Deployment{}
	testbin.Eventually(t, "the Deployment to take the HPA's count", time.Minute, func() bool {
		return cp.Client.Get(ctx, client.ObjectKey{Namespace: "default", Name: "sentiment"}, dep) == nil && *dep.Spec.Replicas > 2
	})
	if n := testbin.Metric(t, reg, "meridian_agent_metricsapi_requests_total", map[string]string{"api": "custom", "result": "ok"}); n == 0 {
		t.Error("meridian_agent_metricsapi_requests_total{api=custom,result=ok} did not count the reads")
	}

	// The adapter goes down. The same load on a new Deployment's pods
	// would scale it; with no metrics the HPA must say so and hold.
	stopAdapter()
	pods.mu.Lock()
	pods.free = []string{replicas[0].addr, replicas[1].addr}
	pods.mu.Unlock()
	if err := cp.Client.Create(ctx, modelDeployment("sentiment-b", 2)); err != nil {
		t.Fatal(err)
	}
	if err := cp.Client.Create(ctx, rpsHPA("sentiment-b")); err != nil {
		t.Fatal(err)
	}
	testbin.Eventually(t, "ScalingActive=False (FailedGetPodsMetric) with the adapter down", 2*time.Minute, func() bool {
		if cp.Client.Get(ctx, client.ObjectKey{Namespace: "default", Name: "sentiment-b"}, hpa) != nil {
			return false
		}
		c := condition(hpa, autoscalingv2.ScalingActive)
		return c != nil && c.Status == corev1.ConditionFalse && c.Reason == "FailedGetPodsMetric"
	})
	t.Logf("adapter down: %s", condition(hpa, autoscalingv2.ScalingActive).Message)
	// Three more HPA syncs (5s each here): nothing may scale.
	time.Sleep(16 * time.Second)
	if err := cp.Client.Get(ctx, client.ObjectKey{Namespace: "default", Name: "sentiment-b"}, dep); err != nil {
		t.Fatal(err)
	}
	if err := cp.Client.Get(ctx, client.ObjectKey{Namespace: "default", Name: "sentiment-b"}, hpa); err != nil {
		t.Fatal(err)
	}
	if *dep.Spec.Replicas != 2 || hpa.Status.LastScaleTime != nil {
		t.Fatalf("with the adapter down the Deployment went to %d replicas (HPA last scale %v); want 2, unscaled", *dep.Spec.Replicas, hpa.Status.LastScaleTime)
	}
	if c := condition(hpa, autoscalingv2.ScalingActive); c == nil || c.Status != corev1.ConditionFalse {
		t.Fatalf("ScalingActive %+v: want False while the adapter is down", c)
	}
}
