package process

import (
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"
)

// versionReplica is a replica of one version: a real HTTP server on
// loopback that answers as `meridian serve --only-version` does, with
// the version in Meridian-Model-Version (no model runs: these tests are
// about the front's routing; process_test.go runs real replicas).
type versionReplica struct {
	srv  *httptest.Server
	code int
}

func (v versionReplica) Replicas() []Replica {
	if v.srv == nil {
		return nil
	}
	return []Replica{{ID: "v" + v.srv.URL, Addr: strings.TrimPrefix(v.srv.URL, "http://"), Ready: true}}
}

func newVersionReplica(t *testing.T, version int64, code int) versionReplica {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set(HeaderModelVersion, fmt.Sprint(version))
		w.Header().Set(HeaderPrediction, fmt.Sprintf("LABEL-%d", version))
		w.WriteHeader(code)
		_, _ = fmt.Fprintf(w, `{"model_version":"%d"}`, version)
	}))
	t.Cleanup(srv.Close)
	return versionReplica{srv: srv, code: code}
}

type observed struct {
	mu sync.Mutex
	by map[int64]int
}

func (o *observed) add(r Result) {
	o.mu.Lock()
	defer o.mu.Unlock()
	if r.Prediction == fmt.Sprintf("LABEL-%d", r.Version) {
		o.by[r.Version]++
	}
}

func startFront(t *testing.T, routes Routes) (string, *observed) {
	t.Helper()
	obs := &observed{by: map[int64]int{}}
	f, err := NewFront("default/sentiment", FrontOptions{Logger: quiet(), Observe: obs.add})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.Close(time.Second) })
	f.SetRoutes(routes)
	return "http://" + f.Addr(), obs
}

func ask(t *testing.T, url string, set func(*http.Request)) (int, string, []*http.Cookie) {
	t.Helper()
	req, _ := http.NewRequest(http.MethodPost, url, strings.NewReader(`{"text":"good"}`))
	if set != nil {
		set(req)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = resp.Body.Close() }()
	_, _ = io.Copy(io.Discard, resp.Body)
	return resp.StatusCode, resp.Header.Get(HeaderModelVersion), resp.Cookies()
}

func TestCanarySplitsByWeight(t *testing.T) {
	url, obs := startFront(t, Routes{Pools: []Pool{
		{Version: 1, Weight: 90, Replicas: newVersionReplica(t, 1, 200)},
		{Version: 2, Weight: 10, Replicas: newVersionReplica(t, 2, 200)},
	}})
	got := map[string]int{}
	for range 2000 {
		code, v, _ := ask(t, url+"/analyze", nil)
		if code != 200 {
			t.Fatalf("status %d", code)
		}
		got[v]++
	}
	// 10% of 2,000 is 200; a binomial's standard deviation there is 13.4,
	// so ±3 points (60) is 4.5 of them.
	if got["2"] < 140 || got["2"] > 260 || got["1"]+got["2"] != 2000 {
		t.Fatalf("canary at 10%% got %v of 2000", got)
	}
	if obs.by[2] != got["2"] || obs.by[1] != got["1"] {
		t.Errorf("observed %v, answered %v", obs.by, got)
	}
}

func TestHeaderAffinityIsStickyAndGrowsNewestFirst(t *testing.T) {
	v1, v2 := newVersionReplica(t, 1, 200), newVersionReplica(t, 2, 200)
	routes := func(w2 int32) Routes {
		return Routes{Affinity: Affinity{Mode: "Header", Key: "X-User"}, Pools: []Pool{
			{Version: 1, Weight: 100 - w2, Replicas: v1}, {Version: 2, Weight: w2, Replicas: v2}}}
	}
	obs := &observed{by: map[int64]int{}}
	f, err := NewFront("default/sentiment", FrontOptions{Logger: quiet(), Observe: obs.add})
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close(time.Second)
	f.SetRoutes(routes(50))
	url := "http://" + f.Addr() + "/analyze"
	first := map[string]string{}
	for i := range 1000 {
		user := fmt.Sprintf("user-%d", i%100)
		_, v, _ := ask(t, url, func(r *http.Request) { r.Header.Set("X-User", user) })
		if prev, ok := first[user]; ok && prev != v {
			t.Fatalf("%s moved from version %s to %s", user, prev, v)
		}
		first[user] = v
	}
	on2 := 0
	for _, v := range first {
		if v == "2" {
			on2++
		}
	}
	if on2 < 30 || on2 > 70 {
		t.Fatalf("%d of 100 users on version 2 at 50%%", on2)
	}
	// Growing version 2's weight moves users onto it, never off it.
	f.SetRoutes(routes(90))
	for user, was := range first {
		_, v, _ := ask(t, url, func(r *http.Request) { r.Header.Set("X-User", user) })
		if was == "2" && v != "2" {
			t.Fatalf("%s left version 2 when its weight grew", user)
		}
	}
}

func TestCookieAffinitySetsACookie(t *testing.T) {
	url, _ := startFront(t, Routes{Affinity: Affinity{Mode: "Cookie"}, Pools: []Pool{
		{Version: 1, Weight: 50, Replicas: newVersionReplica(t, 1, 200)},
		{Version: 2, Weight: 50, Replicas: newVersionReplica(t, 2, 200)},
	}})
	_, v, cookies := ask(t, url+"/analyze", nil)
	if len(cookies) != 1 || cookies[0].Name != "meridian-session" {
		t.Fatalf("cookies %v", cookies)
	}
	for range 50 {
		_, again, _ := ask(t, url+"/analyze", func(r *http.Request) { r.AddCookie(cookies[0]) })
		if again != v {
			t.Fatalf("with its cookie, a user moved from version %s to %s", v, again)
		}
	}
}

func TestVersionInPathAndFallback(t *testing.T) {
	url, _ := startFront(t, Routes{Pools: []Pool{
		{Version: 1, Weight: 0, Replicas: newVersionReplica(t, 1, 200)},
		{Version: 2, Weight: 100, Replicas: versionReplica{}}, // no replica ready
	}})
	// The weights send everything to version 2, which has no ready
	// replica: the front falls back on version 1 rather than fail.
	if code, v, _ := ask(t, url+"/analyze", nil); code != 200 || v != "1" {
		t.Fatalf("fallback: %d version %q", code, v)
	}
	// A request naming version 2 gets version 2 or a clear error.
	if code, _, _ := ask(t, url+"/v2/models/sentiment/versions/2/infer", nil); code != http.StatusServiceUnavailable {
		t.Fatalf("named version without replicas: %d", code)
	}
	if code, v, _ := ask(t, url+"/v2/models/sentiment/versions/1/infer", nil); code != 200 || v != "1" {
		t.Fatalf("named version 1: %d %q", code, v)
	}
	if code, _, _ := ask(t, url+"/v2/models/sentiment/versions/7/infer", nil); code != http.StatusNotFound {
		t.Fatalf("a version not served: %d, want 404", code)
	}
}
