package hub_test

import (
	"context"
	"io"
	"log/slog"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/cluster"

	v1 "meridian.dev/meridian/crds/v1alpha1"
	"meridian.dev/meridian/hub"
	"meridian.dev/meridian/hub/nsmembers"
	"meridian.dev/meridian/internal/controlplane"
	"meridian.dev/meridian/internal/scheme"
	"meridian.dev/meridian/internal/testbin"
)

// nsRegions are the namespace members, with their regions' locations.
var nsRegions = map[string][2]string{"member-eu": {"eu-west", "53.3"}, "member-us": {"us-east", "38.9"}, "member-ap": {"ap-south", "19.1"}}

func startNSControlPlane(t *testing.T) *controlplane.ControlPlane {
	cp := controlplane.ForTest(t, controlplane.Options{})
	ctx := context.Background()
	for name, r := range nsRegions {
		if err := cp.Client.Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: name}}); err != nil {
			t.Fatal(err)
		}
		rep := &v1.ClusterReport{ObjectMeta: metav1.ObjectMeta{Name: v1.ClusterReportName},
			Spec: v1.ClusterIdentity{Region: v1.RegionName(r[0]), Location: &v1.GeoLocation{Latitude: r[1], Longitude: "0"}},
			Status: v1.ClusterReportStatus{Heartbeat: ptr.To(metav1.Now()), Capacity: v1.Capacity{
				CPU: resource.MustParse("64"), FreeCPU: resource.MustParse("32"), Memory: resource.MustParse("256Gi"), FreeMemory: resource.MustParse("128Gi")}}}
		if err := nsmembers.WriteReport(ctx, cp.Client, name, rep); err != nil {
			t.Fatal(err)
		}
	}
	return cp
}

// runHub starts a hub on cp with opts until the returned stop is called.
func runHub(t *testing.T, cp *controlplane.ControlPlane, opts hub.Options) (*nsmembers.Provider, func()) {
	t.Helper()
	shared, err := cluster.New(cp.Config, func(o *cluster.Options) { o.Scheme = scheme.Scheme })
	if err != nil {
		t.Fatal(err)
	}
	p := nsmembers.New(shared, "member-")
	opts.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- hub.Run(ctx, cp.Config, p, opts) }()
	stop := func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("hub: %v", err)
		}
	}
	t.Cleanup(func() {
		if ctx.Err() == nil {
			stop()
		}
	})
	return p, stop
}

func clusterHealth(t *testing.T, c client.Client, name string) v1.ClusterHealth {
	var cl v1.Cluster
	if err := c.Get(context.Background(), client.ObjectKey{Name: name}, &cl); err != nil {
		return ""
	}
	return cl.Status.Health
}

// modelDeployment reads im's ModelDeployment in member, nil when absent.
func modelDeployment(t *testing.T, c client.Client, member, name string) *v1.ModelDeployment {
	md := &v1.ModelDeployment{}
	err := c.Get(context.Background(), client.ObjectKey{Namespace: member, Name: name}, md)
	if apierrors.IsNotFound(err) {
		return nil
	}
	if err != nil {
		t.Fatal(err)
	}
	return md
}

// setReady plays the member's agent: every replica asked for is ready.
func setReady(t *testing.T, c client.Client, member, name string) {
	t.Helper()
	md := modelDeployment(t, c, member, name)
	if md == nil {
		t.Fatalf("no ModelDeployment %s in %s to make ready", name, member)
	}
	n := ptr.Deref(md.Spec.Autoscaling.MinReplicas, 1)
	md.Status.Replicas, md.Status.ReadyReplicas, md.Status.DesiredReplicas = n, n, n
	if err := c.Status().Update(context.Background(), md); err != nil {
		t.Fatal(err)
	}
}

func nearModel(name, region string) *v1.InferenceModel {
	return &v1.InferenceModel{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: "default"},
		Spec: v1.InferenceModelSpec{Model: v1.ModelSource{Name: "sentiment"},
			Autoscaling: v1.Autoscaling{MinReplicas: ptr.To[int32](1), MaxReplicas: 2},
			Placement: v1.Placement{MaxClusters: 1,
				Demand: []v1.RegionDemand{{Region: v1.RegionName(region), RequestsPerSecond: resource.MustParse("10")}},
				Preferences: v1.PlacementPreferences{
					Proximity: ptr.To[int32](100), Cost: ptr.To[int32](0), Capacity: ptr.To[int32](0)}}},
	}
}

