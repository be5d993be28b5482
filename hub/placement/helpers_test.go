package placement

import (
	"fmt"
	"math/rand/v2"
	"slices"
)

// Real locations of a few cloud regions, for tests.
var testRegions = []struct {
	name     string
	lat, lon float64
}{
	{"us-east", 38.9, -77.4},
	{"us-west", 45.6, -121.2},
	{"eu-west", 53.3, -6.3},
	{"eu-central", 50.1, 8.7},
	{"ap-south", 19.1, 72.9},
	{"ap-northeast", 35.7, 139.7},
	{"sa-east", -23.5, -46.6},
	{"ap-southeast-2", -33.9, 151.2},
}

// cpuCluster is a healthy located cluster in region with cores free.
func cpuCluster(name, region string, cores int64) Cluster {
	c := Cluster{Name: name, Region: region, Healthy: true, CostPerGPUHour: 2,
		Free: Resources{MilliCPU: cores * 1000, MemoryBytes: cores << 32}}
	for _, r := range testRegions {
		if r.name == region {
			c.Lat, c.Lon, c.HasLocation = r.lat, r.lon, true
		}
	}
	return c
}

// oneCPU is a model whose replicas request one core and 1 GiB.
func oneCPU(key string) Model {
	return Model{Key: key, PerReplica: Request{MilliCPU: 1000, MemoryBytes: 1 << 30},
		MinPerCluster: 1, MinRegions: 1, Weights: Weights{Proximity: 50, Cost: 20, Capacity: 30}}
}

// counts is a placement as cluster -> replicas.
func counts(r Result) map[string]int32 {
	out := map[string]int32{}
	for _, a := range r.Assignments {
		out[a.Cluster] = a.Replicas
	}
	return out
}

func previousOf(results map[string]Result) map[string]map[string]int32 {
	prev := make(map[string]map[string]int32, len(results))
	for k, r := range results {
		prev[k] = counts(r)
	}
	return prev
}

// moved is the number of replicas that changed cluster between two
// placements of the same models: half the sum of |new−old| over clusters.
func moved(before, after map[string]map[string]int32) int {
	var sum int
	for key := range union(before, after) {
		b, a := before[key], after[key]
		for c := range union(b, a) {
			d := int(a[c]) - int(b[c])
			sum += max(d, -d)
		}
	}
	return sum / 2
}

func union[V any](a, b map[string]V) map[string]struct{} {
	u := map[string]struct{}{}
	for k := range a {
		u[k] = struct{}{}
	}
	for k := range b {
		u[k] = struct{}{}
	}
	return u
}

var testGPUs = []string{"nvidia-h100", "nvidia-a100", "nvidia-l4"}

// randomFleet is a fleet of n clusters over the test regions with random
// health, labels, locations, costs and capacity (some zero or negative).
func randomFleet(r *rand.Rand, n int) []Cluster {
	out := make([]Cluster, n)
	for i := range out {
		reg := testRegions[r.IntN(len(testRegions))]
		c := Cluster{
			Name:           fmt.Sprintf("c%03d-%s", i, reg.name),
			Region:         reg.name,
			Labels:         map[string]string{"tier": []string{"prod", "dev"}[r.IntN(2)]},
			Lat:            reg.lat + r.Float64() - 0.5,
			Lon:            reg.lon + r.Float64() - 0.5,
			HasLocation:    r.IntN(10) > 0,
			Healthy:        r.IntN(8) > 0,
			CostPerGPUHour: float64(r.IntN(5)) + 0.5,
			Free: Resources{
				MilliCPU:    int64(r.IntN(64000)) - 1000,
				MemoryBytes: int64(r.IntN(256)) << 30,
				GPUs:        map[string]int{},
			},
			Addable: map[string]int{},
		}
		if r.IntN(3) == 0 {
			c.Labels["gpu"] = "true"
			for _, g := range testGPUs {
				if r.IntN(2) == 0 {
					c.Free.GPUs[g] = r.IntN(9)
					if r.IntN(2) == 0 {
						c.Addable[g] = r.IntN(9)
					}
				}
			}
		}
		out[i] = c
	}
	return out
}

// randomModel is a model with random, sometimes contradictory, policy.
func randomModel(r *rand.Rand, key string) Model {
	m := Model{
		Key: key,
		PerReplica: Request{
			MilliCPU:    int64(r.IntN(8000)),
			MemoryBytes: int64(r.IntN(32)) << 30,
		},
		MinPerCluster: int32(r.IntN(4)),
		MaxPerCluster: int32(r.IntN(12)),
		Replicas:      int32(r.IntN(20)),
		MaxTotal:      int32(r.IntN(3) * r.IntN(20)),
		MinRegions:    int32(r.IntN(5)),
		MaxClusters:   int32(r.IntN(3) * r.IntN(6)),
		Weights:       Weights{int32(r.IntN(101)), int32(r.IntN(101)), int32(r.IntN(101))},
	}
	if r.IntN(3) == 0 {
		m.PerReplica.GPUs = 1 + r.IntN(4)
		if r.IntN(2) == 0 {
			m.PerReplica.GPUType = testGPUs[r.IntN(len(testGPUs))]
		}
	}
	if r.IntN(2) == 0 {
		for range 1 + r.IntN(3) {
			m.AllowedRegions = append(m.AllowedRegions, testRegions[r.IntN(len(testRegions))].name)
		}
		if r.IntN(10) == 0 {
			m.AllowedRegions = append(m.AllowedRegions, "mars-1")
		}
	}
	if r.IntN(4) == 0 {
		m.Selector = map[string]string{"tier": "prod"}
	}
	for range r.IntN(3) {
		m.Demand = append(m.Demand, Demand{Region: testRegions[r.IntN(len(testRegions))].name, RequestsPerSecond: r.Float64() * 100})
	}
	return m
}

func randomModels(r *rand.Rand, n int) []Model {
	out := make([]Model, n)
	for i := range out {
		out[i] = randomModel(r, fmt.Sprintf("ns/m%04d", i))
	}
	return out
}

// shuffled returns a shuffled copy.
func shuffled[T any](r *rand.Rand, s []T) []T {
	s = slices.Clone(s)
	r.Shuffle(len(s), func(i, j int) { s[i], s[j] = s[j], s[i] })
	return s
}
