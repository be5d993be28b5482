package auth

import (
	"bufio"
	"bytes"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"maps"
	"path/filepath"
	"slices"
	"strings"
	"sync/atomic"

	"sigs.k8s.io/yaml"
)

// minAPIKeyBytes is the shortest API key accepted in the file: shorter
// ones could be guessed.
const minAPIKeyBytes = 16

// apiKeys holds the API keys of the key file as keyed digests: the
// HMAC-SHA-256, under a random key made at start-up, of each key's
// SHA-256. Neither the keys nor anything an attacker could compute from a
// guess stay in memory, and finding a presented key is one map lookup on
// its digest, whose timing tells nothing about the keys held (the lookup
// compares digests the attacker cannot predict, not the keys).
type apiKeys struct {
	mac  []byte
	ring atomic.Pointer[keyRing]
}

type keyRing struct {
	tenants map[[sha256.Size]byte]string // digest → tenant
	names   map[string]bool              // every tenant that has a key
}

func newAPIKeys() (*apiKeys, error) {
	k := &apiKeys{mac: make([]byte, 32)}
	if _, err := rand.Read(k.mac); err != nil {
		return nil, fmt.Errorf("making the API key digest key: %w", err)
	}
	k.ring.Store(&keyRing{})
	return k, nil
}

// tenant returns the tenant of key, if any.
func (k *apiKeys) tenant(key string) (string, bool) {
	sum := sha256.Sum256([]byte(key))
	t, ok := k.ring.Load().tenants[k.digest(sum[:])]
	return t, ok
}

// has reports whether tenant holds an API key.
func (k *apiKeys) has(tenant string) bool { return k.ring.Load().names[tenant] }

func (k *apiKeys) digest(sha []byte) [sha256.Size]byte {
	m := hmac.New(sha256.New, k.mac)
	m.Write(sha)
	var d [sha256.Size]byte
	m.Sum(d[:0])
	return d
}

// load replaces the keys with those of the file's content; name decides
// the format (.yaml, .yml, .json: a map; else lines).
func (k *apiKeys) load(name string, data []byte) error {
	pairs, err := parseAPIKeys(name, data)
	if err != nil {
		return err
	}
	r := &keyRing{tenants: make(map[[sha256.Size]byte]string, len(pairs)), names: map[string]bool{}}
	for i, p := range pairs {
		sha, err := keyHash(p.key)
		if err != nil {
			return fmt.Errorf("%s: entry %d (tenant %q): %w", name, i+1, p.tenant, err)
		}
		d := k.digest(sha)
		if other, dup := r.tenants[d]; dup {
			return fmt.Errorf("%s: tenant %q has the same key as tenant %q; give each its own", name, p.tenant, other)
		}
		r.tenants[d], r.names[p.tenant] = p.tenant, true
	}
	k.ring.Store(r)
	return nil
}

type tenantKeyPair struct{ tenant, key string }

func parseAPIKeys(name string, data []byte) ([]tenantKeyPair, error) {
	switch strings.ToLower(filepath.Ext(name)) {
	case ".yaml", ".yml", ".json":
		var m map[string][]string
		if err := yaml.UnmarshalStrict(data, &m); err != nil {
			return nil, fmt.Errorf("%s: want a map of tenant to a list of keys: %w", name, err)
		}
		var pairs []tenantKeyPair
		for _, t := range slices.Sorted(maps.Keys(m)) {
			for _, key := range m[t] {
				pairs = append(pairs, tenantKeyPair{t, key})
			}
		}
		return pairs, validTenants(name, pairs)
	}
	var pairs []tenantKeyPair
	sc := bufio.NewScanner(bytes.NewReader(data))
	for n := 1; sc.Scan(); n++ {
		line, _, _ := strings.Cut(sc.Text(), "#")
		f := strings.Fields(line)
		switch len(f) {
		case 0:
			continue
		case 2:
			pairs = append(pairs, tenantKeyPair{f[0], f[1]})
		default:
			return nil, fmt.Errorf("%s:%d: want \"tenant key\", got %d fields", name, n, len(f))
		}
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("%s: %w", name, err)
	}
	return pairs, validTenants(name, pairs)
}

func validTenants(name string, pairs []tenantKeyPair) error {
	for _, p := range pairs {
		if err := validTenantName(p.tenant); err != nil {
			return fmt.Errorf("%s: %w", name, err)
		}
	}
	return nil
}

// keyHash returns the SHA-256 of a key as the file writes it: the key
// itself, or "sha256:<hex>" of it.
func keyHash(key string) ([]byte, error) {
	if h, ok := strings.CutPrefix(key, "sha256:"); ok {
		sha, err := hex.DecodeString(h)
		if err != nil || len(sha) != sha256.Size {
			return nil, fmt.Errorf("sha256: needs 64 hex digits (sha256sum of the key)")
		}
		return sha, nil
	}
	if len(key) < minAPIKeyBytes {
		return nil, fmt.Errorf("key shorter than %d bytes could be guessed; make one with: openssl rand -hex 32", minAPIKeyBytes)
	}
	if _, err := checked(credAPIKey, key); err != nil {
		return nil, fmt.Errorf("key holds spaces or control characters")
	}
	sum := sha256.Sum256([]byte(key))
	return sum[:], nil
}
