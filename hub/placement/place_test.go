package placement

import (
	"fmt"
	"maps"
	"math"
	"math/rand/v2"
	"reflect"
	"slices"
	"strings"
	"testing"
)

func TestFilterReasons(t *testing.T) {
	t.Parallel()
	m := Model{
		Key:            "ns/a100",
		PerReplica:     Request{MilliCPU: 2000, MemoryBytes: 4 << 30, GPUs: 1, GPUType: "nvidia-a100"},
		MinPerCluster:  2,
		MinRegions:     1,
		AllowedRegions: []string{"eu-west", "us-east"},
		Selector:       map[string]string{"tier": "prod"},
		Weights:        Weights{Capacity: 1},
	}
	gpu := func(name, region string, free, addable int, mut func(*Cluster)) Cluster {
		c := cpuCluster(name, region, 16)
		c.Labels = map[string]string{"tier": "prod"}
		c.Free.GPUs = map[string]int{"nvidia-a100": free}
		c.Addable = map[string]int{"nvidia-a100": addable}
		if mut != nil {
			mut(&c)
		}
		return c
	}
	clusters := []Cluster{
		gpu("ok", "eu-west", 4, 0, nil),
		gpu("addable", "us-east", 0, 2, nil),
		gpu("sick", "eu-west", 4, 0, func(c *Cluster) { c.Healthy = false }),
		gpu("far", "ap-south", 4, 0, nil),
		gpu("dev", "eu-west", 4, 0, func(c *Cluster) { c.Labels["tier"] = "dev" }),
		gpu("l4", "eu-west", 0, 0, func(c *Cluster) {
			c.Free.GPUs, c.Addable = map[string]int{"nvidia-l4": 8}, nil
		}),
		gpu("one-gpu", "eu-west", 1, 0, nil),
		gpu("small-cpu", "eu-west", 4, 0, func(c *Cluster) { c.Free.MilliCPU = 3000 }),
		gpu("small-mem", "eu-west", 4, 0, func(c *Cluster) { c.Free.MemoryBytes = 7 << 30 }),
	}
	res := Place(m, clusters, nil)
	want := []Exclusion{
		{"dev", "labels do not match selector tier=prod"},
		{"far", "region ap-south not allowed"},
		{"l4", "no nvidia-a100 GPUs, neither free nor addable"},
		{"one-gpu", "not enough free or addable nvidia-a100 GPUs for 2 replicas of 1 GPU"},
		{"sick", "unhealthy"},
		{"small-cpu", "not enough free CPU for 2 replicas of 2 CPU"},
		{"small-mem", "not enough free memory for 2 replicas of 4Gi"},
	}
	if !reflect.DeepEqual(res.Excluded, want) {
		t.Errorf("Excluded:\n got %q\nwant %q", res.Excluded, want)
	}
	if res.Eligible != 2 {
		t.Errorf("Eligible = %d, want 2 (ok, addable)", res.Eligible)
	}
	if got := counts(res); !reflect.DeepEqual(got, map[string]int32{"ok": 2}) {
		t.Errorf("placement %v, want ok:2 (most room)", got)
	}
	if !res.Satisfied {
		t.Errorf("not satisfied: %s", res.Problem)
	}
}

func TestSpreadAcrossMinRegions(t *testing.T) {
	t.Parallel()
	clusters := []Cluster{
		cpuCluster("eu-west-a", "eu-west", 64),
		cpuCluster("eu-west-b", "eu-west", 32),
		cpuCluster("eu-central-a", "eu-central", 64),
		cpuCluster("us-east-a", "us-east", 64),
		cpuCluster("ap-south-a", "ap-south", 64),
		cpuCluster("ap-northeast-a", "ap-northeast", 64),
	}
	for _, tc := range []struct {
		minRegions int32
		want       []string // regions, nearest to the demand first
	}{
		{1, []string{"eu-west"}},
		{2, []string{"eu-west", "eu-central"}},
		{3, []string{"eu-west", "eu-central", "us-east"}},
		{4, []string{"eu-west", "eu-central", "us-east", "ap-south"}},
	} {
		t.Run(fmt.Sprint(tc.minRegions), func(t *testing.T) {
			t.Parallel()
			m := oneCPU("ns/spread")
			m.MinRegions = tc.minRegions
			m.Replicas = 2 * tc.minRegions
			m.Demand = []Demand{{Region: "eu-west", RequestsPerSecond: 100}}
			res := Place(m, clusters, nil)
			if !res.Satisfied {
				t.Fatalf("not satisfied: %s", res.Problem)
			}
			var regions []string
			for _, a := range res.Assignments {
				if a.Replicas < 1 {
					t.Errorf("%s has %d replicas", a.Cluster, a.Replicas)
				}
				regions = append(regions, a.Region)
			}
			slices.Sort(regions)
			want := slices.Sorted(slices.Values(tc.want))
			if !reflect.DeepEqual(regions, want) {
				t.Errorf("regions %v, want %v (one cluster in each)", regions, want)
			}
			if res.Replicas != m.Replicas {
				t.Errorf("placed %d, want %d", res.Replicas, m.Replicas)
			}
		})
	}
}

