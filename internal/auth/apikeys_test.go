package auth

import (
	"crypto/sha256"
	"encoding/hex"
	"os"
	"strings"
	"testing"
	"time"

	"meridian.dev/meridian/internal/testbin"
)

const (
	acmeKey = "acme-0123456789abcdef"
	betaKey = "beta-0123456789abcdef"
)

// TestAPIKeys accepts keys as Bearer tokens and in X-API-Key, from the
// line format with a stored hash, and refuses unknown keys and ambiguous
// requests.
func TestAPIKeys(t *testing.T) {
	t.Parallel()
	sum := sha256.Sum256([]byte(betaKey))
	file := writeFile(t, t.TempDir(), "keys", "# tenant key\nacme "+acmeKey+"\n\nbeta sha256:"+hex.EncodeToString(sum[:])+" # hashed\n")
	d := newDoor(t, Options{APIKeysFile: file})
	for _, tc := range []struct {
		name   string
		header []string
		code   int
		body   string
	}{
		{"bearer", bearer(acmeKey), 200, "api-key:acme"},
		{"x-api-key", []string{"X-API-Key", acmeKey}, 200, "api-key:acme"},
		{"stored as a hash", []string{"X-API-Key", betaKey}, 200, "api-key:beta"},
		{"unknown key", bearer("acme-0123456789abcdeX"), 401, "unknown credentials"},
		{"hash itself is no key", []string{"X-API-Key", "sha256:" + hex.EncodeToString(sum[:])}, 401, "unknown credentials"},
		{"both headers", append(bearer(acmeKey), "X-API-Key", acmeKey), 401, "send one credential"},
		{"two keys", []string{"X-API-Key", acmeKey, "X-API-Key", betaKey}, 401, "send one credential"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			a := d.infer(t, "sentiment", tc.header...)
			if a.code != tc.code || !strings.Contains(a.body, tc.body) {
				t.Fatalf("got %d %q, want %d containing %q", a.code, a.body, tc.code, tc.body)
			}
		})
	}
}

// TestAPIKeysYAML reads the map format.
func TestAPIKeysYAML(t *testing.T) {
	t.Parallel()
	file := writeFile(t, t.TempDir(), "keys.yaml", "acme:\n- "+acmeKey+"\nbeta: ["+betaKey+"]\n")
	d := newDoor(t, Options{APIKeysFile: file})
	if a := d.infer(t, "m", bearer(betaKey)...); a.code != 200 || a.body != "api-key:beta" {
		t.Fatalf("got %d %q", a.code, a.body)
	}
}

// TestAPIKeyFileReload rotates a key by rewriting the file: the new key is
// accepted and the old refused without a restart; a broken rewrite keeps
// the keys that were loaded.
func TestAPIKeyFileReload(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	file := writeFile(t, dir, "keys", "acme "+acmeKey+"\n")
	d := newDoor(t, Options{APIKeysFile: file, ReloadInterval: 10 * time.Millisecond})
	if a := d.infer(t, "m", bearer(acmeKey)...); a.code != 200 {
		t.Fatalf("before the rotation: %d", a.code)
	}
	const rotated = "acme-rotated-fedcba9876543210"
	// As Kubernetes updates a mounted Secret: a new file renamed over.
	tmp := writeFile(t, dir, "keys.new", "acme "+rotated+"\n")
	if err := os.Rename(tmp, file); err != nil {
		t.Fatal(err)
	}
	testbin.Eventually(t, "the rotated key to be accepted", 5*time.Second, func() bool {
		return d.infer(t, "m", bearer(rotated)...).code == 200
	})
	if a := d.infer(t, "m", bearer(acmeKey)...); a.code != 401 {
		t.Errorf("old key after the rotation: %d, want 401", a.code)
	}
	if err := os.Rename(writeFile(t, dir, "keys.new", "acme short\n"), file); err != nil {
		t.Fatal(err)
	}
	testbin.Eventually(t, "the broken file to be reported", 5*time.Second, func() bool {
		n, _ := testbin.MetricIfAny(t, d.reg, "meridian_auth_file_reloads_total", map[string]string{"file": "api_keys", "result": "error"})
		return n == 1
	})
	if a := d.infer(t, "m", bearer(rotated)...); a.code != 200 {
		t.Errorf("after a broken reload: %d, want the loaded keys kept", a.code)
	}
}

// TestAPIKeyFileErrors refuses files that would weaken the door, saying
// what to do.
func TestAPIKeyFileErrors(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct{ name, file, content, want string }{
		{"short key", "keys", "acme short\n", "openssl rand"},
		{"shared key", "keys", "acme " + acmeKey + "\nbeta " + acmeKey + "\n", "same key"},
		{"three fields", "keys", "acme " + acmeKey + " extra\n", `want "tenant key"`},
		{"bad hash", "keys", "acme sha256:abc\n", "64 hex digits"},
		{"reserved tenant", "keys", "anonymous " + acmeKey + "\n", "reserved"},
		{"yaml shape", "keys.yaml", "acme: " + acmeKey + "\n", "list of keys"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := New(Options{APIKeysFile: writeFile(t, t.TempDir(), tc.file, tc.content)}, nil, nil)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("err = %v, want one containing %q", err, tc.want)
			}
		})
	}
}
