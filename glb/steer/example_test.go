package steer_test

import (
	"fmt"
	"time"

	"meridian.dev/meridian/glb/steer"
)

func Example() {
	targets := []steer.Target{
		{Cluster: "use1", Region: "us-east", Lat: 39.04, Lon: -77.49, Healthy: true, ReadyReplicas: 3, Headroom: 0.6},
		{Cluster: "euw1", Region: "eu-west", Lat: 53.35, Lon: -6.26, Healthy: true, ReadyReplicas: 2, Headroom: 0.4},
		{Cluster: "aps1", Region: "ap-south", Lat: 19.08, Lon: 72.88, Healthy: true, ReadyReplicas: 1, Headroom: 0.5},
	}
	amsterdam := steer.Client{Lat: 52.37, Lon: 4.90, HasLocation: true, Key: 42}

	best, _ := steer.Choose(steer.Policy{Kind: steer.Geo}, targets, amsterdam, "ams")
	fmt.Println("geo:", best.Cluster)

	// Ireland goes down: the HTTP front's retry order changes with it.
	targets[1].Healthy = false
	for _, t := range steer.Rank(steer.Policy{Kind: steer.Geo}, targets, amsterdam, "ams") {
		fmt.Println("retry:", t.Cluster)
	}
	// Output:
	// geo: euw1
	// retry: use1
	// retry: aps1
}

func ExampleHealth() {
	h := steer.NewHealth(steer.DefaultHealthConfig()) // 2 failures, 10s hold-down
	t0 := time.Now()
	h.Observe("euw1", true, t0) // serving
	h.Observe("euw1", false, t0.Add(time.Second))
	fmt.Println(h.Healthy("euw1", t0.Add(time.Second))) // one lost probe is forgiven
	h.Observe("euw1", false, t0.Add(2*time.Second))
	fmt.Println(h.Healthy("euw1", t0.Add(2*time.Second)))
	h.Observe("euw1", true, t0.Add(3*time.Second))
	fmt.Println(h.Healthy("euw1", t0.Add(6*time.Second)))  // still held down
	fmt.Println(h.Healthy("euw1", t0.Add(13*time.Second))) // 10s of success
	// Output:
	// true
	// false
	// false
	// true
}
