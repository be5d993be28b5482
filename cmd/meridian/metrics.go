package main

import (
	"fmt"
	"log/slog"
	"net"
	"net/http"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	ctrlmetrics "sigs.k8s.io/controller-runtime/pkg/metrics"
)

// serveMetrics serves reg's metrics on addr's /metrics (and /) for as long
// as the process runs, and beside them controller-runtime's own
// (controller_runtime_reconcile_*, workqueue_*, rest_client_*), which it
// keeps in its registry; an empty addr serves nothing.
func serveMetrics(addr string, reg *prometheus.Registry, log *slog.Logger) error {
	if addr == "" {
		return nil
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return fmt.Errorf("--metrics-addr %s: %w", addr, err)
	}
	go func() { _ = http.Serve(ln, metricsHandler(reg)) }()
	log.Info("serving metrics", "addr", ln.Addr().String())
	return nil
}

func metricsHandler(reg *prometheus.Registry) http.Handler {
	return promhttp.HandlerFor(prometheus.Gatherers{reg, ctrlmetrics.Registry}, promhttp.HandlerOpts{})
}
