package fleet

import (
	"cmp"
	"fmt"
	"time"

	"meridian.dev/meridian/hub"
)

// Timing is the fleet's timing preset: how fast every component notices a
// failure, and what that costs. Drills print it with their figures.
type Timing struct {
	// Name is the preset's name (Options.Timing).
	Name string
	// Hub is the hub's timing preset (hub.TimingPreset).
	Hub string
	// AgentReport is how often each agent writes its ClusterReport.
	AgentReport time.Duration
	// Gossip is the gossip preset of the agents and the balancer.
	Gossip string
	// ProbeInterval, ProbeTimeout and ProbeFailures are the balancer's
	// health checks of every model endpoint (each GlobalEndpoint's
	// healthCheck): a target is out of answers after ProbeFailures failed
	// probes in a row.
	ProbeInterval, ProbeTimeout time.Duration
	ProbeFailures               int32
}

// Production is what the docs recommend for a fleet in production, and
// the default: the hub's production preset; agents reporting every 10s
// (the agent's default) and gossiping with the wan preset, as regions
// apart do; the balancer probing every endpoint every 500ms with a 500ms
// timeout, out after 2 failures — a region that refuses connections or
// silently drops packets is out of DNS answers and the HTTP front within
// ProbeOutWithin (1.5s), at 2 probes per second per model endpoint per
// balancer.
func Production() Timing {
	return Timing{Name: "production", Hub: hub.TimingProduction, AgentReport: 10 * time.Second, Gossip: "wan",
		ProbeInterval: 500 * time.Millisecond, ProbeTimeout: 500 * time.Millisecond, ProbeFailures: 2}
}

// Timings are the presets by name.
var Timings = map[string]func() Timing{"production": Production}

// ProbeOutWithin bounds how long the balancer keeps answering with a
// target that stopped answering: the next probe starts within one
// interval, and each of ProbeFailures probes takes at most the longer of
// the interval and the timeout (probe rounds do not overlap).
func (t Timing) ProbeOutWithin() time.Duration {
	return t.ProbeInterval + time.Duration(t.ProbeFailures-1)*max(t.ProbeInterval, t.ProbeTimeout) + t.ProbeTimeout
}

// String describes the preset in one line.
func (t Timing) String() string {
	ht, err := hub.TimingPreset(t.Hub)
	hubLine := t.Hub
	if err == nil {
		hubLine = ht.String()
	}
	return fmt.Sprintf("%s — balancer: probe every %s, timeout %s, out after %d failures: within %s, %.0f probes/s per endpoint; gossip %s; agent report every %s; hub %s",
		t.Name, t.ProbeInterval, t.ProbeTimeout, t.ProbeFailures, t.ProbeOutWithin(), float64(time.Second)/float64(t.ProbeInterval), t.Gossip, t.AgentReport, hubLine)
}

// Timing is the preset the fleet runs with.
func (f *Fleet) Timing() Timing { return f.timing }

// Membership is how the fleet's local members joined the hub: push or
// pull.
func (f *Fleet) Membership() string { return cmp.Or(f.opts.Membership, "push") }

// DetectionTarget is the bound the drills hold the hub's detection of a
// lost region to: 2s, the hub's production bound for push members with
// room for a loaded machine; for pull members, the hub's documented bound
// when that is longer (hub.Timing.PullUnreachableWithin: a pull member
// is noticed by its silence).
func (f *Fleet) DetectionTarget() time.Duration {
	target := 2 * time.Second
	if f.Membership() == "pull" {
		if t, err := f.opts.Hub.EffectiveTiming(); err == nil {
			target = max(target, t.PullUnreachableWithin())
		}
	}
	return target
}
