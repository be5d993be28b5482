package metricsapi

import (
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"meridian.dev/meridian/internal/metricsreg"
)

// Metrics are the adapter's meridian_agent_metricsapi_* series; doc.go
// lists them. A nil *Metrics records nothing.
type Metrics struct {
	pods          *prometheus.GaugeVec
	scrapeErrors  prometheus.Counter
	roundDuration prometheus.Histogram
	requests      *prometheus.CounterVec
	registrations *prometheus.CounterVec
}

// NewMetrics registers the adapter's series on reg.
func NewMetrics(reg prometheus.Registerer) (*Metrics, error) {
	m := &Metrics{
		pods: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "meridian_agent_metricsapi_pods",
			Help: "Ready replica pods at the last scrape, by state: served (metrics read) or left_out (unscrapable; the HPA sees them as missing).",
		}, []string{"state"}),
		scrapeErrors: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "meridian_agent_metricsapi_scrape_errors_total",
			Help: "Scrapes of a replica pod's /metrics that failed (connection, HTTP status or parse error).",
		}),
		roundDuration: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "meridian_agent_metricsapi_scrape_duration_seconds",
			Help:    "Time to list and scrape every selected replica pod once.",
			Buckets: prometheus.ExponentialBuckets(0.001, 2, 14),
		}),
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "meridian_agent_metricsapi_requests_total",
			Help: "Metric reads served through the aggregation layer, by API (custom or external) and result (ok, empty, error).",
		}, []string{"api", "result"}),
		registrations: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "meridian_agent_metricsapi_registrations_total",
			Help: "Writes of the adapter's APIServices, Service and EndpointSlice, by result (ok or error).",
		}, []string{"result"}),
	}
	if err := metricsreg.Register(reg, "metrics API", m.pods, m.scrapeErrors, m.roundDuration, m.requests, m.registrations); err != nil {
		return nil, err
	}
	return m, nil
}

func (m *Metrics) observeRound(d time.Duration, served, leftOut int) {
	if m == nil {
		return
	}
	m.roundDuration.Observe(d.Seconds())
	m.pods.WithLabelValues("served").Set(float64(served))
	m.pods.WithLabelValues("left_out").Set(float64(leftOut))
	m.scrapeErrors.Add(float64(leftOut))
}

func (m *Metrics) request(api, result string) {
	if m != nil {
		m.requests.WithLabelValues(api, result).Inc()
	}
}

func (m *Metrics) registration(ok bool) {
	if m == nil {
		return
	}
	r := "ok"
	if !ok {
		r = "error"
	}
	m.registrations.WithLabelValues(r).Inc()
}
