package hub

import (
	"testing"
	"time"

	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	v1 "meridian.dev/meridian/crds/v1alpha1"
)

func TestDemandFor(t *testing.T) {
	now := time.Now()
	q := func(s string) *resource.Quantity { v := resource.MustParse(s); return &v }
	im := &v1.InferenceModel{ObjectMeta: metav1.ObjectMeta{Namespace: "default", Name: "sentiment"},
		Spec: v1.InferenceModelSpec{Placement: v1.Placement{Demand: []v1.RegionDemand{{Region: "us-east", RequestsPerSecond: resource.MustParse("7")}}}}}
	site := func(name string, age time.Duration, models ...v1.ModelDemand) v1.DemandReport {
		return v1.DemandReport{ObjectMeta: metav1.ObjectMeta{Name: name}, Status: v1.DemandReportStatus{
			ObservedAt: &metav1.Time{Time: now.Add(-age)}, Window: metav1.Duration{Duration: 10 * time.Second}, Models: models}}
	}
	sentiment := func(regions ...v1.RegionRate) v1.ModelDemand {
		return v1.ModelDemand{Namespace: "default", Name: "sentiment", Regions: regions}
	}
	for _, tc := range []struct {
		name    string
		reports []v1.DemandReport
		want    map[v1.RegionName]string
		source  string
	}{
		{"no reports: the spec", nil, map[v1.RegionName]string{"us-east": "7"}, DemandSpec},
		{"sites add up, requests win over queries", []v1.DemandReport{
			site("a", time.Second, sentiment(v1.RegionRate{Region: "eu-west", RequestsPerSecond: q("3"), QueriesPerSecond: q("100")})),
			site("b", time.Second, sentiment(v1.RegionRate{Region: "eu-west", RequestsPerSecond: q("1500m")}, v1.RegionRate{Region: "ap-south", QueriesPerSecond: q("50")})),
		}, map[v1.RegionName]string{"eu-west": "4500m"}, DemandReported},
		{"only queries: their shares", []v1.DemandReport{
			site("a", time.Second, sentiment(v1.RegionRate{Region: "ap-south", QueriesPerSecond: q("2")}, v1.RegionRate{Region: "eu-west", QueriesPerSecond: q("1")})),
		}, map[v1.RegionName]string{"ap-south": "2", "eu-west": "1"}, DemandReported},
		{"a stale report does not count", []v1.DemandReport{
			site("a", 10*time.Minute, sentiment(v1.RegionRate{Region: "eu-west", RequestsPerSecond: q("3")})),
		}, map[v1.RegionName]string{"us-east": "7"}, DemandSpec},
		{"another model's or namespace's demand does not count", []v1.DemandReport{
			site("a", time.Second, v1.ModelDemand{Namespace: "default", Name: "textdir", Regions: []v1.RegionRate{{Region: "eu-west", RequestsPerSecond: q("3")}}},
				v1.ModelDemand{Namespace: "other", Name: "sentiment", Regions: []v1.RegionRate{{Region: "eu-west", RequestsPerSecond: q("3")}}}),
		}, map[v1.RegionName]string{"us-east": "7"}, DemandSpec},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, source := demandFor(im, tc.reports, now)
			if source != tc.source || len(got) != len(tc.want) {
				t.Fatalf("got %v from %s, want %v from %s", got, source, tc.want, tc.source)
			}
			for _, d := range got {
				if w := tc.want[d.Region]; d.RequestsPerSecond.String() != w {
					t.Errorf("%s: %s, want %s", d.Region, d.RequestsPerSecond.String(), w)
				}
			}
		})
	}
}
