package main

import (
	"fmt"
	"math"
	"math/rand/v2"

	"meridian.dev/meridian/hub/placement"
)

// region is a cloud region at its real location, with a weight for how
// many of the fleet's clusters it holds and a price factor.
type region struct {
	name     string
	lat, lon float64
	weight   int
	price    float64
	group    string // residency group: eu, us, apac, other
}

var regions = []region{
	{"us-east", 38.9, -77.4, 10, 1.0, "us"},           // Virginia
	{"us-east-2", 40.0, -83.0, 5, 1.0, "us"},          // Ohio
	{"us-west", 45.6, -121.2, 7, 1.05, "us"},          // Oregon
	{"us-west-1", 37.4, -122.0, 4, 1.15, "us"},        // N. California
	{"ca-central", 45.5, -73.6, 3, 1.1, "us"},         // Montreal
	{"sa-east", -23.5, -46.6, 3, 1.4, "other"},        // São Paulo
	{"eu-west", 53.3, -6.3, 8, 1.1, "eu"},             // Ireland
	{"eu-west-2", 51.5, -0.1, 5, 1.15, "eu"},          // London
	{"eu-central", 50.1, 8.7, 7, 1.15, "eu"},          // Frankfurt
	{"eu-north", 59.3, 18.1, 3, 1.0, "eu"},            // Stockholm
	{"eu-south", 45.5, 9.2, 2, 1.2, "eu"},             // Milan
	{"me-central", 25.2, 55.3, 2, 1.3, "other"},       // UAE
	{"af-south", -33.9, 18.4, 2, 1.35, "other"},       // Cape Town
	{"ap-south", 19.1, 72.9, 5, 0.95, "apac"},         // Mumbai
	{"ap-southeast", 1.35, 103.8, 5, 1.2, "apac"},     // Singapore
	{"ap-southeast-2", -33.9, 151.2, 3, 1.25, "apac"}, // Sydney
	{"ap-northeast", 35.7, 139.7, 6, 1.25, "apac"},    // Tokyo
	{"ap-northeast-2", 37.6, 127.0, 3, 1.2, "apac"},   // Seoul
	{"ap-east", 22.3, 114.2, 2, 1.3, "apac"},          // Hong Kong
	{"ap-southeast-3", -6.2, 106.8, 2, 1.1, "apac"},   // Jakarta
}

// gpu is a GPU product with its price per hour and how common it is.
type gpu struct {
	product string
	price   float64
	weight  int
}

var gpus = []gpu{
	{"NVIDIA-H200", 5.0, 1},
	{"NVIDIA-H100-80GB-HBM3", 4.0, 3},
	{"NVIDIA-A100-SXM4-80GB", 3.0, 4},
	{"NVIDIA-L40S", 1.8, 3},
	{"NVIDIA-L4", 0.8, 5},
	{"Tesla-T4", 0.4, 4},
}

var providers = []string{"aws", "gcp", "azure", "onprem"}

func pickRegion(r *rand.Rand) region {
	total := 0
	for _, g := range regions {
		total += g.weight
	}
	n := r.IntN(total)
	for _, g := range regions {
		if n -= g.weight; n < 0 {
			return g
		}
	}
	return regions[0]
}

func pickGPU(r *rand.Rand) gpu {
	total := 0
	for _, g := range gpus {
		total += g.weight
	}
	n := r.IntN(total)
	for _, g := range gpus {
		if n -= g.weight; n < 0 {
			return g
		}
	}
	return gpus[0]
}

// syntheticFleet builds n clusters spread over the regions by weight, each
// near its region's location, with mixed sizes, GPU products, autoscaler
// headroom, costs and labels; about 1% are unhealthy.
func syntheticFleet(r *rand.Rand, n int) []placement.Cluster {
	out := make([]placement.Cluster, n)
	sizes := []int64{32, 64, 128, 256, 512, 1024, 2048}
	for i := range out {
		reg := pickRegion(r)
		provider := providers[r.IntN(len(providers))]
		cores := sizes[r.IntN(len(sizes))]
		freeCores := cores * int64(20+r.IntN(60)) / 100
		c := placement.Cluster{
			Name:   fmt.Sprintf("%s-%s-%04d", reg.name, provider, i),
			Region: reg.name,
			Labels: map[string]string{
				"provider": provider,
				"tier":     []string{"prod", "prod", "prod", "staging"}[r.IntN(4)],
				"zone":     fmt.Sprintf("%s-%c", reg.name, 'a'+r.IntN(3)),
			},
			Lat:         reg.lat + (r.Float64()-0.5)*2,
			Lon:         reg.lon + (r.Float64()-0.5)*2,
			HasLocation: r.IntN(50) > 0,
			Healthy:     r.IntN(100) > 0,
			Free: placement.Resources{
				MilliCPU:    freeCores * 1000,
				MemoryBytes: freeCores * int64(4+r.IntN(5)) << 30,
				GPUs:        map[string]int{},
			},
			Addable: map[string]int{},
		}
		price := 0.15 // CPU-only clusters: the price of a small GPU share
		if r.IntN(100) < 55 {
			c.Labels["gpu"] = "true"
			for range 1 + r.IntN(3) {
				g := pickGPU(r)
				free := 4 * r.IntN(17)
				c.Free.GPUs[g.product] += free
				if r.IntN(10) < 4 {
					c.Addable[g.product] += 8 * r.IntN(5)
				}
				price = max(price, g.price)
				// GPU nodes: about 12 cores and 128 GiB per GPU, a
				// little of it taken.
				c.Free.MilliCPU += int64(free) * int64(8+r.IntN(5)) * 1000
				c.Free.MemoryBytes += int64(free) * int64(96+r.IntN(33)) << 30
			}
		} else {
			c.Labels["gpu"] = "false"
		}
		c.CostPerGPUHour = math.Round(price*reg.price*(0.9+r.Float64()*0.2)*100) / 100
		out[i] = c
	}
	return out
}

