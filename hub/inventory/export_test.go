package inventory_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"k8s.io/apimachinery/pkg/api/meta"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"
	cpv1 "sigs.k8s.io/cluster-inventory-api/apis/v1alpha1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	v1 "meridian.dev/meridian/crds/v1alpha1"
	"meridian.dev/meridian/hub/inventory"
	"meridian.dev/meridian/internal/testbin"
)

// member is a Cluster as the hub keeps it for a member whose agent reports.
func member(name, region string) *v1.Cluster {
	return &v1.Cluster{
		ObjectMeta: metav1.ObjectMeta{Name: name, Labels: map[string]string{"tier": "gpu"}},
		Spec: v1.ClusterSpec{ClusterIdentity: v1.ClusterIdentity{Region: v1.RegionName(region), Zone: region + "-1a",
			Location: &v1.GeoLocation{Latitude: "53.3", Longitude: "-6.2"}}, Provider: "aws"},
	}
}

// setStatus writes c's status as the hub's probe does.
func setStatus(t *testing.T, c client.Client, cl *v1.Cluster, health v1.ClusterHealth, reason v1.ConditionReason, msg string) {
	t.Helper()
	cl.Status.Health = health
	cl.Status.LastHeartbeat = ptr.To(metav1.Now())
	cl.Status.Capacity = v1.Capacity{CPU: resource.MustParse("64"), FreeCPU: resource.MustParse("40"),
		Memory: resource.MustParse("256Gi"), FreeMemory: resource.MustParse("200Gi"),
		GPUs: []v1.GPUCapacity{{Type: "NVIDIA-L4", Allocatable: 8, Free: 3}}}
	v1.SetCondition(&cl.Status.Conditions, v1.ConditionReady, health == v1.HealthReady, reason, msg, cl.Generation)
	if err := c.Status().Update(context.Background(), cl); err != nil {
		t.Fatal(err)
	}
}

// profileOf reads the ClusterProfile named name, nil when there is none.
func profileOf(c client.Client, name string) *cpv1.ClusterProfile {
	p := &cpv1.ClusterProfile{}
	if err := c.Get(context.Background(), client.ObjectKey{Namespace: ns, Name: name}, p); err != nil {
		return nil
	}
	return p
}

func property(p *cpv1.ClusterProfile, name string) string {
	for _, pr := range p.Status.Properties {
		if pr.Name == name {
			return pr.Value
		}
	}
	return ""
}

// condition is "Status/Reason" of condition t of p.
func condition(p *cpv1.ClusterProfile, t string) string {
	if c := meta.FindStatusCondition(p.Status.Conditions, t); c != nil {
		return string(c.Status) + "/" + c.Reason
	}
	return ""
}

