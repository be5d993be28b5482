package gossip

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/memberlist"
)

// minStateRetransmitMult is the least retransmit multiplier for NodeState
// broadcasts: Serf's default for its user events, which travel the same
// way. Memberlist's Local preset uses 2, with which a state often misses a
// member of a small pool until the next push/pull.
const minStateRetransmitMult = 4

// ErrShutdown is returned by a Node's methods after Shutdown.
var ErrShutdown = errors.New("gossip: node is shut down")

// Node is one member of the gossip pool. Its methods are safe for
// concurrent use.
type Node struct {
	cfg     config
	name    string
	log     *slog.Logger
	metrics *metrics
	keyring *memberlist.Keyring // nil without encryption
	// keyMu serialises this package's use of the keyring: GetKeys returns
	// the keyring's internal slice, which RemoveKey shifts in place.
	keyMu sync.Mutex
	// keyringSum is the SHA-256 of the keyring file last applied.
	keyringSum [sha256.Size]byte
	ml         atomic.Pointer[memberlist.Memberlist]
	addr       string

	// broadcasts queues this node's NodeState for gossip.
	broadcasts *memberlist.TransmitLimitedQueue
	// members is the number of alive or suspect members, this node
	// included: the pool size for retransmit limits.
	members atomic.Int64

	mu    sync.Mutex
	peers map[string]*peerRecord // every other member, by name
	local stateEntry             // this node's state; version orders it
	has   bool                   // local holds a state set by SetLocalState

	notify   *notifier
	directCh chan struct{} // wakes the direct sender

	leaving   atomic.Bool // Leave has begun: advertised in the node meta
	lifecycle sync.Mutex  // serialises Leave and Shutdown
	closed    atomic.Bool
	stop      chan struct{}
	wg        sync.WaitGroup
}

// Start creates a node from cfg, starts listening and joins the members in
// cfg.Join. ctx bounds the join only; the node runs until Shutdown. On any
// error nothing is left running.
func Start(ctx context.Context, cfg Config) (*Node, error) {
	c, err := cfg.complete()
	if err != nil {
		return nil, fmt.Errorf("gossip: config: %w", err)
	}
	n := &Node{
		cfg:      c,
		name:     c.NodeName,
		log:      c.Logger.With("component", "gossip", "node", c.NodeName),
		metrics:  newMetrics(),
		peers:    make(map[string]*peerRecord),
		directCh: make(chan struct{}, 1),
		stop:     make(chan struct{}),
	}
	// A version that grows across restarts, so that peers holding this
	// node's state from before a restart accept the new one.
	n.local = stateEntry{origin: n.name, version: uint64(time.Now().UnixNano())}
	n.members.Store(1)
	n.notify = newNotifier(c.Observer)
	n.broadcasts = &memberlist.TransmitLimitedQueue{
		NumNodes:       func() int { return int(n.members.Load()) },
		RetransmitMult: max(c.Timing.RetransmitMult, minStateRetransmitMult),
	}

	if c.KeyringFile != "" {
		b, err := os.ReadFile(c.KeyringFile)
		if err != nil {
			return nil, fmt.Errorf("gossip: read keyring: %w", err)
		}
		keys, err := parseKeyring(c.KeyringFile, b)
		if err != nil {
			return nil, fmt.Errorf("gossip: %w", err)
		}
		if n.keyring, err = memberlist.NewKeyring(keys, keys[0]); err != nil {
			return nil, fmt.Errorf("gossip: keyring %s: %w", c.KeyringFile, err)
		}
		n.keyringSum = sha256.Sum256(b)
		n.metrics.keyringLoaded(keys)
	}
	if err := n.metrics.register(c.Registerer); err != nil {
		return nil, fmt.Errorf("gossip: metrics: %w", err)
	}

	mc := c.memberlistConfig()
	d := &delegate{n: n}
	mc.Delegate, mc.Events, mc.Ping = d, d, d
	mc.Keyring = n.keyring
	mc.Logger = newMemberlistLogger(&logBridge{log: n.log, onSuspect: n.markSuspect, onUndecryptable: n.metrics.undecryptable})
	ml, err := memberlist.Create(mc)
	if err != nil {
		n.metrics.unregister()
		return nil, fmt.Errorf("gossip: start memberlist on %s:%d: %w", c.BindAddr, c.BindPort, err)
	}
	n.ml.Store(ml)
	// Nothing else knows this node yet, so its own entry is not being
	// written by memberlist while it is read here.
	self := ml.LocalNode()
	n.addr = net.JoinHostPort(self.Addr.String(), strconv.Itoa(int(self.Port)))

	n.wg.Add(3)
	go n.notify.run(n.stop, &n.wg)
	go n.sendDirect()
	go n.prune()
	if n.keyring != nil && c.KeyringCheckInterval > 0 {
		n.wg.Add(1)
		go n.watchKeyring()
	}
	if n.keyring == nil && !c.LoopbackOnly() {
		n.log.Warn("GOSSIP IS NOT ENCRYPTED OR AUTHENTICATED (insecure mode): anyone who can reach this address reads every member's health and load and can declare members dead; use only on a network you trust, and give every member a keyring for anything else",
			"addr", n.addr)
	}

	if len(c.Join) > 0 {
		if _, err := n.Join(ctx, c.Join...); err != nil {
			_ = n.Shutdown()
			return nil, err
		}
	}
	n.log.Debug("gossip node started", "addr", n.addr, "encrypted", n.keyring != nil)
	return n, nil
}

