// Package browsertest drives the fleet page in a real browser for tests:
// Chromium's headless shell (`make chromium`: pinned Debian 12 packages,
// scripts/chromium.lock) through chromedp, and keeps screenshots where
// people can look at them.
package browsertest

import (
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"meridian.dev/meridian/internal/testbin"
)

// Chromium returns the path of the browser the tests drive:
// .cache/bin/chromium of the checkout around the working directory
// (`make chromium`, which `make test` runs), else chromium-headless-shell
// or chromium on $PATH. The error says how to get it.
func Chromium() (string, error) {
	if root, ok := repoRoot(); ok {
		bin := filepath.Join(root, ".cache", "bin", "chromium")
		if fi, err := os.Stat(bin); err == nil && fi.Mode().IsRegular() && fi.Mode()&0o111 != 0 {
			return bin, nil
		}
	}
	for _, name := range []string{"chromium-headless-shell", "chromium"} {
		if bin, err := exec.LookPath(name); err == nil {
			return bin, nil
		}
	}
	return "", errors.New("chromium not found: run `make chromium` (fetches Chromium's headless shell into .cache/bin/chromium), or put chromium-headless-shell on $PATH")
}

// New starts a headless browser for t and returns the context its tab
// runs chromedp actions in; the browser ends with the test. A missing
// browser fails the test, saying to run `make chromium` (testbin.Need).
func New(t testing.TB) context.Context {
	t.Helper()
	bin, err := Chromium()
	testbin.Need(t, err)
	opts := append(chromedp.DefaultExecAllocatorOptions[:],
		chromedp.ExecPath(bin),
		// As root (CI, make test as root) Chromium refuses its sandbox;
		// the tests load only their own pages.
		chromedp.NoSandbox,
		chromedp.DisableGPU,
		chromedp.WindowSize(1280, 1000),
		chromedp.UserDataDir(t.TempDir()),
	)
	actx, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	ctx, cancel := chromedp.NewContext(actx, chromedp.WithLogf(t.Logf))
	t.Cleanup(func() {
		cancel()
		cancelAlloc()
	})
	// Start it now, so a browser that does not run fails here.
	if err := chromedp.Do(ctx); err != nil {
		t.Fatalf("starting %s: %v", bin, err)
	}
	return ctx
}

// Artifacts returns .cache/artifacts/fleetpage of the checkout (made if
// missing; git-ignored), where the browser tests keep their screenshots.
func Artifacts(t testing.TB) string {
	t.Helper()
	root, ok := repoRoot()
	if !ok {
		root = t.TempDir()
	}
	dir := filepath.Join(root, ".cache", "artifacts", "fleetpage")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	return dir
}

// Screenshot writes a PNG of the whole page to Artifacts/NAME.png and logs
// its path.
func Screenshot(t testing.TB, ctx context.Context, name string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	png, err := chromedp.Run(ctx, chromedp.FullScreenshot(100))
	if err != nil {
		t.Fatalf("screenshot %s: %v", name, err)
	}
	path := filepath.Join(Artifacts(t), name+".png")
	if err := os.WriteFile(path, png, 0o644); err != nil {
		t.Fatal(err)
	}
	t.Logf("screenshot: %s", path)
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
