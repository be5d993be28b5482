package inventory

import (
	"strings"
	"testing"

	"k8s.io/apimachinery/pkg/api/equality"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"
	cpv1 "sigs.k8s.io/cluster-inventory-api/apis/v1alpha1"

	v1 "meridian.dev/meridian/crds/v1alpha1"
)

func profileWith(props map[string]string, labels map[string]string) *cpv1.ClusterProfile {
	p := &cpv1.ClusterProfile{ObjectMeta: metav1.ObjectMeta{Name: "c", Namespace: "ns", Labels: labels},
		Spec: cpv1.ClusterProfileSpec{ClusterManager: cpv1.ClusterManager{Name: "open-cluster-management"}}}
	p.Status.Properties = mergeProperties(nil, props, metav1.Now())
	return p
}

// What Meridian publishes of a Cluster, it reads back as the same Cluster:
// another Meridian hub importing this one's profiles places as this one.
func TestPropertiesRoundTrip(t *testing.T) {
	c := &v1.Cluster{
		Spec: v1.ClusterSpec{ClusterIdentity: v1.ClusterIdentity{Region: "eu-west", Zone: "eu-west-1a",
			Location: &v1.GeoLocation{Latitude: "53.3", Longitude: "-6.2"}, Endpoint: "https://eu-west.infer.example.com"},
			Provider: "aws", CostPerGPUHour: ptr.To(resource.MustParse("2.5"))},
		Status: v1.ClusterStatus{Health: v1.HealthReady, Capacity: v1.Capacity{CPU: resource.MustParse("64"), FreeCPU: resource.MustParse("1500m"),
			Memory: resource.MustParse("256Gi"), FreeMemory: resource.MustParse("10Gi"),
			GPUs: []v1.GPUCapacity{{Type: "NVIDIA-A100", Allocatable: 4, Free: 1}, {Type: "NVIDIA-L4", Allocatable: 8, Free: 8}}}},
	}
	v := newProfileView(profileWith(properties(c), nil))
	spec, err := v.spec()
	if err != nil {
		t.Fatal(err)
	}
	if !equality.Semantic.DeepEqual(spec, c.Spec) {
		t.Errorf("spec read back as %+v, want %+v", spec, c.Spec)
	}
	capa, err := v.capacity()
	if err != nil {
		t.Fatal(err)
	}
	if !equality.Semantic.DeepEqual(capa, c.Status.Capacity) {
		t.Errorf("capacity read back as %+v, want %+v", capa, c.Status.Capacity)
	}
}

func TestMergePropertiesKeepsObservedTimeOfUnchangedValues(t *testing.T) {
	then, now := metav1.NewTime(metav1.Now().Add(-3600e9)), metav1.Now()
	old := []cpv1.Property{{Name: "a", Value: "1", LastObservedTime: then}, {Name: "b", Value: "1", LastObservedTime: then}, {Name: "gone", Value: "x"}}
	got := mergeProperties(old, map[string]string{"a": "1", "b": "2", "empty": ""}, now)
	if len(got) != 2 || got[0].Name != "a" || !got[0].LastObservedTime.Equal(&then) || got[1].Name != "b" || !got[1].LastObservedTime.Equal(&now) {
		t.Errorf("merged %+v: want a observed then, b observed now, no empty or dropped property", got)
	}
}

func TestProfileSpecErrors(t *testing.T) {
	for _, tc := range []struct {
		name   string
		props  map[string]string
		labels map[string]string
		want   string // in the error; "" for none
		region v1.RegionName
	}{
		{name: "topology property", props: map[string]string{PropertyRegion: "eu-west"}, region: "eu-west"},
		{name: "OCM claim", props: map[string]string{ocmRegion: "us-east-1"}, region: "us-east-1"},
		{name: "property before label", props: map[string]string{ocmRegion: "us-east-1"}, labels: map[string]string{PropertyRegion: "eu-west"}, region: "us-east-1"},
		{name: "label", labels: map[string]string{PropertyRegion: "eu-west"}, region: "eu-west"},
		{name: "no region", props: map[string]string{PropertyZone: "a"}, want: "no region: set the property topology.kubernetes.io/region"},
		{name: "upper case", props: map[string]string{PropertyRegion: "EastUS"}, want: `region "EastUS" (property topology.kubernetes.io/region) is not a Meridian region name`},
		{name: "half a location", props: map[string]string{PropertyRegion: "eu-west", PropertyLatitude: "53"}, want: "location needs both"},
		{name: "latitude out of range", props: map[string]string{PropertyRegion: "eu-west", PropertyLatitude: "91", PropertyLongitude: "0"}, want: "between -90 and 90"},
		{name: "bad cost", props: map[string]string{PropertyRegion: "eu-west", PropertyCostPerGPUHour: "cheap"}, want: "cost-per-gpu-hour"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			spec, err := newProfileView(profileWith(tc.props, tc.labels)).spec()
			switch {
			case tc.want == "" && err != nil:
				t.Fatal(err)
			case tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want)):
				t.Fatalf("error %v, want one saying %q", err, tc.want)
			case tc.want == "" && spec.Region != tc.region:
				t.Errorf("region %q, want %q", spec.Region, tc.region)
			}
		})
	}
}

func TestGPUPropertiesNeedBothCounts(t *testing.T) {
	_, err := newProfileView(profileWith(map[string]string{PropertyGPUPrefix + "L4": "8"}, nil)).capacity()
	if err == nil || !strings.Contains(err.Error(), PropertyFreeGPUPrefix+"L4") {
		t.Fatalf("error %v, want one naming the missing free count", err)
	}
}
