package kube

import (
	autoscalingv2 "k8s.io/api/autoscaling/v2"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	"k8s.io/utils/ptr"

	"meridian.dev/meridian/crds/v1alpha1"
)

// Per-pod custom metrics (custom.metrics.k8s.io, metric type Pods) for
// the HPAs. The first three are what Meridian's metrics adapter
// (agent/metricsapi, run by the agent with --metrics-api-addr) serves for
// every replica pod from the replicas' own /metrics; the HPAs the agent
// creates scale on them with AverageValue targets, and an adopted HPA may
// name them too. The fourth is reserved and not served.
const (
	// RequestsPerSecondMetric is the requests a replica answers per second.
	RequestsPerSecondMetric = "requests_per_second"
	// P95LatencyMetric is a replica's 95th-percentile request latency, in
	// seconds.
	P95LatencyMetric = "p95_latency_seconds"
	// QueueLengthMetric is the requests waiting in a replica's queue (the
	// replicas' meridian_inference_queue_depth gauge).
	QueueLengthMetric = "queue_length"
	// GPUUtilizationMetric is the busy share of a replica's GPUs, in
	// percent. The name is reserved: the adapter does not serve it yet,
	// because `meridian serve` exports no GPU metric, so it is not in
	// ServedPodsMetrics and Diagnose reports an HPA that uses it.
	GPUUtilizationMetric = "gpu_utilization"
)

// ServedPodsMetrics returns the names of the per-pod metrics Meridian's
// metrics adapter serves now, in a fresh slice.
func ServedPodsMetrics() []string {
	return []string{RequestsPerSecondMetric, P95LatencyMetric, QueueLengthMetric}
}

// IsServedMetric reports whether Meridian's metrics adapter serves the
// per-pod metric name.
func IsServedMetric(name string) bool {
	switch name {
	case RequestsPerSecondMetric, P95LatencyMetric, QueueLengthMetric:
		return true
	}
	return false
}

// DefaultMaxReplicas is the CRD's default for spec.autoscaling.maxReplicas,
// used when a ModelDeployment reaches Apply without it.
const DefaultMaxReplicas = 10

func hasTargets(t v1alpha1.MetricTargets) bool {
	return t.CPUUtilization != nil || t.MemoryUtilization != nil || t.RequestsPerSecond != nil ||
		t.QueueLength != nil || t.P95Latency != nil
}

// hpaMinReplicas is spec.autoscaling.minReplicas raised to 1: autoscaling/v2
// accepts 0 only with the alpha HPAScaleToZero feature gate, and then only
// for Object or External metrics, which Meridian does not use. The agent
// scales such a model to zero itself (zero.go): the HPA stops acting while
// its target has 0 replicas and resumes once it has one again.
func hpaMinReplicas(md *v1alpha1.ModelDeployment) int32 {
	return max(minReplicas(md), 1)
}

// hpaMaxReplicas is spec.autoscaling.maxReplicas (default 10), raised to
// minReplicas if it is lower, which the HPA would reject.
func hpaMaxReplicas(md *v1alpha1.ModelDeployment) int32 {
	m := md.Spec.Autoscaling.MaxReplicas
	if m < 1 {
		m = DefaultMaxReplicas
	}
	return max(m, hpaMinReplicas(md))
}

func mutateHPA(hpa *autoscalingv2.HorizontalPodAutoscaler, md *v1alpha1.ModelDeployment) {
	hpa.Spec.ScaleTargetRef = autoscalingv2.CrossVersionObjectReference{
		APIVersion: "apps/v1", Kind: "Deployment", Name: md.Name,
	}
	hpa.Spec.MinReplicas = ptr.To(hpaMinReplicas(md))
	hpa.Spec.MaxReplicas = hpaMaxReplicas(md)
	hpa.Spec.Metrics = hpaMetrics(md.Spec.Autoscaling.Targets)
	hpa.Spec.Behavior = defaultBehavior(md.Spec.Autoscaling.Behavior)
}

