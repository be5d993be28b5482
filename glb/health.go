package glb

import (
	"net/http"
)

// Health paths of the balancer's HTTP front, served by the front itself
// (not proxied), without credentials, for the load balancer or probe in
// front of it: live while the process serves; ready once it holds a
// snapshot of the fleet (from the hub, or the last-known-good file) to
// route by.
const (
	LivePath  = "/v2/health/live"
	ReadyPath = "/v2/health/ready"
)

// withHealth answers the health paths and passes everything else to next.
func (b *Balancer) withHealth(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodGet && r.Method != http.MethodHead {
			next.ServeHTTP(w, r)
			return
		}
		switch r.URL.Path {
		case LivePath:
			writeHealth(w, http.StatusOK, `{"live":true}`)
		case ReadyPath:
			if b.src.Current() == nil {
				writeHealth(w, http.StatusServiceUnavailable, `{"ready":false,"reason":"no snapshot of the fleet yet: the hub has not been read and there is no last-known-good file"}`)
				return
			}
			writeHealth(w, http.StatusOK, `{"ready":true}`)
		default:
			next.ServeHTTP(w, r)
		}
	})
}

func writeHealth(w http.ResponseWriter, code int, body string) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	_, _ = w.Write([]byte(body + "\n"))
}
