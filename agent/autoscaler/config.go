package autoscaler

import (
	"math"
	"strconv"
	"time"

	autoscalingv2 "k8s.io/api/autoscaling/v2"

	"meridian.dev/meridian/crds/v1alpha1"
)

// config is a v1alpha1.Autoscaling with every default filled in.
type config struct {
	minReplicas int32
	maxReplicas int32
	metrics     []metricSource
	tolerance   tolerances
	// behavior is nil when the spec sets none: Kubernetes then uses its
	// older rules (only a scale-down window, scale-up limit
	// max(2×current, 4)) rather than the defaulted policies.
	behavior *behavior
	// burst is nil when burst mode is off.
	burst *burstConfig
}

// tolerances are the bands below and above a usage ratio of 1 inside which
// a metric proposes no change (Kubernetes' Tolerances type).
type tolerances struct {
	scaleDown float64
	scaleUp   float64
}

// isWithin reports whether ratio lies in [1-scaleDown, 1+scaleUp], bounds
// included, as Tolerances.isWithin does.
func (t tolerances) isWithin(ratio float64) bool {
	return 1.0-t.scaleDown <= ratio && ratio <= 1.0+t.scaleUp
}

func (t tolerances) String() string {
	return "-" + formatFloat(t.scaleDown*100) + "%/+" + formatFloat(t.scaleUp*100) + "%"
}

// behavior is an HorizontalPodAutoscalerBehavior with GenerateHPAScaleUpRules
// and GenerateHPAScaleDownRules applied and the scale-down window defaulted
// as the controller does (maybeInitScaleDownStabilizationWindow).
type behavior struct {
	scaleUp   rules
	scaleDown rules
}

// rules is one direction of a behavior.
type rules struct {
	window   time.Duration
	selected autoscalingv2.ScalingPolicySelect
	policies []autoscalingv2.HPAScalingPolicy
}

// longestPeriod is the longest policy period, the oldest scale event that
// can still matter.
func (r rules) longestPeriod() time.Duration {
	var longest int32
	for _, p := range r.policies {
		longest = max(longest, p.PeriodSeconds)
	}
	return time.Duration(longest) * time.Second
}

// burstConfig is a v1alpha1.BurstPolicy with defaults filled in.
type burstConfig struct {
	threshold float64
	window    time.Duration
}

func resolveConfig(spec v1alpha1.Autoscaling) config {
	c := config{minReplicas: 1, maxReplicas: DefaultMaxReplicas}
	if spec.MinReplicas != nil {
		c.minReplicas = max(*spec.MinReplicas, 0)
	}
	if spec.MaxReplicas > 0 {
		c.maxReplicas = spec.MaxReplicas
	}
	// The CRD rejects minReplicas > maxReplicas; if one slips through, the
	// maximum wins, as it is the one that protects the cluster.
	c.minReplicas = min(c.minReplicas, c.maxReplicas)
	c.metrics = metricSources(spec.Targets)
	c.tolerance = resolveTolerances(spec.Behavior)
	if spec.Behavior != nil {
		c.behavior = &behavior{
			scaleUp:   resolveRules(spec.Behavior.ScaleUp, true),
			scaleDown: resolveRules(spec.Behavior.ScaleDown, false),
		}
	}
	if spec.Burst != nil {
		c.burst = resolveBurst(*spec.Burst)
	}
	return c
}

// resolveTolerances reads behavior.scale{Up,Down}.tolerance, falling back
// to DefaultTolerance per direction, as the HPA controller does with the
// HPAConfigurableTolerance feature on. Negative values, which Kubernetes'
// validation rejects, fall back too.
func resolveTolerances(b *autoscalingv2.HorizontalPodAutoscalerBehavior) tolerances {
	t := tolerances{scaleDown: DefaultTolerance, scaleUp: DefaultTolerance}
	if b == nil {
		return t
	}
	if b.ScaleDown != nil && b.ScaleDown.Tolerance != nil {
		if v := b.ScaleDown.Tolerance.AsApproximateFloat64(); v >= 0 {
			t.scaleDown = v
		}
	}
	if b.ScaleUp != nil && b.ScaleUp.Tolerance != nil {
		if v := b.ScaleUp.Tolerance.AsApproximateFloat64(); v >= 0 {
			t.scaleUp = v
		}
	}
	return t
}

// resolveRules fills a direction's unset fields with Kubernetes' defaults:
// scale-up 0s window, selectPolicy Max, policies "4 Pods per 15s" and
// "100 Percent per 15s"; scale-down 300s window (the controller's
// --horizontal-pod-autoscaler-downscale-stabilization default), selectPolicy
// Max, policy "100 Percent per 15s". An empty (non-nil) policy list, which
// Kubernetes' validation rejects, is treated as unset.
func resolveRules(r *autoscalingv2.HPAScalingRules, up bool) rules {
	out := rules{selected: autoscalingv2.MaxChangePolicySelect}
	if up {
		out.window = 0
		out.policies = []autoscalingv2.HPAScalingPolicy{
			{Type: autoscalingv2.PodsScalingPolicy, Value: 4, PeriodSeconds: 15},
			{Type: autoscalingv2.PercentScalingPolicy, Value: 100, PeriodSeconds: 15},
		}
	} else {
		out.window = DefaultScaleDownStabilization
		out.policies = []autoscalingv2.HPAScalingPolicy{
			{Type: autoscalingv2.PercentScalingPolicy, Value: 100, PeriodSeconds: 15},
		}
	}
	if r == nil {
		return out
	}
	if r.StabilizationWindowSeconds != nil {
		out.window = time.Duration(max(*r.StabilizationWindowSeconds, 0)) * time.Second
	}
	if r.SelectPolicy != nil {
		out.selected = *r.SelectPolicy
	}
	if len(r.Policies) > 0 {
		out.policies = r.Policies
	}
	return out
}

// resolveBurst fills in the BurstPolicy defaults. A threshold at or below 1
// would keep burst mode on whenever the count is steady and forbid every
// scale-down, so it is treated as unset (DefaultBurstThreshold).
func resolveBurst(p v1alpha1.BurstPolicy) *burstConfig {
	b := &burstConfig{threshold: DefaultBurstThreshold, window: DefaultBurstWindow}
	if v := p.Threshold.AsApproximateFloat64(); v > 1 && !math.IsInf(v, 0) {
		b.threshold = v
	}
	if p.Window.Duration > 0 {
		b.window = p.Window.Duration
	}
	return b
}

// formatFloat prints a float to at most three decimals in its shortest
// form, e.g. "2", "0.5", "45.5".
func formatFloat(v float64) string {
	return strconv.FormatFloat(math.Round(v*1000)/1000, 'f', -1, 64)
}
