package front

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"strconv"
	"strings"
	"time"

	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/trace"

	"meridian.dev/meridian/internal/httpserve"
	"meridian.dev/meridian/internal/oipgrpc"
	"meridian.dev/meridian/internal/tracing"
)

// ClusterHeader is the response header that names the cluster that
// answered.
const ClusterHeader = "X-Meridian-Cluster"

// Router ranks the member clusters that can serve one request. The
// balancer implements it with its steering policies; the front owns
// everything about HTTP.
type Router interface {
	// Route returns the clusters that can serve model for client, best
	// first. Nil or empty means none can.
	Route(r *http.Request, model string, client netip.Addr) []Candidate
}

// Candidate is one cluster that can serve a request.
type Candidate struct {
	// Cluster names the member cluster. It labels metrics and the
	// X-Meridian-Cluster header, and keys ejection and affinity.
	Cluster string
	// URL is the base URL of the model's endpoint in that cluster; the
	// request's path and query are appended to it.
	URL *url.URL
	// Tier groups equivalent candidates: the front prefers the lowest
	// tier and balances within it by least outstanding requests. The
	// Router returns candidates sorted by tier.
	Tier int
}

// Front is the global balancer's HTTP front: a reverse proxy that sends
// each request to a member cluster chosen by a Router, retrying at the
// next cluster when one fails. It implements http.Handler.
type Front struct {
	router   Router
	opts     Options
	log      *slog.Logger
	clusters *clusters
	budget   *retryBudget
	metrics  *metrics
}

// New returns a Front over router. Zero Options fields take the defaults
// their comments name. It fails only when its metrics cannot be
// registered on opts.Registerer (one Front per registry).
func New(router Router, opts Options) (*Front, error) {
	opts = opts.withDefaults()
	m, err := newMetrics(opts.Registerer)
	if err != nil {
		return nil, err
	}
	return &Front{
		router:   router,
		opts:     opts,
		log:      opts.Logger,
		clusters: newClusters(opts),
		budget:   &retryBudget{percent: opts.RetryBudget.Percent, minimum: opts.RetryBudget.MinConcurrency},
		metrics:  m,
	}, nil
}

// errPerTryTimeout cancels an attempt whose cluster took longer than
// PerTryTimeout to answer.
var errPerTryTimeout = errors.New("per-try timeout")

// attempt is one copy of a request sent to one cluster.
type attempt struct {
	cand   Candidate
	cancel context.CancelCauseFunc
	resp   *http.Response
	err    error
	reason string // why it failed, in the retries metric's words; "" for an answer
}

func (f *Front) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	start := time.Now()
	if t := tracing.Tracer(f.opts.TracerProvider); t != nil {
		f.serveTraced(t, w, r, start)
		return
	}
	cluster, code := f.serve(w, r)
	f.metrics.requests.WithLabelValues(cluster, strconv.Itoa(code)).Inc()
	f.metrics.duration.Observe(time.Since(start).Seconds())
}

// serveTraced is ServeHTTP inside a glb.front server span that continues
// the client's traceparent; each attempt's span is its child (send).
func (f *Front) serveTraced(t trace.Tracer, w http.ResponseWriter, r *http.Request, start time.Time) {
	ctx, span := t.Start(tracing.Extract(r.Context(), r.Header), "glb.front",
		trace.WithSpanKind(trace.SpanKindServer), trace.WithTimestamp(start),
		trace.WithAttributes(tracing.AttrMethod.String(r.Method), tracing.AttrPath.String(r.URL.Path)))
	defer span.End()
	if span.IsRecording() {
		if m := f.model(r.URL.Path); m != "" {
			span.SetAttributes(tracing.AttrModel.String(m))
		}
	}
	cluster, code := f.serve(w, r.WithContext(ctx))
	if span.IsRecording() && cluster != noCluster {
		span.SetAttributes(tracing.AttrCluster.String(cluster))
	}
	tracing.EndHTTP(span, code)
	f.metrics.requests.WithLabelValues(cluster, strconv.Itoa(code)).Inc()
	f.metrics.duration.Observe(time.Since(start).Seconds())
}

