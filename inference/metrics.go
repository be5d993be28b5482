package inference

import (
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"

	"meridian.dev/meridian/internal/metricsreg"
)

// metrics are the server's meridian_inference_* series, on the server's own
// registry. docs/inference.md lists each with its meaning.
type metrics struct {
	requests      *prometheus.CounterVec
	duration      *prometheus.HistogramVec
	queueDuration *prometheus.HistogramVec
	runDuration   *prometheus.HistogramVec
	batchSize     *prometheus.HistogramVec
	inflight      *prometheus.GaugeVec
	expired       *prometheus.CounterVec
	panics        *prometheus.CounterVec
	cacheHits     *prometheus.CounterVec
	cacheMisses   *prometheus.CounterVec
}

// latencyBuckets span 50µs to ~13s, for models from a linear layer to a
// large CNN.
var latencyBuckets = prometheus.ExponentialBuckets(50e-6, 2, 19)

func newMetrics(reg prometheus.Registerer) (*metrics, error) {
	mv := []string{"model", "version"}
	m := &metrics{
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "meridian_inference_requests_total",
			Help: "Inference requests answered, by model, version and HTTP status code.",
		}, []string{"model", "version", "code"}),
		duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "meridian_inference_request_duration_seconds", Buckets: latencyBuckets,
			Help: "Time from a request's arrival to its answer, including queueing, for requests that reached a model.",
		}, mv),
		queueDuration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "meridian_inference_queue_duration_seconds", Buckets: latencyBuckets,
			Help: "Time requests waited in the queue before their batch started.",
		}, mv),
		runDuration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "meridian_inference_run_duration_seconds", Buckets: latencyBuckets,
			Help: "Time ONNX Runtime took for one batch.",
		}, mv),
		batchSize: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "meridian_inference_batch_size", Buckets: prometheus.ExponentialBuckets(1, 2, 10),
			Help: "Rows in each batch run by the model.",
		}, mv),
		inflight: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "meridian_inference_inflight_requests",
			Help: "Requests admitted and not yet answered (queued or running).",
		}, mv),
		expired: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "meridian_inference_expired_total",
			Help: "Requests dropped from the queue because their deadline passed or their client left before a worker took them.",
		}, mv),
		panics: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "meridian_inference_batch_panics_total",
			Help: "Batches whose run panicked; their requests failed with 500 and the model kept serving.",
		}, mv),
		cacheHits: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "meridian_inference_cache_hits_total",
			Help: "Requests answered from the result cache.",
		}, mv),
		cacheMisses: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "meridian_inference_cache_misses_total",
			Help: "Cacheable requests not found in the result cache.",
		}, mv),
	}
	err := metricsreg.Register(reg, "model server", m.requests, m.duration, m.queueDuration, m.runDuration, m.batchSize,
		m.inflight, m.expired, m.panics, m.cacheHits, m.cacheMisses,
		collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	if err != nil {
		return nil, err
	}
	return m, nil
}

// registerQueue exports a model version's queue depth, capacity and
// readiness, read at scrape time.
func (m *metrics) registerQueue(reg prometheus.Registerer, v *modelVersion) error {
	labels := prometheus.Labels{"model": v.spec.Name, "version": v.version}
	return metricsreg.Register(reg, "model server queue",
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "meridian_inference_queue_depth", ConstLabels: labels,
			Help: "Requests waiting for a worker.",
		}, func() float64 { return float64(len(v.queue)) }),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "meridian_inference_queue_capacity", ConstLabels: labels,
			Help: "Queue size beyond which requests are shed with 429.",
		}, func() float64 { return float64(cap(v.queue)) }),
	)
}
