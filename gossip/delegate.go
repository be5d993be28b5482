package gossip

import (
	"bytes"
	"net"
	"strconv"
	"sync"
	"time"

	"github.com/hashicorp/memberlist"
)

// peerRecord is this node's view of another member. Records are created by
// membership events (known) or by a NodeState that arrives before the
// member's join is seen (not yet known; not listed by Peers).
type peerRecord struct {
	name   string
	known  bool
	node   memberlist.Node // Name, Addr and Port, copied at the last event
	meta   Meta
	status Status
	since  time.Time
	rtt    time.Duration

	state    NodeState
	version  uint64
	hasState bool
}

func (r *peerRecord) peer() Peer {
	p := Peer{
		Name:     r.name,
		Meta:     r.meta,
		Status:   r.status,
		Since:    r.since,
		State:    r.state.clone(),
		HasState: r.hasState,
		RTT:      r.rtt,
	}
	if r.node.Addr != nil {
		p.Addr = net.JoinHostPort(r.node.Addr.String(), strconv.Itoa(int(r.node.Port)))
	}
	return p
}

func (r *peerRecord) live() bool {
	return r.known && (r.status == StatusAlive || r.status == StatusSuspect)
}

// delegate implements memberlist's Delegate, EventDelegate and PingDelegate
// for a Node, keeping those methods out of Node's API. Memberlist calls the
// event methods with its node lock held, so they copy what they need and
// never call back into memberlist; n.mu is never held while calling
// memberlist.
type delegate struct{ n *Node }

var (
	_ memberlist.Delegate      = (*delegate)(nil)
	_ memberlist.EventDelegate = (*delegate)(nil)
	_ memberlist.PingDelegate  = (*delegate)(nil)
)

// NodeMeta returns the encoded Meta, checked against the limit at Start,
// with the leaving flag once Leave has begun.
func (d *delegate) NodeMeta(limit int) []byte {
	return encodeMeta(nodeMeta{Meta: d.n.cfg.Meta, leaving: d.n.leaving.Load()})
}

// NotifyMsg handles a broadcast or direct message from another member.
func (d *delegate) NotifyMsg(b []byte) {
	n := d.n
	kind, dec, err := openMessage(b)
	if err != nil {
		n.rejected("message", err)
		return
	}
	switch kind {
	case kindState:
		e := dec.stateEntry()
		if err := dec.finish(); err != nil {
			n.rejected("state", err)
			return
		}
		if n.merge([]stateEntry{e}) > 0 && len(b) <= maxBroadcast {
			// Relay what is new to us, as memberlist does its own
			// membership messages: user broadcasts are otherwise sent by
			// their origin alone, to a handful of random members.
			n.broadcasts.QueueBroadcast(&stateBroadcast{name: e.origin, msg: bytes.Clone(b)})
		}
	case kindKeyOp, kindKeyAck:
		// Any key holder can send this, an internet-facing balancer
		// included; keys change only from each node's keyring file.
		n.metrics.rejected.WithLabelValues(rejectForbidden).Inc()
		n.log.Warn("refused a key operation sent over gossip: keys change only from each member's keyring file; a member holding the pool key tried to change it",
			"kind", kind)
	default:
		n.rejected("message", reject(rejectMalformed, "unknown message kind %d", kind))
	}
}

// GetBroadcasts hands memberlist the queued NodeState broadcasts that fit.
func (d *delegate) GetBroadcasts(overhead, limit int) [][]byte {
	return d.n.broadcasts.GetBroadcasts(overhead, limit)
}

// LocalState is this node's side of a push/pull: the NodeState of this
// node and of every live member it knows.
func (d *delegate) LocalState(join bool) []byte {
	n := d.n
	n.mu.Lock()
	defer n.mu.Unlock()
	entries := make([]stateEntry, 0, len(n.peers)+1)
	if n.has {
		entries = append(entries, n.local)
	}
	for _, r := range n.peers {
		if r.live() && r.hasState && len(entries) < maxPeers {
			entries = append(entries, stateEntry{origin: r.name, version: r.version, state: r.state})
		}
	}
	return encodeSnapshot(entries)
}

