package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/grafana/grafana-foundation-sdk/go/cog"
	"github.com/grafana/grafana-foundation-sdk/go/cog/plugins"
	"github.com/grafana/grafana-foundation-sdk/go/dashboard"
	"sigs.k8s.io/yaml"

	"meridian.dev/meridian/internal/testbin"
)

// root is the repository root, from this package's directory.
const root = "../.."

// read returns the file at path, failing the test if it cannot.
func read(t *testing.T, path string) []byte {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// promtool returns the promtool `make promtool` fetches.
func promtool(t *testing.T) string {
	t.Helper()
	return testbin.Cached(t, "bin/promtool", "promtool")
}

func runPromtool(t *testing.T, dir string, args ...string) {
	t.Helper()
	cmd := exec.Command(promtool(t), args...)
	cmd.Dir = dir
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("promtool %s: %v\n%s", strings.Join(args, " "), err, out)
	}
}

// TestGeneratedFilesCommitted fails when the committed dashboards or rules
// differ from what the generator writes now.
func TestGeneratedFilesCommitted(t *testing.T) {
	files, err := generate(root)
	if err != nil {
		t.Fatal(err)
	}
	for rel, want := range files {
		got, err := os.ReadFile(filepath.Join(root, rel))
		if err != nil || !bytes.Equal(got, want) {
			t.Errorf("%s is not what tools/gendashboards writes (%v): run `make dashboards` and commit", rel, err)
		}
	}
}

// TestRules checks rules.yaml with promtool and runs its unit tests, in
// which every alert fires on its fault and stays quiet beside it.
func TestRules(t *testing.T) {
	dir := filepath.Join(root, filepath.Dir(rulesFile))
	runPromtool(t, dir, "check", "rules", "rules.yaml")
	runPromtool(t, dir, "test", "rules", "rules_test.yaml")
}

// TestRuleTestsCoverEveryAlert fails when an alert of rules.yaml has no
// unit test that makes it fire, or none that expects it quiet.
func TestRuleTestsCoverEveryAlert(t *testing.T) {
	raw := read(t, filepath.Join(root, filepath.Dir(rulesFile), "rules_test.yaml"))
	var tests struct {
		Tests []struct {
			AlertRuleTest []struct {
				Alertname string            `json:"alertname"`
				ExpAlerts []json.RawMessage `json:"exp_alerts"`
			} `json:"alert_rule_test"`
		} `json:"tests"`
	}
	if err := yaml.Unmarshal(raw, &tests); err != nil {
		t.Fatal(err)
	}
	fires, quiet := map[string]bool{}, map[string]bool{}
	for _, tc := range tests.Tests {
		for _, a := range tc.AlertRuleTest {
			if len(a.ExpAlerts) > 0 {
				fires[a.Alertname] = true
			} else {
				quiet[a.Alertname] = true
			}
		}
	}
	n := 0
	for _, g := range rules(nil).Groups {
		for _, r := range g.Rules {
			if r.Alert == "" {
				continue
			}
			n++
			if !fires[r.Alert] || !quiet[r.Alert] {
				t.Errorf("alert %s: rules_test.yaml has a test making it fire: %t, one expecting it quiet: %t; want both", r.Alert, fires[r.Alert], quiet[r.Alert])
			}
		}
	}
	if n < 10 {
		t.Errorf("only %d alerts", n)
	}
}

// TestRulesMarshal reads rules.yaml back as YAML: the hand-rolled writer
// must give what it was handed, whatever the expressions and texts hold.
func TestRulesMarshal(t *testing.T) {
	want := rules([]location{{"eu-west", "53.35", "-6.26"}})
	want.Groups[0].Rules = append(want.Groups[0].Rules, Rule{
		Alert: "Quoting", Expr: "a\n  and b{x=\"y: z\"} # not a comment", For: "1m",
		Labels:      map[string]string{"severity": "warning"},
		Annotations: map[string]string{"summary": `"quoted" {{ $value }}: #1 é`},
	})
	var got RuleFile
	if err := yaml.UnmarshalStrict(want.Marshal(), &got); err != nil {
		t.Fatal(err)
	}
	if g, w := fmt.Sprintf("%#v", got), fmt.Sprintf("%#v", want); g != w {
		t.Errorf("read back:\n%s\nwant:\n%s", g, w)
	}
}

