package glb

import (
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"meridian.dev/meridian/glb/steer"
	"meridian.dev/meridian/gossip"
)

// Reasons gossip took a target down: the reason label of
// meridian_glb_gossip_marked_down_total.
const (
	downDead    = "dead"    // the cluster's agent stopped answering
	downUnready = "unready" // a model's digest says unhealthy, or neither a ready replica nor scaled to zero
)

// gossipHealth turns what the agents gossip into a verdict per cluster and
// per model, kept apart from the probes' verdict (Balancer.health) so that
// neither can vouch for a target the other sees failing: a target serves
// only while both say up, and either alone takes it out.
//
// By the status of a cluster's agent node:
//   - dead: every endpoint of the cluster is down at once. SWIM has
//     already confirmed the failure through other members and a suspicion
//     timeout, so there is no threshold to wait for; this is the signal
//     that takes a lost region out within seconds, while probes may still
//     be timing out.
//   - left: no opinion. An agent announces its leave when it is stopped on
//     purpose (a rolling upgrade) while its replicas keep serving; the
//     probes and the hub judge the cluster until the agent is back.
//   - suspect: nothing changes. A suspicion is one member's failed probe,
//     often refuted within a probe interval (a pause, a lost packet, or the
//     balancer's own network); acting on it would cost a healthy region a
//     whole hold-down and push its load elsewhere. A real failure becomes
//     dead within the suspicion timeout, and this balancer's HTTP probes
//     run all along.
//   - alive: the cluster may serve again, but only after the hold-down of
//     uninterrupted health (steer.Health), as for probes. Each model the
//     digests list is ready while any digest of it is Healthy with a ready
//     replica or scaled to zero (the agent's activator holds its requests
//     until a replica starts; steer ranks such a cluster after the warm
//     ones), and down at once otherwise. A model the digests do not list
//     gets no gossip verdict (the hub and the probes decide): an agent that
//     has published nothing yet, or an older agent, must not black-hole
//     traffic.
//
// Gossip fails open: while this balancer sees no live agent at all, it is
// more likely cut off from the pool (its own network, a firewall, timing
// too tight for its distance) than every region dead, so gossip's
// verdicts are set aside and the hub and the probes decide alone.
type gossipHealth struct {
	// health holds the verdicts: the key is the cluster name for the
	// cluster, modelKey(cluster, model) for a model in it.
	health *steer.Health
	log    *slog.Logger
	next   gossip.Observer // the caller's own Observer, if any
	downs  *prometheus.CounterVec

	// isolated is true while no agent node is alive or suspect.
	isolated atomic.Bool

	mu     sync.Mutex
	nodes  map[string]gossip.Peer     // agent nodes by node name, as last reported
	models map[string]map[string]bool // cluster -> models its digests listed
	down   map[string]bool            // clusters gossip has taken out
}

// newGossipHealth returns verdicts that come back after hc's hold-down.
// The failure threshold is always one: see gossipHealth.
func newGossipHealth(hc steer.HealthConfig, log *slog.Logger, next gossip.Observer) *gossipHealth {
	holdDown := hc.HoldDown
	if holdDown == 0 {
		holdDown = -1 // steer.HealthConfig's "none" (zero would mean the default)
	}
	return &gossipHealth{
		health: steer.NewHealth(steer.HealthConfig{FailureThreshold: 1, HoldDown: holdDown}),
		log:    log,
		next:   next,
		downs: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "meridian_glb_gossip_marked_down_total",
			Help: "Times gossip took a target out of answers, by reason: dead (a cluster's agent; all its models) or unready (one model's digest said unhealthy, or neither a ready replica nor scaled to zero).",
		}, []string{"reason"}),
		nodes:  make(map[string]gossip.Peer),
		models: make(map[string]map[string]bool),
		down:   make(map[string]bool),
	}
}

// healthy says whether gossip lets the model serve from the cluster at now.
// Without gossip (a nil receiver) it always does.
func (g *gossipHealth) healthy(cluster, model string, now time.Time) bool {
	if g == nil || g.isolated.Load() {
		return true
	}
	return g.health.Healthy(cluster, now) && g.health.Healthy(modelKey(cluster, model), now)
}

