package main

import (
	"io"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	ctrlmetrics "sigs.k8s.io/controller-runtime/pkg/metrics"
)

// /metrics serves Meridian's registry and controller-runtime's together.
func TestMetricsServeControllerRuntimesToo(t *testing.T) {
	reg := prometheus.NewRegistry()
	ours := prometheus.NewCounter(prometheus.CounterOpts{Name: "meridian_test_total", Help: "a Meridian metric"})
	reg.MustRegister(ours)
	ctrls := prometheus.NewCounter(prometheus.CounterOpts{Name: "controller_runtime_test_total", Help: "one in controller-runtime's registry"})
	ctrlmetrics.Registry.MustRegister(ctrls)
	t.Cleanup(func() { ctrlmetrics.Registry.Unregister(ctrls) })
	ours.Inc()
	ctrls.Inc()
	srv := httptest.NewServer(metricsHandler(reg))
	defer srv.Close()
	resp, err := srv.Client().Get(srv.URL + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = resp.Body.Close() }()
	b, _ := io.ReadAll(resp.Body)
	for _, want := range []string{"meridian_test_total 1", "controller_runtime_test_total 1"} {
		if !strings.Contains(string(b), want) {
			t.Errorf("/metrics lacks %q", want)
		}
	}
}
