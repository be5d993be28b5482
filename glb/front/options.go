package front

import (
	"log/slog"
	"net"
	"net/http"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"go.opentelemetry.io/otel/trace"

	"meridian.dev/meridian/internal/endpoint"
)

// Defaults for the zero values of Options.
const (
	DefaultMaxBodyBytes   = 64 << 20
	DefaultAttempts       = 3
	DefaultRequestTimeout = 10 * time.Second
	DefaultEjectAfter     = 3
	DefaultEjectFor       = 10 * time.Second
	DefaultHedgeAfter     = 100 * time.Millisecond
	DefaultPerTryTimeout  = 2 * time.Second
	// DefaultRetryBudgetPercent and DefaultRetryBudgetMinConcurrency are
	// RetryBudget's defaults. The minimum is above Envoy's 3: when a
	// region dies, every request in flight to it fails at once and each
	// needs its one retry elsewhere (a 30 req/s site with 2 s per-try
	// timeouts has up to 60 out), and 10 lost requests in the drills
	// and in P3's backend loss.
	DefaultRetryBudgetPercent        = 20
	DefaultRetryBudgetMinConcurrency = 64
)

// Options configure a Front. The zero value is usable: every field has a
// default, named in its comment.
type Options struct {
	// MaxBodyBytes bounds a request body. Bodies are held in memory so that
	// a request can be sent again to another cluster; a larger body is
	// answered 413 without contacting any cluster. Default 64 MiB.
	MaxBodyBytes int64

	// Attempts is the most copies of one request sent upstream, retries
	// and hedges included; each goes to a different cluster, so a request
	// is also tried at most once per candidate the Router returns.
	// Default 3.
	Attempts int

	// PerTryTimeout bounds the wait for one cluster's response headers,
	// connecting included; when it passes, the attempt counts as a failure
	// of that cluster and the request moves to the next candidate. It is
	// what saves requests sent to a cluster that went silent (packets
	// dropped: connections hang rather than fail) before the probes take
	// it out. Default 2s, for real-time models that answer well within
	// it; a model slower than that needs a longer one, or every request
	// to it is tried Attempts times. Negative: no bound other than
	// RequestTimeout.
	PerTryTimeout time.Duration

	// RequestTimeout bounds the whole request, every retry and the
	// response body included. A client's own Request-Timeout header (a Go
	// duration such as "2.5s", or decimal seconds) shortens it, never
	// lengthens it. When it passes before any cluster answered, the
	// front answers 504. Default 10s.
	RequestTimeout time.Duration

	// EjectAfter is how many consecutive failures (connection errors,
	// per-try timeouts, 502, 503, 504) eject a cluster. A 429 is retried
	// but does not count: a cluster that sheds load is saturated, not
	// broken. Default 3.
	EjectAfter int

	// EjectFor is how long an ejected cluster is skipped. An ejected
	// cluster is still tried, last, when no other candidate is left, so a
	// fleet-wide blip does not refuse every request. Default 10s.
	EjectFor time.Duration

	// RetryBudget bounds the retries and hedges of all requests together.
	RetryBudget RetryBudget

	// Affinity makes requests that carry the same key go to the same
	// cluster. The zero value turns it off.
	Affinity Affinity

	// Hedge sends a second copy of a request to the next candidate when
	// the first has not answered within HedgeAfter, answers with whichever
	// responds first and cancels the other. Off by default: it costs up to
	// twice the upstream work for the slowest requests.
	Hedge bool

	// HedgeAfter is how long the first attempt may go unanswered before
	// the hedge is sent. Default 100ms.
	HedgeAfter time.Duration

	// PathModels names the model of request paths outside the Open
	// Inference Protocol's /v2/models/{model}/… tree, by exact path. Nil
	// means {"/analyze": "sentiment"}; an empty non-nil map means none.
	PathModels map[string]string

	// ForwardedFor says which X-Forwarded-For entries are believed: the
	// client address the Router sees, and the X-Forwarded-For sent
	// upstream. The zero value believes none (ForwardedFor).
	ForwardedFor ForwardedFor

	// AllowLocalEndpoints lets the front send to loopback endpoints, for
	// a fleet on one machine. Whatever it says, the front never sends to
	// an endpoint that is not http or https, or whose host is or resolves
	// to a link-local, cloud metadata, unspecified or multicast address
	// (package internal/endpoint).
	AllowLocalEndpoints bool

	// Transport sends the requests upstream. Default: a clone of
	// http.DefaultTransport with 256 idle connections per host, whose
	// dialer refuses the addresses AllowLocalEndpoints and the endpoint
	// policy forbid. A Transport given here must refuse them itself
	// (endpoint.Policy's Dialer or Guard).
	Transport http.RoundTripper

	// GRPCTransport sends gRPC calls, which need HTTP/2: h2c to http://
	// endpoints, h2 by ALPN to https:// ones. Default: a clone of
	// Transport (when it is an *http.Transport) speaking only HTTP/2; a
	// Transport that dials TLS itself needs its own GRPCTransport that
	// offers h2 by ALPN. The same endpoint rules hold.
	GRPCTransport http.RoundTripper

	// endpoints is the policy AllowLocalEndpoints chooses.
	endpoints endpoint.Policy

	// Registerer receives the front's metrics. Nil registers none.
	Registerer prometheus.Registerer

	// Logger receives the front's logs. Default slog.Default().
	Logger *slog.Logger

	// TracerProvider traces every request: a glb.front server span that
	// continues the client's traceparent, and a glb.front.attempt client
	// span per cluster tried, whose traceparent the cluster gets. Nil:
	// the global provider internal/tracing.Setup installs, else no
	// tracing (no span, no allocation).
	TracerProvider trace.TracerProvider

	// Now is the clock used for ejection, for tests. Default time.Now.
	Now func() time.Time
}