// MergeRemoteState merges the other side of a push/pull.
func (d *delegate) MergeRemoteState(b []byte, join bool) {
	entries, err := decodeSnapshot(b)
	if err != nil {
		d.n.rejected("push/pull state", err)
		return
	}
	d.n.merge(entries)
}

// NotifyJoin records a member that joined or came back.
func (d *delegate) NotifyJoin(node *memberlist.Node) {
	d.n.membership(node, eventJoin)
}

// NotifyLeave records a member declared dead or gone.
func (d *delegate) NotifyLeave(node *memberlist.Node) {
	d.n.membership(node, eventLeave)
}

// NotifyUpdate records a member whose metadata changed.
func (d *delegate) NotifyUpdate(node *memberlist.Node) {
	d.n.membership(node, eventUpdate)
}

// AckPayload adds nothing to acks.
func (d *delegate) AckPayload() []byte { return nil }

// NotifyPingComplete records the round trip of a successful direct probe.
// A successful probe also ends a suspicion this node raised: memberlist
// probes suspect members too, and an ack means the member lives.
func (d *delegate) NotifyPingComplete(other *memberlist.Node, rtt time.Duration, payload []byte) {
	n := d.n
	n.metrics.rtt.Observe(rtt.Seconds())
	n.mu.Lock()
	defer n.mu.Unlock()
	r, ok := n.peers[other.Name]
	if !ok || !r.known {
		return
	}
	r.rtt = rtt
	if r.status == StatusSuspect {
		r.status, r.since = StatusAlive, time.Now()
		n.countLocked()
		n.notify.add(r.peer(), false)
	}
}

// membership applies a memberlist event to the peer table. Memberlist
// v0.7.0 never fills in Node.State (its nodeState type shadows the field),
// so the status follows from the event: join and update mean alive, leave
// means dead — or left, if the member's last metadata carried the leaving
// flag that Node.Leave sets before memberlist's own leave. A member that
// announces it is leaving is reported left at once.
func (n *Node) membership(node *memberlist.Node, event string) {
	if node.Name == n.name {
		return
	}
	meta, err := decodeMeta(node.Meta)
	if err != nil {
		n.rejected("meta of "+node.Name, err)
	}
	status := StatusAlive
	switch {
	case meta.leaving:
		status = StatusLeft
	case event == eventLeave:
		status = StatusDead
	}

	n.mu.Lock()
	defer n.mu.Unlock()
	r, ok := n.peers[node.Name]
	if !ok {
		r = &peerRecord{name: node.Name}
		n.peers[node.Name] = r
	}
	if r.known && r.status == status && event != eventJoin && r.meta == meta.Meta {
		return // nothing this node reports has changed
	}
	r.known = true
	r.node = memberlist.Node{Name: node.Name, Addr: append(net.IP(nil), node.Addr...), Port: node.Port}
	r.meta = meta.Meta
	if r.status != status || !ok {
		r.status, r.since = status, time.Now()
	}
	if status == StatusLeft && event != eventLeave {
		event = eventLeave // the leave announcement: count it as the leave
	}
	n.metrics.events.WithLabelValues(event).Inc()
	n.countLocked()
	n.notify.add(r.peer(), status == StatusDead || status == StatusLeft)
	n.log.Debug("member "+event, "peer", node.Name, "status", status)
}

// markSuspect records that this node's probe of a member failed; see
// logBridge for where the signal comes from.
func (n *Node) markSuspect(name string) {
	n.mu.Lock()
	defer n.mu.Unlock()
	r, ok := n.peers[name]
	if !ok || !r.known || r.status != StatusAlive {
		return
	}
	r.status, r.since = StatusSuspect, time.Now()
	n.metrics.events.WithLabelValues(eventSuspect).Inc()
	n.countLocked()
	n.notify.add(r.peer(), false)
	n.log.Debug("member suspect", "peer", name)
}

