package agent

import (
	"fmt"
	"maps"
	"math"
	"slices"
	"strconv"
	"sync"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"meridian.dev/meridian/agent/process"
	v1 "meridian.dev/meridian/crds/v1alpha1"
)

// applyVersions makes the replica pools match spec.versions — one pool
// per version, or one pool of every version when the list is empty — and
// settles them. A version no longer listed retires: it keeps serving as a
// fallback at weight 0 until every listed version with weight has a
// ready replica, so changing versions never leaves a cluster without one.
// Called with l.mu held.
func (l *local) applyVersions(spec v1.ModelDeploymentSpec) {
	want := map[int64]int32{}
	for _, v := range spec.Versions {
		want[v.Version] = v.Weight
	}
	if len(want) == 0 {
		want[0] = 100
	}
	for v := range want {
		if l.pools[v] != nil {
			continue
		}
		if sup := l.retiring[v]; sup != nil { // back before it was gone
			l.pools[v] = sup
			delete(l.retiring, v)
			continue
		}
		l.pools[v] = l.newPool(v)
	}
	for v, sup := range l.pools {
		if _, ok := want[v]; !ok {
			l.retiring[v] = sup
			delete(l.pools, v)
		}
	}
	l.weights = want
	l.affinity = process.Affinity{Mode: string(spec.Traffic.SessionAffinity), Key: spec.Traffic.AffinityKey}
	l.settle()
}

// settle routes the front and sizes the pools, make before break: l.current
// is shared by weight (all of it to a single pool; with several, each
// version its share, at least one replica, so a version at weight 0 stays
// warm); no pool shrinks while another is short of its share of ready
// replicas (a single pool scales as the autoscaler says); and retiring pools stop only once every version with weight
// has a ready replica. The agent's loop calls it every sync period until
// it has settled. Called with l.mu held.
func (l *local) settle() {
	uncovered := false
	target := map[int64]int{}
	short := map[int64]bool{}
	for v, sup := range l.pools {
		n := l.current
		if len(l.pools) > 1 {
			n = max(1, int32(math.Ceil(float64(l.current)*float64(l.weights[v])/100)))
		}
		target[v] = int(n)
		ready := readyCount(sup)
		short[v] = ready < int(n)
		uncovered = uncovered || (l.weights[v] > 0 && ready == 0)
	}
	for v, sup := range l.pools {
		n := target[v]
		for u := range short {
			if running := len(sup.Replicas()); u != v && short[u] && n < running {
				n = running // another version is still starting: scale up first
			}
		}
		sup.Scale(n)
	}
	if !uncovered {
		for v, sup := range l.retiring {
			go sup.Close() // each replica drains what it was sent
			delete(l.retiring, v)
		}
	}
	routes := process.Routes{Affinity: l.affinity}
	for v, sup := range l.pools {
		routes.Pools = append(routes.Pools, process.Pool{Version: v, Weight: l.weights[v], Replicas: sup})
	}
	for v, sup := range l.retiring {
		routes.Pools = append(routes.Pools, process.Pool{Version: v, Replicas: sup})
	}
	l.front.SetRoutes(routes)
}

func readyCount(sup *process.Supervisor) int {
	n := 0
	for _, r := range sup.Replicas() {
		if r.Ready {
			n++
		}
	}
	return n
}

// newPool starts supervising the replicas of one version (0: every
// version).
func (l *local) newPool(version int64) *process.Supervisor {
	repo := l.spec.Model.Repository
	if repo == "" {
		repo = l.a.opts.Process.ModelRepository
	}
	args := []string{"--models", repo, "--analyze-model", l.model, "--log-format", "json"}
	name, prefix := l.key.String(), "r"
	if version > 0 {
		args = append(args, "--only-version", fmt.Sprintf("%s=%d", l.model, version))
		name, prefix = fmt.Sprintf("%s@v%d", name, version), fmt.Sprintf("v%d-r", version)
	}
	return process.New(process.Options{
		Binary: l.a.opts.Process.Binary, Args: append(args, l.a.opts.Process.ServeArgs...), Name: name, IDPrefix: prefix,
		Logger: l.a.log, OnChange: func() { l.a.notify(l.key) },
	})
}

