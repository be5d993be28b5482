package glb

import (
	"context"
	"log/slog"
	"maps"
	"regexp"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	v1 "meridian.dev/meridian/crds/v1alpha1"
	"meridian.dev/meridian/glb/geo"
)

// Where a demand observation came from, as in the source label.
const (
	demandDNS  = "dns"
	demandHTTP = "http"
)

// Demand counts where each GlobalEndpoint's users are — DNS queries and
// HTTP requests by the fleet region nearest to the client — and reports
// the rates to the hub as this site's DemandReport, so placement follows
// users (the proximity-to-demand input). Counting is a map increment
// under a mutex on the request path; the report is written off it.
type Demand struct {
	mu     sync.Mutex
	counts map[demandKey]*demandCount
	since  time.Time // start of the current window
	total  *prometheus.CounterVec
	// counters caches total's children: resolving labels on every query
	// would cost more than the counting.
	counters map[demandKey][2]prometheus.Counter // [dns, http]
}

type demandKey struct{ namespace, model, region string }

type demandCount struct{ queries, requests float64 }

// NewDemand returns an empty counter whose meridian_glb_demand_total
// registers on reg (nil: not registered).
func NewDemand(reg prometheus.Registerer) (*Demand, error) {
	d := &Demand{counts: map[demandKey]*demandCount{}, since: time.Now(), counters: map[demandKey][2]prometheus.Counter{},
		total: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "meridian_glb_demand_total",
			Help: "DNS queries and HTTP requests for each GlobalEndpoint's model, by the fleet region nearest to the client and source (dns, http).",
		}, []string{"namespace", "model", "region", "source"})}
	if reg != nil {
		if err := reg.Register(d.total); err != nil {
			return nil, err
		}
	}
	return d, nil
}

// add counts one query or request from a located client of endpoint e.
func (d *Demand) add(e Endpoint, region, source string) {
	if d == nil || e.Namespace == "" || region == "" {
		return // not a GlobalEndpoint's model, or a client we cannot place
	}
	k := demandKey{e.Namespace, e.Model, region}
	d.mu.Lock()
	defer d.mu.Unlock()
	counters, ok := d.counters[k]
	if !ok {
		counters = [2]prometheus.Counter{
			d.total.WithLabelValues(k.namespace, k.model, k.region, demandDNS),
			d.total.WithLabelValues(k.namespace, k.model, k.region, demandHTTP)}
		d.counters[k] = counters
	}
	if source == demandDNS {
		counters[0].Inc()
	} else {
		counters[1].Inc()
	}
	c := d.counts[k]
	if c == nil {
		c = &demandCount{}
		d.counts[k] = c
	}
	if source == demandDNS {
		c.queries++
	} else {
		c.requests++
	}
}

// take ends the current window: its counts and its start.
func (d *Demand) take(now time.Time) (map[demandKey]*demandCount, time.Time) {
	d.mu.Lock()
	defer d.mu.Unlock()
	counts, since := d.counts, d.since
	d.counts, d.since = map[demandKey]*demandCount{}, now
	return counts, since
}

// restore puts back a window whose report could not be written, so the
// next report covers it too: a hub outage loses no demand.
func (d *Demand) restore(counts map[demandKey]*demandCount, since time.Time) {
	d.mu.Lock()
	defer d.mu.Unlock()
	for k, c := range counts {
		if cur := d.counts[k]; cur != nil {
			cur.queries += c.queries
			cur.requests += c.requests
		} else {
			d.counts[k] = c
		}
	}
	d.since = since
}

// nearestRegion is the region of the located cluster closest to the
// client, "" when the client or no cluster has a location.
func nearestRegion(snap *Snapshot, lat, lon float64) string {
	best, region := 0.0, ""
	for _, c := range snap.Clusters {
		if !c.HasLocation || c.Region == "" {
			continue
		}
		if d := geo.Haversine(lat, lon, c.Lat, c.Lon); region == "" || d < best {
			best, region = d, c.Region
		}
	}
	return region
}

// Report writes this site's DemandReport on the hub every period until
// ctx ends. A failed write keeps the window's counts for the next one.
func (d *Demand) Report(ctx context.Context, hub client.Client, site string, period time.Duration, log *slog.Logger) {
	name := ReportName(site)
	t := time.NewTicker(period)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		now := time.Now()
		counts, since := d.take(now)
		if err := writeReport(ctx, hub, name, site, report(counts, since, now)); err != nil {
			d.restore(counts, since)
			if ctx.Err() == nil {
				log.Warn("writing the DemandReport on the hub; the counts carry over to the next try", "report", name, "err", err)
			}
		}
	}
}

// report turns one window's counts into a DemandReport status, models
// and regions sorted.
func report(counts map[demandKey]*demandCount, since, now time.Time) v1.DemandReportStatus {
	window := now.Sub(since)
	st := v1.DemandReportStatus{ObservedAt: &metav1.Time{Time: now}, Window: metav1.Duration{Duration: window}}
	for _, k := range slices.SortedFunc(maps.Keys(counts), compareKeys) {
		if n := len(st.Models); n == 0 || st.Models[n-1].Namespace != k.namespace || st.Models[n-1].Name != k.model {
			st.Models = append(st.Models, v1.ModelDemand{Namespace: k.namespace, Name: k.model})
		}
		m, c := &st.Models[len(st.Models)-1], counts[k]
		m.Regions = append(m.Regions, v1.RegionRate{Region: v1.RegionName(k.region),
			RequestsPerSecond: rate(c.requests, window), QueriesPerSecond: rate(c.queries, window)})
	}
	return st
}

func compareKeys(a, b demandKey) int {
	return strings.Compare(a.namespace+"/"+a.model+"/"+a.region, b.namespace+"/"+b.model+"/"+b.region)
}

// rate is n per window as a Quantity with millis, nil for none.
func rate(n float64, window time.Duration) *resource.Quantity {
	if n == 0 || window <= 0 {
		return nil
	}
	return resource.NewMilliQuantity(int64(n/window.Seconds()*1000+0.5), resource.DecimalSI)
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
