package placement

import (
	"cmp"
	"fmt"
	"math"
	"slices"
	"strconv"
	"strings"
)

// Place places one model on clusters. previous maps cluster names to the
// replicas the model held there before (nil for a first placement; a
// cluster listed with 0 held the model scaled to zero); the placement
// keeps them where it can. The clusters' Free capacity must not count
// those replicas.
func Place(m Model, clusters []Cluster, previous map[string]int32) Result {
	p := newPlacer(newFleet(clusters))
	return p.place(&m, previous)
}

// PlaceAll places every model on clusters, one after the other, and
// subtracts what each model's replicas request from the clusters' capacity
// so that later models see only what is left. previous maps a model's Key
// to its previous placement (cluster name to replicas); the clusters' Free
// capacity must count none of those replicas. Each model's previous
// replicas keep their room until that model is placed again, so that the
// replicas that must move (off a failed or shrunk cluster) do not push
// other models' replicas out.
//
// The order is stable and does not depend on capacity: models with more
// GPUs per replica first (the scarcest resource goes to those that need
// most of it), then models restricted to AllowedRegions (they have fewer
// choices), then by Key. When several models share a Key only the first
// one in models is placed.
func PlaceAll(models []Model, clusters []Cluster, previous map[string]map[string]int32) map[string]Result {
	f := newFleet(clusters)
	p := newPlacer(f)
	order := placementOrder(models)

	// Every model's previous replicas hold their room until that model is
	// placed again, so that replicas moving off a failed or shrunk cluster
	// take only room nobody holds, and do not push other models' replicas
	// out in turn. Where a cluster no longer has room for all of them, the
	// models placed first keep theirs. Holds shrink room only: scores are
	// computed on the basis, which does not count them.
	var grants []grant
	var held []int // grants[held[k]:held[k+1]] are order[k]'s
	if len(previous) > 0 {
		f.separateBasis()
		p.holding = true
		held = make([]int, len(order)+1)
		for k, i := range order {
			m := &models[i]
			mode, product := f.gpuOf(&m.PerReplica)
			for name, n := range previous[m.Key] {
				if c, ok := f.byName[name]; ok && n > 0 {
					fit, _ := f.room.fit(int(c), &m.PerReplica, mode, product)
					n := min(int64(n), fit)
					f.room.take(int(c), n, &m.PerReplica, mode, product, &grants)
				}
			}
			held[k+1] = len(grants)
		}
	}

	out := make(map[string]Result, len(order))
	for k, i := range order {
		m := &models[i]
		if held != nil {
			f.room.giveBack(grants[held[k]:held[k+1]])
		}
		out[m.Key] = p.place(m, previous[m.Key])
		mode, product := f.gpuOf(&m.PerReplica)
		for _, pl := range p.placed {
			f.room.take(int(pl.cluster), pl.replicas, &m.PerReplica, mode, product, nil)
			if f.basis != f.room {
				f.basis.take(int(pl.cluster), pl.replicas, &m.PerReplica, mode, product, nil)
			}
		}
	}
	return out
}

// placementOrder returns the indices of models in the order PlaceAll
// places them, without duplicate keys.
func placementOrder(models []Model) []int {
	seen := make(map[string]struct{}, len(models))
	order := make([]int, 0, len(models))
	for i := range models {
		if _, dup := seen[models[i].Key]; dup {
			continue
		}
		seen[models[i].Key] = struct{}{}
		order = append(order, i)
	}
	slices.SortFunc(order, func(a, b int) int {
		ma, mb := &models[a], &models[b]
		if c := cmp.Compare(max(mb.PerReplica.GPUs, 0), max(ma.PerReplica.GPUs, 0)); c != 0 {
			return c
		}
		if ra, rb := len(ma.AllowedRegions) > 0, len(mb.AllowedRegions) > 0; ra != rb {
			if ra {
				return -1
			}
			return 1
		}
		return strings.Compare(ma.Key, mb.Key)
	})
	return order
}

