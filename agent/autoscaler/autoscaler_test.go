package autoscaler

import (
	"sync"
	"testing"
	"time"

	autoscalingv2 "k8s.io/api/autoscaling/v2"

	"meridian.dev/meridian/crds/v1alpha1"
)

// TestDecideOnce checks single decisions of a fresh Autoscaler: combining
// metrics, bounds, the default scale-up limit and the first step of the
// rate policies. A fresh Autoscaler records the current count as its first
// recommendation (as a new HPA does), so cases that scale down use a
// behavior without scale-down window.
func TestDecideOnce(t *testing.T) {
	t.Parallel()
	cpuAndRPS := func(n int, cpuPercent, rps float64) []Sample {
		s := cpuN(n, cpuPercent)
		for i := range s {
			s[i].RequestsPerSecond = ptr(rps)
		}
		return s
	}
	bothTargets := v1alpha1.Autoscaling{
		MaxReplicas: 30,
		Targets: v1alpha1.MetricTargets{
			CPUUtilization:    ptr(int32(60)),
			RequestsPerSecond: quantity("10"),
		},
	}
	cpuAndQueue := v1alpha1.Autoscaling{
		MaxReplicas: 30,
		Targets: v1alpha1.MetricTargets{
			CPUUtilization: ptr(int32(60)),
			QueueLength:    ptr(int32(4)),
		},
		Behavior: immediateScaleDown(),
	}
	tests := []struct {
		name        string
		spec        v1alpha1.Autoscaling
		current     int32
		samples     []Sample
		want        int32
		wantReason  Reason
		wantMetric  string
		wantMessage string
	}{
		{
			// cpu: 90/60 = 1.5, ceil(1.5 × 5) = 8; requestsPerSecond:
			// 18/10 = 1.8, ceil(1.8 × 5) = 9. The largest wins; the
			// default limit max(2×5, 4) = 10 lets it through.
			name: "several metrics: the largest proposal wins", spec: bothTargets, current: 5,
			samples: cpuAndRPS(5, 90, 18), want: 9, wantReason: ReasonScaleUp, wantMetric: MetricRequestsPerSecond,
			wantMessage: "=requestsPerSecond 18/s per replica of target 10/s on 5 ready replicas -> 9",
		},
		{
			// cpu proposes ceil(1.5 × 5) = 8; the queue length has a
			// target but no replica reports it: skipped on a scale-up.
			name: "an invalid metric is skipped on scale-up", spec: cpuAndQueue, current: 5,
			samples: cpuN(5, 90), want: 8, wantReason: ReasonScaleUp, wantMetric: MetricCPU,
		},
		{
			// cpu proposes ceil(20/60 × 5) = 2, but with another metric
			// unavailable Kubernetes does not scale down
			// (computeReplicasForMetrics returns an error).
			name: "an invalid metric blocks a scale-down", spec: cpuAndQueue, current: 5,
			samples: cpuN(5, 20), want: 5, wantReason: ReasonPartialMetrics, wantMetric: MetricCPU,
			wantMessage: "=cpu 20% of target 60% on 5 ready replicas -> 2, but not scaling down while other metrics are unavailable (queueLength: no ready replica reports it); keeping 5 replicas",
		},
		{
			name: "no metrics at all keeps the count", spec: cpuAndQueue, current: 5,
			samples: noMetric(5), want: 5, wantReason: ReasonNoMetrics,
			wantMessage: "=no usable metrics (cpu: no ready replica reports it; queueLength: no ready replica reports it); keeping 5 replicas",
		},
		{
			name: "no samples keeps the count", spec: cpuAndQueue, current: 3,
			want: 3, wantReason: ReasonNoMetrics,
		},
		{
			// Without targets the count steers to minReplicas.
			name: "no targets scale to minReplicas", current: 3,
			spec: v1alpha1.Autoscaling{MinReplicas: ptr(int32(2)), Behavior: immediateScaleDown()},
			want: 2, wantReason: ReasonScaleDown,
			wantMessage: "=no metric targets are set -> minReplicas 2",
		},
		{
			name: "no targets at minReplicas", current: 1,
			spec: v1alpha1.Autoscaling{}, want: 1, wantReason: ReasonNoTargets,
		},
		{
			// 300/50 = 6, ceil(6 × 6) = 36; the default limit max(2×6, 4)
			// = 12 is above maxReplicas 10, so maxReplicas cuts.
			name: "scale to max clamp", spec: cpuSpec(50, 1, 10), current: 6,
			samples: cpuN(6, 300), want: 10, wantReason: ReasonAtMax, wantMetric: MetricCPU,
			wantMessage: "=cpu 300% of target 50% on 6 ready replicas -> 36; capped at maxReplicas 10",
		},
		{
			// 250/50 = 5, ceil(5 × 1) = 5; without behavior Kubernetes
			// allows at most max(2×1, 4) = 4 in one step.
			name: "default scale-up limit without behavior: 1 -> 5 becomes 4", spec: cpuSpec(50, 1, 10), current: 1,
			samples: cpu(250), want: 4, wantReason: ReasonScaleUpLimited, wantMetric: MetricCPU,
			wantMessage: "=cpu 250% of target 50% on 1 ready replica -> 5; limited to 4, the most one step may reach without behavior: max(2×1, 4)",
		},
		{
			// 400/50 = 8, ceil(8 × 4) = 32; max(2×4, 4) = 8.
			name: "default scale-up limit doubles", spec: cpuSpec(50, 1, 100), current: 4,
			samples: cpuN(4, 400), want: 8, wantReason: ReasonScaleUpLimited,
		},
		{
			// With behavior, the default scale-up rules allow the larger
			// of +4 pods (1+4 = 5) and +100% (ceil(1 × 2) = 2) per 15s:
			// 5, so 1 -> 5 goes through.
			name: "default behavior allows 1 -> 5", spec: withBehavior(cpuSpec(50, 1, 10), &autoscalingv2.HorizontalPodAutoscalerBehavior{}),
			current: 1, samples: cpu(250), want: 5, wantReason: ReasonScaleUp,
		},
		{
			// A policy of 3 pods per 15s: 1+3 = 4, so 1 -> 5 becomes 4.
			name: "scale-up policy: 3 pods per 15s limits 1 -> 5 to 4",
			spec: withBehavior(cpuSpec(50, 1, 10), &autoscalingv2.HorizontalPodAutoscalerBehavior{
				ScaleUp: &autoscalingv2.HPAScalingRules{Policies: []autoscalingv2.HPAScalingPolicy{
					{Type: autoscalingv2.PodsScalingPolicy, Value: 3, PeriodSeconds: 15},
				}},
			}),
			current: 1, samples: cpu(250), want: 4, wantReason: ReasonScaleUpLimited,
			wantMessage: "; limited to 4 by behavior.scaleUp policies (selectPolicy Max)",
		},
		{
			// 180/60 = 3, ceil(3 × 10) = 30. Default policies: +4 pods
			// gives 14, +100% gives 20; selectPolicy Max picks 20.
			name: "selectPolicy Max picks the larger change", spec: withBehavior(cpuSpec(60, 1, 50), &autoscalingv2.HorizontalPodAutoscalerBehavior{}),
			current: 10, samples: cpuN(10, 180), want: 20, wantReason: ReasonScaleUpLimited,
		},
		{
			// Same, selectPolicy Min picks 14.
			name: "selectPolicy Min picks the smaller change",
			spec: withBehavior(cpuSpec(60, 1, 50), &autoscalingv2.HorizontalPodAutoscalerBehavior{
				ScaleUp: &autoscalingv2.HPAScalingRules{SelectPolicy: selectPolicy(autoscalingv2.MinChangePolicySelect)},
			}),
			current: 10, samples: cpuN(10, 180), want: 14, wantReason: ReasonScaleUpLimited,
		},
		{
			// selectPolicy Disabled forbids scaling up at all.
			name: "selectPolicy Disabled forbids scale-up",
			spec: withBehavior(cpuSpec(60, 1, 50), &autoscalingv2.HorizontalPodAutoscalerBehavior{
				ScaleUp: &autoscalingv2.HPAScalingRules{SelectPolicy: selectPolicy(autoscalingv2.DisabledPolicySelect)},
			}),
			current: 10, samples: cpuN(10, 180), want: 10, wantReason: ReasonScalingDisabled,
			wantMessage: "; scale-up disabled by behavior.scaleUp.selectPolicy",
		},
		{
			// 6/60 = 0.1, ceil(0.1 × 10) = 1; scale-down Disabled keeps 10.
			name: "selectPolicy Disabled forbids scale-down",
			spec: withBehavior(cpuSpec(60, 1, 50), &autoscalingv2.HorizontalPodAutoscalerBehavior{
				ScaleDown: &autoscalingv2.HPAScalingRules{
					StabilizationWindowSeconds: ptr(int32(0)),
					SelectPolicy:               selectPolicy(autoscalingv2.DisabledPolicySelect),
				},
			}),
			current: 10, samples: cpuN(10, 6), want: 10, wantReason: ReasonScalingDisabled,
		},
		{
			// 5/60 = 0.083, ceil(0.083 × 3) = 1; the default scale-down
			// policy (-100% per 15s) allows 0, minReplicas 2 cuts.
			name: "min clamp", spec: withBehavior(cpuSpec(60, 2, 10), immediateScaleDown()), current: 3,
			samples: cpuN(3, 5), want: 2, wantReason: ReasonAtMin,
			wantMessage: "=cpu 5% of target 60% on 3 ready replicas -> 1; raised to minReplicas 2",
		},
		{
			// Already at minReplicas: the clamp keeps the count.
			name: "min clamp at min", spec: withBehavior(cpuSpec(60, 2, 10), immediateScaleDown()), current: 2,
			samples: cpuN(2, 5), want: 2, wantReason: ReasonAtMin,
		},
		{
			// Already at maxReplicas, metrics want more: 120/60 = 2,
			// ceil(2 × 10) = 20, max 10.
			name: "max clamp at max", spec: cpuSpec(60, 1, 10), current: 10,
			samples: cpuN(10, 120), want: 10, wantReason: ReasonAtMax,
		},
		{
			// 30/60 = 0.5, ceil(0.5 × 4) = 2; no window, -100% allowed.
			name: "scale down", spec: withBehavior(cpuSpec(60, 1, 10), immediateScaleDown()), current: 4,
			samples: cpuN(4, 30), want: 2, wantReason: ReasonScaleDown,
		},
		{
			// 20/60 = 0.333, ceil(0.333 × 10) = 4; -2 pods per 60s gives
			// 8, a larger cut than -10% (int(10 × 0.9) = 9), so Max picks
			// 8.
			name: "scale-down policy limits the step",
			spec: withBehavior(cpuSpec(60, 1, 10), &autoscalingv2.HorizontalPodAutoscalerBehavior{
				ScaleDown: &autoscalingv2.HPAScalingRules{
					StabilizationWindowSeconds: ptr(int32(0)),
					Policies: []autoscalingv2.HPAScalingPolicy{
						{Type: autoscalingv2.PodsScalingPolicy, Value: 2, PeriodSeconds: 60},
						{Type: autoscalingv2.PercentScalingPolicy, Value: 10, PeriodSeconds: 60},
					},
				},
			}),
			current: 10, samples: cpuN(10, 20), want: 8, wantReason: ReasonScaleDownLimited,
		},
		{
			// Same policies with selectPolicy Min: the smaller change,
			// int(10 × 0.9) = 9.
			name: "scale-down selectPolicy Min picks the smaller change",
			spec: withBehavior(cpuSpec(60, 1, 10), &autoscalingv2.HorizontalPodAutoscalerBehavior{
				ScaleDown: &autoscalingv2.HPAScalingRules{
					StabilizationWindowSeconds: ptr(int32(0)),
					SelectPolicy:               selectPolicy(autoscalingv2.MinChangePolicySelect),
					Policies: []autoscalingv2.HPAScalingPolicy{
						{Type: autoscalingv2.PodsScalingPolicy, Value: 2, PeriodSeconds: 60},
						{Type: autoscalingv2.PercentScalingPolicy, Value: 10, PeriodSeconds: 60},
					},
				},
			}),
			current: 10, samples: cpuN(10, 20), want: 9, wantReason: ReasonScaleDownLimited,
		},
		{
			name: "within tolerance", spec: cpuSpec(60, 1, 10), current: 3,
			samples: cpuN(3, 63), want: 3, wantReason: ReasonWithinTolerance, wantMetric: MetricCPU,
			wantMessage: "=cpu 63% of target 60% on 3 ready replicas is within tolerance (-10%/+10%) -> 3",
		},
		{
			// behavior.scaleUp.tolerance 0.01: 63/60 = 1.05 > 1.01,
			// ceil(1.05 × 3) = 4.
			name: "per-direction tolerance from behavior",
			spec: withBehavior(cpuSpec(60, 1, 10), &autoscalingv2.HorizontalPodAutoscalerBehavior{
				ScaleUp: &autoscalingv2.HPAScalingRules{Tolerance: quantity("0.01")},
			}),
			current: 3, samples: cpuN(3, 63), want: 4, wantReason: ReasonScaleUp,
		},
		{
			name: "steady: the ceiling lands on the current count", spec: cpuSpec(60, 1, 10), current: 3,
			samples: cpuN(3, 50), want: 3, wantReason: ReasonSteady,
		},
		{
			// Kubernetes corrects the count to the bounds before reading
			// metrics.
			name: "current above max", spec: cpuSpec(60, 1, 10), current: 12,
			samples: cpuN(12, 600), want: 10, wantReason: ReasonAboveMax,
			wantMessage: "=current replicas 12 above maxReplicas 10 -> 10",
		},
		{
			// Unlike Kubernetes (which calls a target at 0 "scaling
			// disabled"), 0 below minReplicas means "not started yet".
			name: "current below min, including zero", spec: cpuSpec(60, 2, 10), current: 0,
			want: 2, wantReason: ReasonBelowMin,
		},
		{
			// minReplicas 0 and no replicas: nothing reports metrics, so
			// nothing changes (waking from zero needs a demand signal from
			// outside the replicas).
			name: "scale to zero stays at zero", spec: cpuSpec(60, 0, 10), current: 0,
			want: 0, wantReason: ReasonNoMetrics,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			d := New().Decide(Input{Now: t0, Spec: tt.spec, CurrentReplicas: tt.current, Samples: tt.samples})
			if d.DesiredReplicas != tt.want || d.Reason != tt.wantReason {
				t.Errorf("Decide = %d %s, want %d %s (%s)", d.DesiredReplicas, d.Reason, tt.want, tt.wantReason, d.Message)
			}
			if tt.wantMetric != "" && d.Metric != tt.wantMetric {
				t.Errorf("Metric = %q, want %q", d.Metric, tt.wantMetric)
			}
			if d.Burst {
				t.Errorf("Burst = true without a burst policy")
			}
			checkMessage(t, d.Message, tt.wantMessage)
		})
	}
}

