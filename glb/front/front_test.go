package front_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"meridian.dev/meridian/glb/front"
	"meridian.dev/meridian/inference"
	"meridian.dev/meridian/internal/testbin"
)

// cluster is one member cluster in a test: a real HTTP server on loopback
// that answers like an OIP server, naming itself.
type cluster struct {
	name   string
	srv    *httptest.Server
	url    *url.URL
	hits   atomic.Int64
	status atomic.Int64 // answer with this status instead, when not 0
	hold   func(r *http.Request)
}

// newCluster starts a cluster's server, set up by configure first (a
// started server's settings must not change while it serves).
func newCluster(t *testing.T, name string, configure ...func(*http.Server)) *cluster {
	t.Helper()
	c := &cluster{name: name}
	c.srv = httptest.NewUnstartedServer(http.HandlerFunc(c.serve))
	for _, f := range configure {
		f(c.srv.Config)
	}
	c.srv.Start()
	t.Cleanup(c.kill)
	c.url, _ = url.Parse(c.srv.URL)
	return c
}

func (c *cluster) serve(w http.ResponseWriter, r *http.Request) {
	c.hits.Add(1)
	body, _ := io.ReadAll(r.Body)
	if c.hold != nil {
		c.hold(r)
	}
	if code := int(c.status.Load()); code != 0 {
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(code)
		fmt.Fprintf(w, `{"error":"%s says %d"}`, c.name, code)
		return
	}
	if hl := r.Header.Get(inference.HeaderLength); hl != "" { // binary extension: echo it all
		w.Header().Set(inference.HeaderLength, hl)
		w.Header().Set("Content-Type", "application/octet-stream")
		_, _ = w.Write(body)
		return
	}
	model := strings.TrimPrefix(r.URL.Path, "/v2/models/")
	model, _, _ = strings.Cut(model, "/")
	w.Header().Set("Content-Type", "application/json")
	fmt.Fprintf(w, `{"model_name":%q,"id":%q,"outputs":[{"name":"cluster","datatype":"BYTES","shape":[1],"data":[%q]}]}`, model, c.name, c.name)
}

// kill shuts the cluster's listener and drops its connections, as a
// dying cluster does.
func (c *cluster) kill() {
	c.srv.CloseClientConnections()
	c.srv.Close()
}

// fleetRouter is a small real Router: each model is served by some
// clusters, and a client whose address lies in a region's prefix prefers
// that region's cluster (tier 0) over the rest (tier 1). Clients of no
// known prefix get every cluster in tier 0.
type fleetRouter struct {
	models map[string][]*cluster
	near   map[netip.Prefix]string
}

func (fr *fleetRouter) Route(_ *http.Request, model string, client netip.Addr) []front.Candidate {
	home := ""
	for p, name := range fr.near {
		if p.Contains(client) {
			home = name
		}
	}
	var cands []front.Candidate
	for _, c := range fr.models[model] {
		tier := 0
		if home != "" && c.name != home {
			tier = 1
		}
		cands = append(cands, front.Candidate{Cluster: c.name, URL: c.url, Tier: tier})
	}
	// Best tier first, as a Router returns them.
	var sorted []front.Candidate
	for tier := 0; tier <= 1; tier++ {
		for _, c := range cands {
			if c.Tier == tier {
				sorted = append(sorted, c)
			}
		}
	}
	return sorted
}

// tiered routes model to clusters in the given order, each in its own
// tier, so the first is always preferred.
type tiered []*cluster

func (ts tiered) Route(*http.Request, string, netip.Addr) []front.Candidate {
	var cands []front.Candidate
	for i, c := range ts {
		cands = append(cands, front.Candidate{Cluster: c.name, URL: c.url, Tier: i})
	}
	return cands
}

// flat routes to every cluster in one tier.
type flat []*cluster

func (fs flat) Route(*http.Request, string, netip.Addr) []front.Candidate {
	var cands []front.Candidate
	for _, c := range fs {
		cands = append(cands, front.Candidate{Cluster: c.name, URL: c.url})
	}
	return cands
}

type clock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *clock) Now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.now }
func (c *clock) Advance(d time.Duration) {
	c.mu.Lock()
	c.now = c.now.Add(d)
	c.mu.Unlock()
}

