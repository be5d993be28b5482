package activator

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"meridian.dev/meridian/internal/testbin"
)

// replica is a real HTTP server that stands in for a model's pod: its
// readiness endpoint answers 503 until ready is set, as `meridian serve`
// does while it loads its models.
type replica struct {
	srv      *httptest.Server
	ready    atomic.Bool
	requests atomic.Int64
}

func newReplica(t *testing.T) *replica {
	r := &replica{}
	r.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		if req.URL.Path == DefaultReadyPath {
			if !r.ready.Load() {
				http.Error(w, "loading", http.StatusServiceUnavailable)
			}
			return
		}
		r.requests.Add(1)
		body, _ := io.ReadAll(req.Body)
		_, _ = io.WriteString(w, "answer to "+string(body))
	}))
	t.Cleanup(r.srv.Close)
	return r
}

func (r *replica) addr() string { return strings.TrimPrefix(r.srv.URL, "http://") }

func newActivator(t *testing.T, o Options) (*Activator, *prometheus.Registry) {
	t.Helper()
	reg := prometheus.NewRegistry()
	o.Host = netip.MustParseAddr("127.0.0.1") // the unit tests reach it on loopback
	o.Registry = reg
	a, err := New(o)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(a.Close)
	return a, reg
}

func post(t *testing.T, at netip.AddrPort, body string) (int, http.Header, string) {
	t.Helper()
	resp, err := http.Post("http://"+at.String()+"/analyze", "text/plain", strings.NewReader(body))
	if err != nil {
		t.Errorf("POST to the activator: %v", err)
		return 0, nil, ""
	}
	defer func() { _ = resp.Body.Close() }()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, resp.Header, string(b)
}

