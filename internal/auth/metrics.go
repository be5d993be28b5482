package auth

import (
	"github.com/prometheus/client_golang/prometheus"

	"meridian.dev/meridian/internal/metricsreg"
)

// Values of meridian_auth_requests_total's result label.
const (
	resultAllowed            = "allowed"
	resultUnauthenticated    = "unauthenticated"
	resultForbidden          = "forbidden"
	resultRateLimited        = "rate_limited"
	resultConcurrencyLimited = "concurrency_limited"
	resultExtDenied          = "ext_denied"
	resultExtError           = "ext_error"
)

// Values of meridian_auth_ext_authz_checks_total's result label.
const (
	extAllowed = "allowed"
	extDenied  = "denied"
	extError   = "error"
)

// Values of the result label of meridian_auth_jwks_fetches_total and
// meridian_auth_file_reloads_total.
const (
	outcomeOK    = "ok"
	outcomeError = "error"
)

// Tenant label values other than configured tenant names.
const (
	tenantLabelNone     = ""
	tenantLabelUnlisted = "_unlisted"
)

type metrics struct {
	requests    *prometheus.CounterVec
	extChecks   *prometheus.CounterVec
	extDuration prometheus.Histogram
	jwksFetches *prometheus.CounterVec
	reloads     *prometheus.CounterVec
}

func newMetrics() *metrics {
	m := &metrics{
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "meridian_auth_requests_total",
			Help: "Requests checked at the door, by result (allowed, unauthenticated, forbidden, rate_limited, concurrency_limited, ext_denied, ext_error) and tenant (configured tenants by name, _unlisted for others, empty when none was established). Public paths are not counted.",
		}, []string{"result", "tenant"}),
		extChecks: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "meridian_auth_ext_authz_checks_total",
			Help: "Calls to the external authorization service, by result: allowed (2xx), denied (any other status), error (unreachable, timed out).",
		}, []string{"result"}),
		extDuration: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "meridian_auth_ext_authz_duration_seconds",
			Help:    "Time to get an answer from the external authorization service, errors included.",
			Buckets: []float64{.0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1},
		}),
		jwksFetches: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "meridian_auth_jwks_fetches_total",
			Help: "Fetches of the JWKS URL, by result (ok, error); an error keeps the keys held.",
		}, []string{"result"}),
		reloads: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "meridian_auth_file_reloads_total",
			Help: "Loads of the API key, JWKS and tenants files after they changed, by file (api_keys, jwks, tenants) and result (ok, error); an error keeps what was loaded before.",
		}, []string{"file", "result"}),
	}
	return m
}

// register registers every metric on reg, or none.
func (m *metrics) register(reg prometheus.Registerer) error {
	return metricsreg.Register(reg, "auth", m.requests, m.extChecks, m.extDuration, m.jwksFetches, m.reloads)
}
