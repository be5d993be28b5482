package main

import (
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

// exportDirs hold the code of every component that exports metrics.
var exportDirs = []string{"agent", "glb", "gossip", "hub", "inference", "internal", "cmd"}

var (
	metricLiteral = regexp.MustCompile(`"(meridian_[a-z0-9_]+)"`)
	metricName    = regexp.MustCompile(`\bmeridian_[a-z0-9_]+\b`)
	// recordedName is a recording rule's name (level:metric:operations);
	// the lookbehind-free form needs the leading character checked.
	recordedName = regexp.MustCompile(`(^|[^a-zA-Z0-9_"])([a-z_]+:[a-z0-9_:]+)`)
	// histogramOpts names a histogram (Name comes first in every one).
	histogramOpts = regexp.MustCompile(`HistogramOpts\{\s*Name:\s*"(meridian_[a-z0-9_]+)"`)
)

// exportedMetrics reads the metric names Meridian's code exports: the
// string literals naming meridian_* series in its non-test Go files,
// mapped to whether the name is a histogram's.
func exportedMetrics(t *testing.T) map[string]bool {
	t.Helper()
	names := map[string]bool{}
	for _, dir := range exportDirs {
		err := filepath.WalkDir(filepath.Join(root, dir), func(path string, d fs.DirEntry, err error) error {
			if err != nil || d.IsDir() || !strings.HasSuffix(path, ".go") || strings.HasSuffix(path, "_test.go") {
				return err
			}
			b, err := os.ReadFile(path)
			for _, m := range metricLiteral.FindAllSubmatch(b, -1) {
				if _, seen := names[string(m[1])]; !seen {
					names[string(m[1])] = false
				}
			}
			for _, m := range histogramOpts.FindAllSubmatch(b, -1) {
				names[string(m[1])] = true
			}
			return err
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	if len(names) < 40 {
		t.Fatalf("only %d meridian_* names found in %v; did the code move?", len(names), exportDirs)
	}
	return names
}

// unknownMetrics returns the problems with expr's series names: a
// meridian_* name the code does not export (exported: each name, true for
// a histogram, whose series are its _bucket, _sum and _count), or a
// recorded name rules.yaml does not record.
func unknownMetrics(expr string, exported, recorded map[string]bool) []string {
	var bad []string
	for _, m := range recordedName.FindAllStringSubmatch(expr, -1) {
		if !recorded[m[2]] {
			bad = append(bad, m[2]+": rules.yaml records no such series")
		}
	}
	expr = recordedName.ReplaceAllString(expr, "$1")
	for _, n := range metricName.FindAllString(expr, -1) {
		if _, ok := exported[n]; ok {
			continue
		}
		histogram := false
		for _, suffix := range []string{"_bucket", "_sum", "_count"} {
			if b, ok := strings.CutSuffix(n, suffix); ok && exported[b] {
				histogram = true
			}
		}
		if !histogram {
			bad = append(bad, n+": Meridian exports no such metric")
		}
	}
	return bad
}

// TestMetricNamesExist fails when a dashboard or rule reads a metric that
// Meridian's code does not export, so renaming a metric breaks this test
// rather than a dashboard.
func TestMetricNamesExist(t *testing.T) {
	exported := exportedMetrics(t)
	recorded := map[string]bool{}
	for _, g := range rules(nil).Groups {
		for _, r := range g.Rules {
			if r.Record != "" {
				recorded[r.Record] = true
			}
		}
	}
	recorded[recLatitude], recorded[recLongitude] = true, true // one per known region
	used := map[string]bool{}
	for at, expr := range exprs(t) {
		for _, problem := range unknownMetrics(expr, exported, recorded) {
			t.Errorf("%s: %s", at, problem)
		}
		for _, n := range metricName.FindAllString(expr, -1) {
			used[n] = true
		}
	}
	if len(used) < 30 {
		t.Errorf("the dashboards and rules read only %d metrics", len(used))
	}

	// The check itself: a renamed metric or recording rule is caught.
	for _, expr := range []string{
		`rate(meridian_inference_request_total[5m])`,
		`histogram_quantile(0.9, meridian_glb_dns_requests_total_bucket)`,
		`meridian:glb_target_up:max == 0`,
	} {
		if got := unknownMetrics(expr, exported, recorded); len(got) != 1 {
			t.Errorf("unknownMetrics(%s) = %v, want one problem", expr, got)
		}
	}
	if got := unknownMetrics(`sum(rate(meridian_inference_request_duration_seconds_bucket{le="0.4096"}[5m])) / `+recTargetUp, exported, recorded); got != nil {
		t.Errorf("a histogram's buckets and a recorded series: %v", got)
	}
}
