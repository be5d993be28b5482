package steer

import (
	"cmp"
	"math"
	"net/netip"
	"slices"
	"time"

	"meridian.dev/meridian/glb/geo"
)

// Kind names a steering policy. The values are the GlobalEndpoint API's
// SteeringPolicy values, so steer.Kind(spec.Steering) converts.
type Kind string

// The steering policies.
const (
	// Geo sends a client to the nearest usable target by great-circle
	// distance.
	Geo Kind = "Geo"
	// Latency sends a client to the usable target with the lowest round-trip
	// time measured from this balancer's site.
	Latency Kind = "Latency"
	// Weighted splits clients over usable targets in proportion to their
	// weights, deterministically by client key.
	Weighted Kind = "Weighted"
	// Failover sends everyone to the first usable target in FailoverOrder.
	Failover Kind = "Failover"
)

// DefaultSpillThreshold is the headroom below which a share of clients
// spills from the best target to the next best.
const DefaultSpillThreshold = 0.1

// Policy is how one name is steered.
type Policy struct {
	// Kind is the policy. Empty means Geo, the API's default; a value this
	// package does not know is treated as Geo too, so that a newer API value
	// never leaves a name without answers.
	Kind Kind
	// FailoverOrder lists regions in order of preference: the order for
	// Failover, and the fallback order for clients without a location.
	// Targets of regions not listed come after those listed.
	FailoverOrder []string
	// SpillThreshold is the headroom (free fraction, 0..1) below which the
	// best target starts to shed clients to the next best: none at the
	// threshold, growing linearly to all of them at zero headroom. Zero
	// means DefaultSpillThreshold; a negative value turns spill off.
	SpillThreshold float64
}

func (p Policy) spillThreshold() float64 {
	switch {
	case p.SpillThreshold < 0:
		return 0
	case p.SpillThreshold == 0:
		return DefaultSpillThreshold
	default:
		return min(p.SpillThreshold, 1)
	}
}

// Target is one cluster behind a name.
type Target struct {
	// Cluster is the cluster's name, unique among the targets.
	Cluster string
	// Region is the cluster's region, matched against FailoverOrder.
	Region string
	// Lat and Lon are where the cluster is, in decimal degrees.
	Lat, Lon float64
	// Addrs are the addresses clients are sent to (A and AAAA records).
	Addrs []netip.Addr
	// Healthy is the balancer's current verdict (see Health).
	Healthy bool
	// ReadyReplicas serving the model; zero makes the target unusable
	// unless it is Cold.
	ReadyReplicas int32
	// Cold says the target has no ready replica, but an activator that
	// holds each request until one starts (a model scaled to zero): it is
	// usable, at the cost of a cold start, and ranks after every usable
	// target with a ready replica (a warm one) under every policy. It
	// matters only while ReadyReplicas is zero.
	Cold bool
	// Headroom is the free fraction of the target's capacity, 0 to 1; zero
	// (full) makes the target unusable. Report 1 when it is not known.
	Headroom float64
	// Weight for Weighted steering. When every usable target weighs zero
	// they share equally; otherwise zero-weight targets only take clients
	// once every weighted one is unusable. The balancer gives every target
	// 1 today: no API field sets per-cluster weights yet.
	Weight int32
	// RTT is the measured round-trip time to the target from each balancer
	// site, keyed by site name. Latency steering reads the entry of the
	// asking site; targets without one rank after those with one.
	RTT map[string]time.Duration
}

// Usable says whether any policy may send a client to t: healthy, with
// room, and with a ready replica or an activator (Cold).
func (t *Target) Usable() bool {
	return t.Healthy && t.Headroom > 0 && (t.ReadyReplicas > 0 || t.Cold)
}

// cold says t would serve only after a cold start: no ready replica.
func (t *Target) cold() bool { return t.ReadyReplicas <= 0 }

