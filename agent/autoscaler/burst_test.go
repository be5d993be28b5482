package autoscaler

import (
	"testing"
	"time"

	autoscalingv2 "k8s.io/api/autoscaling/v2"

	"meridian.dev/meridian/crds/v1alpha1"
)

// TestBurst checks burst (panic) mode: entering when the short window's
// recommendation is at least Threshold × current, scaling there at once
// (bypassing scale-up policies, capped by maxReplicas), never scaling down
// while bursting, and leaving after a whole Window below the threshold.
func TestBurst(t *testing.T) {
	t.Parallel()
	withBurst := func(spec v1alpha1.Autoscaling, p v1alpha1.BurstPolicy) v1alpha1.Autoscaling {
		spec.Burst = &p
		return spec
	}
	tests := []struct {
		name  string
		spec  v1alpha1.Autoscaling
		start int32
		steps []step
	}{
		{
			// Defaults: threshold 2, window 6s.
			// t+0: the normal window wants ceil(70/60 × 2) = 3; the short
			// window wants ceil(300/60 × 2) = 10, 10/2 = 5 >= 2: burst.
			// Straight to 10, past the default limit max(2×2, 4) = 4.
			// t+3s: short window ceil(50/60 × 10) = 9, 0.9 < 2, but the
			// burst began 3s ago: stay in burst and do not scale down
			// (the normal window wants ceil(20/60 × 10) = 4).
			// t+6s: 6s below the threshold: the burst ends. The 10
			// recorded during the burst holds the scale-down for the
			// 300s window...
			// t+304s: ...until the recommendations of the burst (t+0,
			// t+3s) have left it; the highest left is 4.
			name: "enter and leave a burst", spec: withBurst(cpuSpec(60, 1, 20), v1alpha1.BurstPolicy{}), start: 2,
			steps: []step{
				{at: 0, samples: cpu(70, 70), short: cpu(300, 300), want: 10, wantReason: ReasonBurstScaleUp, wantBurst: true,
					wantMessage: "=burst: cpu 300% of target 60% on 2 ready replicas -> 10, 5× the current 2 (threshold 2, window 6s)"},
				{at: 3 * time.Second, samples: cpuN(10, 20), short: cpuN(10, 50), want: 10, wantReason: ReasonBurstHold, wantBurst: true,
					wantMessage: "burst: not scaling down; holding 10 replicas until short-window demand stays below the threshold for 6s"},
				{at: 6 * time.Second, samples: cpuN(10, 20), short: cpuN(10, 20), want: 10, wantReason: ReasonScaleDownStabilized},
				{at: 304 * time.Second, samples: cpuN(10, 20), short: cpuN(10, 20), want: 4, wantReason: ReasonScaleDown},
			},
		},
		{
			// Every tick over the threshold extends the burst: t+0 enters
			// (ceil(240/60 × 2) = 8, 4×); t+5s is over again (ceil(120/60
			// × 8) = 16, 2× — exactly the threshold counts), capped at
			// maxReplicas 12; t+10s is below the threshold but only 5s
			// after t+5s, so still bursting; t+11s leaves the burst — the
			// 16 recommended at t+5s is still in the scale-down window and
			// maxReplicas caps it, so the normal path reports AtMax.
			name: "each tick over the threshold extends the burst",
			spec: withBurst(cpuSpec(60, 1, 12), v1alpha1.BurstPolicy{}), start: 2,
			steps: []step{
				{at: 0, samples: cpu(60, 60), short: cpu(240, 240), want: 8, wantReason: ReasonBurstScaleUp, wantBurst: true},
				{at: 5 * time.Second, samples: cpuN(8, 60), short: cpuN(8, 120), want: 12, wantReason: ReasonBurstScaleUp, wantBurst: true,
					wantMessage: "; capped at maxReplicas 12"},
				{at: 10 * time.Second, samples: cpuN(12, 60), short: cpuN(12, 60), want: 12, wantReason: ReasonBurstHold, wantBurst: true},
				{at: 11 * time.Second, samples: cpuN(12, 60), short: cpuN(12, 60), want: 12, wantReason: ReasonAtMax},
			},
		},
		{
			// 100/60 = 1.667, ceil(1.667 × 4) = 7: 7/4 = 1.75 < 2, no
			// burst; the normal window (within tolerance) decides.
			name: "below the threshold: no burst",
			spec: withBurst(cpuSpec(60, 1, 20), v1alpha1.BurstPolicy{}), start: 4,
			steps: []step{
				{at: 0, samples: cpuN(4, 60), short: cpuN(4, 100), want: 4, wantReason: ReasonWithinTolerance},
			},
		},
		{
			// Threshold 3, window 10s: 150/60 = 2.5, ceil(2.5 × 4) = 10,
			// 10/4 = 2.5 < 3: no burst. Then 300/60 = 5, ceil(5 × 4) = 20,
			// 5× >= 3: burst to 20. Below the threshold at t+5s and t+10s
			// (9s after t+1s, < 10s): still bursting. t+11s: leaves.
			name: "custom threshold and window",
			spec: withBurst(cpuSpec(60, 1, 40), v1alpha1.BurstPolicy{Threshold: *quantity("3"), Window: *duration(10 * time.Second)}), start: 4,
			steps: []step{
				{at: 0, samples: cpuN(4, 60), short: cpuN(4, 150), want: 4, wantReason: ReasonWithinTolerance},
				{at: 1 * time.Second, samples: cpuN(4, 60), short: cpuN(4, 300), want: 20, wantReason: ReasonBurstScaleUp, wantBurst: true},
				{at: 5 * time.Second, samples: cpuN(20, 60), short: cpuN(20, 60), want: 20, wantReason: ReasonBurstHold, wantBurst: true},
				{at: 10 * time.Second, samples: cpuN(20, 60), short: cpuN(20, 60), want: 20, wantReason: ReasonBurstHold, wantBurst: true},
				{at: 11 * time.Second, samples: cpuN(20, 60), short: cpuN(20, 60), want: 20, wantReason: ReasonWithinTolerance},
			},
		},
		{
			// A scale-up policy of +1 pod per 60s would allow 2 -> 3; the
			// burst goes to ceil(300/60 × 2) = 10 at once.
			name: "burst bypasses scale-up policies",
			spec: withBurst(withBehavior(cpuSpec(60, 1, 20), &autoscalingv2.HorizontalPodAutoscalerBehavior{
				ScaleUp: &autoscalingv2.HPAScalingRules{Policies: []autoscalingv2.HPAScalingPolicy{
					{Type: autoscalingv2.PodsScalingPolicy, Value: 1, PeriodSeconds: 60},
				}},
			}), v1alpha1.BurstPolicy{}),
			start: 2,
			steps: []step{
				{at: 0, samples: cpu(60, 60), short: cpu(300, 300), want: 10, wantReason: ReasonBurstScaleUp, wantBurst: true},
				// The burst's +8 counts against the policy afterwards:
				// the period started at 2, so 2+1 = 3 < 10 allows nothing
				// more; the normal window asks ceil(120/60 × 10) = 20,
				// and the short window ceil(2 × 10) = 20 is 2× again:
				// the burst goes to 20.
				{at: 2 * time.Second, samples: cpuN(10, 120), short: cpuN(10, 120), want: 20, wantReason: ReasonBurstScaleUp, wantBurst: true},
			},
		},
		{
			// maxReplicas 6 caps a burst that wants 10; at 6 the burst
			// still wants more (ceil(5 × 6) = 30, 5×): AtMax.
			name: "burst capped by maxReplicas",
			spec: withBurst(cpuSpec(60, 1, 6), v1alpha1.BurstPolicy{}), start: 2,
			steps: []step{
				{at: 0, samples: cpu(60, 60), short: cpu(300, 300), want: 6, wantReason: ReasonBurstScaleUp, wantBurst: true,
					wantMessage: "5× the current 2 (threshold 2, window 6s); capped at maxReplicas 6"},
				{at: 1 * time.Second, samples: cpuN(6, 60), short: cpuN(6, 300), want: 6, wantReason: ReasonAtMax, wantBurst: true},
			},
		},
		{
			// With no short window the burst cannot start.
			name: "no short window, no burst",
			spec: withBurst(cpuSpec(60, 1, 20), v1alpha1.BurstPolicy{}), start: 2,
			steps: []step{
				{at: 0, samples: cpu(60, 60), want: 2, wantReason: ReasonWithinTolerance},
			},
		},
		{
			// The normal window may ask for more than the burst: its
			// reason stands. t+0: burst to ceil(300/60 × 2) = 10.
			// t+1s: the normal window wants ceil(180/60 × 10) = 30,
			// limited to max(2×10, 4) = 20; the short window wants
			// ceil(130/60 × 10) = 22, 2.2× >= 2: the burst goes to 22
			// past the limit.
			name: "burst and normal window both ask for more",
			spec: withBurst(cpuSpec(60, 1, 40), v1alpha1.BurstPolicy{}), start: 2,
			steps: []step{
				{at: 0, samples: cpu(60, 60), short: cpu(300, 300), want: 10, wantReason: ReasonBurstScaleUp, wantBurst: true},
				{at: time.Second, samples: cpuN(10, 180), short: cpuN(10, 130), want: 22, wantReason: ReasonBurstScaleUp, wantBurst: true},
				// t+2s: the normal window wants ceil(180/60 × 22) = 66,
				// limited to min(2×22, 40) = 40; the short window is
				// within tolerance (22): the normal path's AtMax stands.
				{at: 2 * time.Second, samples: cpuN(22, 180), short: cpuN(22, 60), want: 40, wantReason: ReasonAtMax, wantBurst: true},
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			runSteps(t, tt.spec, tt.start, tt.steps)
		})
	}
}
