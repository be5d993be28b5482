package autoscaler

import "time"

// burstState is the burst (panic) mode of Knative's KPA, adapted to the HPA
// algorithm: the same replica calculation runs over the short window, and
// when its recommendation is at least threshold times the current count
// burst mode starts. Every further tick over the threshold extends it (as
// KPA moves its panic time forward); it ends once the short-window ratio
// has stayed below the threshold for a whole burst window. KPA waits for a
// whole stable window instead; here the scale-down stabilization window,
// which remembers the burst recommendations, does that job after the burst.
type burstState struct {
	active bool
	// lastOver is the last time the short window was over the threshold.
	lastOver time.Time
}

// update moves the burst state to now, given the short-window proposal.
func (b *burstState) update(cfg *burstConfig, now time.Time, current int32, short proposal) {
	over := current > 0 && short.valid && !short.hold &&
		float64(short.replicas)/float64(current) >= cfg.threshold
	switch {
	case over:
		b.active = true
		b.lastOver = now
	case b.active && now.Sub(b.lastOver) >= cfg.window:
		*b = burstState{}
	}
}