func TestProximityCostCapacity(t *testing.T) {
	t.Parallel()
	clusters := []Cluster{
		cpuCluster("us-east-big", "us-east", 256),
		cpuCluster("eu-west-a", "eu-west", 32),
		cpuCluster("ap-south-a", "ap-south", 64),
	}
	clusters[0].CostPerGPUHour = 4
	clusters[1].CostPerGPUHour = 3
	clusters[2].CostPerGPUHour = 1
	demand := []Demand{{"eu-west", 90}, {"ap-south", 10}}
	for _, tc := range []struct {
		name    string
		weights Weights
		demand  []Demand
		want    string
	}{
		{"proximity", Weights{Proximity: 1}, demand, "eu-west-a"},
		{"proximity to the mean of demand", Weights{Proximity: 1}, []Demand{{"eu-west", 10}, {"ap-south", 90}}, "ap-south-a"},
		{"cost", Weights{Cost: 1}, demand, "ap-south-a"},
		{"capacity", Weights{Capacity: 1}, demand, "us-east-big"},
		{"no weights: name order", Weights{}, demand, "ap-south-a"},
		{"no demand: proximity ties, name order", Weights{Proximity: 1}, nil, "ap-south-a"},
		{"demand from an unknown region is ignored", Weights{Proximity: 1}, []Demand{{"mars-1", 100}}, "ap-south-a"},
		{"defaults favour proximity", Weights{50, 20, 30}, demand, "eu-west-a"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			m := oneCPU("ns/m")
			m.Weights, m.Demand = tc.weights, tc.demand
			res := Place(m, clusters, nil)
			if len(res.Assignments) != 1 || res.Assignments[0].Cluster != tc.want {
				t.Fatalf("placed on %v, want %s", counts(res), tc.want)
			}
		})
	}
}

func TestScoreFormula(t *testing.T) {
	t.Parallel()
	clusters := []Cluster{
		cpuCluster("near", "eu-west", 10),
		cpuCluster("mid", "eu-central", 40),
		cpuCluster("far", "ap-south", 20),
	}
	clusters[0].CostPerGPUHour, clusters[1].CostPerGPUHour, clusters[2].CostPerGPUHour = 3, 2, 1
	m := oneCPU("ns/m")
	m.MinRegions, m.Replicas = 3, 3
	m.Weights = Weights{Proximity: 50, Cost: 20, Capacity: 30}
	m.Demand = []Demand{{"eu-west", 1}}
	res := Place(m, clusters, map[string]int32{"mid": 1})
	scores := map[string]float64{}
	for _, a := range res.Assignments {
		scores[a.Cluster] = a.Score
	}
	// near: proximity 100, cost 100×1/3, capacity 25; far: proximity 0,
	// cost 100, capacity 50; mid: proximity in between, cost 50, capacity
	// 100, plus the stability bonus.
	if want := (50*100 + 20*100/3.0 + 30*25) / 100.0; !close(scores["near"], want) {
		t.Errorf("near scores %v, want %v", scores["near"], want)
	}
	if want := (50*0 + 20*100 + 30*50) / 100.0; !close(scores["far"], want) {
		t.Errorf("far scores %v, want %v", scores["far"], want)
	}
	dMid := greatCircleKm(toVec(50.1, 8.7), toVec(53.3, -6.3))
	dFar := greatCircleKm(toVec(19.1, 72.9), toVec(53.3, -6.3))
	if want := (50*100*(1-dMid/dFar)+20*50+30*100)/100.0 + StabilityBonus; !close(scores["mid"], want) {
		t.Errorf("mid scores %v, want %v", scores["mid"], want)
	}
	for _, a := range res.Assignments {
		if !strings.Contains(a.Reason, "score ") {
			t.Errorf("%s: reason %q does not give the score", a.Cluster, a.Reason)
		}
	}
	if r := res.Assignments[slices.IndexFunc(res.Assignments, func(a Assignment) bool { return a.Cluster == "mid" })].Reason; !strings.Contains(r, "stability +10") {
		t.Errorf("mid: reason %q does not mention the stability bonus", r)
	}
}

