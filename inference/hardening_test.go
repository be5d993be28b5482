package inference

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"meridian.dev/meridian/internal/httpserve"
	"meridian.dev/meridian/internal/testbin"
)

// serveHardened runs the server as `meridian serve` does, through Serve
// and its hardened listener, on a loopback port until the test ends.
func serveHardened(t *testing.T, opts Options) *testServer {
	t.Helper()
	needRuntime(t)
	opts.Registry = prometheus.NewRegistry()
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	srv, err := New(opts)
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		srv.Close()
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- srv.Serve(ctx, ln, 5*time.Second) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Serve: %v", err)
		}
	})
	return &testServer{Server: srv, url: "http://" + ln.Addr().String(), reg: opts.Registry}
}

func (s *testServer) httpMetric(t *testing.T, name string, labels map[string]string) float64 {
	t.Helper()
	l := map[string]string{"server": "inference"}
	for k, v := range labels {
		l[k] = v
	}
	v, _ := testbin.MetricIfAny(t, s.reg, name, l)
	return v
}

// rawConn dials the server with a deadline no limit under test comes near.
func rawConn(t *testing.T, url string) net.Conn {
	t.Helper()
	c, err := net.Dial("tcp", strings.TrimPrefix(url, "http://"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.Close() })
	_ = c.SetDeadline(time.Now().Add(30 * time.Second))
	return c
}

// A hundred clients announcing 64 MiB bodies and sending nothing cost the
// server almost nothing: it allocates what arrives, not what is announced
// (which would be 6.4 GB here).
func TestStalledBodiesCostNothing(t *testing.T) {
	s := serveHardened(t, Options{ModelRepository: testbin.Models(t)})
	const clients, announced = 100, 64 << 20
	var before runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	for range clients {
		c := rawConn(t, s.url)
		fmt.Fprintf(c, "POST /v2/models/sentiment/infer HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n{", announced)
	}
	testbin.Eventually(t, "every stalled request inside the handler, reading its body", 20*time.Second, func() (bool, string) {
		n := s.httpMetric(t, "meridian_http_inflight_requests", nil)
		return n == clients, fmt.Sprintf("%v in flight", n)
	})
	var after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&after)
	const bound = 32 << 20 // each request's first buffer is 64 KiB: 6.4 MB in all, plus connections
	if grew := int64(after.HeapAlloc) - int64(before.HeapAlloc); grew > bound {
		t.Fatalf("the heap grew by %d MiB for %d stalled bodies announcing %d MiB each; want under %d MiB",
			grew>>20, clients, announced>>20, bound>>20)
	}
	if code, a := analyze(t, s.url, `{"text":"good"}`); code != 200 || a.Label != Positive {
		t.Fatalf("a normal request beside the stalled ones: %d %+v", code, a)
	}
}

// The bodies held across requests are bounded as a whole: one that would
// take the server past its budget is refused 503 with Retry-After, and
// served once the budget frees.
func TestBufferedBodiesHaveABudget(t *testing.T) {
	s := serveHardened(t, Options{ModelRepository: testbin.Models(t), MaxBodyBytes: 1 << 20, MaxBufferedBodyBytes: 1 << 20})
	held := func() float64 { return testbin.Metric(t, s.reg, "meridian_inference_buffered_body_bytes", nil) }
	stalled := rawConn(t, s.url)
	fmt.Fprintf(stalled, "POST /analyze HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n\r\n%s", 900<<10, strings.Repeat(" ", 700<<10))
	testbin.Eventually(t, "the stalled body's 900 KiB held", 20*time.Second, func() (bool, string) {
		return held() == 900<<10, fmt.Sprintf("%v bytes held", held())
	})
	body := `{"text":"good` + strings.Repeat(" ", 200<<10) + `"}`
	code, text, header := post(t, s.url+"/analyze", body)
	if code != 503 || header.Get("Retry-After") != "1" || !strings.Contains(text, "--max-buffered-body-bytes") {
		t.Fatalf("a body past the budget: %d Retry-After %q %s", code, header.Get("Retry-After"), text)
	}
	_ = stalled.Close()
	testbin.Eventually(t, "the budget freed", 20*time.Second, func() bool { return held() == 0 })
	if code, text, _ := post(t, s.url+"/analyze", body); code != 200 || !strings.Contains(text, Positive) {
		t.Fatalf("the same body once the budget freed: %d %s", code, text)
	}
}

