package kube

import (
	"context"
	"errors"
	"reflect"
	"strings"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	autoscalingv2 "k8s.io/api/autoscaling/v2"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"meridian.dev/meridian/crds/v1alpha1"
	"meridian.dev/meridian/internal/controlplane"
)

func usersDeployment(name string, ctrs ...corev1.Container) *appsv1.Deployment {
	if len(ctrs) == 0 {
		ctrs = []corev1.Container{{Name: "app", Image: "meridian:dev", Ports: []corev1.ContainerPort{{ContainerPort: 8000}}}}
	}
	sel := map[string]string{"app": name}
	return &appsv1.Deployment{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: "default"},
		Spec: appsv1.DeploymentSpec{
			Replicas: ptr.To[int32](1),
			Selector: &metav1.LabelSelector{MatchLabels: sel},
			Template: corev1.PodTemplateSpec{ObjectMeta: metav1.ObjectMeta{Labels: sel}, Spec: corev1.PodSpec{Containers: ctrs}},
		},
	}
}

func utilization(name corev1.ResourceName, pct int32) autoscalingv2.MetricSpec {
	return autoscalingv2.MetricSpec{Type: autoscalingv2.ResourceMetricSourceType, Resource: &autoscalingv2.ResourceMetricSource{
		Name: name, Target: autoscalingv2.MetricTarget{Type: autoscalingv2.UtilizationMetricType, AverageUtilization: ptr.To(pct)},
	}}
}

func podsMetric(name string) autoscalingv2.MetricSpec {
	return autoscalingv2.MetricSpec{Type: autoscalingv2.PodsMetricSourceType, Pods: &autoscalingv2.PodsMetricSource{
		Metric: autoscalingv2.MetricIdentifier{Name: name},
		Target: autoscalingv2.MetricTarget{Type: autoscalingv2.AverageValueMetricType, AverageValue: ptr.To(resource.MustParse("10"))},
	}}
}

func usersHPA(name, target string, metrics ...autoscalingv2.MetricSpec) *autoscalingv2.HorizontalPodAutoscaler {
	return &autoscalingv2.HorizontalPodAutoscaler{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: "default"},
		Spec: autoscalingv2.HorizontalPodAutoscalerSpec{
			ScaleTargetRef: autoscalingv2.CrossVersionObjectReference{APIVersion: "apps/v1", Kind: "Deployment", Name: target},
			MinReplicas:    ptr.To[int32](1), MaxReplicas: 10, Metrics: metrics,
		},
	}
}