// RetryBudget bounds the extra load that retries and hedges put on the
// fleet, shared by every request through one Front, as Envoy's retry
// budget: a request may send another copy only while the copies already
// sent again, by requests still in flight, are fewer than Percent of the
// requests in flight, or than MinConcurrency, whichever is more. A retry
// after a failure to connect (nothing reached a cluster) is free: it is
// bounded by Attempts alone. When the budget is spent the request gets
// the last answer it had, or 503, and
// meridian_glb_http_retry_budget_exhausted_total counts it.
type RetryBudget struct {
	// Percent of the requests in flight that may be copies sent again.
	// Default 20.
	Percent float64
	// MinConcurrency is how many copies may be out at once whatever the
	// load, so a quiet front still retries. Default 10: a region that
	// dies fails every request in flight there at once.
	MinConcurrency int
}

// Affinity chooses where a request's affinity key comes from. At most one
// of Header and Cookie is set; Header wins when both are.
//
// A request with a key goes to the cluster that the key ranks highest by
// rendezvous hashing among the best tier of the Router's candidates, so
// every front of every point of presence sends one key to one cluster
// without sharing state. When that cluster is ejected or fails, the key's
// next cluster takes over; when it returns, so do its keys. A request
// without a key is balanced as if Affinity were off.
type Affinity struct {
	// Header is the name of the request header that holds the key.
	Header string
	// Cookie is the name of the cookie that holds the key.
	Cookie string
}

func (a Affinity) key(r *http.Request) string {
	switch {
	case a.Header != "":
		return r.Header.Get(a.Header)
	case a.Cookie != "":
		if c, err := r.Cookie(a.Cookie); err == nil {
			return c.Value
		}
	}
	return ""
}

func (o Options) withDefaults() Options {
	if o.MaxBodyBytes <= 0 {
		o.MaxBodyBytes = DefaultMaxBodyBytes
	}
	if o.Attempts <= 0 {
		o.Attempts = DefaultAttempts
	}
	switch {
	case o.PerTryTimeout < 0:
		o.PerTryTimeout = 0
	case o.PerTryTimeout == 0:
		o.PerTryTimeout = DefaultPerTryTimeout
	}
	if o.RequestTimeout <= 0 {
		o.RequestTimeout = DefaultRequestTimeout
	}
	if o.RetryBudget.Percent <= 0 {
		o.RetryBudget.Percent = DefaultRetryBudgetPercent
	}
	if o.RetryBudget.MinConcurrency <= 0 {
		o.RetryBudget.MinConcurrency = DefaultRetryBudgetMinConcurrency
	}
	if o.EjectAfter <= 0 {
		o.EjectAfter = DefaultEjectAfter
	}
	if o.EjectFor <= 0 {
		o.EjectFor = DefaultEjectFor
	}
	if o.HedgeAfter <= 0 {
		o.HedgeAfter = DefaultHedgeAfter
	}
	if o.PathModels == nil {
		o.PathModels = map[string]string{"/analyze": "sentiment"}
	}
	o.endpoints = endpoint.Policy{Local: o.AllowLocalEndpoints}
	if o.Transport == nil {
		t := http.DefaultTransport.(*http.Transport).Clone()
		t.MaxIdleConnsPerHost = 256
		t.DialContext = o.endpoints.Dialer(&net.Dialer{Timeout: 30 * time.Second, KeepAlive: 30 * time.Second}).DialContext
		o.Transport = t
	}
	if t, ok := o.Transport.(*http.Transport); ok && o.GRPCTransport == nil {
		g := t.Clone()
		g.Protocols = new(http.Protocols)
		g.Protocols.SetHTTP2(true)
		g.Protocols.SetUnencryptedHTTP2(true)
		o.GRPCTransport = g
	}
	if o.GRPCTransport == nil {
		o.GRPCTransport = o.Transport
	}
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	return o
}