// syntheticModels builds n models: a little over half CPU-only, the rest
// GPU models (most asking for a product), a quarter bound to a residency
// group or a single region, a fifth with a selector, spread over one to
// three regions, with demand from one to three regions.
func syntheticModels(r *rand.Rand, n int) []placement.Model {
	out := make([]placement.Model, n)
	groups := map[string][]string{}
	for _, g := range regions {
		groups[g.group] = append(groups[g.group], g.name)
	}
	for i := range out {
		m := placement.Model{
			Key:           fmt.Sprintf("team-%02d/model-%05d", r.IntN(50), i),
			MinPerCluster: 1,
			MaxPerCluster: int32(4 + r.IntN(17)),
			Weights:       placement.Weights{Proximity: 50, Cost: 20, Capacity: 30},
		}
		if r.IntN(100) < 55 {
			m.PerReplica.MilliCPU = int64(250 * (1 + r.IntN(16)))
			m.PerReplica.MemoryBytes = int64(256*(1+r.IntN(32))) << 20
		} else {
			m.PerReplica.GPUs = []int{1, 1, 1, 1, 1, 1, 1, 2, 2, 4}[r.IntN(10)]
			if r.IntN(10) < 6 {
				m.PerReplica.GPUType = pickGPU(r).product
			}
			m.PerReplica.MilliCPU = int64(2000 * (1 + r.IntN(8)))
			m.PerReplica.MemoryBytes = int64(16*(1+r.IntN(8))) << 30
		}
		switch x := r.IntN(100); {
		case x < 5:
			m.MinPerCluster = 0
		case x < 20:
			m.MinPerCluster = 2
		}
		m.MinRegions = []int32{1, 1, 1, 1, 1, 2, 2, 2, 3, 3}[r.IntN(10)]
		if r.IntN(10) < 6 {
			m.Replicas = max(m.MinPerCluster, 1)*m.MinRegions + int32(r.IntN(7))
		}
		if r.IntN(10) == 0 {
			m.MaxTotal = m.Replicas + int32(r.IntN(5))
		}
		if r.IntN(10) == 0 {
			m.MaxClusters = m.MinRegions + int32(r.IntN(4))
		}
		switch x := r.IntN(100); {
		case x < 10:
			m.AllowedRegions = groups["eu"]
		case x < 17:
			m.AllowedRegions = groups["us"]
		case x < 22:
			m.AllowedRegions = groups["apac"]
		case x < 25:
			m.AllowedRegions = []string{regions[r.IntN(len(regions))].name}
		}
		switch x := r.IntN(100); {
		case x < 15:
			m.Selector = map[string]string{"tier": "prod"}
		case x < 20:
			m.Selector = map[string]string{"provider": providers[r.IntN(len(providers))]}
		}
		if r.IntN(10) == 0 {
			m.Weights = placement.Weights{Proximity: int32(r.IntN(101)), Cost: int32(r.IntN(101)), Capacity: int32(r.IntN(101))}
		}
		home := regions[r.IntN(len(regions))]
		if len(m.AllowedRegions) > 0 {
			home.name = m.AllowedRegions[r.IntN(len(m.AllowedRegions))]
		}
		for k := range 1 + r.IntN(3) {
			name := home.name
			if k > 0 {
				name = regions[r.IntN(len(regions))].name
			}
			m.Demand = append(m.Demand, placement.Demand{Region: name, RequestsPerSecond: math.Round(math.Pow(10, r.Float64()*3))})
		}
		out[i] = m
	}
	return out
}