// TestDashboardsSchema decodes each dashboard strictly into the Grafana
// Foundation SDK's types (unknown or mistyped fields fail) and checks what
// Meridian's dashboards promise: their variables, a Prometheus query in
// every panel, all through the datasource variable.
func TestDashboardsSchema(t *testing.T) {
	plugins.RegisterDefaultPlugins()
	uids := map[string]string{}
	for name := range dashboards {
		raw := read(t, filepath.Join(root, dashboardsDir, name))
		var d classicDashboard
		if err := d.UnmarshalJSONStrict(raw); !noErrors(err) {
			t.Errorf("%s: %v", name, err)
			continue
		}
		if err := d.Validate(); err != nil {
			t.Errorf("%s: %v", name, err)
		}
		if d.Uid == nil || d.Title == nil || len(d.Panels) == 0 {
			t.Errorf("%s: no uid, title or panels", name)
			continue
		}
		if other, dup := uids[*d.Uid]; dup {
			t.Errorf("%s and %s share uid %s", name, other, *d.Uid)
		}
		uids[*d.Uid] = name
		var vars []string
		for _, v := range d.Templating.List {
			vars = append(vars, v.Name)
		}
		for _, v := range []string{"datasource", "region"} {
			if !slices.Contains(vars, v) {
				t.Errorf("%s: no %s variable (has %v)", name, v, vars)
			}
		}
		for _, p := range panelsOf(t, name, raw) {
			if p.Datasource.UID != "${datasource}" || len(p.Targets) == 0 {
				t.Errorf("%s: panel %q: datasource %q, %d queries; want ${datasource} and at least one", name, p.Title, p.Datasource.UID, len(p.Targets))
			}
			for _, q := range p.Targets {
				if q.Expr == "" || q.Datasource.UID != "${datasource}" {
					t.Errorf("%s: panel %q: a query without expr or not through ${datasource}", name, p.Title)
				}
			}
		}
	}
	if _, ok := uids["meridian-model"]; !ok {
		t.Errorf("no model dashboard among %v", uids)
	}

	// The decoder itself: a misspelt field, at the top or in a panel, fails.
	raw := read(t, filepath.Join(root, dashboardsDir, "fleet.json"))
	for _, bad := range [][]byte{
		bytes.Replace(raw, []byte(`"refresh":`), []byte(`"refreshh":`), 1),
		bytes.Replace(raw, []byte(`"gridPos":`), []byte(`"gridPosition":`), 1),
		bytes.Replace(raw, []byte(`"title": "Clusters serving"`), []byte(`"title": 7`), 1),
	} {
		var d classicDashboard
		if bytes.Equal(bad, raw) || noErrors(d.UnmarshalJSONStrict(bad)) {
			t.Error("a broken dashboard decoded without error")
		}
	}
}

// classicDashboard is the classic dashboard model the generator writes
// (see dashboardBuilder).
type classicDashboard = dashboard.Dashboard //nolint:staticcheck // the classic model on purpose

// noErrors reports a nil error, the SDK's strict decoders returning an
// empty cog.BuildErrors for none.
func noErrors(err error) bool {
	var errs cog.BuildErrors
	return err == nil || errors.As(err, &errs) && len(errs) == 0
}

// panel is what the checks read of a dashboard's panel.
type panel struct {
	Title      string `json:"title"`
	Type       string `json:"type"`
	Datasource struct {
		UID string `json:"uid"`
	} `json:"datasource"`
	Targets []struct {
		Expr       string `json:"expr"`
		Datasource struct {
			UID string `json:"uid"`
		} `json:"datasource"`
	} `json:"targets"`
}

// panelsOf returns a dashboard's panels, rows left out.
func panelsOf(t *testing.T, name string, raw []byte) []panel {
	t.Helper()
	var d struct{ Panels []panel }
	if err := json.Unmarshal(raw, &d); err != nil {
		t.Fatalf("%s: %v", name, err)
	}
	return slices.DeleteFunc(d.Panels, func(p panel) bool { return p.Type == "row" })
}

// exprs returns every PromQL expression of the dashboards and rules.yaml,
// each with where it is.
func exprs(t *testing.T) map[string]string {
	t.Helper()
	all := map[string]string{}
	for name := range dashboards {
		raw := read(t, filepath.Join(root, dashboardsDir, name))
		for _, p := range panelsOf(t, name, raw) {
			for i, q := range p.Targets {
				all[fmt.Sprintf("%s: panel %q query %d", name, p.Title, i)] = q.Expr
			}
		}
	}
	raw := read(t, filepath.Join(root, rulesFile))
	var f RuleFile
	if err := yaml.Unmarshal(raw, &f); err != nil {
		t.Fatal(err)
	}
	for _, g := range f.Groups {
		for i, r := range g.Rules {
			all[fmt.Sprintf("%s: group %s rule %d (%s%s)", rulesFile, g.Name, i, r.Record, r.Alert)] = r.Expr
		}
	}
	return all
}

// grafanaVar is a dashboard variable in a query ($name; not ${1}, a
// label_replace group).
var grafanaVar = regexp.MustCompile(`\$(__rate_interval|[a-z]+)\b`)

// TestDashboardQueriesParse has promtool parse every dashboard query, with
// the variables as Grafana would fill them in.
func TestDashboardQueriesParse(t *testing.T) {
	all := exprs(t)
	var f RuleFile
	var where []string
	g := Group{Name: "dashboards"}
	for _, at := range slices.Sorted(maps.Keys(all)) {
		if strings.HasPrefix(at, rulesFile) {
			continue // TestRules checks those
		}
		expr := grafanaVar.ReplaceAllStringFunc(all[at], func(v string) string {
			if v == "$__rate_interval" {
				return "5m"
			}
			return ".*"
		})
		g.Rules = append(g.Rules, Rule{Record: fmt.Sprintf("dashboard:query_%d", len(where)), Expr: expr})
		where = append(where, at)
	}
	f.Groups = append(f.Groups, g)
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "queries.yaml"), f.Marshal(), 0o644); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(promtool(t), "check", "rules", "queries.yaml")
	cmd.Dir = dir
	if out, err := cmd.CombinedOutput(); err != nil {
		var index strings.Builder
		for i, at := range where {
			fmt.Fprintf(&index, "  dashboard:query_%d is %s\n", i, at)
		}
		t.Fatalf("promtool cannot parse a dashboard query: %v\n%s\n%s", err, out, index.String())
	}
	if len(where) < 40 {
		t.Errorf("only %d dashboard queries found; the JSON layout changed under the test?", len(where))
	}
}