// Name is the node's name in the pool.
func (n *Node) Name() string { return n.name }

// Addr is the address other members join, host:port, with the port
// memberlist bound when Config.BindPort was zero.
func (n *Node) Addr() string { return n.addr }

// Join contacts the given members ("host:port") and merges state with
// them. It returns how many it reached, and an error if it reached none —
// for example because they use encryption keys this node does not hold.
// If ctx ends first, Join returns its error while memberlist finishes the
// attempt in the background.
func (n *Node) Join(ctx context.Context, addrs ...string) (int, error) {
	if n.closed.Load() {
		return 0, ErrShutdown
	}
	ml := n.ml.Load()
	type result struct {
		n   int
		err error
	}
	ch := make(chan result, 1)
	go func() {
		k, err := ml.Join(addrs)
		ch <- result{k, err}
	}()
	select {
	case r := <-ch:
		if r.err != nil {
			return r.n, fmt.Errorf("gossip: join %v: %w", addrs, r.err)
		}
		return r.n, nil
	case <-ctx.Done():
		return 0, fmt.Errorf("gossip: join %v: %w", addrs, ctx.Err())
	}
}

// Leave tells the pool that this node is leaving on purpose, so that the
// others report it left (not dead) at once instead of suspecting it, and
// waits up to timeout in all for the news to go out (zero waits without
// limit, as memberlist does). It first advertises
// the leaving flag in its node metadata (memberlist's NotifyLeave does not
// say whether a member failed or left), then sends memberlist's leave. The
// node keeps running until Shutdown.
func (n *Node) Leave(timeout time.Duration) error {
	n.lifecycle.Lock()
	defer n.lifecycle.Unlock()
	if n.closed.Load() {
		return ErrShutdown
	}
	deadline := time.Now().Add(timeout)
	remaining := func() time.Duration {
		if timeout <= 0 {
			return 0
		}
		return max(time.Until(deadline), time.Millisecond)
	}
	ml := n.ml.Load()
	n.leaving.Store(true)
	if err := ml.UpdateNode(remaining()); err != nil {
		n.log.Debug("leave announcement not confirmed; leaving anyway", "err", err)
	}
	if err := ml.Leave(remaining()); err != nil {
		return fmt.Errorf("gossip: leave: %w", err)
	}
	return nil
}

// Shutdown stops the node without telling the pool, which then detects the
// failure within Timing.DeadWithin; call Leave first for a graceful exit.
// It unregisters the node's metrics. Calling it again does nothing.
func (n *Node) Shutdown() error {
	n.lifecycle.Lock()
	defer n.lifecycle.Unlock()
	if n.closed.Swap(true) {
		return nil
	}
	err := n.ml.Load().Shutdown()
	close(n.stop)
	n.wg.Wait()
	n.metrics.unregister()
	if err != nil {
		return fmt.Errorf("gossip: shutdown: %w", err)
	}
	return nil
}

// SetLocalState publishes s as this node's state. Empty Cluster, Region
// and Endpoint are filled from Config.Meta and a zero Updated becomes the
// current time. States that encode to at most 1 KiB are broadcast by
// gossip; larger ones are sent to every live member over TCP. Either way
// push/pull anti-entropy repairs what is lost. It returns an error if s
// breaks a bound (MaxModels, 512-byte strings, negative or non-finite
// numbers).
func (n *Node) SetLocalState(s NodeState) error {
	if n.closed.Load() {
		return ErrShutdown
	}
	s = s.clone()
	if s.Cluster == "" {
		s.Cluster = n.cfg.Meta.Cluster
	}
	if s.Region == "" {
		s.Region = n.cfg.Meta.Region
	}
	if s.Endpoint == "" {
		s.Endpoint = n.cfg.Meta.Endpoint
	}
	if s.Updated.IsZero() {
		s.Updated = time.Now()
	}
	// Keep what the wire keeps: nanoseconds since the epoch, local time.
	s.Updated = time.Unix(0, s.Updated.UnixNano())
	if len(s.Models) == 0 {
		s.Models = nil
	}
	if err := s.validate(); err != nil {
		return fmt.Errorf("gossip: local state: %w", err)
	}
	n.mu.Lock()
	n.local.version++
	n.local.state = s
	n.has = true
	msg := encodeState(n.local)
	n.mu.Unlock()
	n.publish(msg)
	return nil
}

