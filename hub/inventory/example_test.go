package inventory_test

import (
	"context"
	"log"

	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/manager"
	mcmanager "sigs.k8s.io/multicluster-runtime/pkg/manager"
	nop "sigs.k8s.io/multicluster-runtime/providers/nop"

	"meridian.dev/meridian/hub/inventory"
	"meridian.dev/meridian/internal/scheme"
)

// The hub sets the inventory up on its multicluster manager's local
// manager, the one of the hub cluster, before starting it. (The hub's
// provider engages its members; nop stands in for it here.)
func ExampleSetup() {
	ctx := context.Background()
	mgr, err := mcmanager.New(ctrl.GetConfigOrDie(), nop.New(), manager.Options{Scheme: scheme.Scheme})
	if err != nil {
		log.Fatal(err)
	}
	opts := inventory.Options{Namespace: inventory.DefaultNamespace, Export: true, Import: true}
	if err := inventory.Setup(ctx, mgr.GetLocalManager(), opts); err != nil {
		log.Fatal(err)
	}
	if err := mgr.Start(ctx); err != nil {
		log.Fatal(err)
	}
}
