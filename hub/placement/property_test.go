package placement

import (
	"maps"
	"math/rand/v2"
	"reflect"
	"slices"
	"testing"
)

const propertyRounds = 300

// checkHardRules fails t when res breaks a rule placement must never
// break, whatever else happens: residency above all.
func checkHardRules(t *testing.T, m Model, clusters []Cluster, res Result) {
	t.Helper()
	byName := map[string]Cluster{}
	for _, c := range clusters {
		if _, dup := byName[c.Name]; !dup {
			byName[c.Name] = c
		}
	}
	var total int32
	seen := map[string]bool{}
	for _, a := range res.Assignments {
		c, ok := byName[a.Cluster]
		if !ok {
			t.Fatalf("%s: assigned to unknown cluster %s", m.Key, a.Cluster)
		}
		if len(m.AllowedRegions) > 0 && !slices.Contains(m.AllowedRegions, c.Region) {
			t.Fatalf("%s: RESIDENCY VIOLATED: %d replicas on %s in %s, allowed %v", m.Key, a.Replicas, a.Cluster, c.Region, m.AllowedRegions)
		}
		if a.Region != c.Region {
			t.Fatalf("%s: assignment says region %s, cluster %s is in %s", m.Key, a.Region, a.Cluster, c.Region)
		}
		if !c.Healthy {
			t.Fatalf("%s: placed on unhealthy %s", m.Key, a.Cluster)
		}
		for k, v := range m.Selector {
			if c.Labels[k] != v {
				t.Fatalf("%s: %s does not match selector %v", m.Key, a.Cluster, m.Selector)
			}
		}
		if g := m.PerReplica; g.GPUs > 0 && g.GPUType != "" {
			_, free := c.Free.GPUs[g.GPUType]
			_, add := c.Addable[g.GPUType]
			if !free && !add {
				t.Fatalf("%s: %s has no %s", m.Key, a.Cluster, g.GPUType)
			}
		}
		if m.MaxPerCluster > 0 && a.Replicas > m.MaxPerCluster {
			t.Fatalf("%s: %d replicas on %s, maxPerCluster %d", m.Key, a.Replicas, a.Cluster, m.MaxPerCluster)
		}
		if a.Replicas < 0 {
			t.Fatalf("%s: negative replicas on %s", m.Key, a.Cluster)
		}
		if seen[a.Cluster] {
			t.Fatalf("%s: %s assigned twice", m.Key, a.Cluster)
		}
		seen[a.Cluster] = true
		total += a.Replicas
	}
	for _, e := range res.Excluded {
		if seen[e.Cluster] {
			t.Fatalf("%s: %s both assigned and excluded", m.Key, e.Cluster)
		}
		if e.Reason == "" {
			t.Fatalf("%s: %s excluded without a reason", m.Key, e.Cluster)
		}
	}
	if len(res.Excluded)+res.Eligible != len(byName) {
		t.Fatalf("%s: %d excluded + %d eligible != %d clusters", m.Key, len(res.Excluded), res.Eligible, len(byName))
	}
	if total != res.Replicas {
		t.Fatalf("%s: Replicas %d, assignments add up to %d", m.Key, res.Replicas, total)
	}
	if m.MaxTotal > 0 && total > m.MaxTotal {
		t.Fatalf("%s: %d replicas, maxTotal %d", m.Key, total, m.MaxTotal)
	}
	if m.MaxClusters > 0 && len(res.Assignments) > int(m.MaxClusters) {
		t.Fatalf("%s: %d clusters, maxClusters %d", m.Key, len(res.Assignments), m.MaxClusters)
	}
	if res.Satisfied != (res.Problem == "") {
		t.Fatalf("%s: Satisfied=%v with Problem %q", m.Key, res.Satisfied, res.Problem)
	}
	if res.Satisfied {
		regions := map[string]bool{}
		for _, a := range res.Assignments {
			regions[a.Region] = true
			if a.Replicas < m.MinPerCluster {
				t.Fatalf("%s: satisfied with %d replicas on %s, minPerCluster %d", m.Key, a.Replicas, a.Cluster, m.MinPerCluster)
			}
		}
		if len(regions) < int(max(m.MinRegions, 1)) {
			t.Fatalf("%s: satisfied in %d regions, minRegions %d", m.Key, len(regions), m.MinRegions)
		}
		baseline := m.Replicas
		if baseline <= 0 {
			baseline = max(m.MinPerCluster, 0) * max(m.MinRegions, 1)
		}
		if m.MaxTotal > 0 {
			baseline = min(baseline, m.MaxTotal)
		}
		if total < baseline {
			t.Fatalf("%s: satisfied with %d replicas, baseline %d", m.Key, total, baseline)
		}
	}
}

// randomPrevious puts replicas on random clusters, in any region, healthy
// or not: a stale placement must never pull a model out of its regions.
func randomPrevious(r *rand.Rand, clusters []Cluster) map[string]int32 {
	prev := map[string]int32{}
	for range r.IntN(5) {
		prev[clusters[r.IntN(len(clusters))].Name] = int32(r.IntN(10))
	}
	if r.IntN(5) == 0 {
		prev["gone-cluster"] = 3
	}
	return prev
}