// publish sends this node's encoded state by gossip or directly.
func (n *Node) publish(msg []byte) {
	if len(msg) <= maxBroadcast {
		n.broadcasts.QueueBroadcast(&stateBroadcast{name: n.name, msg: msg})
		return
	}
	select {
	case n.directCh <- struct{}{}:
	default: // a send of the latest state is already pending
	}
}

// LocalState returns what this node last published with SetLocalState.
func (n *Node) LocalState() NodeState {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.local.state.clone()
}

// Peers returns every other member this node knows, sorted by name, with
// its last NodeState and status. Members that failed or left stay listed,
// as dead or left, for Timing.GossipToTheDeadTime, so that a failure shows
// as a status change rather than a silent disappearance.
func (n *Node) Peers() []Peer {
	n.mu.Lock()
	out := make([]Peer, 0, len(n.peers))
	for _, r := range n.peers {
		if r.known {
			out = append(out, r.peer())
		}
	}
	n.mu.Unlock()
	slices.SortFunc(out, func(a, b Peer) int {
		switch {
		case a.Name < b.Name:
			return -1
		case a.Name > b.Name:
			return 1
		}
		return 0
	})
	return out
}

// Peer returns the named member as Peers would.
func (n *Node) Peer(name string) (Peer, bool) {
	n.mu.Lock()
	defer n.mu.Unlock()
	r, ok := n.peers[name]
	if !ok || !r.known {
		return Peer{}, false
	}
	return r.peer(), true
}

// stateBroadcast is this node's state on the gossip queue; a newer one
// replaces an older one not yet sent everywhere.
type stateBroadcast struct {
	name string
	msg  []byte
}

func (b *stateBroadcast) Invalidates(other memberlist.Broadcast) bool {
	o, ok := other.(*stateBroadcast)
	return ok && o.name == b.name
}
func (b *stateBroadcast) Name() string    { return "state/" + b.name }
func (b *stateBroadcast) Message() []byte { return b.msg }
func (b *stateBroadcast) Finished()       {}

// sendDirect sends this node's state over TCP to every live member each
// time publish asks for it, for states too large for a gossip packet.
func (n *Node) sendDirect() {
	defer n.wg.Done()
	for {
		select {
		case <-n.stop:
			return
		case <-n.directCh:
		}
		n.mu.Lock()
		msg := encodeState(n.local)
		targets := n.liveNodesLocked()
		n.mu.Unlock()
		if len(msg) <= maxBroadcast {
			continue // a smaller state replaced it and went by gossip
		}
		n.sendAll(targets, msg)
	}
}

// sendAll sends msg reliably to every target, eight at a time; push/pull
// repairs what fails.
func (n *Node) sendAll(targets []memberlist.Node, msg []byte) {
	ml := n.ml.Load()
	sem := make(chan struct{}, 8)
	var wg sync.WaitGroup
	for i := range targets {
		select {
		case <-n.stop:
			wg.Wait()
			return
		case sem <- struct{}{}:
		}
		wg.Add(1)
		go func(t *memberlist.Node) {
			defer func() { <-sem; wg.Done() }()
			if err := ml.SendReliable(t, msg); err != nil {
				n.log.Debug("direct send failed", "peer", t.Name, "err", err)
			}
		}(&targets[i])
	}
	wg.Wait()
}

// prune forgets members that have been dead or gone for
// GossipToTheDeadTime, as memberlist does, and states from nodes that never
// became members.
func (n *Node) prune() {
	defer n.wg.Done()
	every := max(n.cfg.Timing.GossipToTheDeadTime/4, time.Second)
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-n.stop:
			return
		case now := <-t.C:
			n.mu.Lock()
			for name, r := range n.peers {
				gone := !r.known || r.status == StatusDead || r.status == StatusLeft
				if gone && now.Sub(r.since) > n.cfg.Timing.GossipToTheDeadTime {
					delete(n.peers, name)
				}
			}
			n.countLocked()
			n.mu.Unlock()
		}
	}
}
