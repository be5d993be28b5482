// Package version holds Meridian's build identity, set at link time by the
// Makefile with -ldflags "-X meridian.dev/meridian/internal/version.Version=…".
package version

import (
	"fmt"
	"runtime"
)

// Set by the linker; the defaults describe a plain `go build`.
var (
	// Version is the release or `git describe` of the build.
	Version = "dev"
	// Commit is the git commit the binary was built from.
	Commit = "unknown"
)

// String is the one-line identity printed by `meridian version` and logged
// at start-up.
func String() string {
	return fmt.Sprintf("meridian %s (commit %s, %s, %s/%s)", Version, Commit, runtime.Version(), runtime.GOOS, runtime.GOARCH)
}
