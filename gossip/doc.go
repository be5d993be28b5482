// Package gossip carries cluster health and load between Meridian agents
// (one per member cluster) and the global balancers, which both import it,
// over HashiCorp memberlist (SWIM failure detection plus gossip
// dissemination). It is how the data plane learns within seconds that a
// cluster died, without waiting for the hub.
//
// Start joins a node to the gossip pool described by a Config. Every node
// advertises a small Meta (cluster, region, endpoint) in memberlist's node
// metadata and publishes its own NodeState — one ModelDigest per model with
// replicas, requests per second, p95 latency, queue length and health — with
// SetLocalState. States travel three ways: a versioned broadcast queued on a
// memberlist TransmitLimitedQueue and piggybacked on gossip packets (states
// up to 1 KiB, the common case), a direct TCP send to every live member for
// larger states, and memberlist's periodic push/pull anti-entropy, which
// repairs anything lost. Peers returns every other member with its last
// NodeState and its status (alive, suspect, dead, left); an Observer is told
// of every change.
//
// Timing holds memberlist's failure-detection knobs. The presets LAN, WAN
// and Local copy memberlist's DefaultLANConfig, DefaultWANConfig and
// DefaultLocalConfig; Timing.DeadWithin states, for a pool of n nodes, how
// long after a node dies the others can expect to have marked it dead — the
// number to plan failover around — and Timing.MaxDeadWithin the worst case.
//
// Memberlist v0.7.0 reports joins, departures and metadata changes, but not
// suspicion, and the Node values it hands out never carry a status. This
// package therefore derives each peer's status itself: alive on join or
// update, dead on leave, left when the departing member had announced it
// with Node.Leave (a flag in its node metadata), and suspect from the log
// line memberlist writes when this node's probe of the member fails, until
// a probe succeeds again.
//
// # Security
//
// Gossip is encrypted and authenticated with AES-GCM under the keys in
// Config.KeyringFile, one file shared by every agent and balancer of a
// pool (WriteKeyring or `head -c32 /dev/urandom | base64` makes one).
// Memberlist seals every UDP packet and every TCP stream — push/pull
// anti-entropy, joins and direct state sends — with the primary key and
// drops, unread, whatever none of the keys opens: plaintext, garbage, or
// traffic sealed with another key (GossipVerifyIncoming and
// GossipVerifyOutgoing are on). So a peer without the key can neither
// join nor read anything, and cannot declare a member suspect or dead: its
// suspect and dead messages never reach memberlist's state machine. Each
// dropped packet or stream is counted in meridian_gossip_undecryptable_total.
// Memberlist has no callback for these drops, so the package counts the
// lines it logs for them (as it learns of suspicion; see logBridge).
//
// Start refuses to gossip without a keyring on an address other than
// loopback (ErrNoKeyring), unless Config.Insecure says to, in which case
// it logs a warning: on a network, plaintext gossip would hand anyone who
// can reach the port every member's health, and the power to take members
// out of the balancers' answers.
//
// The key is the credential for reading and speaking gossip; it is not a
// credential for changing keys. Every member must hold it, including the
// balancers, which face the internet and are the likeliest to be
// compromised. Memberlist can change a running node's keyring, and earlier
// versions of this package let any member ask every other to install, use
// or remove a key over gossip, so a stolen balancer key could lock the
// agents out of their own pool or install a key of the attacker's choosing.
// Now a node's keys change only from its own keyring file: the file, and
// whoever may write it (the operator; in Kubernetes, whoever may update
// the keyring Secret), is the key-management authority, and nothing that
// arrives over the network can change keys. A node re-reads the file every
// Config.KeyringCheckInterval (10s) and applies a change in memberlist's
// safe order (install new keys, switch primary, remove dropped keys);
// Node.ReloadKeyring does it at once. Key operations arriving over gossip,
// from any sender, are refused and counted as
// meridian_gossip_rejected_total{reason="forbidden"}. This is simpler than
// signing key changes with an admin key, and as strong: an admin signing
// key would have to live somewhere reachable by the rotation tool, while
// the keyring files already are the place that must change, so the
// authority that writes them needs no second credential.
//
// What the key cannot prevent: a holder speaks as a member, and SWIM lets
// any member gossip that another is dead. A live member refutes that as
// soon as it hears it, and balancers act on dead only, never on suspect;
// keep the key off machines that need not gossip.
//
// To rotate a pool's key, change every member's file in three steps,
// waiting after each until every member reports it
// (meridian_gossip_keyring_keys, and meridian_gossip_keyring_primary's
// fingerprint label, which is the first 16 hex digits of the key's
// SHA-256): add the new key as a second line; move it to the first line;
// delete the old line. Members down during a step read their file when
// they start.
//
// Metrics (on Config.Registerer): meridian_gossip_members{state},
// meridian_gossip_events_total{event}, meridian_gossip_rejected_total{reason},
// meridian_gossip_probe_rtt_seconds,
// meridian_gossip_undecryptable_total{transport},
// meridian_gossip_keyring_loads_total{result},
// meridian_gossip_keyring_keys and
// meridian_gossip_keyring_primary{fingerprint}.
//
// Files: config.go (Config, Meta), timing.go (Timing and the presets),
// state.go (NodeState, ModelDigest, Peer, Status, Observer), node.go
// (Node, Start, Peers, SetLocalState), delegate.go (memberlist's callbacks
// and the peer table), wire.go (the versioned, bounded wire format),
// keyring.go (keyring files, their helpers and reloading), metrics.go and
// log.go (memberlist's log into slog).
package gossip
