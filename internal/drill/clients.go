package drill

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/netip"
	"slices"
	"strings"
	"sync"
	"time"

	"meridian.dev/meridian/glb/front"
	"meridian.dev/meridian/internal/fleet"
	"meridian.dev/meridian/internal/loadgen"
	"meridian.dev/meridian/internal/resolver"
)

// A drill's users come in two kinds, each offered load at a fixed rate
// (open loop, internal/loadgen) and each counted:
//
//   - front clients send every request to the global balancer's HTTP
//     front, which picks a region per request and retries elsewhere;
//   - DNS clients resolve the model's name through a real recursive
//     resolver (Unbound, with ECS and its subnet cache), keep the answer
//     for its TTL as a browser or OS cache does, and connect straight to
//     the answered region's gateway. They are DNSUsers users, each with its
//     own cache, taking turns.

// Kinds of client.
const (
	FrontClients = "front"
	DNSClients   = "dns"
)

// maxLateness is how far behind its schedule a send may fall before the
// run no longer counts as having offered its load: a stall of the
// generator only lengthens the gaps it measures, so the bound is loose
// (a busy 2-core machine stalls for a few hundred milliseconds).
const maxLateness = time.Second

// DNSUsers is how many DNS-following users share the DNS clients' rate.
const DNSUsers = 10

// Clients is what one kind of client saw.
type Clients struct {
	Kind string `json:"kind"`
	// The load: offered (due), sent, and how the sent ones ended;
	// dropped were never sent (in-flight cap). LoadOffered is false when
	// the generator could not keep to its schedule (Shortfall says why):
	// such a run is not a pass.
	Offered      int64   `json:"offered"`
	Sent         int64   `json:"sent"`
	OK           int64   `json:"ok"`
	Failed       int64   `json:"failed"`
	Dropped      int64   `json:"dropped"`
	OfferedRate  float64 `json:"offeredPerSecond"`
	AchievedRate float64 `json:"achievedPerSecond"`
	LoadOffered  bool    `json:"loadOffered"`
	Shortfall    string  `json:"shortfall,omitempty"`
	// LongestGap is the longest time without a good answer, from the
	// fault to the end of the drill.
	LongestGap Seconds `json:"longestGapSeconds"`
	// P50 and P99 are over every sent request of the drill, failed ones
	// included (they count at the time they took to fail).
	P50 Seconds `json:"p50Seconds"`
	P99 Seconds `json:"p99Seconds"`
	// ByRegion counts the good answers by the region that gave them.
	ByRegion map[string]int64 `json:"answersByRegion"`
	// FromCutRegion counts good answers from a partitioned region while
	// it was cut off (after a second's grace for answers on their way).
	FromCutRegion int64 `json:"answersFromCutRegion,omitempty"`
	// Timeline has one bin per 250ms, by when requests ended.
	Timeline []Bin `json:"timeline"`
}

// clients offers one kind's load and keeps its figures.
type clients struct {
	kind string
	d    *run

	mu     sync.Mutex
	bins   []Bin
	goodAt []time.Time // when each good answer arrived
	cut    int64
	rep    *loadgen.Report
}

func (d *run) newClients(kind string) *clients {
	return &clients{kind: kind, d: d, bins: make([]Bin, len(d.binsTemplate()))}
}

