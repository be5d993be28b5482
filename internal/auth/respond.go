package auth

import (
	"encoding/json"
	"net/http"
	"strconv"
	"strings"

	"meridian.dev/meridian/internal/oipgrpc"
)

// realm is the realm of every challenge.
const realm = "meridian"

// RFC 6750 error codes.
const (
	errInvalidRequest    = "invalid_request"
	errInvalidToken      = "invalid_token"
	errInsufficientScope = "insufficient_scope"
)

// unauthorized answers 401 with a Bearer challenge; code is an RFC 6750
// error code, "" when the request carried no credential at all (RFC 6750
// §3.1: then the challenge names no error).
func (a *Authenticator) unauthorized(w http.ResponseWriter, r *http.Request, code, desc string) {
	w.Header().Set("WWW-Authenticate", challenge(code, desc))
	a.deny(w, r, resultUnauthenticated, tenantLabelNone, http.StatusUnauthorized, desc)
}

// forbidden answers 403 for a tenant that may not do what it asks.
func (a *Authenticator) forbidden(w http.ResponseWriter, r *http.Request, label, desc string) {
	w.Header().Set("WWW-Authenticate", challenge(errInsufficientScope, desc))
	a.deny(w, r, resultForbidden, label, http.StatusForbidden, desc)
}

// tooMany answers 429 with Retry-After in whole seconds.
func (a *Authenticator) tooMany(w http.ResponseWriter, r *http.Request, label string, ref *refusal) {
	w.Header().Set("Retry-After", strconv.Itoa(retryAfterSeconds(ref.retryAfter)))
	desc := "tenant over its request rate"
	if ref.result == resultConcurrencyLimited {
		desc = "tenant over its concurrent requests"
	}
	a.deny(w, r, ref.result, label, http.StatusTooManyRequests, desc)
}

func (a *Authenticator) deny(w http.ResponseWriter, r *http.Request, result, label string, code int, desc string) {
	a.m.requests.WithLabelValues(result, label).Inc()
	a.log.Debug("refused", "result", result, "tenant", label, "method", r.Method, "path", r.URL.Path, "reason", desc)
	if oipgrpc.IsCall(r) { // a gRPC client reads the status and message from grpc-status
		oipgrpc.WriteError(w, code, desc)
		return
	}
	writeError(w, code, desc)
}

// writeError writes the Open Inference Protocol's error body,
// {"error": "..."}, as the model server does.
func writeError(w http.ResponseWriter, code int, msg string) {
	body, _ := json.Marshal(map[string]string{"error": msg})
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Content-Length", strconv.Itoa(len(body)))
	w.WriteHeader(code)
	_, _ = w.Write(body)
}

func challenge(code, desc string) string {
	c := `Bearer realm="` + realm + `"`
	if code == "" {
		return c
	}
	clean := strings.Map(func(r rune) rune {
		if r == '"' || r == '\\' || r < ' ' || r > '~' {
			return -1
		}
		return r
	}, desc)
	return c + `, error="` + code + `", error_description="` + clean + `"`
}
