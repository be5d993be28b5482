package front_test

import (
	"log/slog"
	"net/http/httptest"
	"net/url"
	"testing"

	"github.com/prometheus/client_golang/prometheus"

	"meridian.dev/meridian/glb/front"
	"meridian.dev/meridian/internal/testbin"
)

// A member that publishes a loopback or metadata endpoint cannot make the
// front send client requests there: such candidates are skipped, and a
// real fleet's front refuses loopback even at dial time.
func TestFrontRefusesForbiddenEndpoints(t *testing.T) {
	t.Parallel()
	local := newCluster(t, "local") // on loopback
	metadata, _ := url.Parse("http://169.254.169.254/latest/meta-data")
	good := newCluster(t, "good")
	router := routerFunc(func() []front.Candidate {
		return []front.Candidate{
			{Cluster: "metadata", URL: metadata},
			{Cluster: "local", URL: local.url},
			{Cluster: "good", URL: good.url, Tier: 1},
		}
	})
	reg := prometheus.NewRegistry()
	f, err := front.New(router, front.Options{Registerer: reg, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(f)
	defer srv.Close()
	a := infer(t, srv.URL, nil)
	if a.code != 503 {
		t.Errorf("got %d from %q; want 503: good is on loopback too, so nothing is allowed", a.code, a.cluster)
	}
	if local.hits.Load()+good.hits.Load() != 0 {
		t.Errorf("loopback clusters got %d requests from a real fleet's front", local.hits.Load()+good.hits.Load())
	}
	for _, c := range []string{"metadata", "local", "good"} {
		if got := testbin.Metric(t, reg, "meridian_glb_http_endpoints_refused_total", map[string]string{"cluster": c}); got != 1 {
			t.Errorf("endpoints_refused_total{cluster=%s} = %v, want 1", c, got)
		}
	}

	// A local fleet's front sends to loopback, never to metadata.
	base, reg := serveFront(t, router, front.Options{})
	if a := infer(t, base, nil); a.code != 200 || a.cluster != "local" {
		t.Errorf("local fleet: got %d from %q, want 200 from local", a.code, a.cluster)
	}
	if got := testbin.Metric(t, reg, "meridian_glb_http_endpoints_refused_total", map[string]string{"cluster": "metadata"}); got != 1 {
		t.Errorf("local fleet: metadata endpoint not refused (%v)", got)
	}
}
