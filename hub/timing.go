package hub

import (
	"fmt"
	"strings"
	"time"
)

// Timing is how fast the hub notices a member it cannot reach and acts on
// it, and what that costs in probe traffic. The presets name the
// environments they suit, as memberlist's DefaultLANConfig and
// DefaultWANConfig do; UnreachableWithin turns a Timing into the detection
// bound it gives and ProbeReadsPerSecond into its cost.
type Timing struct {
	// Name is the preset's name, as `meridian hub --timing` takes it.
	Name string
	// HealthPeriod is how often every member's ClusterReport is read.
	HealthPeriod time.Duration
	// ProbeTimeout bounds one read of a member's API server: a member
	// that silently drops packets holds a probe this long.
	ProbeTimeout time.Duration
	// FailureThreshold is how many probes in a row must fail before a
	// member is Unreachable, so one lost request does not move replicas.
	FailureThreshold int
	// HeartbeatGrace is how old an agent's heartbeat may be before its
	// cluster is Unreachable even though its API server answers (three of
	// the agent's default 10s report periods).
	HeartbeatGrace time.Duration
	// PullGrace is how long a pull member's report on the hub may go
	// unchanged, by the hub's own clock, before the member is
	// Unreachable: four of its agent's report writes (--hub-sync-period,
	// 500ms by default), so one slow write on a loaded member moves
	// nothing. A pull member is lost within PullUnreachableWithin.
	PullGrace time.Duration
	// ResyncPeriod is how often every InferenceModel is placed again even
	// when nothing it depends on changed: a safety net, since a change of
	// a member's health re-places the models on it at once.
	ResyncPeriod time.Duration
}

// Names of the timing presets.
const (
	TimingProduction = "production"
	TimingWAN        = "wan"
)

// Production is the default timing, for members whose API servers answer
// the hub within a few hundred milliseconds (the hub in one cloud region,
// members on the same continent or across one ocean): a probe every 500ms
// with a 500ms timeout, Unreachable after 2 failed probes. A member whose
// API server refuses connections or silently drops packets is Unreachable
// within 1.5s (UnreachableWithin); it costs 2 reads of the member's
// ClusterReport per second per member.
func Production() Timing {
	return Timing{Name: TimingProduction, HealthPeriod: 500 * time.Millisecond, ProbeTimeout: 500 * time.Millisecond,
		FailureThreshold: 2, HeartbeatGrace: 30 * time.Second, PullGrace: 2 * time.Second, ResyncPeriod: 30 * time.Second}
}

// WAN is for members far from the hub or behind lossy links, where a
// round trip can take a second and single requests are lost: a probe every
// 2s with a 2s timeout, Unreachable after 3 failed probes. Detection is
// within 8s; it costs 0.5 reads per second per member.
func WAN() Timing {
	return Timing{Name: TimingWAN, HealthPeriod: 2 * time.Second, ProbeTimeout: 2 * time.Second,
		FailureThreshold: 3, HeartbeatGrace: time.Minute, PullGrace: 8 * time.Second, ResyncPeriod: time.Minute}
}

// TimingPresets are every preset, the default first.
func TimingPresets() []Timing { return []Timing{Production(), WAN()} }

// TimingPreset returns the preset called name; "" is Production.
func TimingPreset(name string) (Timing, error) {
	if name == "" {
		return Production(), nil
	}
	var names []string
	for _, t := range TimingPresets() {
		if t.Name == name {
			return t, nil
		}
		names = append(names, t.Name)
	}
	return Timing{}, fmt.Errorf("unknown hub timing preset %q: use one of %s", name, strings.Join(names, ", "))
}

// UnreachableWithin is the longest a member whose API server stops
// answering — refusing connections, or dropping packets so that every
// probe runs out its ProbeTimeout — stays anything but Unreachable in the
// hub:
//
//	UnreachableWithin = HealthPeriod                          // the next probe starts
//	                  + (FailureThreshold−1) × max(HealthPeriod, ProbeTimeout)
//	                  + ProbeTimeout                          // the last one times out
//
// Probes of all members run together each round and a round starts no
// sooner than the previous one ended, so rounds are max(HealthPeriod,
// ProbeTimeout) apart while a probe hangs. A refused connection fails at
// once and is detected sooner, by up to FailureThreshold × ProbeTimeout.
func (t Timing) UnreachableWithin() time.Duration {
	return t.HealthPeriod + time.Duration(t.FailureThreshold-1)*max(t.HealthPeriod, t.ProbeTimeout) + t.ProbeTimeout
}

// PullUnreachableWithin is the longest a pull member whose agent stops
// syncing stays anything but Unreachable: the hub sees its last write up
// to a HealthPeriod late, waits PullGrace from then, and notices at the
// next probe round:
//
//	PullUnreachableWithin = HealthPeriod + PullGrace + HealthPeriod
func (t Timing) PullUnreachableWithin() time.Duration {
	return 2*t.HealthPeriod + t.PullGrace
}

// ProbeReadsPerSecond is the probe traffic per member: one GET of its
// ClusterReport (a few KiB) each HealthPeriod. The hub's own API server
// gets a Cluster status patch only when something in it changed.
func (t Timing) ProbeReadsPerSecond() float64 { return float64(time.Second) / float64(t.HealthPeriod) }

// String describes the timing in one line, for logs and progress output.
func (t Timing) String() string {
	return fmt.Sprintf("%s: probe every %s, timeout %s, Unreachable after %d failed probes: within %s; %.1f reads/s per member",
		cmpName(t.Name), t.HealthPeriod, t.ProbeTimeout, t.FailureThreshold, t.UnreachableWithin(), t.ProbeReadsPerSecond())
}

func cmpName(n string) string {
	if n == "" {
		return "custom"
	}
	return n
}

// EffectiveTiming is the timing o runs with: the preset o.Timing names
// (Production when empty), with any duration or threshold o sets
// explicitly in its place. When o changes the preset, the Name says so.
func (o Options) EffectiveTiming() (Timing, error) {
	t, err := TimingPreset(o.Timing)
	if err != nil {
		return Timing{}, err
	}
	preset := t
	set := func(v *time.Duration, o time.Duration) {
		if o > 0 {
			*v = o
		}
	}
	set(&t.HealthPeriod, o.HealthPeriod)
	set(&t.ProbeTimeout, o.ProbeTimeout)
	set(&t.HeartbeatGrace, o.HeartbeatGrace)
	set(&t.PullGrace, o.PullGrace)
	set(&t.ResyncPeriod, o.ResyncPeriod)
	if o.FailureThreshold > 0 {
		t.FailureThreshold = o.FailureThreshold
	}
	if t != preset {
		t.Name = preset.Name + " (modified)"
	}
	return t, nil
}
