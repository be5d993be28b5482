package process

import (
	"bytes"
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"meridian.dev/meridian/internal/httpserve"
	"meridian.dev/meridian/internal/oipgrpc"
)

// Front is the one address a model is served at in this cluster. It
// chooses each request's version by the routes' weights (or the version
// named in the path), then sends it to that version's ready replica with
// the fewest requests outstanding, and retries on another replica — of
// another version when the request named none — when a replica refuses
// the connection or sheds the request (429), so a replica dying or
// saturating costs no request while another has room.
//
// gRPC calls of the Open Inference Protocol go the same way, over HTTP/2
// to the replica: the version comes from the message (model_version),
// a replica's RESOURCE_EXHAUSTED or UNAVAILABLE refusal counts as a shed,
// and the answer's trailers (grpc-status) come back with it.
type Front struct {
	name      string
	log       *slog.Logger
	maxBody   int64
	observe   func(Result)
	transport *http.Transport
	h2c       *http.Transport // gRPC calls: HTTP/2 in the clear
	srv       *http.Server
	ln        net.Listener
	routes    atomic.Pointer[Routes]

	mu          sync.Mutex
	outstanding map[string]*atomic.Int64 // by replica ID
}

// FrontOptions configure a Front.
type FrontOptions struct {
	// Listen is the address to serve on; default 127.0.0.1:0.
	Listen string
	// MaxBodyBytes bounds request bodies, which are held in memory so a
	// request can be retried on another replica. Default 64 MiB.
	MaxBodyBytes int64
	// Logger; default slog.Default().
	Logger *slog.Logger
	// HTTP hardens the front's listener (internal/httpserve); zero fields
	// take its defaults, but WriteTimeout defaults to 60s, above a
	// replica's own (its request timeout + 20s) so the replica's answer
	// gets through. Its Name is "agent-front"; its Registerer, when set,
	// receives the meridian_http_* series.
	HTTP httpserve.Options
	// TLS, when set, serves HTTPS only (mutual TLS when it verifies
	// clients).
	TLS *tls.Config
	// Wrap, when set, puts a handler (the agent's auth door) in front of
	// the front's own.
	Wrap func(http.Handler) http.Handler
	// Observe, when set, is told the outcome of every POST (inference)
	// request the front routed to a version.
	Observe func(Result)
}

// Result is one request the front routed.
type Result struct {
	// Version that answered (from the replica's Meridian-Model-Version
	// header, else the pool's); 0 when unknown.
	Version int64
	// Code is the HTTP status the client got.
	Code int
	// Prediction is the label the answer predicted (/analyze), if any.
	Prediction string
	// Duration from the body read to the answer's end.
	Duration time.Duration
}

// NewFront starts serving model name (for logs and errors) with no
// routes: SetRoutes gives it replicas.
func NewFront(name string, opts FrontOptions) (*Front, error) {
	if opts.Listen == "" {
		opts.Listen = "127.0.0.1:0"
	}
	if opts.MaxBodyBytes <= 0 {
		opts.MaxBodyBytes = 64 << 20
	}
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	ln, err := net.Listen("tcp", opts.Listen)
	if err != nil {
		return nil, fmt.Errorf("front for %s: listening on %s: %w", name, opts.Listen, err)
	}
	f := &Front{
		name: name, log: opts.Logger, maxBody: opts.MaxBodyBytes, ln: ln, observe: opts.Observe,
		transport:   &http.Transport{MaxIdleConnsPerHost: 128, IdleConnTimeout: 90 * time.Second, ResponseHeaderTimeout: 0},
		h2c:         &http.Transport{IdleConnTimeout: 90 * time.Second, Protocols: new(http.Protocols)},
		outstanding: make(map[string]*atomic.Int64),
	}
	f.h2c.Protocols.SetUnencryptedHTTP2(true)
	opts.HTTP.Name, opts.HTTP.Logger = "agent-front", opts.Logger
	if opts.HTTP.WriteTimeout == 0 {
		opts.HTTP.WriteTimeout = time.Minute
	}
	var h http.Handler = f
	if opts.Wrap != nil {
		h = opts.Wrap(f)
	}
	if f.srv, err = httpserve.New(h, opts.HTTP); err != nil {
		_ = ln.Close()
		return nil, fmt.Errorf("front for %s: %w", name, err)
	}
	f.srv.TLSConfig = opts.TLS
	go func() { _ = httpserve.ServeOnce(f.srv, ln) }()
	return f, nil
}