// serve answers one request and returns the cluster label and status code
// to count it under.
func (f *Front) serve(w http.ResponseWriter, r *http.Request) (string, int) {
	ans := answer{w: w, grpc: oipgrpc.IsCall(r)}
	model := f.model(r.URL.Path)
	if model == "" && !ans.grpc {
		return noCluster, ans.fail(http.StatusNotFound, fmt.Sprintf("path %s names no model", r.URL.Path))
	}
	if r.ContentLength > f.opts.MaxBodyBytes {
		return noCluster, ans.fail(http.StatusRequestEntityTooLarge, fmt.Sprintf("body is over the %d-byte limit", f.opts.MaxBodyBytes))
	}
	body, err := readBody(w, r, f.opts.MaxBodyBytes)
	if err != nil {
		var tooBig *http.MaxBytesError
		if errors.As(err, &tooBig) {
			return noCluster, ans.fail(http.StatusRequestEntityTooLarge, fmt.Sprintf("body is over the %d-byte limit", f.opts.MaxBodyBytes))
		}
		if errors.Is(err, httpserve.ErrBodyTimeout) {
			return noCluster, ans.fail(http.StatusRequestTimeout, "the request body did not arrive in time")
		}
		return noCluster, ans.fail(http.StatusBadRequest, fmt.Sprintf("reading the request body: %v", err))
	}
	if model == "" { // a gRPC call: the model is in its message
		if model, err = oipgrpc.Model(r.URL.Path, body); errors.Is(err, oipgrpc.ErrNoModel) {
			return noCluster, ans.fail(http.StatusNotFound, fmt.Sprintf("gRPC method %s names no model: call it for a model, or map it to one (PathModels)", r.URL.Path))
		} else if err != nil {
			return noCluster, ans.fail(http.StatusBadRequest, fmt.Sprintf("gRPC call %s: %v", r.URL.Path, err))
		}
	}

	ctx, cancel := context.WithTimeout(r.Context(), f.timeout(r))
	defer cancel()
	chain := f.opts.ForwardedFor.chain(r)
	var clientAddr netip.Addr
	if len(chain) > 0 {
		clientAddr = chain[0]
	}
	cands := f.allowed(f.router.Route(r, model, clientAddr))
	key := f.opts.Affinity.key(r)

	results := make(chan *attempt, f.opts.Attempts)
	tried := make(map[string]bool, len(cands))
	launched, inflight, held := 0, 0, 0
	spent := false // a retry was refused by the budget
	f.budget.begin()
	defer func() { f.budget.end(held) }()
	var running []*attempt
	launch := func(reason string) bool {
		if launched >= f.opts.Attempts {
			return false
		}
		cand, ok := f.clusters.pick(cands, tried, key)
		if !ok {
			return false
		}
		if launched > 0 && costsBudget(reason) {
			if !f.budget.take() {
				f.clusters.done(cand.Cluster)
				f.metrics.budgetExhausted.Inc()
				spent = true
				return false
			}
			held++
		}
		tried[cand.Cluster] = true
		if launched > 0 {
			f.metrics.retries.WithLabelValues(reason).Inc()
		}
		launched++
		inflight++
		f.metrics.outstanding.WithLabelValues(cand.Cluster).Inc()
		a := &attempt{cand: cand}
		running = append(running, a)
		var actx context.Context
		actx, a.cancel = context.WithCancelCause(ctx)
		go f.send(actx, a, r, body, chain, results, launched, reason)
		return true
	}
	// abandon cancels every attempt still running but the winner (whose
	// connection must survive its body being read, to be reused) and
	// finishes them in the background once they return.
	abandon := func(winner *attempt) {
		for _, a := range running {
			if a != winner {
				a.cancel(context.Canceled)
			}
		}
		if inflight == 0 {
			return
		}
		go func(n int) {
			for range n {
				f.finish(<-results)
			}
		}(inflight)
		inflight = 0
	}

	var last *bufferedResponse
	var hedge <-chan time.Time
	if !launch("") {
		return noCluster, ans.fail(http.StatusServiceUnavailable, fmt.Sprintf("no cluster can serve model %s now", model))
	}
	if f.opts.Hedge {
		t := time.NewTimer(f.opts.HedgeAfter)
		defer t.Stop()
		hedge = t.C
	}
	for inflight > 0 {
		select {
		case <-ctx.Done():
			abandon(nil)
			return f.expired(ans, r, last, model)
		case <-hedge:
			hedge = nil
			launch("hedge")
		case a := <-results:
			inflight--
			if a.reason == "" {
				abandon(a)
				f.clusters.succeeded(a.cand.Cluster)
				return a.cand.Cluster, f.relay(w, a)
			}
			if ctx.Err() != nil {
				f.finish(a)
				continue // the next turn answers the timeout or the client's leaving
			}
			if f.clusters.failed(a.cand.Cluster) {
				f.metrics.ejections.WithLabelValues(a.cand.Cluster).Inc()
				f.log.Warn("global front: ejecting cluster after consecutive failures", "cluster", a.cand.Cluster, "for", f.opts.EjectFor, "err", a.err, "reason", a.reason)
			} else {
				f.log.Debug("global front: cluster failed; trying another", "cluster", a.cand.Cluster, "reason", a.reason, "err", a.err)
			}
			if a.resp != nil {
				last = bufferResponse(a)
			}
			f.finish(a)
			if inflight == 0 {
				launch(a.reason)
			}
		}
	}
	if ctx.Err() != nil {
		return f.expired(ans, r, last, model)
	}
	if last != nil {
		return last.cluster, last.write(w)
	}
	if spent {
		return noCluster, ans.fail(http.StatusServiceUnavailable, fmt.Sprintf("the cluster tried for model %s failed, and the front's retry budget is spent (too many requests are being retried)", model))
	}
	return noCluster, ans.fail(http.StatusServiceUnavailable, fmt.Sprintf("every cluster that serves model %s failed", model))
}

