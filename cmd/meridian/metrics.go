package main

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"net/http"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/spf13/pflag"
	ctrlmetrics "sigs.k8s.io/controller-runtime/pkg/metrics"

	"meridian.dev/meridian/internal/httpserve"
	"meridian.dev/meridian/internal/tlsx"
)

// metricsFlags are a component's /metrics listener: its address and,
// where it leaves the machine, its TLS (--metrics-tls-*; mutual TLS
// with --metrics-tls-require-client-cert lets only the scraper in).
type metricsFlags struct {
	addr string
	tls  tlsx.ServerFlags
}

func (m *metricsFlags) register(fs *pflag.FlagSet, defaultAddr, what string) {
	fs.StringVar(&m.addr, "metrics-addr", defaultAddr, "address serving "+what+"; empty turns it off (the default binds loopback only: give an address other hosts reach, with --metrics-tls-*, for a scraper elsewhere)")
	m.tls.Register(fs, "metrics-tls", "the /metrics listener")
}

// serve serves reg's metrics on the address's /metrics (and /) for as
// long as the process runs, hardened (internal/httpserve) and over TLS
// when asked, and beside them controller-runtime's own
// (controller_runtime_reconcile_*, workqueue_*, rest_client_*), which it
// keeps in its registry; an empty address serves nothing.
func (m *metricsFlags) serve(reg *prometheus.Registry, tm *tlsx.Metrics, log *slog.Logger) error {
	if m.addr == "" {
		return nil
	}
	cfg, err := m.tls.Config(context.Background(), tlsx.ReloaderOptions{Name: "metrics", Logger: log, Metrics: tm})
	if err != nil {
		return err
	}
	srv, err := httpserve.New(metricsHandler(reg), httpserve.Options{Name: "metrics", Registerer: reg, Logger: log})
	if err != nil {
		return err
	}
	srv.TLSConfig = cfg
	ln, err := net.Listen("tcp", m.addr)
	if err != nil {
		return fmt.Errorf("--metrics-addr %s: %w", m.addr, err)
	}
	go func() { _ = httpserve.ServeOnce(srv, ln) }()
	log.Info("serving metrics", "addr", ln.Addr().String(), "tls", cfg != nil)
	return nil
}

func metricsHandler(reg *prometheus.Registry) http.Handler {
	return promhttp.HandlerFor(prometheus.Gatherers{reg, ctrlmetrics.Registry}, promhttp.HandlerOpts{})
}
