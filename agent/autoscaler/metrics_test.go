package autoscaler

import (
	"math"
	"strings"
	"testing"
	"time"

	autoscalingv2 "k8s.io/api/autoscaling/v2"

	"meridian.dev/meridian/crds/v1alpha1"
)

// TestReplicaCalculation checks one metric's proposal against what
// Kubernetes' ReplicaCalculator returns for the same pods. Every number is
// worked out by hand in the comments.
func TestReplicaCalculation(t *testing.T) {
	t.Parallel()
	cpu60 := v1alpha1.MetricTargets{CPUUtilization: ptr(int32(60))}
	defaultTol := tolerances{scaleDown: DefaultTolerance, scaleUp: DefaultTolerance}
	tests := []struct {
		name        string
		targets     v1alpha1.MetricTargets
		tol         *tolerances
		current     int32
		samples     []Sample
		want        int32
		wantHold    holdKind
		wantInvalid bool
		// wantMessage is matched exactly when it starts with "=", else as
		// a substring.
		wantMessage string
	}{
		{
			// 180/60 = 3.0; ceil(3.0 × 2 ready) = 6.
			name: "scale up on ready replicas", targets: cpu60, current: 2,
			samples: cpu(180, 180), want: 6, wantHold: holdNone,
			wantMessage: "=cpu 180% of target 60% on 2 ready replicas -> 6",
		},
		{
			// 30/60 = 0.5; ceil(0.5 × 4) = 2.
			name: "scale down on ready replicas", targets: cpu60, current: 4,
			samples: cpuN(4, 30), want: 2,
		},
		{
			// 66/60 = 1.1 exactly: the band [0.9, 1.1] includes its
			// bounds (Tolerances.isWithin uses <=), so no change.
			name: "tolerance upper bound is inside", targets: cpu60, current: 3,
			samples: cpuN(3, 66), want: 3, wantHold: holdTolerance,
			wantMessage: "=cpu 66% of target 60% on 3 ready replicas is within tolerance (-10%/+10%) -> 3",
		},
		{
			// 67/60 = 1.1167 > 1.1; ceil(1.1167 × 3) = ceil(3.35) = 4.
			name: "just above tolerance scales up", targets: cpu60, current: 3,
			samples: cpuN(3, 67), want: 4,
		},
		{
			// 54/60 = 0.9 exactly: inside.
			name: "tolerance lower bound is inside", targets: cpu60, current: 10,
			samples: cpuN(10, 54), want: 10, wantHold: holdTolerance,
		},
		{
			// 53/60 = 0.8833 < 0.9; ceil(0.8833 × 10) = ceil(8.83) = 9.
			name: "just below tolerance scales down", targets: cpu60, current: 10,
			samples: cpuN(10, 53), want: 9,
		},
		{
			// Kubernetes truncates utilization to a whole percent
			// (int32(total*100/request)): 66.9% reads as 66%, ratio 1.1,
			// inside. Unrounded, 66.9/60 = 1.115 would scale to 4.
			name: "utilization truncated to a whole percent", targets: cpu60, current: 3,
			samples: cpuN(3, 66.9), want: 3, wantHold: holdTolerance,
		},
		{
			// behavior.scaleUp.tolerance 0.05: 64/60 = 1.0667 > 1.05, so
			// ceil(1.0667 × 3) = ceil(3.2) = 4 (the default 10% would hold).
			name: "custom scale-up tolerance", targets: cpu60, current: 3,
			tol:     &tolerances{scaleDown: 0.1, scaleUp: 0.05},
			samples: cpuN(3, 64), want: 4,
		},
		{
			// behavior.scaleDown.tolerance 0.25: 50/60 = 0.8333 >= 0.75,
			// inside (the default 10% would scale to ceil(8.33) = 9).
			name: "custom scale-down tolerance", targets: cpu60, current: 10,
			tol:     &tolerances{scaleDown: 0.25, scaleUp: 0.1},
			samples: cpuN(10, 50), want: 10, wantHold: holdTolerance,
		},
		{
			// 50/60 = 0.8333 is outside the band, but ceil(0.8333 × 3) =
			// ceil(2.5) = 3, the current count.
			name: "ceiling lands on the current count", targets: cpu60, current: 3,
			samples: cpuN(3, 50), want: 3, wantHold: holdSame,
		},
		{
			// Missing on a scale-up count as 0%: 150/60 = 2.5 > 1, so the
			// silent replica counts 0: (150+150+0)/3 = 100%, 100/60 =
			// 1.667; ceil(1.667 × 3) = 5.
			name: "missing metrics on scale-up count as 0%", targets: cpu60, current: 3,
			samples: join(cpu(150, 150), noMetric(1)), want: 5,
			wantMessage: "=cpu 150% of target 60% on 2 ready replicas; counting 1 replica without the metric as 0%: 100% -> 5",
		},
		{
			// 80/60 = 1.333 asks for more, but counting the silent replica
			// as 0%: (80+80+0)/3 = 53% (truncated), 0.883 < 1 — the
			// direction would reverse, so Kubernetes keeps 3.
			name: "missing metrics reverse a scale-up", targets: cpu60, current: 3,
			samples: join(cpu(80, 80), noMetric(1)), want: 3, wantHold: holdReverse,
		},
		{
			// Missing on a scale-down count as 100% of request:
			// 10/60 = 0.167 < 1; (10+10+10+100)/4 = 32% (32.5 truncated),
			// 32/60 = 0.533; ceil(0.533 × 4) = ceil(2.13) = 3. Ignoring the
			// silent replica would give ceil(0.167 × 3) = 1.
			name: "missing metrics on scale-down count as 100%", targets: cpu60, current: 4,
			samples: join(cpuN(3, 10), noMetric(1)), want: 3,
			wantMessage: "counting 1 replica without the metric as 100%: 32% -> 3",
		},
		{
			// 30/60 = 0.5, but (30+30+100+100)/4 = 65%, 65/60 = 1.083:
			// within tolerance after rebalancing, keep 4.
			name: "missing metrics on scale-down land within tolerance", targets: cpu60, current: 4,
			samples: join(cpu(30, 30), noMetric(2)), want: 4, wantHold: holdTolerance,
		},
		{
			// 10/60 = 0.167, but (10+100+100+100)/4 = 77%, 1.283 > 1: the
			// direction would reverse, keep 4.
			name: "missing metrics reverse a scale-down", targets: cpu60, current: 4,
			samples: join(cpu(10), noMetric(3)), want: 4, wantHold: holdReverse,
		},
		{
			// More samples than the current count (replicas still
			// terminating): 10/60 = 0.167; (10+10+10+100)/4 = 32%, 0.533;
			// ceil(0.533 × 4) = 3 > current 2 although the ratio is below
			// 1 — Kubernetes keeps the current count.
			name: "rebalanced count against the direction", targets: cpu60, current: 2,
			samples: join(cpuN(3, 10), noMetric(1)), want: 2, wantHold: holdReverse,
		},
		{
			// Unready replicas count as 0% on a scale-up: 150/60 = 2.5 > 1;
			// (150+150+0+0)/4 = 75%, 75/60 = 1.25; ceil(1.25 × 4) = 5.
			// (The textbook ceil(current × ratio) = ceil(4 × 2.5) = 10
			// would double the count while two replicas are still
			// starting.)
			name: "unready replicas on scale-up count as 0%", targets: cpu60, current: 4,
			samples: join(cpu(150, 150), unready(2)), want: 5,
			wantMessage: "=cpu 150% of target 60% on 2 ready replicas; counting 2 unready as 0%: 75% -> 5",
		},
		{
			// 120/60 = 2.0, but (120+120+0+0)/4 = 60%: ratio 1.0, within
			// tolerance — the starting replicas will absorb the load.
			name: "unready replicas on scale-up land within tolerance", targets: cpu60, current: 4,
			samples: join(cpu(120, 120), unready(2)), want: 4, wantHold: holdTolerance,
		},
		{
			// On a scale-down unready replicas are just ignored:
			// 15/60 = 0.25; ceil(0.25 × 2 ready) = 1.
			name: "unready replicas ignored on scale-down", targets: cpu60, current: 4,
			samples: join(cpu(15, 15), unready(2)), want: 1,
		},
		{
			// NaN, infinite and negative values count as missing, so this
			// is the "missing on scale-up" case: 5.
			name: "invalid values count as missing", targets: cpu60, current: 3,
			samples: join(cpu(150, 150), cpu(math.NaN())), want: 5,
		},
		{
			// Memory works like CPU: 90/75 = 1.2; ceil(1.2 × 5) = 6.
			name: "memory utilization", targets: v1alpha1.MetricTargets{MemoryUtilization: ptr(int32(75))}, current: 5,
			samples: func() []Sample {
				s := noMetric(5)
				for i := range s {
					s[i].MemoryUtilization = ptr(90.0)
				}
				return s
			}(),
			want: 6,
		},
		{
			// Pods metric with an AverageValue target: mean (40+50)/2 = 45
			// per replica, 45/10 = 4.5; ceil(4.5 × 2) = 9.
			name: "requests per second", targets: v1alpha1.MetricTargets{RequestsPerSecond: quantity("10")}, current: 2,
			samples: []Sample{
				{Ready: true, RequestsPerSecond: ptr(40.0)},
				{Ready: true, RequestsPerSecond: ptr(50.0)},
			},
			want:        9,
			wantMessage: "=requestsPerSecond 45/s per replica of target 10/s on 2 ready replicas -> 9",
		},
		{
			// Fractional targets are exact in milli-units: 1.5/0.5 = 3;
			// ceil(3 × 2) = 6.
			name: "fractional requests per second", targets: v1alpha1.MetricTargets{RequestsPerSecond: quantity("500m")}, current: 2,
			samples: []Sample{
				{Ready: true, RequestsPerSecond: ptr(1.5)},
				{Ready: true, RequestsPerSecond: ptr(1.5)},
			},
			want: 6,
		},
		{
			// Plain metrics: missing on a scale-down count as exactly the
			// target. 1/5 = 0.2; (1+1+1+5)/4 = 2, 2/5 = 0.4;
			// ceil(0.4 × 4) = ceil(1.6) = 2 (not ceil(0.2 × 3) = 1).
			name: "queue length missing on scale-down count as target", targets: v1alpha1.MetricTargets{QueueLength: ptr(int32(5))}, current: 4,
			samples: []Sample{
				{Ready: true, QueueLength: ptr(1.0)},
				{Ready: true, QueueLength: ptr(1.0)},
				{Ready: true, QueueLength: ptr(1.0)},
				{Ready: true},
			},
			want:        2,
			wantMessage: "counting 1 replica without the metric as 5: 2 -> 2",
		},
		{
			// p95 is averaged over replicas: (300ms+100ms)/2 = 200ms,
			// 200/100 = 2; ceil(2 × 2) = 4. (With the max, 300/100 = 3
			// would give 6.)
			name: "p95 latency is the mean of replicas", targets: v1alpha1.MetricTargets{P95Latency: duration(100 * time.Millisecond)}, current: 2,
			samples: []Sample{
				{Ready: true, P95LatencySeconds: ptr(0.3)},
				{Ready: true, P95LatencySeconds: ptr(0.1)},
			},
			want:        4,
			wantMessage: "=p95Latency 200ms per replica of target 100ms on 2 ready replicas -> 4",
		},
		{
			name: "no ready replica reports the metric", targets: cpu60, current: 2,
			samples: noMetric(2), wantInvalid: true,
			wantMessage: "=cpu: no ready replica reports it",
		},
		{
			name: "only unready replicas", targets: cpu60, current: 2,
			samples: unready(2), wantInvalid: true,
		},
		{
			name: "no samples", targets: cpu60, current: 2, wantInvalid: true,
		},
		{
			name: "zero target is invalid", targets: v1alpha1.MetricTargets{RequestsPerSecond: quantity("0")}, current: 2,
			samples: []Sample{{Ready: true, RequestsPerSecond: ptr(5.0)}}, wantInvalid: true,
			wantMessage: "target must be positive",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			sources := metricSources(tt.targets)
			if len(sources) != 1 {
				t.Fatalf("want one metric source, got %d", len(sources))
			}
			tol := defaultTol
			if tt.tol != nil {
				tol = *tt.tol
			}
			r := sources[0].replicasFor(tt.current, tt.samples, tol)
			if r.valid == tt.wantInvalid {
				t.Fatalf("valid = %v, want %v (%s)", r.valid, !tt.wantInvalid, r.message())
			}
			if !tt.wantInvalid {
				if r.replicas != tt.want {
					t.Errorf("replicas = %d, want %d (%s)", r.replicas, tt.want, r.message())
				}
				if r.hold != tt.wantHold {
					t.Errorf("hold = %d, want %d (%s)", r.hold, tt.wantHold, r.message())
				}
			}
			checkMessage(t, r.message(), tt.wantMessage)
		})
	}
}

