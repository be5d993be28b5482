package kube

import (
	"slices"
	"testing"
	"time"

	autoscalingv2 "k8s.io/api/autoscaling/v2"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"

	"meridian.dev/meridian/crds/v1alpha1"
)

// TestHPAsAskOnlyForServedMetrics holds the promise of hpa.go: every
// per-pod metric an HPA the agent writes can ask for is one the metrics
// adapter serves (agent/metricsapi serves exactly ServedPodsMetrics; its
// own test checks that side), and the reserved gpu_utilization is not.
func TestHPAsAskOnlyForServedMetrics(t *testing.T) {
	t.Parallel()
	all := v1alpha1.MetricTargets{
		CPUUtilization: ptr.To(int32(60)), MemoryUtilization: ptr.To(int32(70)),
		RequestsPerSecond: ptr.To(resource.MustParse("25")), QueueLength: ptr.To(int32(4)),
		P95Latency: &metav1.Duration{Duration: 50 * time.Millisecond},
	}
	var asked []string
	for _, m := range hpaMetrics(all) {
		if m.Type != autoscalingv2.PodsMetricSourceType {
			continue
		}
		asked = append(asked, m.Pods.Metric.Name)
		if !IsServedMetric(m.Pods.Metric.Name) || !slices.Contains(ServedPodsMetrics(), m.Pods.Metric.Name) {
			t.Errorf("the agent's HPAs ask for %q, which the adapter does not serve", m.Pods.Metric.Name)
		}
	}
	slices.Sort(asked)
	served := ServedPodsMetrics()
	slices.Sort(served)
	if !slices.Equal(asked, served) {
		t.Errorf("HPA Pods metrics %v, served %v: every served metric should have a target that asks for it", asked, served)
	}
	if IsServedMetric(GPUUtilizationMetric) || slices.Contains(ServedPodsMetrics(), GPUUtilizationMetric) {
		t.Errorf("%s is reserved, not served", GPUUtilizationMetric)
	}
}
