package gossip

import (
	"fmt"
	"math"
	"time"

	"github.com/hashicorp/memberlist"
)

// Timing holds memberlist's failure-detection and dissemination knobs. The
// presets LAN, WAN and Local copy memberlist's own defaults for those
// environments; DeadWithin turns a Timing into the detection time it gives.
// Every duration must be positive and ProbeTimeout shorter than
// ProbeInterval.
type Timing struct {
	// ProbeInterval is how often each node probes one other member, chosen
	// round-robin over a shuffled list. Lower detects failures sooner at the
	// cost of more packets.
	ProbeInterval time.Duration

	// ProbeTimeout is how long a direct UDP probe waits for an ack before
	// the node asks IndirectChecks other members to probe on its behalf and
	// tries a TCP ping. Set it near the 99th percentile of round-trip time.
	ProbeTimeout time.Duration

	// IndirectChecks is how many members are asked to probe a node that did
	// not answer a direct probe. More makes a false suspicion, caused by a
	// lossy path between two nodes, less likely.
	IndirectChecks int

	// SuspicionMult scales how long a node stays suspect before it is
	// declared dead: SuspicionMult × max(1, log10(n)) × ProbeInterval for a
	// pool of n nodes. Higher gives a slow but living node more time to
	// refute the suspicion.
	SuspicionMult int

	// SuspicionMaxTimeoutMult bounds the suspicion time when other members
	// do not confirm the suspicion: a suspicion starts at SuspicionMaxTimeoutMult
	// times the suspicion timeout and shrinks to the timeout as
	// SuspicionMult-2 other members confirm it.
	SuspicionMaxTimeoutMult int

	// AwarenessMaxMultiplier is how far memberlist stretches this node's
	// probe interval when it suspects that it, rather than its peers, is
	// unhealthy (for example starved of CPU).
	AwarenessMaxMultiplier int

	// GossipInterval is how often a node sends queued broadcasts (membership
	// changes and NodeStates) to GossipNodes random members, beyond those
	// piggybacked on probes.
	GossipInterval time.Duration

	// GossipNodes is how many random members each gossip round reaches.
	GossipNodes int

	// GossipToTheDeadTime is how long a node keeps gossiping to a member it
	// considers dead, giving it a chance to refute. Peers also keeps
	// reporting dead and departed members this long.
	GossipToTheDeadTime time.Duration

	// RetransmitMult scales how many times each node retransmits a
	// broadcast: RetransmitMult × ceil(log10(n+1)) for a pool of n nodes.
	// Every node that receives a new broadcast retransmits it in turn.
	// NodeState broadcasts use at least 4, Serf's default for its user
	// events.
	RetransmitMult int

	// PushPullInterval is how often a node does a full TCP state exchange
	// (membership and every NodeState) with one random member: the
	// anti-entropy that repairs lost broadcasts. Memberlist lengthens it in
	// pools of more than 32 nodes.
	PushPullInterval time.Duration

	// TCPTimeout bounds connecting to a member and each read or write of a
	// TCP exchange (push/pull, join, direct NodeState sends, key operations).
	TCPTimeout time.Duration
}

// LAN returns memberlist's DefaultLANConfig timing, suited to members in
// one data centre or one cloud region: a probe every second, 500ms probe
// timeout, suspicion multiplier 4, push/pull every 30s. DeadWithin gives
// 6.4s for 5 nodes and about 9.6s for 50 (MaxDeadWithin 32.4s and 140s).
func LAN() Timing { return timingFrom(memberlist.DefaultLANConfig()) }

// WAN returns memberlist's DefaultWANConfig timing, suited to members
// spread across regions over the internet, where round trips of hundreds of
// milliseconds and packet loss are normal: a probe every 5s, 3s probe
// timeout, suspicion multiplier 6, push/pull every 60s. DeadWithin gives
// 41s for 5 nodes and about 62.4s for 50 (MaxDeadWithin 221s and 797s). A
// fleet whose agents gossip across regions trades detection speed for
// fewer false alarms here; balancers add active probes for faster
// failover.
func WAN() Timing { return timingFrom(memberlist.DefaultWANConfig()) }

// Local returns memberlist's DefaultLocalConfig timing, suited to members
// on one host or loopback (tests, `meridian up`): a probe every second,
// 200ms probe timeout, suspicion multiplier 3, push/pull every 15s, and
// each broadcast retransmitted only twice per member, so membership news
// in a small pool often waits for push/pull (see DeadWithin).
// DeadWithin gives 5.2s for 5 nodes and about 7.5s for 50 (MaxDeadWithin
// 26.2s and 129s).
func Local() Timing { return timingFrom(memberlist.DefaultLocalConfig()) }