// presizeBody is the largest announced body read into a buffer of its
// length before its bytes arrive; a larger one grows as they come, so a
// client announcing a large body and sending nothing costs little.
const presizeBody = 64 << 10

// readBody reads the request's body, at most limit bytes, into a buffer
// of its announced length when that is small.
func readBody(w http.ResponseWriter, r *http.Request, limit int64) ([]byte, error) {
	body := http.MaxBytesReader(w, r.Body, limit)
	if n := r.ContentLength; n > 0 && n <= min(limit, presizeBody) {
		b := make([]byte, n)
		if _, err := io.ReadFull(body, b); err != nil {
			return nil, err
		}
		return b, nil
	}
	return io.ReadAll(body)
}

// answer is how the front answers a request itself: JSON for HTTP, a
// gRPC status for a gRPC call.
type answer struct {
	w    http.ResponseWriter
	grpc bool
}

// fail answers an error and returns the HTTP status it stands for.
func (a answer) fail(code int, msg string) int {
	if a.grpc {
		return oipgrpc.WriteError(a.w, code, msg)
	}
	if code == http.StatusServiceUnavailable {
		a.w.Header().Set("Retry-After", "1")
	}
	return writeError(a.w, code, msg)
}

// expired answers a request whose time ran out, or whose client left,
// before any cluster answered.
func (f *Front) expired(ans answer, r *http.Request, last *bufferedResponse, model string) (string, int) {
	if r.Context().Err() != nil {
		return noCluster, 499 // the client left; nobody to answer
	}
	if last != nil {
		return last.cluster, last.write(ans.w)
	}
	return noCluster, ans.fail(http.StatusGatewayTimeout, fmt.Sprintf("no cluster answered for model %s within the request timeout", model))
}

// send performs one attempt and reports it on results.
// n counts the attempts so far, this one included, and reason is why it
// was sent ("" for the first, else a retry's or hedge's reason); both
// only label its span.
func (f *Front) send(ctx context.Context, a *attempt, r *http.Request, body []byte, chain []netip.Addr, results chan<- *attempt, n int, reason string) {
	var span trace.Span
	if parent := trace.SpanFromContext(ctx); parent.SpanContext().IsValid() {
		ctx, span = parent.TracerProvider().Tracer(tracing.Scope).Start(ctx, "glb.front.attempt", trace.WithSpanKind(trace.SpanKindClient))
		if span.IsRecording() {
			span.SetAttributes(tracing.AttrCluster.String(a.cand.Cluster), tracing.AttrServer.String(a.cand.URL.Host), tracing.AttrAttempt.Int(n))
			if reason != "" {
				span.SetAttributes(tracing.AttrRetryReason.String(reason))
			}
		}
		defer func() { endAttempt(span, a) }()
	}
	var stop func() bool
	if f.opts.PerTryTimeout > 0 {
		t := time.AfterFunc(f.opts.PerTryTimeout, func() { a.cancel(errPerTryTimeout) })
		stop = t.Stop
	}
	grpc := oipgrpc.IsCall(r)
	out := outgoing(ctx, r, a.cand.URL, body, chain, grpc)
	if span != nil {
		tracing.Inject(ctx, out.Header) // the cluster continues this attempt's span, not the client's
	}
	transport := f.opts.Transport
	if grpc {
		transport = f.opts.GRPCTransport
	}
	resp, err := transport.RoundTrip(out)
	if stop != nil && !stop() && err == nil {
		// The timer fired as the headers arrived; the body is lost to
		// the cancellation, so this is a timeout all the same.
		_ = resp.Body.Close()
		resp, err = nil, errPerTryTimeout
	}
	a.resp, a.err = resp, err
	switch {
	case err != nil && errors.Is(context.Cause(ctx), errPerTryTimeout):
		a.err, a.reason = errPerTryTimeout, "timeout"
	case err != nil && neverSent(err):
		a.reason = "connection"
	case err != nil:
		a.reason = "reset"
	case retryable(resp.StatusCode):
		a.reason = strconv.Itoa(resp.StatusCode)
	case grpc:
		a.reason = grpcRetryReason(resp)
	}
	results <- a
}