func (c *clients) record(r loadgen.Result) {
	end := r.Start.Add(r.Latency)
	if r.Dropped {
		end = r.Due
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if i := int(end.Sub(c.d.start) / binWidth); i >= 0 && i < len(c.bins) {
		if r.OK {
			c.bins[i].OK++
		} else {
			c.bins[i].Failed++
		}
	}
	if !r.OK {
		return
	}
	c.goodAt = append(c.goodAt, end)
	if from, until := c.d.cutFrom.Load(), c.d.cutUntil.Load(); r.Label == c.d.opts.Region && from != 0 &&
		end.UnixNano() > from+int64(time.Second) && (until == 0 || end.UnixNano() < until) {
		c.cut++
	}
}

// run offers the load until ctx ends.
func (c *clients) run(ctx context.Context, rate float64, do loadgen.Request) error {
	rep, err := loadgen.Run(ctx, loadgen.Options{Phases: loadgen.Constant(rate, 0), OnResult: c.record,
		Timeout: 10 * time.Second, MaxLateness: maxLateness}, do)
	c.mu.Lock()
	c.rep = rep
	c.mu.Unlock()
	return err
}

// result sums the kind up; faulted is the fault's time, end when the load
// stopped (requests still hanging then end later, in the timeline).
func (c *clients) result(faulted, end time.Time) Clients {
	c.mu.Lock()
	defer c.mu.Unlock()
	out := Clients{Kind: c.kind, FromCutRegion: c.cut, ByRegion: map[string]int64{},
		Timeline: c.bins[:min(len(c.bins), int(time.Since(c.d.start)/binWidth)+1)]}
	if r := c.rep; r != nil {
		out.Offered, out.Sent, out.OK, out.Failed, out.Dropped = r.Offered, r.Sent, r.OK, r.Failed, r.Dropped
		out.OfferedRate, out.AchievedRate, out.LoadOffered, out.Shortfall = r.OfferedRate(), r.AchievedRate(), r.LoadOffered, r.Shortfall
		out.P50, out.P99 = Seconds(r.P50.Seconds()), Seconds(r.P99.Seconds())
		for region, n := range r.Labels {
			out.ByRegion[cmpOr(region, "unknown")] = n
		}
	}
	out.LongestGap = Seconds(longestGap(c.goodAt, faulted, end).Seconds())
	return out
}

// longestGap is the longest stretch of [from, to] with no time in good.
func longestGap(good []time.Time, from, to time.Time) time.Duration {
	if from.IsZero() {
		return 0
	}
	ts := slices.Clone(good)
	slices.SortFunc(ts, func(a, b time.Time) int { return a.Compare(b) })
	var gap time.Duration
	last := from
	for _, t := range ts {
		if t.Before(from) || t.After(to) {
			continue
		}
		gap = max(gap, t.Sub(last))
		last = t
	}
	return max(gap, to.Sub(last))
}

func cmpOr(s, def string) string {
	if s == "" {
		return def
	}
	return s
}

// frontRequest is one front client's request: as a user of opts.Subnet
// (X-Forwarded-For, which the drill's balancer trusts), over the fleet's
// TLS with its tenant's key, labelled with the region that answered.
func frontRequest(f *fleet.Fleet, opts Options) (loadgen.Request, error) {
	tc, err := f.ClientTLS()
	if err != nil {
		return nil, err
	}
	hc := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 64, TLSClientConfig: tc}}
	url := f.Scheme() + "://" + opts.Front + "/analyze"
	return func(ctx context.Context) (string, error) {
		req, err := http.NewRequestWithContext(ctx, http.MethodPost, url, strings.NewReader(sentimentBody))
		if err != nil {
			return "", err
		}
		setKey(req.Header, f)
		req.Header.Set("X-Forwarded-For", opts.Subnet.Addr().String())
		resp, err := hc.Do(req)
		if err != nil {
			return "", err
		}
		body, _ := io.ReadAll(resp.Body)
		_ = resp.Body.Close()
		if resp.StatusCode != http.StatusOK || !strings.Contains(string(body), "POSITIVE") {
			return "", fmt.Errorf("front: %d %.100s", resp.StatusCode, body)
		}
		return resp.Header.Get(front.ClusterHeader), nil
	}, nil
}

// setKey gives a request the fleet's tenant key, when it has one.
func setKey(h http.Header, f *fleet.Fleet) {
	if k := f.APIKey(); k != "" {
		h.Set("Authorization", "Bearer "+k)
	}
}

const sentimentBody = `{"text":"I love this, it is amazing"}`

// dnsRequest is one DNS client's request: DNSUsers users near opts.Subnet
// take turns; each resolves sentiment.<zone> through res, caches the
// answer for its TTL and posts to the answered region's gateway. The label
// is the region whose address answered.
func dnsRequest(f *fleet.Fleet, res *resolver.Resolver, opts Options, regionOf map[netip.Addr]string) (loadgen.Request, func(), error) {
	tc, err := f.ClientTLS()
	if err != nil {
		return nil, nil, err
	}
	header := http.Header{}
	setKey(header, f)
	users := make([]*resolver.Client, DNSUsers)
	for i := range users {
		c, err := resolver.NewClient(resolver.ClientOptions{
			Resolver: res.Addr(), Host: "sentiment." + f.Zone, Subnet: opts.Subnet,
			Port: fleet.GatewayPort, Path: "/analyze", Body: []byte(sentimentBody), Timeout: 10 * time.Second,
			TLS: tc, Header: header,
		})
		if err != nil {
			return nil, nil, err
		}
		users[i] = c
	}
	var mu sync.Mutex
	next := 0
	do := func(ctx context.Context) (string, error) {
		mu.Lock()
		u := users[next%len(users)]
		next++
		mu.Unlock()
		r := u.Do(ctx)
		region := regionOf[r.Addr.Addr()]
		if !r.OK {
			if r.Err != nil {
				return region, r.Err
			}
			return region, fmt.Errorf("dns client: %d from %s", r.Status, r.Addr)
		}
		return region, nil
	}
	closeAll := func() {
		for _, u := range users {
			u.Close()
		}
	}
	return do, closeAll, nil
}
