package front

import (
	"bytes"
	"context"
	"io"
	"net/http"
	"net/netip"
	"net/url"
	"strings"
)

// hopHeaders are meaningful only for one connection and are not
// forwarded (RFC 9110 section 7.6.1).
var hopHeaders = []string{
	"Connection", "Proxy-Connection", "Keep-Alive", "Proxy-Authenticate",
	"Proxy-Authorization", "Te", "Trailer", "Transfer-Encoding", "Upgrade",
}

// copyHeader copies src into dst without hop-by-hop headers.
func copyHeader(dst, src http.Header) {
	for k, vv := range src {
		dst[k] = append([]string(nil), vv...)
	}
	removeHopHeaders(dst)
}

func removeHopHeaders(h http.Header) {
	for _, f := range h["Connection"] {
		for name := range strings.SplitSeq(f, ",") {
			if name = strings.TrimSpace(name); name != "" {
				h.Del(name)
			}
		}
	}
	for _, k := range hopHeaders {
		h.Del(k)
	}
}

// outgoing builds the copy of r sent to the cluster at base: same method,
// path, query, headers (Inference-Header-Content-Length among them) and
// body, less hop-by-hop headers and the client's forwarding headers, plus the
// front's X-Forwarded-For (the trusted chain), -Host and -Proto. A gRPC
// call keeps "TE: trailers", which gRPC servers require.
func outgoing(ctx context.Context, r *http.Request, base *url.URL, body []byte, chain []netip.Addr, grpc bool) *http.Request {
	u := *base
	u.Path, u.RawPath = joinPath(base, r.URL)
	u.RawQuery = r.URL.RawQuery
	u.Fragment, u.RawFragment = "", ""
	out := &http.Request{
		Method:        r.Method,
		URL:           &u,
		Proto:         "HTTP/1.1",
		ProtoMajor:    1,
		ProtoMinor:    1,
		Header:        r.Header.Clone(),
		Host:          u.Host,
		ContentLength: int64(len(body)),
	}
	if out.Header == nil {
		out.Header = make(http.Header)
	}
	removeHopHeaders(out.Header)
	if grpc {
		out.Header.Set("Te", "trailers")
	}
	out.Header.Del("Content-Length") // the Transport frames the body itself
	// The body is already here; waiting for a 100 Continue only adds a
	// round trip.
	out.Header.Del("Expect")
	if len(body) > 0 {
		out.Body = io.NopCloser(bytes.NewReader(body))
		out.GetBody = func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(body)), nil }
	}
	setForwarded(out.Header, r, chain)
	if _, ok := out.Header["User-Agent"]; !ok {
		out.Header.Set("User-Agent", "") // send none rather than Go's default
	}
	return out.WithContext(ctx)
}

// joinPath appends the request's path to the base URL's path, keeping an
// escaped form when either has one.
func joinPath(base, req *url.URL) (path, rawPath string) {
	if base.RawPath == "" && req.RawPath == "" {
		return singleJoin(base.Path, req.Path), ""
	}
	return singleJoin(base.Path, req.Path), singleJoin(base.EscapedPath(), req.EscapedPath())
}

func singleJoin(a, b string) string {
	switch as, bs := strings.HasSuffix(a, "/"), strings.HasPrefix(b, "/"); {
	case as && bs:
		return a + b[1:]
	case !as && !bs && a != "" && b != "":
		return a + "/" + b
	}
	return a + b
}