// neverSent reports an attempt that failed before any of it reached the
// cluster: the connection could not be made. Any other failure may have
// come after the request was written, so it counts as a reset.
func neverSent(err error) bool {
	var op *net.OpError
	return errors.As(err, &op) && op.Op == "dial"
}

// endAttempt ends an attempt's span once its answer's headers are in (or
// it failed), with the status code or the reason it failed.
func endAttempt(span trace.Span, a *attempt) {
	if span.IsRecording() {
		if a.resp != nil {
			tracing.EndHTTP(span, a.resp.StatusCode)
		}
		if a.err != nil {
			span.RecordError(a.err)
			span.SetStatus(codes.Error, a.reason)
		}
	}
	span.End()
}

// allowed returns the candidates whose endpoints the policy allows (the
// dialer checks the addresses names resolve to as well), counting the
// others.
func (f *Front) allowed(cands []Candidate) []Candidate {
	var out []Candidate
	for i, c := range cands {
		err := f.opts.endpoints.CheckURL(c.URL)
		if err == nil {
			if out != nil {
				out = append(out, c)
			}
			continue
		}
		if out == nil {
			out = append(make([]Candidate, 0, len(cands)), cands[:i]...)
		}
		f.metrics.refused.WithLabelValues(c.Cluster).Inc()
		f.log.Debug("global front: skipping a cluster whose endpoint is not allowed", "cluster", c.Cluster, "err", err)
	}
	if out == nil {
		return cands
	}
	return out
}

// costsBudget reports whether a copy sent again for this reason spends
// the retry budget: every one does but a retry after a failure to
// connect, which reached no cluster and so adds no load (bounded by
// Attempts alone, as HAProxy's retries).
func costsBudget(reason string) bool { return reason != "connection" }

// finish releases an attempt that is not relayed to the client.
func (f *Front) finish(a *attempt) {
	if a.resp != nil {
		_ = a.resp.Body.Close()
	}
	a.cancel(context.Canceled)
	f.clusters.done(a.cand.Cluster)
	f.metrics.outstanding.WithLabelValues(a.cand.Cluster).Dec()
}

// retryable reports whether a status code sends the request on to the
// next cluster: the cluster is overloaded (429), its gateway failed (502,
// 504) or it has no replica to serve (503).
func retryable(code int) bool {
	switch code {
	case http.StatusTooManyRequests, http.StatusBadGateway, http.StatusServiceUnavailable, http.StatusGatewayTimeout:
		return true
	}
	return false
}

// model returns the model a request path addresses, or "" for none.
// ModelOf names the model a request addresses, as the front routes it
// (so the auth door's model allow-lists agree with the routing).
// A gRPC call's model is in its message, which ModelOf reads (and puts
// back for the front to read again).
func (f *Front) ModelOf(r *http.Request) string {
	if oipgrpc.IsCall(r) {
		return oipgrpc.PolicyModel(r, f.opts.MaxBodyBytes)
	}
	return f.model(r.URL.Path)
}

func (f *Front) model(path string) string {
	if m, ok := f.opts.PathModels[path]; ok {
		return m
	}
	rest, ok := strings.CutPrefix(path, "/v2/models/")
	if !ok {
		return ""
	}
	m, _, _ := strings.Cut(rest, "/")
	return m
}

// timeout is the request's whole budget: RequestTimeout, or the client's
// grpc-timeout or Request-Timeout header when that is shorter.
func (f *Front) timeout(r *http.Request) time.Duration {
	d := f.opts.RequestTimeout
	if g, ok := grpcTimeout(r.Header.Get("Grpc-Timeout")); ok && g > 0 && g < d {
		d = g
	}
	v := strings.TrimSpace(r.Header.Get("Request-Timeout"))
	if v == "" {
		return d
	}
	c, err := time.ParseDuration(v)
	if err != nil {
		s, ferr := strconv.ParseFloat(v, 64)
		if ferr != nil || s <= 0 || s > d.Seconds() {
			return d
		}
		c = time.Duration(s * float64(time.Second))
	}
	if c > 0 && c < d {
		return c
	}
	return d
}

// WriteError answers an error in the front's shape, {"error": msg}, with
// Retry-After: 1 on a 503 (a server's refusals use it too).
func WriteError(w http.ResponseWriter, code int, msg string) {
	if code == http.StatusServiceUnavailable {
		w.Header().Set("Retry-After", "1")
	}
	writeError(w, code, msg)
}

// writeError answers a JSON error body and returns the code.
func writeError(w http.ResponseWriter, code int, msg string) int {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	_ = json.NewEncoder(w).Encode(map[string]string{"error": msg})
	return code
}