// replicas are every pool's replicas, retiring ones included.
func (l *local) replicas() []process.Replica {
	l.mu.Lock()
	defer l.mu.Unlock()
	var out []process.Replica
	for _, sup := range l.pools {
		out = append(out, sup.Replicas()...)
	}
	for _, sup := range l.retiring {
		out = append(out, sup.Replicas()...)
	}
	return out
}

// versionStatus is status.versions: each listed version's replicas and
// the requests the front sent it.
func (l *local) versionStatus() []v1.VersionStatus {
	l.mu.Lock()
	defer l.mu.Unlock()
	var out []v1.VersionStatus
	for v, sup := range l.pools {
		if v == 0 {
			continue
		}
		st := v1.VersionStatus{Version: v, Weight: l.weights[v]}
		for _, r := range sup.Replicas() {
			st.Replicas++
			if r.Ready {
				st.ReadyReplicas++
			}
		}
		l.stats.fill(&st, l.a.opts.MetricsWindow)
		out = append(out, st)
	}
	slices.SortFunc(out, func(a, b v1.VersionStatus) int { return int(a.Version - b.Version) })
	return out
}

// versionStats count what the front sent each version: requests, errors
// and the latencies of the metrics window.
type versionStats struct {
	mu    sync.Mutex
	since time.Time
	by    map[int64]*versionCount
}

type versionCount struct {
	requests, errors int64
	predictions      map[string]int64
	latencies        []timedLatency // oldest first
}

type timedLatency struct {
	at time.Time
	d  time.Duration
}

// maxLatencies bounds the latencies kept per version (the p95 of the
// latest ones); maxLabels the labels counted one by one.
const (
	maxLatencies = 10000
	maxLabels    = 32
	otherLabels  = "(other)"
)

func newVersionStats() *versionStats {
	return &versionStats{since: time.Now(), by: map[int64]*versionCount{}}
}

// observe counts one answer; the front calls it for every request.
func (s *versionStats) observe(r process.Result, m *metrics, l *local) {
	m.versionRequests.WithLabelValues(l.key.Namespace, l.key.Name, strconv.FormatInt(r.Version, 10), strconv.Itoa(r.Code)).Inc()
	m.versionLatency.WithLabelValues(l.key.Namespace, l.key.Name, strconv.FormatInt(r.Version, 10)).Observe(r.Duration.Seconds())
	s.mu.Lock()
	defer s.mu.Unlock()
	c := s.by[r.Version]
	if c == nil {
		c = &versionCount{predictions: map[string]int64{}}
		s.by[r.Version] = c
	}
	c.requests++
	if r.Code >= 500 {
		c.errors++
	}
	if label := r.Prediction; label != "" && r.Code < 300 {
		if _, ok := c.predictions[label]; !ok && len(c.predictions) >= maxLabels {
			label = otherLabels
		}
		c.predictions[label]++
	}
	c.latencies = append(c.latencies, timedLatency{time.Now(), r.Duration})
	if len(c.latencies) > maxLatencies {
		c.latencies = slices.Delete(c.latencies, 0, len(c.latencies)-maxLatencies)
	}
}

// fill sets st's counts and its p95 over the window.
func (s *versionStats) fill(st *v1.VersionStatus, window time.Duration) {
	s.mu.Lock()
	defer s.mu.Unlock()
	st.Since = metav1.Time{Time: s.since}
	c := s.by[st.Version]
	if c == nil {
		return
	}
	st.Requests, st.Errors = c.requests, c.errors
	if len(c.predictions) > 0 {
		st.Predictions = maps.Clone(c.predictions)
	}
	cut := time.Now().Add(-window)
	i, _ := slices.BinarySearchFunc(c.latencies, cut, func(t timedLatency, cut time.Time) int { return t.at.Compare(cut) })
	c.latencies = c.latencies[i:]
	if len(c.latencies) == 0 {
		return
	}
	ds := make([]time.Duration, len(c.latencies))
	for j, t := range c.latencies {
		ds[j] = t.d
	}
	slices.Sort(ds)
	st.P95Latency = metav1.Duration{Duration: ds[int(math.Ceil(0.95*float64(len(ds))))-1]}
}