// Client is who is asking, as the balancer sees it.
type Client struct {
	// Lat and Lon are the client's location, when HasLocation.
	Lat, Lon float64
	// HasLocation is false when the client's subnet could not be located.
	HasLocation bool
	// Key is a hash of the client's subnet (the ECS subnet or the resolver's
	// address, truncated to the answer's scope). It makes weighted splits
	// and spill stable: one subnet always lands on the same target.
	Key uint64
}

// Choose picks the target for client, asking from balancer site. ok is
// false when no target is usable. Choose(…) is Rank(…)[0], without the
// allocation.
func Choose(p Policy, targets []Target, client Client, site string) (Target, bool) {
	r := newRanker(p, client, site)
	best, next := -1, -1
	var bestKey, nextKey rankKey
	for i := range targets {
		if !targets[i].Usable() {
			continue
		}
		k := r.key(&targets[i], i)
		switch {
		case best < 0 || k.less(bestKey):
			next, nextKey = best, bestKey
			best, bestKey = i, k
		case next < 0 || k.less(nextKey):
			next, nextKey = i, k
		}
	}
	if best < 0 {
		return Target{}, false
	}
	if next >= 0 && !nextKey.cold && r.spills(targets[best].Headroom) {
		return targets[next], true
	}
	return targets[best], true
}

// Rank orders the usable targets for client, best first: Rank(…)[0] is what
// Choose answers, and the rest are where the HTTP front retries. Unusable
// targets are left out; the result is a new slice (the Targets are shallow
// copies) and is empty when none is usable.
func Rank(p Policy, targets []Target, client Client, site string) []Target {
	r := newRanker(p, client, site)
	keys := make([]rankKey, 0, len(targets))
	for i := range targets {
		if targets[i].Usable() {
			keys = append(keys, r.key(&targets[i], i))
		}
	}
	slices.SortFunc(keys, rankKey.compare)
	if len(keys) > 1 && !keys[1].cold && r.spills(targets[keys[0].idx].Headroom) {
		keys[0], keys[1] = keys[1], keys[0]
	}
	out := make([]Target, len(keys))
	for i, k := range keys {
		out[i] = targets[k.idx]
	}
	return out
}

// rankKey orders targets: warm before cold, then lower tier, then lower
// primary, then lower secondary, then cluster name and input position (a
// strict total order, so every balancer agrees).
type rankKey struct {
	// cold: no ready replica (Target.Cold). Every warm target ranks first,
	// whatever the policy says of the rest.
	cold      bool
	tier      int
	primary   float64
	secondary float64
	name      string
	idx       int
}

func (a rankKey) compare(b rankKey) int {
	if a.cold != b.cold {
		if a.cold {
			return 1
		}
		return -1
	}
	if c := cmp.Compare(a.tier, b.tier); c != 0 {
		return c
	}
	if c := cmp.Compare(a.primary, b.primary); c != 0 {
		return c
	}
	if c := cmp.Compare(a.secondary, b.secondary); c != 0 {
		return c
	}
	if c := cmp.Compare(a.name, b.name); c != 0 {
		return c
	}
	return cmp.Compare(a.idx, b.idx)
}

func (a rankKey) less(b rankKey) bool { return a.compare(b) < 0 }

type ranker struct {
	kind      Kind
	order     []string // FailoverOrder; short, so searched rather than mapped
	client    Client
	site      string
	threshold float64
	spillAt   float64 // the client's fixed point in [0,1) for spill
}

func newRanker(p Policy, client Client, site string) ranker {
	r := ranker{
		kind:      p.Kind,
		order:     p.FailoverOrder,
		client:    client,
		site:      site,
		threshold: p.spillThreshold(),
		spillAt:   unit(mix(client.Key ^ spillSalt)),
	}
	switch r.kind {
	case Geo, Latency, Weighted, Failover:
	default:
		r.kind = Geo
	}
	return r
}

