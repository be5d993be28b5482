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
// Gossip is encrypted with AES-GCM when Config.KeyringFile names a file of
// base64 keys; a node without a key the pool uses cannot join it.
// Node.RotateKey rotates the key across the running pool in memberlist's
// safe order (install everywhere, use everywhere, remove everywhere), and
// Node.ReloadKeyring applies the same steps from an edited keyring file.
//
// Metrics (on Config.Registerer): meridian_gossip_members{state},
// meridian_gossip_events_total{event}, meridian_gossip_rejected_total{reason}
// and meridian_gossip_probe_rtt_seconds.
//
// Files: config.go (Config, Meta, Timing and the presets), state.go
// (NodeState, ModelDigest, Peer, Status, Observer), node.go (Node, Start,
// Peers, SetLocalState), delegate.go (memberlist's callbacks and the peer
// table), wire.go (the versioned, bounded wire format), keyring.go (keys
// and rotation), metrics.go and log.go (memberlist's log into slog).
package gossip
