package httpserve

import (
	"errors"
	"io"
	"net"
	"net/http"
	"os"
	"sync/atomic"
	"time"
)

// ErrBodyTimeout is what reading a request body returns, wrapped, once its
// deadline (BodyTimeout, extended by MinBodyRate) passed. Answer it 408.
var ErrBodyTimeout = errors.New("the request body did not arrive in time")

// limits is the server's handler and connection hook: it enforces
// MaxConns, MaxInFlight and the body deadline around the caller's handler.
type limits struct {
	opts    Options
	next    http.Handler
	metrics *metrics
	sem     chan struct{} // nil: no in-flight cap
	conns   atomic.Int64
}

// connState counts open connections and closes one over MaxConns at once.
// A connection closed here still reaches StateClosed, which uncounts it.
func (l *limits) connState(c net.Conn, st http.ConnState) {
	switch st {
	case http.StateNew:
		n := l.conns.Add(1)
		l.metrics.conns.Inc()
		if l.opts.MaxConns > 0 && n > int64(l.opts.MaxConns) {
			l.metrics.rejected("connections")
			_ = c.Close()
		}
	case http.StateClosed, http.StateHijacked:
		l.conns.Add(-1)
		l.metrics.conns.Dec()
	}
	if l.opts.ConnState != nil {
		l.opts.ConnState(c, st)
	}
}

func (l *limits) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	// The body deadline goes first: even a refused request's body is
	// read (discarded) by net/http after the reply.
	if r.Body != nil && r.Body != http.NoBody && l.opts.BodyTimeout > 0 {
		r.Body = l.newBody(w, r.Body)
	}
	if l.sem != nil {
		select {
		case l.sem <- struct{}{}:
			defer func() { <-l.sem }()
		default:
			l.metrics.rejected("inflight")
			w.Header().Set("Retry-After", "1")
			l.opts.Refuse(w, http.StatusServiceUnavailable, "the server is at its limit of requests in flight; retry shortly")
			return
		}
	}
	l.metrics.inflight.Inc()
	defer l.metrics.inflight.Dec()
	l.next.ServeHTTP(w, r)
}

// body reads a request body under its deadline: BodyTimeout from the
// headers, plus a second per MinBodyRate bytes received. At its end or
// its timeout it restarts WriteTimeout, so the answer (a 408 included)
// has its whole time.
type body struct {
	l        *limits
	w        http.ResponseWriter
	rc       *http.ResponseController
	r        io.ReadCloser
	deadline time.Time
	done     bool
}

func (l *limits) newBody(w http.ResponseWriter, r io.ReadCloser) io.ReadCloser {
	b := &body{l: l, w: w, rc: http.NewResponseController(w), r: r,
		deadline: time.Now().Add(l.opts.BodyTimeout)}
	if err := b.rc.SetReadDeadline(b.deadline); err != nil {
		return r // a writer without deadlines (a test's recorder): nothing to enforce
	}
	return b
}

func (b *body) Read(p []byte) (int, error) {
	n, err := b.r.Read(p)
	if b.done {
		return n, err
	}
	switch {
	case errors.Is(err, io.EOF):
		// net/http lifts the read deadline itself at the end of the body,
		// to watch for the client leaving while the handler works.
		b.done = true
		b.restartWrite()
	case err != nil && isTimeout(err):
		// The read deadline stays passed: net/http's discard of the rest
		// of the body fails at once and the connection closes.
		b.done = true
		b.restartWrite()
		b.l.metrics.rejected("body_timeout")
		b.w.Header().Set("Connection", "close")
		return n, errors.Join(ErrBodyTimeout, err)
	case err == nil && n > 0 && b.l.opts.MinBodyRate > 0:
		b.deadline = b.deadline.Add(time.Duration(n) * time.Second / time.Duration(b.l.opts.MinBodyRate))
		_ = b.rc.SetReadDeadline(b.deadline)
	}
	return n, err
}

func (b *body) restartWrite() {
	if d := b.l.opts.WriteTimeout; d > 0 {
		_ = b.rc.SetWriteDeadline(time.Now().Add(d))
	}
}

func (b *body) Close() error { return b.r.Close() }

func isTimeout(err error) bool {
	var ne net.Error
	return errors.Is(err, os.ErrDeadlineExceeded) || (errors.As(err, &ne) && ne.Timeout())
}
