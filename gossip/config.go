package gossip

import (
	"errors"
	"fmt"
	"log/slog"
	"math"
	"net"
	"os"
	"time"

	"github.com/hashicorp/memberlist"
	"github.com/prometheus/client_golang/prometheus"
)

// DefaultPort is memberlist's conventional gossip port, used for both UDP
// and TCP. Config.BindPort does not default to it (zero means an ephemeral
// port); set it explicitly in production so that Join addresses without a
// port work.
const DefaultPort = 7946

// MaxMetaBytes is the most bytes the encoded Meta may take: memberlist's
// limit on node metadata (memberlist.MetaMaxSize).
const MaxMetaBytes = memberlist.MetaMaxSize

// DefaultKeyringCheckInterval is how often a node re-reads its keyring
// file when Config.KeyringCheckInterval is zero.
const DefaultKeyringCheckInterval = 10 * time.Second

// ErrNoKeyring is returned by Start for a node that would gossip in
// plaintext on a non-loopback address: Config.KeyringFile is empty and
// Config.Insecure is not set.
var ErrNoKeyring = errors.New("gossip on a non-loopback address needs a keyring")

// ErrMetaTooLarge is returned by Start when Config.Meta does not fit in
// memberlist's node metadata.
var ErrMetaTooLarge = errors.New("node meta too large")

// Config describes one gossip node. The zero value of every field is
// usable except where a field says otherwise.
type Config struct {
	// NodeName is this node's name in the gossip pool. It must be unique
	// across the pool: a second node with the same name and a different
	// address is refused by memberlist. An agent would use its cluster's
	// name. If empty, the host name is used, as memberlist does.
	NodeName string

	// BindAddr is the IP address to listen on for both UDP and TCP gossip.
	// If empty, all interfaces ("0.0.0.0") are used, and memberlist
	// advertises the first private address it finds.
	BindAddr string

	// BindPort is the port to listen on for both UDP and TCP. Zero picks an
	// ephemeral port (tests use this with BindAddr 127.0.0.1); Node.Addr
	// reports the port chosen. Production deployments set DefaultPort.
	BindPort int

	// AdvertiseAddr is the IP address other members use to reach this
	// node, for NAT or when listening on all interfaces. If empty, it is
	// derived from BindAddr as described there.
	AdvertiseAddr string

	// AdvertisePort is the port other members use to reach this node. If
	// zero it is BindPort. Memberlist ignores it when BindPort is zero and
	// advertises the ephemeral port it bound.
	AdvertisePort int

	// Join lists existing members to join at Start, as "host:port" (or
	// "host", meaning BindPort). Start succeeds if at least one is reached
	// and fails if none is. Empty means this node starts a new pool, which
	// others join.
	Join []string

	// Meta is what this node tells every member about itself in
	// memberlist's node metadata: the member cluster, its region and the
	// endpoint that serves its traffic. It is encoded compactly and must
	// fit in MaxMetaBytes (512) bytes together with a version byte, a
	// length byte or two per field and a flags byte; Start returns an error
	// wrapping ErrMetaTooLarge otherwise. Meta is fixed for the node's
	// lifetime.
	Meta Meta

	// KeyringFile is the path of a file holding the gossip encryption keys,
	// one per line, each the standard base64 encoding of 16, 24 or 32 random
	// bytes (AES-128, AES-192 or AES-256); WriteKeyring makes one. The
	// first key is the primary: it encrypts everything this node sends,
	// UDP packets and TCP streams (push/pull, joins, direct sends) alike;
	// all keys are tried when decrypting, and whatever no key opens is
	// dropped. Empty lines and lines starting with '#' are ignored. The
	// node re-reads the file every KeyringCheckInterval and applies any
	// change: the file is the only way to change a node's keys (see the
	// package documentation). Required unless both BindAddr and
	// AdvertiseAddr are loopback addresses or Insecure is set.
	KeyringFile string

	// KeyringCheckInterval is how often the node re-reads KeyringFile for
	// changes, such as a Kubernetes Secret update. Zero means
	// DefaultKeyringCheckInterval; negative turns the check off, leaving
	// Node.ReloadKeyring as the only way to apply an edited file.
	KeyringCheckInterval time.Duration

	// Insecure lets a node without KeyringFile gossip on a non-loopback
	// address, in plaintext and without authentication: anyone who can
	// reach it reads every member's health and load, and can declare any
	// member dead. For debugging on a network you trust; Start logs a
	// warning. It cannot be combined with KeyringFile.
	Insecure bool

	// Timing holds memberlist's probe, suspicion and gossip intervals. The
	// zero value means LAN(); a field left at zero takes LAN()'s value.
	Timing Timing

	// Observer, if set, is told of every change to a peer: join, status,
	// metadata or NodeState. See Observer for how it is called.
	Observer Observer

	// Logger receives this package's logs and memberlist's own log lines,
	// which are bridged into it at debug level with the attribute
	// memberlist_level holding memberlist's level (DEBUG, INFO, WARN, ERR).
	// If nil, logs are discarded.
	Logger *slog.Logger

	// Registerer is where the node registers its meridian_gossip_*
	// metrics; Shutdown unregisters them. Use a registry per node when a
	// process runs several. If nil, metrics are kept but not exported.
	Registerer prometheus.Registerer
}

