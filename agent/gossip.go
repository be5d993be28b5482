package agent

import (
	"cmp"
	"context"
	"fmt"
	"math"
	"time"

	"meridian.dev/meridian/gossip"
)

// gossipLoop joins the gossip pool and publishes this cluster's model
// health and load every SyncPeriod, so peers (and later the hub and the
// balancers) learn of changes and deaths in seconds rather than at the
// next ClusterReport heartbeat. It leaves the pool when ctx ends (unless
// GossipCrashOnStop).
func (a *Agent) gossipLoop(ctx context.Context) error {
	cfg := *a.opts.Gossip
	cfg.NodeName = cmp.Or(cfg.NodeName, a.opts.ClusterName)
	cfg.Meta = gossip.Meta{Cluster: a.opts.ClusterName, Region: string(a.opts.Identity.Region), Endpoint: a.opts.Identity.Endpoint}
	if cfg.Logger == nil {
		cfg.Logger = a.log
	}
	if cfg.Registerer == nil {
		cfg.Registerer = a.opts.Registry
	}
	// Peers may be down when this agent starts: start alone and keep
	// trying to join, rather than fail the agent over it.
	seeds := cfg.Join
	cfg.Join = nil
	node, err := gossip.Start(ctx, cfg)
	if err != nil {
		return fmt.Errorf("starting gossip: %w", err)
	}
	a.log.Info("gossip started", "node", node.Name(), "addr", node.Addr())
	defer func() {
		if !a.opts.GossipCrashOnStop {
			if err := node.Leave(5 * time.Second); err != nil {
				a.log.Warn("leaving the gossip pool", "err", err)
			}
		}
		_ = node.Shutdown()
	}()
	t := time.NewTicker(a.opts.SyncPeriod)
	defer t.Stop()
	joined := len(seeds) == 0
	for {
		if !joined {
			if n, err := node.Join(ctx, seeds...); err != nil {
				a.log.Warn("joining the gossip pool; will retry", "seeds", seeds, "err", err)
			} else {
				joined = true
				a.log.Info("joined the gossip pool", "via", n)
			}
		}
		if err := node.SetLocalState(a.gossipState()); err != nil {
			a.log.Warn("publishing gossip state", "err", err)
		}
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
	}
}

// gossipState is one digest per model. Healthy means the model can take
// traffic here: a ready replica, or scaled to zero with the activator
// holding requests until one is ready (ScaledToZero tells the balancers to
// prefer clusters with a ready replica).
func (a *Agent) gossipState() gossip.NodeState {
	var digests []gossip.ModelDigest
	for _, m := range a.models() {
		digests = append(digests, gossip.ModelDigest{
			Namespace: m.Namespace, Name: m.Name, Model: m.Model,
			ReadyReplicas: m.ReadyReplicas, DesiredReplicas: m.DesiredReplicas,
			RequestsPerSecond: m.RequestsPerSecond.AsApproximateFloat64(),
			P95Seconds:        math.Max(m.P95Latency.Seconds(), 0),
			QueueLength:       m.QueueLength,
			Healthy:           m.ReadyReplicas > 0 || m.ScaledToZero,
			ScaledToZero:      m.ScaledToZero,
		})
	}
	return gossip.NodeState{Models: digests, Updated: time.Now()}
}
