package hops_test

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"meridian.dev/meridian/agent/process"
	"meridian.dev/meridian/glb/front"
	"meridian.dev/meridian/internal/testbin"
	"meridian.dev/meridian/internal/tracing"
	"meridian.dev/meridian/internal/tracing/otlptest"
)

// The replica is the real `meridian serve`, built once for this test
// binary, serving the bundled sentiment model through ONNX Runtime.
var meridian string

func TestMain(m *testing.M) { testbin.Main(m, &meridian) }

func quiet() *slog.Logger { return slog.New(slog.DiscardHandler) }

// oneCluster routes every request to the region's front.
type oneCluster struct{ u *url.URL }

func (o oneCluster) Route(*http.Request, string, netip.Addr) []front.Candidate {
	return []front.Candidate{{Cluster: "eu-west", URL: o.u}}
}

// TestOneTraceAcrossThreeHops sends requests through the balancer's front
// to the region's front to a replica, each exporting to a real OTLP
// receiver under its own service name (the balancer and the agent in this
// process, the replica as its own), and checks that a request is one
// trace: glb.front → glb.front.attempt → agent.front → serve.request →
// serve.queue and serve.batch, with the batch's attributes; and that a
// request whose caller did not sample it leaves no span at any hop.
func TestOneTraceAcrossThreeHops(t *testing.T) {
	col := otlptest.Start(t)
	lib := testbin.ORTLibrary(t)
	ctx := context.Background()

	// The replica: tracing configured by the flags the agent passes on.
	replicaTracing := &tracing.Config{Endpoint: col.HTTP, SampleRatio: 1}
	args := append([]string{"--models", testbin.Models(t), "--ort-lib", lib, "--cache-size", "0"}, replicaTracing.ServeArgs()...)
	sup := process.New(process.Options{Binary: meridian, Args: args, Name: "default/sentiment", Logger: quiet()})
	defer sup.Close()

	// The region's front, traced as the agent wraps it (agent/local.go).
	agentTP, err := tracing.NewProvider(ctx, &tracing.Config{Endpoint: col.HTTP, ServiceName: "meridian-agent", SampleRatio: 1})
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = agentTP.Shutdown(ctx) }()
	region, err := process.NewFront("default/sentiment", process.FrontOptions{Logger: quiet(), Wrap: func(h http.Handler) http.Handler {
		return tracing.Handler(agentTP, "agent.front", h)
	}})
	if err != nil {
		t.Fatal(err)
	}
	defer region.Close(time.Second)
	region.SetRoutes(process.Routes{Pools: []process.Pool{{Replicas: sup}}})

	// The balancer's front, over OTLP/gRPC for a change.
	glbTP, err := tracing.NewProvider(ctx, &tracing.Config{Endpoint: col.GRPC, Protocol: tracing.ProtocolGRPC, Insecure: true, ServiceName: "meridian-glb", SampleRatio: 1})
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = glbTP.Shutdown(ctx) }()
	regionURL, _ := url.Parse("http://" + region.Addr())
	f, err := front.New(oneCluster{regionURL}, front.Options{AllowLocalEndpoints: true, Logger: quiet(), TracerProvider: glbTP})
	if err != nil {
		t.Fatal(err)
	}
	glb := httptest.NewServer(f)
	defer glb.Close()

	sup.Scale(1)
	testbin.Eventually(t, "the replica to be ready", 90*time.Second, func() bool {
		for _, r := range sup.Replicas() {
			if r.Ready {
				return true
			}
		}
		return false
	})

	// A request its caller chose not to sample: no hop may record it.
	const unsampled = "4bf92f3577b34da6a3ce929d0e0e4736"
	if code, body := analyze(t, glb.URL, "00-"+unsampled+"-00f067aa0ba902b7-00"); code != http.StatusOK {
		t.Fatalf("unsampled request: %d %s", code, body)
	}
	// Requests at once, so some may share a batch; the first is checked.
	var wg sync.WaitGroup
	for range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if code, body := analyze(t, glb.URL, ""); code != http.StatusOK {
				t.Errorf("traced request: %d %s", code, body)
			}
		}()
	}
	wg.Wait()
	if err := glbTP.ForceFlush(ctx); err != nil {
		t.Fatal(err)
	}
	if err := agentTP.ForceFlush(ctx); err != nil {
		t.Fatal(err)
	}

	var spans []otlptest.Span
	var root otlptest.Span
	testbin.Eventually(t, "one whole trace across the three services", 30*time.Second, func() (bool, string) {
		if spans, err = col.Spans(); err != nil {
			return false, err.Error()
		}
		for _, s := range spans {
			if s.Name != "glb.front" || s.ParentSpanID != "" {
				continue
			}
			got := map[string]bool{}
			for _, c := range spans {
				if c.TraceID == s.TraceID {
					got[c.Service+"/"+c.Name] = true
				}
			}
			if got["meridian-glb/glb.front.attempt"] && got["meridian-agent/agent.front"] && got["meridian-serve/serve.request"] &&
				got["meridian-serve/serve.queue"] && got["meridian-serve/serve.batch"] {
				root = s
				return true, ""
			}
		}
		return false, fmt.Sprintf("%d spans: %s", len(spans), names(spans))
	})

	trace := map[string]otlptest.Span{}
	for _, s := range spans {
		if s.TraceID == root.TraceID {
			if _, dup := trace[s.Name]; dup {
				t.Errorf("two %s spans in one request's trace", s.Name)
			}
			trace[s.Name] = s
		}
		if s.TraceID == unsampled {
			t.Errorf("span %s of %s recorded, though its caller did not sample the request", s.Name, s.Service)
		}
	}
	child := func(name, parent string, kind int) otlptest.Span {
		t.Helper()
		c, p := trace[name], trace[parent]
		if c.ParentSpanID != p.SpanID {
			t.Errorf("%s's parent is span %q, want %s's %q", name, c.ParentSpanID, parent, p.SpanID)
		}
		if c.Kind != kind {
			t.Errorf("%s is of kind %d, want %d", name, c.Kind, kind)
		}
		if c.Start.Before(p.Start) || c.End.After(p.End.Add(time.Millisecond)) && parent != "glb.front.attempt" {
			t.Errorf("%s (%s–%s) is not within %s (%s–%s)", name, c.Start, c.End, parent, p.Start, p.End)
		}
		return c
	}
	const internal, server, client = 1, 2, 3
	if root.Kind != server || root.Service != "meridian-glb" {
		t.Errorf("glb.front: kind %d of %s, want a server span of meridian-glb", root.Kind, root.Service)
	}
	attempt := child("glb.front.attempt", "glb.front", client)
	agentSpan := child("agent.front", "glb.front.attempt", server)
	req := child("serve.request", "agent.front", server)
	queue := child("serve.queue", "serve.request", internal)
	batch := child("serve.batch", "serve.request", internal)

	want := map[string]map[string]any{
		"glb.front":         {"meridian.model": "sentiment", "meridian.cluster": "eu-west", "http.response.status_code": int64(200), "url.path": "/analyze"},
		"glb.front.attempt": {"meridian.cluster": "eu-west", "meridian.attempt": int64(1), "http.response.status_code": int64(200)},
		"agent.front":       {"http.request.method": "POST", "url.path": "/analyze", "http.response.status_code": int64(200)},
		"serve.request":     {"meridian.model": "sentiment", "meridian.model.version": "2", "http.response.status_code": int64(200)},
		"serve.batch":       {"meridian.model": "sentiment", "meridian.request.rows": int64(1)},
	}
	for name, attrs := range want {
		for k, v := range attrs {
			if got := trace[name].Attrs[k]; got != v {
				t.Errorf("%s: %s = %v (%T), want %v", name, k, got, got, v)
			}
		}
	}
	if attempt.Attrs["server.address"] != region.Addr() {
		t.Errorf("glb.front.attempt: server.address %v, want the region's front %s", attempt.Attrs["server.address"], region.Addr())
	}
	if agentSpan.Service != "meridian-agent" || req.Service != "meridian-serve" {
		t.Errorf("services: agent.front of %q, serve.request of %q", agentSpan.Service, req.Service)
	}
	size, _ := batch.Attrs["meridian.batch.size"].(int64)
	n, _ := batch.Attrs["meridian.batch.requests"].(int64)
	if size < 1 || n < 1 || n > size {
		t.Errorf("serve.batch: meridian.batch.size %v, meridian.batch.requests %v: want 1 ≤ requests ≤ size", batch.Attrs["meridian.batch.size"], batch.Attrs["meridian.batch.requests"])
	}
	wait, ok := queue.Attrs["meridian.queue.wait_ms"].(float64)
	if !ok || wait < 0 {
		t.Errorf("serve.queue: meridian.queue.wait_ms %v, want a duration", queue.Attrs["meridian.queue.wait_ms"])
	}
	if got := float64(queue.End.Sub(queue.Start).Microseconds()) / 1000; got-wait > 1 || wait-got > 1 {
		t.Errorf("serve.queue lasts %.3f ms but says it waited %.3f ms", got, wait)
	}
	if !queue.End.After(batch.Start) && !queue.End.Equal(batch.Start) {
		t.Errorf("serve.queue ends at %s, after its batch started at %s", queue.End, batch.Start)
	}
	if _, ok := batch.Attrs["meridian.run_ms"].(float64); !ok {
		t.Errorf("serve.batch: no meridian.run_ms: %v", batch.Attrs)
	}
}

func analyze(t *testing.T, base, traceparent string) (int, string) {
	req, err := http.NewRequest(http.MethodPost, base+"/analyze", strings.NewReader(`{"text":"I love this, it is amazing"}`))
	if err != nil {
		t.Error(err)
		return 0, ""
	}
	if traceparent != "" {
		req.Header.Set("traceparent", traceparent)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Error(err)
		return 0, ""
	}
	defer func() { _ = resp.Body.Close() }()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

func names(spans []otlptest.Span) string {
	var b strings.Builder
	for _, s := range spans {
		fmt.Fprintf(&b, "%s/%s(%s…) ", s.Service, s.Name, s.TraceID[:min(8, len(s.TraceID))])
	}
	return b.String()
}