// merge applies remote NodeStates, keeping the highest version per node,
// and returns how many were new.
func (n *Node) merge(entries []stateEntry) int {
	var republish []byte
	accepted := 0
	n.mu.Lock()
	for _, e := range entries {
		if e.origin == n.name {
			// Our own state relayed back is normal. A newer one is from
			// before a restart with a clock that went backwards: jump
			// past it so that peers take what we publish next.
			if e.version > n.local.version {
				n.local.version = e.version + 1
				if n.has {
					republish = encodeState(n.local)
				}
			}
			continue
		}
		r, ok := n.peers[e.origin]
		if !ok {
			if len(n.peers) >= maxPeers {
				n.mu.Unlock()
				n.rejected("state of "+e.origin, reject(rejectTooLarge, "peer table holds %d members", maxPeers))
				n.mu.Lock()
				continue
			}
			r = &peerRecord{name: e.origin, since: time.Now()}
			n.peers[e.origin] = r
		}
		if r.hasState && e.version <= r.version {
			continue // stale or already seen
		}
		r.state, r.version, r.hasState = e.state, e.version, true
		accepted++
		if r.known {
			n.metrics.events.WithLabelValues(eventUpdate).Inc()
			n.notify.add(r.peer(), r.status == StatusDead || r.status == StatusLeft)
		}
	}
	n.mu.Unlock()
	if republish != nil {
		n.publish(republish)
	}
	return accepted
}

// rejected counts and logs a payload that could not be used.
func (n *Node) rejected(what string, err error) {
	n.metrics.rejected.WithLabelValues(rejectReason(err)).Inc()
	n.log.Debug("rejected gossip payload", "what", what, "err", err)
}

// countLocked refreshes the members gauge and the live count. n.mu is held.
func (n *Node) countLocked() {
	counts := map[Status]int{StatusAlive: 1} // this node
	for _, r := range n.peers {
		if r.known {
			counts[r.status]++
		}
	}
	for _, s := range statuses {
		n.metrics.members.WithLabelValues(string(s)).Set(float64(counts[s]))
	}
	n.members.Store(int64(counts[StatusAlive] + counts[StatusSuspect]))
}

// liveNodesLocked returns the addresses of alive and suspect members.
func (n *Node) liveNodesLocked() []memberlist.Node {
	out := make([]memberlist.Node, 0, len(n.peers))
	for _, r := range n.peers {
		if r.live() {
			out = append(out, r.node)
		}
	}
	return out
}

// notifier delivers peer changes to the Observer from one goroutine,
// coalescing changes per peer so that a slow Observer never blocks
// memberlist and the backlog never exceeds one entry per member.
type notifier struct {
	obs     Observer
	mu      sync.Mutex
	pending map[string]pendingChange
	order   []string
	wake    chan struct{}
}

type pendingChange struct {
	peer Peer
	left bool
}

func newNotifier(obs Observer) *notifier {
	return &notifier{obs: obs, pending: make(map[string]pendingChange), wake: make(chan struct{}, 1)}
}

func (q *notifier) add(p Peer, left bool) {
	if q.obs == nil {
		return
	}
	q.mu.Lock()
	if _, ok := q.pending[p.Name]; !ok {
		q.order = append(q.order, p.Name)
	}
	q.pending[p.Name] = pendingChange{peer: p, left: left}
	q.mu.Unlock()
	select {
	case q.wake <- struct{}{}:
	default:
	}
}

func (q *notifier) run(stop <-chan struct{}, wg *sync.WaitGroup) {
	defer wg.Done()
	if q.obs == nil {
		return
	}
	for {
		select {
		case <-stop:
			return
		case <-q.wake:
		}
		for {
			q.mu.Lock()
			if len(q.order) == 0 {
				q.mu.Unlock()
				break
			}
			name := q.order[0]
			q.order = q.order[1:]
			c := q.pending[name]
			delete(q.pending, name)
			q.mu.Unlock()
			if c.left {
				q.obs.PeerLeft(c.peer)
			} else {
				q.obs.PeerUpdated(c.peer)
			}
			select {
			case <-stop:
				return
			default:
			}
		}
	}
}