// TestDecideMetricStatuses checks the per-metric report in a decision.
func TestDecideMetricStatuses(t *testing.T) {
	t.Parallel()
	spec := v1alpha1.Autoscaling{
		MaxReplicas: 20,
		Targets: v1alpha1.MetricTargets{
			CPUUtilization: ptr(int32(60)),
			QueueLength:    ptr(int32(4)),
			P95Latency:     duration(250 * time.Millisecond),
		},
	}
	samples := []Sample{
		{Ready: true, CPUUtilization: ptr(30.0), P95LatencySeconds: ptr(0.5)},
		{Ready: true, CPUUtilization: ptr(30.0), P95LatencySeconds: ptr(0.5)},
	}
	d := New().Decide(Input{Now: t0, Spec: spec, CurrentReplicas: 2, Samples: samples})
	// p95: 500/250 = 2, ceil(2 × 2) = 4 wins over cpu's ceil(0.5 × 2) = 1;
	// the queue length is unreported, which does not block a scale-up.
	if d.DesiredReplicas != 4 || d.Metric != MetricP95Latency {
		t.Fatalf("Decide = %d by %q, want 4 by p95Latency (%s)", d.DesiredReplicas, d.Metric, d.Message)
	}
	want := []MetricStatus{
		{Name: MetricCPU, Valid: true, Current: 30, Target: 60, DesiredReplicas: 1},
		{Name: MetricQueueLength, Valid: false, Target: 4},
		{Name: MetricP95Latency, Valid: true, Current: 0.5, Target: 0.25, DesiredReplicas: 4},
	}
	if len(d.Metrics) != len(want) {
		t.Fatalf("Metrics = %+v, want %d entries", d.Metrics, len(want))
	}
	for i, w := range want {
		got := d.Metrics[i]
		got.Message = ""
		if got != w {
			t.Errorf("Metrics[%d] = %+v, want %+v", i, got, w)
		}
		if d.Metrics[i].Message == "" {
			t.Errorf("Metrics[%d] has no message", i)
		}
	}
}

