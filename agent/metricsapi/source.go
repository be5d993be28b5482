package metricsapi

import (
	"time"
)

// PodMetrics are one pod's latest measurements.
type PodMetrics struct {
	Namespace, Name string
	// Labels are the pod's labels, which label selectors match.
	Labels map[string]string
	// Timestamp is when the values were read.
	Timestamp time.Time
	// Window is the interval the rates and the p95 cover.
	Window time.Duration
	// Values by metric name (MetricRequestsPerSecond, ...); a metric the
	// pod has no value for is absent.
	Values map[string]float64
}

// Source is where the adapter's values come from: the Scraper, which reads
// the replicas' own /metrics, in production. It returns only fresh
// measurements; a pod it has none for is left out, which the HPA handles
// as a pod with a missing metric.
type Source interface {
	PodMetrics(namespace string) []PodMetrics
}
