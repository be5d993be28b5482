package glb

import (
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"meridian.dev/meridian/gossip"
	"meridian.dev/meridian/internal/metricsreg"
)

// healthCollector reports the balancer's health verdicts at scrape time:
// a verdict depends on the clock (hold-downs end without any event), so it
// is read when asked rather than kept in a gauge. It lives with the gossip
// code because "up" needs probes and gossip to agree, and an operator
// asking why a cluster gets no traffic needs to see both side by side.
type healthCollector struct {
	b    *Balancer
	node *gossip.Node // nil without gossip; else b.gossip is set too
}

var (
	targetUpDesc = prometheus.NewDesc("meridian_glb_target_up",
		"1 while a source lets a model serve from a cluster, 0 while it holds it out (failed, or waiting out the hold-down); source is probe (this balancer's HTTP probes) or gossip (the agents' pool). A target is answered only while every source says 1 and the hub calls the cluster Ready or Degraded.",
		[]string{"cluster", "model", "source"}, nil)
	gossipPeersDesc = prometheus.NewDesc("meridian_glb_gossip_peers",
		"Other members of the gossip pool (agents, other balancers) by status as this balancer sees them: alive, suspect, dead, left; dead and left ones are remembered for the preset's GossipToTheDeadTime.",
		[]string{"state"}, nil)
)

func (c *healthCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- targetUpDesc
	if c.node != nil {
		ch <- gossipPeersDesc
		c.b.gossip.downs.Describe(ch)
	}
}

func (c *healthCollector) Collect(ch chan<- prometheus.Metric) {
	now := time.Now()
	up := func(ok bool) float64 {
		if ok {
			return 1
		}
		return 0
	}
	if snap := c.b.src.Current(); snap != nil {
		for _, cl := range snap.Clusters {
			for model, m := range cl.Models {
				ch <- prometheus.MustNewConstMetric(targetUpDesc, prometheus.GaugeValue,
					up(c.b.health.Healthy(m.probe, now)), cl.Name, model, "probe")
				if c.node != nil {
					ch <- prometheus.MustNewConstMetric(targetUpDesc, prometheus.GaugeValue,
						up(c.b.gossip.healthy(cl.Name, model, now)), cl.Name, model, "gossip")
				}
			}
		}
	}
	if c.node == nil {
		return
	}
	counts := map[gossip.Status]int{}
	for _, p := range c.node.Peers() {
		counts[p.Status]++
	}
	for _, s := range []gossip.Status{gossip.StatusAlive, gossip.StatusSuspect, gossip.StatusDead, gossip.StatusLeft} {
		ch <- prometheus.MustNewConstMetric(gossipPeersDesc, prometheus.GaugeValue, float64(counts[s]), string(s))
	}
	c.b.gossip.downs.Collect(ch)
}

// registerHealthMetrics adds the health collector to reg.
func (b *Balancer) registerHealthMetrics(reg prometheus.Registerer, node *gossip.Node) error {
	return metricsreg.Register(reg, "balancer health", &healthCollector{b: b, node: node})
}
