package fleet

import (
	"net"
	"net/http"
	"net/http/httputil"
	"net/url"
	"slices"
	"strings"
	"sync/atomic"
	"time"

	v1 "meridian.dev/meridian/crds/v1alpha1"
)

// Front is the local fleet's one entry point (127.0.0.1:8000 under
// `meridian up`): it sends each request to a Ready region that serves the
// request's model, rotating between them. It is the seam where the global
// balancer's HTTP front will take over; it does no geo-steering.
type Front struct {
	f    *Fleet
	srv  *http.Server
	ln   net.Listener
	next atomic.Uint64
}

// ServeFront serves the front on ln.
func (f *Fleet) ServeFront(ln net.Listener) *Front {
	fr := &Front{f: f, ln: ln}
	fr.srv = &http.Server{Handler: fr, ReadHeaderTimeout: 10 * time.Second}
	go func() { _ = fr.srv.Serve(ln) }()
	return fr
}

// Addr is where the front listens.
func (fr *Front) Addr() string { return fr.ln.Addr().String() }

// Close stops the front.
func (fr *Front) Close() { _ = fr.srv.Close() }

// modelOf names the model a request is for: /analyze is sentiment's,
// /v2/models/<m>/... is m's.
func modelOf(path string) string {
	if path == "/analyze" {
		return "sentiment"
	}
	if rest, ok := strings.CutPrefix(path, "/v2/models/"); ok {
		m, _, _ := strings.Cut(rest, "/")
		return m
	}
	return ""
}

func (fr *Front) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	model := modelOf(r.URL.Path)
	var list v1.ClusterList
	if model == "" || fr.f.Hub.Client.List(r.Context(), &list) != nil {
		http.Error(w, `{"error":"this front serves /analyze and /v2/models/<model>/...; see docs/hub.md"}`, http.StatusNotFound)
		return
	}
	var targets []string
	for _, c := range list.Items {
		if c.Status.Health != v1.HealthReady {
			continue
		}
		for _, m := range c.Status.Models {
			if m.Model == model && m.ReadyReplicas > 0 && m.Endpoint != "" {
				targets = append(targets, m.Endpoint)
			}
		}
	}
	if len(targets) == 0 {
		w.Header().Set("Retry-After", "1")
		http.Error(w, `{"error":"no region serves this model right now"}`, http.StatusServiceUnavailable)
		return
	}
	slices.Sort(targets)
	target, err := url.Parse(targets[fr.next.Add(1)%uint64(len(targets))])
	if err != nil {
		http.Error(w, `{"error":"bad endpoint"}`, http.StatusBadGateway)
		return
	}
	httputil.NewSingleHostReverseProxy(target).ServeHTTP(w, r)
}
