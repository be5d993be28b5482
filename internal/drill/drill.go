// Package drill runs failover drills against a local fleet: steady load
// through the global balancer's HTTP front and steady DNS queries, then
// something breaks — a region dies, the hub dies, a region is partitioned
// away and comes back — and the drill reports what users saw and how long
// the fleet took to notice and heal: as JSON and as an SVG timeline.
package drill

import (
	"context"
	"fmt"
	"net/netip"
	"sync"
	"sync/atomic"
	"time"

	v1 "meridian.dev/meridian/crds/v1alpha1"
	"meridian.dev/meridian/internal/fleet"
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
	// Rate is the requests per second offered through the HTTP front.
	// Default 50.
	Rate int
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
	// Detected is when the hub marked the region Unreachable.
	Detected *Seconds `json:"detectedAfter,omitempty"`
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
	// Requests and Failed count what went through the HTTP front.
	Requests int64 `json:"requests"`
	Failed   int64 `json:"failedRequests"`
	// FromCutRegion counts answers that came from the partitioned region
	// while it was cut off (after a second's grace for answers already on
	// their way): a partition that leaks shows here.
	FromCutRegion int64 `json:"answersFromCutRegion,omitempty"`
	// Timeline has one bin per 250ms: answers and failures.
	Timeline []Bin `json:"timeline"`
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
func Run(ctx context.Context, f *fleet.Fleet, drill string, opts Options) (*Result, error) {
	if err := opts.defaults(); err != nil {
		return nil, err
	}
	addrs, ttl, err := regionAddresses(ctx, f)
	if err != nil {
		return nil, err
	}
	d := &run{f: f, opts: opts, addrs: addrs, start: time.Now(),
		res:  &Result{Drill: drill, Region: opts.Region, DNSTTL: ttl},
		bins: make([]Bin, int((opts.Before+opts.For+opts.After+settleTail)/binWidth)+1)}
	loadCtx, stopLoad := context.WithCancel(ctx)
	var wg sync.WaitGroup
	wg.Go(func() { load(loadCtx, opts, d.record) })
	defer func() {
		stopLoad()
		wg.Wait()
		d.res.Requests, d.res.Failed, d.res.FromCutRegion = d.requests.Load(), d.failed.Load(), d.fromCut.Load()
		d.mu.Lock()
		d.res.Timeline = d.bins[:min(len(d.bins), int(time.Since(d.start)/binWidth)+1)]
		d.mu.Unlock()
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

	mu                sync.Mutex
	bins              []Bin
	requests, failed  atomic.Int64
	fromCut           atomic.Int64
	faulted, healed   time.Time
	cutFrom, cutUntil atomic.Int64 // unix nanos of a partition, 0: none
}

func (d *run) record(ok bool, cluster string) {
	d.requests.Add(1)
	if !ok {
		d.failed.Add(1)
	}
	if from, now := d.cutFrom.Load(), time.Now().UnixNano(); ok && cluster == d.opts.Region && from != 0 &&
		now > from+int64(time.Second) && (d.cutUntil.Load() == 0 || now < d.cutUntil.Load()) {
		d.fromCut.Add(1)
	}
	i := int(time.Since(d.start) / binWidth)
	d.mu.Lock()
	defer d.mu.Unlock()
	if i >= len(d.bins) {
		return
	}
	if ok {
		d.bins[i].OK++
	} else {
		d.bins[i].Failed++
	}
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

// leftRegion watches the hub's verdict, DNS and the capacity after the
// region became unusable; true once all three happened.
func (d *run) leftRegion(ctx context.Context) bool {
	r := d.res
	if r.Detected == nil && health(ctx, d.f, d.opts.Region) == v1.HealthUnreachable {
		r.Detected = since(d.faulted)
	}
	if r.DNSResteered == nil {
		if a, err := resolve(d.f, d.opts.Subnet); err == nil && a.IsValid() && a != d.addrs[d.opts.Region] {
			r.DNSResteered = since(d.faulted)
		}
	}
	if r.Replaced == nil && r.Detected != nil && replaced(ctx, d.f, d.opts.Region) {
		r.Replaced = since(d.faulted)
	}
	return r.Detected != nil && r.DNSResteered != nil && r.Replaced != nil
}

// regionLoss kills the region for good.
func (d *run) regionLoss(ctx context.Context) error {
	d.fault()
	if err := d.f.KillRegion(d.opts.Region); err != nil {
		return err
	}
	watch(ctx, d.opts.After, func() bool { return d.leftRegion(ctx) })
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
	watch(ctx, d.opts.For, func() bool { d.leftRegion(ctx); return false })
	d.heal()
	d.cutUntil.Store(d.healed.UnixNano())
	if err := d.f.Heal(d.opts.Region); err != nil {
		return err
	}
	r := d.res
	watch(ctx, d.opts.After, func() bool {
		if r.Rejoined == nil && health(ctx, d.f, d.opts.Region) == v1.HealthReady {
			r.Rejoined = since(d.healed)
		}
		if r.DNSReturned == nil {
			if a, err := resolve(d.f, d.opts.Subnet); err == nil && a == d.addrs[d.opts.Region] {
				r.DNSReturned = since(d.healed)
			}
		}
		return r.Rejoined != nil && r.DNSReturned != nil
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
