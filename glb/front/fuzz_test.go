package front_test

import (
	"bytes"
	"strings"
	"testing"
	"time"
)

// FuzzFrontRequest sends raw bytes to a front served as `meridian glb`
// serves it, as one connection's requests, and checks what reaches the
// cluster behind it: whatever arrives, the front must not panic, must
// pass on only requests framed by Content-Length alone, without
// hop-by-hop headers or forwarding headers the client wrote, and must
// never forward a request whose header block has both Content-Length and
// Transfer-Encoding. Seeds: f.Add below and testdata/fuzz/FuzzFrontRequest.
func FuzzFrontRequest(f *testing.F) {
	for _, s := range []string{
		"POST /v2/models/m/infer HTTP/1.1\r\nHost: f\r\nContent-Length: 2\r\n\r\n{}",
		"POST /v2/models/m/infer HTTP/1.1\r\nHost: f\r\nTransfer-Encoding: chunked\r\n\r\n2\r\n{}\r\n0\r\n\r\n",
		"POST /v2/models/m/infer HTTP/1.1\r\nHost: f\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
		"POST /v2/models/m/infer HTTP/1.1\r\nHost: f\r\nTransfer-Encoding: chunked\r\nContent-Length: 5\r\n\r\n0\r\n\r\nGET /admin HTTP/1.1\r\n\r\n",
		"POST /analyze HTTP/1.1\r\nHost: f\r\nConnection: X-Forwarded-For, Keep-Alive\r\nKeep-Alive: 1\r\nX-Forwarded-For: 6.6.6.6\r\nForwarded: for=6.6.6.6\r\nContent-Length: 2\r\n\r\n{}",
		"GET /v2/models/m HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n",
		"POST /v2/models/m/infer HTTP/1.1\r\nHost: f\r\nX-A: b\r\n Transfer-Encoding: chunked\r\nContent-Length: 2\r\n\r\n{}",
		"POST /v2/models/m/infer HTTP/1.1\r\nHost: f\r\nContent-Length: 2\r\nContent-Length: 3\r\n\r\n{}",
		"GET /v2/models/m HTTP/1.1\r\nHost: f\r\nUpgrade: h2c\r\nConnection: Upgrade, HTTP2-Settings\r\nHTTP2-Settings: AAMAAABkAAQAoAAAAAIAAAAA\r\n\r\n",
		"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n",
	} {
		f.Add([]byte(s))
	}
	sf := newSmugglingFront(f)
	const closing = "GET /v2/models/m/ready HTTP/1.1\r\nHost: f\r\nConnection: close\r\n\r\n"
	f.Fuzz(func(t *testing.T, raw []byte) {
		before := sf.hits.Load()
		sf.send(t, append(append([]byte(nil), raw...), closing...), time.Second)
		if v := sf.firstViolation(); v != "" {
			t.Fatal(v)
		}
		if ambiguousFirst(raw) && sf.hits.Load() != before {
			t.Fatalf("a request with both Content-Length and Transfer-Encoding reached the cluster")
		}
	})
}

// ambiguousFirst reports whether the first header block in raw names both
// Content-Length and Transfer-Encoding.
func ambiguousFirst(raw []byte) bool {
	block, _, ok := bytes.Cut(raw, []byte("\n\r\n"))
	if b2, _, ok2 := bytes.Cut(raw, []byte("\n\n")); ok2 && (!ok || len(b2) < len(block)) {
		block, ok = b2, true
	}
	if !ok {
		return false
	}
	var cl, te bool
	for _, line := range strings.Split(string(block), "\n") {
		l := strings.ToLower(line)
		cl = cl || strings.HasPrefix(l, "content-length:")
		te = te || strings.HasPrefix(l, "transfer-encoding:")
	}
	return cl && te
}