// candidate is a cluster that passed the filter, with its score.
type candidate struct {
	c      int32   // cluster index
	prev   int32   // replicas it held before; -1 when it did not hold the model
	fit    int64   // replicas that fit in the basis (free + addable)
	room   int64   // replicas that fit in the room (less what others hold)
	out    bool    // no room: counts in the normalisation, never chosen
	dist   float64 // demand-weighted distance, km
	prox   float64 // proximity score, 0..100
	cost   float64 // cost score, 0..100
	capa   float64 // capacity score, 0..100
	score  float64 // weighted score plus stability bonus
	why    uint8   // whyNone, whySpread or whyRoom
	limit  int64   // min(fit, MaxPerCluster)
	assign int64   // replicas assigned
}

const (
	whyNone uint8 = iota
	whySpread
	whyRoom
)

type demandAt struct {
	region int32
	weight float64 // share of the model's requests/s
}

type placed struct {
	cluster  int32
	replicas int64
}

// placer places models on one fleet, reusing its scratch space from model
// to model.
type placer struct {
	f *fleet

	allowed    []bool  // by region, for the current model
	regionBest []int32 // by region: best candidate index, -1 when none
	prev       []int32 // by cluster: previous replicas of the current model
	prevSet    []int32 // clusters whose prev is set

	cands   []candidate
	excl    []Exclusion
	heap    []int32
	chosen  []int32 // candidate indices
	regions []int32 // regions with a candidate
	pairs   []int32 // selector label pairs
	demand  []demandAt
	weights []int64
	shares  []int64
	rank    []int32

	// placed is what the last model placed, for PlaceAll to take.
	placed []placed
	// holding is set when the fleet's room and basis differ.
	holding bool
}

func newPlacer(f *fleet) *placer {
	R, n := len(f.regions), len(f.names)
	return &placer{
		f:          f,
		allowed:    make([]bool, R),
		regionBest: make([]int32, R),
		prev:       slices.Repeat([]int32{-1}, n),
		cands:      make([]candidate, 0, n),
		excl:       make([]Exclusion, 0, n),
	}
}

// Why a cluster was filtered out, for counting.
const (
	outUnhealthy = iota
	outRegion
	outSelector
	outGPU
	outRoom
	outKinds
)

// limits is a model's constraints with defaults applied.
type limits struct {
	minPer, maxPer        int64
	minRegions            int64
	maxClusters, maxTotal int64
	baseline              int64
}

