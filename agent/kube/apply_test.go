package kube

import (
	"context"
	"errors"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	autoscalingv1 "k8s.io/api/autoscaling/v1"
	autoscalingv2 "k8s.io/api/autoscaling/v2"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/controller/controllerutil"

	"meridian.dev/meridian/crds/v1alpha1"
	"meridian.dev/meridian/internal/controlplane"
)

const h100 = "NVIDIA-H100-80GB-HBM3"

// createModelDeployment creates md and returns it as the API server has it
// (defaults and UID included).
func createModelDeployment(t *testing.T, c client.Client, md *v1alpha1.ModelDeployment) *v1alpha1.ModelDeployment {
	t.Helper()
	if err := c.Create(context.Background(), md); err != nil {
		t.Fatalf("creating ModelDeployment %s: %v", md.Name, err)
	}
	return md
}

func getModelDeployment(t *testing.T, c client.Client, name string) *v1alpha1.ModelDeployment {
	t.Helper()
	md := &v1alpha1.ModelDeployment{}
	if err := c.Get(context.Background(), client.ObjectKey{Namespace: "default", Name: name}, md); err != nil {
		t.Fatal(err)
	}
	return md
}

// The objects Apply writes are checked on a real kube-apiserver, which
// validates and defaults them as production would.
func TestApplyOnRealAPIServer(t *testing.T) {
	t.Parallel()
	cp := controlplane.ForTest(t, controlplane.Options{})
	c := cp.Client
	ctx := context.Background()

	md := createModelDeployment(t, c, &v1alpha1.ModelDeployment{
		ObjectMeta: metav1.ObjectMeta{Name: "sentiment-gpu", Namespace: "default"},
		Spec: v1alpha1.ModelDeploymentSpec{
			Model: v1alpha1.ModelSource{Name: "sentiment"},
			Resources: v1alpha1.Resources{
				CPU: resource.MustParse("2"), Memory: resource.MustParse("8Gi"),
				GPU: &v1alpha1.GPURequirement{Count: 2, Type: h100},
			},
			Autoscaling: v1alpha1.Autoscaling{
				MinReplicas: ptr.To[int32](2), MaxReplicas: 6,
				Targets: v1alpha1.MetricTargets{
					CPUUtilization:    ptr.To[int32](70),
					MemoryUtilization: ptr.To[int32](80),
					RequestsPerSecond: ptr.To(resource.MustParse("25")),
					P95Latency:        &metav1.Duration{Duration: 50 * time.Millisecond},
					QueueLength:       ptr.To[int32](4),
				},
				// Partial on purpose: the server fills in the rest, and a
				// second Apply must still find nothing to change.
				Behavior: &autoscalingv2.HorizontalPodAutoscalerBehavior{
					ScaleDown: &autoscalingv2.HPAScalingRules{StabilizationWindowSeconds: ptr.To[int32](60)},
				},
			},
		},
	})
	opts := Options{}

	st, did, err := apply(ctx, c, md, opts)
	if err != nil {
		t.Fatal(err)
	}
	if did.deployment != controllerutil.OperationResultCreated || did.service != controllerutil.OperationResultCreated || did.hpa != controllerutil.OperationResultCreated {
		t.Errorf("first Apply: %+v, want all created", did)
	}
	if want := "http://sentiment-gpu.default.svc:8000"; st.Endpoint != want {
		t.Errorf("endpoint %q, want %q", st.Endpoint, want)
	}
	if st.DesiredReplicas != 2 {
		t.Errorf("desired replicas %d, want 2 (minReplicas)", st.DesiredReplicas)
	}

	key := client.ObjectKey{Namespace: "default", Name: "sentiment-gpu"}
	dep := &appsv1.Deployment{}
	svc := &corev1.Service{}
	hpa := &autoscalingv2.HorizontalPodAutoscaler{}
	for _, obj := range []client.Object{dep, svc, hpa} {
		if err := c.Get(ctx, key, obj); err != nil {
			t.Fatal(err)
		}
		checkOwned(t, obj, md)
	}

	t.Run("deployment", func(t *testing.T) {
		if dep.Spec.Replicas == nil || *dep.Spec.Replicas != 2 {
			t.Errorf("replicas %v, want 2", dep.Spec.Replicas)
		}
		if want := map[string]string{NameLabel: NameValue, InstanceLabel: "sentiment-gpu"}; !reflect.DeepEqual(dep.Spec.Selector.MatchLabels, want) {
			t.Errorf("selector %v, want %v", dep.Spec.Selector.MatchLabels, want)
		}
		ps := dep.Spec.Template.Spec
		if !reflect.DeepEqual(dep.Spec.Template.Labels, Labels(md)) {
			t.Errorf("pod labels %v", dep.Spec.Template.Labels)
		}
		if got := ps.NodeSelector[GPUProductLabel]; got != h100 {
			t.Errorf("node selector %v, want %s=%s", ps.NodeSelector, GPUProductLabel, h100)
		}
		if !slices.ContainsFunc(ps.Tolerations, func(tl corev1.Toleration) bool {
			return tl.Key == "nvidia.com/gpu" && tl.Operator == corev1.TolerationOpExists && tl.Effect == corev1.TaintEffectNoSchedule
		}) {
			t.Errorf("no toleration of the nvidia.com/gpu NoSchedule taint: %+v", ps.Tolerations)
		}
		for _, key := range []string{"node.kubernetes.io/unreachable", "node.kubernetes.io/not-ready"} {
			if !slices.ContainsFunc(ps.Tolerations, func(tl corev1.Toleration) bool {
				return tl.Key == key && tl.Operator == corev1.TolerationOpExists && tl.Effect == corev1.TaintEffectNoExecute &&
					ptr.Deref(tl.TolerationSeconds, 0) == 30
			}) {
				t.Errorf("no 30s toleration of the %s NoExecute taint (pods would wait Kubernetes' 300s on a lost node): %+v", key, ps.Tolerations)
			}
		}
		if tsc := ps.TopologySpreadConstraints; len(tsc) != 1 || tsc[0].TopologyKey != corev1.LabelHostname ||
			tsc[0].WhenUnsatisfiable != corev1.ScheduleAnyway || tsc[0].MaxSkew != 1 ||
			!reflect.DeepEqual(tsc[0].LabelSelector.MatchLabels, dep.Spec.Selector.MatchLabels) {
			t.Errorf("topology spread %+v, want a soft spread of the replicas over nodes", tsc)
		}
		if ps.TerminationGracePeriodSeconds == nil || *ps.TerminationGracePeriodSeconds != 35 {
			t.Errorf("termination grace %v, want 35s", ps.TerminationGracePeriodSeconds)
		}
		if len(ps.Containers) != 1 {
			t.Fatalf("containers: %+v", ps.Containers)
		}
		ctr := ps.Containers[0]
		if ctr.Image != DefaultImage {
			t.Errorf("image %q", ctr.Image)
		}
		wantCmd := []string{"meridian", "serve", "--listen", ":8000", "--models", "/models", "--log-format", "json", "--drain-timeout", "30s", "--device", "cuda"}
		if got := append(slices.Clone(ctr.Command), ctr.Args...); !reflect.DeepEqual(got, wantCmd) {
			t.Errorf("command %q, want %q", got, wantCmd)
		}
		for _, rl := range []corev1.ResourceList{ctr.Resources.Requests, ctr.Resources.Limits} {
			gpus := rl[GPUResource]
			if rl.Cpu().String() != "2" || rl.Memory().String() != "8Gi" || gpus.String() != "2" {
				t.Errorf("resources %v, want cpu 2, memory 8Gi, nvidia.com/gpu 2 as both requests and limits", rl)
			}
		}
		if len(ctr.Ports) != 1 || ctr.Ports[0].Name != "http" || ctr.Ports[0].ContainerPort != 8000 {
			t.Errorf("ports %+v", ctr.Ports)
		}
		if p := ctr.ReadinessProbe; p == nil || p.HTTPGet == nil || p.HTTPGet.Path != "/v2/health/ready" || p.HTTPGet.Port.StrVal != "http" {
			t.Errorf("readiness probe %+v", p)
		}
		if p := ctr.LivenessProbe; p == nil || p.HTTPGet == nil || p.HTTPGet.Path != "/v2/health/live" {
			t.Errorf("liveness probe %+v", p)
		}
	})

	t.Run("service", func(t *testing.T) {
		// LoadBalancer by default: its address is the endpoint the global
		// balancer steers to. The node port the API server gave it stays.
		if svc.Spec.Type != corev1.ServiceTypeLoadBalancer || svc.Spec.ClusterIP == "" || svc.Spec.Ports[0].NodePort == 0 {
			t.Errorf("type %s, cluster IP %q, ports %+v", svc.Spec.Type, svc.Spec.ClusterIP, svc.Spec.Ports)
		}
		if st.Endpoint != "http://sentiment-gpu.default.svc:8000" {
			t.Errorf("endpoint before the load balancer gives an address: %s", st.Endpoint)
		}
		if len(svc.Spec.Ports) != 1 || svc.Spec.Ports[0].Port != 8000 || svc.Spec.Ports[0].TargetPort.StrVal != "http" {
			t.Errorf("ports %+v", svc.Spec.Ports)
		}
		if !reflect.DeepEqual(svc.Spec.Selector, dep.Spec.Selector.MatchLabels) {
			t.Errorf("selector %v, the Deployment's is %v", svc.Spec.Selector, dep.Spec.Selector.MatchLabels)
		}
	})

	t.Run("hpa", func(t *testing.T) {
		s := hpa.Spec
		if s.ScaleTargetRef.Kind != "Deployment" || s.ScaleTargetRef.Name != "sentiment-gpu" || s.ScaleTargetRef.APIVersion != "apps/v1" {
			t.Errorf("target %+v", s.ScaleTargetRef)
		}
		if *s.MinReplicas != 2 || s.MaxReplicas != 6 {
			t.Errorf("replicas %d..%d, want 2..6", *s.MinReplicas, s.MaxReplicas)
		}
		type metric struct {
			kind   autoscalingv2.MetricSourceType
			name   string
			target autoscalingv2.MetricTargetType
			value  string
		}
		var got []metric
		for _, m := range s.Metrics {
			switch m.Type {
			case autoscalingv2.ResourceMetricSourceType:
				got = append(got, metric{m.Type, string(m.Resource.Name), m.Resource.Target.Type, resource.NewQuantity(int64(*m.Resource.Target.AverageUtilization), resource.DecimalSI).String()})
			case autoscalingv2.PodsMetricSourceType:
				got = append(got, metric{m.Type, m.Pods.Metric.Name, m.Pods.Target.Type, m.Pods.Target.AverageValue.String()})
			default:
				t.Errorf("unexpected metric %+v", m)
			}
		}
		want := []metric{
			{autoscalingv2.ResourceMetricSourceType, "cpu", autoscalingv2.UtilizationMetricType, "70"},
			{autoscalingv2.ResourceMetricSourceType, "memory", autoscalingv2.UtilizationMetricType, "80"},
			{autoscalingv2.PodsMetricSourceType, RequestsPerSecondMetric, autoscalingv2.AverageValueMetricType, "25"},
			{autoscalingv2.PodsMetricSourceType, QueueLengthMetric, autoscalingv2.AverageValueMetricType, "4"},
			{autoscalingv2.PodsMetricSourceType, P95LatencyMetric, autoscalingv2.AverageValueMetricType, "50m"},
		}
		if !reflect.DeepEqual(got, want) {
			t.Errorf("metrics\n got %+v\nwant %+v", got, want)
		}
		if b := s.Behavior; b == nil || b.ScaleDown == nil || *b.ScaleDown.StabilizationWindowSeconds != 60 {
			t.Errorf("behavior %+v, want the scale-down window of 60s", b)
		}
	})

	t.Run("second apply changes nothing", func(t *testing.T) {
		rvs := resourceVersions(t, c, key)
		_, did, err := apply(ctx, c, getModelDeployment(t, c, "sentiment-gpu"), opts)
		if err != nil {
			t.Fatal(err)
		}
		if did != (applied{controllerutil.OperationResultNone, controllerutil.OperationResultNone, controllerutil.OperationResultNone}) {
			t.Errorf("second Apply wrote: %+v", did)
		}
		if after := resourceVersions(t, c, key); !reflect.DeepEqual(after, rvs) {
			t.Errorf("resource versions changed: %v → %v", rvs, after)
		}
	})

	t.Run("the load balancer's address is the endpoint", func(t *testing.T) {
		got := &corev1.Service{}
		if err := c.Get(ctx, key, got); err != nil {
			t.Fatal(err)
		}
		base := got.DeepCopy()
		got.Status.LoadBalancer.Ingress = []corev1.LoadBalancerIngress{{IP: "203.0.113.7"}}
		if err := c.Status().Patch(ctx, got, client.MergeFrom(base)); err != nil {
			t.Fatal(err)
		}
		st, _, err := apply(ctx, c, getModelDeployment(t, c, "sentiment-gpu"), opts)
		if err != nil || st.Endpoint != "http://203.0.113.7:8000" {
			t.Errorf("endpoint %q, %v; want the load balancer's address", st.Endpoint, err)
		}
		base = got.DeepCopy()
		got.Status.LoadBalancer.Ingress = []corev1.LoadBalancerIngress{{Hostname: "lb-1.elb.example"}}
		if err := c.Status().Patch(ctx, got, client.MergeFrom(base)); err != nil {
			t.Fatal(err)
		}
		if st, _, _ := apply(ctx, c, getModelDeployment(t, c, "sentiment-gpu"), opts); st.Endpoint != "http://lb-1.elb.example:8000" {
			t.Errorf("endpoint %q; want the load balancer's hostname", st.Endpoint)
		}
	})

	t.Run("scale set by the HPA survives", func(t *testing.T) {
		// Whoever scales the Deployment (the HPA, through the scale
		// subresource) owns spec.replicas.
		if err := scaleDeployment(ctx, c, key, 5); err != nil {
			t.Fatal(err)
		}
		st, err := Apply(ctx, c, getModelDeployment(t, c, "sentiment-gpu"), opts)
		if err != nil {
			t.Fatal(err)
		}
		got := &appsv1.Deployment{}
		if err := c.Get(ctx, key, got); err != nil {
			t.Fatal(err)
		}
		if *got.Spec.Replicas != 5 {
			t.Errorf("Apply reset replicas to %d, want 5", *got.Spec.Replicas)
		}
		if st.DesiredReplicas != 5 {
			t.Errorf("desired replicas %d, want 5", st.DesiredReplicas)
		}
	})

	t.Run("maxReplicas change updates the HPA", func(t *testing.T) {
		m := getModelDeployment(t, c, "sentiment-gpu")
		m.Spec.Autoscaling.MaxReplicas = 9
		if err := c.Update(ctx, m); err != nil {
			t.Fatal(err)
		}
		_, did, err := apply(ctx, c, m, opts)
		if err != nil {
			t.Fatal(err)
		}
		if did.hpa != controllerutil.OperationResultUpdated || did.deployment != controllerutil.OperationResultNone {
			t.Errorf("Apply did %+v, want only the HPA updated", did)
		}
		got := &autoscalingv2.HorizontalPodAutoscaler{}
		if err := c.Get(ctx, key, got); err != nil {
			t.Fatal(err)
		}
		if got.Spec.MaxReplicas != 9 {
			t.Errorf("maxReplicas %d, want 9", got.Spec.MaxReplicas)
		}
	})

	t.Run("no targets: no HPA, replicas pinned to minReplicas", func(t *testing.T) {
		m := createModelDeployment(t, c, &v1alpha1.ModelDeployment{
			ObjectMeta: metav1.ObjectMeta{Name: "pinned", Namespace: "default"},
			Spec: v1alpha1.ModelDeploymentSpec{
				Model:       v1alpha1.ModelSource{Name: "sentiment"},
				Autoscaling: v1alpha1.Autoscaling{MinReplicas: ptr.To[int32](0), Targets: v1alpha1.MetricTargets{QueueLength: ptr.To[int32](2)}},
			},
		})
		if _, err := Apply(ctx, c, m, Options{Image: "registry.example/meridian:v1", Port: 9000}); err != nil {
			t.Fatal(err)
		}
		pinned := client.ObjectKey{Namespace: "default", Name: "pinned"}
		h := &autoscalingv2.HorizontalPodAutoscaler{}
		if err := c.Get(ctx, pinned, h); err != nil {
			t.Fatal(err)
		}
		if *h.Spec.MinReplicas != 1 {
			t.Errorf("HPA minReplicas %d, want 1 (0 needs the HPAScaleToZero gate)", *h.Spec.MinReplicas)
		}

		m = getModelDeployment(t, c, "pinned")
		m.Spec.Autoscaling.Targets = v1alpha1.MetricTargets{}
		if err := c.Update(ctx, m); err != nil {
			t.Fatal(err)
		}
		st, err := Apply(ctx, c, m, Options{Image: "registry.example/meridian:v1", Port: 9000})
		if err != nil {
			t.Fatal(err)
		}
		if err := c.Get(ctx, pinned, h); !apierrors.IsNotFound(err) {
			t.Errorf("the HPA of a ModelDeployment without targets is still there (err %v)", err)
		}
		d := &appsv1.Deployment{}
		if err := c.Get(ctx, pinned, d); err != nil {
			t.Fatal(err)
		}
		if *d.Spec.Replicas != 0 || st.DesiredReplicas != 0 {
			t.Errorf("replicas %d, desired %d, want 0 (minReplicas, scale to zero)", *d.Spec.Replicas, st.DesiredReplicas)
		}
		ctr := d.Spec.Template.Spec.Containers[0]
		if ctr.ImagePullPolicy != corev1.PullIfNotPresent || ctr.Image != "registry.example/meridian:v1" {
			t.Errorf("image %s pulled %s", ctr.Image, ctr.ImagePullPolicy)
		}
		if _, ok := ctr.Resources.Requests[GPUResource]; ok || slices.Contains(ctr.Args, "cuda") || d.Spec.Template.Spec.NodeSelector != nil {
			t.Errorf("a CPU replica asks for GPUs: %+v %q %v", ctr.Resources, ctr.Args, d.Spec.Template.Spec.NodeSelector)
		}
		if st.Endpoint != "http://pinned.default.svc:9000" {
			t.Errorf("endpoint %s", st.Endpoint)
		}
		rvs := resourceVersions(t, c, pinned)
		if _, did, err := apply(ctx, c, m, Options{Image: "registry.example/meridian:v1", Port: 9000}); err != nil || did.deployment != controllerutil.OperationResultNone || did.service != controllerutil.OperationResultNone {
			t.Errorf("second Apply: %+v, %v", did, err)
		}
		if after := resourceVersions(t, c, pinned); !reflect.DeepEqual(after, rvs) {
			t.Errorf("resource versions changed: %v → %v", rvs, after)
		}
	})

	t.Run("objects of others are not adopted", func(t *testing.T) {
		m := createModelDeployment(t, c, &v1alpha1.ModelDeployment{
			ObjectMeta: metav1.ObjectMeta{Name: "taken", Namespace: "default"},
			Spec:       v1alpha1.ModelDeploymentSpec{Model: v1alpha1.ModelSource{Name: "sentiment"}},
		})
		theirs := &corev1.Service{
			ObjectMeta: metav1.ObjectMeta{Name: "taken", Namespace: "default"},
			Spec:       corev1.ServiceSpec{Ports: []corev1.ServicePort{{Port: 80}}},
		}
		if err := c.Create(ctx, theirs); err != nil {
			t.Fatal(err)
		}
		_, err := Apply(ctx, c, m, opts)
		if !errors.Is(err, ErrNotControlled) || !strings.Contains(err.Error(), "spec.adopt.service: taken") {
			t.Fatalf("Apply over someone's Service: %v, want ErrNotControlled saying how to adopt it", err)
		}
		t.Logf("refused as it should: %v", err)
	})

	t.Run("an object without UID is refused", func(t *testing.T) {
		_, err := Apply(ctx, c, &v1alpha1.ModelDeployment{ObjectMeta: metav1.ObjectMeta{Name: "x", Namespace: "default"}}, opts)
		if err == nil {
			t.Fatal("accepted")
		}
	})
}

