package karpenter

import (
	"context"
	"os"
	"testing"

	"meridian.dev/meridian/internal/controlplane"
)

// ForTest starts Karpenter beside cp for one test and stops it when the
// test ends. cp must run its scheduler and controller manager with
// NodeLifecycle, and no fake Nodes. Set MERIDIAN_CONTROLPLANE_LOGS=1 to
// see Karpenter's and kwok's logs.
func ForTest(t testing.TB, cp *controlplane.ControlPlane, opts Options) *Karpenter {
	t.Helper()
	if opts.Logs == nil && os.Getenv("MERIDIAN_CONTROLPLANE_LOGS") != "" {
		opts.Logs = os.Stderr
	}
	k, err := Start(context.Background(), cp.Config, cp.Kubeconfig, opts)
	if err != nil {
		t.Fatalf("starting Karpenter: %v", err)
	}
	t.Cleanup(func() {
		if err := k.Stop(); err != nil {
			t.Logf("stopping Karpenter: %v", err)
		}
	})
	return k
}