func (p *placer) place(m *Model, previous map[string]int32) Result {
	f := p.f
	n := len(f.names)
	var res Result
	var problems []string
	p.placed = p.placed[:0]

	// Constraints, with defaults; contradictions are reported and the
	// placement goes on with the hard one winning.
	var l limits
	l.minPer = int64(max(m.MinPerCluster, 0))
	l.maxPer = int64(m.MaxPerCluster)
	if l.maxPer <= 0 {
		l.maxPer = maxFit
	}
	if l.minPer > l.maxPer {
		if m.MaxPerCluster > 0 {
			problems = append(problems, fmt.Sprintf("minPerCluster %d exceeds maxPerCluster %d", l.minPer, l.maxPer))
		}
		l.minPer = l.maxPer // beyond maxFit no cluster has room anyway
	}
	l.minRegions = int64(max(m.MinRegions, 1))
	l.maxClusters = int64(m.MaxClusters)
	if l.maxClusters <= 0 {
		l.maxClusters = math.MaxInt32
	}
	if l.maxClusters < l.minRegions {
		problems = append(problems, fmt.Sprintf("needs %d regions, but maxClusters %d allows only %d clusters", l.minRegions, l.maxClusters, l.maxClusters))
	}
	l.maxTotal = int64(m.MaxTotal)
	if l.maxTotal <= 0 {
		l.maxTotal = math.MaxInt32
	}
	l.baseline = int64(m.Replicas)
	if l.baseline <= 0 {
		l.baseline = l.minPer * l.minRegions
	}
	l.baseline = min(l.baseline, l.maxTotal)
	minTotalReported := false
	if need := l.minPer * min(l.minRegions, l.maxClusters); need > l.maxTotal {
		problems = append(problems, fmt.Sprintf("minPerCluster %d in each of %d regions needs %d replicas, more than maxTotal %d",
			l.minPer, l.minRegions, need, l.maxTotal))
		minTotalReported = true
	}
	// A cluster can never get more than maxTotal, so it needs no more room.
	l.minPer = min(l.minPer, l.maxTotal)

	// Data residency.
	restricted := len(m.AllowedRegions) > 0
	if restricted {
		clear(p.allowed)
		var unknown []string
		for _, r := range m.AllowedRegions {
			if id, ok := f.regionID[r]; ok {
				p.allowed[id] = true
			} else if !slices.Contains(unknown, r) {
				unknown = append(unknown, r)
			}
		}
		if len(unknown) > 0 {
			slices.Sort(unknown)
			if len(unknown) == 1 {
				problems = append(problems, fmt.Sprintf("allowed region %q is unknown: no cluster is in it", unknown[0]))
			} else {
				problems = append(problems, fmt.Sprintf("allowed regions %s are unknown: no cluster is in them", quoteList(unknown)))
			}
		}
	}

	// Selector: every key=value must be a pair some cluster carries.
	p.pairs = p.pairs[:0]
	selectNone := false
	for k, v := range m.Selector {
		id, ok := f.pairID[labelPair{k, v}]
		if !ok {
			selectNone = true
			break
		}
		p.pairs = append(p.pairs, id)
	}

	gpuMode, product := f.gpuOf(&m.PerReplica)

	// Previous replicas, by cluster index. A cluster listed with 0 replicas held the model too (scaled to zero).
	for _, c := range p.prevSet {
		p.prev[c] = -1
	}
	p.prevSet = p.prevSet[:0]
	for name, v := range previous {
		if c, ok := f.byName[name]; ok && v >= 0 {
			p.prev[c] = v
			p.prevSet = append(p.prevSet, c)
		}
	}

	// Filter. The reasons that depend on the model are built once, when
	// first needed.
	var rs reasons
	var counts [outKinds]int
	need := max(l.minPer, 1)
	b := f.basis
	P := b.products
	p.cands, p.excl = p.cands[:0], p.excl[:0]
	eligible := 0
	for c := 0; c < n; c++ {
		if !f.healthy[c] {
			p.exclude(c, "unhealthy")
			counts[outUnhealthy]++
			continue
		}
		if restricted && !p.allowed[f.region[c]] {
			p.exclude(c, f.notAllowed[f.region[c]])
			counts[outRegion]++
			continue
		}
		if selectNone || !p.matches(c) {
			p.exclude(c, rs.selector(m))
			counts[outSelector]++
			continue
		}
		switch gpuMode {
		case gpuTyped:
			if !f.gpuHas[c*P+int(product)] {
				p.exclude(c, rs.gpuType(m))
				counts[outGPU]++
				continue
			}
		case gpuAny:
			if !f.anyGPU[c] {
				p.exclude(c, rs.gpuType(m))
				counts[outGPU]++
				continue
			}
		case gpuUnknown:
			p.exclude(c, rs.gpuType(m))
			counts[outGPU]++
			continue
		}
		fit, short := b.fit(c, &m.PerReplica, gpuMode, product)
		// Clusters without room stay candidates, out of the choice: the
		// scores are normalised over every cluster the model may run on,
		// so that capacity coming and going elsewhere does not shift them.
		room, out := fit, fit < need
		if out {
			p.exclude(c, rs.room(m, short, need))
			counts[outRoom]++
		} else if p.holding {
			// Room the previous replicas of other models hold is not
			// free; a cluster that held the model scaled to zero keeps it.
			room, _ = f.room.fit(c, &m.PerReplica, gpuMode, product)
			if out = room < need && !(l.minPer == 0 && p.prev[c] >= 0); out {
				p.exclude(c, rs.held(m, need))
				counts[outRoom]++
			}
		}
		if !out {
			eligible++
		}
		p.cands = append(p.cands, candidate{c: int32(c), prev: p.prev[c], fit: fit, room: room, out: out})
	}
	if len(p.excl) > 0 {
		res.Excluded = slices.Clone(p.excl)
	}
	res.Eligible = eligible
	if eligible == 0 {
		problems = append(problems, noEligible(n, counts, need))
		res.Problem = strings.Join(problems, "; ")
		return res
	}

	p.score(m)
	chosen := p.choose(&l, &problems)
	p.divide(&l)

	// Check what the division reached against what was asked.
	var total, sumLimit int64
	for _, i := range chosen {
		total += p.cands[i].assign
		sumLimit += p.cands[i].limit
	}
	desired := max(l.baseline, l.minPer*int64(len(chosen)))
	if total < desired {
		switch {
		case sumLimit < desired && int64(len(chosen)) >= l.maxClusters && len(chosen) < eligible:
			problems = append(problems, fmt.Sprintf("needs %d replicas, the %d clusters maxClusters allows have room for only %d", desired, len(chosen), sumLimit))
		case sumLimit < desired:
			problems = append(problems, fmt.Sprintf("needs %d replicas, the eligible clusters have room for only %d", desired, sumLimit))
		case !minTotalReported:
			problems = append(problems, fmt.Sprintf("minPerCluster %d on each of %d clusters needs %d replicas, more than maxTotal %d",
				l.minPer, len(chosen), l.minPer*int64(len(chosen)), l.maxTotal))
		}
	}

	// Assignments, in cluster-name order; a chosen cluster left with no
	// replicas (only when maxTotal is too small) is dropped unless the
	// model allows zero per cluster.
	slices.Sort(chosen)
	res.Assignments = make([]Assignment, 0, len(chosen))
	for _, i := range chosen {
		cd := &p.cands[i]
		if cd.assign == 0 && l.minPer > 0 {
			continue
		}
		res.Assignments = append(res.Assignments, Assignment{
			Cluster:  f.names[cd.c],
			Region:   f.regions[f.region[cd.c]],
			Replicas: int32(cd.assign),
			Score:    cd.score,
			Reason:   p.reason(cd, &l),
		})
		res.Replicas += int32(cd.assign)
		if cd.assign > 0 {
			p.placed = append(p.placed, placed{cd.c, cd.assign})
		}
	}
	res.Satisfied = len(problems) == 0
	res.Problem = strings.Join(problems, "; ")
	return res
}

