package testbin

import (
	"fmt"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// fatalT records the first Fatal and ends its goroutine, as testing.T does.
type fatalT struct {
	testing.TB
	msg string
}

func (f *fatalT) Helper() {}
func (f *fatalT) Fatal(args ...any) {
	f.msg = fmt.Sprint(args...)
	runtime.Goexit()
}
func (f *fatalT) Fatalf(format string, args ...any) {
	f.msg = fmt.Sprintf(format, args...)
	runtime.Goexit()
}

// fails runs body with a fatalT and returns what it failed with ("" if not).
func fails(t *testing.T, body func(tb testing.TB)) string {
	ft := &fatalT{TB: t}
	done := make(chan struct{})
	go func() {
		defer close(done)
		body(ft)
	}()
	<-done
	return ft.msg
}

func TestEventually(t *testing.T) {
	t.Parallel()
	n := 0
	Eventually(t, "the third poll", time.Second, func() bool { n++; return n == 3 })
	Eventually(t, "a condition with a reason", time.Second, func() (bool, string) { return true, "" })

	msg := fails(t, func(tb testing.TB) {
		Eventually(tb, "never", 30*time.Millisecond, func() bool { return false })
	})
	if msg != "timed out after 30ms waiting for never" {
		t.Errorf("failure %q", msg)
	}
	msg = fails(t, func(tb testing.TB) {
		Eventually(tb, "never", 30*time.Millisecond, func() (bool, string) { return false, "2 of 3 ready" })
	})
	if !strings.HasSuffix(msg, "waiting for never; last: 2 of 3 ready") {
		t.Errorf("failure %q does not end with cond's last word", msg)
	}
}

func TestMetric(t *testing.T) {
	t.Parallel()
	reg := prometheus.NewRegistry()
	c := prometheus.NewCounterVec(prometheus.CounterOpts{Name: "c_total", Help: "a counter"}, []string{"code", "model"})
	g := prometheus.NewGauge(prometheus.GaugeOpts{Name: "g", Help: "a gauge"})
	h := prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: "h", Help: "a histogram"}, []string{"model"})
	reg.MustRegister(c, g, h)
	c.WithLabelValues("200", "a").Add(2)
	c.WithLabelValues("200", "b").Add(3)
	c.WithLabelValues("500", "a").Inc()
	g.Set(7)
	h.WithLabelValues("a").Observe(1.5)
	h.WithLabelValues("a").Observe(2)

	for _, tc := range []struct {
		name   string
		labels map[string]string
		want   float64
	}{
		{"c_total", nil, 6},
		{"c_total", map[string]string{"code": "200"}, 5},
		{"c_total", map[string]string{"code": "200", "model": "b"}, 3},
		{"g", nil, 7},
		{"h", map[string]string{"model": "a"}, 2},
	} {
		if got := Metric(t, reg, tc.name, tc.labels); got != tc.want {
			t.Errorf("Metric(%s, %v) = %v, want %v", tc.name, tc.labels, got, tc.want)
		}
	}
	if got := HistogramSum(t, reg, "h", nil); got != 3.5 {
		t.Errorf("HistogramSum = %v, want 3.5", got)
	}
	if v, ok := MetricIfAny(t, reg, "c_total", map[string]string{"code": "429"}); ok || v != 0 {
		t.Errorf("MetricIfAny(absent) = %v, %v", v, ok)
	}

	msg := fails(t, func(tb testing.TB) { Metric(tb, reg, "c_total", map[string]string{"code": "429"}) })
	if !strings.Contains(msg, `c_total{code="429"}: no such series`) || !strings.Contains(msg, `c_total{code="500",model="a"}`) {
		t.Errorf("absent series: %q", msg)
	}
	msg = fails(t, func(tb testing.TB) { Metric(tb, reg, "misspelt_total", nil) })
	if msg != "metric misspelt_total{}: no series in the registry" {
		t.Errorf("absent name: %q", msg)
	}
}
