package metricsreg

import (
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
)

func TestRegisterAllOrNone(t *testing.T) {
	reg := prometheus.NewRegistry()
	a := prometheus.NewCounter(prometheus.CounterOpts{Name: "a_total", Help: "a"})
	b := prometheus.NewCounter(prometheus.CounterOpts{Name: "b_total", Help: "b"})
	if err := Register(reg, "test", b); err != nil {
		t.Fatal(err)
	}
	// a then a second b: b is taken, so a must not stay registered.
	err := Register(reg, "test", a, prometheus.NewCounter(prometheus.CounterOpts{Name: "b_total", Help: "b"}))
	if err == nil || !strings.Contains(err.Error(), "test metrics are already registered") {
		t.Fatalf("err = %v, want the component named", err)
	}
	if err := reg.Register(a); err != nil {
		t.Errorf("a stayed registered after the failed Register: %v", err)
	}
	if err := Register(nil, "test", a); err != nil {
		t.Errorf("nil registry: %v", err)
	}
}
