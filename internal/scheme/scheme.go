// Package scheme holds the one runtime.Scheme every Meridian component
// uses: the core Kubernetes types plus meridian.dev/v1alpha1.
package scheme

import (
	"k8s.io/apimachinery/pkg/runtime"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"

	v1 "meridian.dev/meridian/crds/v1alpha1"
)

// Scheme has the core Kubernetes and Meridian types.
var Scheme = func() *runtime.Scheme {
	s := runtime.NewScheme()
	if err := clientgoscheme.AddToScheme(s); err != nil {
		panic(err)
	}
	if err := v1.AddToScheme(s); err != nil {
		panic(err)
	}
	return s
}()