// The hub's Reconcile with members as namespaces: make-before-break, and
// a member cut off. The resync is an hour, so every step here is driven by
// what the hub watches — a member's ModelDeployment turning ready, a
// Cluster's change of health — and would time out if a watch broke.
func TestReconcileMakeBeforeBreakAndUnreachable(t *testing.T) {
	cp := startNSControlPlane(t)
	c := cp.Client
	ctx := context.Background()
	provider, _ := runHub(t, cp, hub.Options{ResyncPeriod: time.Hour})
	for name := range nsRegions {
		testbin.Eventually(t, name+" Ready", 30*time.Second, func() bool { return clusterHealth(t, c, name) == v1.HealthReady })
	}

	t.Run("make-before-break", func(t *testing.T) {
		im := nearModel("move", "eu-west")
		if err := c.Create(ctx, im); err != nil {
			t.Fatal(err)
		}
		testbin.Eventually(t, "a ModelDeployment in member-eu", 20*time.Second, func() bool { return modelDeployment(t, c, "member-eu", "move") != nil })
		setReady(t, c, "member-eu", "move")
		got := &v1.InferenceModel{}
		testbin.Eventually(t, "its readiness rolled up", 20*time.Second, func() bool {
			return c.Get(ctx, client.ObjectKeyFromObject(im), got) == nil && got.Status.ReadyReplicas == 1
		})
		// Its users move to Mumbai: the model follows, but member-eu
		// keeps its copy until member-ap's is ready.
		got.Spec.Placement.Demand[0].Region = "ap-south"
		if err := c.Update(ctx, got); err != nil {
			t.Fatal(err)
		}
		testbin.Eventually(t, "a ModelDeployment in member-ap", 20*time.Second, func() bool { return modelDeployment(t, c, "member-ap", "move") != nil })
		time.Sleep(2 * time.Second) // several probes and reconciles
		if modelDeployment(t, c, "member-eu", "move") == nil {
			t.Fatal("member-eu's copy was removed before member-ap's was ready")
		}
		if err := c.Get(ctx, client.ObjectKeyFromObject(im), got); err != nil || !holdsReason(got, "member-eu", "draining") {
			t.Fatalf("member-eu should be listed as draining: %+v %v", got.Status.Clusters, err)
		}
		setReady(t, c, "member-ap", "move")
		testbin.Eventually(t, "member-eu's copy removed once member-ap's is ready", 20*time.Second, func() bool {
			return modelDeployment(t, c, "member-eu", "move") == nil
		})
	})

	t.Run("an unreachable member is replaced, never touched", func(t *testing.T) {
		im := nearModel("stay", "us-east")
		if err := c.Create(ctx, im); err != nil {
			t.Fatal(err)
		}
		testbin.Eventually(t, "a ModelDeployment in member-us", 20*time.Second, func() bool { return modelDeployment(t, c, "member-us", "stay") != nil })
		setReady(t, c, "member-us", "stay")
		provider.Cut("member-us", true)
		testbin.Eventually(t, "member-us Unreachable", 20*time.Second, func() bool { return clusterHealth(t, c, "member-us") == v1.HealthUnreachable })
		got := &v1.InferenceModel{}
		testbin.Eventually(t, "its share placed elsewhere at once", 20*time.Second, func() bool {
			return c.Get(ctx, client.ObjectKeyFromObject(im), got) == nil && holdsReason(got, "member-us", "unreachable") && len(got.Status.Clusters) == 2
		})
		if modelDeployment(t, c, "member-us", "stay") == nil {
			t.Fatal("the hub deleted the ModelDeployment of a member it could not reach")
		}
		provider.Cut("member-us", false)
		testbin.Eventually(t, "member-us Ready again", 20*time.Second, func() bool { return clusterHealth(t, c, "member-us") == v1.HealthReady })
	})
}

// A restarted hub starts each member's health from its Cluster status: a
// Ready member that fails one probe after the restart is still Ready (as
// it would be in a hub that never restarted), and an Unreachable one stays
// Unreachable.
func TestRestartedHubKeepsHealth(t *testing.T) {
	cp := startNSControlPlane(t)
	c := cp.Client
	_, stop := runHub(t, cp, hub.Options{})
	for name := range nsRegions {
		testbin.Eventually(t, name+" Ready", 30*time.Second, func() bool { return clusterHealth(t, c, name) == v1.HealthReady })
	}
	stop()
	// Restarted with a threshold no test reaches: a hub that forgot
	// member-eu was Ready would call it Unreachable at its first failure.
	provider, _ := runHub(t, cp, hub.Options{HealthPeriod: 100 * time.Millisecond, FailureThreshold: 1000})
	provider.Cut("member-eu", true)
	time.Sleep(3 * time.Second) // about 30 failed probes
	if h := clusterHealth(t, c, "member-eu"); h != v1.HealthReady {
		t.Fatalf("member-eu is %s after a few failed probes of a restarted hub; it was Ready", h)
	}
	if h := clusterHealth(t, c, "member-us"); h != v1.HealthReady {
		t.Fatalf("member-us is %s; it answers", h)
	}
}

func holdsReason(im *v1.InferenceModel, cluster, reason string) bool {
	for _, a := range im.Status.Clusters {
		if a.Cluster == cluster && len(a.Reason) >= len(reason) && a.Reason[:len(reason)] == reason {
			return true
		}
	}
	return false
}
