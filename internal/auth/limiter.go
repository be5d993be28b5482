package auth

import (
	"math"
	"sync"
	"time"
)

// limiter holds each tenant's token bucket and requests in flight. A
// tenant's state is dropped when it is idle (bucket full, nothing in
// flight), which is exactly the state a new one starts in, so memory
// follows the tenants active lately, not every tenant ever seen.
type limiter struct {
	now func() time.Time

	mu      sync.RWMutex
	tenants map[string]*bucket
}

type bucket struct {
	mu       sync.Mutex
	tokens   float64
	last     time.Time
	inFlight int
	dropped  bool // removed from the map by sweep; look it up again
}

// refusal says why acquire refused, and when to try again.
type refusal struct {
	result     string // resultRateLimited or resultConcurrencyLimited
	retryAfter time.Duration
}

func newLimiter(now func() time.Time) *limiter {
	return &limiter{now: now, tenants: map[string]*bucket{}}
}

// acquire admits one request of tenant under p, or says why not; an
// admitted request calls done when it ends. The concurrency slot is taken
// before the token, so a request refused for concurrency costs no token.
func (l *limiter) acquire(tenant string, p *Policy) (done func(), _ *refusal) {
	if p.Rate == 0 && p.MaxConcurrent == 0 {
		return func() {}, nil
	}
	for {
		b := l.bucket(tenant, p)
		b.mu.Lock()
		if b.dropped {
			b.mu.Unlock()
			continue
		}
		r := b.take(l.now(), p)
		b.mu.Unlock()
		if r != nil {
			return nil, r
		}
		return b.release, nil
	}
}

func (b *bucket) take(now time.Time, p *Policy) *refusal {
	if p.MaxConcurrent > 0 && b.inFlight >= p.MaxConcurrent {
		return &refusal{result: resultConcurrencyLimited, retryAfter: time.Second}
	}
	if p.Rate > 0 {
		b.refill(now, p)
		if b.tokens < 1 {
			wait := (1 - b.tokens) / p.Rate
			return &refusal{result: resultRateLimited, retryAfter: time.Duration(wait * float64(time.Second))}
		}
		b.tokens--
	}
	b.inFlight++
	return nil
}

func (b *bucket) refill(now time.Time, p *Policy) {
	if elapsed := now.Sub(b.last).Seconds(); elapsed > 0 {
		b.tokens += elapsed * p.Rate
	}
	b.tokens = math.Min(b.tokens, float64(p.Burst))
	b.last = now
}

// release ends one admitted request.
func (b *bucket) release() {
	b.mu.Lock()
	b.inFlight--
	b.mu.Unlock()
}

func (l *limiter) bucket(tenant string, p *Policy) *bucket {
	l.mu.RLock()
	b := l.tenants[tenant]
	l.mu.RUnlock()
	if b != nil {
		return b
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if b = l.tenants[tenant]; b == nil {
		b = &bucket{tokens: float64(p.Burst), last: l.now()}
		l.tenants[tenant] = b
	}
	return b
}

// sweep drops idle tenants; policy gives each tenant's current policy
// (nil: the tenant is no longer admitted, so any idle state goes).
func (l *limiter) sweep(policy func(tenant string) *Policy) {
	now := l.now()
	l.mu.Lock()
	defer l.mu.Unlock()
	for t, b := range l.tenants {
		b.mu.Lock()
		idle := b.inFlight == 0
		if p := policy(t); idle && p != nil && p.Rate > 0 {
			b.refill(now, p)
			idle = b.tokens >= float64(p.Burst)
		}
		if idle {
			b.dropped = true
			delete(l.tenants, t)
		}
		b.mu.Unlock()
	}
}

// retryAfterSeconds is Retry-After's value for d: whole seconds, rounded
// up, at least 1.
func retryAfterSeconds(d time.Duration) int {
	return max(1, int(math.Ceil(d.Seconds())))
}
