package testbin

import (
	"errors"
	"os"
	"os/exec"
	"path/filepath"
)

// SlowHTTPTest returns the path of slowhttptest, the slow HTTP attack tool
// (slowloris, slow body) the listener-hardening tests run against the
// real servers: .cache/bin/slowhttptest of the checkout around the
// working directory (fetched by `make slowhttptest`, which `make test`
// runs: pinned Debian packages, see scripts/slowhttptest.lock), else
// slowhttptest on $PATH. The error says how to get it; pass it to Need.
func SlowHTTPTest() (string, error) {
	if root, ok := repoRoot(); ok {
		bin := filepath.Join(root, ".cache", "bin", "slowhttptest")
		if fi, err := os.Stat(bin); err == nil && fi.Mode().IsRegular() && fi.Mode()&0o111 != 0 {
			return bin, nil
		}
	}
	if bin, err := exec.LookPath("slowhttptest"); err == nil {
		return bin, nil
	}
	return "", errors.New("slowhttptest not found: run `make slowhttptest` (fetches it into .cache/bin/slowhttptest), or put slowhttptest on $PATH")
}
