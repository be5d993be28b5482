package metricsapi

import (
	"context"
	"math"
	"slices"
	"strings"
	"time"

	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/metrics/pkg/apis/custom_metrics"
	"k8s.io/metrics/pkg/apis/external_metrics"
	"sigs.k8s.io/custom-metrics-apiserver/pkg/provider"

	"meridian.dev/meridian/agent/kube"
)

// External metric labels: each queue_length value is one ModelDeployment's,
// labelled with its name and its model's, which an HPA's External metric
// selector matches (e.g. matchLabels: {modeldeployment: sentiment}).
const (
	ModelDeploymentLabel = "modeldeployment"
	ModelMetricLabel     = "model"
)

var podsResource = schema.GroupResource{Resource: "pods"}

// metricsProvider serves a Source's values through custom-metrics-apiserver.
type metricsProvider struct {
	src     Source
	metrics *Metrics
}

var (
	_ provider.CustomMetricsProvider   = (*metricsProvider)(nil)
	_ provider.ExternalMetricsProvider = (*metricsProvider)(nil)
)

func (p *metricsProvider) ListAllMetrics() []provider.CustomMetricInfo {
	out := make([]provider.CustomMetricInfo, 0, len(PodsMetrics))
	for _, m := range PodsMetrics {
		out = append(out, provider.CustomMetricInfo{GroupResource: podsResource, Namespaced: true, Metric: m})
	}
	return out
}

func (p *metricsProvider) ListAllExternalMetrics() []provider.ExternalMetricInfo {
	out := make([]provider.ExternalMetricInfo, 0, len(ExternalMetrics))
	for _, m := range ExternalMetrics {
		out = append(out, provider.ExternalMetricInfo{Metric: m})
	}
	return out
}

// served says whether info names a per-pod metric the adapter has.
func served(info provider.CustomMetricInfo) bool {
	return info.GroupResource == podsResource && info.Namespaced && slices.Contains(PodsMetrics, info.Metric)
}

func (p *metricsProvider) GetMetricByName(_ context.Context, name types.NamespacedName, info provider.CustomMetricInfo, metricSelector labels.Selector) (*custom_metrics.MetricValue, error) {
	if served(info) && metricSelector.Matches(labels.Set{}) {
		for _, pm := range p.src.PodMetrics(name.Namespace) {
			if v, ok := pm.Values[info.Metric]; ok && pm.Name == name.Name {
				p.metrics.request("custom", "ok")
				mv := metricValue(pm, info.Metric, v)
				return &mv, nil
			}
		}
	}
	p.metrics.request("custom", "empty")
	return nil, provider.NewMetricNotFoundForError(info.GroupResource, info.Metric, name.Name)
}

func (p *metricsProvider) GetMetricBySelector(_ context.Context, namespace string, selector labels.Selector, info provider.CustomMetricInfo, metricSelector labels.Selector) (*custom_metrics.MetricValueList, error) {
	if !served(info) {
		p.metrics.request("custom", "error")
		return nil, provider.NewMetricNotFoundError(info.GroupResource, info.Metric)
	}
	list := &custom_metrics.MetricValueList{}
	if metricSelector.Matches(labels.Set{}) { // per-pod metrics carry no labels of their own
		for _, pm := range p.src.PodMetrics(namespace) {
			if v, ok := pm.Values[info.Metric]; ok && selector.Matches(labels.Set(pm.Labels)) {
				list.Items = append(list.Items, metricValue(pm, info.Metric, v))
			}
		}
	}
	slices.SortFunc(list.Items, func(a, b custom_metrics.MetricValue) int {
		return strings.Compare(a.DescribedObject.Name, b.DescribedObject.Name)
	})
	p.metrics.request("custom", resultOf(len(list.Items)))
	return list, nil
}

func (p *metricsProvider) GetExternalMetric(_ context.Context, namespace string, metricSelector labels.Selector, info provider.ExternalMetricInfo) (*external_metrics.ExternalMetricValueList, error) {
	if !slices.Contains(ExternalMetrics, info.Metric) {
		p.metrics.request("external", "error")
		return nil, provider.NewMetricNotFoundError(schema.GroupResource{Group: "external.metrics.k8s.io"}, info.Metric)
	}
	type sum struct {
		labels map[string]string
		value  float64
		at     time.Time
	}
	byMD := map[string]*sum{}
	for _, pm := range p.src.PodMetrics(namespace) {
		md := pm.Labels[kube.InstanceLabel]
		v, ok := pm.Values[info.Metric]
		if md == "" || !ok {
			continue
		}
		s := byMD[md]
		if s == nil {
			s = &sum{labels: map[string]string{ModelDeploymentLabel: md, ModelMetricLabel: pm.Labels[kube.ModelLabel]}}
			byMD[md] = s
		}
		s.value += v
		if pm.Timestamp.After(s.at) {
			s.at = pm.Timestamp
		}
	}
	list := &external_metrics.ExternalMetricValueList{}
	for _, md := range slices.Sorted(func(yield func(string) bool) {
		for k := range byMD {
			if !yield(k) {
				return
			}
		}
	}) {
		s := byMD[md]
		if !metricSelector.Matches(labels.Set(s.labels)) {
			continue
		}
		list.Items = append(list.Items, external_metrics.ExternalMetricValue{
			MetricName: info.Metric, MetricLabels: s.labels,
			Timestamp: metav1.NewTime(s.at), Value: quantity(s.value),
		})
	}
	p.metrics.request("external", resultOf(len(list.Items)))
	return list, nil
}

func metricValue(pm PodMetrics, metric string, v float64) custom_metrics.MetricValue {
	mv := custom_metrics.MetricValue{
		DescribedObject: custom_metrics.ObjectReference{Kind: "Pod", APIVersion: "/v1", Namespace: pm.Namespace, Name: pm.Name},
		Metric:          custom_metrics.MetricIdentifier{Name: metric},
		Timestamp:       metav1.NewTime(pm.Timestamp),
		Value:           quantity(v),
	}
	if metric != MetricQueueLength && pm.Window > 0 {
		w := int64(math.Round(pm.Window.Seconds()))
		mv.WindowSeconds = &w
	}
	return mv
}

// quantity is v to the thousandth, as the HPA reads it (MilliValue).
func quantity(v float64) resource.Quantity {
	return *resource.NewMilliQuantity(int64(math.Round(v*1000)), resource.DecimalSI)
}

func resultOf(n int) string {
	if n == 0 {
		return "empty"
	}
	return "ok"
}
