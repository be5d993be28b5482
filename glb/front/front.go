package front

import (
	"bytes"
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
	"sync"
	"time"
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
	cluster, code := f.serve(w, r)
	f.metrics.requests.WithLabelValues(cluster, strconv.Itoa(code)).Inc()
	f.metrics.duration.Observe(time.Since(start).Seconds())
}

// serve answers one request and returns the cluster label and status code
// to count it under.
func (f *Front) serve(w http.ResponseWriter, r *http.Request) (string, int) {
	model := f.model(r.URL.Path)
	if model == "" {
		return noCluster, writeError(w, http.StatusNotFound, fmt.Sprintf("path %s names no model", r.URL.Path))
	}
	if r.ContentLength > f.opts.MaxBodyBytes {
		return noCluster, writeError(w, http.StatusRequestEntityTooLarge, fmt.Sprintf("body is over the %d-byte limit", f.opts.MaxBodyBytes))
	}
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, f.opts.MaxBodyBytes))
	if err != nil {
		var tooBig *http.MaxBytesError
		if errors.As(err, &tooBig) {
			return noCluster, writeError(w, http.StatusRequestEntityTooLarge, fmt.Sprintf("body is over the %d-byte limit", f.opts.MaxBodyBytes))
		}
		return noCluster, writeError(w, http.StatusBadRequest, fmt.Sprintf("reading the request body: %v", err))
	}

	ctx, cancel := context.WithTimeout(r.Context(), f.timeout(r))
	defer cancel()
	cands := f.router.Route(r, model, f.client(r))
	key := f.opts.Affinity.key(r)

	results := make(chan *attempt, f.opts.Attempts)
	tried := make(map[string]bool, len(cands))
	launched, inflight := 0, 0
	var running []*attempt
	launch := func(reason string) bool {
		if launched >= f.opts.Attempts {
			return false
		}
		cand, ok := f.clusters.pick(cands, tried, key)
		if !ok {
			return false
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
		go f.send(actx, a, r, body, results)
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
		return noCluster, writeUnavailable(w, fmt.Sprintf("no cluster can serve model %s now", model))
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
			return f.expired(w, r, last, model)
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
		return f.expired(w, r, last, model)
	}
	if last != nil {
		return last.cluster, last.write(w)
	}
	return noCluster, writeUnavailable(w, fmt.Sprintf("every cluster that serves model %s failed", model))
}

// expired answers a request whose time ran out, or whose client left,
// before any cluster answered.
func (f *Front) expired(w http.ResponseWriter, r *http.Request, last *bufferedResponse, model string) (string, int) {
	if r.Context().Err() != nil {
		return noCluster, 499 // the client left; nobody to answer
	}
	if last != nil {
		return last.cluster, last.write(w)
	}
	return noCluster, writeError(w, http.StatusGatewayTimeout, fmt.Sprintf("no cluster answered for model %s within the request timeout", model))
}

// send performs one attempt and reports it on results.
func (f *Front) send(ctx context.Context, a *attempt, r *http.Request, body []byte, results chan<- *attempt) {
	var stop func() bool
	if f.opts.PerTryTimeout > 0 {
		t := time.AfterFunc(f.opts.PerTryTimeout, func() { a.cancel(errPerTryTimeout) })
		stop = t.Stop
	}
	resp, err := f.opts.Transport.RoundTrip(outgoing(ctx, r, a.cand.URL, body))
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
	case err != nil:
		a.reason = "connection"
	case retryable(resp.StatusCode):
		a.reason = strconv.Itoa(resp.StatusCode)
	}
	results <- a
}

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

// relay streams the winning attempt's response to the client and returns
// its status code. Once the headers are written the request is committed:
// if the cluster fails mid-body the client's connection is aborted, so a
// truncated body never looks complete.
func (f *Front) relay(w http.ResponseWriter, a *attempt) int {
	defer f.finish(a)
	resp := a.resp
	copyHeader(w.Header(), resp.Header)
	w.Header().Set(ClusterHeader, a.cand.Cluster)
	w.WriteHeader(resp.StatusCode)
	var dst io.Writer = w
	if resp.ContentLength == -1 {
		dst = flushWriter{w: w, rc: http.NewResponseController(w)} // streamed: pass each piece on
	}
	buf := copyBuffers.Get().(*[]byte)
	defer copyBuffers.Put(buf)
	if _, err := io.CopyBuffer(dst, onlyReader{resp.Body}, *buf); err != nil {
		f.log.Debug("global front: response body cut short", "cluster", a.cand.Cluster, "err", err)
		panic(http.ErrAbortHandler)
	}
	for k, vv := range resp.Trailer {
		w.Header()[http.TrailerPrefix+k] = vv
	}
	return resp.StatusCode
}

// copyBuffers are relay's copy buffers: without them every response
// copied through a writer without ReadFrom (a streamed answer, tests'
// recorders) would allocate io.Copy's 32 KiB.
var copyBuffers = sync.Pool{New: func() any { b := make([]byte, 32<<10); return &b }}

// onlyReader hides the body's WriteTo so io.CopyBuffer uses the pooled
// buffer.
type onlyReader struct{ io.Reader }

type flushWriter struct {
	w  io.Writer
	rc *http.ResponseController
}

func (fw flushWriter) Write(p []byte) (int, error) {
	n, err := fw.w.Write(p)
	if err == nil {
		_ = fw.rc.Flush()
	}
	return n, err
}

// maxErrorBody bounds the body kept of a failed answer, in case every
// cluster fails and it is the one passed on.
const maxErrorBody = 1 << 20

// bufferedResponse is a failed cluster's answer, read into memory so its
// connection is free while the next cluster is tried.
type bufferedResponse struct {
	cluster string
	code    int
	header  http.Header
	body    []byte
}

