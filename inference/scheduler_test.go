package inference

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"meridian.dev/meridian/internal/testbin"
)

// hold makes the model version's workers wait before each run until the
// returned release is called; started receives one value per waiting run.
func hold(s *testServer, model string) (started chan struct{}, release func()) {
	gate := make(chan struct{})
	started = make(chan struct{}, 16)
	s.models[model].latest.beforeRun = func() {
		started <- struct{}{}
		<-gate
	}
	var once sync.Once
	return started, func() { once.Do(func() { close(gate) }) }
}

func TestConcurrentRequestsShareOneBatch(t *testing.T) {
	repo := newRepo(t, repoModel{
		name:     "sentiment",
		versions: map[int64][]byte{1: readFile(t, bundled(t, "sentiment"))},
		config: `max_batch_size: 16
pad_inputs: [tokens]
text: {tokenizer: words, input: tokens, output: p_pos, score: score}
`,
	})
	s := start(t, Options{ModelRepository: repo})
	started, release := hold(s, "sentiment")
	defer release()

	// The first request occupies the worker; the next eight, of different
	// lengths, queue behind it and must come back as one padded batch.
	texts := []string{"good", "bad", "i love it so much", "awful awful", "the weather", "not good at all", "amazing", "kind of fun"}
	want := map[string]string{"good": Positive, "bad": Negative, "i love it so much": Positive, "awful awful": Negative,
		"the weather": Neutral, "not good at all": Negative, "amazing": Positive, "kind of fun": Positive}
	var wg sync.WaitGroup
	answer := func(text string) {
		defer wg.Done()
		code, a := analyze(t, s.url, fmt.Sprintf(`{"text":%q}`, text))
		if code != 200 || a.Label != want[text] {
			t.Errorf("%q: %d %+v, want %s", text, code, a, want[text])
		}
	}
	want["first"] = Neutral
	wg.Add(1)
	go answer("first")
	<-started
	for _, text := range texts {
		wg.Add(1)
		go answer(text)
	}
	testbin.Eventually(t, "eight queued requests", 5*time.Second, func() bool { return len(s.models["sentiment"].latest.queue) == len(texts) })
	release()
	wg.Wait()

	batches := map[string]string{"model": "sentiment"}
	count, sum := testbin.Metric(t, s.reg, "meridian_inference_batch_size", batches), testbin.HistogramSum(t, s.reg, "meridian_inference_batch_size", batches)
	if count != 2 || sum != 9 {
		t.Fatalf("want 2 batches (1 row, then 8 rows), got %v batches of %v rows in all", count, sum)
	}
}

func TestMaxQueueDelayWaitsForMore(t *testing.T) {
	repo := newRepo(t, repoModel{
		name:     "scale",
		versions: map[int64][]byte{1: scaleModel(t, 2)},
		config:   "max_batch_size: 4\nmax_queue_delay: 800ms\n",
	})
	s := start(t, Options{ModelRepository: repo})
	// Two requests sent together to an idle model: the worker takes the
	// first and waits up to 800ms for more instead of running it alone.
	var wg sync.WaitGroup
	for x := range 2 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			code, text, _ := post(t, s.url+"/v2/models/scale/infer", fmt.Sprintf(`{"inputs":[{"name":"x","datatype":"FP32","shape":[1,1],"data":[%d]}]}`, x+1))
			if code != 200 || !strings.Contains(text, fmt.Sprintf(`"data":[%d]`, 2*(x+1))) {
				t.Errorf("x=%d: %d %s", x+1, code, text)
			}
		}()
	}
	wg.Wait()
	if count, sum := testbin.Metric(t, s.reg, "meridian_inference_batch_size", map[string]string{"model": "scale"}), testbin.HistogramSum(t, s.reg, "meridian_inference_batch_size", map[string]string{"model": "scale"}); count != 1 || sum != 2 {
		t.Fatalf("want one batch of 2 rows, got %v batches of %v rows", count, sum)
	}
}

