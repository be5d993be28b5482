package tracing_test

import (
	"bytes"
	"context"
	"encoding/json"
	"log/slog"
	"testing"

	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/trace"
	"go.opentelemetry.io/otel/trace/noop"

	"meridian.dev/meridian/internal/tracing"
)

// A line logged through LogHandler with the context of a span carries that
// span's trace_id and span_id, a line of a child span the child's, and a
// line logged outside any span (no context, a context without a span, a
// no-op tracer's span) neither.
func TestLogHandlerStampsTheSpansIDs(t *testing.T) {
	var buf bytes.Buffer
	log := slog.New(tracing.LogHandler(slog.NewJSONHandler(&buf, nil))).With("component", "test")
	line := func() map[string]any {
		t.Helper()
		var m map[string]any
		if err := json.Unmarshal(buf.Bytes(), &m); err != nil {
			t.Fatalf("log line %q: %v", buf.String(), err)
		}
		buf.Reset()
		if m["component"] != "test" {
			t.Errorf("line %v lost the logger's attributes", m)
		}
		return m
	}
	tp := sdktrace.NewTracerProvider(sdktrace.WithSampler(sdktrace.AlwaysSample()))
	t.Cleanup(func() { _ = tp.Shutdown(context.Background()) })
	tracer := tp.Tracer("test")

	ctx, parent := tracer.Start(context.Background(), "parent")
	log.InfoContext(ctx, "in the parent")
	m := line()
	if want := parent.SpanContext().TraceID().String(); m["trace_id"] != want {
		t.Errorf("trace_id %v, want the span's %s", m["trace_id"], want)
	}
	if want := parent.SpanContext().SpanID().String(); m["span_id"] != want {
		t.Errorf("span_id %v, want the span's %s", m["span_id"], want)
	}

	cctx, child := tracer.Start(ctx, "child")
	log.WarnContext(cctx, "in the child")
	m = line()
	if m["trace_id"] != parent.SpanContext().TraceID().String() || m["span_id"] != child.SpanContext().SpanID().String() {
		t.Errorf("child's line %v: want the trace %s and the child's span %s", m, parent.SpanContext().TraceID(), child.SpanContext().SpanID())
	}
	child.End()
	parent.End()

	_, nop := noop.NewTracerProvider().Tracer("test").Start(context.Background(), "noop")
	nopCtx := trace.ContextWithSpan(context.Background(), nop)
	for name, logIt := range map[string]func(){
		"no context":            func() { log.Info("outside") },
		"a context, no span":    func() { log.InfoContext(context.Background(), "outside") },
		"a no-op tracer's span": func() { log.InfoContext(nopCtx, "outside") },
	} {
		logIt()
		m := line()
		if _, ok := m["trace_id"]; ok {
			t.Errorf("%s: trace_id %v on a line outside a span", name, m["trace_id"])
		}
		if _, ok := m["span_id"]; ok {
			t.Errorf("%s: span_id %v on a line outside a span", name, m["span_id"])
		}
	}
}
