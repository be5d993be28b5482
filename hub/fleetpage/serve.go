package fleetpage

import (
	"context"
	"crypto/tls"
	"fmt"
	"log/slog"
	"net"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/spf13/pflag"
	"k8s.io/client-go/rest"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"meridian.dev/meridian/internal/httpserve"
	"meridian.dev/meridian/internal/scheme"
	"meridian.dev/meridian/internal/tlsx"
)

// Server serves the page on a listener, hardened (internal/httpserve).
type Server struct {
	// Source gives the snapshots.
	Source Source
	// Options configure the handler.
	Options Options
	// Registerer receives the listener's meridian_http_* series.
	Registerer prometheus.Registerer
	// TLS, when set, serves HTTPS only.
	TLS *tls.Config
}

// Serve serves the page on ln until ctx ends.
func (s *Server) Serve(ctx context.Context, ln net.Listener) error {
	srv, err := httpserve.New(Handler(s.Source, s.Options), httpserve.Options{Name: "fleet-page", Registerer: s.Registerer, Logger: s.Options.Logger})
	if err != nil {
		return err
	}
	srv.TLSConfig = s.TLS
	return httpserve.Serve(ctx, srv, ln, 2*time.Second)
}

// Flags are the hub's flags for the page: --page-listen (empty: no page),
// --drill-reports, --page-refresh and --page-tls-*.
type Flags struct {
	Listen       string
	DrillReports string
	Refresh      time.Duration
	TLS          tlsx.ServerFlags
}

// Register adds the flags to fs.
func (f *Flags) Register(fs *pflag.FlagSet) {
	fs.StringVar(&f.Listen, "page-listen", "", "address serving the live fleet page (a world map of the regions' health, replicas, load and users; the rollouts; the drills' timelines), read-only; empty turns it off. Bind loopback, or give --page-tls-* for other hosts")
	fs.StringVar(&f.DrillReports, "drill-reports", "", "directory of drill reports (meridian drill --out) whose timelines the fleet page shows; empty: none")
	fs.DurationVar(&f.Refresh, "page-refresh", time.Second, "how often the fleet page asks for the fleet's state")
	f.TLS.Register(fs, "page-tls", "the fleet page's listener")
}

// Start serves the page as the flags say until ctx ends, reading the hub
// cluster of cfg (the Clusters, InferenceModels and ModelRollouts); it
// does nothing when --page-listen is empty.
func (f *Flags) Start(ctx context.Context, cfg *rest.Config, reg prometheus.Registerer, tm *tlsx.Metrics, log *slog.Logger) error {
	if f.Listen == "" {
		return nil
	}
	tlsCfg, err := f.TLS.Config(ctx, tlsx.ReloaderOptions{Name: "page", Logger: log, Metrics: tm})
	if err != nil {
		return err
	}
	c, err := client.New(cfg, client.Options{Scheme: scheme.Scheme})
	if err != nil {
		return err
	}
	ln, err := net.Listen("tcp", f.Listen)
	if err != nil {
		return fmt.Errorf("--page-listen %s: %w", f.Listen, err)
	}
	s := &Server{
		Source:     &HubSource{Client: c, Rollouts: ModelRollouts{Client: c}, DrillReports: f.DrillReports},
		Options:    Options{Refresh: f.Refresh, Logger: log.With("component", "fleet-page")},
		Registerer: reg, TLS: tlsCfg,
	}
	go func() {
		if err := s.Serve(ctx, ln); err != nil {
			log.Error("fleet page stopped", "err", err)
		}
	}()
	scheme := "http"
	if tlsCfg != nil {
		scheme = "https"
	}
	log.Info("serving the fleet page", "url", scheme+"://"+ln.Addr().String()+"/")
	return nil
}