func (p *placer) exclude(c int, reason string) {
	p.excl = append(p.excl, Exclusion{Cluster: p.f.names[c], Reason: reason})
}

// matches reports whether cluster c carries every selector pair.
func (p *placer) matches(c int) bool {
	w, bit := c>>6, uint64(1)<<(c&63)
	for _, id := range p.pairs {
		if p.f.pairBits[id][w]&bit == 0 {
			return false
		}
	}
	return true
}

// score gives every candidate its score, three criteria from 0 to 100.
// The candidates are every cluster the model may run on (healthy, allowed,
// matching, with its GPU product), with room or not:
//
//	proximity = 100 × (1 − (d − dmin) / max(dmax − dmin, ProximityRangeKm))
//	            d is the candidate's great-circle distance in km to the
//	            demand regions, averaged with their requests/s as weights;
//	            dmin and dmax are its extremes over the candidates. The
//	            nearest candidate scores 100 and the farthest 0, unless they
//	            are less than ProximityRangeKm apart, when the scale is
//	            ProximityRangeKm so that clusters a few hundred km apart
//	            score about the same. 100 for all without demand; 0 for a
//	            cluster with no known location.
//	cost      = 100 × cmin / c, c the CostPerGPUHour and cmin the lowest
//	            over the candidates: the cheapest scores 100, one twice as
//	            dear 50 (when the cheapest is free, cmin = 0: the free ones
//	            100, the others 0).
//	capacity  = 100 × fit / fitmax, fit the replicas that fit, fitmax the
//	            largest fit.
//	score     = (wp×proximity + wc×cost + wk×capacity) / (wp + wc + wk)
//	            + StabilityBonus when the cluster held the model before
//	            (0 plus the bonus when every weight is 0).
func (p *placer) score(m *Model) {
	f := p.f
	R := len(f.regions)

	p.demand = p.demand[:0]
	var rps float64
	for _, d := range m.Demand {
		if !(d.RequestsPerSecond > 0) || math.IsInf(d.RequestsPerSecond, 0) {
			continue
		}
		r, ok := f.regionID[d.Region]
		if !ok || f.regionCenter[r].zero() {
			continue
		}
		p.demand = append(p.demand, demandAt{r, d.RequestsPerSecond})
		rps += d.RequestsPerSecond
	}
	for i := range p.demand {
		p.demand[i].weight /= rps
	}

	dmin, dmax := math.Inf(1), math.Inf(-1)
	cmin := math.Inf(1)
	var fitMax int64 = 1
	for i := range p.cands {
		cd := &p.cands[i]
		if len(p.demand) > 0 {
			base, d := int(cd.c)*R, 0.0
			for _, dm := range p.demand {
				d += dm.weight * f.distKm[base+int(dm.region)]
			}
			cd.dist = d
			if d == d { // not NaN
				dmin, dmax = min(dmin, d), max(dmax, d)
			}
		}
		cmin = min(cmin, f.cost[cd.c])
		fitMax = max(fitMax, cd.fit)
	}
	wp := float64(max(m.Weights.Proximity, 0))
	wc := float64(max(m.Weights.Cost, 0))
	wk := float64(max(m.Weights.Capacity, 0))
	w := wp + wc + wk
	for i := range p.cands {
		cd := &p.cands[i]
		cd.prox = 100
		if len(p.demand) > 0 {
			switch {
			case cd.dist != cd.dist:
				cd.prox = 0
			default:
				cd.prox = 100 * (1 - (cd.dist-dmin)/max(dmax-dmin, ProximityRangeKm))
			}
		}
		switch c := f.cost[cd.c]; {
		case c <= cmin:
			cd.cost = 100
		default:
			cd.cost = 100 * cmin / c
		}
		cd.capa = 100 * float64(cd.fit) / float64(fitMax)
		cd.score = 0
		if w > 0 {
			cd.score = (wp*cd.prox + wc*cd.cost + wk*cd.capa) / w
		}
		if cd.prev >= 0 {
			cd.score += StabilityBonus
		}
	}
}