func checkOwned(t *testing.T, obj client.Object, md *v1alpha1.ModelDeployment) {
	t.Helper()
	if !metav1.IsControlledBy(obj, md) {
		t.Errorf("%T %s is not controlled by the ModelDeployment: %+v", obj, obj.GetName(), obj.GetOwnerReferences())
	}
	ref := obj.GetOwnerReferences()[0]
	if ref.APIVersion != "meridian.dev/v1alpha1" || ref.Kind != "ModelDeployment" || ref.BlockOwnerDeletion == nil || !*ref.BlockOwnerDeletion {
		t.Errorf("%T owner reference %+v", obj, ref)
	}
	for k, v := range Labels(md) {
		if obj.GetLabels()[k] != v {
			t.Errorf("%T labels %v lack %s=%s", obj, obj.GetLabels(), k, v)
		}
	}
}

func resourceVersions(t *testing.T, c client.Client, key client.ObjectKey) []string {
	t.Helper()
	var rvs []string
	for _, obj := range []client.Object{&appsv1.Deployment{}, &corev1.Service{}, &autoscalingv2.HorizontalPodAutoscaler{}} {
		if err := c.Get(context.Background(), key, obj); err != nil {
			if apierrors.IsNotFound(err) {
				rvs = append(rvs, "absent")
				continue
			}
			t.Fatal(err)
		}
		rvs = append(rvs, obj.GetResourceVersion())
	}
	return rvs
}

