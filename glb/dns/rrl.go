package dns

import (
	"net/netip"
	"sync"
	"time"

	"github.com/hashicorp/golang-lru/v2/simplelru"
)

// rrlVerdict is what the rate limiter decides for one response.
type rrlVerdict int

const (
	rrlSend rrlVerdict = iota // send the response
	rrlSlip                   // send it truncated, with no records
	rrlDrop                   // send nothing
)

// rateLimiter is response rate limiting: one token bucket per client
// network, in a table bounded by an LRU so a flood of spoofed sources
// cannot grow memory without bound.
type rateLimiter struct {
	cfg RRL
	now func() time.Time

	mu      sync.Mutex
	buckets *simplelru.LRU[netip.Prefix, *bucket]
}

type bucket struct {
	tokens  float64
	last    time.Time
	limited uint64 // responses limited so far, for slip
}

// newRateLimiter returns nil, which allows everything, when cfg is Off;
// cfg has its defaults filled in.
func newRateLimiter(cfg RRL, now func() time.Time) *rateLimiter {
	if cfg.Off || cfg.ResponsesPerSecond <= 0 {
		return nil
	}
	l, err := simplelru.NewLRU[netip.Prefix, *bucket](cfg.TableSize, nil)
	if err != nil { // only for a non-positive size, which Config rules out
		return nil
	}
	return &rateLimiter{cfg: cfg, now: now, buckets: l}
}

// clientNetwork is the rate-limited unit a source address belongs to.
func (r *rateLimiter) clientNetwork(a netip.Addr) netip.Prefix {
	a = a.Unmap()
	bits := r.cfg.IPv6PrefixLen
	if a.Is4() {
		bits = r.cfg.IPv4PrefixLen
	}
	p, _ := a.Prefix(bits) // bits is in range for the family
	return p
}

// allow charges one response to the client's network.
func (r *rateLimiter) allow(client netip.Addr) rrlVerdict {
	client = client.Unmap()
	if r == nil || !client.IsValid() || r.exempt(client) {
		return rrlSend
	}
	key := r.clientNetwork(client)
	now := r.now()
	r.mu.Lock()
	defer r.mu.Unlock()
	b, ok := r.buckets.Get(key)
	if !ok {
		b = &bucket{tokens: float64(r.cfg.Burst), last: now}
		r.buckets.Add(key, b)
	}
	if elapsed := now.Sub(b.last).Seconds(); elapsed > 0 {
		b.tokens = min(float64(r.cfg.Burst), b.tokens+elapsed*r.cfg.ResponsesPerSecond)
		b.last = now
	}
	if b.tokens >= 1 {
		b.tokens--
		return rrlSend
	}
	// Limited responses run the bucket into debt, down to Window's worth,
	// so a sustained flood stays limited until it subsides.
	b.tokens = max(b.tokens-1, -r.cfg.ResponsesPerSecond*r.cfg.Window.Seconds())
	b.limited++
	if r.cfg.Slip > 0 && b.limited%uint64(r.cfg.Slip) == 0 {
		return rrlSlip
	}
	return rrlDrop
}

func (r *rateLimiter) exempt(a netip.Addr) bool {
	for _, p := range r.cfg.Exempt {
		if p.Contains(a) {
			return true
		}
	}
	return false
}

// len is the number of client networks tracked.
func (r *rateLimiter) len() int {
	if r == nil {
		return 0
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.buckets.Len()
}
