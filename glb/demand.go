package glb

import (
	"context"
	"fmt"
	"log/slog"
	"maps"
	"net/netip"
	"regexp"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/golang-lru/v2/simplelru"
	"github.com/prometheus/client_golang/prometheus"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	v1 "meridian.dev/meridian/crds/v1alpha1"
	"meridian.dev/meridian/glb/geo"
	"meridian.dev/meridian/internal/metricsreg"
)

// Where a demand observation came from, as in the source label.
const (
	demandDNS  = "dns"
	demandHTTP = "http"
)

// Demand counts where each GlobalEndpoint's users are — DNS queries and
// HTTP requests by the fleet region nearest to the client — and reports
// the rates to the hub as this site's DemandReport, so placement follows
// users (the proximity-to-demand input). Counting is two atomic adds on
// the request path, no lock shared by all traffic; the report is written
// off it.
type Demand struct {
	counts sync.Map // demandKey → *demandCount
	total  *prometheus.CounterVec

	mu    sync.Mutex
	since time.Time // start of the current window

	// DNS queries are counted by the policy's rules (DNSDemandPolicy):
	// sources are the queries counted this window by source network.
	policy    DNSDemandPolicy
	srcMu     sync.Mutex
	sources   *simplelru.LRU[netip.Prefix, int]
	capped    prometheus.Counter
	untrusted prometheus.Counter
}

// DNSDemandPolicy says which DNS queries count as demand, and where from.
// ECS steers every answer (that is the protocol), but anyone can forge it,
// and demand moves replicas: so a query's ECS address places its demand
// only when the query comes from a trusted resolver; any other query
// counts where its source address is. And no source network (an IPv4 /24,
// an IPv6 /56) counts more than PerSource queries in one window, so one
// flooding source cannot outweigh a region's users.
type DNSDemandPolicy struct {
	// TrustedResolvers are the networks of resolvers whose ECS addresses
	// count as demand. Default none: every query counts by its source.
	TrustedResolvers []netip.Prefix
	// PerSource is the most queries one source network counts as demand
	// per window (--demand-period). Default DefaultDNSDemandPerSource;
	// negative: no cap.
	PerSource int
}

// DNS demand defaults: queries per source network per window, and how
// many source networks are tracked (least recently seen forgotten first).
const (
	DefaultDNSDemandPerSource = 1500
	demandSourceTable         = 65536
)

// SetDNSPolicy sets how DNS queries count as demand; call it before
// serving.
func (d *Demand) SetDNSPolicy(p DNSDemandPolicy) {
	if p.PerSource == 0 {
		p.PerSource = DefaultDNSDemandPerSource
	}
	d.policy = p
}

// trusts reports whether resolver's ECS addresses count as demand.
func (d *Demand) trusts(resolver netip.Addr) bool {
	for _, p := range d.policy.TrustedResolvers {
		if p.Contains(resolver) {
			return true
		}
	}
	return false
}

// addDNS counts one DNS query of endpoint e from region, unless its
// source network has used up this window's share.
func (d *Demand) addDNS(e Endpoint, region string, source netip.Addr) {
	if d == nil || e.Namespace == "" || region == "" {
		return
	}
	if limit := d.policy.PerSource; limit > 0 && source.IsValid() {
		bits := 56
		if source.Is4() {
			bits = 24
		}
		key, _ := source.Prefix(bits)
		d.srcMu.Lock()
		n, _ := d.sources.Get(key)
		if n >= limit {
			d.srcMu.Unlock()
			d.capped.Inc()
			return
		}
		d.sources.Add(key, n+1)
		d.srcMu.Unlock()
	}
	d.add(e, region, demandDNS)
}

type demandKey struct{ namespace, model, region string }

// demandCount is one key's count in the current window, and its metric
// children (resolving labels on every query would cost more than
// counting).
type demandCount struct {
	queries, requests atomic.Int64
	dns, http         prometheus.Counter
}

// NewDemand returns an empty counter whose meridian_glb_demand_total
// registers on reg (nil: not registered).
func NewDemand(reg prometheus.Registerer) (*Demand, error) {
	sources, err := simplelru.NewLRU[netip.Prefix, int](demandSourceTable, nil)
	if err != nil {
		return nil, err
	}
	d := &Demand{since: time.Now(), sources: sources,
		total: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "meridian_glb_demand_total",
			Help: "DNS queries and HTTP requests for each GlobalEndpoint's model, by the fleet region nearest to the client and source (dns, http).",
		}, []string{"namespace", "model", "region", "source"}),
		capped: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "meridian_glb_demand_dns_capped_total",
			Help: "DNS queries not counted as demand because their source network (/24, /56) had reached its share of the window (--dns-demand-per-source).",
		}),
		untrusted: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "meridian_glb_demand_dns_ecs_untrusted_total",
			Help: "DNS queries whose EDNS Client Subnet steered the answer but, from a resolver not in --dns-ecs-trusted-resolvers, was not believed as demand: counted where the resolver is.",
		})}
	d.SetDNSPolicy(DNSDemandPolicy{})
	if err := metricsreg.Register(reg, "demand", d.total, d.capped, d.untrusted); err != nil {
		return nil, err
	}
	return d, nil
}

// add counts one query or request from a located client of endpoint e.
func (d *Demand) add(e Endpoint, region, source string) {
	if d == nil || e.Namespace == "" || region == "" {
		return // not a GlobalEndpoint's model, or a client we cannot place
	}
	k := demandKey{e.Namespace, e.Model, region}
	v, ok := d.counts.Load(k)
	if !ok {
		v, _ = d.counts.LoadOrStore(k, &demandCount{
			dns:  d.total.WithLabelValues(k.namespace, k.model, k.region, demandDNS),
			http: d.total.WithLabelValues(k.namespace, k.model, k.region, demandHTTP)})
	}
	c := v.(*demandCount)
	if source == demandDNS {
		c.queries.Add(1)
		c.dns.Inc()
	} else {
		c.requests.Add(1)
		c.http.Inc()
	}
}

