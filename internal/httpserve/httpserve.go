package httpserve

import (
	"context"
	"errors"
	"fmt"
	"log"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"meridian.dev/meridian/internal/framing"
)

// The production defaults, which a zero Options field takes.
const (
	DefaultReadHeaderTimeout = 10 * time.Second
	DefaultBodyTimeout       = 10 * time.Second
	DefaultMinBodyRate       = 16 << 10 // bytes per second
	DefaultWriteTimeout      = 30 * time.Second
	DefaultIdleTimeout       = 120 * time.Second
	DefaultMaxHeaderBytes    = 64 << 10
	DefaultMaxConns          = 10000
	DefaultMaxInFlight       = 1024
)

// Options configure a hardened server. Every limit's zero value takes its
// Default; a negative value turns the limit off (only for tests and for
// servers that never face an untrusted client).
type Options struct {
	// Name labels the server's metrics (server="...") and logs: a fixed
	// word per kind of listener, such as "inference" or "agent-front".
	Name string

	// ReadHeaderTimeout bounds reading the request line and headers, from
	// the first byte of the request (and, with TLS, the handshake).
	// Default 10s.
	ReadHeaderTimeout time.Duration
	// BodyTimeout is how long after its headers a request's body may take
	// to arrive, before MinBodyRate extends it. Default 10s.
	BodyTimeout time.Duration
	// MinBodyRate, in bytes per second, extends BodyTimeout by a second
	// for each MinBodyRate bytes of body received: a client uploading at
	// least this fast is never cut off (the handler's own size limit ends
	// it). Default 16 KiB/s; negative: BodyTimeout is a fixed deadline.
	MinBodyRate int64
	// WriteTimeout bounds writing the answer, counted from the end of the
	// headers and again from the end of the body; it must exceed the
	// longest a handler takes. Default 30s.
	WriteTimeout time.Duration
	// IdleTimeout closes a keep-alive connection idle this long.
	// Default 120s.
	IdleTimeout time.Duration
	// MaxHeaderBytes caps the request line and headers; larger requests
	// get 431. Default 64 KiB.
	MaxHeaderBytes int
	// MaxConns caps the connections open at once; one over the cap is
	// closed as soon as it is accepted. Default 10000.
	MaxConns int
	// MaxInFlight caps the requests inside the handler at once; one over
	// the cap is refused 503 with Retry-After: 1. Default 1024.
	MaxInFlight int

	// Refuse writes a refusal (the 503 over MaxInFlight) in the caller's
	// error shape; default http.Error's plain text.
	Refuse func(w http.ResponseWriter, code int, msg string)
	// ConnState, when set, is called after the server's own connection
	// accounting, as http.Server.ConnState is.
	ConnState func(net.Conn, http.ConnState)
	// Registerer receives the meridian_http_* series; nil keeps them
	// unexported.
	Registerer prometheus.Registerer
	// Logger receives net/http's own errors (accept failures at warn, TLS
	// handshake failures at debug); default slog.Default().
	Logger *slog.Logger
}

func (o *Options) setDefaults() {
	def := func(d *time.Duration, v time.Duration) {
		if *d == 0 {
			*d = v
		}
	}
	def(&o.ReadHeaderTimeout, DefaultReadHeaderTimeout)
	def(&o.BodyTimeout, DefaultBodyTimeout)
	def(&o.WriteTimeout, DefaultWriteTimeout)
	def(&o.IdleTimeout, DefaultIdleTimeout)
	if o.MinBodyRate == 0 {
		o.MinBodyRate = DefaultMinBodyRate
	}
	if o.MaxHeaderBytes == 0 {
		o.MaxHeaderBytes = DefaultMaxHeaderBytes
	}
	if o.MaxConns == 0 {
		o.MaxConns = DefaultMaxConns
	}
	if o.MaxInFlight == 0 {
		o.MaxInFlight = DefaultMaxInFlight
	}
	if o.Name == "" {
		o.Name = "http"
	}
	if o.Refuse == nil {
		o.Refuse = func(w http.ResponseWriter, code int, msg string) { http.Error(w, msg, code) }
	}
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
}

