package hub

import (
	"maps"
	"slices"
	"time"

	"k8s.io/apimachinery/pkg/api/resource"

	v1 "meridian.dev/meridian/crds/v1alpha1"
	"meridian.dev/meridian/hub/placement"
)

// Where an InferenceModel's demand came from, as in status.demandSource.
const (
	DemandReported = "Reported"
	DemandSpec     = "Spec"
)

// A DemandReport stays fresh for freshWindows of its own windows, and at
// least minFresh: a balancer that missed a few reports no longer counts,
// but a short hub outage (during which no report can be written) does not
// flip every model back to its spec's demand on the hub's return.
const (
	freshWindows = 3
	minFresh     = 2 * time.Minute
)

// demandFor is the demand placement uses for im: the sum over the global
// balancers' fresh DemandReports when any of them saw users of im, else
// im's spec.placement.demand. Within the reports, HTTP requests are the
// measure when any site saw some (they are the load itself), else DNS
// queries (each stands for a resolver's cached answer, so only their
// shares between regions mean anything — which is all proximity uses).
func demandFor(im *v1.InferenceModel, reports []v1.DemandReport, now time.Time) ([]v1.RegionDemand, string) {
	requests, queries := map[v1.RegionName]float64{}, map[v1.RegionName]float64{}
	for _, r := range reports {
		st := r.Status
		if st.ObservedAt == nil || now.Sub(st.ObservedAt.Time) > max(freshWindows*st.Window.Duration, minFresh) {
			continue
		}
		for _, m := range st.Models {
			if m.Namespace != im.Namespace || m.Name != im.Name {
				continue
			}
			for _, rr := range m.Regions {
				requests[rr.Region] += value(rr.RequestsPerSecond)
				queries[rr.Region] += value(rr.QueriesPerSecond)
			}
		}
	}
	rates := requests
	if sum(requests) == 0 {
		rates = queries
	}
	if sum(rates) == 0 {
		return im.Spec.Placement.Demand, DemandSpec
	}
	var out []v1.RegionDemand
	for _, region := range slices.Sorted(maps.Keys(rates)) {
		if r := rates[region]; r > 0 {
			out = append(out, v1.RegionDemand{Region: region, RequestsPerSecond: *resource.NewMilliQuantity(int64(r*1000+0.5), resource.DecimalSI)})
		}
	}
	return out, DemandReported
}

func value(q *resource.Quantity) float64 {
	if q == nil {
		return 0
	}
	return q.AsApproximateFloat64()
}

func sum(m map[v1.RegionName]float64) float64 {
	s := 0.0
	for _, v := range m {
		s += v
	}
	return s
}

// toDemand turns the API's demand into placement's input.
func toDemand(ds []v1.RegionDemand) []placement.Demand {
	out := make([]placement.Demand, 0, len(ds))
	for _, d := range ds {
		out = append(out, placement.Demand{Region: string(d.Region), RequestsPerSecond: d.RequestsPerSecond.AsApproximateFloat64()})
	}
	return out
}
