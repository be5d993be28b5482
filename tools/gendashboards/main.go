// Command gendashboards writes Meridian's Grafana dashboards and Prometheus
// rules, generated from code so that every panel and rule reads metrics
// Meridian exports (the tests check each name against the code, each
// expression with promtool, and the rules with promtool's unit tests):
//
//	charts/meridian/files/dashboards/{fleet,model,balancer}.json
//	charts/meridian/files/prometheus/rules.yaml
//
// Run it from the repository root with `make dashboards` (part of `make
// generate`); docs/observability.md describes what it writes.
package main

import (
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"path/filepath"
)

// Where the chart's files live, under the repository root.
const (
	dashboardsDir = "charts/meridian/files/dashboards"
	rulesFile     = "charts/meridian/files/prometheus/rules.yaml"
)

// dashboards are the dashboards written, by file name.
var dashboards = map[string]func() *dashboardBuilder{
	"fleet.json":    fleetDashboard,
	"model.json":    modelDashboard,
	"balancer.json": balancerDashboard,
}

func main() {
	root := flag.String("root", ".", "the repository root")
	flag.Parse()
	if err := write(*root); err != nil {
		fmt.Fprintln(os.Stderr, "gendashboards:", err)
		os.Exit(1)
	}
}

// generate returns every file the generator writes, by path under root.
func generate(root string) (map[string][]byte, error) {
	files := map[string][]byte{}
	for name, build := range dashboards {
		b, err := render(build())
		if err != nil {
			return nil, fmt.Errorf("%s: %w", name, err)
		}
		files[filepath.Join(dashboardsDir, name)] = b
	}
	locs, err := knownLocations(filepath.Join(root, fleetSource))
	if err != nil {
		return nil, err
	}
	files[rulesFile] = rules(locs).Marshal()
	return files, nil
}

// write generates every file into root.
func write(root string) error {
	files, err := generate(root)
	if err != nil {
		return err
	}
	for rel, b := range files {
		path := filepath.Join(root, rel)
		if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
			return err
		}
		if err := os.WriteFile(path, b, 0o644); err != nil {
			return err
		}
	}
	return nil
}

// render builds a dashboard into indented JSON.
func render(d *dashboardBuilder) ([]byte, error) {
	built, err := d.Build()
	if err != nil {
		return nil, err
	}
	b, err := json.MarshalIndent(built, "", "  ")
	if err != nil {
		return nil, err
	}
	return append(b, '\n'), nil
}