// serveFront starts f on loopback and returns its base URL.
func serveFront(t *testing.T, router front.Router, opts front.Options) (string, *prometheus.Registry) {
	t.Helper()
	reg := prometheus.NewRegistry()
	opts.Registerer = reg
	opts.AllowLocalEndpoints = true // the clusters are on loopback
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	f, err := front.New(router, opts)
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(f)
	t.Cleanup(srv.Close)
	return srv.URL, reg
}

var client = &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 64}, Timeout: 30 * time.Second}

type answer struct {
	code    int
	cluster string
	body    string
	header  http.Header
}

func do(t *testing.T, method, u string, body []byte, header map[string]string) answer {
	t.Helper()
	req, err := http.NewRequest(method, u, bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	for k, v := range header {
		req.Header.Set(k, v)
	}
	resp, err := client.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, u, err)
	}
	defer func() { _ = resp.Body.Close() }()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("%s %s: reading body: %v", method, u, err)
	}
	return answer{code: resp.StatusCode, cluster: resp.Header.Get(front.ClusterHeader), body: string(b), header: resp.Header}
}

const inferBody = `{"inputs":[{"name":"text","shape":[1],"datatype":"BYTES","data":["what a day"]}]}`

func infer(t *testing.T, base string, header map[string]string) answer {
	t.Helper()
	return do(t, http.MethodPost, base+"/v2/models/sentiment/infer", []byte(inferBody), header)
}

func TestRoutesByModelAndClient(t *testing.T) {
	t.Parallel()
	eu, us := newCluster(t, "eu-west"), newCluster(t, "us-east")
	router := &fleetRouter{
		models: map[string][]*cluster{"sentiment": {us, eu}, "toxicity": {us}},
		near: map[netip.Prefix]string{
			netip.MustParsePrefix("10.1.0.0/16"): "eu-west",
			netip.MustParsePrefix("10.2.0.0/16"): "us-east",
		},
	}
	trusting, _ := serveFront(t, router, front.Options{ForwardedFor: front.ForwardedFor{TrustedHops: 1}})
	plain, _ := serveFront(t, router, front.Options{})

	cases := []struct {
		name, base, method, path, xff string
		wantCode                      int
		wantCluster                   string
	}{
		{"european client", trusting, "POST", "/v2/models/sentiment/infer", "10.1.2.3", 200, "eu-west"},
		{"american client", trusting, "POST", "/v2/models/sentiment/infer", "10.2.2.3", 200, "us-east"},
		{"spoofed left end ignored", trusting, "POST", "/v2/models/sentiment/infer", "10.2.2.3, 10.1.0.1", 200, "eu-west"},
		{"analyze is sentiment", trusting, "POST", "/analyze", "10.1.9.9", 200, "eu-west"},
		{"model with versions", trusting, "POST", "/v2/models/sentiment/versions/1/infer", "10.1.9.9", 200, "eu-west"},
		{"metadata", trusting, "GET", "/v2/models/sentiment", "10.1.9.9", 200, "eu-west"},
		{"model only in one cluster", trusting, "POST", "/v2/models/toxicity/infer", "10.1.2.3", 200, "us-east"},
		{"forwarded-for not trusted", plain, "POST", "/v2/models/sentiment/infer", "10.1.2.3", 200, "us-east"},
		{"unknown model", trusting, "POST", "/v2/models/nope/infer", "10.1.2.3", 503, ""},
		{"no model in path", trusting, "GET", "/v2/health/ready", "10.1.2.3", 404, ""},
	}
	for _, tc := range cases {
		a := do(t, tc.method, tc.base+tc.path, []byte(inferBody), map[string]string{"X-Forwarded-For": tc.xff})
		if a.code != tc.wantCode || a.cluster != tc.wantCluster {
			t.Errorf("%s: got %d from %q (%s), want %d from %q", tc.name, a.code, a.cluster, a.body, tc.wantCode, tc.wantCluster)
		}
		if a.code == 200 && !strings.Contains(a.body, tc.wantCluster) {
			t.Errorf("%s: body %s does not come from %s", tc.name, a.body, tc.wantCluster)
		}
		if a.code >= 400 {
			var e struct{ Error string }
			if err := json.Unmarshal([]byte(a.body), &e); err != nil || e.Error == "" {
				t.Errorf("%s: error body %q is not {\"error\": ...}", tc.name, a.body)
			}
		}
	}
}

