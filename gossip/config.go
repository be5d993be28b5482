package gossip

import (
	"errors"
	"fmt"
	"log/slog"
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
		return config{}, errors.New("gossip: Insecure and KeyringFile are both set: a node with a keyring always encrypts; drop Insecure")
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