// off maps a negative (turned off) limit to net/http's "none", 0.
func off[T time.Duration | int](v T) T { return max(v, 0) }

// New returns a server for h with every limit of opts set. Serve it with
// Serve, or with its own Serve/ServeTLS: the limits live in the server,
// so they hold on every listener it serves together.
//
// The server speaks HTTP/1.1 and HTTP/2: over TLS as ALPN agrees, and in
// the clear with prior knowledge (h2c), which is how gRPC clients and
// the fronts' gRPC proxying connect. MaxInFlight bounds requests, not
// connections, so an HTTP/2 connection's streams count one by one.
func New(h http.Handler, opts Options) (*http.Server, error) {
	opts.setDefaults()
	m, err := newMetrics(opts.Registerer, opts.Name)
	if err != nil {
		return nil, err
	}
	l := &limits{opts: opts, next: h, metrics: m}
	if opts.MaxInFlight > 0 {
		l.sem = make(chan struct{}, opts.MaxInFlight)
	}
	protocols := new(http.Protocols)
	protocols.SetHTTP1(true)
	protocols.SetHTTP2(true)
	protocols.SetUnencryptedHTTP2(true)
	return &http.Server{
		Protocols:         protocols,
		Handler:           l,
		ReadHeaderTimeout: off(opts.ReadHeaderTimeout),
		WriteTimeout:      off(opts.WriteTimeout),
		IdleTimeout:       off(opts.IdleTimeout),
		MaxHeaderBytes:    max(opts.MaxHeaderBytes, 0),
		ConnState:         l.connState,
		ErrorLog:          log.New(errorLog{opts.Logger.With("server", opts.Name)}, "", 0),
	}, nil
}

// Listener wraps ln for a hardened server: a plain-HTTP request whose
// framing is ambiguous (Content-Length with Transfer-Encoding: request
// smuggling), which net/http would accept, is refused 400 before any
// handler sees it (internal/framing). Serve wraps its listener so;
// callers serving srv themselves wrap theirs with it.
func Listener(ln net.Listener) net.Listener { return framing.Listener(ln) }

// Serve serves srv on ln (wrapped with Listener) until ctx ends, then
// stops accepting and waits up to drain for the requests in flight
// (closing what is left after it). It returns nil after a drain that
// finished in time. With srv.TLSConfig set it serves HTTPS only (HTTP/2
// and HTTP/1.1 by ALPN), the certificate coming from the config.
func Serve(ctx context.Context, srv *http.Server, ln net.Listener, drain time.Duration) error {
	errc := make(chan error, 1)
	go func() { errc <- ServeOnce(srv, ln) }()
	select {
	case err := <-errc:
		return fmt.Errorf("serving HTTP on %s: %w", ln.Addr(), err)
	case <-ctx.Done():
	}
	sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), drain)
	defer cancel()
	err := srv.Shutdown(sctx)
	if err != nil {
		_ = srv.Close()
		return fmt.Errorf("draining HTTP on %s within %s: %w", ln.Addr(), drain, err)
	}
	if err := <-errc; !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	return nil
}

// ServeOnce serves srv on ln (wrapped with Listener) until srv is shut
// down, over TLS when srv.TLSConfig is set; the caller stops it.
func ServeOnce(srv *http.Server, ln net.Listener) error {
	if srv.TLSConfig != nil {
		return srv.ServeTLS(Listener(ln), "", "")
	}
	return srv.Serve(Listener(ln))
}

// errorLog sends net/http's log lines to slog: a failed TLS handshake (any
// scanner causes one) at debug, anything else (accept failures, a
// panicking handler) at warn.
type errorLog struct{ log *slog.Logger }

func (e errorLog) Write(p []byte) (int, error) {
	msg := strings.TrimSpace(string(p))
	level := slog.LevelWarn
	if strings.Contains(msg, "TLS handshake error") {
		level = slog.LevelDebug
	}
	e.log.Log(context.Background(), level, "http server", "err", msg)
	return len(p), nil
}
