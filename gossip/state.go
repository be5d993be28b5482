package gossip

import (
	"fmt"
	"math"
	"time"
)

// ModelDigest is one model's health and load in one cluster, as its agent
// last measured it.
type ModelDigest struct {
	// Namespace and Name identify the ModelDeployment in the member cluster.
	Namespace, Name string
	// Model is the InferenceModel the deployment serves.
	Model string
	// ReadyReplicas is how many replicas pass their readiness checks.
	ReadyReplicas int32
	// DesiredReplicas is how many replicas the autoscaler wants.
	DesiredReplicas int32
	// RequestsPerSecond is the request rate across the ready replicas.
	RequestsPerSecond float64
	// P95Seconds is the 95th percentile request latency, in seconds.
	P95Seconds float64
	// QueueLength is the number of requests waiting across the replicas.
	QueueLength int32
	// Healthy says the cluster can take more traffic for this model: it
	// has a ready replica, or it is ScaledToZero.
	Healthy bool
	// ScaledToZero says the model has no replica here on purpose and the
	// agent's activator answers for it, holding each request until a
	// replica is ready (a cold start): reachable, but slower than a
	// cluster with a ready replica.
	ScaledToZero bool
}

// NodeState is what a node publishes about itself with SetLocalState and
// what Peers reports for every other member.
type NodeState struct {
	// Cluster, Region and Endpoint repeat the node's Meta; SetLocalState
	// fills those left empty from Config.Meta.
	Cluster, Region, Endpoint string
	// Models holds one digest per model, at most MaxModels.
	Models []ModelDigest
	// Updated is when the node measured this state; SetLocalState sets it
	// to the current time if it is zero. It is carried as nanoseconds since
	// the Unix epoch, so peers see it in their local time zone and without
	// a monotonic clock reading.
	Updated time.Time
}

// validate checks the bounds every NodeState must respect, local or remote.
func (s NodeState) validate() error {
	for _, f := range []struct{ name, v string }{
		{"cluster", s.Cluster}, {"region", s.Region}, {"endpoint", s.Endpoint},
	} {
		if len(f.v) > maxString {
			return fmt.Errorf("%s is %d bytes, the most is %d", f.name, len(f.v), maxString)
		}
	}
	if len(s.Models) > MaxModels {
		return fmt.Errorf("%d models, the most is %d", len(s.Models), MaxModels)
	}
	for i, m := range s.Models {
		if err := m.validate(); err != nil {
			return fmt.Errorf("model %d (%s/%s): %w", i, m.Namespace, m.Name, err)
		}
	}
	return nil
}

func (m ModelDigest) validate() error {
	for _, f := range []struct{ name, v string }{
		{"namespace", m.Namespace}, {"name", m.Name}, {"model", m.Model},
	} {
		if len(f.v) > maxString {
			return fmt.Errorf("%s is %d bytes, the most is %d", f.name, len(f.v), maxString)
		}
	}
	for _, f := range []struct {
		name string
		v    int32
	}{
		{"readyReplicas", m.ReadyReplicas}, {"desiredReplicas", m.DesiredReplicas}, {"queueLength", m.QueueLength},
	} {
		if f.v < 0 {
			return fmt.Errorf("%s is negative (%d)", f.name, f.v)
		}
	}
	for _, f := range []struct {
		name string
		v    float64
	}{
		{"requestsPerSecond", m.RequestsPerSecond}, {"p95Seconds", m.P95Seconds},
	} {
		if math.IsNaN(f.v) || math.IsInf(f.v, 0) || f.v < 0 {
			return fmt.Errorf("%s is %v, want a finite number ≥ 0", f.name, f.v)
		}
	}
	return nil
}

// clone copies s so that the caller's and the node's slices stay apart.
func (s NodeState) clone() NodeState {
	if s.Models != nil {
		s.Models = append([]ModelDigest(nil), s.Models...)
	}
	return s
}

// Status is a member's state as this node sees it. Its values are also the
// state label of meridian_gossip_members.
type Status string

const (
	// StatusAlive: the member answers probes.
	StatusAlive Status = "alive"
	// StatusSuspect: this node's probe of the member failed; memberlist
	// declares it dead unless it refutes within the suspicion timeout.
	StatusSuspect Status = "suspect"
	// StatusDead: the member stopped answering and the pool declared it
	// dead.
	StatusDead Status = "dead"
	// StatusLeft: the member left on purpose (Node.Leave).
	StatusLeft Status = "left"
)

var statuses = []Status{StatusAlive, StatusSuspect, StatusDead, StatusLeft}

// Peer is another member as this node sees it.
type Peer struct {
	// Name is the member's node name.
	Name string
	// Addr is the member's gossip address, host:port.
	Addr string
	// Meta is what the member advertises about itself.
	Meta Meta
	// Status is alive, suspect, dead or left.
	Status Status
	// Since is when this node saw Status begin.
	Since time.Time
	// State is the member's last NodeState, or the zero NodeState if none
	// has arrived yet (HasState is false).
	State NodeState
	// HasState says State was received from the member.
	HasState bool
	// RTT is the round trip of this node's last successful direct probe of
	// the member, zero until one completes.
	RTT time.Duration
}

// Observer is told about changes to other members. Its methods are called
// from one goroutine, in order, never concurrently, and must not block for
// long; they may call the Node's methods except Shutdown, which waits for
// them to return. Changes are coalesced per peer:
// if a peer changes several times before the Observer is called, it sees
// the latest Peer once, so a peer that fails and returns quickly may be
// reported only as updated.
type Observer interface {
	// PeerUpdated reports a member that joined, changed status (alive or
	// suspect), changed its Meta or published a new NodeState.
	PeerUpdated(Peer)
	// PeerLeft reports a member that was declared dead or left on purpose;
	// Peer.Status says which.
	PeerLeft(Peer)
}