// PeerUpdated implements gossip.Observer.
func (g *gossipHealth) PeerUpdated(p gossip.Peer) {
	g.observe(p)
	if g.next != nil {
		g.next.PeerUpdated(p)
	}
}

// PeerLeft implements gossip.Observer.
func (g *gossipHealth) PeerLeft(p gossip.Peer) {
	g.observe(p)
	if g.next != nil {
		g.next.PeerLeft(p)
	}
}

// observe records p and judges its cluster again. Both Observer methods
// come here: the status in p, not the method, says what happened.
func (g *gossipHealth) observe(p gossip.Peer) {
	cluster := p.Meta.Cluster
	if cluster == "" {
		return // another balancer or the hub: no endpoints to judge
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	if old, ok := g.nodes[p.Name]; ok && old.Meta.Cluster != cluster {
		// The node restarted for another cluster; judge the old one without it.
		delete(g.nodes, p.Name)
		g.judge(old.Meta.Cluster, time.Now())
	}
	g.nodes[p.Name] = p
	g.judge(cluster, time.Now())
	live := false
	for _, n := range g.nodes {
		live = live || n.Status == gossip.StatusAlive || n.Status == gossip.StatusSuspect
	}
	if was := g.isolated.Swap(!live); was != !live {
		if live {
			g.log.Info("gossip: agents are reachable again; their verdicts count")
		} else {
			g.log.Warn("gossip: no live agent in the pool; ignoring gossip until one is back (this balancer may be cut off from it)")
		}
	}
}

// judge applies what the cluster's nodes say. g.mu is held.
func (g *gossipHealth) judge(cluster string, now time.Time) {
	var live []gossip.Peer
	dead := false
	for _, p := range g.nodes {
		if p.Meta.Cluster != cluster {
			continue
		}
		switch p.Status {
		case gossip.StatusAlive, gossip.StatusSuspect:
			live = append(live, p)
		case gossip.StatusDead:
			dead = true
		}
	}
	if len(live) == 0 && !dead {
		return // left on purpose: no opinion until it is back
	}
	if len(live) == 0 {
		if g.health.Healthy(cluster, now) {
			g.downs.WithLabelValues(downDead).Inc()
		}
		g.health.Observe(cluster, false, now)
		if !g.down[cluster] {
			g.down[cluster] = true
			g.log.Warn("gossip: cluster's agent is dead; its endpoints are out of answers now", "cluster", cluster)
		}
		return
	}
	g.health.Observe(cluster, true, now)
	if g.down[cluster] {
		delete(g.down, cluster)
		g.log.Info("gossip: cluster's agent is alive again; it serves once healthy for the hold-down",
			"cluster", cluster, "hold_down", g.health.Config().HoldDown)
	}
	g.judgeModels(cluster, live, now)
}

// digestReady says a digest lets its model serve from its cluster: healthy,
// with a ready replica or scaled to zero behind the agent's activator.
func digestReady(m gossip.ModelDigest) bool {
	return m.Healthy && (m.ReadyReplicas > 0 || m.ScaledToZero)
}

// judgeModels applies the live nodes' model digests. g.mu is held.
func (g *gossipHealth) judgeModels(cluster string, live []gossip.Peer, now time.Time) {
	ready := map[string]bool{}
	for _, p := range live {
		if !p.HasState {
			continue
		}
		for _, m := range p.State.Models {
			ready[m.Model] = ready[m.Model] || digestReady(m)
		}
	}
	for model, ok := range ready {
		key := modelKey(cluster, model)
		if !ok && g.health.Healthy(key, now) {
			g.downs.WithLabelValues(downUnready).Inc()
			g.log.Info("gossip: model neither ready nor scaled to zero in cluster; out of answers", "cluster", cluster, "model", model)
		}
		g.health.Observe(key, ok, now)
	}
	for model := range g.models[cluster] {
		if _, listed := ready[model]; !listed {
			g.health.Forget(modelKey(cluster, model))
		}
	}
	g.models[cluster] = ready
}
