package hub_test

import (
	"context"
	"testing"
	"time"

	coordinationv1 "k8s.io/api/coordination/v1"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"meridian.dev/meridian/hub"
	"meridian.dev/meridian/internal/testbin"
)

// Two hubs with leader election, as the chart runs them: the first holds
// the Lease and places; stopped, it gives the Lease up and the second
// places the next model within the Lease's retry period, not after the
// Lease runs out.
func TestLeaderElectionHandsOver(t *testing.T) {
	cp := startNSControlPlane(t)
	c := cp.Client
	ctx := context.Background()
	opts := hub.Options{ResyncPeriod: time.Hour, LeaderElection: true, LeaderElectionNamespace: "default"}
	_, stopFirst := runHub(t, cp, opts)
	lease := &coordinationv1.Lease{}
	testbin.Eventually(t, "the first hub holds the Lease meridian-hub", 30*time.Second, func() bool {
		return c.Get(ctx, client.ObjectKey{Namespace: "default", Name: "meridian-hub"}, lease) == nil && ptr.Deref(lease.Spec.HolderIdentity, "") != ""
	})
	first := *lease.Spec.HolderIdentity
	if err := c.Create(ctx, nearModel("one", "eu-west")); err != nil {
		t.Fatal(err)
	}
	testbin.Eventually(t, "the leader places model one", 30*time.Second, func() bool { return modelDeployment(t, c, "member-eu", "one") != nil })

	runHub(t, cp, opts)
	time.Sleep(3 * time.Second) // the second hub tries for the Lease and waits
	if err := c.Get(ctx, client.ObjectKey{Namespace: "default", Name: "meridian-hub"}, lease); err != nil || *lease.Spec.HolderIdentity != first {
		t.Fatalf("the Lease moved while its holder ran: %v %v", err, lease.Spec.HolderIdentity)
	}
	stopFirst()
	if err := c.Create(ctx, nearModel("two", "eu-west")); err != nil {
		t.Fatal(err)
	}
	testbin.Eventually(t, "the second hub takes the Lease and places model two", 30*time.Second, func() bool {
		return modelDeployment(t, c, "member-eu", "two") != nil
	})
	if err := c.Get(ctx, client.ObjectKey{Namespace: "default", Name: "meridian-hub"}, lease); err != nil || *lease.Spec.HolderIdentity == first {
		t.Fatalf("after the first hub stopped the Lease is still its own: %v %v", err, lease.Spec.HolderIdentity)
	}
}
