package inventory_test

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"
	cpv1 "sigs.k8s.io/cluster-inventory-api/apis/v1alpha1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	v1 "meridian.dev/meridian/crds/v1alpha1"
	"meridian.dev/meridian/hub/inventory"
	"meridian.dev/meridian/internal/testbin"
)

// clusterOf reads the Cluster named name, nil when there is none.
func clusterOf(c client.Client, name string) *v1.Cluster {
	cl := &v1.Cluster{}
	if err := c.Get(context.Background(), client.ObjectKey{Name: name}, cl); err != nil {
		return nil
	}
	return cl
}

// Import and export run together in one namespace, as `meridian hub` runs
// them: Meridian's own profiles are never imported, and imported Clusters
// are never published.
func TestImportTurnsForeignProfilesIntoClusters(t *testing.T) {
	ctx := context.Background()
	cp := start(t, inventory.Options{Export: true, Import: true}, nil)
	c := cp.Client

	own := member("eu-west-1", "eu-west")
	if err := c.Create(ctx, own); err != nil {
		t.Fatal(err)
	}
	gpu := foreign("ocm-gpu", metav1.ConditionTrue, "region.open-cluster-management.io", "us-east-1",
		"platform.open-cluster-management.io", "AWS", inventory.PropertyZone, "us-east-1b",
		inventory.PropertyCPU, "32", inventory.PropertyFreeCPU, "12", inventory.PropertyMemory, "128Gi", inventory.PropertyFreeMemory, "64Gi",
		inventory.PropertyGPUPrefix+"NVIDIA-H100", "8", inventory.PropertyFreeGPUPrefix+"NVIDIA-H100", "2")
	createProfile(t, c, gpu)
	plain := foreign("ocm-plain", "", inventory.PropertyRegion, "ap-south")
	createProfile(t, c, plain)

	testbin.Eventually(t, "a Cluster imported from a healthy profile", timeout, func() (bool, string) {
		cl := clusterOf(c, gpu.Name)
		if cl == nil {
			return false, "none"
		}
		got := fmt.Sprint(cl.Spec.Region, " ", cl.Spec.Zone, " ", cl.Spec.Provider, " ", cl.Labels[inventory.ImportedFromLabel], " ",
			cl.Labels["tier"], " ", cl.Annotations[inventory.ImportedProfileAnnotation], " ", cl.Status.Health, " ",
			cl.Status.Capacity.FreeCPU.String(), " ", cl.Status.Capacity.GPUs)
		return got == "us-east-1 us-east-1b aws open-cluster-management gpu meridian-system/ocm-gpu Ready 12 [{NVIDIA-H100 8 2 0 0 0}]", got
	})
	if r := meta.FindStatusCondition(clusterOf(c, gpu.Name).Status.Conditions, string(v1.ConditionReady)); r == nil ||
		r.Status != metav1.ConditionTrue || r.Reason != string(inventory.ReasonControlPlaneHealthy) || !strings.Contains(r.Message, "ocm-gpu") {
		t.Errorf("Ready condition of the imported Cluster: %+v", r)
	}
	testbin.Eventually(t, "a Cluster imported from a profile with no health yet, Unknown", timeout, func() (bool, string) {
		cl := clusterOf(c, plain.Name)
		if cl == nil {
			return false, "none"
		}
		return cl.Spec.Region == "ap-south" && cl.Status.Health == v1.HealthUnknown, fmt.Sprint(cl.Spec.Region, cl.Status.Health)
	})

	// The profile's health follows its ControlPlaneHealthy condition.
	p := profileOf(c, gpu.Name)
	meta.SetStatusCondition(&p.Status.Conditions, metav1.Condition{Type: cpv1.ClusterConditionControlPlaneHealthy,
		Status: metav1.ConditionFalse, Reason: "ManagedClusterLeaseUpdateStopped", Message: "lease not updated"})
	if err := c.Status().Update(ctx, p); err != nil {
		t.Fatal(err)
	}
	testbin.Eventually(t, "an imported Cluster whose control plane is unhealthy to be Unreachable", timeout, func() bool {
		return clusterOf(c, gpu.Name).Status.Health == v1.HealthUnreachable
	})

	// Meridian's own profile is there, and nothing was imported from it;
	// nothing imported was published.
	testbin.Eventually(t, "Meridian's own profile", timeout, func() bool { return profileOf(c, own.Name) != nil })
	time.Sleep(time.Second)
	if cl := clusterOf(c, own.Name); cl.Labels[inventory.ImportedFromLabel] != "" || cl.Annotations[inventory.ImportedProfileAnnotation] != "" {
		t.Errorf("Meridian imported its own profile: %+v", cl.ObjectMeta)
	}
	var profiles cpv1.ClusterProfileList
	if err := c.List(ctx, &profiles, client.InNamespace(ns)); err != nil {
		t.Fatal(err)
	}
	if n := len(profiles.Items); n != 3 {
		t.Errorf("%d ClusterProfiles, want 3: Meridian's one and the two of %s", n, ocm)
	}
	if p := profileOf(c, gpu.Name); p.Spec.ClusterManager.Name != ocm {
		t.Errorf("the imported cluster's profile is now %q's", p.Spec.ClusterManager.Name)
	}
	if note := warning(t, c, gpu.Name, inventory.EventNameTaken); note != "" {
		t.Errorf("Meridian tried to publish a Cluster it imported: %s", note)
	}

	// Once an agent reports for an imported cluster, the hub's probe
	// decides its health, not the profile.
	cl := clusterOf(c, plain.Name)
	cl.Status.Health, cl.Status.LastHeartbeat = v1.HealthDegraded, ptr.To(metav1.Now())
	if err := c.Status().Update(ctx, cl); err != nil {
		t.Fatal(err)
	}
	p = profileOf(c, plain.Name)
	p.Status.Conditions = []metav1.Condition{{Type: cpv1.ClusterConditionControlPlaneHealthy, Status: metav1.ConditionTrue,
		Reason: "ManagedClusterAvailable", Message: "ok", LastTransitionTime: metav1.Now()}}
	if err := c.Status().Update(ctx, p); err != nil {
		t.Fatal(err)
	}
	time.Sleep(time.Second)
	if h := clusterOf(c, plain.Name).Status.Health; h != v1.HealthDegraded {
		t.Errorf("the profile overrode the health the hub's probe wrote: %s", h)
	}

	if err := c.Delete(ctx, profileOf(c, gpu.Name)); err != nil {
		t.Fatal(err)
	}
	testbin.Eventually(t, "the Cluster of a deleted profile to go", timeout, func() bool { return clusterOf(c, gpu.Name) == nil })
}

