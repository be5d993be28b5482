package front_test

import (
	"net/http"
	"net/http/httptest"
	"net/netip"
	"net/url"
	"strings"
	"sync"
	"testing"

	"meridian.dev/meridian/glb/front"
)

// recorder is a cluster that keeps the headers of the last request it got,
// behind a Router that keeps the client address it was asked about.
type recorder struct {
	mu     sync.Mutex
	header http.Header
	client netip.Addr
	url    *url.URL
}

func newRecorder(t *testing.T) *recorder {
	t.Helper()
	rec := &recorder{}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		rec.mu.Lock()
		rec.header = r.Header.Clone()
		rec.mu.Unlock()
		w.WriteHeader(http.StatusOK)
	}))
	t.Cleanup(srv.Close)
	rec.url, _ = url.Parse(srv.URL)
	return rec
}

func (rec *recorder) Route(_ *http.Request, _ string, client netip.Addr) []front.Candidate {
	rec.mu.Lock()
	rec.client = client
	rec.mu.Unlock()
	return []front.Candidate{{Cluster: "c", URL: rec.url}}
}

func (rec *recorder) last() (netip.Addr, http.Header) {
	rec.mu.Lock()
	defer rec.mu.Unlock()
	return rec.client, rec.header
}

// Clients write the left end of X-Forwarded-For; only what the trusted
// proxies wrote, counted from the right, is believed, steered by and sent
// on.
func TestForwardedForCountsTrustedHopsFromTheRight(t *testing.T) {
	t.Parallel()
	loop := netip.MustParsePrefix("127.0.0.0/8")
	proxies := netip.MustParsePrefix("192.0.2.0/24")
	cases := []struct {
		name       string
		policy     front.ForwardedFor
		xff        []string // header lines as the client sends them
		wantClient string
		wantXFF    string // what the cluster gets
	}{
		{"trust none: header dropped", front.ForwardedFor{}, []string{"10.1.2.3"}, "127.0.0.1", "127.0.0.1"},
		{"one hop: rightmost entry", front.ForwardedFor{TrustedHops: 1}, []string{"6.6.6.6, 10.1.2.3"}, "10.1.2.3", "10.1.2.3, 127.0.0.1"},
		{"two hops: spoofed left end dropped", front.ForwardedFor{TrustedHops: 2}, []string{"6.6.6.6, 5.5.5.5, 10.1.2.3, 192.0.2.9"}, "10.1.2.3", "10.1.2.3, 192.0.2.9, 127.0.0.1"},
		{"two hops over two header lines", front.ForwardedFor{TrustedHops: 2}, []string{"6.6.6.6, 10.1.2.3", "192.0.2.9"}, "10.1.2.3", "10.1.2.3, 192.0.2.9, 127.0.0.1"},
		{"fewer entries than hops: the outermost proxy's", front.ForwardedFor{TrustedHops: 3}, []string{"10.1.2.3"}, "10.1.2.3", "10.1.2.3, 127.0.0.1"},
		{"entry with a port", front.ForwardedFor{TrustedHops: 1}, []string{"6.6.6.6, [2001:db8::7]:4711"}, "2001:db8::7", "2001:db8::7, 127.0.0.1"},
		{"trusted networks: walk past them", front.ForwardedFor{TrustedProxies: []netip.Prefix{loop, proxies}}, []string{"6.6.6.6, 10.1.2.3, 192.0.2.9, 192.0.2.1"}, "10.1.2.3", "10.1.2.3, 192.0.2.9, 192.0.2.1, 127.0.0.1"},
		{"trusted networks and hops: stop at the first stranger", front.ForwardedFor{TrustedHops: 3, TrustedProxies: []netip.Prefix{loop, proxies}}, []string{"6.6.6.6, 10.1.2.3, 5.5.5.5"}, "5.5.5.5", "5.5.5.5, 127.0.0.1"},
		{"peer not a trusted proxy: header ignored", front.ForwardedFor{TrustedHops: 1, TrustedProxies: []netip.Prefix{proxies}}, []string{"10.1.2.3"}, "127.0.0.1", "127.0.0.1"},
		{"garbage at the client's place: the peer", front.ForwardedFor{TrustedHops: 1}, []string{"10.1.2.3, unknown"}, "127.0.0.1", "127.0.0.1"},
		{"no header", front.ForwardedFor{TrustedHops: 1}, nil, "127.0.0.1", "127.0.0.1"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			rec := newRecorder(t)
			base, _ := serveFront(t, rec, front.Options{ForwardedFor: tc.policy})
			req, _ := http.NewRequest(http.MethodPost, base+"/v2/models/m/infer", strings.NewReader("{}"))
			for _, v := range tc.xff {
				req.Header.Add("X-Forwarded-For", v)
			}
			resp, err := client.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			_ = resp.Body.Close()
			got, h := rec.last()
			if got != netip.MustParseAddr(tc.wantClient) {
				t.Errorf("steered by %s, want %s", got, tc.wantClient)
			}
			if xff := h.Values("X-Forwarded-For"); len(xff) != 1 || xff[0] != tc.wantXFF {
				t.Errorf("cluster got X-Forwarded-For %q, want %q", xff, tc.wantXFF)
			}
		})
	}
}

// A client cannot smuggle hop-by-hop headers or forge the other
// forwarding headers through the front.
func TestClientForwardingAndHopHeadersAreNotPassedOn(t *testing.T) {
	t.Parallel()
	rec := newRecorder(t)
	base, _ := serveFront(t, rec, front.Options{ForwardedFor: front.ForwardedFor{TrustedHops: 1}})
	req, _ := http.NewRequest(http.MethodPost, base+"/v2/models/m/infer", strings.NewReader("{}"))
	for k, v := range map[string]string{
		"X-Forwarded-Host":    "admin.internal",
		"X-Forwarded-Proto":   "https",
		"X-Forwarded-Port":    "443",
		"X-Forwarded-Prefix":  "/admin",
		"Forwarded":           "for=6.6.6.6;proto=https",
		"X-Real-Ip":           "6.6.6.6",
		"Connection":          "X-Secret",
		"X-Secret":            "dropped as named by Connection",
		"Keep-Alive":          "timeout=5",
		"Te":                  "trailers",
		"Proxy-Authorization": "Basic eDp5",
		"X-Kept":              "kept",
	} {
		req.Header.Set(k, v)
	}
	resp, err := client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	_ = resp.Body.Close()
	_, h := rec.last()
	for _, k := range []string{"X-Forwarded-Port", "X-Forwarded-Prefix", "Forwarded", "X-Real-Ip", "X-Secret", "Keep-Alive", "Te", "Proxy-Authorization"} {
		if v, ok := h[k]; ok {
			t.Errorf("cluster got %s: %q; want it dropped", k, v)
		}
	}
	host := strings.TrimPrefix(base, "http://")
	if got := h.Get("X-Forwarded-Host"); got != host {
		t.Errorf("X-Forwarded-Host = %q, want the front's %q", got, host)
	}
	if got := h.Get("X-Forwarded-Proto"); got != "http" {
		t.Errorf("X-Forwarded-Proto = %q, want http (the client spoke plain HTTP)", got)
	}
	if h.Get("X-Kept") != "kept" {
		t.Errorf("an end-to-end header was dropped: %v", h)
	}
}

func mustURL(tb testing.TB, s string) *url.URL {
	tb.Helper()
	u, err := url.Parse(s)
	if err != nil {
		tb.Fatal(err)
	}
	return u
}