// window is one window's counts: [queries, requests] by key.
type window map[demandKey][2]int64

// take ends the current window: its counts and its start.
func (d *Demand) take(now time.Time) (window, time.Time) {
	d.mu.Lock()
	defer d.mu.Unlock()
	w := window{}
	d.counts.Range(func(k, v any) bool {
		c := v.(*demandCount)
		if q, r := c.queries.Swap(0), c.requests.Swap(0); q != 0 || r != 0 {
			w[k.(demandKey)] = [2]int64{q, r}
		}
		return true
	})
	since := d.since
	d.since = now
	d.srcMu.Lock()
	d.sources.Purge() // every source's share starts again
	d.srcMu.Unlock()
	return w, since
}

// restore puts back a window whose report could not be written, so the
// next report covers it too: a hub outage loses no demand.
func (d *Demand) restore(w window, since time.Time) {
	d.mu.Lock()
	defer d.mu.Unlock()
	for k, n := range w {
		v, _ := d.counts.Load(k) // every key of a window is in counts
		c := v.(*demandCount)
		c.queries.Add(n[0])
		c.requests.Add(n[1])
	}
	d.since = since
}

// finalWriteTimeout bounds the last report's write when the balancer
// stops, so a dead hub cannot hold a shutdown.
const finalWriteTimeout = 3 * time.Second

// nearestRegion is the region of the located cluster closest to the
// client, "" when the client or no cluster has a location.
func nearestRegion(snap *Snapshot, lat, lon float64) string {
	best, region := 0.0, ""
	for _, st := range snap.sites {
		if d := geo.Haversine(lat, lon, st.lat, st.lon); region == "" || d < best {
			best, region = d, st.region
		}
	}
	return region
}

// Report writes this site's DemandReport on the hub every period until
// ctx ends, and once more then (within finalWriteTimeout). A failed write
// keeps the window's counts for the next one.
func (d *Demand) Report(ctx context.Context, hub client.Client, site string, period time.Duration, log *slog.Logger) {
	name := ReportName(site)
	t := time.NewTicker(period)
	defer t.Stop()
	for {
		final := false
		select {
		case <-ctx.Done():
			final = true // the last window, so a restart loses no demand
		case <-t.C:
		}
		now := time.Now()
		counts, since := d.take(now)
		parent, limit := ctx, period
		if final {
			parent, limit = context.WithoutCancel(ctx), min(period, finalWriteTimeout)
		}
		wctx, cancel := context.WithTimeout(parent, limit)
		err := writeReport(wctx, hub, name, site, report(counts, since, now))
		cancel()
		if err != nil {
			d.restore(counts, since)
			log.Warn("writing the DemandReport on the hub; the counts carry over to the next try", "report", name, "err", err, "final", final)
		}
		if final {
			return
		}
	}
}

// report turns one window's counts into a DemandReport status, models
// and regions sorted.
func report(counts window, since, now time.Time) v1.DemandReportStatus {
	span := now.Sub(since)
	st := v1.DemandReportStatus{ObservedAt: &metav1.Time{Time: now}, Window: metav1.Duration{Duration: span}}
	for _, k := range slices.SortedFunc(maps.Keys(counts), compareKeys) {
		if n := len(st.Models); n == 0 || st.Models[n-1].Namespace != k.namespace || st.Models[n-1].Name != k.model {
			st.Models = append(st.Models, v1.ModelDemand{Namespace: k.namespace, Name: k.model})
		}
		m, n := &st.Models[len(st.Models)-1], counts[k]
		m.Regions = append(m.Regions, v1.RegionRate{Region: v1.RegionName(k.region),
			RequestsPerSecond: rate(n[1], span), QueriesPerSecond: rate(n[0], span)})
	}
	return st
}

func compareKeys(a, b demandKey) int {
	return strings.Compare(a.namespace+"/"+a.model+"/"+a.region, b.namespace+"/"+b.model+"/"+b.region)
}

// rate is n per span as a Quantity with millis, nil for none.
func rate(n int64, span time.Duration) *resource.Quantity {
	if n == 0 || span <= 0 {
		return nil
	}
	return resource.NewMilliQuantity(int64(float64(n)/span.Seconds()*1000+0.5), resource.DecimalSI)
}

func writeReport(ctx context.Context, hub client.Client, name, site string, st v1.DemandReportStatus) error {
	rep := &v1.DemandReport{}
	err := hub.Get(ctx, client.ObjectKey{Name: name}, rep)
	if apierrors.IsNotFound(err) {
		rep = &v1.DemandReport{ObjectMeta: metav1.ObjectMeta{Name: name}, Spec: v1.DemandReportSpec{Site: site}}
		err = hub.Create(ctx, rep)
	}
	if err != nil {
		return err
	}
	if rep.Spec.Site != site {
		return fmt.Errorf("DemandReport %s belongs to site %q: give this balancer a --site of its own", name, rep.Spec.Site)
	}
	base := rep.DeepCopy()
	rep.Status = st
	return hub.Status().Patch(ctx, rep, client.MergeFrom(base))
}

var invalidName = regexp.MustCompile(`[^a-z0-9-]+`)

// ReportName is the DemandReport's name for a site: the site lower-cased
// with anything but letters, digits and '-' turned into '-'.
func ReportName(site string) string {
	n := strings.Trim(invalidName.ReplaceAllString(strings.ToLower(site), "-"), "-")
	if n == "" {
		return "glb"
	}
	return n[:min(len(n), 63)]
}
