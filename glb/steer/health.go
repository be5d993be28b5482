package steer

import (
	"sync"
	"time"
)

// HealthConfig tunes how observations become a verdict. The zero value of a
// field means its default.
type HealthConfig struct {
	// FailureThreshold is how many consecutive failed observations mark a
	// healthy target down; one failure among successes is forgiven, so a
	// single lost probe moves nobody. It is the GlobalEndpoint API's
	// healthCheck.failureThreshold. Default 2.
	FailureThreshold int
	// HoldDown is how long a down target must keep succeeding, with no
	// failure at all, before it is up again; every failure in that time
	// starts the wait over. It keeps a target that fails now and then from
	// flapping in and out of DNS answers that resolvers cache for a TTL.
	// Default 10s; a negative value means none (up on the first success).
	HoldDown time.Duration
}

// Defaults of HealthConfig.
const (
	DefaultFailureThreshold = 2
	DefaultHoldDown         = 10 * time.Second
)

// DefaultHealthConfig suits probes every few seconds plus gossip: a dead
// cluster is out after two missed observations and back ten seconds after
// it recovers.
func DefaultHealthConfig() HealthConfig {
	return HealthConfig{FailureThreshold: DefaultFailureThreshold, HoldDown: DefaultHoldDown}
}

func (c HealthConfig) withDefaults() HealthConfig {
	if c.FailureThreshold <= 0 {
		c.FailureThreshold = DefaultFailureThreshold
	}
	switch {
	case c.HoldDown == 0:
		c.HoldDown = DefaultHoldDown
	case c.HoldDown < 0:
		c.HoldDown = 0
	}
	return c
}

// Health tracks whether each target is up from a stream of observations
// (probe results, gossip). A target never observed is up: the config that
// names it says it serves, and the first failures take it out. A target
// that has never succeeded yet (starting) comes up at its first success;
// one that was up and went down comes back only after the hold-down. Health is
// safe for concurrent use; times come from the caller, so tests need no
// clock.
type Health struct {
	cfg     HealthConfig
	mu      sync.Mutex
	targets map[string]*healthState
}

type healthState struct {
	down     bool
	wasUp    bool      // has succeeded while up: a return must then wait the hold-down
	failures int       // consecutive failures
	okSince  time.Time // start of the success streak while down; zero if none
}

// NewHealth returns a tracker with cfg (zero fields take their defaults).
func NewHealth(cfg HealthConfig) *Health {
	return &Health{cfg: cfg.withDefaults(), targets: make(map[string]*healthState)}
}

// Config is the configuration in force, defaults filled in.
func (h *Health) Config() HealthConfig { return h.cfg }

// Observe records one observation of target at now: ok for a passed probe
// or a live gossip report, !ok for a failed or timed-out one.
func (h *Health) Observe(target string, ok bool, now time.Time) {
	h.ObserveWith(target, ok, now, 0)
}

// ObserveWith is Observe with the target's own failure threshold (a
// GlobalEndpoint's healthCheck.failureThreshold); 0 uses the config's.
func (h *Health) ObserveWith(target string, ok bool, now time.Time, threshold int) {
	if threshold <= 0 {
		threshold = h.cfg.FailureThreshold
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	s := h.targets[target]
	if s == nil {
		s = &healthState{}
		h.targets[target] = s
	}
	if !ok {
		s.failures++
		s.okSince = time.Time{}
		if s.failures >= threshold {
			s.down = true
		}
		return
	}
	s.failures = 0
	if s.down && !s.wasUp {
		// Never seen up: still starting (a replica loading its model),
		// not flapping, so no hold-down to sit out.
		s.down = false
	}
	if s.down && s.okSince.IsZero() {
		s.okSince = now
	}
	h.promote(s, now)
	if !s.down {
		s.wasUp = true
	}
}

// Healthy says whether target is up at now.
func (h *Health) Healthy(target string, now time.Time) bool {
	h.mu.Lock()
	defer h.mu.Unlock()
	s := h.targets[target]
	if s == nil {
		return true
	}
	h.promote(s, now)
	return !s.down
}

// promote brings a down target back once it has succeeded for HoldDown.
func (h *Health) promote(s *healthState, now time.Time) {
	if s.down && !s.okSince.IsZero() && now.Sub(s.okSince) >= h.cfg.HoldDown {
		s.down = false
		s.okSince = time.Time{}
	}
}

// Forget drops what is known of target, e.g. when it leaves the config.
func (h *Health) Forget(target string) {
	h.mu.Lock()
	defer h.mu.Unlock()
	delete(h.targets, target)
}
