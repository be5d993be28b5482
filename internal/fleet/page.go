package fleet

import (
	"fmt"
	"net"
	"net/netip"
	"path/filepath"
	"time"

	"meridian.dev/meridian/hub/fleetpage"
)

// The fleet page (hub/fleetpage) of a local fleet: the world map of the
// regions' health, replicas, load and users, the rollouts and the drills'
// timelines, read from the hub cluster as the hub's --page-listen serves
// it. The fleet serves it itself, beside the hub's controllers rather than
// inside them, so it goes on through the hub-loss drill (KillHub stops the
// controllers; the hub's API server, which the page reads, stays up, and
// the page shows what the hub last wrote).

// PageRefresh is how often the fleet page asks for the fleet's state, as
// the hub's --page-refresh default.
const PageRefresh = time.Second

// DrillReports is where the fleet page finds the drills' reports: the
// drill directory of the state directory, which `meridian drill --out`
// writes by default (.meridian/drill for `meridian up`'s .meridian).
func (f *Fleet) DrillReports() string { return filepath.Join(f.opts.StateDir, "drill") }

// listenPage takes Options.PageListen before anything starts, so a port in
// use fails the start at once rather than minutes later. The listener
// closes when the fleet stops.
func (f *Fleet) listenPage() error {
	addr := f.opts.PageListen
	if addr == "" {
		return nil
	}
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return fmt.Errorf("fleet page address %q: %w", addr, err)
	}
	// The local fleet serves the page over plain HTTP: loopback only, as
	// the hub's --page-listen without --page-tls-* should be.
	if ip, err := netip.ParseAddr(host); host != "localhost" && (err != nil || !ip.IsLoopback()) {
		return fmt.Errorf("fleet page address %q: the local fleet serves its page over plain HTTP, on a loopback address only", addr)
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return fmt.Errorf("fleet page: %w (is another fleet running?)", err)
	}
	f.pageLn = ln
	f.PageURL = "http://" + ln.Addr().String() + "/"
	go func() {
		<-f.runCtx.Done()
		_ = ln.Close() // Serve closes it too; this covers a start that failed before it
	}()
	return nil
}

// servePage serves the page on the listener of listenPage, reading the
// hub's API server directly (not through the link the hub-loss drill
// cuts), until the fleet stops.
func (f *Fleet) servePage() {
	if f.pageLn == nil {
		return
	}
	log := f.opts.Logger.With("component", "fleet-page")
	c := f.Hub.Client
	s := &fleetpage.Server{
		Source:  &fleetpage.HubSource{Client: c, Rollouts: fleetpage.ModelRollouts{Client: c}, DrillReports: f.DrillReports()},
		Options: fleetpage.Options{Refresh: PageRefresh, Logger: log},
	}
	ln, ctx := f.pageLn, f.runCtx
	f.goRun(func() error {
		if err := s.Serve(ctx, ln); err != nil && ctx.Err() == nil {
			return fmt.Errorf("fleet page: %w", err)
		}
		return nil
	})
	f.step("fleet page: %s", f.PageURL)
}