func close(a, b float64) bool { return a-b < 1e-9 && b-a < 1e-9 }

func TestGreatCircle(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name                   string
		lat1, lon1, lat2, lon2 float64
		km                     float64
	}{
		{"Virginia-Ireland", 38.9, -77.4, 53.3, -6.3, 5440},
		{"Ireland-Mumbai", 53.3, -6.3, 19.1, 72.9, 7600},
		{"across the antimeridian", 0, 179.5, 0, -179.5, 111},
		{"antipodes", 0, 0, 0, 180, 20015},
		{"same place", 10, 10, 10, 10, 0},
	} {
		got := greatCircleKm(toVec(tc.lat1, tc.lon1), toVec(tc.lat2, tc.lon2))
		if d := got - tc.km; d > 0.02*tc.km+1 || d < -0.02*tc.km-1 {
			t.Errorf("%s: %.0f km, want about %.0f", tc.name, got, tc.km)
		}
	}
}

func TestDivideWeightedByCapacity(t *testing.T) {
	t.Parallel()
	clusters := []Cluster{
		cpuCluster("a", "us-east", 10),
		cpuCluster("b", "eu-west", 20),
		cpuCluster("c", "ap-south", 30),
	}
	for _, tc := range []struct {
		name     string
		m        func(*Model)
		previous map[string]int32
		want     map[string]int32
	}{
		// 1 each, then 27 more shared 9:19:29 by remaining room.
		{"by room", func(m *Model) { m.Replicas = 30 }, nil, map[string]int32{"a": 5, "b": 10, "c": 15}},
		{"fills every cluster", func(m *Model) { m.Replicas = 60 }, nil, map[string]int32{"a": 10, "b": 20, "c": 30}},
		{"min per cluster first", func(m *Model) { m.Replicas, m.MinPerCluster = 9, 3 }, nil, map[string]int32{"a": 3, "b": 3, "c": 3}},
		{"max per cluster", func(m *Model) { m.Replicas, m.MaxPerCluster = 30, 12 }, nil, map[string]int32{"a": 9, "b": 10, "c": 11}},
		{"keeps previous counts", func(m *Model) { m.Replicas = 30 }, map[string]int32{"a": 10, "b": 10, "c": 10}, map[string]int32{"a": 10, "b": 10, "c": 10}},
		{"adds to previous by room", func(m *Model) { m.Replicas = 36 }, map[string]int32{"a": 10, "b": 10, "c": 10}, map[string]int32{"a": 10, "b": 12, "c": 14}},
		{"takes from previous by what is above the minimum", func(m *Model) { m.Replicas = 12 }, map[string]int32{"a": 1, "b": 10, "c": 10}, map[string]int32{"a": 1, "b": 5, "c": 6}},
		{"previous beyond room is clamped", func(m *Model) { m.Replicas = 30 }, map[string]int32{"a": 20, "b": 5, "c": 5}, map[string]int32{"a": 10, "b": 9, "c": 11}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			m := oneCPU("ns/m")
			m.MinRegions = 3
			tc.m(&m)
			res := Place(m, clusters, tc.previous)
			if got := counts(res); !reflect.DeepEqual(got, tc.want) {
				t.Errorf("got %v, want %v", got, tc.want)
			}
			if !res.Satisfied {
				t.Errorf("not satisfied: %s", res.Problem)
			}
		})
	}
}

