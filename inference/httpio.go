package inference

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"sync/atomic"

	"meridian.dev/meridian/internal/httpserve"
)

// statusClientClosed is nginx's code for a client that left; it is only
// ever counted in metrics, never sent.
const statusClientClosed = 499

// requestError is an error whose HTTP status is known.
type requestError struct {
	code int
	err  error
}

func (e *requestError) Error() string { return e.err.Error() }
func (e *requestError) Unwrap() error { return e.err }

func badRequest(err error) error { return &requestError{http.StatusBadRequest, err} }

func statusOf(err error) int {
	var re *requestError
	switch {
	case err == nil:
		return http.StatusOK
	case errors.As(err, &re):
		return re.code
	case errors.Is(err, errQueueFull):
		return http.StatusTooManyRequests
	case errors.Is(err, errStopped):
		return http.StatusServiceUnavailable
	case errors.Is(err, context.DeadlineExceeded):
		return http.StatusGatewayTimeout
	case errors.Is(err, context.Canceled):
		return statusClientClosed
	}
	return http.StatusInternalServerError
}

// firstBodyBuffer is the most readBody allocates before any byte arrives:
// a client announcing 64 MiB and sending nothing costs this much.
const firstBodyBuffer = 64 << 10

// bodyBudget bounds the bytes of request bodies held in memory at once,
// across every request (Options.MaxBufferedBodyBytes): the body limit
// bounds one request, this bounds them all.
type bodyBudget struct {
	max  int64
	held atomic.Int64
}

func (b *bodyBudget) reserve(n int64) bool {
	if b.held.Add(n) > b.max {
		b.held.Add(-n)
		return false
	}
	return true
}

// readBody reads the body as it arrives, at most limit bytes: a larger
// body is a 413, one that does not arrive in time (httpserve's body
// deadline) a 408, and one that would take the server past its budget of
// buffered bodies a 503. Its buffer grows with the bytes received, never
// ahead of them, and up to the announced length at most (no ReadAll
// doubling past it). release returns the body's bytes to the budget; call
// it once the body (which the decoded tensors share) is no longer used.
func (s *Server) readBody(w http.ResponseWriter, r *http.Request) (body []byte, release func(), err error) {
	limit, announced := s.opts.MaxBodyBytes, r.ContentLength
	if announced > limit {
		return nil, func() {}, &requestError{http.StatusRequestEntityTooLarge, fmt.Errorf("body of %d bytes is over the %d-byte limit (--max-body-bytes)", announced, limit)}
	}
	var reserved int64
	release = func() { s.bodies.held.Add(-reserved) }
	src := http.MaxBytesReader(w, r.Body, limit)
	for {
		if announced >= 0 && int64(len(body)) == announced && len(body) == cap(body) {
			// Every announced byte is in: net/http ends the body there,
			// so this read only sees the EOF, without growing the buffer.
			var end [1]byte
			n, err := src.Read(end[:])
			switch {
			case n > 0: // net/http frames bodies by their length; never seen
				release()
				return nil, func() {}, &requestError{http.StatusBadRequest, errors.New("the body is longer than its Content-Length")}
			case errors.Is(err, io.EOF):
				return body, release, nil
			case err != nil:
				return nil, func() {}, s.bodyError(err, len(body), limit, release)
			}
			continue
		}
		if len(body) == cap(body) {
			grow := cap(body) // double, but not past the announced length
			switch rest := announced - int64(len(body)); {
			case cap(body) == 0:
				grow = int(min(max(announced, 512), firstBodyBuffer))
			case announced >= 0 && rest <= 0:
				grow = 512 // every announced byte is in: room to read the end
			case rest > 0 && rest < int64(grow):
				grow = int(rest)
			}
			next := make([]byte, len(body), cap(body)+grow) // exactly: append would round up
			copy(next, body)
			body = next
			if !s.bodies.reserve(int64(cap(body)) - reserved) {
				release()
				return nil, func() {}, &requestError{http.StatusServiceUnavailable, fmt.Errorf("the server holds its limit of %d bytes of request bodies (--max-buffered-body-bytes); retry shortly", s.bodies.max)}
			}
			reserved = int64(cap(body))
		}
		n, err := src.Read(body[len(body):cap(body)])
		body = body[:len(body)+n]
		if errors.Is(err, io.EOF) {
			return body, release, nil
		}
		if err == nil {
			continue
		}
		return nil, func() {}, s.bodyError(err, len(body), limit, release)
	}
}

// bodyError is the request error a failed body read gives, after
// releasing the body's budget.
func (s *Server) bodyError(err error, got int, limit int64, release func()) error {
	release()
	var tooBig *http.MaxBytesError
	switch {
	case errors.As(err, &tooBig):
		return &requestError{http.StatusRequestEntityTooLarge, fmt.Errorf("body is over the %d-byte limit (--max-body-bytes)", limit)}
	case errors.Is(err, httpserve.ErrBodyTimeout):
		return &requestError{http.StatusRequestTimeout, fmt.Errorf("the body did not arrive in time: %d bytes came (--body-timeout, --min-body-rate)", got)}
	}
	return fmt.Errorf("reading body: %w", context.Canceled)
}

func writeJSON(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	_ = json.NewEncoder(w).Encode(v)
}

// writeError writes the protocol's error body, {"error": "..."}.
func writeError(w http.ResponseWriter, code int, msg string) {
	writeJSON(w, code, map[string]string{"error": msg})
}

func writeErr(w http.ResponseWriter, err error) { writeError(w, statusOf(err), err.Error()) }