// spills says whether this client leaves a best target with headroom h for
// the next best: the share of clients that spill grows linearly from 0 at
// the threshold to 1 at zero headroom, and a client that spills at some
// headroom also spills at every lower one. Callers spill only to a warm
// next best: a cold start is no relief for a busy warm target, and spreading
// clients over cold targets would wake several for one trickle of demand.
func (r *ranker) spills(h float64) bool {
	if r.threshold <= 0 || h >= r.threshold {
		return false
	}
	share := (r.threshold - h) / r.threshold
	return r.spillAt < share
}

func (r *ranker) key(t *Target, idx int) rankKey {
	k := r.policyKey(t, idx)
	k.cold = t.cold()
	return k
}

// policyKey orders t as the policy alone would.
func (r *ranker) policyKey(t *Target, idx int) rankKey {
	k := rankKey{name: t.Cluster, idx: idx}
	switch r.kind {
	case Latency:
		if rtt, ok := t.RTT[r.site]; ok && r.site != "" {
			k.primary = rtt.Seconds()
			k.secondary = r.distance(t)
			return k
		}
		// Unmeasured from this site: after every measured target, in the
		// order geo steering would use.
		g := r.geoKey(t)
		k.tier = 1 + g.tier
		k.primary, k.secondary = g.primary, g.secondary
		return k
	case Weighted:
		w := float64(t.Weight)
		if w <= 0 {
			w, k.tier = 1, 1
		}
		// Weighted rendezvous hashing: -ln(u)/w is an exponential variable
		// of rate w, and the smallest of them is target i with probability
		// w_i / Σw. The full order is a weighted choice without
		// replacement, so the next best is a fair retry.
		k.primary = -math.Log(rendezvous(r.client.Key, t.Cluster)) / w
		return k
	case Failover:
		return r.failoverKey(t, idx)
	default:
		g := r.geoKey(t)
		g.name, g.idx = k.name, k.idx
		return g
	}
}

// geoKey: nearest first when the client is located, the failover order
// otherwise.
func (r *ranker) geoKey(t *Target) rankKey {
	if !r.client.HasLocation {
		return r.failoverKey(t, 0)
	}
	return rankKey{primary: r.distance(t), secondary: -rendezvous(r.client.Key, t.Cluster), name: t.Cluster}
}

// failoverKey: regions in FailoverOrder first, in order, then the rest;
// within a tier the nearest when the client is located, else spread over
// targets by client key.
func (r *ranker) failoverKey(t *Target, idx int) rankKey {
	tier := slices.Index(r.order, t.Region)
	if tier < 0 {
		tier = len(r.order)
	}
	return rankKey{
		tier:      tier,
		primary:   r.distance(t),
		secondary: -rendezvous(r.client.Key, t.Cluster),
		name:      t.Cluster,
		idx:       idx,
	}
}

// distance from the client in km, or 0 when the client is not located.
func (r *ranker) distance(t *Target) float64 {
	if !r.client.HasLocation {
		return 0
	}
	return geo.Haversine(r.client.Lat, r.client.Lon, t.Lat, t.Lon)
}

const spillSalt = 0x5b1d_7e6f_a3c4_9e21

// mix is SplitMix64's finalizer: a bijection that spreads every input bit
// over the output.
func mix(x uint64) uint64 {
	x += 0x9e3779b97f4a7c15
	x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9
	x = (x ^ (x >> 27)) * 0x94d049bb133111eb
	return x ^ (x >> 31)
}

// unit maps a hash to [0, 1).
func unit(h uint64) float64 { return float64(h>>11) / (1 << 53) }

// rendezvous is the client's hash for one target, in (0, 1).
func rendezvous(key uint64, cluster string) float64 {
	// FNV-1a of the name, mixed with the key.
	h := uint64(14695981039346656037)
	for i := 0; i < len(cluster); i++ {
		h ^= uint64(cluster[i])
		h *= 1099511628211
	}
	return (float64(mix(key^mix(h))>>11) + 0.5) / (1 << 53)
}