func TestImportReportsWhatItCannotImport(t *testing.T) {
	ctx := context.Background()
	mine := member("eu-west-1", "eu-west")
	cp := start(t, inventory.Options{Import: true}, func(c client.Client) {
		if err := c.Create(ctx, mine); err != nil {
			t.Fatal(err)
		}
	})
	c := cp.Client

	noRegion := foreign("no-region", metav1.ConditionTrue, inventory.PropertyZone, "a")
	createProfile(t, c, noRegion)
	badRegion := foreign("bad-region", metav1.ConditionTrue, inventory.PropertyRegion, "US East")
	createProfile(t, c, badRegion)
	badCPU := foreign("bad-cpu", metav1.ConditionTrue, inventory.PropertyRegion, "us-east", inventory.PropertyFreeCPU, "lots")
	createProfile(t, c, badCPU)
	taken := foreign(mine.Name, metav1.ConditionTrue, inventory.PropertyRegion, "us-east")
	createProfile(t, c, taken)
	// A profile that says it is Meridian's, by its spec alone.
	ownBySpec := foreign("ours", metav1.ConditionTrue, inventory.PropertyRegion, "us-east")
	ownBySpec.Spec.ClusterManager.Name = inventory.ManagerName
	createProfile(t, c, ownBySpec)

	for name, want := range map[string]string{
		noRegion.Name:  "no region: set the property topology.kubernetes.io/region",
		badRegion.Name: `region "US East" (property topology.kubernetes.io/region) is not a Meridian region name`,
		badCPU.Name:    `property meridian.dev/free-cpu: "lots" is not a quantity`,
	} {
		testbin.Eventually(t, "a Warning event on "+name, timeout, func() (bool, string) {
			note := warning(t, c, name, inventory.EventInvalidProfile)
			return strings.Contains(note, want) && strings.Contains(note, "nothing was imported"), note
		})
	}
	testbin.Eventually(t, "a Warning that the name is taken", timeout, func() bool { return warning(t, c, taken.Name, inventory.EventNameTaken) != "" })
	time.Sleep(time.Second)
	for _, name := range []string{noRegion.Name, badRegion.Name, badCPU.Name, ownBySpec.Name} {
		if clusterOf(c, name) != nil {
			t.Errorf("Cluster %s was imported from a profile that cannot be", name)
		}
	}
	if cl := clusterOf(c, mine.Name); cl.Spec.Region != "eu-west" || cl.Labels[inventory.ImportedFromLabel] != "" {
		t.Errorf("a foreign profile changed Meridian's own Cluster: region %s, labels %v", cl.Spec.Region, cl.Labels)
	}
}
