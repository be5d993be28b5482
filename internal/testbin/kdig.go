package testbin

import (
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
)

// Kdig returns the path of Knot's kdig, the independent DNS client tests
// query with: .cache/bin/kdig of the checkout around the working directory
// (fetched by `make kdig`, which `make test` runs: pinned Debian packages,
// see scripts/kdig.lock), else kdig on $PATH. The error says how to get it.
func Kdig() (string, error) {
	if root, ok := repoRoot(); ok {
		bin := filepath.Join(root, ".cache", "bin", "kdig")
		if fi, err := os.Stat(bin); err == nil && fi.Mode().IsRegular() && fi.Mode()&0o111 != 0 {
			return bin, nil
		}
	}
	if bin, err := exec.LookPath("kdig"); err == nil {
		return bin, nil
	}
	return "", errors.New("kdig not found: run `make kdig` (fetches it into .cache/bin/kdig), or put Knot's kdig on $PATH")
}

// repoRoot finds the Meridian checkout around the working directory.
func repoRoot() (string, bool) {
	dir, err := os.Getwd()
	if err != nil {
		return "", false
	}
	for {
		if b, err := os.ReadFile(filepath.Join(dir, "go.mod")); err == nil && strings.HasPrefix(string(b), "module meridian.dev/meridian\n") {
			return dir, true
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", false
		}
		dir = parent
	}
}
