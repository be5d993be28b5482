package front

import (
	"errors"
	"log/slog"

	"github.com/prometheus/client_golang/prometheus"
)

// noCluster is the cluster label of answers the front wrote itself.
const noCluster = "none"

// metrics are the Front's Prometheus collectors. Labels are bounded: the
// cluster is one of the fleet's member clusters (or "none"), the code an
// HTTP status code, the reason one of a fixed few words.
type metrics struct {
	requests    *prometheus.CounterVec
	retries     *prometheus.CounterVec
	duration    prometheus.Histogram
	ejections   *prometheus.CounterVec
	outstanding *prometheus.GaugeVec
}

func newMetrics(reg prometheus.Registerer, log *slog.Logger) *metrics {
	m := &metrics{
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "meridian_glb_http_requests_total",
			Help: "HTTP requests answered by the global front, by the cluster that answered (none: the front itself) and status code (499: the client left first).",
		}, []string{"cluster", "code"}),
		retries: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "meridian_glb_http_retries_total",
			Help: "Extra copies of requests sent to another cluster, by the reason (connection, timeout, 429, 502, 503, 504, hedge).",
		}, []string{"reason"}),
		duration: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "meridian_glb_http_request_duration_seconds",
			Help:    "Time from receiving a request to the end of its response, retries included.",
			Buckets: []float64{0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10},
		}),
		ejections: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "meridian_glb_http_ejections_total",
			Help: "Times a cluster was ejected for consecutive failures.",
		}, []string{"cluster"}),
		outstanding: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "meridian_glb_http_outstanding",
			Help: "Requests sent to a cluster and not yet finished.",
		}, []string{"cluster"}),
	}
	if reg == nil {
		return m
	}
	// A second Front on the same registry shares the first one's
	// collectors rather than failing: New has no error to return.
	m.requests = register(reg, m.requests, log)
	m.retries = register(reg, m.retries, log)
	m.duration = register(reg, m.duration, log)
	m.ejections = register(reg, m.ejections, log)
	m.outstanding = register(reg, m.outstanding, log)
	return m
}

func register[C prometheus.Collector](reg prometheus.Registerer, c C, log *slog.Logger) C {
	err := reg.Register(c)
	if err == nil {
		return c
	}
	var already prometheus.AlreadyRegisteredError
	if errors.As(err, &already) {
		if existing, ok := already.ExistingCollector.(C); ok {
			return existing
		}
	}
	log.Warn("global front: registering a metric failed; it will not be exported", "err", err)
	return c
}
