package front_test

import (
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"meridian.dev/meridian/glb/front"
	"meridian.dev/meridian/internal/testbin"
)

// When every cluster fails every request, retries add at most the
// budget's share of load: the clusters see the requests once each, plus
// no more than Percent of them (plus MinConcurrency) again, however many
// Attempts each request may make. The first copies are all held in flight
// together, then the retries, so the count does not depend on timing.
func TestRetryBudgetBoundsTheExtraLoadOfAFailingFleet(t *testing.T) {
	t.Parallel()
	const n, percent, minimum = 100, 20, 1
	var hits atomic.Int64
	firstWave, retryWave := make(chan struct{}), make(chan struct{})
	events := make(chan struct{}, 4*n)
	backend := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch h := hits.Add(1); {
		case h == n:
			close(firstWave)
		case h < n:
			<-firstWave
		default:
			events <- struct{}{}
			<-retryWave
		}
		w.WriteHeader(http.StatusServiceUnavailable)
	})
	var cands []front.Candidate
	for _, name := range []string{"a", "b", "c"} {
		srv := httptest.NewServer(backend)
		t.Cleanup(srv.Close)
		u, _ := url.Parse(srv.URL)
		cands = append(cands, front.Candidate{Cluster: name, URL: u})
	}
	router := routerFunc(func() []front.Candidate { return cands })
	base, reg := serveFront(t, router, front.Options{
		Attempts: 3, PerTryTimeout: -1, RequestTimeout: time.Minute, EjectAfter: 1 << 20,
		RetryBudget: front.RetryBudget{Percent: percent, MinConcurrency: minimum},
	})

	var done atomic.Int64
	var wg sync.WaitGroup
	for range n {
		wg.Go(func() {
			defer func() { done.Add(1); events <- struct{}{} }()
			resp, err := client.Post(base+"/v2/models/m/infer", "application/json", strings.NewReader("{}"))
			if err != nil {
				t.Error(err)
				return
			}
			_ = resp.Body.Close()
			if resp.StatusCode != http.StatusServiceUnavailable {
				t.Errorf("status %d, want the clusters' 503", resp.StatusCode)
			}
		})
	}
	// Every request has either been answered or has a retry held at a
	// cluster: the retries the budget allowed are all out.
	for done.Load()+hits.Load()-n < n {
		<-events
	}
	held := hits.Load() - n
	close(retryWave)
	wg.Wait()

	extra := hits.Load() - n
	if limit := int64(n*percent/100 + minimum); extra > limit {
		t.Errorf("a failing fleet got %d extra copies of %d requests, over the budget's %d", extra, n, limit)
	}
	if held < minimum {
		t.Errorf("only %d retries were sent; the budget allows at least %d", held, minimum)
	}
	if got := testbin.Metric(t, reg, "meridian_glb_http_retry_budget_exhausted_total", nil); got < float64(n-held) {
		t.Errorf("retry_budget_exhausted_total = %v with %d of %d requests refused a retry", got, n-held, n)
	}
}

// Failures to connect reach no cluster, so their retries are free: a
// dead cluster costs no request however spent the budget is.
func TestRetryAfterAFailedConnectionSpendsNoBudget(t *testing.T) {
	t.Parallel()
	dead, good := newCluster(t, "dead"), newCluster(t, "good")
	dead.kill()
	base, reg := serveFront(t, tiered{dead, good}, front.Options{RetryBudget: front.RetryBudget{Percent: 1, MinConcurrency: 1}})
	var wg sync.WaitGroup
	for range 20 {
		wg.Go(func() {
			if a := infer(t, base, nil); a.code != 200 || a.cluster != "good" {
				t.Errorf("got %d from %q, want 200 from good", a.code, a.cluster)
			}
		})
	}
	wg.Wait()
	if got := testbin.Metric(t, reg, "meridian_glb_http_retry_budget_exhausted_total", nil); got != 0 {
		t.Errorf("retry_budget_exhausted_total = %v, want 0: connection failures are free", got)
	}
}
