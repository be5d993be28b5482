package glb

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

// The front answers its own health paths, without credentials: ready
// only once it holds a snapshot; any other path reaches the front.
func TestFrontHealth(t *testing.T) {
	src := &Source{}
	b := NewBalancer(src, nil, nil, "test", quiet())
	proxied := 0
	h := b.withHealth(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		proxied++
		w.WriteHeader(http.StatusUnauthorized) // the door, for a model path
	}))
	get := func(path string) int {
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, path, nil))
		return rec.Code
	}
	if c := get(LivePath); c != http.StatusOK {
		t.Errorf("%s: %d, want 200", LivePath, c)
	}
	if c := get(ReadyPath); c != http.StatusServiceUnavailable {
		t.Errorf("%s before any snapshot: %d, want 503", ReadyPath, c)
	}
	src.set(fleetSnapshot())
	if c := get(ReadyPath); c != http.StatusOK {
		t.Errorf("%s with a snapshot: %d, want 200", ReadyPath, c)
	}
	if c := get("/v2/models/sentiment/ready"); c != http.StatusUnauthorized || proxied != 1 {
		t.Errorf("a model's path: %d (proxied %d), want it passed on", c, proxied)
	}
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest(http.MethodPost, ReadyPath, strings.NewReader("{}")))
	if proxied != 2 {
		t.Errorf("POST %s was answered by the health handler, want it passed on", ReadyPath)
	}
}
