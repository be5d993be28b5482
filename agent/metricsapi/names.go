package metricsapi

// Metric names the adapter serves. The per-pod ones are custom metrics of
// the resource "pods" (custom.metrics.k8s.io, HPA metric type Pods); the
// external one is per ModelDeployment (external.metrics.k8s.io, HPA metric
// type External).
const (
	// MetricRequestsPerSecond is the requests a replica answered per
	// second between its last two scrapes (from the increase of its
	// meridian_inference_requests_total counter).
	MetricRequestsPerSecond = "requests_per_second"
	// MetricP95LatencySeconds is a replica's 95th-percentile request
	// latency between its last two scrapes, in seconds, interpolated from
	// the increase of its meridian_inference_request_duration_seconds
	// histogram. A replica that answered nothing in that interval has no
	// value.
	MetricP95LatencySeconds = "p95_latency_seconds"
	// MetricQueueLength is the requests waiting in a replica's queues at
	// its last scrape (its meridian_inference_queue_depth gauges, summed
	// over models and versions). As an external metric it is the sum over
	// the ready replicas of one ModelDeployment.
	MetricQueueLength = "queue_length"
)

// PodsMetrics are the per-pod metrics the adapter serves. gpu_utilization
// is not among them: `meridian serve` exports no GPU metric yet.
var PodsMetrics = []string{MetricRequestsPerSecond, MetricP95LatencySeconds, MetricQueueLength}

// ExternalMetrics are the external metrics the adapter serves.
var ExternalMetrics = []string{MetricQueueLength}
