// Package drill runs failover drills against a local fleet: steady load
// through the global balancer's HTTP front and steady DNS queries, then a
// region dies, and the drill reports how long detection, DNS re-steering
// and replacing the lost capacity took, and how many requests failed — as
// JSON and as an SVG timeline.
package drill

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/netip"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	mdns "github.com/miekg/dns"
	"k8s.io/apimachinery/pkg/api/meta"
	"sigs.k8s.io/controller-runtime/pkg/client"

	v1 "meridian.dev/meridian/crds/v1alpha1"
	"meridian.dev/meridian/internal/fleet"
)

// Options configure a region-loss drill.
type Options struct {
	// Region is the region to kill.
	Region string
	// Subnet is the clients' network, sent as EDNS Client Subnet and as
	// X-Forwarded-For, so they are steered to Region first; default one
	// that geolocates near Region's centre.
	Subnet netip.Prefix
	// Rate is the requests per second offered through the HTTP front.
	// Default 50.
	Rate int
	// Before and After are how long the load runs before the kill and
	// after it. Defaults 5s and 30s.
	Before, After time.Duration
	// Front is the balancer's HTTP front, host:port.
	Front string
}

// Result is what a drill measured; durations are from the kill.
type Result struct {
	Region string `json:"region"`
	// Detected is when the hub marked the region Unreachable.
	Detected *Seconds `json:"detectedAfter"`
	// DNSResteered is when DNS stopped answering with the region.
	DNSResteered *Seconds `json:"dnsResteeredAfter"`
	// Replaced is when every model was Ready again without the region.
	Replaced *Seconds `json:"capacityReplacedAfter"`
	// Requests and Failed count what went through the HTTP front.
	Requests int64 `json:"requests"`
	Failed   int64 `json:"failedRequests"`
	// Timeline has one bin per 250ms: answers and failures.
	Timeline []Bin `json:"timeline"`
	// KilledAt is the bin index of the kill.
	KilledAt int `json:"killedAtBin"`
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

const binWidth = 250 * time.Millisecond

// DefaultSubnets are client networks near each default region.
var DefaultSubnets = map[string]netip.Prefix{
	"eu-west":  netip.MustParsePrefix("193.0.0.0/24"),  // Amsterdam
	"us-east":  netip.MustParsePrefix("3.80.0.0/24"),   // Ashburn
	"ap-south": netip.MustParsePrefix("13.126.0.0/24"), // Mumbai
}

// RegionLoss kills opts.Region in a running fleet under load and measures
// what the fleet did.
func RegionLoss(ctx context.Context, f *fleet.Fleet, opts Options) (*Result, error) {
	if opts.Rate <= 0 {
		opts.Rate = 50
	}
	if opts.Before <= 0 {
		opts.Before = 5 * time.Second
	}
	if opts.After <= 0 {
		opts.After = 30 * time.Second
	}
	if !opts.Subnet.IsValid() {
		opts.Subnet = DefaultSubnets[opts.Region]
	}
	if !opts.Subnet.IsValid() {
		return nil, fmt.Errorf("drill: give a client subnet near %s", opts.Region)
	}
	regionAddr, ttl, err := regionAddress(ctx, f, opts.Region)
	if err != nil {
		return nil, err
	}
	res := &Result{Region: opts.Region, DNSTTL: ttl}
	start := time.Now()
	bins := make([]Bin, int((opts.Before+opts.After)/binWidth)+1)
	var mu sync.Mutex
	record := func(ok bool) {
		i := int(time.Since(start) / binWidth)
		mu.Lock()
		defer mu.Unlock()
		if i >= len(bins) {
			return
		}
		if ok {
			bins[i].OK++
		} else {
			bins[i].Failed++
		}
	}
	loadCtx, stopLoad := context.WithCancel(ctx)
	var wg sync.WaitGroup
	var requests, failed atomic.Int64
	wg.Add(1)
	go func() {
		defer wg.Done()
		load(loadCtx, opts, func(ok bool) {
			requests.Add(1)
			if !ok {
				failed.Add(1)
			}
			record(ok)
		})
	}()
	time.Sleep(opts.Before)
	killed := time.Now()
	res.KilledAt = int(killed.Sub(start) / binWidth)
	if err := f.KillRegion(opts.Region); err != nil {
		stopLoad()
		wg.Wait()
		return nil, err
	}
	since := func() *Seconds { s := Seconds(time.Since(killed).Seconds()); return &s }
	for deadline := killed.Add(opts.After); time.Now().Before(deadline); time.Sleep(100 * time.Millisecond) {
		if res.Detected == nil && health(ctx, f, opts.Region) == v1.HealthUnreachable {
			res.Detected = since()
		}
		if res.DNSResteered == nil {
			if a, err := resolve(f, opts.Subnet); err == nil && a.IsValid() && a != regionAddr {
				res.DNSResteered = since()
			}
		}
		if res.Replaced == nil && res.Detected != nil && replaced(ctx, f, opts.Region) {
			res.Replaced = since()
		}
	}
	stopLoad()
	wg.Wait()
	res.Requests, res.Failed = requests.Load(), failed.Load()
	res.Timeline = bins
	return res, nil
}

// load offers opts.Rate requests per second through the front, as clients
// from opts.Subnet, and reports each outcome.
func load(ctx context.Context, opts Options, done func(ok bool)) {
	client := &http.Client{Timeout: 10 * time.Second}
	client.Transport = &http.Transport{MaxIdleConnsPerHost: 64}
	t := time.NewTicker(time.Second / time.Duration(opts.Rate))
	defer t.Stop()
	var wg sync.WaitGroup
	defer wg.Wait()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			req, err := http.NewRequest(http.MethodPost, "http://"+opts.Front+"/analyze", strings.NewReader(`{"text":"I love this, it is amazing"}`))
			if err != nil {
				done(false)
				return
			}
			req.Header.Set("X-Forwarded-For", opts.Subnet.Addr().String())
			resp, err := client.Do(req)
			if err != nil {
				done(false)
				return
			}
			body, _ := io.ReadAll(resp.Body)
			_ = resp.Body.Close()
			done(resp.StatusCode == http.StatusOK && strings.Contains(string(body), "POSITIVE"))
		}()
	}
}