func checkMessage(t *testing.T, got, want string) {
	t.Helper()
	switch {
	case want == "":
	case strings.HasPrefix(want, "="):
		if got != want[1:] {
			t.Errorf("message = %q, want %q", got, want[1:])
		}
	case !strings.Contains(got, want):
		t.Errorf("message = %q, want it to contain %q", got, want)
	}
}

// TestResolveConfig checks the defaults filled in from the spec, which
// must match Kubernetes' GenerateHPAScaleUpRules/GenerateHPAScaleDownRules
// and the CRD's defaults.
func TestResolveConfig(t *testing.T) {
	t.Parallel()
	t.Run("zero spec", func(t *testing.T) {
		t.Parallel()
		c := resolveConfig(v1alpha1.Autoscaling{})
		if c.minReplicas != 1 || c.maxReplicas != DefaultMaxReplicas {
			t.Errorf("bounds = [%d, %d], want [1, %d]", c.minReplicas, c.maxReplicas, DefaultMaxReplicas)
		}
		if c.behavior != nil || c.burst != nil || len(c.metrics) != 0 {
			t.Errorf("want no behavior, burst or metrics, got %+v", c)
		}
		if c.tolerance != (tolerances{0.1, 0.1}) {
			t.Errorf("tolerance = %+v, want 10%% both ways", c.tolerance)
		}
	})
	t.Run("empty behavior gets Kubernetes' defaults", func(t *testing.T) {
		t.Parallel()
		c := resolveConfig(v1alpha1.Autoscaling{Behavior: &autoscalingv2.HorizontalPodAutoscalerBehavior{}})
		up, down := c.behavior.scaleUp, c.behavior.scaleDown
		if up.window != 0 || up.selected != autoscalingv2.MaxChangePolicySelect || len(up.policies) != 2 ||
			up.policies[0] != (autoscalingv2.HPAScalingPolicy{Type: autoscalingv2.PodsScalingPolicy, Value: 4, PeriodSeconds: 15}) ||
			up.policies[1] != (autoscalingv2.HPAScalingPolicy{Type: autoscalingv2.PercentScalingPolicy, Value: 100, PeriodSeconds: 15}) {
			t.Errorf("scale-up rules = %+v", up)
		}
		if down.window != 300*time.Second || down.selected != autoscalingv2.MaxChangePolicySelect || len(down.policies) != 1 ||
			down.policies[0] != (autoscalingv2.HPAScalingPolicy{Type: autoscalingv2.PercentScalingPolicy, Value: 100, PeriodSeconds: 15}) {
			t.Errorf("scale-down rules = %+v", down)
		}
	})
	t.Run("set fields win, tolerances per direction", func(t *testing.T) {
		t.Parallel()
		c := resolveConfig(v1alpha1.Autoscaling{
			MinReplicas: ptr(int32(0)),
			MaxReplicas: 50,
			Behavior: &autoscalingv2.HorizontalPodAutoscalerBehavior{
				ScaleUp: &autoscalingv2.HPAScalingRules{
					StabilizationWindowSeconds: ptr(int32(30)),
					SelectPolicy:               selectPolicy(autoscalingv2.MinChangePolicySelect),
					Tolerance:                  quantity("0.05"),
				},
				ScaleDown: &autoscalingv2.HPAScalingRules{
					Policies:  []autoscalingv2.HPAScalingPolicy{{Type: autoscalingv2.PodsScalingPolicy, Value: 1, PeriodSeconds: 60}},
					Tolerance: quantity("0.2"),
				},
			},
			Burst: &v1alpha1.BurstPolicy{},
		})
		if c.minReplicas != 0 || c.maxReplicas != 50 {
			t.Errorf("bounds = [%d, %d], want [0, 50]", c.minReplicas, c.maxReplicas)
		}
		if c.behavior.scaleUp.window != 30*time.Second || c.behavior.scaleUp.selected != autoscalingv2.MinChangePolicySelect ||
			len(c.behavior.scaleUp.policies) != 2 {
			t.Errorf("scale-up rules = %+v", c.behavior.scaleUp)
		}
		if c.behavior.scaleDown.window != 300*time.Second || c.behavior.scaleDown.policies[0].Value != 1 {
			t.Errorf("scale-down rules = %+v", c.behavior.scaleDown)
		}
		if c.tolerance != (tolerances{scaleDown: 0.2, scaleUp: 0.05}) {
			t.Errorf("tolerance = %+v", c.tolerance)
		}
		if *c.burst != (burstConfig{threshold: 2, window: 6 * time.Second}) {
			t.Errorf("burst = %+v", *c.burst)
		}
	})
	t.Run("min above max is lowered", func(t *testing.T) {
		t.Parallel()
		c := resolveConfig(v1alpha1.Autoscaling{MinReplicas: ptr(int32(8)), MaxReplicas: 5})
		if c.minReplicas != 5 || c.maxReplicas != 5 {
			t.Errorf("bounds = [%d, %d], want [5, 5]", c.minReplicas, c.maxReplicas)
		}
	})
}
