package httpserve

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"meridian.dev/meridian/internal/testbin"
)

// served is a hardened server on a loopback port.
type served struct {
	addr string
	reg  *prometheus.Registry
}

func serve(t *testing.T, opts Options, h http.Handler) served {
	t.Helper()
	reg := prometheus.NewRegistry()
	opts.Name, opts.Registerer = "test", reg
	opts.Logger = slog.New(slog.DiscardHandler)
	srv, err := New(h, opts)
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- Serve(ctx, srv, ln, time.Second) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Serve: %v", err)
		}
	})
	return served{ln.Addr().String(), reg}
}

func (s served) metric(t *testing.T, name, reason string) float64 {
	t.Helper()
	labels := map[string]string{"server": "test"}
	if reason != "" {
		labels["reason"] = reason
	}
	return testbin.Metric(t, s.reg, name, labels)
}

// dial opens a raw TCP connection with a deadline far beyond any limit
// under test, so a server that fails to close it fails the test instead
// of hanging it.
func dial(t *testing.T, addr string) net.Conn {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.Close() })
	_ = c.SetDeadline(time.Now().Add(20 * time.Second))
	return c
}

// closedByServer reads until the server closes c, failing on a timeout.
func closedByServer(t *testing.T, c net.Conn) string {
	t.Helper()
	b, err := io.ReadAll(c)
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		t.Fatalf("the server did not close the connection; read %q", b)
	}
	return string(b)
}

// readAll reads the whole body and answers "ok", or 408 when the body
// came too late, as every Meridian handler that reads a body does.
var readAll = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
	if _, err := io.ReadAll(r.Body); errors.Is(err, ErrBodyTimeout) {
		http.Error(w, err.Error(), http.StatusRequestTimeout)
		return
	}
	_, _ = io.WriteString(w, "ok")
})

func TestHeaderTimeoutClosesSlowloris(t *testing.T) {
	t.Parallel()
	s := serve(t, Options{ReadHeaderTimeout: 200 * time.Millisecond}, readAll)
	c := dial(t, s.addr)
	_, _ = io.WriteString(c, "GET / HTTP/1.1\r\nHost: x\r\nX-a: b\r\n") // never ends
	if got := closedByServer(t, c); got != "" {
		t.Errorf("answered an unfinished request: %q", got)
	}
}

func TestBodyTimeoutAnswers408AndCloses(t *testing.T) {
	t.Parallel()
	s := serve(t, Options{BodyTimeout: 200 * time.Millisecond, MinBodyRate: -1}, readAll)
	c := dial(t, s.addr)
	_, _ = io.WriteString(c, "POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n0123456789") // 90 bytes never come
	got := closedByServer(t, c)
	if !strings.HasPrefix(got, "HTTP/1.1 408 ") || !strings.Contains(got, "Connection: close") {
		t.Fatalf("answer %q, want 408 with Connection: close", got)
	}
	if n := s.metric(t, "meridian_http_rejected_total", "body_timeout"); n != 1 {
		t.Errorf("body_timeout rejections = %v, want 1", n)
	}
}

// A body arriving faster than MinBodyRate outlives BodyTimeout.
func TestMinBodyRateExtendsTheBodyDeadline(t *testing.T) {
	t.Parallel()
	s := serve(t, Options{BodyTimeout: 300 * time.Millisecond, MinBodyRate: 500}, readAll)
	c := dial(t, s.addr)
	const chunks, chunk = 20, 100 // 2000 bytes, a chunk per 50ms: 2000 B/s, each chunk earning 200ms
	fmt.Fprintf(c, "POST / HTTP/1.1\r\nHost: x\r\nConnection: close\r\nContent-Length: %d\r\n\r\n", chunks*chunk)
	for range chunks {
		if _, err := io.WriteString(c, strings.Repeat("x", chunk)); err != nil {
			t.Fatalf("the server cut off a body arriving at 4x MinBodyRate: %v", err)
		}
		time.Sleep(50 * time.Millisecond)
	}
	if got := closedByServer(t, c); !strings.HasPrefix(got, "HTTP/1.1 200 ") {
		t.Fatalf("answer %q, want 200", got)
	}
}

