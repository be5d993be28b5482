// Package e2e holds whole-fleet tests: several regions on real control
// planes, real agents serving the real models, the hub and the global
// balancer, with failures injected.
package e2e

import (
	"bytes"
	"context"
	"io"
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

// A region dies under load: no request through the balancer's HTTP front
// fails, DNS stops sending the region's clients there within the hub's
// detection plus the TTL, and its capacity is replaced elsewhere.
func TestRegionLossDrill(t *testing.T) {
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
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil)), DNSListen: "127.0.0.1:0", HTTPListener: front,
		GeoIPv4: filepath.Join("..", geo.DefaultIPv4Path), GeoIPv6: filepath.Join("..", geo.DefaultIPv6Path),
		Hub: hub.Options{HealthPeriod: 500 * time.Millisecond, ProbeTimeout: time.Second, ResyncPeriod: time.Second},
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(f.Stop)
	wait, cancel := context.WithTimeout(ctx, 3*time.Minute)
	defer cancel()
	if err := f.WaitReady(wait); err != nil {
		t.Fatal(err)
	}
	time.Sleep(3 * time.Second) // the balancer's snapshot and probes settle

	res, err := drill.RegionLoss(ctx, f, drill.Options{Region: "eu-west", Front: front.Addr().String(), Rate: 30,
		Before: 3 * time.Second, After: 25 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("drill: %d requests, %d failed; detected %v, DNS re-steered %v, replaced %v (s after the kill)",
		res.Requests, res.Failed, deref(res.Detected), deref(res.DNSResteered), deref(res.Replaced))
	if res.Failed != 0 || res.Requests < 100 {
		t.Errorf("%d of %d requests through the HTTP front failed during the region loss", res.Failed, res.Requests)
	}
	if res.Detected == nil || res.DNSResteered == nil || res.Replaced == nil {
		t.Fatalf("the fleet did not react: %+v", res)
	}
	if bound := float64(*res.Detected) + float64(res.DNSTTL) + 2; float64(*res.DNSResteered) > bound {
		t.Errorf("DNS kept the dead region for %.1fs, beyond detection + TTL + one refresh (%.1fs)", float64(*res.DNSResteered), bound)
	}
	var svg bytes.Buffer
	if err := res.WriteSVG(&svg); err != nil || !strings.Contains(svg.String(), "DNS re-steered") {
		t.Fatalf("timeline: %v", err)
	}
	_ = os.WriteFile(filepath.Join(dir, "drill.svg"), svg.Bytes(), 0o644)
}

func deref(s *drill.Seconds) float64 {
	if s == nil {
		return -1
	}
	return float64(*s)
}