// Meta is the static description of a node carried in memberlist's node
// metadata, so that every member knows it from the moment the node joins.
type Meta struct {
	// Cluster is the name of the member cluster this agent runs in, empty
	// for the hub and global balancers.
	Cluster string
	// Region is the cluster's region, for example "eu-west-1".
	Region string
	// Endpoint is where the cluster's inference traffic is served, as a URL
	// or host:port, for balancers that steer users to it.
	Endpoint string
}

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

// config is a Config with defaults applied.
type config struct {
	Config
}

func (c Config) complete() (config, error) {
	if c.NodeName == "" {
		h, err := os.Hostname()
		if err != nil {
			return config{}, fmt.Errorf("node name not set and host name unknown: %w", err)
		}
		c.NodeName = h
	}
	if len(c.NodeName) > maxString {
		return config{}, fmt.Errorf("node name is %d bytes, the most is %d", len(c.NodeName), maxString)
	}
	if c.BindAddr == "" {
		c.BindAddr = "0.0.0.0"
	}
	if net.ParseIP(c.BindAddr) == nil {
		return config{}, fmt.Errorf("bind address %q is not an IP address", c.BindAddr)
	}
	if c.AdvertiseAddr != "" && net.ParseIP(c.AdvertiseAddr) == nil {
		return config{}, fmt.Errorf("advertise address %q is not an IP address", c.AdvertiseAddr)
	}
	if c.BindPort < 0 || c.BindPort > 65535 || c.AdvertisePort < 0 || c.AdvertisePort > 65535 {
		return config{}, fmt.Errorf("ports must be in 0..65535 (bind %d, advertise %d)", c.BindPort, c.AdvertisePort)
	}
	if c.AdvertisePort == 0 {
		c.AdvertisePort = c.BindPort
	}
	if c.Insecure && c.KeyringFile != "" {
		return config{}, errors.New("Insecure and KeyringFile are both set: a node with a keyring always encrypts; drop Insecure")
	}
	if c.KeyringFile == "" && !c.Insecure && !c.LoopbackOnly() {
		return config{}, fmt.Errorf("%w: %s would carry every member's health in plaintext, and anyone reaching it could declare members dead; "+
			"give every member the same keyring file (Config.KeyringFile; make one with gossip.WriteKeyring, or `head -c32 /dev/urandom | base64 > gossip.keys`), "+
			"or set Config.Insecure on a network you trust", ErrNoKeyring, c.publicAddr())
	}
	if c.KeyringCheckInterval == 0 {
		c.KeyringCheckInterval = DefaultKeyringCheckInterval
	}
	c.Timing = c.Timing.withDefaults()
	if err := c.Timing.validate(); err != nil {
		return config{}, err
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	// Check with the leaving flag set, the form Leave advertises: the
	// flag is one byte either way.
	meta := encodeMeta(nodeMeta{Meta: c.Meta})
	if len(meta) > MaxMetaBytes {
		return config{}, fmt.Errorf("%w: Meta encodes to %d bytes, memberlist allows %d; shorten Cluster (%d bytes), Region (%d) or Endpoint (%d)",
			ErrMetaTooLarge, len(meta), MaxMetaBytes, len(c.Meta.Cluster), len(c.Meta.Region), len(c.Meta.Endpoint))
	}
	return config{Config: c}, nil
}

// LoopbackOnly says whether the node listens and advertises on loopback
// addresses only, where nothing off this machine can reach it: the one
// place it may gossip in plaintext without Insecure.
func (c Config) LoopbackOnly() bool {
	return net.ParseIP(c.BindAddr).IsLoopback() && (c.AdvertiseAddr == "" || net.ParseIP(c.AdvertiseAddr).IsLoopback())
}

// publicAddr names the address that is not loopback, for errors.
func (c Config) publicAddr() string {
	if !net.ParseIP(c.BindAddr).IsLoopback() {
		return "bind address " + c.BindAddr
	}
	return "advertise address " + c.AdvertiseAddr
}

// memberlistConfig maps c onto memberlist's configuration.
func (c config) memberlistConfig() *memberlist.Config {
	mc := memberlist.DefaultLANConfig()
	mc.Name = c.NodeName
	mc.BindAddr = c.BindAddr
	mc.BindPort = c.BindPort
	mc.AdvertiseAddr = c.AdvertiseAddr
	mc.AdvertisePort = c.AdvertisePort

	t := c.Timing
	mc.ProbeInterval = t.ProbeInterval
	mc.ProbeTimeout = t.ProbeTimeout
	mc.IndirectChecks = t.IndirectChecks
	mc.SuspicionMult = t.SuspicionMult
	mc.SuspicionMaxTimeoutMult = t.SuspicionMaxTimeoutMult
	mc.AwarenessMaxMultiplier = t.AwarenessMaxMultiplier
	mc.GossipInterval = t.GossipInterval
	mc.GossipNodes = t.GossipNodes
	mc.GossipToTheDeadTime = t.GossipToTheDeadTime
	mc.RetransmitMult = t.RetransmitMult
	mc.PushPullInterval = t.PushPullInterval
	mc.TCPTimeout = t.TCPTimeout

	// With a keyring, send nothing in plaintext and accept nothing that
	// no key opens, on UDP and TCP alike (memberlist's defaults, stated
	// here because the pool's security rests on them).
	mc.GossipVerifyIncoming = true
	mc.GossipVerifyOutgoing = true

	mc.DelegateProtocolVersion = wireVersion
	mc.DelegateProtocolMin = wireVersion
	mc.DelegateProtocolMax = wireVersion
	return mc
}