// A body that stops arriving is answered 408 in the protocol's error
// shape, and its connection closed.
func TestBodyTimeoutAnswers408(t *testing.T) {
	s := serveHardened(t, Options{ModelRepository: testbin.Models(t),
		HTTP: httpserve.Options{BodyTimeout: 200 * time.Millisecond, MinBodyRate: -1}})
	c := rawConn(t, s.url)
	_, _ = io.WriteString(c, "POST /analyze HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n{\"text\":")
	b, err := io.ReadAll(c)
	if err != nil {
		t.Fatalf("the server did not close the connection: %v; read %q", err, b)
	}
	got := string(b)
	if !strings.HasPrefix(got, "HTTP/1.1 408 ") || !strings.Contains(got, `{"error":"the body did not arrive in time: 8 bytes came`) {
		t.Fatalf("answer %q, want 408 with the protocol's error", got)
	}
	if n := s.httpMetric(t, "meridian_http_rejected_total", map[string]string{"reason": "body_timeout"}); n != 1 {
		t.Errorf("body_timeout rejections: %v", n)
	}
}

// An input over a limit is refused 413 before it is queued; one that is
// merely wrong is 400; both in the protocol's error shape.
func TestInputLimits(t *testing.T) {
	repo := newRepo(t, repoModel{name: "scale", versions: map[int64][]byte{1: scaleModel(t, 2)}, config: `max_batch_size: 64
limits: {max_request_elements: 32}
`})
	s := start(t, Options{ModelRepository: repo, Limits: InputLimits{MaxDim: 40, MaxRequestBytes: 100, MaxBatchBytes: 1000}})
	infer := func(rows int) string {
		data := strings.TrimSuffix(strings.Repeat("1,", rows), ",")
		return fmt.Sprintf(`{"inputs":[{"name":"x","datatype":"FP32","shape":[%d,1],"data":[%s]}]}`, rows, data)
	}
	for _, c := range []struct {
		name, body string
		code       int
		want       string
	}{
		{"within every limit", infer(20), 200, `"data":[2,`},
		{"a dimension over max_dim", infer(41), 413, "dimension 0 is 41, over the model's limit of 40 (max_dim)"},
		{"elements over the model's own limit", infer(33), 413, "33 elements, over the model's limit of 32 per request (max_request_elements)"},
		{"ill-typed", `{"inputs":[{"name":"x","datatype":"INT8","shape":[1,1],"data":[1]}]}`, 400, `input \"x\" must be FP32, got INT8`},
	} {
		code, body, _ := post(t, s.url+"/v2/models/scale/infer", c.body)
		if code != c.code || !strings.Contains(body, c.want) || !strings.HasPrefix(body, `{"error":`) && code != 200 {
			t.Errorf("%s: %d %s, want %d with %q", c.name, code, body, c.code, c.want)
		}
	}
	// 26 FP32 elements are 104 bytes, over the server's max_request_bytes.
	if code, body, _ := post(t, s.url+"/v2/models/scale/infer", infer(26)); code != 413 || !strings.Contains(body, "104 bytes, over the model's limit of 100 per request (max_request_bytes)") {
		t.Errorf("bytes over the limit: %d %s", code, body)
	}
}

func TestInputLimitsMustLetARequestRun(t *testing.T) {
	needRuntime(t)
	repo := newRepo(t, repoModel{name: "scale", versions: map[int64][]byte{1: scaleModel(t, 2)}, config: "limits: {max_batch_bytes: 10}\n"})
	_, err := New(Options{ModelRepository: repo, Registry: prometheus.NewRegistry(), Logger: slog.New(slog.DiscardHandler)})
	if err == nil || !strings.Contains(err.Error(), "max_batch_bytes 10 is below max_request_bytes") {
		t.Fatalf("New: %v, want the batch limit below the request limit refused", err)
	}
}