// better orders candidates: higher score first, then lower cluster index
// (name).
func (p *placer) better(i, j int32) bool {
	a, b := &p.cands[i], &p.cands[j]
	return a.score > b.score || a.score == b.score && a.c < b.c
}

// choose picks the clusters: first the best cluster of each of the best
// MinRegions regions (regions ranked by their best cluster), then more
// clusters by score while the chosen ones' room does not cover the
// baseline, up to MaxClusters. It returns the chosen candidate indices,
// best first.
func (p *placer) choose(l *limits, problems *[]string) []int32 {
	f := p.f
	for r := range p.regionBest {
		p.regionBest[r] = -1
	}
	p.regions = p.regions[:0]
	for i := range p.cands {
		if p.cands[i].out {
			continue
		}
		r := f.region[p.cands[i].c]
		switch b := p.regionBest[r]; {
		case b < 0:
			p.regions = append(p.regions, r)
			p.regionBest[r] = int32(i)
		case p.better(int32(i), b):
			p.regionBest[r] = int32(i)
		}
	}
	if int64(len(p.regions)) < l.minRegions {
		names := make([]string, len(p.regions))
		for i, r := range p.regions {
			names[i] = f.regions[r]
		}
		slices.Sort(names)
		*problems = append(*problems, fmt.Sprintf("needs %d regions, only %d allowed %s a healthy cluster with room: %s",
			l.minRegions, len(names), plural(len(names), "region has", "regions have"), strings.Join(names, ", ")))
	}
	slices.SortFunc(p.regions, func(a, b int32) int { return p.compare(p.regionBest[a], p.regionBest[b]) })

	p.chosen = p.chosen[:0]
	var covered int64
	add := func(i int32, why uint8) {
		cd := &p.cands[i]
		cd.why = why
		cd.limit = min(cd.room, l.maxPer)
		covered += cd.limit
		p.chosen = append(p.chosen, i)
	}
	spread := min(l.minRegions, l.maxClusters, int64(len(p.regions)))
	for _, r := range p.regions[:spread] {
		add(p.regionBest[r], whySpread)
	}
	if covered < l.baseline && int64(len(p.chosen)) < l.maxClusters {
		p.heap = p.heap[:0]
		for i := range p.cands {
			if p.cands[i].why == whyNone && !p.cands[i].out {
				p.heap = append(p.heap, int32(i))
			}
		}
		for i := len(p.heap)/2 - 1; i >= 0; i-- {
			p.siftDown(i)
		}
		for covered < l.baseline && int64(len(p.chosen)) < l.maxClusters && len(p.heap) > 0 {
			top := p.heap[0]
			last := len(p.heap) - 1
			p.heap[0] = p.heap[last]
			p.heap = p.heap[:last]
			p.siftDown(0)
			add(top, whyRoom)
		}
	}
	slices.SortFunc(p.chosen, p.compare)
	return p.chosen
}

