// Package drill runs failover drills against a local fleet: load offered
// at a fixed rate by two kinds of users — clients of the global balancer's
// HTTP front, and clients that follow DNS through a real recursive
// resolver straight to a region — then something breaks, the way it
// breaks in production: a region crashes (SIGKILL of everything serving
// it) or goes silent (every packet dropped), the hub dies, a region is
// partitioned away (gossip included) and comes back. The drill reports
// what each kind of user saw and how long the fleet took to notice and
// heal, with the timing preset it ran under: as JSON and as an SVG
// timeline.
package drill

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"sync"
	"sync/atomic"
	"time"

	v1 "meridian.dev/meridian/crds/v1alpha1"
	"meridian.dev/meridian/internal/fleet"
	"meridian.dev/meridian/internal/resolver"
)

// The drills.
const (
	RegionLoss = "region-loss"
	HubLoss    = "hub-loss"
	Partition  = "partition"
)

// Options configure a drill.
type Options struct {
	// Region is the region to kill or partition, and the one the load's
	// clients are nearest to.
	Region string
	// Subnet is the clients' network, sent as EDNS Client Subnet and as
	// X-Forwarded-For, so they are steered to Region first; default one
	// that geolocates near Region's centre.
	Subnet netip.Prefix
	// Rate is the requests per second offered by each kind of client
	// (through the HTTP front, and following DNS). Default 50.
	Rate int
	// Blackhole makes a region loss silent instead of a crash: every
	// packet to and from the region is dropped (root only).
	Blackhole bool
	// Before is how long the load runs before the fault (default 5s);
	// For how long a hub loss or partition lasts (default 15s); After how
	// long the drill watches after the kill, the hub's return or the
	// heal (default 30s).
	Before, For, After time.Duration
	// Front is the balancer's HTTP front, host:port.
	Front string
}

// Result is what a drill measured. Durations are seconds from the fault
// (the kill, the hub's loss, the partition), or from the heal for those
// marked so.
type Result struct {
	Drill  string `json:"drill"`
	Region string `json:"region"`
	// Fault is how the region was lost: "crash" (SIGKILL) or "blackhole"
	// (packets dropped); Timing the fleet's timing preset.
	Fault  string `json:"fault,omitempty"`
	Timing string `json:"timing"`
	// GossipCut says whether a partition dropped gossip too (root).
	GossipCut bool `json:"gossipCut,omitempty"`
	// Membership is how the fleet's members joined the hub: push or pull.
	Membership string `json:"membership"`
	// Detected is when the hub marked the region Unreachable;
	// DetectionTarget the bound it is held to: 2s, or the hub's
	// documented bound for pull members where that is longer (a pull
	// member is noticed by its silence).
	Detected        *Seconds `json:"detectedAfter,omitempty"`
	DetectionTarget Seconds  `json:"detectionTarget"`
	// DNSResteered is when DNS stopped answering the region's clients
	// with the region.
	DNSResteered *Seconds `json:"dnsResteeredAfter,omitempty"`
	// Replaced is when every model was Ready again without the region.
	Replaced *Seconds `json:"capacityReplacedAfter,omitempty"`
	// DNSQueries and DNSWrong count the DNS questions asked during a hub
	// loss as each region's clients, and those not answered with that
	// region.
	DNSQueries int64 `json:"dnsQueriesDuringFault,omitempty"`
	DNSWrong   int64 `json:"dnsWrongDuringFault,omitempty"`
	// Rejoined (after the heal) is when the hub saw the region Ready
	// again; for a hub loss, when the returned hub had every cluster
	// Ready and every model Ready.
	Rejoined *Seconds `json:"rejoinedAfterHeal,omitempty"`
	// DNSReturned (after the heal) is when DNS sent the region's clients
	// back to it.
	DNSReturned *Seconds `json:"dnsReturnedAfterHeal,omitempty"`
	// Front and DNS are what each kind of client saw.
	Front Clients `json:"frontClients"`
	DNS   Clients `json:"dnsClients"`
	// FaultAt and HealAt are the bins of the fault and of the heal (0:
	// none).
	FaultAt int `json:"faultAtBin"`
	HealAt  int `json:"healAtBin,omitempty"`
	// DNSTTL is the endpoint's TTL, for reading DNSResteered.
	DNSTTL int32 `json:"dnsTTLSeconds"`
}

// Seconds is a duration written as seconds.
type Seconds float64

// Bin is one slice of the timeline.
type Bin struct {
	OK     int64 `json:"ok"`
	Failed int64 `json:"failed"`
}

const (
	binWidth   = 250 * time.Millisecond
	settleTail = 3 * time.Second
)