func TestExportKeepsOneProfilePerCluster(t *testing.T) {
	ctx := context.Background()
	stale := &cpv1.ClusterProfile{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "deleted-while-the-hub-was-down",
		Labels: map[string]string{cpv1.LabelClusterManagerKey: inventory.ManagerName}},
		Spec: cpv1.ClusterProfileSpec{ClusterManager: cpv1.ClusterManager{Name: inventory.ManagerName}}}
	taken := foreign("taken", metav1.ConditionTrue, inventory.PropertyRegion, "us-east")
	cp := start(t, inventory.Options{Export: true}, func(c client.Client) {
		if err := c.Create(ctx, stale); err != nil {
			t.Fatal(err)
		}
		createProfile(t, c, taken)
	})
	c := cp.Client

	testbin.Eventually(t, "the profile of a Cluster deleted while the hub was down to go", timeout, func() bool {
		return profileOf(c, stale.Name) == nil
	})

	cl := member("eu-west-1", "eu-west")
	if err := c.Create(ctx, cl); err != nil {
		t.Fatal(err)
	}
	testbin.Eventually(t, "a profile of a Cluster nobody has probed yet", timeout, func() (bool, string) {
		p := profileOf(c, cl.Name)
		if p == nil {
			return false, "none"
		}
		got := fmt.Sprint(condition(p, cpv1.ClusterConditionControlPlaneHealthy), " ", condition(p, inventory.ConditionJoined))
		return got == "Unknown/NotProbed False/NoReport", got
	})
	p := profileOf(c, cl.Name)
	if p.Labels[cpv1.LabelClusterManagerKey] != inventory.ManagerName || p.Labels["tier"] != "gpu" ||
		p.Spec.ClusterManager.Name != inventory.ManagerName || p.Spec.DisplayName != cl.Name {
		t.Errorf("profile labels %v, spec %+v: want the manager label, the Cluster's labels, manager meridian", p.Labels, p.Spec)
	}
	if refs := p.OwnerReferences; len(refs) != 1 || refs[0].Kind != "Cluster" || refs[0].UID != cl.UID {
		t.Errorf("owner references %+v, want the Cluster, so that garbage collection deletes the profile with it", refs)
	}

	setStatus(t, c, cl, v1.HealthReady, v1.ReasonReportFresh, "heartbeat is fresh")
	want := map[string]string{
		inventory.PropertyRegion: "eu-west", inventory.PropertyZone: "eu-west-1a", inventory.PropertyProvider: "aws",
		inventory.PropertyLatitude: "53.3", inventory.PropertyLongitude: "-6.2", inventory.PropertyHealth: "Ready",
		inventory.PropertyCPU: "64", inventory.PropertyFreeCPU: "40", inventory.PropertyMemory: "256Gi", inventory.PropertyFreeMemory: "200Gi",
		inventory.PropertyGPUPrefix + "NVIDIA-L4": "8", inventory.PropertyFreeGPUPrefix + "NVIDIA-L4": "3",
	}
	testbin.Eventually(t, "the profile of a Ready Cluster", timeout, func() (bool, string) {
		p := profileOf(c, cl.Name)
		got := fmt.Sprint(condition(p, cpv1.ClusterConditionControlPlaneHealthy), " ", condition(p, inventory.ConditionJoined))
		for k, v := range want {
			if property(p, k) != v {
				return false, fmt.Sprintf("%s: property %s = %q, want %q", got, k, property(p, k), v)
			}
		}
		return got == "True/ReportFresh True/AgentReported", got
	})

	// A heartbeat, or a new message of the same health, changes nothing
	// the profile shows: no write.
	rv := profileOf(c, cl.Name).ResourceVersion
	time.Sleep(time.Second) // the heartbeat's one-second resolution
	if err := c.Get(ctx, client.ObjectKeyFromObject(cl), cl); err != nil {
		t.Fatal(err)
	}
	setStatus(t, c, cl, v1.HealthReady, v1.ReasonReportFresh, "heartbeat is fresh, again")
	time.Sleep(time.Second)
	if got := profileOf(c, cl.Name).ResourceVersion; got != rv {
		t.Errorf("a heartbeat or a message rewrote the profile (resourceVersion %s -> %s)", rv, got)
	}

	setStatus(t, c, cl, v1.HealthUnreachable, v1.ReasonHeartbeatStale, "the agent's last heartbeat is older than 30s")
	cl.Labels["tier"] = "cpu"
	if err := c.Update(ctx, cl); err != nil {
		t.Fatal(err)
	}
	testbin.Eventually(t, "the profile of an Unreachable Cluster", timeout, func() (bool, string) {
		p := profileOf(c, cl.Name)
		got := fmt.Sprint(condition(p, cpv1.ClusterConditionControlPlaneHealthy), " ", property(p, inventory.PropertyHealth), " ", p.Labels["tier"])
		return got == "False/HeartbeatStale Unreachable cpu", got
	})

	// A profile of another cluster manager keeps its name.
	other := member(taken.Name, "us-east")
	if err := c.Create(ctx, other); err != nil {
		t.Fatal(err)
	}
	testbin.Eventually(t, "a Warning that the name is taken", timeout, func() bool { return warning(t, c, taken.Name, "NameTaken") != "" })
	if p := profileOf(c, taken.Name); p.Spec.ClusterManager.Name != ocm || p.Labels[cpv1.LabelClusterManagerKey] != ocm {
		t.Errorf("Meridian took over the profile of %s: %+v", ocm, p.ObjectMeta)
	}

	if err := c.Delete(ctx, cl); err != nil {
		t.Fatal(err)
	}
	testbin.Eventually(t, "the profile of a deleted Cluster to go", timeout, func() bool { return profileOf(c, cl.Name) == nil })
}