// compare is better as a three-way comparison.
func (p *placer) compare(i, j int32) int {
	switch {
	case i == j:
		return 0
	case p.better(i, j):
		return -1
	}
	return 1
}

func (p *placer) siftDown(i int) {
	h := p.heap
	for {
		best, l, r := i, 2*i+1, 2*i+2
		if l < len(h) && p.better(h[l], h[best]) {
			best = l
		}
		if r < len(h) && p.better(h[r], h[best]) {
			best = r
		}
		if best == i {
			return
		}
		h[i], h[best] = h[best], h[i]
		i = best
	}
}

// divide shares the total among the chosen clusters (p.chosen, best
// first). The total is the baseline, raised to MinPerCluster on every
// chosen cluster, capped by MaxTotal and by the chosen clusters' room.
// Each cluster starts from what it held before, clamped to
// [MinPerCluster, min(fit, MaxPerCluster)]; then the difference to the
// total is added in shares weighted by each cluster's remaining room, or
// taken away in shares weighted by what each holds above MinPerCluster, so
// only what must move moves. With no previous placement this is a
// division weighted by room, as Karmada's AvailableReplicas.
func (p *placer) divide(l *limits) {
	chosen := p.chosen
	var sumLimit, sumLo int64
	for _, i := range chosen {
		sumLimit += p.cands[i].limit
		sumLo += l.minPer
	}
	total := min(max(l.baseline, sumLo), l.maxTotal, sumLimit)

	if sumLo > total {
		// MaxTotal cannot give every chosen cluster its minimum: the best
		// clusters get theirs.
		left := total
		for _, i := range chosen {
			cd := &p.cands[i]
			cd.assign = min(l.minPer, left)
			left -= cd.assign
		}
		return
	}
	var sum int64
	for _, i := range chosen {
		cd := &p.cands[i]
		cd.assign = min(max(int64(cd.prev), l.minPer), cd.limit)
		sum += cd.assign
	}
	p.weights = p.weights[:0]
	switch {
	case sum > total:
		for _, i := range chosen {
			p.weights = append(p.weights, p.cands[i].assign-l.minPer)
		}
		p.share(total - sumLo)
		for k, i := range chosen {
			p.cands[i].assign = l.minPer + p.shares[k]
		}
	case sum < total:
		for _, i := range chosen {
			p.weights = append(p.weights, p.cands[i].limit-p.cands[i].assign)
		}
		p.share(total - sum)
		for k, i := range chosen {
			p.cands[i].assign += p.shares[k]
		}
	}
}