// DefaultSubnets are client networks near each default region.
var DefaultSubnets = map[string]netip.Prefix{
	"eu-west":  netip.MustParsePrefix("193.0.0.0/24"),  // Amsterdam
	"us-east":  netip.MustParsePrefix("3.80.0.0/24"),   // Ashburn
	"ap-south": netip.MustParsePrefix("13.126.0.0/24"), // Mumbai
}

func (o *Options) defaults() error {
	if o.Rate <= 0 {
		o.Rate = 50
	}
	if o.Before <= 0 {
		o.Before = 5 * time.Second
	}
	if o.For <= 0 {
		o.For = 15 * time.Second
	}
	if o.After <= 0 {
		o.After = 30 * time.Second
	}
	if !o.Subnet.IsValid() {
		o.Subnet = DefaultSubnets[o.Region]
	}
	if !o.Subnet.IsValid() {
		return fmt.Errorf("drill: give a client subnet near %s", o.Region)
	}
	return nil
}

// Run runs one drill (RegionLoss, HubLoss or Partition) on a running
// fleet under load and measures what the fleet did.
func Run(ctx context.Context, f *fleet.Fleet, drill string, opts Options) (_ *Result, err error) {
	if err := opts.defaults(); err != nil {
		return nil, err
	}
	addrs, ttl, err := regionAddresses(ctx, f)
	if err != nil {
		return nil, err
	}
	res, err := resolver.Start(ctx, resolver.Options{Zone: f.Zone, Upstream: f.DNSAddr})
	if err != nil {
		return nil, fmt.Errorf("drill: the DNS clients' resolver: %w", err)
	}
	defer res.Stop()
	d := &run{f: f, opts: opts, addrs: addrs, start: time.Now(),
		res: &Result{Drill: drill, Region: opts.Region, DNSTTL: ttl, Timing: f.Timing().String(), GossipCut: f.CutsGossip(),
			Membership: f.Membership(), DetectionTarget: Seconds(f.DetectionTarget().Seconds())}}
	regionOf := map[netip.Addr]string{}
	for region, a := range addrs {
		regionOf[a] = region
	}
	dnsDo, closeDNS, err := dnsRequest(f, res, opts, regionOf)
	if err != nil {
		return nil, err
	}
	defer closeDNS()
	frontDo, err := frontRequest(f, opts)
	if err != nil {
		return nil, err
	}
	front, dns := d.newClients(FrontClients), d.newClients(DNSClients)
	loadCtx, stopLoad := context.WithCancel(ctx)
	var wg sync.WaitGroup
	var loadErrs [2]error
	wg.Go(func() { loadErrs[0] = front.run(loadCtx, float64(opts.Rate), frontDo) })
	wg.Go(func() { loadErrs[1] = dns.run(loadCtx, float64(opts.Rate), dnsDo) })
	defer func() {
		// Gaps are measured up to when the load stopped, not to when the
		// last hanging request gave up.
		end := time.Now()
		stopLoad()
		wg.Wait()
		d.res.Front, d.res.DNS = front.result(d.faulted, end), dns.result(d.faulted, end)
		if e := errors.Join(loadErrs[:]...); e != nil && err == nil {
			err = e
		}
	}()
	if err := sleep(ctx, opts.Before); err != nil {
		return d.res, err
	}
	switch drill {
	case RegionLoss:
		err = d.regionLoss(ctx)
	case HubLoss:
		err = d.hubLoss(ctx)
	case Partition:
		err = d.partition(ctx)
	default:
		err = fmt.Errorf("drill: no drill %q (want %s, %s or %s)", drill, RegionLoss, HubLoss, Partition)
	}
	if err == nil {
		// The load runs on a little after the last event, so the
		// timeline shows the steady state the fleet settled in.
		err = sleep(ctx, settleTail)
	}
	return d.res, err
}

// run is one drill in progress.
type run struct {
	f     *fleet.Fleet
	opts  Options
	addrs map[string]netip.Addr // each region's address in DNS answers
	res   *Result
	start time.Time

	faulted, healed   time.Time
	cutFrom, cutUntil atomic.Int64 // unix nanos of a partition, 0: none
}

// binsTemplate is the timeline's length: the whole drill and a margin.
func (d *run) binsTemplate() []Bin {
	return make([]Bin, int((d.opts.Before+d.opts.For+d.opts.After+settleTail)/binWidth)+1)
}

func (d *run) fault() {
	d.faulted = time.Now()
	d.res.FaultAt = int(d.faulted.Sub(d.start) / binWidth)
}

