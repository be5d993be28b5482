package glb

import (
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"meridian.dev/meridian/glb/front"
)

// BenchmarkFrontServe is the HTTP front's own cost per request on the path
// the balancer takes for real (geo lookup, ranking, demand counting,
// upstream round trip on a reused connection) against a minimal backend.
func BenchmarkFrontServe(b *testing.B) {
	backend := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
		_, _ = io.WriteString(w, `{"outputs":[]}`)
	}))
	defer backend.Close()
	snap := fleetSnapshot()
	for i := range snap.Clusters {
		snap.Clusters[i].Models["sentiment"] = ModelTarget{Endpoint: backend.URL, Ready: 1}
	}
	src := &Source{}
	src.set(snap)
	bal := NewBalancer(src, openGeo(b), nil, "bench", quiet())
	d, err := NewDemand(nil)
	if err != nil {
		b.Fatal(err)
	}
	bal.CountDemand(d)
	f, err := front.New(bal, front.Options{ForwardedFor: front.ForwardedFor{TrustedHops: 1}, AllowLocalEndpoints: true})
	if err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			r := httptest.NewRequest(http.MethodPost, "/v2/models/sentiment/infer", strings.NewReader(`{"inputs":[]}`))
			r.Header.Set("X-Forwarded-For", "193.0.0.1")
			w := httptest.NewRecorder()
			f.ServeHTTP(w, r)
			if w.Code != http.StatusOK {
				b.Fatalf("answer %d", w.Code)
			}
		}
	})
}