// WriteTimeout restarts when the body is in: time spent receiving a body
// does not eat into the answer's.
func TestWriteTimeoutCountsFromTheBody(t *testing.T) {
	t.Parallel()
	s := serve(t, Options{WriteTimeout: 300 * time.Millisecond, BodyTimeout: 5 * time.Second}, readAll)
	c := dial(t, s.addr)
	const chunks = 10 // one per 60ms: the body takes twice WriteTimeout to arrive
	fmt.Fprintf(c, "POST / HTTP/1.1\r\nHost: x\r\nConnection: close\r\nContent-Length: %d\r\n\r\n", chunks)
	for range chunks {
		time.Sleep(60 * time.Millisecond)
		_, _ = io.WriteString(c, "x")
	}
	if got := closedByServer(t, c); !strings.HasPrefix(got, "HTTP/1.1 200 ") {
		t.Fatalf("answer %q, want 200", got)
	}
}

// Once the body is in, its deadline no longer applies: a handler slower
// than BodyTimeout keeps its request's context.
func TestSlowHandlerAfterBodyKeepsItsContext(t *testing.T) {
	t.Parallel()
	s := serve(t, Options{BodyTimeout: 100 * time.Millisecond}, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.ReadAll(r.Body)
		select {
		case <-r.Context().Done():
			http.Error(w, "context canceled", http.StatusInternalServerError)
		case <-time.After(400 * time.Millisecond):
			_, _ = io.WriteString(w, "ok")
		}
	}))
	resp, err := http.Post("http://"+s.addr, "text/plain", strings.NewReader("body"))
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	_ = resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("%d %s", resp.StatusCode, b)
	}
}

func TestMaxConnsClosesTheOneOver(t *testing.T) {
	t.Parallel()
	s := serve(t, Options{MaxConns: 2}, readAll)
	a, b := dial(t, s.addr), dial(t, s.addr)
	testbin.Eventually(t, "two connections open", 10*time.Second, func() bool {
		return s.metric(t, "meridian_http_open_connections", "") == 2
	})
	over := dial(t, s.addr)
	_, _ = io.WriteString(over, "GET / HTTP/1.1\r\nHost: x\r\n\r\n")
	if got := closedByServer(t, over); got != "" {
		t.Errorf("the connection over the cap was answered: %q", got)
	}
	if n := s.metric(t, "meridian_http_rejected_total", "connections"); n != 1 {
		t.Errorf("connections rejections = %v, want 1", n)
	}
	_ = a.Close()
	testbin.Eventually(t, "the closed connection uncounted", 10*time.Second, func() bool {
		return s.metric(t, "meridian_http_open_connections", "") == 1
	})
	_, _ = io.WriteString(b, "GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
	if got := closedByServer(t, b); !strings.HasPrefix(got, "HTTP/1.1 200 ") {
		t.Errorf("a connection within the cap: %q", got)
	}
	next := dial(t, s.addr)
	_, _ = io.WriteString(next, "GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
	if got := closedByServer(t, next); !strings.HasPrefix(got, "HTTP/1.1 200 ") {
		t.Errorf("a new connection once below the cap again: %q", got)
	}
}

func TestMaxInFlightRefuses503(t *testing.T) {
	t.Parallel()
	release := make(chan struct{})
	var entered atomic.Int32
	s := serve(t, Options{
		MaxInFlight: 1,
		Refuse: func(w http.ResponseWriter, code int, msg string) {
			w.WriteHeader(code)
			fmt.Fprintf(w, `{"error":%q}`, msg)
		},
	}, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		entered.Add(1)
		<-release
		_, _ = io.WriteString(w, "ok")
	}))
	first := make(chan int, 1)
	go func() {
		resp, err := http.Get("http://" + s.addr)
		if err != nil {
			first <- 0
			return
		}
		_ = resp.Body.Close()
		first <- resp.StatusCode
	}()
	testbin.Eventually(t, "the first request in its handler", 10*time.Second, func() bool { return entered.Load() == 1 })
	resp, err := http.Get("http://" + s.addr)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	_ = resp.Body.Close()
	if resp.StatusCode != http.StatusServiceUnavailable || resp.Header.Get("Retry-After") != "1" || !strings.HasPrefix(string(b), `{"error":`) {
		t.Errorf("over the cap: %d Retry-After %q %s; want 503, Retry-After 1, the caller's error shape", resp.StatusCode, resp.Header.Get("Retry-After"), b)
	}
	if entered.Load() != 1 {
		t.Error("the refused request reached the handler")
	}
	close(release)
	if code := <-first; code != http.StatusOK {
		t.Errorf("the request within the cap: %d", code)
	}
	if n := s.metric(t, "meridian_http_rejected_total", "inflight"); n != 1 {
		t.Errorf("inflight rejections = %v, want 1", n)
	}
}