func (d *run) heal() {
	d.healed = time.Now()
	d.res.HealAt = int(d.healed.Sub(d.start) / binWidth)
}

func since(t time.Time) *Seconds { s := Seconds(time.Since(t).Seconds()); return &s }

// watch calls check every 100ms for at most dur, until it reports that
// everything it watches for has happened or ctx ends.
func watch(ctx context.Context, dur time.Duration, check func() bool) {
	for deadline := time.Now().Add(dur); time.Now().Before(deadline) && !check(); {
		if sleep(ctx, 100*time.Millisecond) != nil {
			return
		}
	}
}

// watchEach watches each check on its own, every 100ms, until every one
// has reported its event, dur passed or ctx ended. Each event is timed by
// its own watcher, so a slow answer from one observed part (the hub's API
// on a loaded machine) does not delay seeing another (DNS).
func watchEach(ctx context.Context, dur time.Duration, checks ...func() bool) {
	var wg sync.WaitGroup
	for _, check := range checks {
		wg.Go(func() { watch(ctx, dur, check) })
	}
	wg.Wait()
}

func sleep(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}

// leftRegion watches, for at most dur, for the hub's verdict, DNS and
// the capacity after the region became unusable.
func (d *run) leftRegion(ctx context.Context, dur time.Duration) {
	r := d.res
	detected := make(chan struct{})
	watchEach(ctx, dur,
		func() bool {
			if health(ctx, d.f, d.opts.Region) != v1.HealthUnreachable {
				return false
			}
			r.Detected = since(d.faulted)
			close(detected)
			return true
		},
		func() bool {
			a, err := resolve(d.f, d.opts.Subnet)
			if err != nil || !a.IsValid() || a == d.addrs[d.opts.Region] {
				return false
			}
			r.DNSResteered = since(d.faulted)
			return true
		},
		func() bool {
			select {
			case <-detected: // capacity is replaced once the region is known lost
			default:
				return false
			}
			if !replaced(ctx, d.f, d.opts.Region) {
				return false
			}
			r.Replaced = since(d.faulted)
			return true
		})
}

// regionLoss loses the region for good: a crash, or a blackhole.
func (d *run) regionLoss(ctx context.Context) error {
	d.fault()
	lose, how := d.f.KillRegion, "crash"
	if d.opts.Blackhole {
		lose, how = d.f.BlackholeRegion, "blackhole"
	}
	d.res.Fault = how
	if err := lose(d.opts.Region); err != nil {
		return err
	}
	d.leftRegion(ctx, d.opts.After)
	return nil
}

// partition cuts the region off for opts.For, heals it and watches it
// come back.
func (d *run) partition(ctx context.Context) error {
	d.fault()
	d.cutFrom.Store(d.faulted.UnixNano())
	if err := d.f.Partition(d.opts.Region); err != nil {
		return err
	}
	// The partition lasts opts.For whatever happens.
	end := d.faulted.Add(d.opts.For)
	d.leftRegion(ctx, d.opts.For)
	if err := sleep(ctx, time.Until(end)); err != nil {
		return err
	}
	d.heal()
	d.cutUntil.Store(d.healed.UnixNano())
	if err := d.f.Heal(d.opts.Region); err != nil {
		return err
	}
	r := d.res
	watchEach(ctx, d.opts.After,
		func() bool {
			if health(ctx, d.f, d.opts.Region) != v1.HealthReady {
				return false
			}
			r.Rejoined = since(d.healed)
			return true
		},
		func() bool {
			if a, err := resolve(d.f, d.opts.Subnet); err != nil || a != d.addrs[d.opts.Region] {
				return false
			}
			r.DNSReturned = since(d.healed)
			return true
		})
	return nil
}

// hubLoss takes the hub away for opts.For while asking DNS as every
// region's clients, brings it back and watches it pick the fleet up.
func (d *run) hubLoss(ctx context.Context) error {
	d.fault()
	if err := d.f.KillHub(); err != nil {
		return err
	}
	r := d.res
	watch(ctx, d.opts.For, func() bool {
		for region, subnet := range DefaultSubnets {
			want, ok := d.addrs[region]
			if !ok {
				continue
			}
			r.DNSQueries++
			if a, err := resolve(d.f, subnet); err != nil || a != want {
				r.DNSWrong++
			}
		}
		return false // the outage lasts opts.For
	})
	d.heal()
	if err := d.f.RestoreHub(); err != nil {
		return err
	}
	watch(ctx, d.opts.After, func() bool {
		if r.Rejoined == nil && fleetReady(ctx, d.f, d.healed) {
			r.Rejoined = since(d.healed)
		}
		return r.Rejoined != nil
	})
	return nil
}
