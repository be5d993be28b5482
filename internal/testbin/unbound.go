package testbin

import (
	"errors"
	"os"
	"os/exec"
	"path/filepath"
)

// Unbound returns the path of the Unbound recursive resolver that drills
// and internal/resolver put between clients and the global balancer:
// .cache/bin/unbound of the checkout around the working directory
// (fetched by `make unbound`, which `make test` runs: pinned Debian
// packages, see scripts/unbound.lock), else unbound on $PATH. The error
// says how to get it.
func Unbound() (string, error) {
	if root, ok := repoRoot(); ok {
		bin := filepath.Join(root, ".cache", "bin", "unbound")
		if fi, err := os.Stat(bin); err == nil && fi.Mode().IsRegular() && fi.Mode()&0o111 != 0 {
			return bin, nil
		}
	}
	if bin, err := exec.LookPath("unbound"); err == nil {
		return bin, nil
	}
	return "", errors.New("unbound not found: run `make unbound` (fetches it into .cache/bin/unbound), or put Unbound on $PATH")
}
