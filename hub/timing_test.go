package hub_test

import (
	"fmt"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"meridian.dev/meridian/hub"
)

// TestTimingPresetsMatchTheDocs pins every preset to its row in
// docs/hub.md's table of timing presets — the values, the detection bound
// and the probe cost — and production's bound to the fleet's 2s target.
func TestTimingPresetsMatchTheDocs(t *testing.T) {
	doc, err := os.ReadFile("../docs/hub.md")
	if err != nil {
		t.Fatal(err)
	}
	rows := map[string][]string{}
	for _, line := range strings.Split(string(doc), "\n") {
		if !strings.HasPrefix(line, "| `") {
			continue
		}
		cells := strings.Split(strings.Trim(line, "|"), "|")
		for i := range cells {
			cells[i] = strings.TrimSpace(cells[i])
		}
		name, _, _ := strings.Cut(strings.Trim(cells[0], "`"), "`")
		rows[name] = cells
	}
	dur := func(s string) time.Duration {
		d, err := time.ParseDuration(s)
		if err != nil {
			t.Fatalf("docs/hub.md: %q is not a duration: %v", s, err)
		}
		return d
	}
	for _, p := range hub.TimingPresets() {
		row, ok := rows[p.Name]
		if !ok || len(row) < 9 {
			t.Errorf("docs/hub.md has no row for the %s timing preset", p.Name)
			continue
		}
		if dur(row[1]) != p.HealthPeriod || dur(row[2]) != p.ProbeTimeout || row[3] != strconv.Itoa(p.FailureThreshold) ||
			dur(row[6]) != p.HeartbeatGrace || dur(row[7]) != p.PullGrace || dur(row[8]) != p.ResyncPeriod {
			t.Errorf("docs/hub.md says %s is %v; the preset is %+v", p.Name, row[1:9], p)
		}
		if got := dur(row[4]); got != p.UnreachableWithin() {
			t.Errorf("docs/hub.md says %s detects an unreachable member within %s; UnreachableWithin is %s", p.Name, got, p.UnreachableWithin())
		}
		if row[5] != fmt.Sprintf("%g/s", p.ProbeReadsPerSecond()) {
			t.Errorf("docs/hub.md says %s costs %s probe reads per member; it is %.2f/s", p.Name, row[5], p.ProbeReadsPerSecond())
		}
	}
	prod, err := hub.TimingPreset("")
	if err != nil || prod.Name != hub.TimingProduction {
		t.Fatalf("the default preset is %q (%v), want production", prod.Name, err)
	}
	if prod.UnreachableWithin() > 2*time.Second {
		t.Errorf("production detects an unreachable member within %s, over the 2s target", prod.UnreachableWithin())
	}
}

func TestUnreachableWithin(t *testing.T) {
	for _, tc := range []struct {
		t    hub.Timing
		want time.Duration
	}{
		// The probe that hangs is the round: rounds are the timeout apart.
		{hub.Timing{HealthPeriod: time.Second, ProbeTimeout: 3 * time.Second, FailureThreshold: 2}, 7 * time.Second},
		{hub.Timing{HealthPeriod: 2 * time.Second, ProbeTimeout: time.Second, FailureThreshold: 3}, 7 * time.Second},
		{hub.Timing{HealthPeriod: time.Second, ProbeTimeout: time.Second, FailureThreshold: 1}, 2 * time.Second},
	} {
		if got := tc.t.UnreachableWithin(); got != tc.want {
			t.Errorf("%+v: UnreachableWithin %s, want %s", tc.t, got, tc.want)
		}
	}
}

func TestEffectiveTiming(t *testing.T) {
	got, err := hub.Options{Timing: hub.TimingWAN}.EffectiveTiming()
	if err != nil || got != hub.WAN() {
		t.Errorf("wan: %+v %v", got, err)
	}
	got, err = hub.Options{HealthPeriod: time.Second}.EffectiveTiming()
	if err != nil || got.HealthPeriod != time.Second || got.ProbeTimeout != hub.Production().ProbeTimeout || got.Name != "production (modified)" {
		t.Errorf("production with a 1s period: %+v %v", got, err)
	}
	if _, err := (hub.Options{Timing: "lan"}).EffectiveTiming(); err == nil || !strings.Contains(err.Error(), "production, wan") {
		t.Errorf("an unknown preset should name the known ones: %v", err)
	}
}
