// Package testbin is Meridian's test kit, one place for what tests of
// many packages share:
//
//   - the real meridian binary, built for tests that run it (as agent
//     replicas, or as a whole fleet), so they exercise what ships: Build,
//     Main;
//   - Eventually, the one way a test waits for a condition;
//   - Metric, MetricIfAny and HistogramSum, which read a metric back
//     from a Prometheus registry;
//   - RolloutModels, a model repository for rollout and rollback tests:
//     sentiment's two good versions, a third, FailingVersion, that
//     loads and turns ready but fails every inference
//     (FailingSentimentModel), and a fourth, DriftingVersion, that
//     answers NEGATIVE to everything (DriftingSentimentModel);
//   - Models, the bundled model repository, and the paths of what make
//     targets put under .cache — Cached, ORTLibrary and GeoDatabases
//     (`make deps`), Kdig (`make kdig`), Unbound (`make unbound`),
//     SlowHTTPTest (`make slowhttptest`); the control plane's are
//     controlplane.FindBinDir's;
//   - Need, which fails a test missing one of those, or skips it under
//     go test -short, so that `go test -short ./...` runs the unit tests
//     on a checkout without .cache while `make test` never passes by
//     skipping.
package testbin

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
)

// Build compiles meridian.dev/meridian/cmd/meridian into dir and returns
// the binary's path.
func Build(dir string) (string, error) {
	bin := filepath.Join(dir, "meridian")
	if out, err := exec.Command("go", "build", "-o", bin, "meridian.dev/meridian/cmd/meridian").CombinedOutput(); err != nil {
		return "", fmt.Errorf("building meridian: %w\n%s", err, out)
	}
	return bin, nil
}

// Main is a TestMain body: it builds meridian into a temporary directory,
// stores its path in *bin, runs the tests and exits with their code.
func Main(m *testing.M, bin *string) {
	dir, err := os.MkdirTemp("", "meridian-test-")
	if err == nil {
		*bin, err = Build(dir)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	code := m.Run()
	_ = os.RemoveAll(dir)
	os.Exit(code)
}