// hpaMetrics turns metric targets into HPA metrics: utilization of the
// replicas' CPU and memory requests as Resource metrics, the rest as Pods
// metrics with per-replica average targets.
func hpaMetrics(t v1alpha1.MetricTargets) []autoscalingv2.MetricSpec {
	var ms []autoscalingv2.MetricSpec
	utilization := func(name corev1.ResourceName, pct int32) autoscalingv2.MetricSpec {
		return autoscalingv2.MetricSpec{
			Type: autoscalingv2.ResourceMetricSourceType,
			Resource: &autoscalingv2.ResourceMetricSource{
				Name:   name,
				Target: autoscalingv2.MetricTarget{Type: autoscalingv2.UtilizationMetricType, AverageUtilization: ptr.To(pct)},
			},
		}
	}
	perPod := func(name string, v resource.Quantity) autoscalingv2.MetricSpec {
		return autoscalingv2.MetricSpec{
			Type: autoscalingv2.PodsMetricSourceType,
			Pods: &autoscalingv2.PodsMetricSource{
				Metric: autoscalingv2.MetricIdentifier{Name: name},
				Target: autoscalingv2.MetricTarget{Type: autoscalingv2.AverageValueMetricType, AverageValue: &v},
			},
		}
	}
	if t.CPUUtilization != nil {
		ms = append(ms, utilization(corev1.ResourceCPU, *t.CPUUtilization))
	}
	if t.MemoryUtilization != nil {
		ms = append(ms, utilization(corev1.ResourceMemory, *t.MemoryUtilization))
	}
	if t.RequestsPerSecond != nil {
		ms = append(ms, perPod(RequestsPerSecondMetric, t.RequestsPerSecond.DeepCopy()))
	}
	if t.QueueLength != nil {
		ms = append(ms, perPod(QueueLengthMetric, *resource.NewQuantity(int64(*t.QueueLength), resource.DecimalSI)))
	}
	if t.P95Latency != nil {
		// Seconds, exact to the nanosecond: 50ms is "50m".
		ms = append(ms, perPod(P95LatencyMetric, *resource.NewScaledQuantity(t.P95Latency.Nanoseconds(), resource.Nano)))
	}
	return ms
}

// defaultBehavior copies b and fills what it leaves out as the API server
// does (k8s.io/kubernetes pkg/apis/autoscaling/v2 defaults), so that the
// HPA read back equals the one Apply wants and a second Apply writes
// nothing. A nil behavior stays nil: the server leaves it so.
func defaultBehavior(b *autoscalingv2.HorizontalPodAutoscalerBehavior) *autoscalingv2.HorizontalPodAutoscalerBehavior {
	if b == nil {
		return nil
	}
	b = b.DeepCopy()
	maxPolicy := autoscalingv2.MaxChangePolicySelect
	fill := func(r *autoscalingv2.HPAScalingRules, def autoscalingv2.HPAScalingRules) *autoscalingv2.HPAScalingRules {
		if r == nil {
			return &def
		}
		if r.SelectPolicy == nil {
			r.SelectPolicy = def.SelectPolicy
		}
		if r.Policies == nil {
			r.Policies = def.Policies
		}
		if r.StabilizationWindowSeconds == nil {
			r.StabilizationWindowSeconds = def.StabilizationWindowSeconds
		}
		return r
	}
	b.ScaleUp = fill(b.ScaleUp, autoscalingv2.HPAScalingRules{
		StabilizationWindowSeconds: ptr.To[int32](0),
		SelectPolicy:               ptr.To(maxPolicy),
		Policies: []autoscalingv2.HPAScalingPolicy{
			{Type: autoscalingv2.PodsScalingPolicy, Value: 4, PeriodSeconds: 15},
			{Type: autoscalingv2.PercentScalingPolicy, Value: 100, PeriodSeconds: 15},
		},
	})
	// The scale-down window stays nil: the controller's
	// --horizontal-pod-autoscaler-downscale-stabilization (300s) applies.
	b.ScaleDown = fill(b.ScaleDown, autoscalingv2.HPAScalingRules{
		SelectPolicy: ptr.To(maxPolicy),
		Policies: []autoscalingv2.HPAScalingPolicy{
			{Type: autoscalingv2.PercentScalingPolicy, Value: 100, PeriodSeconds: 15},
		},
	})
	return b
}
