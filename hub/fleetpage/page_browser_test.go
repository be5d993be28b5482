package fleetpage_test

import (
	"context"
	"net/http/httptest"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"meridian.dev/meridian/hub/fleetpage"
	"meridian.dev/meridian/hub/fleetpage/browsertest"
)

// fakeHub is a fake standing in for the hub: a Source whose fleet the test
// changes at will (the hub's own, HubSource, reads Cluster objects; the
// whole-fleet test in internal/fleet drives that one).
type fakeHub struct {
	mu sync.Mutex
	f  fleetpage.Fleet
}

func (h *fakeHub) Snapshot(context.Context) (fleetpage.Fleet, error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	f := h.f
	f.Time = time.Now()
	f.Regions = append([]fleetpage.Region(nil), h.f.Regions...)
	return f, nil
}

func (h *fakeHub) setHealth(region, health string) {
	h.mu.Lock()
	defer h.mu.Unlock()
	for i := range h.f.Regions {
		if h.f.Regions[i].Name == region {
			h.f.Regions[i].Health = health
			h.f.Regions[i].Clusters = []fleetpage.Cluster{{Name: region + "-1", Health: health, Reason: "no ClusterReport read for 3 probes"}}
		}
	}
}

func sampleFleet() fleetpage.Fleet {
	region := func(name string, lat, lon, share float64) fleetpage.Region {
		return fleetpage.Region{
			Name: name, Location: &fleetpage.Location{Latitude: lat, Longitude: lon}, Health: fleetpage.HealthReady,
			Clusters:          []fleetpage.Cluster{{Name: name + "-1", Health: fleetpage.HealthReady}},
			Models:            []fleetpage.RegionModel{{Model: "sentiment", ReadyReplicas: 2, DesiredReplicas: 2, RequestsPerSecond: 40 * share}},
			RequestsPerSecond: 40 * share, UserShare: share,
		}
	}
	bins := func(n, faultAt int) ([]int64, []int64) {
		ok, failed := make([]int64, n), make([]int64, n)
		for i := range ok {
			ok[i] = 12
			if i >= faultAt && i < faultAt+6 {
				ok[i], failed[i] = 4, 8
			}
		}
		return ok, failed
	}
	frontOK, frontFailed := bins(120, 20)
	dnsOK, dnsFailed := bins(120, 20)
	return fleetpage.Fleet{
		Regions: []fleetpage.Region{
			region("us-east", 39.04, -77.49, 0.5),
			region("eu-west", 53.35, -6.26, 0.3),
			region("ap-south", 19.08, 72.88, 0.2),
		},
		Models: []fleetpage.Model{{Namespace: "default", Name: "sentiment", ReadyReplicas: 6, DemandSource: "Reported",
			Demand: []fleetpage.RegionDemand{{Region: "us-east", Share: 0.5}, {Region: "eu-west", Share: 0.3}, {Region: "ap-south", Share: 0.2}}}},
		Rollouts: []fleetpage.Rollout{{
			Namespace: "default", Name: "sentiment-v2", Model: "sentiment", Version: 2, StableVersion: 1, Strategy: "Canary",
			Phase: "Progressing", Wave: 1, Step: 0,
			Waves:    []fleetpage.Wave{{Regions: []string{"eu-west"}}, {Regions: []string{"us-east", "ap-south"}}},
			Steps:    []fleetpage.Step{{Weight: 10, Bake: time.Minute}, {Weight: 50, Bake: time.Minute}},
			Verdicts: []fleetpage.Verdict{{Wave: 0, Step: 0, Result: "Passed", Message: "error rate +0.1% (limit +1%), p95 1.02x", Time: time.Now()}},
		}},
		Drills: []fleetpage.Drill{{
			File: "region-loss.json", Written: time.Now(), Drill: "region-loss", Region: "eu-west", Fault: "crash",
			BinSeconds: 0.25, FaultAt: 20, Figures: map[string]float64{"detected": 1.2},
			Series: []fleetpage.Series{{Kind: "front", OK: frontOK, Failed: frontFailed}, {Kind: "dns", OK: dnsOK, Failed: dnsFailed}},
		}},
	}
}

// TestPageLive loads the page in a real browser (Chromium's headless
// shell), sees the regions drawn on the map, the rollout and the drill's
// timeline, then marks a region unreachable in the source and sees the
// map and the table follow without a reload.
func TestPageLive(t *testing.T) {
	hub := &fakeHub{f: sampleFleet()}
	srv := httptest.NewServer(fleetpage.Handler(hub, fleetpage.Options{Refresh: 200 * time.Millisecond}))
	defer srv.Close()

	ctx := browsertest.New(t)
	ctx, cancel := context.WithTimeout(ctx, 90*time.Second)
	defer cancel()
	if err := chromedp.Do(ctx, chromedp.Navigate(srv.URL+"/")); err != nil {
		t.Fatal(err)
	}
	wait := func(what, expr string) {
		t.Helper()
		if _, err := chromedp.Run(ctx, chromedp.Poll[bool](expr, chromedp.WithPollingInterval(50*time.Millisecond), chromedp.WithPollingTimeout(20*time.Second))); err != nil {
			t.Fatalf("waiting for %s (%s): %v", what, expr, err)
		}
	}
	wait("three Ready regions on the map",
		`document.querySelectorAll('#markers .region[data-health="Ready"]').length === 3`)
	wait("the rollout's current wave", `document.querySelector('[data-rollout="default/sentiment-v2"] .wave.current')?.textContent === 'wave 2: us-east, ap-south'`)
	wait("the drill's timeline", `document.querySelectorAll('[data-drill="region-loss.json"] svg rect.failed').length > 0`)
	// Each marker lies on the map where its region is: us-east west of
	// eu-west, west of ap-south.
	xs, err := chromedp.Run(ctx, chromedp.Evaluate[[]float64](
		`['us-east','eu-west','ap-south'].map(r => Number(document.querySelector('#markers [data-region="'+r+'"] .pin').getAttribute('cx')))`))
	if err != nil {
		t.Fatal(err)
	}
	if !(xs[0] < xs[1] && xs[1] < xs[2]) {
		t.Errorf("marker x positions %v: want us-east < eu-west < ap-south", xs)
	}
	// A mark that a reload would wipe.
	if err := chromedp.Do(ctx, chromedp.Evaluate[chromedp.Void](`window.notReloaded = true`)); err != nil {
		t.Fatal(err)
	}
	browsertest.Screenshot(t, ctx, "unit-before")

	hub.setHealth("eu-west", fleetpage.HealthUnreachable)
	wait("eu-west Unreachable on the map", `document.querySelector('#markers [data-region="eu-west"]').dataset.health === 'Unreachable'`)
	wait("eu-west Unreachable in the table", `document.querySelector('#regions tr[data-region="eu-west"]').dataset.health === 'Unreachable'`)
	still, err := chromedp.Run(ctx, chromedp.Evaluate[bool](`window.notReloaded === true && document.querySelectorAll('#markers .region[data-health="Ready"]').length === 2`))
	if err != nil {
		t.Fatal(err)
	}
	if !still {
		t.Error("the page reloaded, or other regions changed, instead of updating eu-west in place")
	}
	browsertest.Screenshot(t, ctx, "unit-after")
}