// Presets are the named timings: lan, wan and local.
var Presets = map[string]func() Timing{"lan": LAN, "wan": WAN, "local": Local}

// PresetTiming is the timing a preset names.
func PresetTiming(name string) (Timing, error) {
	p, ok := Presets[name]
	if !ok {
		return Timing{}, fmt.Errorf("gossip preset %q: use lan (one region), wan (across regions) or local (one machine)", name)
	}
	return p(), nil
}

func timingFrom(c *memberlist.Config) Timing {
	return Timing{
		ProbeInterval:           c.ProbeInterval,
		ProbeTimeout:            c.ProbeTimeout,
		IndirectChecks:          c.IndirectChecks,
		SuspicionMult:           c.SuspicionMult,
		SuspicionMaxTimeoutMult: c.SuspicionMaxTimeoutMult,
		AwarenessMaxMultiplier:  c.AwarenessMaxMultiplier,
		GossipInterval:          c.GossipInterval,
		GossipNodes:             c.GossipNodes,
		GossipToTheDeadTime:     c.GossipToTheDeadTime,
		RetransmitMult:          c.RetransmitMult,
		PushPullInterval:        c.PushPullInterval,
		TCPTimeout:              c.TCPTimeout,
	}
}

// withDefaults returns t with every zero field taken from LAN().
func (t Timing) withDefaults() Timing {
	d := LAN()
	setDur := func(v *time.Duration, def time.Duration) {
		if *v == 0 {
			*v = def
		}
	}
	setInt := func(v *int, def int) {
		if *v == 0 {
			*v = def
		}
	}
	setDur(&t.ProbeInterval, d.ProbeInterval)
	setDur(&t.ProbeTimeout, d.ProbeTimeout)
	setInt(&t.IndirectChecks, d.IndirectChecks)
	setInt(&t.SuspicionMult, d.SuspicionMult)
	setInt(&t.SuspicionMaxTimeoutMult, d.SuspicionMaxTimeoutMult)
	setInt(&t.AwarenessMaxMultiplier, d.AwarenessMaxMultiplier)
	setDur(&t.GossipInterval, d.GossipInterval)
	setInt(&t.GossipNodes, d.GossipNodes)
	setDur(&t.GossipToTheDeadTime, d.GossipToTheDeadTime)
	setInt(&t.RetransmitMult, d.RetransmitMult)
	setDur(&t.PushPullInterval, d.PushPullInterval)
	setDur(&t.TCPTimeout, d.TCPTimeout)
	return t
}

func (t Timing) validate() error {
	for _, d := range []struct {
		name string
		v    time.Duration
	}{
		{"ProbeInterval", t.ProbeInterval}, {"ProbeTimeout", t.ProbeTimeout},
		{"GossipInterval", t.GossipInterval}, {"GossipToTheDeadTime", t.GossipToTheDeadTime},
		{"PushPullInterval", t.PushPullInterval}, {"TCPTimeout", t.TCPTimeout},
	} {
		if d.v < 0 {
			return fmt.Errorf("timing: %s is negative (%s)", d.name, d.v)
		}
	}
	for _, i := range []struct {
		name string
		v    int
	}{
		{"IndirectChecks", t.IndirectChecks}, {"SuspicionMult", t.SuspicionMult},
		{"SuspicionMaxTimeoutMult", t.SuspicionMaxTimeoutMult},
		{"AwarenessMaxMultiplier", t.AwarenessMaxMultiplier},
		{"GossipNodes", t.GossipNodes}, {"RetransmitMult", t.RetransmitMult},
	} {
		if i.v < 0 {
			return fmt.Errorf("timing: %s is negative (%d)", i.name, i.v)
		}
	}
	if t.ProbeTimeout >= t.ProbeInterval {
		return fmt.Errorf("timing: ProbeTimeout (%s) must be shorter than ProbeInterval (%s)", t.ProbeTimeout, t.ProbeInterval)
	}
	return nil
}