func TestFullQueueSheds429AndReadinessDrops(t *testing.T) {
	repo := newRepo(t, repoModel{
		name:     "scale",
		versions: map[int64][]byte{1: scaleModel(t, 2)},
		config:   "max_batch_size: 4\nqueue_size: 1\n",
	})
	s := start(t, Options{ModelRepository: repo})
	started, release := hold(s, "scale")
	defer release()
	body := `{"inputs":[{"name":"x","datatype":"FP32","shape":[1,1],"data":[21]}]}`
	url := s.url + "/v2/models/scale/infer"

	results := make(chan string, 2)
	send := func() {
		code, text, _ := post(t, url, body)
		results <- fmt.Sprint(code, " ", text)
	}
	go send() // runs, held
	<-started
	go send() // fills the one queue slot
	testbin.Eventually(t, "a queued request", 5*time.Second, func() bool { return len(s.models["scale"].latest.queue) == 1 })

	if code, text := get(t, s.url+"/v2/health/ready"); code != http.StatusServiceUnavailable || !strings.Contains(text, `"ready":false`) {
		t.Errorf("readiness with a full queue: %d %s", code, text)
	}
	if code, _ := get(t, s.url+"/v2/models/scale/ready"); code != http.StatusServiceUnavailable {
		t.Errorf("model readiness with a full queue: %d", code)
	}
	code, text, h := post(t, url, body)
	if code != http.StatusTooManyRequests || h.Get("Retry-After") == "" || !strings.Contains(text, "queue is full") {
		t.Fatalf("third request: %d %q Retry-After=%q, want 429 with Retry-After", code, text, h.Get("Retry-After"))
	}
	release()
	for range 2 {
		if r := <-results; !strings.HasPrefix(r, "200 ") || !strings.Contains(r, `"data":[42]`) {
			t.Errorf("admitted request: %s", r)
		}
	}
	if code, _ := get(t, s.url+"/v2/health/ready"); code != http.StatusOK {
		t.Errorf("readiness after the queue drained: %d", code)
	}
	if n := testbin.Metric(t, s.reg, "meridian_inference_requests_total", map[string]string{"code": "429"}); n != 1 {
		t.Errorf("requests_total{code=429} = %v, want 1", n)
	}
}

func TestExpiredRequestsNeverReachTheModel(t *testing.T) {
	repo := newRepo(t, repoModel{name: "scale", versions: map[int64][]byte{1: scaleModel(t, 2)}, config: "max_batch_size: 4\n"})
	s := start(t, Options{ModelRepository: repo})
	started, release := hold(s, "scale")
	defer release()
	url := s.url + "/v2/models/scale/infer"

	first := make(chan int, 1)
	go func() {
		code, _, _ := post(t, url, `{"inputs":[{"name":"x","datatype":"FP32","shape":[1,1],"data":[1]}]}`)
		first <- code
	}()
	<-started
	// 20ms deadline (the "timeout" parameter is in microseconds) while the
	// worker is busy: the client gets 504 and the model never sees it.
	code, text, _ := post(t, url, `{"parameters":{"timeout":20000},"inputs":[{"name":"x","datatype":"FP32","shape":[1,1],"data":[2]}]}`)
	if code != http.StatusGatewayTimeout || !strings.Contains(text, "deadline") {
		t.Fatalf("expired request: %d %s, want 504", code, text)
	}
	// A client that gives up (disconnects) is dropped the same way.
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Millisecond)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, http.MethodPost, url, strings.NewReader(`{"inputs":[{"name":"x","datatype":"FP32","shape":[1,1],"data":[3]}]}`))
	if resp, err := http.DefaultClient.Do(req); err == nil {
		_ = resp.Body.Close()
		t.Fatalf("client that gave up got a response: %d", resp.StatusCode)
	}
	testbin.Eventually(t, "the server to see the client leave", 5*time.Second, func() bool {
		n, _ := testbin.MetricIfAny(t, s.reg, "meridian_inference_requests_total", map[string]string{"code": "499"})
		return n == 1
	})
	release()
	if c := <-first; c != 200 {
		t.Fatalf("held request: %d", c)
	}
	testbin.Eventually(t, "two expired requests", 5*time.Second, func() bool {
		n, _ := testbin.MetricIfAny(t, s.reg, "meridian_inference_expired_total", map[string]string{"model": "scale"})
		return n == 2
	})
	if n := testbin.Metric(t, s.reg, "meridian_inference_batch_size", map[string]string{"model": "scale"}); n != 1 {
		t.Errorf("model ran %v batches, want only the first request's", n)
	}
	code, text, _ = post(t, url, `{"inputs":[{"name":"x","datatype":"FP32","shape":[1,1],"data":[4]}]}`)
	if code != 200 || !strings.Contains(text, `"data":[8]`) {
		t.Fatalf("server after expiries: %d %s", code, text)
	}
}

func TestCacheHitsAndNoStaleAnswerAcrossVersions(t *testing.T) {
	repo := newRepo(t, repoModel{
		name:     "scale",
		versions: map[int64][]byte{1: scaleModel(t, 2), 2: scaleModel(t, 3)},
		config:   "max_batch_size: 4\n",
	})
	s := start(t, Options{ModelRepository: repo, CacheSize: 100, CacheTTL: time.Minute})
	ask := func(path string, x int) string {
		_, text, _ := post(t, s.url+path, fmt.Sprintf(`{"inputs":[{"name":"x","datatype":"FP32","shape":[1,1],"data":[%d]}]}`, x))
		return text
	}
	labels := func(v string) map[string]string { return map[string]string{"model": "scale", "version": v} }
	for i := range 3 {
		if got := ask("/v2/models/scale/versions/1/infer", 5); !strings.Contains(got, `"data":[10]`) {
			t.Fatalf("v1 try %d: %s", i, got)
		}
	}
	if h, m := testbin.Metric(t, s.reg, "meridian_inference_cache_hits_total", labels("1")), testbin.Metric(t, s.reg, "meridian_inference_cache_misses_total", labels("1")); h != 2 || m != 1 {
		t.Fatalf("v1: hits %v misses %v, want 2 and 1", h, m)
	}
	// Same input, other version (and the default, newest): never v1's answer.
	if got := ask("/v2/models/scale/versions/2/infer", 5); !strings.Contains(got, `"data":[15]`) {
		t.Fatalf("v2 served %s", got)
	}
	if got := ask("/v2/models/scale/infer", 5); !strings.Contains(got, `"data":[15]`) || !strings.Contains(got, `"model_version":"2"`) {
		t.Fatalf("default version served %s", got)
	}
	if got := ask("/v2/models/scale/infer", 6); !strings.Contains(got, `"data":[18]`) {
		t.Fatalf("new input served %s", got)
	}
	if h, m := testbin.Metric(t, s.reg, "meridian_inference_cache_hits_total", labels("2")), testbin.Metric(t, s.reg, "meridian_inference_cache_misses_total", labels("2")); h != 1 || m != 2 {
		t.Fatalf("v2: hits %v misses %v, want 1 and 2", h, m)
	}
}