func TestNoRequestLostWhenClusterDies(t *testing.T) {
	t.Parallel()
	a, b, c := newCluster(t, "a"), newCluster(t, "b"), newCluster(t, "c")
	base, reg := serveFront(t, flat{a, b, c}, front.Options{})

	const total, workers = 2000, 8
	var next, completed atomic.Int64
	var failed atomic.Int64
	var once sync.Once
	var wg sync.WaitGroup
	errs := make(chan string, total)
	for range workers {
		wg.Go(func() {
			for next.Add(1) <= total {
				req, _ := http.NewRequest(http.MethodPost, base+"/v2/models/sentiment/infer", strings.NewReader(inferBody))
				resp, err := client.Do(req)
				if err != nil {
					failed.Add(1)
					errs <- err.Error()
					continue
				}
				body, err := io.ReadAll(resp.Body)
				_ = resp.Body.Close()
				if err != nil || resp.StatusCode != 200 || !strings.Contains(string(body), "model_name") {
					failed.Add(1)
					errs <- fmt.Sprintf("%d %s %v", resp.StatusCode, body, err)
				}
				if completed.Add(1) == total/2 {
					once.Do(c.kill)
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	if n := failed.Load(); n != 0 {
		t.Errorf("%d of %d requests failed while a cluster died; first: %s", n, total, <-errs)
	}
	if got := testbin.Metric(t, reg, "meridian_glb_http_requests_total", map[string]string{"code": "200"}); got != total {
		t.Errorf("requests_total{code=200} = %v, want %d", got, total)
	}
	if c.hits.Load() == 0 {
		t.Errorf("cluster c got no traffic before it died; the test proves nothing")
	}
	if got := testbin.Metric(t, reg, "meridian_glb_http_ejections_total", map[string]string{"cluster": "c"}); got < 1 {
		t.Errorf("the dead cluster was not ejected (ejections %v)", got)
	}
	for _, name := range []string{"a", "b", "c"} {
		if got := testbin.Metric(t, reg, "meridian_glb_http_outstanding", map[string]string{"cluster": name}); got != 0 {
			t.Errorf("outstanding{cluster=%s} = %v after the load, want 0", name, got)
		}
	}
}

func TestRetriesAtNextClusterOnRetryableStatus(t *testing.T) {
	t.Parallel()
	for _, code := range []int{429, 502, 503, 504} {
		t.Run(fmt.Sprint(code), func(t *testing.T) {
			t.Parallel()
			bad, good := newCluster(t, "bad"), newCluster(t, "good")
			bad.status.Store(int64(code))
			base, reg := serveFront(t, tiered{bad, good}, front.Options{})
			a := infer(t, base, nil)
			if a.code != 200 || a.cluster != "good" {
				t.Fatalf("got %d from %q, want 200 from good", a.code, a.cluster)
			}
			if bad.hits.Load() != 1 {
				t.Errorf("bad cluster hits = %d, want 1", bad.hits.Load())
			}
			if got := testbin.Metric(t, reg, "meridian_glb_http_retries_total", map[string]string{"reason": fmt.Sprint(code)}); got != 1 {
				t.Errorf("retries_total{reason=%d} = %v, want 1", code, got)
			}
		})
	}
	t.Run("not on 500 or 400", func(t *testing.T) {
		t.Parallel()
		for _, code := range []int{400, 404, 500} {
			bad, good := newCluster(t, "bad"), newCluster(t, "good")
			bad.status.Store(int64(code))
			base, _ := serveFront(t, tiered{bad, good}, front.Options{})
			if a := infer(t, base, nil); a.code != code || a.cluster != "bad" || good.hits.Load() != 0 {
				t.Errorf("%d: got %d from %q, good hits %d; want it passed through, no retry", code, a.code, a.cluster, good.hits.Load())
			}
		}
	})
	t.Run("every cluster sheds: last answer passed on", func(t *testing.T) {
		t.Parallel()
		x, y := newCluster(t, "x"), newCluster(t, "y")
		x.status.Store(503)
		y.status.Store(429)
		base, reg := serveFront(t, tiered{x, y}, front.Options{})
		a := infer(t, base, nil)
		if a.code != 429 || a.cluster != "y" || !strings.Contains(a.body, "y says 429") {
			t.Fatalf("got %d from %q: %s; want y's 429", a.code, a.cluster, a.body)
		}
		if got := testbin.Metric(t, reg, "meridian_glb_http_requests_total", map[string]string{"cluster": "y", "code": "429"}); got != 1 {
			t.Errorf("requests_total{cluster=y,code=429} = %v, want 1", got)
		}
	})
	t.Run("every cluster unreachable: 503 with Retry-After", func(t *testing.T) {
		t.Parallel()
		x, y := newCluster(t, "x"), newCluster(t, "y")
		x.kill()
		y.kill()
		base, reg := serveFront(t, tiered{x, y}, front.Options{})
		a := infer(t, base, nil)
		if a.code != 503 || a.header.Get("Retry-After") == "" || !strings.Contains(a.body, `"error"`) {
			t.Fatalf("got %d %q Retry-After %q; want 503 JSON error with Retry-After", a.code, a.body, a.header.Get("Retry-After"))
		}
		if got := testbin.Metric(t, reg, "meridian_glb_http_retries_total", map[string]string{"reason": "connection"}); got != 1 {
			t.Errorf("retries_total{reason=connection} = %v, want 1", got)
		}
	})
	t.Run("attempts bound the tries", func(t *testing.T) {
		t.Parallel()
		var cs tiered
		for i := range 5 {
			c := newCluster(t, fmt.Sprint("c", i))
			c.status.Store(503)
			cs = append(cs, c)
		}
		base, _ := serveFront(t, cs, front.Options{Attempts: 2})
		if a := infer(t, base, nil); a.code != 503 || a.cluster != "c1" {
			t.Errorf("got %d from %q, want c1's 503", a.code, a.cluster)
		}
		for i, c := range cs {
			if want := int64(map[bool]int{true: 1}[i < 2]); c.hits.Load() != want {
				t.Errorf("%s hits = %d, want %d", c.name, c.hits.Load(), want)
			}
		}
	})
}

func TestEjectsAfterConsecutiveFailuresAndReturns(t *testing.T) {
	t.Parallel()
	bad, good := newCluster(t, "bad"), newCluster(t, "good")
	bad.status.Store(503)
	clk := &clock{now: time.Unix(1_800_000_000, 0)}
	base, reg := serveFront(t, tiered{bad, good}, front.Options{EjectAfter: 3, EjectFor: 10 * time.Second, Now: clk.Now})

	for i := range 8 {
		if a := infer(t, base, nil); a.code != 200 || a.cluster != "good" {
			t.Fatalf("request %d: got %d from %q, want 200 from good", i, a.code, a.cluster)
		}
	}
	if got := bad.hits.Load(); got != 3 {
		t.Errorf("bad cluster got %d requests, want 3 (then ejected)", got)
	}
	if got := testbin.Metric(t, reg, "meridian_glb_http_ejections_total", map[string]string{"cluster": "bad"}); got != 1 {
		t.Errorf("ejections_total{cluster=bad} = %v, want 1", got)
	}

	clk.Advance(9 * time.Second)
	infer(t, base, nil)
	if got := bad.hits.Load(); got != 3 {
		t.Errorf("bad cluster tried %d times before EjectFor passed, want 3", got)
	}

	bad.status.Store(0) // it recovers
	clk.Advance(2 * time.Second)
	if a := infer(t, base, nil); a.code != 200 || a.cluster != "bad" {
		t.Errorf("after EjectFor: got %d from %q, want the preferred cluster back", a.code, a.cluster)
	}
}

func TestEjectedClusterIsTriedLast(t *testing.T) {
	t.Parallel()
	x, y := newCluster(t, "x"), newCluster(t, "y")
	x.status.Store(503)
	y.status.Store(503)
	clk := &clock{now: time.Unix(1_800_000_000, 0)}
	base, _ := serveFront(t, tiered{x, y}, front.Options{EjectAfter: 1, Now: clk.Now})
	infer(t, base, nil) // ejects both
	y.status.Store(0)
	if a := infer(t, base, nil); a.code != 200 || a.cluster != "y" {
		t.Errorf("with every cluster ejected: got %d from %q, want y's answer anyway", a.code, a.cluster)
	}
}

func TestAffinityByHeader(t *testing.T) {
	t.Parallel()
	cs := flat{newCluster(t, "a"), newCluster(t, "b"), newCluster(t, "c")}
	clk := &clock{now: time.Unix(1_800_000_000, 0)}
	base, _ := serveFront(t, cs, front.Options{Affinity: front.Affinity{Header: "X-Session"}, Now: clk.Now})

	home := map[string]string{}
	used := map[string]bool{}
	for k := range 20 {
		key := fmt.Sprint("user-", k)
		for i := range 4 {
			a := infer(t, base, map[string]string{"X-Session": key})
			if a.code != 200 {
				t.Fatalf("key %s: got %d", key, a.code)
			}
			if i == 0 {
				home[key] = a.cluster
				used[a.cluster] = true
			} else if a.cluster != home[key] {
				t.Fatalf("key %s moved from %s to %s", key, home[key], a.cluster)
			}
		}
	}
	if len(used) < 2 {
		t.Errorf("20 keys all landed on %v; affinity should spread keys", used)
	}

	// The home cluster of user-0 fails: the key falls back to one other
	// cluster, and stays there while its home is ejected.
	var failing *cluster
	for _, c := range cs {
		if c.name == home["user-0"] {
			failing = c
		}
	}
	failing.status.Store(503)
	fallback := ""
	for i := range 6 {
		a := infer(t, base, map[string]string{"X-Session": "user-0"})
		if a.code != 200 || a.cluster == failing.name {
			t.Fatalf("request %d: got %d from %q while %s fails", i, a.code, a.cluster, failing.name)
		}
		if fallback == "" {
			fallback = a.cluster
		} else if a.cluster != fallback {
			t.Errorf("fallback moved from %s to %s", fallback, a.cluster)
		}
	}
	before := failing.hits.Load()
	infer(t, base, map[string]string{"X-Session": "user-0"})
	if failing.hits.Load() != before {
		t.Errorf("the ejected home cluster was still tried")
	}

	failing.status.Store(0)
	clk.Advance(time.Minute)
	if a := infer(t, base, map[string]string{"X-Session": "user-0"}); a.cluster != failing.name {
		t.Errorf("after the home cluster returned, user-0 went to %s, want %s", a.cluster, failing.name)
	}
	if a := infer(t, base, nil); a.code != 200 {
		t.Errorf("request without a key: got %d", a.code)
	}
}

func TestAffinityByCookie(t *testing.T) {
	t.Parallel()
	cs := flat{newCluster(t, "a"), newCluster(t, "b"), newCluster(t, "c")}
	base, _ := serveFront(t, cs, front.Options{Affinity: front.Affinity{Cookie: "session"}})
	first := infer(t, base, map[string]string{"Cookie": "session=abc"}).cluster
	for range 5 {
		if got := infer(t, base, map[string]string{"Cookie": "other=1; session=abc"}).cluster; got != first {
			t.Fatalf("cookie key moved from %s to %s", first, got)
		}
	}
}

func TestHedgeTakesTheFasterAnswer(t *testing.T) {
	t.Parallel()
	slow, fast := newCluster(t, "slow"), newCluster(t, "fast")
	canceled := make(chan struct{}, 1)
	slow.hold = func(r *http.Request) {
		select {
		case <-r.Context().Done():
			canceled <- struct{}{}
		case <-time.After(20 * time.Second):
		}
	}
	base, reg := serveFront(t, tiered{slow, fast}, front.Options{Hedge: true, HedgeAfter: 50 * time.Millisecond})
	a := infer(t, base, nil)
	if a.code != 200 || a.cluster != "fast" {
		t.Fatalf("got %d from %q, want the fast cluster's answer", a.code, a.cluster)
	}
	select {
	case <-canceled:
	case <-time.After(10 * time.Second):
		// On a loaded machine the first copy can still be on its way
		// when the hedge's answer comes: canceled before it was sent,
		// the slow cluster never sees it. A copy it saw must end.
		if slow.hits.Load() != 0 {
			t.Fatal("the slow copy was not canceled")
		}
	}
	if got := testbin.Metric(t, reg, "meridian_glb_http_retries_total", map[string]string{"reason": "hedge"}); got != 1 {
		t.Errorf("retries_total{reason=hedge} = %v, want 1", got)
	}
}

func TestPerTryTimeoutMovesOn(t *testing.T) {
	t.Parallel()
	slow, fast := newCluster(t, "slow"), newCluster(t, "fast")
	slow.hold = func(r *http.Request) { <-r.Context().Done() }
	base, reg := serveFront(t, tiered{slow, fast}, front.Options{PerTryTimeout: 50 * time.Millisecond})
	if a := infer(t, base, nil); a.code != 200 || a.cluster != "fast" {
		t.Fatalf("got %d from %q, want 200 from fast", a.code, a.cluster)
	}
	if got := testbin.Metric(t, reg, "meridian_glb_http_retries_total", map[string]string{"reason": "timeout"}); got != 1 {
		t.Errorf("retries_total{reason=timeout} = %v, want 1", got)
	}
}

// By default a cluster that never answers (a silent network: the
// connection hangs) costs a request DefaultPerTryTimeout, not the request:
// it moves on to the next candidate.
func TestDefaultPerTryTimeoutSavesRequestsFromASilentCluster(t *testing.T) {
	t.Parallel()
	silent, fast := newCluster(t, "silent"), newCluster(t, "fast")
	silent.hold = func(r *http.Request) { <-r.Context().Done() }
	base, _ := serveFront(t, tiered{silent, fast}, front.Options{})
	start := time.Now()
	a := infer(t, base, nil)
	if a.code != http.StatusOK || a.cluster != "fast" {
		t.Fatalf("got %d from %q, want 200 from fast", a.code, a.cluster)
	}
	if took := time.Since(start); took < front.DefaultPerTryTimeout {
		t.Errorf("answered after %s: the silent cluster was not waited for its per-try timeout (%s)", took, front.DefaultPerTryTimeout)
	}
}

func TestRequestTimeout(t *testing.T) {
	t.Parallel()
	slow := newCluster(t, "slow")
	slow.hold = func(r *http.Request) { <-r.Context().Done() }
	base, _ := serveFront(t, tiered{slow}, front.Options{RequestTimeout: 30 * time.Second})
	// The client's own deadline header shortens the front's.
	a := infer(t, base, map[string]string{"Request-Timeout": "0.1"})
	if a.code != http.StatusGatewayTimeout || !strings.Contains(a.body, `"error"`) {
		t.Errorf("got %d %s, want 504 with a JSON error", a.code, a.body)
	}
}

func TestLeastOutstandingWithinTier(t *testing.T) {
	t.Parallel()
	a, b, c := newCluster(t, "a"), newCluster(t, "b"), newCluster(t, "c")
	started, release := make(chan struct{}), make(chan struct{})
	a.hold = func(*http.Request) { close(started); <-release }
	router := routerFunc(func() []front.Candidate {
		return []front.Candidate{{Cluster: "a", URL: a.url}, {Cluster: "b", URL: b.url}, {Cluster: "c", URL: c.url, Tier: 1}}
	})
	base, _ := serveFront(t, router, front.Options{})
	first := make(chan answer, 1)
	go func() { first <- infer(t, base, nil) }()
	<-started
	if got := infer(t, base, nil); got.cluster != "b" {
		t.Errorf("with a busy, the next request went to %q, want b", got.cluster)
	}
	close(release)
	if got := <-first; got.cluster != "a" {
		t.Errorf("first request answered by %q, want a", got.cluster)
	}
	if c.hits.Load() != 0 {
		t.Errorf("the lower tier was used while the best tier had room")
	}
}

type routerFunc func() []front.Candidate

func (f routerFunc) Route(*http.Request, string, netip.Addr) []front.Candidate { return f() }

func TestBodyOverLimitIs413WithoutUpstream(t *testing.T) {
	t.Parallel()
	c := newCluster(t, "a")
	base, _ := serveFront(t, flat{c}, front.Options{MaxBodyBytes: 1024})
	big := bytes.Repeat([]byte("x"), 2048)
	if a := do(t, http.MethodPost, base+"/v2/models/sentiment/infer", big, nil); a.code != http.StatusRequestEntityTooLarge {
		t.Errorf("with Content-Length: got %d, want 413", a.code)
	}
	// Chunked: the length is learned only while reading.
	req, _ := http.NewRequest(http.MethodPost, base+"/v2/models/sentiment/infer", io.MultiReader(bytes.NewReader(big)))
	resp, err := client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	_ = resp.Body.Close()
	if resp.StatusCode != http.StatusRequestEntityTooLarge {
		t.Errorf("chunked: got %d, want 413", resp.StatusCode)
	}
	if c.hits.Load() != 0 {
		t.Errorf("the cluster was contacted %d times for bodies over the limit", c.hits.Load())
	}
	if a := do(t, http.MethodPost, base+"/v2/models/sentiment/infer", big[:1024], nil); a.code != 200 {
		t.Errorf("body at the limit: got %d, want 200", a.code)
	}
}

func TestBinaryExtensionPassesThrough(t *testing.T) {
	t.Parallel()
	c := newCluster(t, "a")
	base, _ := serveFront(t, flat{c}, front.Options{})
	header := []byte(`{"inputs":[{"name":"x","shape":[256],"datatype":"UINT8","parameters":{"binary_data_size":256}}]}`)
	body := append([]byte{}, header...)
	for i := range 256 {
		body = append(body, byte(i))
	}
	a := do(t, http.MethodPost, base+"/v2/models/sentiment/infer", body, map[string]string{
		inference.HeaderLength: fmt.Sprint(len(header)),
		"Content-Type":         "application/octet-stream",
	})
	if a.code != 200 {
		t.Fatalf("got %d %s", a.code, a.body)
	}
	if a.body != string(body) {
		t.Errorf("body changed on the way: %d bytes back, %d sent", len(a.body), len(body))
	}
	if got := a.header.Get(inference.HeaderLength); got != fmt.Sprint(len(header)) {
		t.Errorf("%s = %q through the front, want %d", inference.HeaderLength, got, len(header))
	}
}

func TestClientDisconnectCancelsUpstream(t *testing.T) {
	t.Parallel()
	held, other := newCluster(t, "held"), newCluster(t, "other")
	started, canceled := make(chan struct{}), make(chan struct{})
	held.hold = func(r *http.Request) {
		close(started)
		<-r.Context().Done()
		close(canceled)
	}
	base, reg := serveFront(t, tiered{held, other}, front.Options{})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		req, _ := http.NewRequestWithContext(ctx, http.MethodPost, base+"/v2/models/sentiment/infer", strings.NewReader(inferBody))
		resp, err := client.Do(req)
		if err == nil {
			_ = resp.Body.Close()
		}
		done <- err
	}()
	<-started
	cancel()
	select {
	case <-canceled:
	case <-time.After(10 * time.Second):
		t.Fatal("the upstream request was not canceled when the client left")
	}
	if err := <-done; err == nil {
		t.Error("the client's request succeeded after it was canceled")
	}
	testbin.Eventually(t, "the front to count the abandoned request", 10*time.Second, func() bool {
		n, _ := testbin.MetricIfAny(t, reg, "meridian_glb_http_requests_total", map[string]string{"code": "499"})
		return n == 1
	})
	if other.hits.Load() != 0 {
		t.Error("the front retried a request whose client had left")
	}
}

// Sequential requests reuse one upstream connection: the winner's
// connection goes back to the pool after its body is relayed, instead of
// being torn down and dialled again for every request (what made the
// front 4x slower than HAProxy in P3).
func TestUpstreamConnectionsAreReused(t *testing.T) {
	var conns atomic.Int64
	c := newCluster(t, "eu-west", func(s *http.Server) {
		s.ConnState = func(_ net.Conn, s http.ConnState) {
			if s == http.StateNew {
				conns.Add(1)
			}
		}
	})
	base, _ := serveFront(t, tiered{c}, front.Options{})
	for range 50 {
		if a := infer(t, base, nil); a.code != http.StatusOK {
			t.Fatalf("answer %d", a.code)
		}
	}
	if n := conns.Load(); n > 2 {
		t.Fatalf("50 sequential requests opened %d upstream connections, want 1 (2 at most)", n)
	}
}

// A second Front on one registry is refused with a clear error, not
// served with metrics that silently belong to the first.
func TestNewRefusesASecondFrontOnOneRegistry(t *testing.T) {
	reg := prometheus.NewRegistry()
	if _, err := front.New(tiered{}, front.Options{Registerer: reg}); err != nil {
		t.Fatal(err)
	}
	if _, err := front.New(tiered{}, front.Options{Registerer: reg}); err == nil || !strings.Contains(err.Error(), "HTTP front metrics are already registered") {
		t.Errorf("second Front: %v, want the registry named as taken", err)
	}
}
