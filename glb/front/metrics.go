package front

import (
	"github.com/prometheus/client_golang/prometheus"

	"meridian.dev/meridian/internal/metricsreg"
)

// noCluster is the cluster label of answers the front wrote itself.
const noCluster = "none"

// metrics are the Front's Prometheus collectors. Labels are bounded: the
// cluster is one of the fleet's member clusters (or "none"), the code an
// HTTP status code, the reason one of a fixed few words.
type metrics struct {
	requests        *prometheus.CounterVec
	retries         *prometheus.CounterVec
	budgetExhausted prometheus.Counter
	refused         *prometheus.CounterVec
	duration        prometheus.Histogram
	ejections       *prometheus.CounterVec
	outstanding     *prometheus.GaugeVec
}

func newMetrics(reg prometheus.Registerer) (*metrics, error) {
	m := &metrics{
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "meridian_glb_http_requests_total",
			Help: "HTTP requests answered by the global front, by the cluster that answered (none: the front itself) and status code (499: the client left first).",
		}, []string{"cluster", "code"}),
		retries: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "meridian_glb_http_retries_total",
			Help: "Extra copies of requests sent to another cluster, by the reason (connection, reset, timeout, 429, 502, 503, 504, grpc_unavailable, grpc_resource_exhausted, hedge).",
		}, []string{"reason"}),
		budgetExhausted: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "meridian_glb_http_retry_budget_exhausted_total",
			Help: "Retries and hedges not sent because the retry budget was spent (the request got the last answer, or 503).",
		}),
		refused: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "meridian_glb_http_endpoints_refused_total",
			Help: "Candidate clusters skipped because their model endpoint is not allowed (scheme, or a link-local, metadata, loopback, unspecified or multicast host).",
		}, []string{"cluster"}),
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
	if err := metricsreg.Register(reg, "HTTP front", m.requests, m.retries, m.budgetExhausted, m.refused, m.duration, m.ejections, m.outstanding); err != nil {
		return nil, err
	}
	return m, nil
}
