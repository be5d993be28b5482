package inference

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"slices"

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

// readBody reads the body as it arrives, at most limit bytes: a larger
// body is a 413, one that does not arrive in time (httpserve's body
// deadline) a 408. Its buffer grows with the bytes received, never ahead
// of them, and up to the announced length at most (no ReadAll doubling
// past it).
func readBody(w http.ResponseWriter, r *http.Request, limit int64) ([]byte, error) {
	announced := r.ContentLength
	if announced > limit {
		return nil, &requestError{http.StatusRequestEntityTooLarge, fmt.Errorf("body of %d bytes is over the %d-byte limit (--max-body-bytes)", announced, limit)}
	}
	body := make([]byte, 0, min(max(announced, 512), firstBodyBuffer))
	src := http.MaxBytesReader(w, r.Body, limit)
	for {
		if len(body) == cap(body) {
			grow := cap(body) // double, but not past the announced length
			if rest := announced - int64(len(body)); rest > 0 && rest < int64(grow) {
				grow = int(rest)
			}
			body = slices.Grow(body, max(grow, 512))
		}
		n, err := src.Read(body[len(body):cap(body)])
		body = body[:len(body)+n]
		if errors.Is(err, io.EOF) {
			return body, nil
		}
		var tooBig *http.MaxBytesError
		switch {
		case err == nil:
		case errors.As(err, &tooBig):
			return nil, &requestError{http.StatusRequestEntityTooLarge, fmt.Errorf("body is over the %d-byte limit (--max-body-bytes)", limit)}
		case errors.Is(err, httpserve.ErrBodyTimeout):
			return nil, &requestError{http.StatusRequestTimeout, fmt.Errorf("the body did not arrive in time: %d bytes came (--body-timeout, --min-body-rate)", len(body))}
		default:
			return nil, fmt.Errorf("reading body: %w", context.Canceled)
		}
	}
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
