package httpserve

import (
	"errors"
	"fmt"

	"github.com/prometheus/client_golang/prometheus"
)

// metrics are one server's meridian_http_* series. The vectors are shared
// by every server on a registry; each server holds its own children.
type metrics struct {
	rejectedVec *prometheus.CounterVec
	server      string
	conns       prometheus.Gauge
	inflight    prometheus.Gauge
}

func newMetrics(reg prometheus.Registerer, server string) (*metrics, error) {
	rejected := prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "meridian_http_rejected_total",
		Help: "Connections and requests an HTTP server refused by a limit: reason connections (its connection cap), inflight (its cap on requests in flight, answered 503) or body_timeout (a body that did not arrive in time).",
	}, []string{"server", "reason"})
	conns := prometheus.NewGaugeVec(prometheus.GaugeOpts{
		Name: "meridian_http_open_connections",
		Help: "Connections an HTTP server holds open now.",
	}, []string{"server"})
	inflight := prometheus.NewGaugeVec(prometheus.GaugeOpts{
		Name: "meridian_http_inflight_requests",
		Help: "Requests inside an HTTP server's handler now.",
	}, []string{"server"})
	var err error
	if reg != nil {
		if rejected, err = shared(reg, rejected); err != nil {
			return nil, err
		}
		if conns, err = shared(reg, conns); err != nil {
			return nil, err
		}
		if inflight, err = shared(reg, inflight); err != nil {
			return nil, err
		}
	}
	m := &metrics{rejectedVec: rejected, server: server,
		conns: conns.WithLabelValues(server), inflight: inflight.WithLabelValues(server)}
	for _, reason := range []string{"connections", "inflight", "body_timeout"} {
		rejected.WithLabelValues(server, reason) // exported at 0 from the start
	}
	return m, nil
}

// shared registers c on reg, or returns the one of its kind already there
// (another server's): the series of every server share one vector.
func shared[C prometheus.Collector](reg prometheus.Registerer, c C) (C, error) {
	err := reg.Register(c)
	var already prometheus.AlreadyRegisteredError
	switch {
	case err == nil:
		return c, nil
	case errors.As(err, &already):
		if existing, ok := already.ExistingCollector.(C); ok {
			return existing, nil
		}
	}
	return c, fmt.Errorf("registering HTTP server metrics: %w", err)
}

func (m *metrics) rejected(reason string) { m.rejectedVec.WithLabelValues(m.server, reason).Inc() }
