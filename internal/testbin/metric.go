package testbin

import (
	"fmt"
	"maps"
	"slices"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
)

// Metric reads name from reg: the sum, over its series whose labels
// include labels (nil: every series), of a counter's or gauge's value or
// a histogram's sample count. It fails the test when no series matches,
// naming the series reg does have, so a misspelt name or label cannot
// pass an assertion; read a series that may not exist yet (a labelled
// counter nothing has touched, a value being polled for) with
// MetricIfAny.
func Metric(t testing.TB, reg *prometheus.Registry, name string, labels map[string]string) float64 {
	t.Helper()
	v, _, ok := read(t, reg, name, labels)
	if !ok {
		t.Fatal(absent(t, reg, name, labels))
	}
	return v
}

// MetricIfAny is Metric for a series that may not exist yet: 0 and false
// when no series matches.
func MetricIfAny(t testing.TB, reg *prometheus.Registry, name string, labels map[string]string) (float64, bool) {
	t.Helper()
	v, _, ok := read(t, reg, name, labels)
	return v, ok
}

// HistogramSum reads the sum of the observations of the histogram name in
// reg, over its series whose labels include labels. It fails the test when
// no series matches.
func HistogramSum(t testing.TB, reg *prometheus.Registry, name string, labels map[string]string) float64 {
	t.Helper()
	_, sum, ok := read(t, reg, name, labels)
	if !ok {
		t.Fatal(absent(t, reg, name, labels))
	}
	return sum
}

func read(t testing.TB, reg *prometheus.Registry, name string, labels map[string]string) (v, hsum float64, found bool) {
	t.Helper()
	for _, m := range series(t, reg, name) {
		if !hasLabels(m, labels) {
			continue
		}
		found = true
		switch {
		case m.Counter != nil:
			v += m.GetCounter().GetValue()
		case m.Gauge != nil:
			v += m.GetGauge().GetValue()
		case m.Histogram != nil:
			v += float64(m.GetHistogram().GetSampleCount())
			hsum += m.GetHistogram().GetSampleSum()
		}
	}
	return v, hsum, found
}

func series(t testing.TB, reg *prometheus.Registry, name string) []*dto.Metric {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatalf("gathering metrics: %v", err)
	}
	for _, mf := range mfs {
		if mf.GetName() == name {
			return mf.GetMetric()
		}
	}
	return nil
}

func hasLabels(m *dto.Metric, want map[string]string) bool {
	got := map[string]string{}
	for _, lp := range m.GetLabel() {
		got[lp.GetName()] = lp.GetValue()
	}
	for k, v := range want {
		if g, ok := got[k]; !ok || g != v {
			return false
		}
	}
	return true
}

// absent says that no series of name matches labels, and what reg has.
func absent(t testing.TB, reg *prometheus.Registry, name string, labels map[string]string) string {
	t.Helper()
	have := series(t, reg, name)
	if len(have) == 0 {
		return fmt.Sprintf("metric %s: no series in the registry", format(name, labels))
	}
	var s []string
	for _, m := range have {
		l := map[string]string{}
		for _, lp := range m.GetLabel() {
			l[lp.GetName()] = lp.GetValue()
		}
		s = append(s, format(name, l))
	}
	return fmt.Sprintf("metric %s: no such series; the registry has %s", format(name, labels), strings.Join(s, ", "))
}

func format(name string, labels map[string]string) string {
	var pairs []string
	for _, k := range slices.Sorted(maps.Keys(labels)) {
		pairs = append(pairs, fmt.Sprintf("%s=%q", k, labels[k]))
	}
	return name + "{" + strings.Join(pairs, ",") + "}"
}
