// Package testbin builds the real meridian binary for tests that run it
// (as agent replicas, or as a whole fleet), so they exercise what ships.
package testbin

import (
	"fmt"
	"os/exec"
	"path/filepath"
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