// One long padded row queued with short ones would pad every row of their
// batch to its length; over the batch limit it runs alone instead, and
// the short ones batch together.
func TestPaddedBatchStaysWithinItsLimits(t *testing.T) {
	repo := newRepo(t, repoModel{
		name:     "sentiment",
		versions: map[int64][]byte{1: readFile(t, bundled(t, "sentiment"))},
		config: `max_batch_size: 64
pad_inputs: [tokens]
limits: {max_dim: 1000, max_request_elements: 1000, max_batch_elements: 1500}
text: {tokenizer: words, input: tokens, output: p_pos, score: score}
`,
	})
	s := start(t, Options{ModelRepository: repo})
	started, release := hold(s, "sentiment")
	defer release()
	var wg sync.WaitGroup
	send := func(text string) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if code, a := analyze(t, s.url, fmt.Sprintf(`{"text":%q}`, text)); code != 200 {
				t.Errorf("%.20q: %d %+v", text, code, a)
			}
		}()
	}
	send("first") // occupies the worker
	<-started
	queue := s.models["sentiment"].latest.queue
	send(strings.Repeat("good ", 1000)) // 1000 tokens: 2 rows padded to it would be 2000 elements
	testbin.Eventually(t, "the long request queued", 5*time.Second, func() bool { return len(queue) == 1 })
	for i := range 4 {
		send("bad day")
		testbin.Eventually(t, "a short request queued", 5*time.Second, func() bool { return len(queue) == 2+i })
	}
	release()
	wg.Wait()
	batches := map[string]string{"model": "sentiment"}
	count, rows := testbin.Metric(t, s.reg, "meridian_inference_batch_size", batches), testbin.HistogramSum(t, s.reg, "meridian_inference_batch_size", batches)
	if count != 3 || rows != 6 {
		t.Fatalf("%v batches of %v rows in all; want 3 (the first, the long one alone, the four short ones)", count, rows)
	}
}

// A batch that panics fails its own requests with 500; the model serves
// the next one.
func TestPanickingBatchFailsOnlyItself(t *testing.T) {
	s := startBundled(t)
	v := s.models["sentiment"].latest
	var once sync.Once
	v.beforeRun = func() { once.Do(func() { panic("injected") }) }
	code, text, _ := post(t, s.url+"/analyze", `{"text":"good"}`)
	if code != 500 || !strings.Contains(text, "failed on this batch") {
		t.Fatalf("the panicking batch: %d %s, want 500", code, text)
	}
	if code, a := analyze(t, s.url, `{"text":"good"}`); code != 200 || a.Label != Positive {
		t.Fatalf("the next request: %d %+v", code, a)
	}
	if n := testbin.Metric(t, s.reg, "meridian_inference_batch_panics_total", map[string]string{"model": "sentiment"}); n != 1 {
		t.Errorf("panics counted: %v", n)
	}
}

// A batch's load counts padding up to its longest row and never indexes
// past a shape, a scalar's included.
func TestBatchLoad(t *testing.T) {
	lim := InputLimits{MaxBatchElements: 8, MaxBatchBytes: 1 << 20}
	job := func(shapes ...[]int64) *job {
		j := &job{}
		for _, s := range shapes {
			j.inputs = append(j.inputs, &Tensor{Datatype: FP32, Shape: s})
		}
		j.rows = j.inputs[0].rows()
		return j
	}
	short, long := job([]int64{1, 2}), job([]int64{1, 4})
	l := load{}.with(short).with(short)
	if !l.fits(short, lim) { // 2 rows of 2
		t.Error("4 elements do not fit 8")
	}
	if l = l.with(long); l.fits(long, lim) { // 3 rows padded to 4: 12
		t.Errorf("3 rows padded to 4 fit a limit of 8: %+v", l)
	}
	scalar := job([]int64{})
	if l := (load{}).with(scalar).with(scalar); !l.fits(scalar, lim) {
		t.Errorf("scalars: %+v", l)
	}
}
