package tracing

import (
	"net/http"
	"strings"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/trace"
)

// Attribute keys of Meridian's spans, beside OpenTelemetry's HTTP
// semantic conventions.
const (
	AttrMethod     = attribute.Key("http.request.method")
	AttrPath       = attribute.Key("url.path")
	AttrStatusCode = attribute.Key("http.response.status_code")
	AttrServer     = attribute.Key("server.address")
	AttrURL        = attribute.Key("url.full")

	AttrModel         = attribute.Key("meridian.model")
	AttrModelVersion  = attribute.Key("meridian.model.version")
	AttrCluster       = attribute.Key("meridian.cluster")
	AttrAttempt       = attribute.Key("meridian.attempt")
	AttrRetryReason   = attribute.Key("meridian.retry_reason")
	AttrQueueWaitMS   = attribute.Key("meridian.queue.wait_ms")
	AttrBatchSize     = attribute.Key("meridian.batch.size")
	AttrBatchRequests = attribute.Key("meridian.batch.requests")
	AttrRequestRows   = attribute.Key("meridian.request.rows")
	AttrRunMS         = attribute.Key("meridian.run_ms")
)

// Handler wraps h with a server span named name for every request (tp
// nil: the global provider, see Tracer), continuing the trace the
// request's traceparent names. The request's own traceparent header is
// rewritten to the new span, so a handler that forwards the request's
// headers (a proxy) carries this span to the next hop as its parent.
// Health probes and metrics scrapes (GET /v2/health/..., /metrics) are
// not traced. With tracing off it calls h at once.
func Handler(tp trace.TracerProvider, name string, h http.Handler) http.Handler {
	if tp != nil {
		t := tp.Tracer(Scope)
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { serve(t, name, h, w, r) })
	}
	// The global provider: Setup may come after the handler is built, or
	// shut it down first, so decide per request.
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if t := Tracer(nil); t != nil {
			serve(t, name, h, w, r)
			return
		}
		h.ServeHTTP(w, r)
	})
}

// probe reports whether r is a health probe or a metrics scrape, which
// are never traced: they would bury the requests among themselves.
func probe(r *http.Request) bool {
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		return false
	}
	p := r.URL.Path
	return strings.HasPrefix(p, "/v2/health/") || p == "/metrics" || p == "/healthz" || p == "/readyz" || p == "/livez"
}

func serve(t trace.Tracer, name string, h http.Handler, w http.ResponseWriter, r *http.Request) {
	if probe(r) {
		h.ServeHTTP(w, r)
		return
	}
	ctx, span := t.Start(Extract(r.Context(), r.Header), name,
		trace.WithSpanKind(trace.SpanKindServer),
		trace.WithAttributes(AttrMethod.String(r.Method), AttrPath.String(r.URL.Path)))
	defer span.End()
	r.Header.Del("Traceparent")
	r.Header.Del("Tracestate")
	Inject(ctx, r.Header)
	sw := &statusWriter{ResponseWriter: w}
	h.ServeHTTP(sw, r.WithContext(ctx))
	EndHTTP(span, sw.status())
}

// EndHTTP records an HTTP status code on span, marking it failed on 5xx
// (a 4xx is the client's error, not this server's).
func EndHTTP(span trace.Span, code int) {
	if !span.IsRecording() {
		return
	}
	span.SetAttributes(AttrStatusCode.Int(code))
	if code >= 500 {
		span.SetStatus(codes.Error, http.StatusText(code))
	}
}

// statusWriter remembers the status code written.
type statusWriter struct {
	http.ResponseWriter
	code int
}

func (w *statusWriter) WriteHeader(code int) {
	if w.code == 0 {
		w.code = code
	}
	w.ResponseWriter.WriteHeader(code)
}

func (w *statusWriter) Write(p []byte) (int, error) {
	if w.code == 0 {
		w.code = http.StatusOK
	}
	return w.ResponseWriter.Write(p)
}

func (w *statusWriter) status() int {
	if w.code == 0 {
		return http.StatusOK
	}
	return w.code
}

// Unwrap lets http.ResponseController reach the writer's Flush and
// deadlines.
func (w *statusWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }
