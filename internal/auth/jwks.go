package auth

import (
	"context"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/rsa"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"github.com/go-jose/go-jose/v4"
)

const (
	maxJWKSBytes  = 1 << 20
	jwksTimeout   = 10 * time.Second
	minRSAKeyBits = 2048
)

// keySet is the usable part of a JSON Web Key Set: public RSA, EC and
// Ed25519 keys meant for signatures. Other keys (encryption keys,
// symmetric keys, kinds this package cannot use) are left out, so that a
// provider that publishes them does not break the rest.
type keySet struct {
	keys []jose.JSONWebKey
}

// lookup returns the keys with id kid; a token without a kid may only
// use a set of one key.
func (s *keySet) lookup(kid string) []jose.JSONWebKey {
	if kid == "" {
		if len(s.keys) == 1 {
			return s.keys
		}
		return nil
	}
	var out []jose.JSONWebKey
	for _, k := range s.keys {
		if k.KeyID == kid {
			out = append(out, k)
		}
	}
	return out
}

func parseJWKS(data []byte, log *slog.Logger) (*keySet, error) {
	var raw struct {
		Keys []json.RawMessage `json:"keys"`
	}
	if err := json.Unmarshal(data, &raw); err != nil {
		return nil, fmt.Errorf("not a JSON Web Key Set ({\"keys\": [...]}): %w", err)
	}
	s := &keySet{}
	for i, r := range raw.Keys {
		var k jose.JSONWebKey
		if err := k.UnmarshalJSON(r); err != nil {
			log.Warn("skipping a JWKS key that cannot be read", "index", i, "err", err)
			continue
		}
		if reason := unusable(k); reason != "" {
			log.Debug("skipping a JWKS key", "kid", k.KeyID, "reason", reason)
			continue
		}
		s.keys = append(s.keys, k.Public())
	}
	if len(s.keys) == 0 {
		return nil, fmt.Errorf("the key set has no usable signing key (RSA of %d bits or more, EC P-256, Ed25519)", minRSAKeyBits)
	}
	return s, nil
}

func unusable(k jose.JSONWebKey) string {
	if k.Use != "" && k.Use != "sig" {
		return "use is " + k.Use
	}
	switch key := k.Public().Key.(type) {
	case *rsa.PublicKey:
		if key.N.BitLen() < minRSAKeyBits {
			return fmt.Sprintf("RSA key of %d bits", key.N.BitLen())
		}
	case *ecdsa.PublicKey, ed25519.PublicKey:
	default:
		return fmt.Sprintf("key type %T", k.Key)
	}
	return ""
}

// jwksSource serves the key set: from a file the watcher reloads, or from
// a URL fetched every refresh period and when a token names a kid the set
// lacks, at most once per minRefresh.
type jwksSource struct {
	set atomic.Pointer[keySet]

	url        string
	client     *http.Client
	minRefresh time.Duration
	log        *slog.Logger
	m          *metrics

	fetchMu   sync.Mutex // one fetch at a time
	lastFetch time.Time  // guarded by fetchMu
}

// keys returns the keys a token with kid may be signed with, and the set
// they belong to.
func (s *jwksSource) keys(ctx context.Context, kid string) (*keySet, []jose.JSONWebKey) {
	if set := s.set.Load(); set != nil {
		if ks := set.lookup(kid); len(ks) > 0 {
			return set, ks
		}
	}
	if s.url == "" {
		return nil, nil
	}
	s.fetchMu.Lock()
	if time.Since(s.lastFetch) >= s.minRefresh {
		// Shared by every request waiting here: one client hanging up
		// must not abort it.
		_ = s.fetchLocked(context.WithoutCancel(ctx), "unknown-kid")
	}
	s.fetchMu.Unlock()
	if set := s.set.Load(); set != nil {
		return set, set.lookup(kid)
	}
	return nil, nil
}

// fetch fetches the key set from the URL and installs it.
func (s *jwksSource) fetch(ctx context.Context, why string) error {
	s.fetchMu.Lock()
	defer s.fetchMu.Unlock()
	return s.fetchLocked(ctx, why)
}

func (s *jwksSource) fetchLocked(ctx context.Context, why string) error {
	s.lastFetch = time.Now()
	set, err := s.get(ctx)
	if err != nil {
		s.m.jwksFetches.WithLabelValues(outcomeError).Inc()
		s.log.Error("fetching the JWKS failed; keeping the keys held", "url", s.url, "why", why, "err", err)
		return err
	}
	s.m.jwksFetches.WithLabelValues(outcomeOK).Inc()
	s.set.Store(set)
	s.log.Debug("fetched the JWKS", "url", s.url, "why", why, "keys", len(set.keys))
	return nil
}

func (s *jwksSource) get(ctx context.Context) (*keySet, error) {
	ctx, cancel := context.WithTimeout(ctx, jwksTimeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, s.url, nil)
	if err != nil {
		return nil, err
	}
	req.Header.Set("Accept", "application/jwk-set+json, application/json")
	resp, err := s.client.Do(req)
	if err != nil {
		return nil, err
	}
	defer func() { _ = resp.Body.Close() }()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("%s answered %s", s.url, resp.Status)
	}
	data, err := io.ReadAll(io.LimitReader(resp.Body, maxJWKSBytes+1))
	if err != nil {
		return nil, fmt.Errorf("reading %s: %w", s.url, err)
	}
	if len(data) > maxJWKSBytes {
		return nil, fmt.Errorf("%s: key set larger than %d bytes", s.url, maxJWKSBytes)
	}
	return parseJWKS(data, s.log)
}

// run refetches the key set every refresh until ctx ends; until one fetch
// succeeded, it retries every minRefresh.
func (s *jwksSource) run(ctx context.Context, refresh time.Duration) {
	for {
		wait := refresh
		if s.set.Load() == nil {
			wait = s.minRefresh
		}
		select {
		case <-ctx.Done():
			return
		case <-time.After(wait):
		}
		_ = s.fetch(ctx, "refresh")
	}
}
