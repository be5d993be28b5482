package e2e

import (
	"flag"
	"fmt"
	"os"
	"testing"

	"meridian.dev/meridian/internal/controlplane"
	"meridian.dev/meridian/internal/testbin"
)

// Every test here starts a whole fleet from what `make test` provides
// under .cache: the control-plane binaries (`make controlplane`), ONNX
// Runtime and the geo databases (`make deps`). Without them the tests
// fail, saying which target to run; only go test -short, which runs the
// unit tests on a checkout without .cache, skips the package instead.
func TestMain(m *testing.M) {
	flag.Parse()
	if testing.Short() {
		for _, find := range []func() (string, error){controlplane.FindBinDir, testbin.FindORTLibrary} {
			if _, err := find(); err != nil {
				fmt.Printf("e2e: skipped under -short: %v\n", err)
				os.Exit(0)
			}
		}
	}
	os.Exit(m.Run())
}
