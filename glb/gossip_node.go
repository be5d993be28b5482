package glb

import (
	"cmp"
	"context"
	"fmt"
	"os"
	"sync"
	"time"

	"meridian.dev/meridian/glb/steer"
	"meridian.dev/meridian/gossip"
)

// gossipRejoinEvery is how often the balancer tries its seeds again while
// it sees no live member: at start, when the agents may not be up yet, and
// after losing them all (its own network cut, or every seed restarted).
const gossipRejoinEvery = 5 * time.Second

// gossipLeaveTimeout bounds the goodbye on shutdown, so that the agents
// report this balancer left rather than suspect it.
const gossipLeaveTimeout = 2 * time.Second

// joinGossip starts this balancer's node in the agents' gossip pool and
// makes b's answers follow what the pool says (see gossipHealth). The node
// is an observer: its Meta has no Cluster and it publishes no state, so
// nobody steers to it. It holds the pool's key (cfg.KeyringFile) to read
// the agents' health; that key cannot change any member's keys, which
// change only from each member's own keyring file (package gossip), so a
// compromised balancer cannot lock the agents out of their pool. Off
// loopback, gossip.Start refuses to join without a keyring unless
// cfg.Insecure is set. It returns at once, joining cfg.Join in the
// background, so a balancer starts while its seeds are down; stop leaves
// the pool and shuts the node down. Call it before b answers anything.
func (b *Balancer) joinGossip(ctx context.Context, cfg gossip.Config, hc steer.HealthConfig) (node *gossip.Node, stop func(), err error) {
	g := newGossipHealth(hc, b.log, cfg.Observer)
	cfg.Observer = g
	cfg.Meta.Cluster = ""
	if cfg.NodeName == "" {
		// Unique next to the agents, which use their cluster's name.
		host, _ := os.Hostname()
		cfg.NodeName = "glb-" + cmp.Or(host, "unknown")
	}
	cfg.Logger = cmp.Or(cfg.Logger, b.log)
	seeds := cfg.Join
	cfg.Join = nil
	if node, err = gossip.Start(ctx, cfg); err != nil {
		return nil, nil, fmt.Errorf("glb: gossip: %w", err)
	}
	b.gossip = g
	b.log.Info("glb joined gossip as an observer", "node", node.Name(), "addr", node.Addr(), "seeds", seeds)

	lctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		b.keepJoined(lctx, node, seeds)
	}()
	var once sync.Once
	stop = func() {
		once.Do(func() {
			cancel()
			wg.Wait()
			if err := node.Leave(gossipLeaveTimeout); err != nil {
				b.log.Debug("leaving the gossip pool", "err", err)
			}
			_ = node.Shutdown()
		})
	}
	return node, stop, nil
}

// keepJoined joins the seeds whenever the node sees no live member, until
// ctx ends.
func (b *Balancer) keepJoined(ctx context.Context, node *gossip.Node, seeds []string) {
	if len(seeds) == 0 {
		return // the first member of a pool: others join it
	}
	t := time.NewTicker(gossipRejoinEvery)
	defer t.Stop()
	warned := false
	for {
		if !anyLive(node.Peers()) {
			jctx, cancel := context.WithTimeout(ctx, gossipRejoinEvery)
			n, err := node.Join(jctx, seeds...)
			cancel()
			switch {
			case ctx.Err() != nil:
				return
			case err != nil && !warned:
				b.log.Warn("gossip: no seed answers; answering from the hub and probes alone, and retrying", "seeds", seeds, "err", err)
				warned = true
			case err == nil:
				b.log.Info("gossip: joined the pool", "reached", n)
				warned = false
			}
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

func anyLive(peers []gossip.Peer) bool {
	for _, p := range peers {
		if p.Status == gossip.StatusAlive || p.Status == gossip.StatusSuspect {
			return true
		}
	}
	return false
}
