package front_test

import (
	"bufio"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"meridian.dev/meridian/glb/front"
	"meridian.dev/meridian/internal/framing"
	"meridian.dev/meridian/internal/httpserve"
)

// smugglingFront is a front served as `meridian glb` serves it (behind
// framing.Listener) over a cluster that checks what reaches it: one
// request per client request, framed by Content-Length alone, without
// hop-by-hop or client-forged forwarding headers. It counts the requests
// and keeps the first violation.
type smugglingFront struct {
	addr      string
	hits      atomic.Int64
	mu        sync.Mutex
	violation string
}

func newSmugglingFront(tb testing.TB) *smugglingFront {
	tb.Helper()
	sf := &smugglingFront{}
	backend := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		sf.hits.Add(1)
		body, err := io.ReadAll(r.Body)
		switch {
		case err != nil:
			sf.violate("reading the body the front sent: " + err.Error())
		case len(r.TransferEncoding) > 0 || r.ContentLength != int64(len(body)):
			sf.violate("the front sent a body not framed by Content-Length alone")
		case r.Header.Get("X-Forwarded-For") != "127.0.0.1" || len(r.Header.Values("X-Forwarded-For")) != 1:
			sf.violate("X-Forwarded-For " + strings.Join(r.Header.Values("X-Forwarded-For"), "|") + " passed on from an untrusted client")
		}
		for _, h := range []string{"Connection", "Keep-Alive", "Te", "Upgrade", "Proxy-Authorization", "Forwarded", "X-Real-Ip", "Trailer"} {
			if _, ok := r.Header[h]; ok {
				sf.violate("the front passed on " + h)
			}
		}
		_, _ = io.WriteString(w, `{"outputs":[]}`)
	}))
	tb.Cleanup(backend.Close)
	var router recorder
	router.url = mustURL(tb, backend.URL)
	f, err := front.New(&router, front.Options{AllowLocalEndpoints: true, Logger: slog.New(slog.DiscardHandler), RequestTimeout: 5 * time.Second})
	if err != nil {
		tb.Fatal(err)
	}
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		defer func() {
			if p := recover(); p != nil && p != http.ErrAbortHandler { //nolint:errorlint // the sentinel itself is panicked
				sf.violate("the front panicked")
				panic(p)
			}
		}()
		f.ServeHTTP(w, r)
	}))
	srv.Listener = framing.Listener(srv.Listener)
	srv.Config.ErrorLog = nil
	srv.Start()
	tb.Cleanup(srv.Close)
	sf.addr = srv.Listener.Addr().String()
	return sf
}

func (sf *smugglingFront) violate(what string) {
	sf.mu.Lock()
	if sf.violation == "" {
		sf.violation = what
	}
	sf.mu.Unlock()
}

func (sf *smugglingFront) firstViolation() string {
	sf.mu.Lock()
	defer sf.mu.Unlock()
	return sf.violation
}

// send writes raw to the front on one connection and returns the status
// codes of the answers, until the front closes the connection (raw ends
// with a request saying Connection: close, or is refused) or wait passes.
// It leaves the connection open for writing meanwhile: net/http takes a
// client's half-close for its leaving and cancels the request.
func (sf *smugglingFront) send(tb testing.TB, raw []byte, wait time.Duration) []int {
	tb.Helper()
	c, err := net.Dial("tcp", sf.addr)
	if err != nil {
		tb.Fatal(err)
	}
	defer func() { _ = c.Close() }()
	_ = c.SetDeadline(time.Now().Add(wait))
	go func() { _, _ = c.Write(raw) }()
	var codes []int
	br := bufio.NewReader(c)
	for {
		resp, err := http.ReadResponse(br, nil)
		if err != nil {
			return codes
		}
		_, _ = io.Copy(io.Discard, resp.Body)
		_ = resp.Body.Close()
		codes = append(codes, resp.StatusCode)
	}
}

// A request with both Content-Length and Transfer-Encoding is answered
// 400 and never forwarded, whichever comes first and however the front
// would otherwise have read it; the requests before it on the connection
// are served.
func TestFrontRefusesConflictingFramingUnforwarded(t *testing.T) {
	t.Parallel()
	sf := newSmugglingFront(t)
	const clean = "POST /v2/models/m/infer HTTP/1.1\r\nHost: front\r\nContent-Length: 2\r\n\r\n{}"
	const wait = 30 * time.Second // never reached: the front closes the connection
	for _, raw := range []string{
		"POST /v2/models/m/infer HTTP/1.1\r\nHost: front\r\nContent-Length: 44\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\nPOST /v2/models/m/infer HTTP/1.1\r\nHost: front\r\n\r\n",
		"POST /v2/models/m/infer HTTP/1.1\r\nHost: front\r\nTransfer-Encoding: chunked\r\nContent-Length: 3\r\n\r\n8\r\nSMUGGLED\r\n0\r\n\r\n",
		"POST /v2/models/m/infer HTTP/1.1\r\nHost: front\r\nContent-Length: 2\r\nContent-Length: 40\r\n\r\n{}",
	} {
		before := sf.hits.Load()
		if codes := sf.send(t, []byte(raw), wait); len(codes) != 1 || codes[0] != 400 {
			t.Errorf("%q: answers %v, want one 400", raw, codes)
		}
		if n := sf.hits.Load() - before; n != 0 {
			t.Errorf("%q: the cluster got %d requests", raw, n)
		}
		// After clean ones on the same connection: they are served, the
		// conflicting one is not.
		before = sf.hits.Load()
		if codes := sf.send(t, []byte(clean+clean+raw), wait); len(codes) != 3 || codes[0] != 200 || codes[1] != 200 || codes[2] != 400 {
			t.Errorf("two clean requests then %q: answers %v, want 200 200 400", raw, codes)
		}
		if n := sf.hits.Load() - before; n != 2 {
			t.Errorf("two clean requests then %q: the cluster got %d requests, want 2", raw, n)
		}
	}
	if v := sf.firstViolation(); v != "" {
		t.Error(v)
	}
}

// Behind the hardened server, a body that stops arriving is answered 408
// and never forwarded.
func TestStalledBodyIs408Unforwarded(t *testing.T) {
	t.Parallel()
	c := newCluster(t, "c")
	f, err := front.New(tiered{c}, front.Options{AllowLocalEndpoints: true, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	hs, err := httpserve.New(f, httpserve.Options{BodyTimeout: 200 * time.Millisecond, MinBodyRate: -1, Refuse: front.WriteError})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewUnstartedServer(hs.Handler)
	srv.Config = hs
	srv.Start()
	t.Cleanup(srv.Close)
	conn, err := net.Dial("tcp", srv.Listener.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = conn.Close() }()
	_ = conn.SetDeadline(time.Now().Add(10 * time.Second))
	_, _ = io.WriteString(conn, "POST /v2/models/m/infer HTTP/1.1\r\nHost: f\r\nContent-Length: 100\r\n\r\n{")
	resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
	if err != nil {
		t.Fatal(err)
	}
	_ = resp.Body.Close()
	if resp.StatusCode != http.StatusRequestTimeout || c.hits.Load() != 0 {
		t.Errorf("stalled body: %d, cluster hits %d; want 408 and none", resp.StatusCode, c.hits.Load())
	}
}
