package controlplane

import (
	"context"
	"os"
	"testing"

	"meridian.dev/meridian/internal/testbin"
)

// ForTest starts a control plane for one test and stops it when the test
// ends. A missing binary fails the test with the command that builds it;
// only under go test -short, which runs the unit tests on a checkout
// without .cache, does it skip the test instead. Set
// MERIDIAN_CONTROLPLANE_LOGS=1 to see the logs of the processes started
// beside the API server.
func ForTest(t testing.TB, opts Options) *ControlPlane {
	t.Helper()
	if opts.BinDir == "" {
		if _, err := FindBinDir(); err != nil {
			testbin.Need(t, err)
		}
	}
	if opts.Logs == nil && os.Getenv("MERIDIAN_CONTROLPLANE_LOGS") != "" {
		opts.Logs = os.Stderr
	}
	cp, err := Start(context.Background(), opts)
	if err != nil {
		t.Fatalf("starting a control plane: %v", err)
	}
	t.Cleanup(func() {
		if err := cp.Stop(); err != nil {
			t.Logf("stopping the control plane: %v", err)
		}
	})
	return cp
}
