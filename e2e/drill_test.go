// Package e2e holds whole-fleet tests: several regions on real control
// planes, real agents serving the real models, the hub and the global
// balancer, with failures injected.
package e2e

import (
	"bytes"
	"context"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"meridian.dev/meridian/glb/geo"
	"meridian.dev/meridian/hub"
	"meridian.dev/meridian/internal/drill"
	"meridian.dev/meridian/internal/fleet"
	"meridian.dev/meridian/internal/testbin"
)

// The three drills on one fleet, the harmless first: the hub goes away
// and comes back, a region is partitioned away and heals, a region dies.
// Through all of it no request through the balancer's HTTP front fails.
func TestDrills(t *testing.T) {
	dir := t.TempDir()
	bin, err := testbin.Build(dir)
	if err != nil {
		t.Fatal(err)
	}
	models, _ := filepath.Abs("../models")
	lib, _ := filepath.Abs("../.cache/onnxruntime/libonnxruntime.so.1")
	front, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	f, err := fleet.Up(ctx, fleet.Options{
		StateDir: dir, Binary: bin, ModelRepository: models, ServeArgs: []string{"--ort-lib", lib},
		Logger: logger(), DNSListen: "127.0.0.1:0", HTTPListeners: []net.Listener{front},
		GeoIPv4: filepath.Join("..", geo.DefaultIPv4Path), GeoIPv6: filepath.Join("..", geo.DefaultIPv6Path),
		Hub: hub.Options{HealthPeriod: 500 * time.Millisecond, ProbeTimeout: time.Second, ResyncPeriod: time.Second},
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(f.Stop)
	settle := func(t *testing.T) {
		t.Helper()
		wait, cancel := context.WithTimeout(ctx, 3*time.Minute)
		defer cancel()
		if err := f.WaitReady(wait); err != nil {
			t.Fatal(err)
		}
		time.Sleep(3 * time.Second) // the balancer's snapshot and probes settle
	}
	opts := drill.Options{Front: front.Addr().String(), Rate: 30, Before: 2 * time.Second, For: 10 * time.Second, After: 25 * time.Second}
	run := func(t *testing.T, name, region string) *drill.Result {
		t.Helper()
		settle(t)
		o := opts
		o.Region = region
		res, err := drill.Run(ctx, f, name, o)
		if err != nil {
			t.Fatal(err)
		}
		for _, l := range res.Verdicts() {
			t.Log(l)
		}
		select {
		case err := <-f.Errors():
			t.Errorf("a fleet component failed during the drill: %v", err)
		default:
		}
		if res.Failed != 0 || res.Requests < 100 {
			t.Errorf("%d of %d requests through the HTTP front failed", res.Failed, res.Requests)
			for i, b := range res.Timeline {
				if b.Failed > 0 {
					t.Logf("  %+.2fs after the fault: %d failed, %d answered", float64(i-res.FaultAt)*0.25, b.Failed, b.OK)
				}
			}
		}
		var svg bytes.Buffer
		if err := res.WriteSVG(&svg); err != nil || !strings.Contains(svg.String(), name+" drill") {
			t.Fatalf("timeline: %v", err)
		}
		_ = os.WriteFile(filepath.Join(dir, name+".svg"), svg.Bytes(), 0o644)
		return res
	}

	t.Run("hub loss: serving and steering go on, the hub picks up again", func(t *testing.T) {
		res := run(t, drill.HubLoss, "eu-west")
		if res.DNSQueries < 30 || res.DNSWrong != 0 {
			t.Errorf("during the hub outage %d of %d DNS answers did not send a region's clients to their region", res.DNSWrong, res.DNSQueries)
		}
		if res.Rejoined == nil {
			t.Errorf("the returned hub never read every member again")
		}
	})

	t.Run("partition: the region is left, then heals without an operator", func(t *testing.T) {
		res := run(t, drill.Partition, "ap-south")
		if res.Detected == nil || res.DNSResteered == nil {
			t.Fatalf("the fleet did not notice the partition: %+v", res)
		}
		if bound := float64(*res.Detected) + float64(res.DNSTTL) + 2; float64(*res.DNSResteered) > bound {
			t.Errorf("DNS kept the partitioned region for %.1fs, beyond detection + TTL + one refresh (%.1fs)", float64(*res.DNSResteered), bound)
		}
		if res.FromCutRegion != 0 {
			t.Errorf("%d requests were answered by the partitioned region while it was cut off", res.FromCutRegion)
		}
		if res.Rejoined == nil || res.DNSReturned == nil {
			t.Fatalf("the region did not come back by itself after the heal: %+v", res)
		}
	})

	t.Run("region loss: DNS leaves the region, its capacity is replaced", func(t *testing.T) {
		res := run(t, drill.RegionLoss, "eu-west")
		if res.Detected == nil || res.DNSResteered == nil || res.Replaced == nil {
			t.Fatalf("the fleet did not react: %+v", res)
		}
		if bound := float64(*res.Detected) + float64(res.DNSTTL) + 2; float64(*res.DNSResteered) > bound {
			t.Errorf("DNS kept the dead region for %.1fs, beyond detection + TTL + one refresh (%.1fs)", float64(*res.DNSResteered), bound)
		}
	})
}

// logger discards the fleet's logs unless MERIDIAN_FLEET_LOGS is set (to
// watch a run).
func logger() *slog.Logger {
	if os.Getenv("MERIDIAN_FLEET_LOGS") != "" {
		return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	}
	return slog.New(slog.DiscardHandler)
}
