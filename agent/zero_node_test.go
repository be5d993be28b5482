package agent

import (
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	appsv1 "k8s.io/api/apps/v1"
	autoscalingv2 "k8s.io/api/autoscaling/v2"
	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"meridian.dev/meridian/agent/kube"
	v1 "meridian.dev/meridian/crds/v1alpha1"
	"meridian.dev/meridian/internal/testbin"
)

// Scale to zero on a real node, through the region's load balancer: a
// model with minReplicas 0 that serves no request for the idle window
// (shortened here to 20s; the default is 5 minutes) goes to 0 replicas —
// no pod left, its HPA (min 1) disabled rather than fighting back — and
// the next request to its address is held by the agent's activator, not
// failed, until a replica is up, then answered by it. The cold start (the
// request sent → its answer) is logged as a figure; its speed is not
// asserted.
func TestScaleToZeroHoldsTheFirstRequestUntilAReplicaIsReady(t *testing.T) {
	reg := prometheus.NewRegistry()
	const idle = 20 * time.Second
	r := startRealRegion(t, realRegionOptions{
		Nodes: []string{"zero-node"}, Pool: 94, Registry: reg,
		Agent: func(o *Options) { o.Kube.IdleWindow = idle },
	})
	cp, ctx := r.cp, r.ctx

	md := &v1.ModelDeployment{
		ObjectMeta: metav1.ObjectMeta{Name: "sentiment", Namespace: "default"},
		Spec: v1.ModelDeploymentSpec{
			Model:     v1.ModelSource{Name: "sentiment"},
			Resources: v1.Resources{CPU: resource.MustParse("500m"), Memory: resource.MustParse("512Mi")},
			Autoscaling: v1.Autoscaling{MinReplicas: ptr.To[int32](0), MaxReplicas: 2,
				// An HPA exists (with min 1); no metrics adapter runs here, so
				// it only holds its count — what matters is that it does not
				// undo the scale to zero.
				Targets: v1.MetricTargets{RequestsPerSecond: ptr.To(resource.MustParse("50"))}},
		},
	}
	if err := cp.Client.Create(ctx, md); err != nil {
		t.Fatal(err)
	}
	key := client.ObjectKeyFromObject(md)
	endpoint := r.endpoint
	testbin.Eventually(t, "a ready replica behind the load balancer's address", 4*time.Minute, func() bool {
		got := &v1.ModelDeployment{}
		return cp.Client.Get(ctx, key, got) == nil && got.Status.ReadyReplicas == 1 && got.Status.Endpoint == endpoint
	})

	// Traffic while warm. The model's Service may still hold the
	// activator's slice briefly after the replica turned ready; either
	// way every request is answered.
	for i := range 20 {
		code, _, body, err := analyze(http.DefaultClient, endpoint, "I love this, it is amazing")
		if err != nil || code != http.StatusOK || !strings.Contains(body, `"POSITIVE"`) {
			t.Fatalf("warm request %d: %d %s %v", i, code, body, err)
		}
		time.Sleep(100 * time.Millisecond)
	}
	lastRequest := time.Now()

	// Idle: replicas 0, no pod, the HPA disabled, the activator published.
	dep := &appsv1.Deployment{}
	testbin.Eventually(t, "the Deployment scaled to zero and its pod gone", 4*time.Minute, func() bool {
		var pods corev1.PodList
		return cp.Client.Get(ctx, key, dep) == nil && ptr.Deref(dep.Spec.Replicas, -1) == 0 &&
			cp.Client.List(ctx, &pods, client.InNamespace("default"), client.MatchingLabels(kube.Labels(md))) == nil && len(pods.Items) == 0
	})
	t.Logf("scaled to zero; pod gone %s after the last request (idle window %s)", time.Since(lastRequest).Round(time.Second), idle)
	if since := time.Since(lastRequest); since < idle {
		t.Errorf("scaled to zero %s after the last request, before the %s idle window", since, idle)
	}
	got := &v1.ModelDeployment{}
	testbin.Eventually(t, "status Ready=False reason ScaledToZero", time.Minute, func() bool {
		if cp.Client.Get(ctx, key, got) != nil {
			return false
		}
		c := meta.FindStatusCondition(got.Status.Conditions, "Ready")
		return c != nil && c.Reason == "ScaledToZero" && got.Status.DesiredReplicas == 0 && got.Status.ReadyReplicas == 0
	})
	slice := &discoveryv1.EndpointSlice{}
	if err := cp.Client.Get(ctx, client.ObjectKey{Namespace: "default", Name: kube.ActivatorSliceName(md)}, slice); err != nil {
		t.Fatalf("the activator's EndpointSlice: %v", err)
	}
	if slice.Labels[discoveryv1.LabelServiceName] != md.Name || slice.Labels[discoveryv1.LabelManagedBy] != kube.ManagedBy ||
		len(slice.Endpoints) != 1 || !ptr.Deref(slice.Endpoints[0].Conditions.Ready, false) {
		t.Fatalf("the activator's EndpointSlice does not serve the Service: %+v %+v", slice.Labels, slice.Endpoints)
	}
	hpa := &autoscalingv2.HorizontalPodAutoscaler{}
	testbin.Eventually(t, "the HPA to stop acting at zero replicas (ScalingActive=False, ScalingDisabled)", 2*time.Minute, func() bool {
		if cp.Client.Get(ctx, key, hpa) != nil {
			return false
		}
		c := hpaCondition(hpa, autoscalingv2.ScalingActive)
		return c != nil && c.Status == corev1.ConditionFalse && c.Reason == "ScalingDisabled"
	})
	if err := cp.Client.Get(ctx, key, dep); err != nil || ptr.Deref(dep.Spec.Replicas, -1) != 0 {
		t.Fatalf("the HPA (minReplicas %d) scaled the idle model back up: replicas %v %v", ptr.Deref(hpa.Spec.MinReplicas, 0), dep.Spec.Replicas, err)
	}

	// The first request after idle: held, not failed, then answered.
	sent := time.Now()
	code, hdr, body, err := analyze(&http.Client{Timeout: 4 * time.Minute}, endpoint, "I love this, it is amazing")
	coldStart := time.Since(sent)
	if err != nil || code != http.StatusOK || !strings.Contains(body, `"POSITIVE"`) {
		t.Fatalf("the first request at zero replicas: %d %s %v (after %s); want it held until a replica answers", code, body, err, coldStart)
	}
	t.Logf("P8 cold start %s, target ≤ 5 s: request sent → answer through the load balancer (the activator held it %ss); machine: shared 2-vCPU VM",
		coldStart.Round(time.Millisecond), hdr.Get("X-Meridian-Activator-Held"))
	var pods corev1.PodList
	if err := cp.Client.List(ctx, &pods, client.InNamespace("default"), client.MatchingLabels(kube.Labels(md))); err != nil || len(pods.Items) != 1 {
		t.Fatalf("pods after the cold start: %d %v; want the one woken", len(pods.Items), err)
	}
	if p := pods.Items[0]; p.CreationTimestamp.Time.Before(sent.Truncate(time.Second)) {
		t.Errorf("pod %s was created at %s, before the request (%s): no cold start", p.Name, p.CreationTimestamp, sent)
	} else {
		t.Logf("the woken pod %s was created %s after the request was sent (API timestamps are whole seconds)", p.Name, p.CreationTimestamp.Sub(sent.Truncate(time.Second)))
	}
	if hdr.Get("X-Meridian-Activator-Held") == "" {
		t.Errorf("the first request was not held by the activator (no X-Meridian-Activator-Held header)")
	}
	if n := testbin.Metric(t, reg, "meridian_agent_activator_cold_starts_total", nil); n != 1 {
		t.Errorf("meridian_agent_activator_cold_starts_total = %v, want 1", n)
	}

	// Warm again: the replica is ready, the activator withdrawn, the HPA
	// acting, and requests go straight to the replica.
	testbin.Eventually(t, "a ready replica and the activator's EndpointSlice gone", 2*time.Minute, func() bool {
		err := cp.Client.Get(ctx, client.ObjectKey{Namespace: "default", Name: kube.ActivatorSliceName(md)}, &discoveryv1.EndpointSlice{})
		return apierrors.IsNotFound(err) && cp.Client.Get(ctx, key, dep) == nil && dep.Status.ReadyReplicas == 1
	})
	testbin.Eventually(t, "status Ready again", time.Minute, func() bool {
		if cp.Client.Get(ctx, key, got) != nil {
			return false
		}
		c := meta.FindStatusCondition(got.Status.Conditions, "Ready")
		return c != nil && c.Status == metav1.ConditionTrue
	})
	for i := range 5 {
		code, hdr, body, err := analyze(http.DefaultClient, endpoint, "this is terrible")
		if err != nil || code != http.StatusOK || !strings.Contains(body, `"NEGATIVE"`) || hdr.Get("X-Meridian-Activator-Held") != "" {
			t.Fatalf("warm request %d after the cold start: %d %s %v held=%q", i, code, body, err, hdr.Get("X-Meridian-Activator-Held"))
		}
	}
}