func TestDiagnose(t *testing.T) {
	cpu := corev1.ResourceList{corev1.ResourceCPU: resource.MustParse("500m")}
	app := corev1.Container{Name: "app"}
	withCPU := corev1.Container{Name: "app", Resources: corev1.ResourceRequirements{Requests: cpu}}
	limitsOnly := corev1.Container{Name: "app", Resources: corev1.ResourceRequirements{Limits: cpu}}
	sidecar := corev1.Container{Name: "proxy", RestartPolicy: ptr.To(corev1.ContainerRestartPolicyAlways)}
	podWith := func(ctr corev1.Container) corev1.Pod {
		return corev1.Pod{Spec: corev1.PodSpec{Containers: []corev1.Container{ctr}}}
	}

	for _, tc := range []struct {
		name    string
		dep     *appsv1.Deployment
		svc     *corev1.Service
		hpa     *autoscalingv2.HorizontalPodAutoscaler
		pods    []corev1.Pod
		reasons []string
		says    []string
	}{
		{name: "CPU utilization, no request", dep: usersDeployment("d", app), hpa: usersHPA("h", "d", utilization(corev1.ResourceCPU, 50)),
			reasons: []string{ReasonMissingResourceRequests}, says: []string{`container "app" has no CPU request`, "<unknown>", "resources.requests.cpu (e.g. 500m)"}},
		{name: "CPU and memory utilization, no requests", dep: usersDeployment("d", app), hpa: usersHPA("h", "d", utilization(corev1.ResourceCPU, 50), utilization(corev1.ResourceMemory, 60)),
			reasons: []string{ReasonMissingResourceRequests, ReasonMissingResourceRequests}, says: []string{"resources.requests.memory (e.g. 512Mi)", "target 60%"}},
		{name: "CPU request present", dep: usersDeployment("d", withCPU), hpa: usersHPA("h", "d", utilization(corev1.ResourceCPU, 50))},
		{name: "limits become requests", dep: usersDeployment("d", limitsOnly), hpa: usersHPA("h", "d", utilization(corev1.ResourceCPU, 50))},
		{name: "a sidecar without a request", dep: func() *appsv1.Deployment {
			d := usersDeployment("d", withCPU)
			d.Spec.Template.Spec.InitContainers = []corev1.Container{sidecar}
			return d
		}(), hpa: usersHPA("h", "d", utilization(corev1.ResourceCPU, 50)),
			reasons: []string{ReasonMissingResourceRequests}, says: []string{`container "proxy"`}},
		{name: "two containers without", dep: usersDeployment("d", app, corev1.Container{Name: "b"}), hpa: usersHPA("h", "d", utilization(corev1.ResourceCPU, 50)),
			reasons: []string{ReasonMissingResourceRequests}, says: []string{`containers "app", "b" have no CPU request`}},
		{name: "pods have the request from a LimitRange", dep: usersDeployment("d", app), hpa: usersHPA("h", "d", utilization(corev1.ResourceCPU, 50)),
			pods: []corev1.Pod{podWith(withCPU), podWith(withCPU)}},
		{name: "one pod without", dep: usersDeployment("d", app), hpa: usersHPA("h", "d", utilization(corev1.ResourceCPU, 50)),
			pods: []corev1.Pod{podWith(withCPU), podWith(app)}, reasons: []string{ReasonMissingResourceRequests}},
		{name: "pod-level request", dep: func() *appsv1.Deployment {
			d := usersDeployment("d", app)
			d.Spec.Template.Spec.Resources = &corev1.ResourceRequirements{Requests: cpu}
			return d
		}(), hpa: usersHPA("h", "d", utilization(corev1.ResourceCPU, 50))},
		{name: "AverageValue needs no request", dep: usersDeployment("d", app), hpa: usersHPA("h", "d", autoscalingv2.MetricSpec{
			Type: autoscalingv2.ResourceMetricSourceType, Resource: &autoscalingv2.ResourceMetricSource{Name: corev1.ResourceCPU,
				Target: autoscalingv2.MetricTarget{Type: autoscalingv2.AverageValueMetricType, AverageValue: ptr.To(resource.MustParse("200m"))}},
		})},
		{name: "ContainerResource looks at its container only", dep: usersDeployment("d", withCPU, corev1.Container{Name: "b"}), hpa: usersHPA("h", "d", autoscalingv2.MetricSpec{
			Type: autoscalingv2.ContainerResourceMetricSourceType, ContainerResource: &autoscalingv2.ContainerResourceMetricSource{Name: corev1.ResourceCPU, Container: "app",
				Target: autoscalingv2.MetricTarget{Type: autoscalingv2.UtilizationMetricType, AverageUtilization: ptr.To[int32](50)}},
		})},
		{name: "served custom metrics", dep: usersDeployment("d", app), hpa: usersHPA("h", "d",
			podsMetric(RequestsPerSecondMetric), podsMetric(P95LatencyMetric), podsMetric(QueueLengthMetric))},
		{name: "gpu_utilization is not served yet", dep: usersDeployment("d", app), hpa: usersHPA("h", "d", podsMetric(GPUUtilizationMetric)),
			reasons: []string{ReasonUnservedMetric}, says: []string{"does not serve yet"}},
		{name: "an unserved Pods metric", dep: usersDeployment("d", app), hpa: usersHPA("h", "d", podsMetric("http_requests")),
			reasons: []string{ReasonUnservedMetric}, says: []string{`Pods metric "http_requests"`, "requests_per_second, p95_latency_seconds, queue_length)"}},
		{name: "an unserved Object metric", dep: usersDeployment("d", app), hpa: usersHPA("h", "d", autoscalingv2.MetricSpec{
			Type: autoscalingv2.ObjectMetricSourceType, Object: &autoscalingv2.ObjectMetricSource{Metric: autoscalingv2.MetricIdentifier{Name: "hits"}},
		}), reasons: []string{ReasonUnservedMetric}, says: []string{`Object metric "hits"`}},
		{name: "a Service selecting other pods", dep: usersDeployment("d", app),
			svc:     &corev1.Service{ObjectMeta: metav1.ObjectMeta{Name: "s"}, Spec: corev1.ServiceSpec{Selector: map[string]string{"app": "other"}}},
			reasons: []string{ReasonServiceSelectsNoPods}, says: []string{"app=other", "app=d"}},
		{name: "a Service selecting the pods", dep: usersDeployment("d", app),
			svc: &corev1.Service{ObjectMeta: metav1.ObjectMeta{Name: "s"}, Spec: corev1.ServiceSpec{Selector: map[string]string{"app": "d"}}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ds := Diagnose(tc.dep, tc.svc, tc.hpa, tc.pods)
			var reasons, msgs []string
			for _, d := range ds {
				reasons, msgs = append(reasons, d.Reason), append(msgs, d.Message)
			}
			if !reflect.DeepEqual(reasons, tc.reasons) {
				t.Fatalf("reasons %q, want %q; messages:\n%s", reasons, tc.reasons, strings.Join(msgs, "\n"))
			}
			all := strings.Join(msgs, "\n")
			for _, s := range tc.says {
				if !strings.Contains(all, s) {
					t.Errorf("the diagnosis does not say %q:\n%s", s, all)
				}
			}
		})
	}
}

