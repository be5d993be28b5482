// Package scheme holds the one runtime.Scheme every Meridian component
// uses: the core Kubernetes types, meridian.dev/v1alpha1, and the cluster
// inventory's multicluster.x-k8s.io/v1alpha1 (ClusterProfile, which the
// hub publishes and imports; see hub/inventory).
package scheme

import (
	"k8s.io/apimachinery/pkg/runtime"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	inventoryv1alpha1 "sigs.k8s.io/cluster-inventory-api/apis/v1alpha1"

	v1 "meridian.dev/meridian/crds/v1alpha1"
)

// Scheme has the core Kubernetes, Meridian and cluster inventory types.
var Scheme = func() *runtime.Scheme {
	s := runtime.NewScheme()
	for _, add := range []func(*runtime.Scheme) error{clientgoscheme.AddToScheme, v1.AddToScheme, inventoryv1alpha1.AddToScheme} {
		if err := add(s); err != nil {
			panic(err)
		}
	}
	return s
}()
