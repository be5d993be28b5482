package hub_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"k8s.io/apimachinery/pkg/api/meta"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	v1 "meridian.dev/meridian/crds/v1alpha1"
	"meridian.dev/meridian/hub"
	"meridian.dev/meridian/hub/nsmembers"
	"meridian.dev/meridian/internal/testbin"
)

// A member that forges its report — another region and location, and
// endpoints at the metadata service and loopback — moves nothing: the
// hub's Cluster keeps its region, location and labels, the model under a
// residency rule is never placed there, and the forged endpoints are
// dropped with a condition that says why.
func TestForgedReportIsIgnored(t *testing.T) {
	cp := startNSControlPlane(t)
	c := cp.Client
	ctx := context.Background()
	runHub(t, cp, hub.Options{ResyncPeriod: time.Hour})
	for name := range nsRegions {
		testbin.Eventually(t, name+" Ready", 30*time.Second, func() bool { return clusterHealth(t, c, name) == v1.HealthReady })
	}
	var ap v1.Cluster
	if err := c.Get(ctx, client.ObjectKey{Name: "member-ap"}, &ap); err != nil {
		t.Fatal(err)
	}
	ap.Labels = map[string]string{"tier": "gold"}
	if err := c.Update(ctx, &ap); err != nil {
		t.Fatal(err)
	}

	forged := &v1.ClusterReport{ObjectMeta: metav1.ObjectMeta{Name: v1.ClusterReportName},
		Spec: v1.ClusterIdentity{Region: "eu-west", Zone: "eu-west-1a", Location: &v1.GeoLocation{Latitude: "53.3", Longitude: "-6.2"},
			Endpoint: "http://169.254.169.254"},
		Status: v1.ClusterReportStatus{Heartbeat: ptr.To(metav1.Now()),
			Capacity: v1.Capacity{CPU: resource.MustParse("64"), FreeCPU: resource.MustParse("32"), Memory: resource.MustParse("256Gi"), FreeMemory: resource.MustParse("128Gi")},
			Models: []v1.ModelLoad{
				{Namespace: "default", Name: "steal", Model: "sentiment", Endpoint: "http://169.254.169.254/latest/meta-data"},
				{Namespace: "default", Name: "local", Model: "sentiment", Endpoint: "http://127.0.0.1:9090"},
				{Namespace: "default", Name: "fine", Model: "sentiment", Endpoint: "https://ap-south.infer.example.com"},
			}}}
	if err := nsmembers.WriteReport(ctx, c, "member-ap", forged); err != nil {
		t.Fatal(err)
	}
	got := &v1.Cluster{}
	testbin.Eventually(t, "the forged report read, refused", 30*time.Second, func() bool {
		if c.Get(ctx, client.ObjectKey{Name: "member-ap"}, got) != nil {
			return false
		}
		id := meta.FindStatusCondition(got.Status.Conditions, string(v1.ConditionIdentityAgreed))
		ep := meta.FindStatusCondition(got.Status.Conditions, string(v1.ConditionEndpointsAllowed))
		return id != nil && id.Status == metav1.ConditionFalse && ep != nil && ep.Status == metav1.ConditionFalse && len(got.Status.Models) == 3
	})
	if got.Spec.Region != "ap-south" || got.Spec.Zone != "" || got.Spec.Location == nil || got.Spec.Location.Latitude != "19.1" || got.Labels["tier"] != "gold" {
		t.Errorf("the report changed the hub's Cluster: region %q zone %q location %+v labels %v", got.Spec.Region, got.Spec.Zone, got.Spec.Location, got.Labels)
	}
	if got.Spec.Endpoint != "" {
		t.Errorf("the metadata endpoint was kept: %q", got.Spec.Endpoint)
	}
	for _, m := range got.Status.Models {
		want := map[string]string{"fine": "https://ap-south.infer.example.com"}[m.Name]
		if m.Endpoint != want {
			t.Errorf("model %s: endpoint %q, want %q", m.Name, m.Endpoint, want)
		}
	}
	ep := meta.FindStatusCondition(got.Status.Conditions, string(v1.ConditionEndpointsAllowed))
	for _, s := range []string{"169.254.169.254", "127.0.0.1", "link-local", "loopback"} {
		if !strings.Contains(ep.Message, s) {
			t.Errorf("EndpointsAllowed message %q does not name %s", ep.Message, s)
		}
	}

	// Residency: only eu-west may run it, and member-ap only claims to be
	// there.
	im := nearModel("resident", "eu-west")
	im.Spec.Placement.MaxClusters = 3
	im.Spec.Placement.AllowedRegions = []v1.RegionName{"eu-west"}
	if err := c.Create(ctx, im); err != nil {
		t.Fatal(err)
	}
	placed := &v1.InferenceModel{}
	testbin.Eventually(t, "placed", 30*time.Second, func() bool {
		return c.Get(ctx, client.ObjectKeyFromObject(im), placed) == nil && len(placed.Status.Clusters) > 0
	})
	for _, a := range placed.Status.Clusters {
		if a.Cluster != "member-eu" {
			t.Errorf("placed on %s (%s); residency allows member-eu only", a.Cluster, a.Reason)
		}
	}
	if modelDeployment(t, c, "member-ap", "resident") != nil {
		t.Error("a ModelDeployment was written to member-ap, which forged its region")
	}
}