func TestCaps(t *testing.T) {
	t.Parallel()
	var clusters []Cluster
	for i, r := range testRegions[:4] {
		clusters = append(clusters, cpuCluster(fmt.Sprintf("c%d", i), r.name, 100))
	}
	for _, tc := range []struct {
		name          string
		m             func(*Model)
		replicas      int32
		maxPer        int32
		clusters      int
		satisfied     bool
		problemPrefix string
	}{
		{"max per cluster spreads the baseline", func(m *Model) { m.Replicas, m.MaxPerCluster = 10, 3 }, 10, 3, 4, true, ""},
		{"max total caps the baseline", func(m *Model) { m.Replicas, m.MaxTotal = 10, 6 }, 6, 6, 1, true, ""},
		{"max clusters caps the spread of the baseline", func(m *Model) { m.Replicas, m.MaxPerCluster, m.MaxClusters = 10, 3, 2 }, 6, 3, 2,
			false, "needs 10 replicas, the 2 clusters maxClusters allows have room for only 6"},
		{"min per cluster raises the baseline", func(m *Model) { m.Replicas, m.MinPerCluster, m.MinRegions = 3, 2, 3 }, 6, 2, 3, true, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			m := oneCPU("ns/m")
			tc.m(&m)
			res := Place(m, clusters, nil)
			if res.Replicas != tc.replicas || len(res.Assignments) != tc.clusters {
				t.Errorf("placed %d on %d clusters (%v), want %d on %d", res.Replicas, len(res.Assignments), counts(res), tc.replicas, tc.clusters)
			}
			for _, a := range res.Assignments {
				if a.Replicas > tc.maxPer {
					t.Errorf("%s has %d, cap %d", a.Cluster, a.Replicas, tc.maxPer)
				}
			}
			if res.Satisfied != tc.satisfied || !strings.HasPrefix(res.Problem, tc.problemPrefix) {
				t.Errorf("satisfied=%v problem %q, want %v %q", res.Satisfied, res.Problem, tc.satisfied, tc.problemPrefix)
			}
		})
	}
}

func TestUnsatisfiable(t *testing.T) {
	t.Parallel()
	clusters := []Cluster{
		cpuCluster("eu-west-a", "eu-west", 8),
		cpuCluster("eu-west-b", "eu-west", 8),
		cpuCluster("us-east-a", "us-east", 8),
		cpuCluster("ap-south-a", "ap-south", 8),
		cpuCluster("sick", "sa-east", 8),
	}
	clusters[4].Healthy = false
	for _, tc := range []struct {
		name     string
		m        func(*Model)
		problem  string
		replicas int32    // still placed
		regions  []string // allowed for the partial placement
	}{
		{"more regions than allowed",
			func(m *Model) { m.MinRegions, m.AllowedRegions = 3, []string{"eu-west", "us-east"} },
			"needs 3 regions, only 2 allowed regions have a healthy cluster with room: eu-west, us-east",
			3, []string{"eu-west", "us-east"}},
		{"more regions than have a healthy cluster",
			func(m *Model) { m.MinRegions, m.AllowedRegions = 2, []string{"eu-west", "sa-east"} },
			"needs 2 regions, only 1 allowed region has a healthy cluster with room: eu-west",
			2, []string{"eu-west"}},
		{"min above max per cluster",
			func(m *Model) { m.MinPerCluster, m.MaxPerCluster = 5, 3 },
			"minPerCluster 5 exceeds maxPerCluster 3", 3, nil},
		{"unknown allowed region",
			func(m *Model) { m.AllowedRegions = []string{"eu-west", "mars-1"} },
			`allowed region "mars-1" is unknown: no cluster is in it`, 1, []string{"eu-west"}},
		{"only unknown allowed regions",
			func(m *Model) { m.AllowedRegions = []string{"venus-2", "mars-1"} },
			`allowed regions "mars-1", "venus-2" are unknown: no cluster is in them; no eligible cluster: 1 unhealthy, 4 in regions not allowed`, 0, nil},
		{"too few clusters for the regions",
			func(m *Model) { m.MinRegions, m.MaxClusters = 3, 2 },
			"needs 3 regions, but maxClusters 2 allows only 2 clusters", 3, nil},
		{"max total below the minimum",
			func(m *Model) { m.MinRegions, m.MinPerCluster, m.MaxTotal = 2, 2, 3 },
			"minPerCluster 2 in each of 2 regions needs 4 replicas, more than maxTotal 3", 3, nil},
		{"not enough room",
			func(m *Model) { m.Replicas, m.AllowedRegions = 30, []string{"eu-west"} },
			"needs 30 replicas, the eligible clusters have room for only 16", 16, []string{"eu-west"}},
		{"no GPU of the type",
			func(m *Model) { m.PerReplica.GPUs, m.PerReplica.GPUType = 1, "nvidia-h100" },
			"no eligible cluster: 1 unhealthy, 4 without the GPU type", 0, nil},
		{"nothing matches the selector",
			func(m *Model) { m.Selector = map[string]string{"zone": "b"} },
			"no eligible cluster: 1 unhealthy, 4 not matching the selector", 0, nil},
		{"nothing fits",
			func(m *Model) { m.MinPerCluster = 9 },
			"no eligible cluster: 1 unhealthy, 4 without room for 9 replicas", 0, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			m := oneCPU("ns/m")
			tc.m(&m)
			res := Place(m, clusters, nil)
			if res.Satisfied || res.Problem != tc.problem {
				t.Errorf("satisfied=%v problem:\n got %q\nwant %q", res.Satisfied, res.Problem, tc.problem)
			}
			if res.Replicas != tc.replicas {
				t.Errorf("partial placement has %d replicas (%v), want %d", res.Replicas, counts(res), tc.replicas)
			}
			for _, a := range res.Assignments {
				if tc.regions != nil && !slices.Contains(tc.regions, a.Region) {
					t.Errorf("%s in %s, outside %v", a.Cluster, a.Region, tc.regions)
				}
			}
			checkHardRules(t, m, clusters, res)
		})
	}
}