// Addr is the front's host:port.
func (f *Front) Addr() string { return f.ln.Addr().String() }

// Close stops accepting requests and waits up to timeout for those in
// flight.
func (f *Front) Close(timeout time.Duration) {
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	_ = f.srv.Shutdown(ctx)
	f.transport.CloseIdleConnections()
	f.h2c.CloseIdleConnections()
}

// pick returns, from the first pool with one, the ready replica with the
// fewest outstanding requests, skipping those already tried.
func (f *Front) pick(pools []Pool, tried map[string]bool) (Pool, Replica, *atomic.Int64, bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, p := range pools {
		if p.Replicas == nil {
			continue
		}
		var best Replica
		var bestN *atomic.Int64
		for _, r := range p.Replicas.Replicas() {
			if !r.Ready || tried[r.ID] {
				continue
			}
			n := f.outstanding[r.ID]
			if n == nil {
				n = new(atomic.Int64)
				f.outstanding[r.ID] = n
			}
			if bestN == nil || n.Load() < bestN.Load() {
				best, bestN = r, n
			}
		}
		if bestN != nil {
			return p, best, bestN, true
		}
	}
	return Pool{}, Replica{}, nil, false
}

func (f *Front) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	grpc := oipgrpc.IsCall(r)
	fail := writeError
	if grpc {
		fail = func(w http.ResponseWriter, code int, msg string) { oipgrpc.WriteError(w, code, msg) }
	}
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, f.maxBody))
	if err != nil {
		var tooBig *http.MaxBytesError
		switch {
		case errors.As(err, &tooBig):
			fail(w, http.StatusRequestEntityTooLarge, fmt.Sprintf("body is over the %d-byte limit", f.maxBody))
		case errors.Is(err, httpserve.ErrBodyTimeout):
			fail(w, http.StatusRequestTimeout, "the body did not arrive in time")
		}
		return // otherwise the client left
	}
	start := time.Now()
	v, named, err := requestVersion(r, body, grpc)
	var pools []Pool
	if err == nil {
		pools, err = f.routes.Load().choose(w, r, v, named)
	}
	if err != nil {
		fail(w, http.StatusNotFound, fmt.Sprintf("model %s: %v", f.name, err))
		return
	}
	out := Result{Version: pools[0].Version}
	out.Code = f.forward(w, r, body, pools, grpc, &out)
	// Inference is POSTed; the balancer's health probes (GET) are not
	// requests of a version's users.
	if f.observe != nil && out.Code != 0 && r.Method == http.MethodPost {
		out.Duration = time.Since(start)
		f.observe(out)
	}
}

// requestVersion is the version r names: in its path, or in a gRPC
// call's message; named is false when it names none.
func requestVersion(r *http.Request, body []byte, grpc bool) (v int64, named bool, err error) {
	if !grpc {
		v, named = pathVersion(r.URL.Path)
		return v, named, nil
	}
	c, err := oipgrpc.Read(r.URL.Path, body)
	switch {
	case errors.Is(err, oipgrpc.ErrNoModel):
		return 0, false, nil // a server-level call: any version answers it
	case err != nil:
		return 0, false, err
	case c.Version == "":
		return 0, false, nil
	}
	if v, err = strconv.ParseInt(c.Version, 10, 64); err != nil || v < 1 {
		return 0, false, fmt.Errorf("version %q is not a version number", c.Version)
	}
	return v, true, nil
}

