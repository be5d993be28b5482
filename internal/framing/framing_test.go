package framing_test

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"meridian.dev/meridian/internal/framing"
)

// server is a real HTTP server behind framing.Listener that keeps the
// path and body of every request its handler got.
type server struct {
	mu   sync.Mutex
	seen []string
	addr string
}

func newServer(t testing.TB) *server {
	t.Helper()
	s := &server{}
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		s.mu.Lock()
		s.seen = append(s.seen, r.URL.Path+" "+string(body))
		s.mu.Unlock()
		_, _ = io.WriteString(w, "ok")
	}))
	srv.Listener = framing.Listener(srv.Listener)
	srv.Start()
	t.Cleanup(srv.Close)
	s.addr = srv.Listener.Addr().String()
	return s
}

func (s *server) handled() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]string(nil), s.seen...)
}

// exchange writes raw on one connection (a byte at a time when slow),
// closes its writing half and returns the status codes of every answer.
func exchange(t *testing.T, addr, raw string, slow bool) []int {
	t.Helper()
	codes, _ := exchangeWithin(t, addr, raw, 10*time.Second, slow, true)
	return codes
}

// exchangeWithin is exchange, giving up after wait, and closing the
// writing half only when asked (net/http takes it for the client leaving,
// which may race the requests it is serving). closed reports that the
// server closed the connection, every answer read.
func exchangeWithin(t *testing.T, addr, raw string, wait time.Duration, slow, halfClose bool) (codes []int, closed bool) {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = c.Close() }()
	_ = c.SetDeadline(time.Now().Add(wait))
	go func() {
		if slow {
			for i := range len(raw) {
				if _, err := c.Write([]byte{raw[i]}); err != nil {
					return
				}
			}
		} else {
			_, _ = io.WriteString(c, raw)
		}
		if halfClose {
			_ = c.(*net.TCPConn).CloseWrite()
		}
	}()
	br := bufio.NewReader(c)
	for {
		resp, err := http.ReadResponse(br, nil)
		if err != nil {
			return codes, errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF)
		}
		_, _ = io.Copy(io.Discard, resp.Body)
		_ = resp.Body.Close()
		codes = append(codes, resp.StatusCode)
	}
}

const (
	getA     = "GET /a HTTP/1.1\r\nHost: x\r\n\r\n"
	postB    = "POST /b HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\nhello"
	chunkedC = "POST /c HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n3;ext=1\r\nabc\r\n2\r\nde\r\n0\r\nX-Trailer: t\r\n\r\n"
)

// A body that only looks like a smuggled request is just a body.
const inner = "GET /e HTTP/1.1\r\nContent-Length: 1\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n"

var lookalike = fmt.Sprintf("POST /d HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n\r\n%s", len(inner), inner)

func TestAmbiguousFramingIsRefusedUnseen(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name  string
		raw   string
		codes []int
		seen  []string
	}{
		{"CL then TE", "POST /s HTTP/1.1\r\nHost: x\r\nContent-Length: 4\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n", []int{400}, nil},
		{"TE then CL", "POST /s HTTP/1.1\r\nHost: x\r\ntransfer-encoding: chunked\r\ncontent-length: 30\r\n\r\n0\r\n\r\n", []int{400}, nil},
		{"TE with CL in HTTP/1.0", "POST /s HTTP/1.0\r\nHost: x\r\nTransfer-Encoding: chunked\r\nContent-Length: 3\r\n\r\nabc", []int{400}, nil},
		{"differing CLs", "POST /s HTTP/1.1\r\nHost: x\r\nContent-Length: 4\r\nContent-Length: 5\r\n\r\nabcde", []int{400}, nil},
		{"folded TE", "POST /s HTTP/1.1\r\nHost: x\r\nX-A: b\r\n Transfer-Encoding: chunked\r\nContent-Length: 3\r\n\r\nabc", []int{400}, nil},
		{"clean requests kept alive", getA + postB + chunkedC + lookalike, []int{200, 200, 200, 200},
			[]string{"/a ", "/b hello", "/c abcde", "/d " + inner}},
		{"smuggle after clean ones", getA + postB + chunkedC + "POST /s HTTP/1.1\r\nHost: x\r\nContent-Length: 6\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\nGET /t HTTP/1.1\r\nHost: x\r\n\r\n",
			[]int{200, 200, 200, 400}, []string{"/a ", "/b hello", "/c abcde"}},
		{"same CL twice is one", "POST /b HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nContent-Length: 5\r\n\r\nhello", []int{200}, []string{"/b hello"}},
	}
	for _, tc := range cases {
		for _, slow := range []bool{false, true} {
			t.Run(tc.name+map[bool]string{true: " byte by byte"}[slow], func(t *testing.T) {
				t.Parallel()
				s := newServer(t)
				codes := exchange(t, s.addr, tc.raw, slow)
				if fmt.Sprint(codes) != fmt.Sprint(tc.codes) {
					t.Errorf("answers %v, want %v", codes, tc.codes)
				}
				if got := s.handled(); strings.Join(got, "|") != strings.Join(tc.seen, "|") {
					t.Errorf("handler saw %q, want %q", got, tc.seen)
				}
			})
		}
	}
}
