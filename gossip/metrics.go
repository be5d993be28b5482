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

// metrics are a node's meridian_gossip_* series.
type metrics struct {
	members  *prometheus.GaugeVec
	events   *prometheus.CounterVec
	rejected *prometheus.CounterVec
	rtt      prometheus.Histogram

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
			Help: "Gossip payloads from other members rejected unread, by reason: malformed, version, too_large, invalid.",
		}, []string{"reason"}),
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
	return m
}

func (m *metrics) collectors() []prometheus.Collector {
	return []prometheus.Collector{m.members, m.events, m.rejected, m.rtt}
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