// roundTrip writes a raw request and reads the status line of the answer.
func roundTrip(t *testing.T, addr, req string) string {
	t.Helper()
	c := dial(t, addr)
	if _, err := io.WriteString(c, req); err != nil {
		t.Fatal(err)
	}
	line, err := bufio.NewReader(c).ReadString('\n')
	if err != nil {
		t.Fatalf("reading the answer: %v", err)
	}
	return strings.TrimSpace(line)
}

func TestOversizedHeadersGet431(t *testing.T) {
	t.Parallel()
	s := serve(t, Options{MaxHeaderBytes: 1 << 10}, readAll)
	big := "GET / HTTP/1.1\r\nHost: x\r\nX-Big: " + strings.Repeat("a", 16<<10) + "\r\n\r\n"
	if got := roundTrip(t, s.addr, big); got != "HTTP/1.1 431 Request Header Fields Too Large" {
		t.Errorf("16 KiB of headers over a 1 KiB cap: %q", got)
	}
	if got := roundTrip(t, s.addr, "GET / HTTP/1.1\r\nHost: x\r\nX-Small: a\r\n\r\n"); got != "HTTP/1.1 200 OK" {
		t.Errorf("small headers: %q", got)
	}
}

// Ambiguous framing (request smuggling) never reaches a handler:
// conflicting Content-Lengths and Content-Length beside chunked
// Transfer-Encoding are refused 400, an unknown transfer coding 501; the
// request before the ambiguous one on its connection is served.
func TestAmbiguousFramingIsRefused(t *testing.T) {
	t.Parallel()
	var paths []string
	var mu sync.Mutex
	s := serve(t, Options{}, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
		mu.Lock()
		paths = append(paths, r.URL.Path)
		mu.Unlock()
	}))
	for name, c := range map[string]struct{ req, want string }{
		"two Content-Lengths":                {"POST /a HTTP/1.1\r\nHost: x\r\nContent-Length: 4\r\nContent-Length: 30\r\n\r\nabcdGET /smuggled HTTP/1.1\r\n\r\n", "HTTP/1.1 400 Bad Request"},
		"Transfer-Encoding not chunked":      {"POST /b HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: gzip, identity\r\n\r\nabcd", "HTTP/1.1 501 Not Implemented"},
		"Content-Length and chunked (CL.TE)": {"POST /c HTTP/1.1\r\nHost: x\r\nContent-Length: 4\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\nGET /smuggled HTTP/1.1\r\nHost: x\r\n\r\n", "HTTP/1.1 400 Bad Request"},
	} {
		if got := roundTrip(t, s.addr, c.req); got != c.want {
			t.Errorf("%s: %q, want %q", name, got, c.want)
		}
	}
	c := dial(t, s.addr)
	_, _ = io.WriteString(c, "GET /first HTTP/1.1\r\nHost: x\r\n\r\n"+
		"POST /d HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\nContent-Length: 30\r\n\r\n0\r\n\r\nGET /smuggled HTTP/1.1\r\nHost: x\r\n\r\n")
	got := closedByServer(t, c)
	if first, rest, _ := strings.Cut(got, "\r\n"); first != "HTTP/1.1 200 OK" || !strings.Contains(rest, "HTTP/1.1 400 Bad Request") || strings.Count(got, "HTTP/1.1 ") != 2 {
		t.Errorf("answers %q, want 200 for the first request and 400 for the ambiguous one, then the connection closed", got)
	}
	mu.Lock()
	defer mu.Unlock()
	if want := []string{"/first"}; !slices.Equal(paths, want) {
		t.Errorf("the handler saw %q, want %q", paths, want)
	}
}