// resolve asks the fleet's DNS for sentiment as a client of subnet.
func resolve(f *fleet.Fleet, subnet netip.Prefix) (netip.Addr, error) {
	m := new(mdns.Msg)
	m.SetQuestion("sentiment."+f.Zone+".", mdns.TypeA)
	o := &mdns.OPT{Hdr: mdns.RR_Header{Name: ".", Rrtype: mdns.TypeOPT}}
	o.SetUDPSize(1232)
	o.Option = append(o.Option, &mdns.EDNS0_SUBNET{Code: mdns.EDNS0SUBNET, Family: 1, SourceNetmask: uint8(subnet.Bits()), Address: subnet.Addr().AsSlice()})
	m.Extra = append(m.Extra, o)
	r, err := mdns.Exchange(m, f.DNSAddr)
	if err != nil {
		return netip.Addr{}, err
	}
	for _, rr := range r.Answer {
		if a, ok := rr.(*mdns.A); ok {
			addr, _ := netip.AddrFromSlice(a.A.To4())
			return addr, nil
		}
	}
	return netip.Addr{}, nil
}

// regionAddress is the address DNS gives the region's clients before the
// drill, and the endpoint's TTL.
func regionAddress(ctx context.Context, f *fleet.Fleet, region string) (netip.Addr, int32, error) {
	var ge v1.GlobalEndpoint
	if err := f.Client().Get(ctx, client.ObjectKey{Namespace: "default", Name: "sentiment"}, &ge); err != nil {
		return netip.Addr{}, 0, err
	}
	a, err := resolve(f, DefaultSubnets[region])
	if err != nil {
		return netip.Addr{}, 0, fmt.Errorf("drill: asking DNS for %s's clients before the drill: %w", region, err)
	}
	if !a.IsValid() {
		return netip.Addr{}, 0, fmt.Errorf("drill: DNS gave %s's clients no address before the drill", region)
	}
	return a, ge.Spec.TTL, nil
}

func health(ctx context.Context, f *fleet.Fleet, region string) v1.ClusterHealth {
	var c v1.Cluster
	if err := f.Client().Get(ctx, client.ObjectKey{Name: region}, &c); err != nil {
		return ""
	}
	return c.Status.Health
}

// replaced reports every InferenceModel Ready with no replica wanted in
// the dead region.
func replaced(ctx context.Context, f *fleet.Fleet, region string) bool {
	var list v1.InferenceModelList
	if err := f.Client().List(ctx, &list); err != nil {
		return false
	}
	for _, im := range list.Items {
		if !meta.IsStatusConditionTrue(im.Status.Conditions, "Ready") {
			return false
		}
		for _, a := range im.Status.Clusters {
			if a.Cluster == region && a.DesiredReplicas > 0 {
				return false
			}
		}
	}
	return len(list.Items) > 0
}
