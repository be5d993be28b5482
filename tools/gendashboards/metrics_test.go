package main

import (
	"regexp"
	"strings"
	"testing"
)

// targetLabels are the labels scraping adds (job, instance) and those
// docs/observability.md has each member's Prometheus add (region, cluster).
var targetLabels = []string{"job", "instance", "region", "cluster"}

var (
	// selector is a meridian_* name with the label matchers after it, if any.
	selector = regexp.MustCompile(`\bmeridian_[a-z0-9_]+\b(\{[^}]*\})?`)
	matcher  = regexp.MustCompile(`([a-zA-Z_][a-zA-Z0-9_]*)\s*(=~|!~|!=|=)`)
	// recordedName is a recording rule's name (level:metric:operations).
	recordedName = regexp.MustCompile(`(^|[^a-zA-Z0-9_"])([a-z_]+:[a-z0-9_:]+)`)
)

// unknownMetrics returns the problems with expr's series: a meridian_*
// name the code does not declare (a histogram's series are its _bucket,
// _sum and _count), a label matcher on a label that metric does not have,
// or a recorded name rules.yaml does not record.
func unknownMetrics(expr string, exported map[string]metric, recorded map[string]bool) []string {
	var bad []string
	for _, m := range recordedName.FindAllStringSubmatch(expr, -1) {
		if !recorded[m[2]] {
			bad = append(bad, m[2]+": rules.yaml records no such series")
		}
	}
	expr = recordedName.ReplaceAllString(expr, "$1")
	for _, sel := range selector.FindAllStringSubmatch(expr, -1) {
		name, matchers := strings.TrimSuffix(sel[0], sel[1]), sel[1]
		m, ok := exported[name]
		labels := map[string]bool{}
		for _, suffix := range []string{"_bucket", "_sum", "_count"} {
			if base, cut := strings.CutSuffix(name, suffix); cut && exported[base].histogram {
				m, ok = exported[base], true
				labels["le"] = suffix == "_bucket"
			}
		}
		if !ok {
			bad = append(bad, name+": Meridian exports no such metric")
			continue
		}
		for _, l := range targetLabels {
			labels[l] = true
		}
		for _, mt := range matcher.FindAllStringSubmatch(matchers, -1) {
			if !m.labels[mt[1]] && !labels[mt[1]] {
				bad = append(bad, name+": no label "+mt[1])
			}
		}
	}
	return bad
}

// TestMetricNamesExist fails when a dashboard or rule reads a metric, or
// matches on a label, that Meridian's code does not export, so renaming
// one breaks this test rather than a dashboard.
func TestMetricNamesExist(t *testing.T) {
	exported := exportedMetrics(t)
	recorded := map[string]bool{recLatitude: true, recLongitude: true} // one per known region
	for _, g := range rules(nil).Groups {
		for _, r := range g.Rules {
			if r.Record != "" {
				recorded[r.Record] = true
			}
		}
	}
	used := map[string]bool{}
	for at, expr := range exprs(t) {
		for _, problem := range unknownMetrics(expr, exported, recorded) {
			t.Errorf("%s: %s", at, problem)
		}
		for _, sel := range selector.FindAllStringSubmatch(recordedName.ReplaceAllString(expr, "$1"), -1) {
			used[strings.TrimSuffix(sel[0], sel[1])] = true
		}
	}
	if len(used) < 30 {
		t.Errorf("the dashboards and rules read only %d metrics", len(used))
	}
	if m := exported["meridian_agent_replicas"]; len(m.labels) != 3 || !m.labels["state"] {
		t.Errorf("meridian_agent_replicas declares labels %v, want namespace, name, state", m.labels)
	}

	// The check itself: a renamed metric, label or recording rule is caught.
	for _, expr := range []string{
		`rate(meridian_inference_request_total[5m])`,
		`histogram_quantile(0.9, meridian_glb_dns_requests_total_bucket)`,
		`meridian_agent_replicas{phase="ready"}`,
		`meridian_inference_request_duration_seconds_count{le="1"}`,
		`meridian:glb_target_up:max == 0`,
	} {
		if got := unknownMetrics(expr, exported, recorded); len(got) != 1 {
			t.Errorf("unknownMetrics(%s) = %v, want one problem", expr, got)
		}
	}
	ok := `sum(rate(meridian_inference_request_duration_seconds_bucket{le="0.4096", model=~"a", region="x"}[5m])) / ` +
		recTargetUp + ` * on (cluster) meridian_inference_queue_depth{version!="2"}`
	if got := unknownMetrics(ok, exported, recorded); got != nil {
		t.Errorf("a histogram's buckets, a recorded series and a const label: %v", got)
	}
}