// A request to a model at zero is held, a replica is asked for at once,
// and the request is answered by the replica once its own readiness
// endpoint says ready — before Kubernetes would count it ready.
func TestHeldRequestIsAnsweredOnceAReplicaIsReady(t *testing.T) {
	rep := newReplica(t)
	a, reg := newActivator(t, Options{})
	var activations atomic.Int32
	var mu sync.Mutex
	var pods []Backend // no pod until a replica is asked for
	addr, err := a.Register("default", "sentiment", Target{
		Activate: func(context.Context) error {
			activations.Add(1)
			mu.Lock()
			pods = []Backend{{Addr: rep.addr()}} // scheduled, loading, not ready
			mu.Unlock()
			return nil
		},
		Backends: func(context.Context) ([]Backend, error) {
			mu.Lock()
			defer mu.Unlock()
			return append([]Backend(nil), pods...), nil
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	type result struct {
		code int
		hdr  http.Header
		body string
	}
	done := make(chan result, 1)
	sent := time.Now()
	go func() {
		c, h, b := post(t, addr, "hello")
		done <- result{c, h, b}
	}()
	testbin.Eventually(t, "the request to be held and a replica asked for", 20*time.Second, func() bool {
		return a.Held("default", "sentiment") == 1 && activations.Load() == 1
	})
	if got := testutil.ToFloat64(a.metrics.heldRequests.WithLabelValues("default", "sentiment")); got != 1 {
		t.Errorf("meridian_agent_activator_held_requests = %v, want 1", got)
	}
	time.Sleep(300 * time.Millisecond) // the replica is still loading
	select {
	case r := <-done:
		t.Fatalf("answered before any replica was ready: %d %s", r.code, r.body)
	default:
	}
	rep.ready.Store(true)
	r := <-done
	if r.code != http.StatusOK || r.body != "answer to hello" {
		t.Fatalf("held request: %d %q; want the replica's answer", r.code, r.body)
	}
	if r.hdr.Get("X-Meridian-Activator-Held") == "" {
		t.Errorf("a held request carries no X-Meridian-Activator-Held header")
	}
	t.Logf("held %s, answered %s after it was sent", r.hdr.Get("X-Meridian-Activator-Held"), time.Since(sent).Round(time.Millisecond))
	if n := activations.Load(); n != 1 {
		t.Errorf("Activate called %d times, want once", n)
	}
	if a.Held("default", "sentiment") != 0 {
		t.Errorf("still holding %d requests", a.Held("default", "sentiment"))
	}
	if got := testutil.ToFloat64(a.metrics.coldStarts.WithLabelValues("default", "sentiment")); got != 1 {
		t.Errorf("meridian_agent_activator_cold_starts_total = %v, want 1", got)
	}
	if n := testutil.CollectAndCount(reg, "meridian_agent_activator_cold_start_seconds"); n != 1 {
		t.Errorf("cold_start_seconds series: %d, want 1", n)
	}

	// The replica now counts: the next request goes straight to it.
	if code, hdr, body := post(t, addr, "again"); code != http.StatusOK || body != "answer to again" || hdr.Get("X-Meridian-Activator-Held") != "" {
		t.Errorf("request to a warm model: %d %q held=%q; want it proxied without holding", code, body, hdr.Get("X-Meridian-Activator-Held"))
	}
	if n := activations.Load(); n != 1 {
		t.Errorf("a warm model was activated again (%d)", n)
	}
	if got := a.LastRequest("default", "sentiment"); time.Since(got) > 10*time.Second {
		t.Errorf("LastRequest = %v", got)
	}
}

// A ready replica is used at once: no hold, no activation.
func TestReadyReplicaIsProxiedWithoutHolding(t *testing.T) {
	rep := newReplica(t)
	a, _ := newActivator(t, Options{})
	var activations atomic.Int32
	addr, err := a.Register("default", "m", Target{
		Activate: func(context.Context) error { activations.Add(1); return nil },
		Backends: func(context.Context) ([]Backend, error) { return []Backend{{Addr: rep.addr(), Ready: true}}, nil },
	})
	if err != nil {
		t.Fatal(err)
	}
	for i := range 5 {
		if code, _, body := post(t, addr, "x"); code != http.StatusOK || body != "answer to x" {
			t.Fatalf("request %d: %d %q", i, code, body)
		}
	}
	if activations.Load() != 0 || rep.requests.Load() != 5 {
		t.Errorf("activations %d, replica requests %d; want 0 and 5", activations.Load(), rep.requests.Load())
	}
}

// Holding is bounded: beyond QueueLimit a request is refused at once, and
// a held request is refused after HoldTimeout when no replica turns ready,
// both 503 with Retry-After and a message that says which limit it was.
func TestHeldRequestsAreBounded(t *testing.T) {
	rep := newReplica(t) // never ready
	a, _ := newActivator(t, Options{QueueLimit: 2, HoldTimeout: 1500 * time.Millisecond, RetryAfter: 3 * time.Second})
	var activations atomic.Int32
	addr, err := a.Register("ns", "slow", Target{
		Activate: func(context.Context) error { activations.Add(1); return nil },
		Backends: func(context.Context) ([]Backend, error) { return []Backend{{Addr: rep.addr()}}, nil },
	})
	if err != nil {
		t.Fatal(err)
	}
	type result struct {
		code  int
		retry string
		body  string
		took  time.Duration
	}
	results := make(chan result, 2)
	for range 2 {
		go func() {
			start := time.Now()
			c, h, b := post(t, addr, "x")
			results <- result{c, h.Get("Retry-After"), b, time.Since(start)}
		}()
	}
	testbin.Eventually(t, "two held requests", 20*time.Second, func() bool { return a.Held("ns", "slow") == 2 })

	start := time.Now()
	code, hdr, body := post(t, addr, "third")
	if code != http.StatusServiceUnavailable || hdr.Get("Retry-After") != "3" || !strings.Contains(body, "already holds 2 requests") {
		t.Errorf("request beyond the queue limit: %d Retry-After=%q %s; want 503, Retry-After 3 and the limit named", code, hdr.Get("Retry-After"), body)
	}
	if took := time.Since(start); took > time.Second {
		t.Errorf("the request beyond the limit waited %s; it should be refused at once", took)
	}
	for range 2 {
		r := <-results
		if r.code != http.StatusServiceUnavailable || r.retry != "3" || !strings.Contains(r.body, "none became ready within 1.5s") {
			t.Errorf("held request with no ready replica: %d Retry-After=%q %s; want 503 after the hold timeout", r.code, r.retry, r.body)
		}
		if r.took < 1400*time.Millisecond {
			t.Errorf("held request refused after %s, before the 1.5s hold timeout", r.took)
		}
	}
	if got := testutil.ToFloat64(a.metrics.rejectedReqs.WithLabelValues("ns", "slow", "queue_full")); got != 1 {
		t.Errorf("rejected{queue_full} = %v, want 1", got)
	}
	if got := testutil.ToFloat64(a.metrics.rejectedReqs.WithLabelValues("ns", "slow", "timeout")); got != 2 {
		t.Errorf("rejected{timeout} = %v, want 2", got)
	}
	if rep.requests.Load() != 0 {
		t.Errorf("a replica that never turned ready got %d requests", rep.requests.Load())
	}
	if activations.Load() != 1 {
		t.Errorf("Activate called %d times for one cold start, want 1", activations.Load())
	}
	testbin.Eventually(t, "the held count back at 0", 20*time.Second, func() bool { return a.Held("ns", "slow") == 0 })

	// A later request starts a new cold start; this time the replica turns
	// ready and answers it.
	rep.ready.Store(true)
	if code, _, body := post(t, addr, "late"); code != http.StatusOK || body != "answer to late" {
		t.Errorf("after the replica turned ready: %d %q", code, body)
	}
}

// Activate failing is retried while requests are held.
func TestActivateIsRetried(t *testing.T) {
	rep := newReplica(t)
	rep.ready.Store(true)
	a, _ := newActivator(t, Options{})
	var calls atomic.Int32
	var up atomic.Bool
	addr, err := a.Register("ns", "m", Target{
		Activate: func(context.Context) error {
			if calls.Add(1) < 3 {
				return io.ErrUnexpectedEOF // e.g. the API server is briefly unreachable
			}
			up.Store(true)
			return nil
		},
		Backends: func(context.Context) ([]Backend, error) {
			if !up.Load() {
				return nil, nil
			}
			return []Backend{{Addr: rep.addr()}}, nil
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	if code, _, body := post(t, addr, "x"); code != http.StatusOK || body != "answer to x" {
		t.Fatalf("%d %q", code, body)
	}
	if calls.Load() != 3 {
		t.Errorf("Activate called %d times, want 3 (two failures, then success)", calls.Load())
	}
}

// Unregistering a model answers what it holds and closes its listener.
func TestUnregisterReleasesHeldRequests(t *testing.T) {
	a, _ := newActivator(t, Options{})
	addr, err := a.Register("ns", "gone", Target{
		Activate: func(context.Context) error { return nil },
		Backends: func(context.Context) ([]Backend, error) { return nil, nil },
	})
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan int, 1)
	go func() { c, _, _ := post(t, addr, "x"); done <- c }()
	testbin.Eventually(t, "a held request", 20*time.Second, func() bool { return a.Held("ns", "gone") == 1 })
	a.Unregister("ns", "gone")
	select {
	case c := <-done:
		if c != http.StatusServiceUnavailable {
			t.Errorf("held request of an unregistered model: %d, want 503", c)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("a held request outlived its model")
	}
	if resp, err := http.Get("http://" + addr.String() + "/"); err == nil {
		_ = resp.Body.Close()
		t.Errorf("the listener of an unregistered model still accepts")
	}
}

// probe sends a health probe to the activator.
func probe(t *testing.T, method string, at netip.AddrPort, path string) (int, http.Header, string) {
	t.Helper()
	req, err := http.NewRequest(method, "http://"+at.String()+path, nil)
	if err != nil {
		t.Fatal(err)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, path, err)
	}
	defer func() { _ = resp.Body.Close() }()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, resp.Header, string(b)
}

// A global balancer's health probes of a model at zero are answered by the
// activator itself — reachable, scaled to zero — without asking for a
// replica or counting as a request, so they neither wake the model nor
// keep it awake; a real request still wakes it, and once a replica is
// ready the probes reach the replica.
func TestHealthProbesDoNotWakeAModelAtZero(t *testing.T) {
	rep := newReplica(t)
	a, _ := newActivator(t, Options{})
	var activations atomic.Int32
	var mu sync.Mutex
	var pods []Backend // at zero: no pod
	addr, err := a.Register("default", "sentiment", Target{
		Activate: func(context.Context) error {
			activations.Add(1)
			mu.Lock()
			pods = []Backend{{Addr: rep.addr()}}
			mu.Unlock()
			return nil
		},
		Backends: func(context.Context) ([]Backend, error) {
			mu.Lock()
			defer mu.Unlock()
			return append([]Backend(nil), pods...), nil
		},
	})
	if err != nil {
		t.Fatal(err)
	}

	for range 3 {
		for _, method := range []string{http.MethodGet, http.MethodHead} {
			for _, path := range []string{DefaultReadyPath, LivePath} {
				code, hdr, body := probe(t, method, addr, path)
				if code != http.StatusOK || hdr.Get(ScaledToZeroHeader) != "true" {
					t.Errorf("%s %s at zero: %d %s=%q; want 200 and %s: true", method, path, code, ScaledToZeroHeader, hdr.Get(ScaledToZeroHeader), ScaledToZeroHeader)
				}
				if method == http.MethodGet && (!strings.Contains(body, `"scaledToZero":true`) || !strings.Contains(body, "holds each request until a replica is ready")) {
					t.Errorf("%s %s at zero: body %q does not say the model is scaled to zero and requests are held", method, path, body)
				}
			}
		}
	}
	time.Sleep(3 * DefaultProbeInterval) // a cold start would have asked for a replica by now
	if n := activations.Load(); n != 0 {
		t.Errorf("health probes asked for a replica %d times, want none", n)
	}
	if got := a.LastRequest("default", "sentiment"); !got.IsZero() {
		t.Errorf("health probes set LastRequest to %v; they must not keep the model awake", got)
	}
	if n := a.Held("default", "sentiment"); n != 0 {
		t.Errorf("health probes are held: %d", n)
	}
	if got := testutil.ToFloat64(a.metrics.coldStarts.WithLabelValues("default", "sentiment")); got != 0 {
		t.Errorf("cold_starts_total = %v after health probes only, want 0", got)
	}

	// Real traffic still wakes it.
	done := make(chan string, 1)
	go func() { _, _, b := post(t, addr, "hello"); done <- b }()
	testbin.Eventually(t, "the request to be held and a replica asked for", 20*time.Second, func() bool { return activations.Load() == 1 && a.Held("default", "sentiment") == 1 })
	woken := a.LastRequest("default", "sentiment")
	if woken.IsZero() {
		t.Error("a real request did not set LastRequest")
	}
	// While it starts, probes still get the activator's answer.
	if code, hdr, _ := probe(t, http.MethodGet, addr, DefaultReadyPath); code != http.StatusOK || hdr.Get(ScaledToZeroHeader) != "true" {
		t.Errorf("probe during a cold start: %d %s=%q", code, ScaledToZeroHeader, hdr.Get(ScaledToZeroHeader))
	}
	rep.ready.Store(true)
	if b := <-done; b != "answer to hello" {
		t.Fatalf("held request answered %q", b)
	}

	// A ready replica answers the probes itself; they still do not count.
	mu.Lock()
	pods[0].Ready = true
	mu.Unlock()
	if code, hdr, _ := probe(t, http.MethodGet, addr, DefaultReadyPath); code != http.StatusOK || hdr.Get(ScaledToZeroHeader) != "" {
		t.Errorf("probe with a ready replica: %d %s=%q; want the replica's 200", code, ScaledToZeroHeader, hdr.Get(ScaledToZeroHeader))
	}
	if got := a.LastRequest("default", "sentiment"); !got.Equal(woken) {
		t.Errorf("a probe proxied to the replica moved LastRequest from %v to %v", woken, got)
	}
	if n := activations.Load(); n != 1 {
		t.Errorf("Activate called %d times, want once (for the real request)", n)
	}
}
