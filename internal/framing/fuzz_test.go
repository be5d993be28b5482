package framing_test

import (
	"io"
	"net/http"
	"net/http/httptest"
	"slices"
	"testing"
	"time"
)

// FuzzFraming sends the same bytes to a server behind framing.Listener and
// to a plain one: the guarded server must read every request it serves
// exactly as net/http alone reads it, in the same order, and may only stop
// early (at an ambiguous request). A parser that lost track of a body
// would show here as a request the plain server never saw.
func FuzzFraming(f *testing.F) {
	for _, s := range []string{
		getA + postB + chunkedC + lookalike,
		getA + "POST /s HTTP/1.1\r\nHost: x\r\nContent-Length: 6\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n" + getA,
		"POST /c HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n3\nabc\n0\n\n" + getA,
		"POST /c HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\nfffffffffffffffff\r\n" + getA,
		"\r\n\r\n" + getA + "GET /v HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n" + getA,
		"POST /b HTTP/1.1\r\nHost: x\r\nContent-Length: +5\r\n\r\nhello" + getA,
	} {
		f.Add([]byte(s))
	}
	guarded, plain := newServer(f), plainServer(f)
	const closing = "GET /end HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
	f.Fuzz(func(t *testing.T, raw []byte) {
		in := string(raw) + closing
		g0, p0 := len(guarded.handled()), len(plain.handled())
		_, gClosed := exchangeWithin(t, guarded.addr, in, 2*time.Second, false, false)
		_, pClosed := exchangeWithin(t, plain.addr, in, 2*time.Second, false, false)
		if !gClosed || !pClosed {
			return // a body still expected: what was served depends on timing
		}
		g, p := guarded.handled()[g0:], plain.handled()[p0:]
		if len(g) > len(p) || !slices.Equal(g, p[:len(g)]) {
			t.Fatalf("guarded server read %q, net/http alone %q", g, p)
		}
	})
}

// plainServer is newServer without the guard.
func plainServer(tb testing.TB) *server {
	tb.Helper()
	s := &server{}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		s.mu.Lock()
		s.seen = append(s.seen, r.URL.Path+" "+string(body))
		s.mu.Unlock()
		_, _ = io.WriteString(w, "ok")
	}))
	tb.Cleanup(srv.Close)
	s.addr = srv.Listener.Addr().String()
	return s
}
