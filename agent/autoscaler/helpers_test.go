package autoscaler

import (
	"time"

	autoscalingv2 "k8s.io/api/autoscaling/v2"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"meridian.dev/meridian/crds/v1alpha1"
)

// t0 is the time of the first decision in every test.
var t0 = time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)

func ptr[T any](v T) *T { return &v }

// cpu returns one ready replica per percentage.
func cpu(percents ...float64) []Sample {
	out := make([]Sample, len(percents))
	for i, p := range percents {
		out[i] = Sample{Replica: replicaName(i), Ready: true, CPUUtilization: ptr(p)}
	}
	return out
}

// cpuN returns n ready replicas at the same percentage.
func cpuN(n int, percent float64) []Sample {
	out := make([]Sample, n)
	for i := range out {
		out[i] = Sample{Replica: replicaName(i), Ready: true, CPUUtilization: ptr(percent)}
	}
	return out
}

// noMetric returns n ready replicas that report nothing.
func noMetric(n int) []Sample {
	out := make([]Sample, n)
	for i := range out {
		out[i] = Sample{Replica: "silent-" + replicaName(i), Ready: true}
	}
	return out
}

// unready returns n replicas that are not ready (they may report metrics,
// which are ignored).
func unready(n int) []Sample {
	out := make([]Sample, n)
	for i := range out {
		out[i] = Sample{Replica: "starting-" + replicaName(i), CPUUtilization: ptr(0.0)}
	}
	return out
}

func join(parts ...[]Sample) []Sample {
	var out []Sample
	for _, p := range parts {
		out = append(out, p...)
	}
	return out
}

func replicaName(i int) string { return "replica-" + string(rune('a'+i%26)) }

// cpuSpec targets cpu at percent with the given bounds.
func cpuSpec(percent int32, minReplicas, maxReplicas int32) v1alpha1.Autoscaling {
	return v1alpha1.Autoscaling{
		MinReplicas: ptr(minReplicas),
		MaxReplicas: maxReplicas,
		Targets:     v1alpha1.MetricTargets{CPUUtilization: ptr(percent)},
	}
}

// withBehavior returns spec with behavior b.
func withBehavior(spec v1alpha1.Autoscaling, b *autoscalingv2.HorizontalPodAutoscalerBehavior) v1alpha1.Autoscaling {
	spec.Behavior = b
	return spec
}

// immediateScaleDown is a behavior with no scale-down stabilization window
// and every other field at Kubernetes' defaults, to test one decision
// without the window holding it.
func immediateScaleDown() *autoscalingv2.HorizontalPodAutoscalerBehavior {
	return &autoscalingv2.HorizontalPodAutoscalerBehavior{
		ScaleDown: &autoscalingv2.HPAScalingRules{StabilizationWindowSeconds: ptr(int32(0))},
	}
}

func selectPolicy(p autoscalingv2.ScalingPolicySelect) *autoscalingv2.ScalingPolicySelect { return &p }

func quantity(s string) *resource.Quantity {
	q := resource.MustParse(s)
	return &q
}

func duration(d time.Duration) *metav1.Duration { return &metav1.Duration{Duration: d} }