func TestCacheKeyCoversModelFileAndInput(t *testing.T) {
	in := func(name string, shape []int64, raw string) []*Tensor {
		return []*Tensor{{Name: name, Datatype: UINT8, Shape: shape, Raw: []byte(raw)}}
	}
	base := cacheKey("digest-a", in("x", []int64{2}, "ab"))
	for name, other := range map[string][32]byte{
		"model file": cacheKey("digest-b", in("x", []int64{2}, "ab")),
		"input name": cacheKey("digest-a", in("y", []int64{2}, "ab")),
		"shape":      cacheKey("digest-a", in("x", []int64{1, 2}, "ab")),
		"data":       cacheKey("digest-a", in("x", []int64{2}, "ac")),
		"strings":    cacheKey("digest-a", []*Tensor{{Name: "x", Datatype: BYTES, Shape: []int64{2}, Strings: []string{"a", "b"}}}),
	} {
		if other == base {
			t.Errorf("changing the %s did not change the key", name)
		}
	}
	if cacheKey("digest-a", in("x", []int64{2}, "ab")) != base {
		t.Error("the same request gave two keys")
	}
	split := cacheKey("d", []*Tensor{{Name: "x", Datatype: BYTES, Shape: []int64{2}, Strings: []string{"ab", ""}}})
	if split == cacheKey("d", []*Tensor{{Name: "x", Datatype: BYTES, Shape: []int64{2}, Strings: []string{"a", "b"}}}) {
		t.Error("string boundaries are not part of the key")
	}
}

func TestGracefulShutdownDrainsInFlight(t *testing.T) {
	repo := newRepo(t, repoModel{name: "scale", versions: map[int64][]byte{1: scaleModel(t, 2)}, config: "max_batch_size: 4\n"})
	s := start(t, Options{ModelRepository: repo})
	started, release := hold(s, "scale")
	defer release()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	url := "http://" + ln.Addr().String()
	ctx, stop := context.WithCancel(context.Background())
	served := make(chan error, 1)
	go func() { served <- s.Serve(ctx, ln, 10*time.Second) }()

	answer := make(chan string, 1)
	go func() {
		code, text, _ := post(t, url+"/v2/models/scale/infer", `{"inputs":[{"name":"x","datatype":"FP32","shape":[1,1],"data":[4]}]}`)
		answer <- fmt.Sprint(code, " ", text)
	}()
	<-started
	stop() // SIGTERM: readiness goes false, in-flight work continues
	testbin.Eventually(t, "readiness off", 5*time.Second, func() bool { return !s.Ready() })
	release()
	if a := <-answer; !strings.HasPrefix(a, "200 ") || !strings.Contains(a, `"data":[8]`) {
		t.Fatalf("in-flight request during shutdown: %s", a)
	}
	if err := <-served; err != nil {
		t.Fatalf("Serve: %v", err)
	}
	if err := s.models["scale"].latest.submit(&job{done: make(chan jobResult, 1)}); !errors.Is(err, errStopped) {
		t.Fatalf("submit after shutdown: %v, want errStopped", err)
	}
}

func TestCUDARequestFailsClearlyWithoutCUDA(t *testing.T) {
	needRuntime(t)
	repo := newRepo(t, repoModel{name: "scale", versions: map[int64][]byte{1: scaleModel(t, 2)}})
	srv, err := New(Options{ModelRepository: repo, Device: CUDA})
	if err == nil {
		// A machine with CUDA: the model must then say it runs there.
		defer srv.Close()
		if d := srv.models["scale"].latest.sess.device; d != CUDA {
			t.Fatalf("device = %s", d)
		}
		return
	}
	if !strings.Contains(err.Error(), "CUDA execution provider is not available") || !strings.Contains(err.Error(), "--device cpu") {
		t.Fatalf("unclear error: %v", err)
	}
	if _, err := New(Options{ModelRepository: repo, Device: "tpu"}); err == nil || !strings.Contains(err.Error(), "use cpu or cuda") {
		t.Fatalf("unknown device: %v", err)
	}
}
