package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"meridian.dev/meridian/hub/fleetpage/browsertest"
	"meridian.dev/meridian/internal/drill"
	"meridian.dev/meridian/internal/fleet"
	"meridian.dev/meridian/internal/testbin"
)

// TestFleetPage loads the fleet page of a whole local fleet (`meridian
// up`'s, on the production timing preset) in a real browser (Chromium's
// headless shell), cuts a region off the way the drills do (as root every
// packet to and from it dropped; without root the hub's link to it cut),
// and watches the page mark it Unreachable on the map and in the table
// without a reload, then Ready again after the heal. The page goes on
// through a hub loss (the hub's controllers stopped), and shows the drill
// reports of the fleet's state directory. Screenshots of each stage go to
// .cache/artifacts/fleetpage/fleet-*.png.
func TestFleetPage(t *testing.T) {
	_, err := browsertest.Chromium() // before minutes of start-up
	testbin.Need(t, err)
	dir := t.TempDir()
	bin, err := testbin.Build(dir)
	if err != nil {
		t.Fatal(err)
	}
	models, lib := testbin.Models(t), testbin.ORTLibrary(t)
	geo4, geo6 := testbin.GeoDatabases(t)
	// A drill report where `meridian drill` writes them for this state
	// directory, for the page's timelines.
	writeDrillReport(t, filepath.Join(dir, "drill"))

	ctx := context.Background()
	f, err := fleet.Up(ctx, fleet.Options{
		StateDir: dir, Binary: bin, ModelRepository: models, ServeArgs: []string{"--ort-lib", lib},
		Logger: logger(), DNSListen: "127.0.0.1:0", GeoIPv4: geo4, GeoIPv6: geo6,
		PageListen: "127.0.0.1:0",
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(f.Stop)
	if f.PageURL == "" {
		t.Fatal("the fleet serves no page: Fleet.PageURL is empty")
	}
	t.Logf("fleet page: %s", f.PageURL)

	bctx := browsertest.New(t)
	bctx, cancel := context.WithTimeout(bctx, 8*time.Minute)
	defer cancel()
	if err := chromedp.Do(bctx, chromedp.Navigate(f.PageURL)); err != nil {
		t.Fatal(err)
	}
	wait := func(what, expr string, within time.Duration) time.Duration {
		t.Helper()
		began := time.Now()
		if _, err := chromedp.Run(bctx, chromedp.Poll[bool](expr, chromedp.WithPollingInterval(100*time.Millisecond), chromedp.WithPollingTimeout(within))); err != nil {
			select {
			case ferr := <-f.Errors():
				t.Fatalf("waiting for %s: a fleet component failed: %v", what, ferr)
			default:
			}
			t.Fatalf("waiting %s for %s (%s): %v", within, what, expr, err)
		}
		return time.Since(began)
	}
	healthOf := func(region, health string) string {
		return fmt.Sprintf(`document.querySelector('#markers [data-region="%[1]s"]')?.dataset.health === '%[2]s' && document.querySelector('#regions tr[data-region="%[1]s"]')?.dataset.health === '%[2]s'`, region, health)
	}
	const victim = "eu-west"

	// The members engage while the models start: three Ready regions, the
	// bundled models placed in each, and the drill's timeline.
	wait("three Ready regions on the map and in the table",
		`document.querySelectorAll('#markers .region[data-health="Ready"]').length === 3 && document.querySelectorAll('#regions tr[data-health="Ready"]').length === 3`, 3*time.Minute)
	wait("both models with a ready replica in "+victim,
		fmt.Sprintf(`(() => { const t = document.querySelector('#regions tr[data-region="%s"]')?.textContent || ''; return /sentiment [1-9]\d*\//.test(t) && /textdir [1-9]\d*\//.test(t) })()`, victim), 3*time.Minute)
	wait("the drill's timeline from the state directory",
		`document.querySelectorAll('[data-drill="partition.json"] svg rect.failed').length > 0`, 20*time.Second)
	// A mark that a reload would wipe.
	if err := chromedp.Do(bctx, chromedp.Evaluate[chromedp.Void](`window.notReloaded = true`)); err != nil {
		t.Fatal(err)
	}
	browsertest.Screenshot(t, bctx, "fleet-before")

	// Cut off: the hub notices within its detection bound, the page within
	// a refresh after that.
	if err := f.Partition(victim); err != nil {
		t.Fatal(err)
	}
	cutAt := time.Now()
	healed := false
	t.Cleanup(func() {
		if !healed {
			_ = f.Heal(victim)
		}
	})
	took := wait(victim+" Unreachable on the map and in the table", healthOf(victim, "Unreachable"), time.Minute)
	t.Logf("the page showed %s Unreachable %.1fs after the cut (gossip cut too: %v)", victim, took.Seconds(), f.CutsGossip())
	if bound := f.DetectionTarget() + 3*fleet.PageRefresh + 2*time.Second; time.Since(cutAt) > bound {
		t.Errorf("the page showed the cut region after %s, beyond the hub's detection bound plus three refreshes and 2s (%s)", time.Since(cutAt).Round(100*time.Millisecond), bound)
	}
	same, err := chromedp.Run(bctx, chromedp.Evaluate[bool](`window.notReloaded === true && document.querySelectorAll('#markers .region[data-health="Ready"]').length === 2 && document.getElementById('conn').dataset.state === 'live'`))
	if err != nil {
		t.Fatal(err)
	}
	if !same {
		t.Error("the page reloaded, lost the hub, or other regions changed, instead of updating the cut region in place")
	}
	browsertest.Screenshot(t, bctx, "fleet-cut")

	// Healed: Ready again, without an operator.
	if err := f.Heal(victim); err != nil {
		t.Fatal(err)
	}
	healed = true
	took = wait(victim+" Ready again", healthOf(victim, "Ready"), 2*time.Minute)
	t.Logf("the page showed %s Ready %.1fs after the heal", victim, took.Seconds())
	browsertest.Screenshot(t, bctx, "fleet-healed")

	// The hub goes away (its controllers stop, as in the hub-loss drill):
	// the page goes on answering, from what the hub last wrote.
	if err := f.KillHub(); err != nil {
		t.Fatal(err)
	}
	gen, err := chromedp.Run(bctx, chromedp.Evaluate[string](`document.body.dataset.generation`))
	if err != nil {
		t.Fatal(err)
	}
	wait("the page to go on updating without the hub's controllers",
		fmt.Sprintf(`Number(document.body.dataset.generation) >= %s + 3 && document.getElementById('conn').dataset.state === 'live' && document.querySelectorAll('#markers .region').length === 3`, gen), 20*time.Second)
	resp, err := http.Get(f.PageURL + "api/fleet")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	_ = resp.Body.Close()
	var snap struct {
		Regions []struct{ Name string } `json:"regions"`
	}
	if resp.StatusCode != http.StatusOK || json.Unmarshal(body, &snap) != nil || len(snap.Regions) != 3 {
		t.Errorf("without the hub's controllers /api/fleet answered %s: %s", resp.Status, body)
	}
	browsertest.Screenshot(t, bctx, "fleet-hub-down")
	// The hub stays down: the fleet stops without it (a returning hub
	// is the drills' test, e2e/drill_test.go).
	select {
	case err := <-f.Errors():
		t.Errorf("a fleet component failed: %v", err)
	default:
	}
}

// writeDrillReport writes dir/partition.json as `meridian drill partition
// --out dir` would (internal/drill's JSON): a few failed requests after
// the fault.
func writeDrillReport(t *testing.T, dir string) {
	t.Helper()
	bins := make([]drill.Bin, 40)
	for i := range bins {
		bins[i].OK = 7
		if i >= 8 && i < 12 {
			bins[i] = drill.Bin{OK: 3, Failed: 4}
		}
	}
	detected := drill.Seconds(1.4)
	res := drill.Result{
		Drill: drill.Partition, Region: "ap-south", Timing: "production", Membership: "push", FaultAt: 8, HealAt: 28,
		Detected: &detected, DetectionTarget: 2,
		Front: drill.Clients{Kind: "front", Timeline: bins}, DNS: drill.Clients{Kind: "dns", Timeline: bins},
	}
	b, err := json.Marshal(res)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "partition.json"), b, 0o644); err != nil {
		t.Fatal(err)
	}
}
