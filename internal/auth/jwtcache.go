package auth

import (
	"crypto/sha256"
	"time"

	lru "github.com/hashicorp/golang-lru/v2"
)

// Verified tokens are remembered so that a client sending the same token
// on every request pays one signature check a minute, not one a request
// (an ES256 check costs tens of microseconds, a SHA-256 of the token a
// microsecond).
const (
	jwtCacheSize = 10000
	jwtCacheTTL  = time.Minute
)

// jwtCache maps a token's SHA-256 to the tenant it was verified as, until
// the earlier of its expiry (plus the skew) and jwtCacheTTL after the
// check, and only while the key set it was checked against is the one in
// use: a new key set (file reloaded, URL fetched) makes every entry
// stale, so a key withdrawn from the set stops working at once.
type jwtCache struct {
	entries *lru.Cache[[sha256.Size]byte, cachedToken]
}

type cachedToken struct {
	tenant string
	until  time.Time
	keys   *keySet // the set it was verified against
}

func newJWTCache() *jwtCache {
	c, _ := lru.New[[sha256.Size]byte, cachedToken](jwtCacheSize) // errors only for a size <= 0
	return &jwtCache{entries: c}
}

// get returns the tenant raw was verified as, if it is still good at now
// against keys.
func (c *jwtCache) get(raw string, now time.Time, keys *keySet) (string, bool) {
	sum := sha256.Sum256([]byte(raw))
	e, ok := c.entries.Get(sum)
	if !ok {
		return "", false
	}
	if e.keys != keys || !now.Before(e.until) {
		c.entries.Remove(sum)
		return "", false
	}
	return e.tenant, true
}

func (c *jwtCache) add(raw, tenant string, expiry, now time.Time, keys *keySet) {
	until := now.Add(jwtCacheTTL)
	if expiry.Before(until) {
		until = expiry
	}
	c.entries.Add(sha256.Sum256([]byte(raw)), cachedToken{tenant: tenant, until: until, keys: keys})
}