func TestIdleTimeoutClosesKeepAlive(t *testing.T) {
	t.Parallel()
	s := serve(t, Options{IdleTimeout: 200 * time.Millisecond}, readAll)
	c := dial(t, s.addr)
	_, _ = io.WriteString(c, "GET / HTTP/1.1\r\nHost: x\r\n\r\n")
	got := closedByServer(t, c)
	if !strings.HasPrefix(got, "HTTP/1.1 200 ") {
		t.Errorf("answer before the idle close: %q", got)
	}
}

func TestDefaults(t *testing.T) {
	t.Parallel()
	srv, err := New(readAll, Options{})
	if err != nil {
		t.Fatal(err)
	}
	if srv.ReadHeaderTimeout != DefaultReadHeaderTimeout || srv.WriteTimeout != DefaultWriteTimeout ||
		srv.IdleTimeout != DefaultIdleTimeout || srv.MaxHeaderBytes != DefaultMaxHeaderBytes || srv.ReadTimeout != 0 {
		t.Errorf("defaults not applied: %+v", srv)
	}
	srv, err = New(readAll, Options{ReadHeaderTimeout: -1, WriteTimeout: -1, IdleTimeout: -1})
	if err != nil {
		t.Fatal(err)
	}
	if srv.ReadHeaderTimeout != 0 || srv.WriteTimeout != 0 || srv.IdleTimeout != 0 {
		t.Errorf("negative limits not turned off: %+v", srv)
	}
}

// Servers sharing a registry share the vectors, told apart by server.
func TestServersShareARegistry(t *testing.T) {
	t.Parallel()
	reg := prometheus.NewRegistry()
	for _, name := range []string{"a", "b", "a"} {
		if _, err := New(readAll, Options{Name: name, Registerer: reg}); err != nil {
			t.Fatalf("server %s: %v", name, err)
		}
	}
	testbin.Metric(t, reg, "meridian_http_rejected_total", map[string]string{"server": "b", "reason": "inflight"})
}

// h2cClient speaks HTTP/2 in the clear with prior knowledge, as a gRPC
// client does.
func h2cClient() *http.Client {
	p := new(http.Protocols)
	p.SetUnencryptedHTTP2(true)
	return &http.Client{Transport: &http.Transport{Protocols: p}, Timeout: 10 * time.Second}
}

func TestHTTP2InTheClearAndItsStreamsCountInFlight(t *testing.T) {
	t.Parallel()
	release := make(chan struct{})
	var entered atomic.Int32
	s := serve(t, Options{MaxInFlight: 1}, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.ProtoMajor != 2 {
			http.Error(w, "want HTTP/2, got "+r.Proto, http.StatusHTTPVersionNotSupported)
			return
		}
		entered.Add(1)
		<-release
		_, _ = io.WriteString(w, "ok")
	}))
	c := h2cClient()
	t.Cleanup(c.CloseIdleConnections)
	first := make(chan string, 1)
	go func() {
		resp, err := c.Get("http://" + s.addr)
		if err != nil {
			first <- err.Error()
			return
		}
		b, _ := io.ReadAll(resp.Body)
		_ = resp.Body.Close()
		first <- fmt.Sprintf("%s %d %s", resp.Proto, resp.StatusCode, b)
	}()
	testbin.Eventually(t, "the first stream in its handler", 10*time.Second, func() bool { return entered.Load() == 1 })
	// A second stream on the same connection is over the cap.
	resp, err := c.Get("http://" + s.addr)
	if err != nil {
		t.Fatal(err)
	}
	_ = resp.Body.Close()
	if resp.ProtoMajor != 2 || resp.StatusCode != http.StatusServiceUnavailable {
		t.Errorf("second stream: %s %d, want HTTP/2.0 503", resp.Proto, resp.StatusCode)
	}
	close(release)
	if got := <-first; got != "HTTP/2.0 200 ok" {
		t.Errorf("first stream: %q, want HTTP/2.0 200 ok", got)
	}
}
