package gossip

import (
	"github.com/prometheus/client_golang/prometheus"

	"meridian.dev/meridian/internal/metricsreg"
)

// Event label values of meridian_gossip_events_total.
const (
	eventJoin    = "join"    // a member joined (or returned after failing or leaving)
	eventLeave   = "leave"   // a member was declared dead or left
	eventUpdate  = "update"  // a member's Meta or NodeState changed
	eventSuspect = "suspect" // this node's probe of a member failed
)

// Transport label values of meridian_gossip_undecryptable_total.
const (
	transportPacket = "packet" // UDP: probes, gossip, broadcasts
	transportStream = "stream" // TCP: push/pull, joins, direct sends
)

// Result label values of meridian_gossip_keyring_loads_total.
const (
	loadOK    = "ok"
	loadError = "error"
)

// metrics are a node's meridian_gossip_* series.
type metrics struct {
	members        *prometheus.GaugeVec
	events         *prometheus.CounterVec
	rejected       *prometheus.CounterVec
	rtt            prometheus.Histogram
	undecrypt      *prometheus.CounterVec
	keyringLoads   *prometheus.CounterVec
	keyringKeys    prometheus.Gauge
	keyringPrimary *prometheus.GaugeVec

	reg prometheus.Registerer
}

func newMetrics() *metrics {
	m := &metrics{
		members: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "meridian_gossip_members",
			Help: "Members of the gossip pool by status as this node sees them (alive includes this node; dead and left members are remembered for GossipToTheDeadTime).",
		}, []string{"state"}),
		events: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "meridian_gossip_events_total",
			Help: "Membership events seen by this node: join, leave (dead or left), update (Meta or NodeState changed), suspect (this node's probe of a member failed).",
		}, []string{"event"}),
		rejected: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "meridian_gossip_rejected_total",
			Help: "Gossip payloads from other members rejected unread, by reason: malformed, version, too_large, invalid, forbidden (a key operation sent over gossip: keys change only from each node's keyring file).",
		}, []string{"reason"}),
		undecrypt: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "meridian_gossip_undecryptable_total",
			Help: "Gossip UDP packets (transport=packet) and TCP streams (transport=stream) dropped because no key in this node's keyring opens them: plaintext, garbage, or sealed with a key this node does not hold. Rising: a member with a stale keyring, or someone probing the gossip port.",
		}, []string{"transport"}),
		keyringLoads: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "meridian_gossip_keyring_loads_total",
			Help: "Loads of the keyring file, by result (ok, error): at start, whenever the file changes, and on ReloadKeyring. After an error the node keeps the keys it had.",
		}, []string{"result"}),
		keyringKeys: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "meridian_gossip_keyring_keys",
			Help: "Keys in this node's gossip keyring (0 without encryption).",
		}),
		keyringPrimary: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "meridian_gossip_keyring_primary",
			Help: "1 for the fingerprint (first 16 hex digits of the SHA-256) of the key this node encrypts with; a rotation has reached every member when all report the new fingerprint.",
		}, []string{"fingerprint"}),
		rtt: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "meridian_gossip_probe_rtt_seconds",
			Help:    "Round trip of this node's successful direct probes of other members.",
			Buckets: prometheus.ExponentialBuckets(50e-6, 2, 16), // 50µs to ~1.6s
		}),
	}
	for _, s := range statuses {
		m.members.WithLabelValues(string(s))
	}
	for _, e := range []string{eventJoin, eventLeave, eventUpdate, eventSuspect} {
		m.events.WithLabelValues(e)
	}
	for _, r := range rejectReasons {
		m.rejected.WithLabelValues(r)
	}
	for _, t := range []string{transportPacket, transportStream} {
		m.undecrypt.WithLabelValues(t)
	}
	for _, r := range []string{loadOK, loadError} {
		m.keyringLoads.WithLabelValues(r)
	}
	return m
}

func (m *metrics) collectors() []prometheus.Collector {
	return []prometheus.Collector{m.members, m.events, m.rejected, m.rtt, m.undecrypt, m.keyringLoads, m.keyringKeys, m.keyringPrimary}
}

// undecryptable counts a packet or stream that no key opened.
func (m *metrics) undecryptable(transport string) {
	m.undecrypt.WithLabelValues(transport).Inc()
}

// keyringLoaded records a keyring just loaded, primary first.
func (m *metrics) keyringLoaded(keys [][]byte) {
	m.keyringLoads.WithLabelValues(loadOK).Inc()
	m.keyringKeys.Set(float64(len(keys)))
	m.keyringPrimary.Reset()
	m.keyringPrimary.WithLabelValues(Fingerprint(keys[0])).Set(1)
}

// register adds the collectors to reg, all or none.
func (m *metrics) register(reg prometheus.Registerer) error {
	if err := metricsreg.Register(reg, "gossip node", m.collectors()...); err != nil {
		return err
	}
	m.reg = reg
	return nil
}

func (m *metrics) unregister() {
	if m.reg == nil {
		return
	}
	for _, c := range m.collectors() {
		m.reg.Unregister(c)
	}
	m.reg = nil
}