// share divides n into p.shares in proportion to p.weights (whose sum is
// at least n): each gets the floor of its exact share, and the remainder
// goes one by one to the largest fractional parts, earlier entries first
// on ties. No share exceeds its weight.
func (p *placer) share(n int64) {
	k := len(p.weights)
	p.shares = slices.Grow(p.shares[:0], k)[:k]
	var sum int64
	for _, w := range p.weights {
		sum += w
	}
	if n <= 0 || sum <= 0 {
		clear(p.shares)
		return
	}
	left := n
	p.rank = p.rank[:0]
	for i, w := range p.weights {
		// n ≤ 2^31 and w ≤ 2^30 (maxFit), so n*w cannot overflow.
		p.shares[i] = n * w / sum
		left -= p.shares[i]
		p.rank = append(p.rank, int32(i))
	}
	if left == 0 {
		return
	}
	rem := func(i int32) int64 { return n * p.weights[i] % sum }
	slices.SortStableFunc(p.rank, func(a, b int32) int { return cmp.Compare(rem(b), rem(a)) })
	for _, i := range p.rank[:left] {
		p.shares[i]++
	}
}

// reason explains why a chosen cluster was chosen, with its score.
func (p *placer) reason(cd *candidate, l *limits) string {
	b := make([]byte, 0, 128)
	switch {
	case cd.why == whySpread && l.minRegions > 1:
		b = append(b, "best in region "...)
		b = append(b, p.f.regions[p.f.region[cd.c]]...)
		b = append(b, " (spread over "...)
		b = strconv.AppendInt(b, l.minRegions, 10)
		b = append(b, " regions)"...)
	case cd.why == whySpread:
		b = append(b, "highest score"...)
	default:
		b = append(b, "more room for "...)
		b = strconv.AppendInt(b, l.baseline, 10)
		b = append(b, " replicas"...)
	}
	b = append(b, "; score "...)
	b = strconv.AppendFloat(b, cd.score, 'f', 1, 64)
	b = append(b, ": proximity "...)
	b = strconv.AppendFloat(b, cd.prox, 'f', 0, 64)
	b = append(b, ", cost "...)
	b = strconv.AppendFloat(b, cd.cost, 'f', 0, 64)
	b = append(b, ", capacity "...)
	b = strconv.AppendFloat(b, cd.capa, 'f', 0, 64)
	if cd.prev >= 0 {
		b = append(b, ", stability +"...)
		b = strconv.AppendFloat(b, StabilityBonus, 'f', 0, 64)
	}
	return string(b)
}

func noEligible(clusters int, counts [outKinds]int, need int64) string {
	if clusters == 0 {
		return "no eligible cluster: the fleet has no clusters"
	}
	var parts []string
	add := func(n int, what string) {
		if n > 0 {
			parts = append(parts, strconv.Itoa(n)+" "+what)
		}
	}
	add(counts[outUnhealthy], "unhealthy")
	add(counts[outRegion], "in regions not allowed")
	add(counts[outSelector], "not matching the selector")
	add(counts[outGPU], "without the GPU type")
	add(counts[outRoom], "without room for "+strconv.FormatInt(need, 10)+" "+plural(int(need), "replica", "replicas"))
	return "no eligible cluster: " + strings.Join(parts, ", ")
}

func plural(n int, one, many string) string {
	if n == 1 {
		return one
	}
	return many
}

func quoteList(s []string) string {
	q := make([]string, len(s))
	for i, v := range s {
		q[i] = strconv.Quote(v)
	}
	return strings.Join(q, ", ")
}