// step is one tick of a sequence: the Autoscaler is called at t0+at with
// the count the previous step decided (the agent applies every decision).
type step struct {
	at         time.Duration
	samples    []Sample
	short      []Sample
	want       int32
	wantReason Reason
	wantBurst  bool
	// wantMessage is matched as in checkMessage.
	wantMessage string
}

func runSteps(t *testing.T, spec v1alpha1.Autoscaling, start int32, steps []step) {
	t.Helper()
	a := New()
	current := start
	for i, s := range steps {
		d := a.Decide(Input{Now: t0.Add(s.at), Spec: spec, CurrentReplicas: current, Samples: s.samples, ShortWindow: s.short})
		if d.DesiredReplicas != s.want || d.Reason != s.wantReason || d.Burst != s.wantBurst {
			t.Errorf("step %d (t+%s, current %d): Decide = %d %s burst=%v, want %d %s burst=%v (%s)",
				i, s.at, current, d.DesiredReplicas, d.Reason, d.Burst, s.want, s.wantReason, s.wantBurst, d.Message)
		}
		checkMessage(t, d.Message, s.wantMessage)
		current = d.DesiredReplicas
	}
}

// TestDecideOverTime checks the rules that depend on history:
// stabilization windows and rate policies over their periods.
func TestDecideOverTime(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name  string
		spec  v1alpha1.Autoscaling
		start int32
		steps []step
	}{
		{
			// Without behavior: 20/60 = 0.333, ceil(0.333 × 6) = 2 every
			// tick, but the first recommendation is the current 6
			// (recordInitialRecommendation) and the window keeps the
			// highest of the last 300s, bound included
			// (stabilizeRecommendation drops only entries Before the
			// cutoff). At t+301s the 6 has left the window.
			name: "scale-down window holds for 300s without behavior", spec: cpuSpec(60, 1, 10), start: 6,
			steps: []step{
				{at: 0, samples: cpuN(6, 20), want: 6, wantReason: ReasonScaleDownStabilized,
					wantMessage: "=cpu 20% of target 60% on 6 ready replicas -> 2; held at 6, the highest recommendation of the last 5m0s"},
				{at: 150 * time.Second, samples: cpuN(6, 20), want: 6, wantReason: ReasonScaleDownStabilized},
				{at: 300 * time.Second, samples: cpuN(6, 20), want: 6, wantReason: ReasonScaleDownStabilized},
				{at: 301 * time.Second, samples: cpuN(6, 20), want: 2, wantReason: ReasonScaleDown},
			},
		},
		{
			// With behavior (defaults: 300s down window) the window keeps
			// recommendations strictly After the cutoff, so the 6 recorded
			// at t0 stops counting at exactly t+300s. The default
			// scale-down policy (-100% per 15s) allows 6 -> 2.
			name: "scale-down window holds for 300s with default behavior",
			spec: withBehavior(cpuSpec(60, 1, 10), &autoscalingv2.HorizontalPodAutoscalerBehavior{}), start: 6,
			steps: []step{
				{at: 0, samples: cpuN(6, 20), want: 6, wantReason: ReasonScaleDownStabilized},
				{at: 299 * time.Second, samples: cpuN(6, 20), want: 6, wantReason: ReasonScaleDownStabilized},
				{at: 300 * time.Second, samples: cpuN(6, 20), want: 2, wantReason: ReasonScaleDown},
			},
		},
		{
			// Down window 60s. t+0: 60/60 within tolerance, 4. t+10s:
			// 150/60 = 2.5, ceil(2.5 × 4) = 10; default scale-up policies
			// allow max(4+4, 4×2) = 8. t+20s: 30/60 = 0.5, ceil(0.5 × 8) =
			// 4, but the 10 recommended at t+10s is in the window: the
			// count stays at min(current 8, 10) = 8. t+71s: the 10 is 61s
			// old; the highest left is 4.
			name: "a recent high recommendation holds a scale-down",
			spec: withBehavior(cpuSpec(60, 1, 20), &autoscalingv2.HorizontalPodAutoscalerBehavior{
				ScaleDown: &autoscalingv2.HPAScalingRules{StabilizationWindowSeconds: ptr(int32(60))},
			}),
			start: 4,
			steps: []step{
				{at: 0, samples: cpuN(4, 60), want: 4, wantReason: ReasonWithinTolerance},
				{at: 10 * time.Second, samples: cpuN(4, 150), want: 8, wantReason: ReasonScaleUpLimited},
				{at: 20 * time.Second, samples: cpuN(8, 30), want: 8, wantReason: ReasonScaleDownStabilized,
					wantMessage: "; held at 8, the highest recommendation of the last 1m0s (behavior.scaleDown.stabilizationWindowSeconds)"},
				{at: 71 * time.Second, samples: cpuN(8, 30), want: 4, wantReason: ReasonScaleDown},
			},
		},
		{
			// Scale-up window 30s: the lowest recommendation of the last
			// 30s bounds a scale-up. t+0: 60% within tolerance, 4 recorded
			// (after the initial 4). t+10s: 120/60 = 2, ceil(2 × 4) = 8,
			// but 4 was recommended 10s ago: stay at 4. t+31s: the 4s are
			// older than 30s; the lowest left is 8.
			name: "scale-up stabilization window",
			spec: withBehavior(cpuSpec(60, 1, 20), &autoscalingv2.HorizontalPodAutoscalerBehavior{
				ScaleUp: &autoscalingv2.HPAScalingRules{StabilizationWindowSeconds: ptr(int32(30))},
			}),
			start: 4,
			steps: []step{
				{at: 0, samples: cpuN(4, 60), want: 4, wantReason: ReasonWithinTolerance},
				{at: 10 * time.Second, samples: cpuN(4, 120), want: 4, wantReason: ReasonScaleUpStabilized},
				{at: 31 * time.Second, samples: cpuN(4, 120), want: 8, wantReason: ReasonScaleUp},
			},
		},
		{
			// Without behavior: 5/60 = 0.083, ceil(0.083 × 3) = 1, held at
			// 3 by the initial recommendation, then raised to minReplicas 2.
			name: "min clamp without behavior", spec: cpuSpec(60, 2, 10), start: 3,
			steps: []step{
				{at: 0, samples: cpuN(3, 5), want: 3, wantReason: ReasonScaleDownStabilized},
				{at: 301 * time.Second, samples: cpuN(3, 5), want: 2, wantReason: ReasonAtMin},
			},
		},
		{
			// Without behavior, the window's maximum can also lift a
			// scale-up that the default limit cut: t+0 wants
			// ceil(600/60 × 1) = 10, limited to max(2×1, 4) = 4. t+15s:
			// 4 replicas at 75% want ceil(1.25 × 4) = 5, but 10 is in the
			// window: stabilized to 10, limited to max(2×4, 4) = 8.
			name: "without behavior the window lifts a limited scale-up", spec: cpuSpec(60, 1, 20), start: 1,
			steps: []step{
				{at: 0, samples: cpu(600), want: 4, wantReason: ReasonScaleUpLimited},
				{at: 15 * time.Second, samples: cpuN(4, 75), want: 8, wantReason: ReasonScaleUpLimited},
			},
		},
		{
			// Policy: +4 pods per 15s, applied against the count at the
			// start of the period. t+0: 600/60 = 10, ceil(10 × 1) = 10,
			// allowed 1+4 = 5. t+10s: 120/60 = 2, ceil(2 × 5) = 10; the +4
			// at t+0 is inside the period, so the period started at 1 and
			// 1+4 = 5 still: hold. t+16s: the event is older than 15s,
			// the period starts at 5: 5+4 = 9. t+32s: 70/60 = 1.167,
			// ceil(1.167 × 9) = 11 <= 9+4: through.
			name: "scale-up policy counts from the start of the period",
			spec: withBehavior(cpuSpec(60, 1, 50), &autoscalingv2.HorizontalPodAutoscalerBehavior{
				ScaleUp: &autoscalingv2.HPAScalingRules{Policies: []autoscalingv2.HPAScalingPolicy{
					{Type: autoscalingv2.PodsScalingPolicy, Value: 4, PeriodSeconds: 15},
				}},
			}),
			start: 1,
			steps: []step{
				{at: 0, samples: cpu(600), want: 5, wantReason: ReasonScaleUpLimited},
				{at: 10 * time.Second, samples: cpuN(5, 120), want: 5, wantReason: ReasonScaleUpLimited},
				{at: 16 * time.Second, samples: cpuN(5, 120), want: 9, wantReason: ReasonScaleUpLimited},
				{at: 32 * time.Second, samples: cpuN(9, 70), want: 11, wantReason: ReasonScaleUp},
			},
		},
		{
			// Policy: -50% per 60s, no window. t+0: 12/60 = 0.2,
			// ceil(0.2 × 10) = 2, allowed int(10 × 0.5) = 5. t+30s: wants
			// ceil(0.2 × 5) = 1; the period started at 5+5 = 10, so 5
			// still. t+61s: the period starts at 5, int(5 × 0.5) = 2.
			name: "scale-down policy counts from the start of the period",
			spec: withBehavior(cpuSpec(60, 1, 50), &autoscalingv2.HorizontalPodAutoscalerBehavior{
				ScaleDown: &autoscalingv2.HPAScalingRules{
					StabilizationWindowSeconds: ptr(int32(0)),
					Policies: []autoscalingv2.HPAScalingPolicy{
						{Type: autoscalingv2.PercentScalingPolicy, Value: 50, PeriodSeconds: 60},
					},
				},
			}),
			start: 10,
			steps: []step{
				{at: 0, samples: cpuN(10, 12), want: 5, wantReason: ReasonScaleDownLimited},
				{at: 30 * time.Second, samples: cpuN(5, 12), want: 5, wantReason: ReasonScaleDownLimited},
				{at: 61 * time.Second, samples: cpuN(5, 12), want: 2, wantReason: ReasonScaleDownLimited},
			},
		},
		{
			// A scale-down inside the scale-up period gives room back:
			// +100% per 60s. t+0: 4 -> ceil(180/60 × 4) = 12, allowed 8.
			// t+10s: 8 at 15% want ceil(0.25 × 8) = 2 (no window, -100%
			// allowed). t+20s: 2 at 600% want ceil(10 × 2) = 20; within
			// the 60s period 4 were added and 6 removed, so the period
			// started at 2 - 4 + 6 = 4, and +100% allows 4 × 2 = 8.
			name: "scale events of both directions set the period's start",
			spec: withBehavior(cpuSpec(60, 1, 50), &autoscalingv2.HorizontalPodAutoscalerBehavior{
				ScaleUp: &autoscalingv2.HPAScalingRules{Policies: []autoscalingv2.HPAScalingPolicy{
					{Type: autoscalingv2.PercentScalingPolicy, Value: 100, PeriodSeconds: 60},
				}},
				ScaleDown: &autoscalingv2.HPAScalingRules{StabilizationWindowSeconds: ptr(int32(0))},
			}),
			start: 4,
			steps: []step{
				{at: 0, samples: cpuN(4, 180), want: 8, wantReason: ReasonScaleUpLimited},
				{at: 10 * time.Second, samples: cpuN(8, 15), want: 2, wantReason: ReasonScaleDown},
				{at: 20 * time.Second, samples: cpuN(2, 600), want: 8, wantReason: ReasonScaleUpLimited},
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

// TestDecideConcurrent checks that a Decide is atomic: the rate policy's
// budget is read and spent under one lock. A scale-up policy of budget
// replicas per period faces many concurrent calls, each at 4 replicas with
// load that asks for a fifth, all at one instant. Whatever the
// interleaving, exactly budget calls may add their replica and every other
// call must be held at 4 by the policy: a call that read the events before
// another stored its own would grant one too many. The calls also leave
// exactly budget scale events behind, and one recommendation each.
func TestDecideConcurrent(t *testing.T) {
	t.Parallel()
	const (
		goroutines = 8
		calls      = 50
		budget     = 7
	)
	a := New()
	spec := withBehavior(cpuSpec(50, 1, 100), &autoscalingv2.HorizontalPodAutoscalerBehavior{
		ScaleUp: &autoscalingv2.HPAScalingRules{
			StabilizationWindowSeconds: ptr(int32(0)),
			Policies:                   []autoscalingv2.HPAScalingPolicy{{Type: autoscalingv2.PodsScalingPolicy, Value: budget, PeriodSeconds: 600}},
		},
		ScaleDown: &autoscalingv2.HPAScalingRules{StabilizationWindowSeconds: ptr(int32(0))},
	})
	decisions := make([][]Decision, goroutines)
	var wg sync.WaitGroup
	for g := range goroutines {
		wg.Go(func() {
			for range calls {
				// 60% of a 50% target on 4 replicas asks for ceil(4.8) = 5.
				decisions[g] = append(decisions[g], a.Decide(Input{
					Now: t0, Spec: spec, CurrentReplicas: 4, Samples: cpuN(4, 60),
				}))
			}
		})
	}
	wg.Wait()

	granted, limited := 0, 0
	for g, ds := range decisions {
		if len(ds) != calls {
			t.Fatalf("goroutine %d got %d decisions, want %d", g, len(ds), calls)
		}
		for _, d := range ds {
			switch {
			case d.DesiredReplicas == 5 && d.Reason == ReasonScaleUp:
				granted++
			case d.DesiredReplicas == 4 && d.Reason == ReasonScaleUpLimited:
				limited++
			default:
				t.Errorf("decision %d %s (%s): want 5 ScaleUp or 4 ScaleUpLimited", d.DesiredReplicas, d.Reason, d.Message)
			}
		}
	}
	if granted != budget || granted+limited != goroutines*calls {
		t.Fatalf("%d scale-ups granted and %d limited of %d calls; the policy allows exactly %d",
			granted, limited, goroutines*calls, budget)
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	added := int32(0)
	for _, e := range a.scaleUpEvents {
		added += e.change
	}
	if len(a.scaleUpEvents) != budget || added != budget || len(a.scaleDownEvents) != 0 {
		t.Fatalf("history: %d scale-up events adding %d, %d scale-down events; want %d adding %d, none",
			len(a.scaleUpEvents), added, len(a.scaleDownEvents), budget, budget)
	}
	// The seed plus one per call: none lost, none recorded twice.
	if got, want := len(a.recommendations), goroutines*calls+1; got != want {
		t.Fatalf("%d recommendations recorded, want %d", got, want)
	}
}