// scaleDeployment sets a Deployment's replicas through its scale
// subresource, as the HPA controller and `kubectl scale` do.
func scaleDeployment(ctx context.Context, c client.Client, key client.ObjectKey, replicas int32) error {
	dep := &appsv1.Deployment{ObjectMeta: metav1.ObjectMeta{Name: key.Name, Namespace: key.Namespace}}
	scale := &autoscalingv1.Scale{Spec: autoscalingv1.ScaleSpec{Replicas: replicas}}
	return c.SubResource("scale").Update(ctx, dep, client.WithSubResourceBody(scale))
}

// A replica on a lost node is evicted after Options.NodeLossToleration, not
// Kubernetes' 300s; the user's own toleration of those taints wins.
func TestNodeLossTolerations(t *testing.T) {
	md := &v1alpha1.ModelDeployment{
		ObjectMeta: metav1.ObjectMeta{Name: "m", Namespace: "default"},
		Spec:       v1alpha1.ModelDeploymentSpec{Model: v1alpha1.ModelSource{Name: "sentiment"}},
	}
	tolerated := func(opts Options) map[string]string {
		dep := &appsv1.Deployment{}
		mutateDeployment(dep, md, opts.withDefaults(), false)
		out := map[string]string{}
		for _, tl := range dep.Spec.Template.Spec.Tolerations {
			secs := "forever"
			if tl.TolerationSeconds != nil {
				secs = time.Duration(*tl.TolerationSeconds * int64(time.Second)).String()
			}
			out[tl.Key+":"+string(tl.Effect)] = secs
		}
		return out
	}
	for _, tc := range []struct {
		name string
		opts Options
		want map[string]string
	}{
		{"default", Options{}, map[string]string{
			"node.kubernetes.io/unreachable:NoExecute": "30s", "node.kubernetes.io/not-ready:NoExecute": "30s",
		}},
		{"rounded up to whole seconds", Options{NodeLossToleration: 1500 * time.Millisecond}, map[string]string{
			"node.kubernetes.io/unreachable:NoExecute": "2s", "node.kubernetes.io/not-ready:NoExecute": "2s",
		}},
		{"negative leaves the cluster's default", Options{NodeLossToleration: -1}, map[string]string{}},
		{"the user's own toleration wins", Options{Tolerations: []corev1.Toleration{{
			Key: "node.kubernetes.io/unreachable", Operator: corev1.TolerationOpExists, Effect: corev1.TaintEffectNoExecute, TolerationSeconds: ptr.To[int64](600),
		}}}, map[string]string{
			"node.kubernetes.io/unreachable:NoExecute": "10m0s", "node.kubernetes.io/not-ready:NoExecute": "30s",
		}},
		{"a toleration of every taint is not cut short", Options{Tolerations: []corev1.Toleration{{Operator: corev1.TolerationOpExists}}},
			map[string]string{":": "forever"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := tolerated(tc.opts); !reflect.DeepEqual(got, tc.want) {
				t.Errorf("tolerations %v, want %v", got, tc.want)
			}
		})
	}
}