// Adoption on a real kube-apiserver (no controllers): validation, the
// refusals, idempotence and releasing.
func TestAdoptOnRealAPIServer(t *testing.T) {
	t.Parallel()
	cp := controlplane.ForTest(t, controlplane.Options{})
	c := cp.Client
	ctx := context.Background()
	key := func(name string) client.ObjectKey { return client.ObjectKey{Namespace: "default", Name: name} }
	adopting := func(name string, a v1alpha1.Adoption) *v1alpha1.ModelDeployment {
		return &v1alpha1.ModelDeployment{
			ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: "default"},
			Spec: v1alpha1.ModelDeploymentSpec{Model: v1alpha1.ModelSource{Name: "sentiment"}, Runtime: v1alpha1.RuntimeKubernetes, Adopt: &a,
				Autoscaling: v1alpha1.Autoscaling{MinReplicas: ptr.To[int32](2), MaxReplicas: 4}},
		}
	}
	for _, obj := range []client.Object{
		usersDeployment("users"),
		&corev1.Service{ObjectMeta: metav1.ObjectMeta{Name: "users-svc", Namespace: "default"}, Spec: corev1.ServiceSpec{
			Selector: map[string]string{"app": "users"},
			Ports:    []corev1.ServicePort{{Name: "metrics", Port: 9090}, {Name: "http", Port: 80, TargetPort: intstr.FromInt32(8000)}},
		}},
		usersHPA("users-hpa", "users", podsMetric(RequestsPerSecondMetric)),
		usersHPA("stray-hpa", "someone-else", podsMetric(RequestsPerSecondMetric)),
	} {
		if err := c.Create(ctx, obj); err != nil {
			t.Fatal(err)
		}
	}

	t.Run("validation", func(t *testing.T) {
		for _, tc := range []struct {
			name string
			md   *v1alpha1.ModelDeployment
			want string
		}{
			{"no runtime", func() *v1alpha1.ModelDeployment {
				m := adopting("v1", v1alpha1.Adoption{Deployment: "users"})
				m.Spec.Runtime = ""
				return m
			}(), "spec.adopt needs spec.runtime: kubernetes"},
			{"with targets", func() *v1alpha1.ModelDeployment {
				m := adopting("v2", v1alpha1.Adoption{Deployment: "users"})
				m.Spec.Autoscaling.Targets.CPUUtilization = ptr.To[int32](50)
				return m
			}(), "remove spec.autoscaling.targets"},
			{"no deployment", adopting("v3", v1alpha1.Adoption{Service: "users-svc"}), "spec.adopt.deployment"},
			{"bad name", adopting("v4", v1alpha1.Adoption{Deployment: "Users!"}), "spec.adopt.deployment"},
			{"bad range", adopting("v5", v1alpha1.Adoption{Deployment: "users", ReplicaRange: "Both"}), "spec.adopt.replicaRange"},
		} {
			err := c.Create(ctx, tc.md)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("%s: %v, want a rejection mentioning %q", tc.name, err, tc.want)
			}
		}
	})

	t.Run("refusals change nothing", func(t *testing.T) {
		made := createModelDeployment(t, c, &v1alpha1.ModelDeployment{
			ObjectMeta: metav1.ObjectMeta{Name: "made", Namespace: "default"},
			Spec:       v1alpha1.ModelDeploymentSpec{Model: v1alpha1.ModelSource{Name: "sentiment"}},
		})
		if _, err := Apply(ctx, c, made, Options{}); err != nil {
			t.Fatal(err)
		}
		for _, tc := range []struct {
			a      v1alpha1.Adoption
			reason string
			says   string
		}{
			{v1alpha1.Adoption{Deployment: "nope"}, ReasonAdoptedObjectNotFound, "does not exist"},
			{v1alpha1.Adoption{Deployment: "users", Service: "nope"}, ReasonAdoptedObjectNotFound, "spec.adopt.service"},
			{v1alpha1.Adoption{Deployment: "made"}, ReasonCreatedByMeridian, "Meridian created it for ModelDeployment made"},
			{v1alpha1.Adoption{Deployment: "users", HorizontalPodAutoscaler: "stray-hpa"}, ReasonScaleTargetMismatch, `scales Deployment "someone-else"`},
		} {
			md := createModelDeployment(t, c, adopting("refused", tc.a))
			before := resourceVersionsOf(t, c, key("users"), key("users-svc"), key("users-hpa"))
			_, err := Apply(ctx, c, md, Options{})
			ae, ok := AsAdoptionError(err)
			if !ok || ae.Reason != tc.reason || !strings.Contains(ae.Message, tc.says) {
				t.Errorf("adopting %+v: %v, want %s saying %q", tc.a, err, tc.reason, tc.says)
			}
			if after := resourceVersionsOf(t, c, key("users"), key("users-svc"), key("users-hpa")); !reflect.DeepEqual(before, after) {
				t.Errorf("a refused adoption wrote: %v → %v", before, after)
			}
			if err := c.Delete(ctx, md); err != nil {
				t.Fatal(err)
			}
		}
	})

	t.Run("adopt, again, by another, release", func(t *testing.T) {
		md := createModelDeployment(t, c, adopting("first", v1alpha1.Adoption{Deployment: "users", Service: "users-svc", HorizontalPodAutoscaler: "users-hpa"}))
		st, err := Apply(ctx, c, md, Options{})
		if err != nil {
			t.Fatal(err)
		}
		if st.Endpoint != "http://users-svc.default.svc:80" || len(st.Adopted) != 3 || st.DesiredReplicas != 1 || len(st.Diagnoses) != 0 {
			t.Errorf("status %+v", st)
		}
		hpa := &autoscalingv2.HorizontalPodAutoscaler{}
		if err := c.Get(ctx, key("users-hpa"), hpa); err != nil {
			t.Fatal(err)
		}
		if *hpa.Spec.MinReplicas != 2 || hpa.Spec.MaxReplicas != 4 {
			t.Errorf("HPA range %d..%d, want 2..4", *hpa.Spec.MinReplicas, hpa.Spec.MaxReplicas)
		}
		rvs := resourceVersionsOf(t, c, key("users"), key("users-svc"), key("users-hpa"))
		if _, err := Apply(ctx, c, md, Options{}); err != nil {
			t.Fatal(err)
		}
		if after := resourceVersionsOf(t, c, key("users"), key("users-svc"), key("users-hpa")); !reflect.DeepEqual(rvs, after) {
			t.Errorf("a second Apply wrote: %v → %v", rvs, after)
		}

		second := createModelDeployment(t, c, adopting("second", v1alpha1.Adoption{Deployment: "users",
			ReplicaRange: v1alpha1.ReplicaRangeHorizontalPodAutoscaler}))
		if _, err := Apply(ctx, c, second, Options{}); err == nil || !strings.Contains(err.Error(), "ModelDeployment first adopted it") {
			t.Errorf("a second adopter: %v", err)
		}

		// first lets the Service go: its labels go with it.
		md = getModelDeployment(t, c, "first")
		md.Status.Adopted = st.Adopted // as the agent would have written it
		md.Spec.Adopt.Service = ""
		if _, err := Apply(ctx, c, md, Options{}); err != nil {
			t.Fatal(err)
		}
		svc := &corev1.Service{}
		if err := c.Get(ctx, key("users-svc"), svc); err != nil {
			t.Fatal(err)
		}
		if _, ok := svc.Labels[AdoptedByLabel]; ok {
			t.Errorf("the released Service keeps %v", svc.Labels)
		}

		// Once first is gone, second may take the Deployment, and leaves
		// the HPA's range alone.
		if err := c.Delete(ctx, md); err != nil {
			t.Fatal(err)
		}
		second = getModelDeployment(t, c, "second")
		second.Spec.Adopt.HorizontalPodAutoscaler = "users-hpa"
		second.Spec.Autoscaling.MaxReplicas = 7
		if _, err := Apply(ctx, c, second, Options{}); err != nil {
			t.Fatal(err)
		}
		dep := &appsv1.Deployment{}
		if err := c.Get(ctx, key("users"), dep); err != nil {
			t.Fatal(err)
		}
		if dep.Labels[AdoptedByLabel] != "second" || len(dep.OwnerReferences) != 0 {
			t.Errorf("labels %v, owners %v", dep.Labels, dep.OwnerReferences)
		}
		if err := c.Get(ctx, key("users-hpa"), hpa); err != nil {
			t.Fatal(err)
		}
		if hpa.Spec.MaxReplicas != 4 {
			t.Errorf("replicaRange HorizontalPodAutoscaler changed maxReplicas to %d", hpa.Spec.MaxReplicas)
		}
	})

	t.Run("the refusal without spec.adopt says how to adopt", func(t *testing.T) {
		md := createModelDeployment(t, c, &v1alpha1.ModelDeployment{
			ObjectMeta: metav1.ObjectMeta{Name: "users", Namespace: "default"},
			Spec:       v1alpha1.ModelDeploymentSpec{Model: v1alpha1.ModelSource{Name: "sentiment"}},
		})
		_, err := Apply(ctx, c, md, Options{})
		if !errors.Is(err, ErrNotControlled) || !strings.Contains(err.Error(), "spec.adopt.deployment: users") {
			t.Errorf("%v", err)
		}
	})
}

func resourceVersionsOf(t *testing.T, c client.Client, dep, svc, hpa client.ObjectKey) []string {
	t.Helper()
	var rvs []string
	keys := []client.ObjectKey{dep, svc, hpa}
	for i, obj := range []client.Object{&appsv1.Deployment{}, &corev1.Service{}, &autoscalingv2.HorizontalPodAutoscaler{}} {
		if err := c.Get(context.Background(), keys[i], obj); err != nil {
			t.Fatal(err)
		}
		rvs = append(rvs, keys[i].Name+"@"+obj.GetResourceVersion())
	}
	return rvs
}
