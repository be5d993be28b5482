package fleetpage

import (
	"bytes"
	"context"
	"embed"
	"encoding/json"
	"html/template"
	"io/fs"
	"log/slog"
	"net/http"
	"sync"
	"time"
)

//go:embed assets
var assets embed.FS

// static is what /static/ serves: the page's script and style.
var static = func() fs.FS {
	sub, err := fs.Sub(assets, "assets/static")
	if err != nil {
		panic(err)
	}
	return sub
}()

var index = template.Must(template.ParseFS(assets, "assets/index.html"))

// Options configure the page's handler.
type Options struct {
	// Refresh is how often the page asks for a new snapshot; default 1s.
	// Snapshots are shared between the requests of half of it.
	Refresh time.Duration
	// Timeout bounds one snapshot; default 5s.
	Timeout time.Duration
	// Logger receives the source's failures; default slog.Default().
	Logger *slog.Logger
}

// Handler serves the page on / (its assets on /static/) and its
// snapshots on /api/fleet, read from src. It answers GET and HEAD only.
func Handler(src Source, o Options) http.Handler {
	if o.Refresh <= 0 {
		o.Refresh = time.Second
	}
	if o.Timeout <= 0 {
		o.Timeout = 5 * time.Second
	}
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	h := &handler{src: src, opts: o}
	var page bytes.Buffer
	if err := index.Execute(&page, struct {
		Refresh int64
		Land    []string
		Grid    []string
		Width   float64
		Height  float64
		Scale   float64
	}{o.Refresh.Milliseconds(), landPaths(), gridPaths(), mapWidth, mapHeight, mapScale}); err != nil {
		panic(err) // the embedded template and data are fixed
	}
	h.page = page.Bytes()
	mux := http.NewServeMux()
	mux.HandleFunc("GET /{$}", h.serveIndex)
	mux.Handle("GET /static/", http.StripPrefix("/static/", http.FileServerFS(static)))
	mux.HandleFunc("GET /api/fleet", h.serveFleet)
	return secure(mux)
}

type handler struct {
	src  Source
	opts Options
	page []byte

	mu   sync.Mutex // one snapshot at a time
	last []byte
	at   time.Time
}

func (h *handler) serveIndex(w http.ResponseWriter, _ *http.Request) {
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.Header().Set("Cache-Control", "no-cache")
	_, _ = w.Write(h.page)
}

func (h *handler) serveFleet(w http.ResponseWriter, r *http.Request) {
	b, err := h.snapshot(r.Context())
	w.Header().Set("Cache-Control", "no-store")
	if err != nil {
		h.opts.Logger.Warn("fleet page: snapshot failed", "err", err)
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusServiceUnavailable)
		_ = json.NewEncoder(w).Encode(map[string]string{"error": "the hub's state cannot be read now; see the hub's log"})
		return
	}
	w.Header().Set("Content-Type", "application/json")
	_, _ = w.Write(b)
}

// snapshot is the source's snapshot as JSON, shared by the requests of
// half a refresh period.
func (h *handler) snapshot(ctx context.Context) ([]byte, error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.last != nil && time.Since(h.at) < h.opts.Refresh/2 {
		return h.last, nil
	}
	ctx, cancel := context.WithTimeout(ctx, h.opts.Timeout)
	defer cancel()
	f, err := h.src.Snapshot(ctx)
	if err != nil {
		return nil, err
	}
	normalize(&f)
	b, err := json.Marshal(f)
	if err != nil {
		return nil, err
	}
	h.last, h.at = b, time.Now()
	return b, nil
}

// normalize gives the script empty lists, not nulls.
func normalize(f *Fleet) {
	if f.Time.IsZero() {
		f.Time = time.Now()
	}
	if f.Regions == nil {
		f.Regions = []Region{}
	}
	for i := range f.Regions {
		if f.Regions[i].Clusters == nil {
			f.Regions[i].Clusters = []Cluster{}
		}
	}
	if f.Models == nil {
		f.Models = []Model{}
	}
	if f.Rollouts == nil {
		f.Rollouts = []Rollout{}
	}
	for i := range f.Rollouts {
		if f.Rollouts[i].Waves == nil {
			f.Rollouts[i].Waves = []Wave{}
		}
		if f.Rollouts[i].Steps == nil {
			f.Rollouts[i].Steps = []Step{}
		}
	}
	if f.Drills == nil {
		f.Drills = []Drill{}
	}
}

// secure sets the headers of a read-only page that loads nothing from
// elsewhere, and refuses every method but GET and HEAD.
func secure(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hd := w.Header()
		hd.Set("Content-Security-Policy", "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'")
		hd.Set("X-Content-Type-Options", "nosniff")
		hd.Set("X-Frame-Options", "DENY")
		hd.Set("Referrer-Policy", "no-referrer")
		if r.Method != http.MethodGet && r.Method != http.MethodHead {
			hd.Set("Allow", "GET, HEAD")
			http.Error(w, "the fleet page is read-only", http.StatusMethodNotAllowed)
			return
		}
		next.ServeHTTP(w, r)
	})
}
