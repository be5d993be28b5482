package tlsx

import (
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"meridian.dev/meridian/internal/metricsreg"
)

// Metrics are the TLS layer's metrics, shared by every Reloader of a
// component (each labels its series with its own name). A nil *Metrics
// records nothing.
type Metrics struct {
	reloads  *prometheus.CounterVec
	expiry   *prometheus.GaugeVec
	rejected *prometheus.CounterVec
}

// NewMetrics creates the TLS metrics and registers them on reg (nil:
// registered nowhere).
func NewMetrics(reg prometheus.Registerer) (*Metrics, error) {
	m := &Metrics{
		reloads: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "meridian_tls_reload_total",
			Help: "Attempts to load a changed certificate set, by set name and result (success, or error: the previous set keeps serving). An error is counted on every poll while the files stay bad.",
		}, []string{"name", "result"}),
		expiry: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "meridian_tls_certificate_expiry_timestamp_seconds",
			Help: "When the certificate in use expires (NotAfter, Unix seconds), by set name and cert: leaf (the certificate presented to peers) or ca (the earliest-expiring CA of the trusted bundle).",
		}, []string{"name", "cert"}),
		rejected: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "meridian_tls_client_rejected_total",
			Help: "TLS handshakes a server requiring client certificates refused, by set name and reason: no_certificate, untrusted (not signed by the CA bundle for client use, or expired) or identity (not among the allowed clients).",
		}, []string{"name", "reason"}),
	}
	if err := metricsreg.Register(reg, "tls", m.reloads, m.expiry, m.rejected); err != nil {
		return nil, err
	}
	return m, nil
}

func (m *Metrics) reloaded(name string, err error) {
	if m == nil {
		return
	}
	result := "success"
	if err != nil {
		result = "error"
	}
	m.reloads.WithLabelValues(name, result).Inc()
}

func (m *Metrics) expires(name, cert string, at time.Time) {
	if m == nil {
		return
	}
	if at.IsZero() {
		m.expiry.DeleteLabelValues(name, cert)
		return
	}
	m.expiry.WithLabelValues(name, cert).Set(float64(at.Unix()))
}

// Reasons a client's handshake is refused.
const (
	rejectNoCertificate = "no_certificate"
	rejectUntrusted     = "untrusted"
	rejectIdentity      = "identity"
)

func (m *Metrics) reject(name, reason string) {
	if m != nil {
		m.rejected.WithLabelValues(name, reason).Inc()
	}
}