// TestHysteresisOneModel changes each cluster's capacity by ±10% and adds a
// slightly better cluster: a placement that still fits does not move.
func TestHysteresisOneModel(t *testing.T) {
	t.Parallel()
	clusters := []Cluster{
		cpuCluster("eu-west-a", "eu-west", 20),
		cpuCluster("eu-west-b", "eu-west", 24),
		cpuCluster("us-east-a", "us-east", 30),
		cpuCluster("us-east-b", "us-east", 16),
		cpuCluster("ap-south-a", "ap-south", 40),
	}
	m := oneCPU("ns/m")
	m.MinRegions, m.Replicas, m.MaxPerCluster = 2, 24, 10
	m.Demand = []Demand{{"eu-west", 50}, {"us-east", 50}}
	first := Place(m, clusters, nil)
	prev := counts(first)
	if !first.Satisfied {
		t.Fatalf("not satisfied: %s", first.Problem)
	}
	for i := range clusters {
		for _, f := range []float64{0.9, 1.1} {
			changed := slices.Clone(clusters)
			changed[i].Free.MilliCPU = int64(float64(changed[i].Free.MilliCPU) * f)
			changed[i].Free.MemoryBytes = int64(float64(changed[i].Free.MemoryBytes) * f)
			got := counts(Place(m, changed, prev))
			if !maps.Equal(got, prev) {
				t.Errorf("%s ×%.1f moved replicas: %v → %v", clusters[i].Name, f, prev, got)
			}
		}
	}
	better := append(slices.Clone(clusters), cpuCluster("eu-west-c", "eu-west", 26))
	if got := counts(Place(m, better, prev)); !maps.Equal(got, prev) {
		t.Errorf("a slightly better new cluster moved replicas: %v → %v", prev, got)
	}
}

// hysteresisFleet is a fleet of clusters with about a third of their room
// to spare once placed, and models whose replicas each request one core,
// so that room is counted in replicas exactly.
func hysteresisFleet(seed uint64) ([]Cluster, []Model) {
	r := rand.New(rand.NewPCG(seed, 5))
	var clusters []Cluster
	for i := range 24 {
		reg := testRegions[i%6]
		c := cpuCluster(fmt.Sprintf("c%02d-%s", i, reg.name), reg.name, int64(40+r.IntN(80)))
		c.CostPerGPUHour = 1 + float64(r.IntN(4))
		clusters = append(clusters, c)
	}
	var models []Model
	for i := range 260 {
		m := oneCPU(fmt.Sprintf("ns/m%03d", i))
		m.MinRegions = int32(1 + r.IntN(3))
		m.Replicas = m.MinRegions * int32(1+r.IntN(4))
		m.MaxPerCluster = int32(2 + r.IntN(6))
		m.Demand = []Demand{{testRegions[r.IntN(6)].name, 100}}
		if r.IntN(4) == 0 {
			m.AllowedRegions = []string{testRegions[0].name, testRegions[2].name, testRegions[3].name}
		}
		models = append(models, m)
	}
	return clusters, models
}

