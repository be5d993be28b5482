package placement_test

import (
	"fmt"

	"meridian.dev/meridian/hub/placement"
)

func Example() {
	gpuCluster := func(name, region string, lat, lon, cost float64, free, addable int) placement.Cluster {
		return placement.Cluster{
			Name: name, Region: region, Lat: lat, Lon: lon, HasLocation: true, Healthy: true,
			Labels:         map[string]string{"tier": "prod"},
			CostPerGPUHour: cost,
			Free:           placement.Resources{MilliCPU: 64000, MemoryBytes: 512 << 30, GPUs: map[string]int{"NVIDIA-L4": free}},
			Addable:        map[string]int{"NVIDIA-L4": addable},
		}
	}
	clusters := []placement.Cluster{
		gpuCluster("us-east-1", "us-east", 38.9, -77.4, 0.8, 8, 8),
		gpuCluster("eu-west-1", "eu-west", 53.3, -6.3, 0.9, 4, 0),
		gpuCluster("eu-west-2", "eu-west", 53.4, -6.2, 0.9, 2, 0),
		gpuCluster("ap-south-1", "ap-south", 19.1, 72.9, 0.7, 8, 0),
	}
	clusters[3].Healthy = false

	model := placement.Model{
		Key:            "shop/sentiment",
		PerReplica:     placement.Request{MilliCPU: 2000, MemoryBytes: 8 << 30, GPUs: 1, GPUType: "NVIDIA-L4"},
		MinPerCluster:  1,
		MaxPerCluster:  10,
		Replicas:       8,
		AllowedRegions: []string{"eu-west", "us-east", "ap-south"},
		MinRegions:     2,
		Weights:        placement.Weights{Proximity: 50, Cost: 20, Capacity: 30},
		Demand:         []placement.Demand{{Region: "eu-west", RequestsPerSecond: 300}, {Region: "us-east", RequestsPerSecond: 100}},
	}
	res := placement.Place(model, clusters, nil)
	for _, a := range res.Assignments {
		fmt.Printf("%s (%s): replicas %d, %s\n", a.Cluster, a.Region, a.Replicas, a.Reason)
	}
	for _, e := range res.Excluded {
		fmt.Printf("%s excluded: %s\n", e.Cluster, e.Reason)
	}
	fmt.Println("satisfied:", res.Satisfied)

	// eu-west-1 fails: its replicas move (eu-west-2 has room for 2 and
	// joins with 1 for the spread; the rest is shared by room), the others
	// stay.
	previous := map[string]int32{}
	for _, a := range res.Assignments {
		previous[a.Cluster] = a.Replicas
	}
	clusters[1].Healthy = false
	res = placement.Place(model, clusters, previous)
	for _, a := range res.Assignments {
		fmt.Printf("after the failure: %s: replicas %d\n", a.Cluster, a.Replicas)
	}
	fmt.Println("satisfied:", res.Satisfied, res.Problem)
	// Output:
	// eu-west-1 (eu-west): replicas 3, best in region eu-west (spread over 2 regions); score 75.3: proximity 100, cost 89, capacity 25
	// us-east-1 (us-east): replicas 5, best in region us-east (spread over 2 regions); score 50.0: proximity 0, cost 100, capacity 100
	// ap-south-1 excluded: unhealthy
	// satisfied: true
	// after the failure: eu-west-2: replicas 1
	// after the failure: us-east-1: replicas 7
	// satisfied: true
}
