package auth

import (
	"net/http"
	"net/netip"
	"path"
	"strings"

	"meridian.dev/meridian/internal/oipgrpc"
)

// ModelFromPath returns a ModelOf for the Open Inference Protocol: the
// model of /v2/models/{model}/… paths, or the model extra names for an
// exact path (for example {"/analyze": "sentiment"}), or the model a gRPC
// call's message names (package internal/oipgrpc), else "".
func ModelFromPath(extra map[string]string) func(*http.Request) string {
	return func(r *http.Request) string {
		if oipgrpc.IsCall(r) {
			return oipgrpc.PolicyModel(r, oipgrpc.DefaultLimit)
		}
		p := cleanPath(r.URL.Path)
		if m, ok := extra[p]; ok {
			return m
		}
		rest, ok := strings.CutPrefix(p, "/v2/models/")
		if !ok {
			return ""
		}
		m, _, _ := strings.Cut(rest, "/")
		return m
	}
}

// cleanPath is the path a ServeMux would route p to: rooted, with dot
// segments and repeated slashes removed, so "/./metrics" and "//metrics"
// match the rule for "/metrics".
func cleanPath(p string) string {
	if p == "" {
		return "/"
	}
	c := path.Clean("/" + p)
	if strings.HasSuffix(p, "/") && c != "/" {
		c += "/"
	}
	return c
}

// underAny reports whether the cleaned path p is one of prefixes or below
// one of them, on a segment boundary: "/metrics" covers "/metrics" and
// "/metrics/x", not "/metricsx".
func underAny(p string, prefixes []string) bool {
	for _, pre := range prefixes {
		pre = strings.TrimSuffix(pre, "/")
		if pre == "" || p == pre || strings.HasPrefix(p, pre+"/") {
			return true
		}
	}
	return false
}

// fromLoopback reports whether the request's connection comes from a
// loopback address. Only the peer address counts: headers such as
// X-Forwarded-For are the client's to write.
func fromLoopback(r *http.Request) bool {
	ap, err := netip.ParseAddrPort(r.RemoteAddr)
	return err == nil && ap.Addr().Unmap().IsLoopback()
}