// onCluster sums the replicas placed on one cluster.
func onCluster(p map[string]map[string]int32, cluster string) int {
	var n int
	for _, c := range p {
		n += int(c[cluster])
	}
	return n
}

func total(p map[string]map[string]int32) int {
	var n int
	for _, c := range p {
		for _, v := range c {
			n += int(v)
		}
	}
	return n
}

// TestHysteresisFleet shrinks the busiest cluster and re-places the whole
// fleet: what moves is what no longer fits there, plus a small allowance,
// not a reshuffle. Replicas are one core each, so what must move is the
// replicas beyond the cluster's new cores; a model whose share there falls
// below one replica's room moves its whole share (at most MaxPerCluster,
// 7), and the replicas that move make the clusters they land on fuller,
// which may tip a few close scores elsewhere.
func TestHysteresisFleet(t *testing.T) {
	t.Parallel()
	for seed := range uint64(5) {
		clusters, models := hysteresisFleet(seed)
		before := previousOf(PlaceAll(models, clusters, nil))
		busiest, most := 0, 0
		for i, c := range clusters {
			if n := onCluster(before, c.Name); n > most {
				busiest, most = i, n
			}
		}
		for _, tc := range []struct {
			name  string
			cores int64
		}{
			{"free capacity -10%", clusters[busiest].Free.MilliCPU / 1000 * 9 / 10},
			{"room for 90% of its replicas", int64(most) * 9 / 10},
		} {
			changed := slices.Clone(clusters)
			c := &changed[busiest]
			c.Free.MilliCPU = tc.cores * 1000
			after := previousOf(PlaceAll(models, changed, before))

			mustMove := max(0, most-int(tc.cores))
			left := most - onCluster(after, c.Name)
			got := moved(before, after)
			bound := mustMove + 7 + max(3, mustMove/5)
			t.Logf("seed %d, %s: %s held %d of %d replicas, %d cores now: %d must move, %d left it, %d moved (bound %d)",
				seed, tc.name, c.Name, most, total(before), tc.cores, mustMove, left, got, bound)
			if left < mustMove || got < mustMove || got > bound {
				t.Errorf("seed %d, %s: %d replicas left %s and %d moved, want between %d and %d",
					seed, tc.name, left, c.Name, got, mustMove, bound)
			}
			if total(after) != total(before) {
				t.Errorf("seed %d, %s: %d replicas placed, %d before", seed, tc.name, total(after), total(before))
			}
		}
	}
}

// TestFailover marks the busiest cluster unhealthy: its replicas move to
// the others, nothing stays on it, every model keeps its replica count,
// and few other replicas move (those whose cluster the refugees made
// fuller, which lowers its capacity score).
func TestFailover(t *testing.T) {
	t.Parallel()
	for seed := range uint64(5) {
		clusters, models := hysteresisFleet(seed)
		for i := range clusters {
			clusters[i].Free.MilliCPU *= 2 // room for the refugees in every region
		}
		results := PlaceAll(models, clusters, nil)
		before := previousOf(results)
		busiest, most := "", 0
		for _, c := range clusters {
			if n := onCluster(before, c.Name); n > most {
				busiest, most = c.Name, n
			}
		}
		failed := slices.Clone(clusters)
		failed[slices.IndexFunc(failed, func(c Cluster) bool { return c.Name == busiest })].Healthy = false
		again := PlaceAll(models, failed, before)
		after := previousOf(again)
		if n := onCluster(after, busiest); n != 0 {
			t.Fatalf("seed %d: %d replicas still on failed %s", seed, n, busiest)
		}
		got := moved(before, after)
		t.Logf("seed %d: %s held %d of %d replicas, %d moved", seed, busiest, most, total(before), got)
		if bound := most + most/10; got < most || got > bound {
			t.Errorf("seed %d: %d replicas moved, want the %d on %s and at most %d", seed, got, most, busiest, bound)
		}
		for _, m := range models {
			if again[m.Key].Replicas != results[m.Key].Replicas {
				t.Errorf("seed %d: %s has %d replicas, had %d", seed, m.Key, again[m.Key].Replicas, results[m.Key].Replicas)
			}
			if results[m.Key].Satisfied && !again[m.Key].Satisfied {
				t.Errorf("seed %d: %s no longer satisfied: %s", seed, m.Key, again[m.Key].Problem)
			}
			if ex := again[m.Key].Excluded; !slices.Contains(ex, Exclusion{busiest, "unhealthy"}) {
				t.Errorf("seed %d: %s does not list %s as unhealthy", seed, m.Key, busiest)
			}
		}
	}
}

