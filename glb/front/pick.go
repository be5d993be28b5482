package front

import (
	"hash/fnv"
	"sync"
	"time"
)

// clusterState is what the front has learned about one cluster from its
// own traffic: how many requests it has outstanding there, and whether it
// is ejected for failing.
type clusterState struct {
	outstanding int64 // guarded by clusters.mu
	failures    int   // consecutive; guarded by clusters.mu
	ejectedTill time.Time
}

// clusters holds the state of every cluster the front has sent to. The map
// grows only with the fleet's cluster names.
type clusters struct {
	mu         sync.Mutex
	byName     map[string]*clusterState
	now        func() time.Time
	ejectAfter int
	ejectFor   time.Duration
}

func newClusters(o Options) *clusters {
	return &clusters{byName: make(map[string]*clusterState), now: o.Now, ejectAfter: o.EjectAfter, ejectFor: o.EjectFor}
}

// stateLocked returns the state of name, creating it; c.mu must be held.
func (c *clusters) stateLocked(name string) *clusterState {
	s := c.byName[name]
	if s == nil {
		s = &clusterState{}
		c.byName[name] = s
	}
	return s
}

// pick chooses the next candidate to send to and counts a request
// outstanding there: among those not yet tried, healthy ones before
// ejected ones; among those, the best (lowest) tier; within it, the
// affinity key's cluster when there is a key, otherwise the one with the
// fewest outstanding requests, the Router's order breaking ties.
func (c *clusters) pick(cands []Candidate, tried map[string]bool, key string) (Candidate, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	now := c.now()
	best := -1
	var bestEjected bool
	var bestScore uint64
	var bestOut int64
	for i, cand := range cands {
		if tried[cand.Cluster] {
			continue
		}
		s := c.stateLocked(cand.Cluster)
		ejected := now.Before(s.ejectedTill)
		if best >= 0 {
			b := cands[best]
			switch {
			case ejected != bestEjected:
				if ejected {
					continue
				}
			case cand.Tier != b.Tier:
				if cand.Tier > b.Tier {
					continue
				}
			case key != "":
				if affinityScore(key, cand.Cluster) <= bestScore {
					continue
				}
			default:
				if s.outstanding >= bestOut {
					continue
				}
			}
		}
		best, bestEjected, bestOut = i, ejected, s.outstanding
		if key != "" {
			bestScore = affinityScore(key, cand.Cluster)
		}
	}
	if best < 0 {
		return Candidate{}, false
	}
	c.byName[cands[best].Cluster].outstanding++
	return cands[best], true
}

// done counts a request to cluster as finished.
func (c *clusters) done(cluster string) {
	c.mu.Lock()
	c.stateLocked(cluster).outstanding--
	c.mu.Unlock()
}

// succeeded records an answer from cluster, ending its run of failures.
func (c *clusters) succeeded(cluster string) {
	c.mu.Lock()
	c.stateLocked(cluster).failures = 0
	c.mu.Unlock()
}

// failed records a failure of cluster and reports whether it ejected the
// cluster. The run of failures starts again after an ejection, so a
// cluster back from one is ejected again only after EjectAfter more.
func (c *clusters) failed(cluster string) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	s := c.stateLocked(cluster)
	now := c.now()
	if now.Before(s.ejectedTill) {
		return false // tried as a last resort while ejected
	}
	s.failures++
	if s.failures < c.ejectAfter {
		return false
	}
	s.failures = 0
	s.ejectedTill = now.Add(c.ejectFor)
	return true
}

// affinityScore is the rendezvous (highest random weight) score of a key
// for a cluster.
func affinityScore(key, cluster string) uint64 {
	h := fnv.New64a()
	_, _ = h.Write([]byte(key))
	_, _ = h.Write([]byte{0})
	_, _ = h.Write([]byte(cluster))
	// FNV alone mixes the last bytes poorly; finish with a 64-bit mixer.
	x := h.Sum64()
	x ^= x >> 33
	x *= 0xff51afd7ed558ccd
	x ^= x >> 33
	x *= 0xc4ceb9fe1a85ec53
	x ^= x >> 33
	return x
}
