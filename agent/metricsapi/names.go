package metricsapi

import "meridian.dev/meridian/agent/kube"

// Metric names the adapter serves. The per-pod ones are custom metrics of
// the resource "pods" (custom.metrics.k8s.io, HPA metric type Pods) and
// are agent/kube's names, which the HPAs the agent writes ask for; the
// external one is per ModelDeployment (external.metrics.k8s.io, HPA metric
// type External).
const (
	// MetricRequestsPerSecond is the requests a replica answered per
	// second between its last two scrapes (from the increase of its
	// meridian_inference_requests_total counter).
	MetricRequestsPerSecond = kube.RequestsPerSecondMetric
	// MetricP95LatencySeconds is a replica's 95th-percentile request
	// latency between its last two scrapes, in seconds, interpolated from
	// the increase of its meridian_inference_request_duration_seconds
	// histogram. A replica that answered nothing in that interval has no
	// value.
	MetricP95LatencySeconds = kube.P95LatencyMetric
	// MetricQueueLength is the requests waiting in a replica's queues at
	// its last scrape (its meridian_inference_queue_depth gauges, summed
	// over models and versions). As an external metric it is the sum over
	// the fresh replicas of one ModelDeployment.
	MetricQueueLength = kube.QueueLengthMetric
)

// PodsMetrics are the per-pod metrics the adapter serves: exactly
// kube.ServedPodsMetrics. kube.GPUUtilizationMetric is not among them:
// `meridian serve` exports no GPU metric yet.
var PodsMetrics = kube.ServedPodsMetrics()

// ExternalMetrics are the external metrics the adapter serves.
var ExternalMetrics = []string{MetricQueueLength}