// bufferResponse reads a's response, or returns nil when its body is too
// large to hold or cannot be read.
func bufferResponse(a *attempt) *bufferedResponse {
	body, err := io.ReadAll(io.LimitReader(a.resp.Body, maxErrorBody+1))
	if err != nil || len(body) > maxErrorBody {
		return nil
	}
	return &bufferedResponse{cluster: a.cand.Cluster, code: a.resp.StatusCode, header: a.resp.Header, body: body}
}

func (b *bufferedResponse) write(w http.ResponseWriter) int {
	copyHeader(w.Header(), b.header)
	w.Header().Set(ClusterHeader, b.cluster)
	w.Header().Set("Content-Length", strconv.Itoa(len(b.body)))
	w.WriteHeader(b.code)
	_, _ = w.Write(b.body)
	return b.code
}

// model returns the model a request path addresses, or "" for none.
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

// client returns the address the Router steers by.
func (f *Front) client(r *http.Request) netip.Addr {
	if f.opts.TrustForwardedFor {
		if xff := r.Header.Get("X-Forwarded-For"); xff != "" {
			first, _, _ := strings.Cut(xff, ",")
			if a, err := netip.ParseAddr(strings.TrimSpace(first)); err == nil {
				return a.Unmap()
			}
		}
	}
	if ap, err := netip.ParseAddrPort(r.RemoteAddr); err == nil {
		return ap.Addr().Unmap()
	}
	if a, err := netip.ParseAddr(r.RemoteAddr); err == nil {
		return a.Unmap()
	}
	return netip.Addr{}
}

// timeout is the request's whole budget: RequestTimeout, or the client's
// Request-Timeout header when that is shorter.
func (f *Front) timeout(r *http.Request) time.Duration {
	d := f.opts.RequestTimeout
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

// hopHeaders are meaningful only for one connection and are not
// forwarded (RFC 9110 section 7.6.1).
var hopHeaders = []string{
	"Connection", "Proxy-Connection", "Keep-Alive", "Proxy-Authenticate",
	"Proxy-Authorization", "Te", "Trailer", "Transfer-Encoding", "Upgrade",
}

// copyHeader copies src into dst without hop-by-hop headers.
func copyHeader(dst, src http.Header) {
	for k, vv := range src {
		dst[k] = append([]string(nil), vv...)
	}
	removeHopHeaders(dst)
}

func removeHopHeaders(h http.Header) {
	for _, f := range h["Connection"] {
		for name := range strings.SplitSeq(f, ",") {
			if name = strings.TrimSpace(name); name != "" {
				h.Del(name)
			}
		}
	}
	for _, k := range hopHeaders {
		h.Del(k)
	}
}

// outgoing builds the copy of r sent to the cluster at base: same method,
// path, query, headers (Inference-Header-Content-Length among them) and
// body, less hop-by-hop headers, plus X-Forwarded-For/-Host/-Proto.
func outgoing(ctx context.Context, r *http.Request, base *url.URL, body []byte) *http.Request {
	u := *base
	u.Path, u.RawPath = joinPath(base, r.URL)
	u.RawQuery = r.URL.RawQuery
	u.Fragment, u.RawFragment = "", ""
	out := &http.Request{
		Method:        r.Method,
		URL:           &u,
		Proto:         "HTTP/1.1",
		ProtoMajor:    1,
		ProtoMinor:    1,
		Header:        r.Header.Clone(),
		Host:          u.Host,
		ContentLength: int64(len(body)),
	}
	if out.Header == nil {
		out.Header = make(http.Header)
	}
	removeHopHeaders(out.Header)
	// The body is already here; waiting for a 100 Continue only adds a
	// round trip.
	out.Header.Del("Expect")
	if len(body) > 0 {
		out.Body = io.NopCloser(bytes.NewReader(body))
		out.GetBody = func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(body)), nil }
	}
	if ip, _, err := net.SplitHostPort(r.RemoteAddr); err == nil {
		if prior := out.Header.Values("X-Forwarded-For"); len(prior) > 0 {
			ip = strings.Join(prior, ", ") + ", " + ip
		}
		out.Header.Set("X-Forwarded-For", ip)
	}
	out.Header.Set("X-Forwarded-Host", r.Host)
	proto := "http"
	if r.TLS != nil {
		proto = "https"
	}
	out.Header.Set("X-Forwarded-Proto", proto)
	if _, ok := out.Header["User-Agent"]; !ok {
		out.Header.Set("User-Agent", "") // send none rather than Go's default
	}
	return out.WithContext(ctx)
}

// joinPath appends the request's path to the base URL's path, keeping an
// escaped form when either has one.
func joinPath(base, req *url.URL) (path, rawPath string) {
	if base.RawPath == "" && req.RawPath == "" {
		return singleJoin(base.Path, req.Path), ""
	}
	return singleJoin(base.Path, req.Path), singleJoin(base.EscapedPath(), req.EscapedPath())
}

func singleJoin(a, b string) string {
	switch as, bs := strings.HasSuffix(a, "/"), strings.HasPrefix(b, "/"); {
	case as && bs:
		return a + b[1:]
	case !as && !bs && a != "" && b != "":
		return a + "/" + b
	}
	return a + b
}

// writeError answers a JSON error body and returns the code.
func writeError(w http.ResponseWriter, code int, msg string) int {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	_ = json.NewEncoder(w).Encode(map[string]string{"error": msg})
	return code
}

// writeUnavailable answers 503 with a Retry-After.
func writeUnavailable(w http.ResponseWriter, msg string) int {
	w.Header().Set("Retry-After", "1")
	return writeError(w, http.StatusServiceUnavailable, msg)
}
