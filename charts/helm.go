// Package charts holds Meridian's Helm chart (meridian/) and what its tests
// share with the install test in e2e: where the chart and Helm are.
package charts

import (
	"os/exec"
	"path/filepath"
	"runtime"
	"testing"

	"meridian.dev/meridian/internal/testbin"
)

// Dir is the chart's directory.
func Dir() string {
	_, file, _, _ := runtime.Caller(0)
	return filepath.Join(filepath.Dir(file), "meridian")
}

// Helm returns the path of the Helm binary `make helm` builds. When it is
// missing the test fails saying so (skips under go test -short).
func Helm(t testing.TB) string {
	t.Helper()
	return testbin.Cached(t, "bin/helm-v4.3.2", "helm")
}

// Run runs helm with args, with a Helm home of its own under t's temporary
// directory (no user's repositories or plugins), and returns its combined
// output.
func Run(t testing.TB, args ...string) ([]byte, error) {
	t.Helper()
	cmd := exec.Command(Helm(t), args...)
	home := t.TempDir()
	cmd.Env = append(cmd.Environ(),
		"HELM_CONFIG_HOME="+filepath.Join(home, "config"),
		"HELM_CACHE_HOME="+filepath.Join(home, "cache"),
		"HELM_DATA_HOME="+filepath.Join(home, "data"))
	return cmd.CombinedOutput()
}