// TestPlaceAllDrawsDownCapacity checks that later models see what earlier
// ones left, and that the order is GPU-heavy first.
func TestPlaceAllDrawsDownCapacity(t *testing.T) {
	t.Parallel()
	c := cpuCluster("only", "eu-west", 8)
	c.Free.GPUs = map[string]int{"nvidia-a100": 2, "nvidia-h100": 1}
	c.Addable = map[string]int{"nvidia-h100": 2}
	cpu := oneCPU("ns/a-cpu")
	cpu.Replicas = 5
	h100 := oneCPU("ns/z-h100")
	h100.PerReplica.GPUs, h100.PerReplica.GPUType = 2, "nvidia-h100"
	h100.Replicas = 5
	anyGPU := oneCPU("ns/b-any")
	anyGPU.PerReplica.GPUs = 1
	anyGPU.Replicas = 4
	res := PlaceAll([]Model{cpu, h100, anyGPU}, []Cluster{c}, nil)
	// z-h100 first (2 GPUs a replica): the free H100 is not enough, so one
	// replica on the 2 addable H100s, whose new node brings its CPU;
	// b-any: the 2 free A100s and the free H100, with 3 cores; a-cpu: the
	// 5 cores left.
	for _, tc := range []struct {
		key       string
		replicas  int32
		satisfied bool
	}{{"ns/z-h100", 1, false}, {"ns/b-any", 3, false}, {"ns/a-cpu", 5, true}} {
		if got := res[tc.key]; got.Replicas != tc.replicas || got.Satisfied != tc.satisfied {
			t.Errorf("%s: %d replicas, satisfied %v (%s); want %d, %v", tc.key, got.Replicas, got.Satisfied, got.Problem, tc.replicas, tc.satisfied)
		}
	}
}

func TestDuplicates(t *testing.T) {
	t.Parallel()
	a := cpuCluster("a", "eu-west", 4)
	dup := cpuCluster("a", "us-east", 64)
	b := cpuCluster("b", "eu-west", 4)
	m := oneCPU("ns/m")
	m.Replicas = 8
	other := oneCPU("ns/m")
	other.Replicas = 1
	res := PlaceAll([]Model{m, other}, []Cluster{a, dup, b}, nil)
	if len(res) != 1 {
		t.Fatalf("%d results, want 1 for the duplicated key", len(res))
	}
	// The first cluster named a counts: 4 cores in eu-west.
	if got := counts(res["ns/m"]); !reflect.DeepEqual(got, map[string]int32{"a": 4, "b": 4}) {
		t.Errorf("placed %v, want a:4 b:4 (the first a, the first ns/m)", got)
	}
	if got := res["ns/m"].Assignments[0].Region; got != "eu-west" {
		t.Errorf("a is in %s, want eu-west", got)
	}
}

func TestHugeNumbers(t *testing.T) {
	t.Parallel()
	free := Cluster{Name: "free", Region: "r", Healthy: true, Free: Resources{MilliCPU: math.MaxInt64, MemoryBytes: math.MaxInt64}}
	m := Model{Key: "ns/zero", MinPerCluster: math.MaxInt32, Replicas: math.MaxInt32, MinRegions: 3}
	res := Place(m, []Cluster{free, free}, nil)
	checkHardRules(t, m, []Cluster{free}, res)
	if res.Satisfied || res.Replicas < 0 {
		t.Errorf("satisfied=%v replicas=%d problem %q", res.Satisfied, res.Replicas, res.Problem)
	}
	m = Model{Key: "ns/small", PerReplica: Request{MilliCPU: 1}, Replicas: math.MaxInt32, MaxPerCluster: math.MaxInt32}
	res = Place(m, []Cluster{free}, nil)
	if res.Replicas != maxFit {
		t.Errorf("placed %d, want the cap of %d per cluster", res.Replicas, maxFit)
	}
}