// forward sends the request to up to three replicas of pools in turn
// and relays the first answer that is not a refusal; it returns the
// status relayed (0 when the client left) and sets res's Version and
// Prediction from the answer.
func (f *Front) forward(w http.ResponseWriter, r *http.Request, body []byte, pools []Pool, grpc bool, res *Result) int {
	transport := f.transport
	if grpc {
		transport = f.h2c
	}
	tried := make(map[string]bool)
	var last *http.Response
	// Three replicas, and one more per other version to fall back on.
	for attempt := 0; attempt < 2+len(pools); attempt++ {
		pool, rep, n, ok := f.pick(pools, tried)
		if !ok {
			break
		}
		tried[rep.ID] = true
		out := r.Clone(r.Context())
		out.URL.Scheme, out.URL.Host, out.Host = "http", rep.Addr, rep.Addr
		out.RequestURI = ""
		out.Body = io.NopCloser(bytes.NewReader(body))
		out.ContentLength = int64(len(body))
		if grpc {
			out.Header.Set("Te", "trailers") // gRPC servers require it
		}
		n.Add(1)
		resp, err := transport.RoundTrip(out) //nolint:bodyclose // closed by relay, or when a later answer replaces it
		if err != nil {
			n.Add(-1)
			if r.Context().Err() != nil {
				return 0 // the client left
			}
			f.log.Debug("replica failed; trying another", "model", f.name, "replica", rep.ID, "err", err)
			continue
		}
		res.Version, res.Prediction = answeredVersion(resp, pool.Version), resp.Header.Get(HeaderPrediction)
		if shed(resp, grpc) {
			if last != nil {
				_ = last.Body.Close()
			}
			last = resp
			n.Add(-1)
			continue
		}
		f.relay(w, resp)
		n.Add(-1)
		if last != nil {
			_ = last.Body.Close()
		}
		return resp.StatusCode
	}
	if last != nil { // every replica shed it: pass the 429 on
		f.relay(w, last)
		return last.StatusCode
	}
	msg := fmt.Sprintf("model %s: %v in this cluster yet", f.name, errNoReplica)
	if grpc {
		return oipgrpc.WriteError(w, http.StatusServiceUnavailable, msg)
	}
	w.Header().Set("Retry-After", "1")
	writeError(w, http.StatusServiceUnavailable, msg)
	return http.StatusServiceUnavailable
}

// shed reports a replica's refusal to take the request now, which the
// front tries elsewhere: 429, or for a gRPC call a trailers-only
// RESOURCE_EXHAUSTED or UNAVAILABLE.
func shed(resp *http.Response, grpc bool) bool {
	if resp.StatusCode == http.StatusTooManyRequests {
		return true
	}
	if !grpc {
		return false
	}
	s := oipgrpc.HeaderStatus(resp)
	return s == oipgrpc.ResourceExhausted || s == oipgrpc.Unavailable
}

// answeredVersion is the version a replica says answered, else the
// pool's.
func answeredVersion(resp *http.Response, pool int64) int64 {
	if v, err := strconv.ParseInt(resp.Header.Get(HeaderModelVersion), 10, 64); err == nil && v > 0 {
		return v
	}
	return pool
}

func (f *Front) relay(w http.ResponseWriter, resp *http.Response) {
	defer func() { _ = resp.Body.Close() }()
	for k, v := range resp.Header {
		w.Header()[k] = v
	}
	w.WriteHeader(resp.StatusCode)
	_, _ = io.Copy(w, resp.Body)
	for k, v := range resp.Trailer { // a gRPC answer's status
		w.Header()[http.TrailerPrefix+k] = v
	}
}

func writeError(w http.ResponseWriter, code int, msg string) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	_ = json.NewEncoder(w).Encode(map[string]string{"error": msg})
}
