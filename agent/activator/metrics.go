package activator

import (
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"meridian.dev/meridian/internal/metricsreg"
)

// metrics are the activator's meridian_agent_activator_* series (doc.go
// lists them). A nil *metrics records nothing.
type metrics struct {
	heldRequests *prometheus.GaugeVec
	coldStarts   *prometheus.CounterVec
	coldStartDur *prometheus.HistogramVec
	rejectedReqs *prometheus.CounterVec
}

func newMetrics(reg prometheus.Registerer) (*metrics, error) {
	if reg == nil {
		return nil, nil
	}
	md := []string{"namespace", "name"}
	m := &metrics{
		heldRequests: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "meridian_agent_activator_held_requests",
			Help: "Requests the activator holds now for a ModelDeployment that has no ready replica.",
		}, md),
		coldStarts: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "meridian_agent_activator_cold_starts_total",
			Help: "Cold starts that ended with a ready replica: a request was held at zero ready replicas until one answered.",
		}, md),
		coldStartDur: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "meridian_agent_activator_cold_start_seconds",
			Help:    "From the first held request of a cold start to a ready replica (the wait the first request saw, before its own answer).",
			Buckets: []float64{0.5, 1, 2, 3, 5, 8, 13, 20, 30, 60, 120},
		}, md),
		rejectedReqs: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "meridian_agent_activator_rejected_total",
			Help: "Requests the activator answered 503 without a replica, by reason: queue_full (the hold limit) or timeout (no replica ready within the hold timeout).",
		}, append(md, "reason")),
	}
	if err := metricsreg.Register(reg, "activator", m.heldRequests, m.coldStarts, m.coldStartDur, m.rejectedReqs); err != nil {
		return nil, err
	}
	return m, nil
}

func (m *metrics) held(ns, name string, n int) {
	if m != nil {
		m.heldRequests.WithLabelValues(ns, name).Set(float64(n))
	}
}

func (m *metrics) coldStart(ns, name string, d time.Duration) {
	if m != nil {
		m.coldStarts.WithLabelValues(ns, name).Inc()
		m.coldStartDur.WithLabelValues(ns, name).Observe(d.Seconds())
	}
}

func (m *metrics) rejected(ns, name, reason string) {
	if m != nil {
		m.rejectedReqs.WithLabelValues(ns, name, reason).Inc()
	}
}

func (m *metrics) forget(ns, name string) {
	if m == nil {
		return
	}
	l := prometheus.Labels{"namespace": ns, "name": name}
	m.heldRequests.DeletePartialMatch(l)
	m.coldStarts.DeletePartialMatch(l)
	m.coldStartDur.DeletePartialMatch(l)
	m.rejectedReqs.DeletePartialMatch(l)
}
