package dns

import (
	"github.com/prometheus/client_golang/prometheus"

	"meridian.dev/meridian/internal/metricsreg"
)

// metrics are the Server's Prometheus collectors. Labels are bounded: the
// query type is one of a fixed few names, the rcode one of the DNS rcodes.
type metrics struct {
	requests  *prometheus.CounterVec
	responses *prometheus.CounterVec
	duration  prometheus.Histogram
	rrlDrops  prometheus.Counter
	rrlSlips  prometheus.Counter
	networks  prometheus.GaugeFunc
	truncated prometheus.Counter
	// signatures counts RRSIGs put in answers, by whether they were
	// computed (signed) or reused (cached).
	signatures *prometheus.CounterVec
}

// newMetrics builds the collectors and registers them on reg (nil: not
// registered); networks reads how many client networks RRL tracks.
func newMetrics(reg prometheus.Registerer, networks func() float64) (*metrics, error) {
	m := &metrics{
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "meridian_glb_dns_requests_total",
			Help: "DNS requests received, by transport (udp, tcp) and query type (A, AAAA, SOA, NS, ANY, other, invalid).",
		}, []string{"proto", "type"}),
		responses: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "meridian_glb_dns_responses_total",
			Help: "DNS responses sent, by response code.",
		}, []string{"rcode"}),
		duration: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "meridian_glb_dns_request_duration_seconds",
			Help:    "Time to build the response to one DNS request.",
			Buckets: []float64{0.00001, 0.000025, 0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.05},
		}),
		rrlDrops: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "meridian_glb_dns_rrl_dropped_total",
			Help: "UDP responses withheld by response rate limiting (dropped, or slipped as a truncated reply).",
		}),
		rrlSlips: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "meridian_glb_dns_rrl_slipped_total",
			Help: "UDP responses withheld by response rate limiting that were sent as a truncated reply (TC, no records) so a real client retries over TCP; the rest of meridian_glb_dns_rrl_dropped_total got nothing.",
		}),
		networks: prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "meridian_glb_dns_rrl_networks",
			Help: "Client networks response rate limiting tracks now (bounded by its table size); 0 while it is off.",
		}, networks),
		signatures: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "meridian_glb_dns_dnssec_signatures_total",
			Help: "RRSIGs put in DNSSEC answers, by result: signed (computed for the answer) or cached (reused for an RRset signed before).",
		}, []string{"result"}),
		truncated: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "meridian_glb_dns_truncated_total",
			Help: "UDP responses sent with the TC bit, because they did not fit or were slipped by rate limiting.",
		}),
	}
	if err := metricsreg.Register(reg, "DNS server", m.requests, m.responses, m.duration, m.rrlDrops, m.rrlSlips, m.networks, m.truncated, m.signatures); err != nil {
		return nil, err
	}
	return m, nil
}
