package autoscaler_test

import (
	"fmt"
	"time"

	"k8s.io/apimachinery/pkg/api/resource"

	"meridian.dev/meridian/agent/autoscaler"
	"meridian.dev/meridian/crds/v1alpha1"
)

// The agent keeps one Autoscaler per ModelDeployment and calls Decide on
// every tick with the replicas' samples, then applies the count and turns
// the reason and message into an Event.
func Example() {
	cpuTarget := int32(60)
	rpsTarget := resource.MustParse("10")
	spec := v1alpha1.Autoscaling{
		MaxReplicas: 10,
		Targets: v1alpha1.MetricTargets{
			CPUUtilization:    &cpuTarget,
			RequestsPerSecond: &rpsTarget,
		},
		Burst: &v1alpha1.BurstPolicy{},
	}
	sample := func(cpu, rps float64) autoscaler.Sample {
		return autoscaler.Sample{Ready: true, CPUUtilization: &cpu, RequestsPerSecond: &rps}
	}
	fleet := func(n int, cpu, rps float64) []autoscaler.Sample {
		out := make([]autoscaler.Sample, n)
		for i := range out {
			out[i] = sample(cpu, rps)
		}
		return out
	}

	a := autoscaler.New()
	start := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	replicas := int32(2)
	ticks := []struct {
		after       time.Duration
		stable      []autoscaler.Sample
		shortWindow []autoscaler.Sample
	}{
		// CPU is hot, requests are not.
		{0, fleet(2, 90, 8), fleet(2, 90, 8)},
		// Steady at target.
		{15 * time.Second, fleet(3, 62, 9), fleet(3, 62, 9)},
		// A spike in the last seconds: 4× the requests.
		{30 * time.Second, fleet(3, 70, 11), fleet(3, 95, 40)},
	}
	for _, tick := range ticks {
		d := a.Decide(autoscaler.Input{
			Now:             start.Add(tick.after),
			Spec:            spec,
			CurrentReplicas: replicas,
			Samples:         tick.stable,
			ShortWindow:     tick.shortWindow,
		})
		fmt.Printf("%d -> %d %s: %s\n", replicas, d.DesiredReplicas, d.Reason, d.Message)
		replicas = d.DesiredReplicas
	}
	// Output:
	// 2 -> 3 ScaleUp: cpu 90% of target 60% on 2 ready replicas -> 3
	// 3 -> 3 WithinTolerance: cpu 62% of target 60% on 3 ready replicas is within tolerance (-10%/+10%) -> 3
	// 3 -> 10 BurstScaleUp: burst: requestsPerSecond 40/s per replica of target 10/s on 3 ready replicas -> 12, 4× the current 3 (threshold 2, window 6s); capped at maxReplicas 10
}
