package metricsapi

import (
	"context"
	"testing"
	"time"

	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/custom-metrics-apiserver/pkg/provider"

	"meridian.dev/meridian/agent/kube"
)

// staticSource is a Source of fixed values: this test is about how the
// provider selects and sums, not about where values come from.
type staticSource []PodMetrics

func (s staticSource) PodMetrics(ns string) []PodMetrics {
	var out []PodMetrics
	for _, p := range s {
		if ns == "" || p.Namespace == ns {
			out = append(out, p)
		}
	}
	return out
}

func pm(ns, name, md string, values map[string]float64) PodMetrics {
	return PodMetrics{Namespace: ns, Name: name, Timestamp: time.Now(), Window: 5 * time.Second, Values: values,
		Labels: map[string]string{kube.NameLabel: kube.NameValue, kube.InstanceLabel: md, kube.ModelLabel: md + "-model"}}
}

func TestProviderSelectsPodsAndSumsQueuesPerModelDeployment(t *testing.T) {
	p := &metricsProvider{src: staticSource{
		pm("a", "s-1", "sentiment", map[string]float64{MetricRequestsPerSecond: 35, MetricQueueLength: 2}),
		pm("a", "s-2", "sentiment", map[string]float64{MetricQueueLength: 5}), // first scrape: no rate yet
		pm("a", "t-1", "textdir", map[string]float64{MetricRequestsPerSecond: 1.5, MetricQueueLength: 1}),
		pm("b", "s-1", "sentiment", map[string]float64{MetricRequestsPerSecond: 99, MetricQueueLength: 9}),
	}}
	ctx := context.Background()
	info := provider.CustomMetricInfo{GroupResource: podsResource, Namespaced: true, Metric: MetricRequestsPerSecond}
	sel := labels.SelectorFromSet(labels.Set{kube.InstanceLabel: "sentiment"})
	list, err := p.GetMetricBySelector(ctx, "a", sel, info, labels.Everything())
	if err != nil {
		t.Fatal(err)
	}
	if len(list.Items) != 1 || list.Items[0].DescribedObject.Name != "s-1" || list.Items[0].Value.MilliValue() != 35000 ||
		list.Items[0].DescribedObject.Kind != "Pod" || *list.Items[0].WindowSeconds != 5 {
		t.Fatalf("requests_per_second of sentiment's pods in a: %+v", list.Items)
	}
	one, err := p.GetMetricByName(ctx, nsName("a", "t-1"), info, labels.Everything())
	if err != nil || one.Value.MilliValue() != 1500 {
		t.Fatalf("t-1: %+v %v", one, err)
	}
	if _, err := p.GetMetricByName(ctx, nsName("a", "s-2"), info, labels.Everything()); err == nil {
		t.Fatal("a pod without the metric must be not found")
	}
	if _, err := p.GetMetricBySelector(ctx, "a", sel, provider.CustomMetricInfo{GroupResource: podsResource, Namespaced: true, Metric: "gpu_utilization"}, labels.Everything()); err == nil {
		t.Fatal("a metric the adapter does not serve must be an error")
	}

	ext, err := p.GetExternalMetric(ctx, "a", labels.Everything(), provider.ExternalMetricInfo{Metric: MetricQueueLength})
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]int64{}
	for _, v := range ext.Items {
		got[v.MetricLabels[ModelDeploymentLabel]] = v.Value.MilliValue()
	}
	if len(got) != 2 || got["sentiment"] != 7000 || got["textdir"] != 1000 {
		t.Fatalf("queue_length per ModelDeployment in a: %v", got)
	}
	ext, err = p.GetExternalMetric(ctx, "a", labels.SelectorFromSet(labels.Set{ModelMetricLabel: "textdir-model"}), provider.ExternalMetricInfo{Metric: MetricQueueLength})
	if err != nil || len(ext.Items) != 1 || ext.Items[0].MetricLabels[ModelDeploymentLabel] != "textdir" {
		t.Fatalf("queue_length selected by model: %+v %v", ext, err)
	}
}

func nsName(ns, name string) types.NamespacedName {
	return types.NamespacedName{Namespace: ns, Name: name}
}

// TestProviderServesWhatTheHPAsAskFor holds the other side of agent/kube's
// promise that the adapter serves every per-pod metric the agent's HPAs
// name: each is listed by the provider and answered for a pod that has
// it, and the reserved gpu_utilization is neither.
func TestProviderServesWhatTheHPAsAskFor(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	values := map[string]float64{}
	for i, name := range kube.ServedPodsMetrics() {
		values[name] = float64(i + 1)
	}
	p := &metricsProvider{src: staticSource{pm("a", "s-1", "sentiment", values)}}
	listed := map[string]bool{}
	for _, info := range p.ListAllMetrics() {
		if info.GroupResource != podsResource || !info.Namespaced {
			t.Errorf("listed %+v: want namespaced pods metrics", info)
		}
		listed[info.Metric] = true
	}
	for _, name := range kube.ServedPodsMetrics() {
		if !listed[name] {
			t.Errorf("%s is not listed by the adapter", name)
		}
		info := provider.CustomMetricInfo{GroupResource: podsResource, Namespaced: true, Metric: name}
		v, err := p.GetMetricByName(ctx, nsName("a", "s-1"), info, labels.Everything())
		if err != nil || v.Value.MilliValue() != int64(values[name]*1000) {
			t.Errorf("%s of a pod that has it: %+v, %v", name, v, err)
		}
	}
	if listed[kube.GPUUtilizationMetric] || len(listed) != len(kube.ServedPodsMetrics()) {
		t.Errorf("listed %v, want exactly %v", listed, kube.ServedPodsMetrics())
	}
}