// SuspicionTimeout is how long a member stays suspect before it is declared
// dead in a pool of n nodes once enough other members confirm the
// suspicion, computed exactly as memberlist does (suspicionTimeout in its
// util.go):
//
//	SuspicionMult × max(1, log10(max(1, n))) × ProbeInterval
//
// The outer max means pools of up to 10 nodes all get SuspicionMult probe
// intervals; the time grows with the logarithm of the pool beyond that, as
// gossip needs about log(n) rounds to tell everyone.
func (t Timing) SuspicionTimeout(n int) time.Duration {
	t = t.withDefaults()
	scale := math.Max(1, math.Log10(math.Max(1, float64(n))))
	// memberlist multiplies by 1000 to keep some precision in integer maths.
	return time.Duration(t.SuspicionMult) * time.Duration(scale*1000) * t.ProbeInterval / 1000
}

// DeadWithin is how long after a node dies abruptly the other members of a
// pool of n nodes (the dead one included) can expect to have marked it
// dead. It adds up memberlist's steps:
//
//	DeadWithin(n) = ProbeInterval        // a survivor's probe reaches the dead node
//	              + ProbeInterval        // that probe fails: ProbeTimeout for the direct
//	                                     // ack, then indirect and TCP probes until the
//	                                     // interval ends; the prober marks it suspect
//	              + SuspicionTimeout(n)  // SuspicionMult × max(1, log10(max(1, n))) × ProbeInterval
//	              + GossipInterval × ceil(log_GossipNodes(n))  // the dead message reaches all
//
// The first term assumes that one of the n−1 survivors probes the dead
// node in the first interval after its death. Each survivor probes one
// member per interval, in its own shuffled round-robin order, so that
// happens with probability at least 1−1/e (about 2/3); every interval that
// passes without adds a ProbeInterval (three extra intervals happen in
// fewer than one failure in twenty).
//
// The suspicion timer starts at SuspicionMaxTimeoutMult × SuspicionTimeout(n)
// and drops to SuspicionTimeout(n) once k = SuspicionMult−2 other members
// confirm the suspicion with their own failed probes (in pools too small to
// provide k confirmations, n−2 < k, it is SuspicionTimeout(n) from the
// start); in a healthy pool the confirmations arrive in time.
//
// The last term assumes the verdict reaches every member. Memberlist
// retransmits each suspect and dead message RetransmitMult ×
// ceil(log10(n+1)) times per member; with Local's RetransmitMult of 2 in a
// pool of 5, a member occasionally (about one failure in thirty in this
// package's tests) hears neither the confirmations nor the verdict and
// waits out its own suspicion timer, up to MaxDeadWithin. LAN's 4 makes
// that very rare.
//
// On loopback with Local timing and 5 nodes (DeadWithin 5.2s) the
// package's tests measure about 5.0s, or 6.0s and 7.0s when one or two
// intervals passed before a survivor probed the dead node.
//
// A member that leaves with Node.Leave is reported left as soon as its
// announcement spreads, in about a gossip round.
func (t Timing) DeadWithin(n int) time.Duration {
	t = t.withDefaults()
	return 2*t.ProbeInterval + t.SuspicionTimeout(n) + t.disseminate(n)
}

// MaxDeadWithin is the longest detection can take while the survivors keep
// probing at ProbeInterval, however unlucky the probe order and however
// few confirmations arrive:
//
//	MaxDeadWithin(n) = (2n−3) × ProbeInterval   // a survivor probes every member once per
//	                                            // round of n−1 intervals, reshuffling
//	                                            // between rounds
//	                 + ProbeInterval            // the failing probe
//	                 + SuspicionMaxTimeoutMult × SuspicionTimeout(n)  // no confirmations
//	                 + GossipInterval × ceil(log_GossipNodes(n))
//
// Survivors that find themselves unhealthy (starved of CPU, dropping
// packets) stretch their probe interval up to AwarenessMaxMultiplier times,
// and then even this bound stretches.
func (t Timing) MaxDeadWithin(n int) time.Duration {
	t = t.withDefaults()
	wait := time.Duration(max(1, 2*n-3)) * t.ProbeInterval
	return wait + t.ProbeInterval + time.Duration(t.SuspicionMaxTimeoutMult)*t.SuspicionTimeout(n) + t.disseminate(n)
}

// disseminate is the time for a broadcast to reach n nodes when every
// gossip round multiplies the informed nodes by GossipNodes.
func (t Timing) disseminate(n int) time.Duration {
	if n <= 1 {
		return 0
	}
	rounds := n - 1
	if t.GossipNodes > 1 {
		rounds = int(math.Ceil(math.Log(float64(n)) / math.Log(float64(t.GossipNodes))))
	}
	return time.Duration(rounds) * t.GossipInterval
}