// TestResidencyProperty places random models with random policies and
// random previous placements on random fleets: no replica ever lands
// outside AllowedRegions, nor breaks another hard rule.
func TestResidencyProperty(t *testing.T) {
	t.Parallel()
	for seed := range uint64(propertyRounds) {
		r := rand.New(rand.NewPCG(seed, 1))
		clusters := randomFleet(r, 1+r.IntN(40))
		models := randomModels(r, 1+r.IntN(30))
		prev := map[string]map[string]int32{}
		for _, m := range models {
			prev[m.Key] = randomPrevious(r, clusters)
			checkHardRules(t, m, clusters, Place(m, clusters, prev[m.Key]))
		}
		all := PlaceAll(models, clusters, prev)
		for _, m := range models {
			checkHardRules(t, m, clusters, all[m.Key])
		}
	}
}

// TestCapacityProperty checks that PlaceAll never asks a cluster for more
// than it has, summed over all models: it replays the placements in
// PlaceAll's order on a plain copy of each cluster's capacity, a replica
// on a free GPU taking free CPU and memory too, one on an addable GPU
// (when no free GPU with CPU and memory beside it is left) only the GPU.
func TestCapacityProperty(t *testing.T) {
	t.Parallel()
	for seed := range uint64(propertyRounds) {
		r := rand.New(rand.NewPCG(seed, 2))
		clusters := randomFleet(r, 1+r.IntN(30))
		models := randomModels(r, 1+r.IntN(60))
		results := PlaceAll(models, clusters, nil)

		type left struct {
			cpu, mem  int64
			free, add map[string]int
		}
		byName := map[string]*left{}
		for _, c := range clusters {
			l := &left{cpu: max(c.Free.MilliCPU, 0), mem: max(c.Free.MemoryBytes, 0), free: map[string]int{}, add: map[string]int{}}
			maps.Copy(l.free, c.Free.GPUs)
			maps.Copy(l.add, c.Addable)
			byName[c.Name] = l
		}
		for _, i := range placementOrder(models) {
			m := models[i]
			req := m.PerReplica
			for _, a := range results[m.Key].Assignments {
				l := byName[a.Cluster]
				for n := range a.Replicas {
					products := slices.Sorted(maps.Keys(union(l.free, l.add)))
					if req.GPUType != "" {
						products = []string{req.GPUType}
					}
					fitsCPU := l.cpu >= req.MilliCPU && l.mem >= req.MemoryBytes
					ok := false
					switch {
					case req.GPUs == 0:
						ok = fitsCPU
					default:
						for _, p := range products {
							if fitsCPU && l.free[p] >= req.GPUs {
								l.free[p] -= req.GPUs
								ok = true
								break
							}
						}
						if ok {
							break
						}
						for _, p := range products {
							if l.add[p] >= req.GPUs {
								l.add[p] -= req.GPUs
								ok, fitsCPU = true, false
								break
							}
						}
					}
					if !ok {
						t.Fatalf("seed %d: %s: replica %d of %d on %s does not fit: %+v left, %+v asked", seed, m.Key, n+1, a.Replicas, a.Cluster, *l, req)
					}
					if fitsCPU {
						l.cpu -= req.MilliCPU
						l.mem -= req.MemoryBytes
					}
				}
			}
		}
	}
}

// TestDeterminismProperty checks that the same input gives the same
// output, whatever the order of clusters and models.
func TestDeterminismProperty(t *testing.T) {
	t.Parallel()
	for seed := range uint64(propertyRounds / 3) {
		r := rand.New(rand.NewPCG(seed, 3))
		clusters := randomFleet(r, 1+r.IntN(40))
		models := randomModels(r, 1+r.IntN(40))
		prev := map[string]map[string]int32{}
		for _, m := range models {
			prev[m.Key] = randomPrevious(r, clusters)
		}
		want := PlaceAll(models, clusters, prev)
		for i := range 3 {
			got := PlaceAll(shuffled(r, models), shuffled(r, clusters), prev)
			if !reflect.DeepEqual(want, got) {
				for k := range want {
					if !reflect.DeepEqual(want[k], got[k]) {
						t.Fatalf("seed %d run %d: %s differs:\n%+v\n%+v", seed, i, k, want[k], got[k])
					}
				}
				t.Fatalf("seed %d run %d: results differ", seed, i)
			}
		}
		m := models[0]
		if a, b := Place(m, clusters, prev[m.Key]), Place(m, shuffled(r, clusters), prev[m.Key]); !reflect.DeepEqual(a, b) {
			t.Fatalf("seed %d: Place differs with cluster order:\n%+v\n%+v", seed, a, b)
		}
	}
}

// consistent removes contradictions from a random model's policy (those
// make the placement break MinPerCluster, which a re-placement repairs).
func consistent(m *Model) {
	if m.MaxPerCluster > 0 {
		m.MinPerCluster = min(m.MinPerCluster, m.MaxPerCluster)
	}
	if m.MaxTotal > 0 {
		m.MaxTotal = max(m.MaxTotal, m.MinPerCluster*max(m.MinRegions, 1))
	}
}

// TestSameInputMovesNothingProperty re-places random fleets with their
// own placement as previous: nothing moves.
func TestSameInputMovesNothingProperty(t *testing.T) {
	t.Parallel()
	for seed := range uint64(propertyRounds / 3) {
		r := rand.New(rand.NewPCG(seed, 4))
		clusters := randomFleet(r, 10+r.IntN(30))
		for i := range clusters {
			clusters[i].Healthy = true
		}
		models := randomModels(r, 1+r.IntN(20))
		for i := range models {
			consistent(&models[i])
		}
		before := previousOf(PlaceAll(models, clusters, nil))
		again := previousOf(PlaceAll(models, clusters, before))
		if n := moved(before, again); n != 0 {
			t.Fatalf("seed %d: re-placing the same input moved %d replicas", seed, n)
		}
	}
}
