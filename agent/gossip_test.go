package agent

import (
	"testing"

	"k8s.io/apimachinery/pkg/types"

	v1 "meridian.dev/meridian/crds/v1alpha1"
	"meridian.dev/meridian/gossip"
)

// The digests say a model can take traffic while it has a ready replica
// or is scaled to zero behind the activator, and say which of the two.
func TestGossipStateCountsAModelAtZeroAsHealthy(t *testing.T) {
	a := &Agent{kubeLoads: map[types.NamespacedName]v1.ModelLoad{}}
	for _, l := range []v1.ModelLoad{
		{Namespace: "default", Name: "warm", Model: "warm", ReadyReplicas: 2, DesiredReplicas: 2},
		{Namespace: "default", Name: "zero", Model: "zero", ScaledToZero: true},
		{Namespace: "default", Name: "lost", Model: "lost", DesiredReplicas: 1}, // no replica, not on purpose
	} {
		a.kubeLoads[types.NamespacedName{Namespace: l.Namespace, Name: l.Name}] = l
	}
	got := map[string]gossip.ModelDigest{}
	for _, d := range a.gossipState().Models {
		got[d.Name] = d
	}
	for name, want := range map[string]struct{ healthy, zero bool }{
		"warm": {true, false},
		"zero": {true, true},
		"lost": {false, false},
	} {
		if d := got[name]; d.Healthy != want.healthy || d.ScaledToZero != want.zero {
			t.Errorf("%s: Healthy %v ScaledToZero %v, want %v %v", name, d.Healthy, d.ScaledToZero, want.healthy, want.zero)
		}
	}
}
