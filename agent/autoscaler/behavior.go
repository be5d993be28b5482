package autoscaler

import (
	"fmt"
	"math"
	"time"

	autoscalingv2 "k8s.io/api/autoscaling/v2"
)

// timestampedRecommendation is one unstabilized recommendation.
type timestampedRecommendation struct {
	replicas int32
	at       time.Time
}

// scaleEvent is one change of the replica count, by how many replicas
// (always positive) and when.
type scaleEvent struct {
	change int32
	at     time.Time
}

// stabilize applies the stabilization windows to desired, records desired
// as the newest recommendation, and returns the stabilized count with the
// reason and note to report when it differs from desired.
//
// Without behavior this is HorizontalController.stabilizeRecommendation:
// the highest recommendation of the last DefaultScaleDownStabilization
// (bounds included), which can also lift a scale-up that the scale-up
// limit cut short earlier. With behavior it is
// stabilizeRecommendationWithBehaviors: the lowest recommendation newer
// than the scale-up window and the highest newer than the scale-down
// window bound the current count from below and above.
func (a *Autoscaler) stabilize(cfg config, now time.Time, current, desired int32) (int32, Reason, string) {
	if cfg.behavior == nil {
		window := DefaultScaleDownStabilization
		cutoff := now.Add(-window)
		highest := desired
		for _, rec := range a.recommendations {
			if !rec.at.Before(cutoff) {
				highest = max(highest, rec.replicas)
			}
		}
		a.recordRecommendation(now, desired, window)
		return highest, ReasonScaleDownStabilized,
			fmt.Sprintf("held at %d, the highest recommendation of the last %s", highest, window)
	}

	upWindow, downWindow := cfg.behavior.scaleUp.window, cfg.behavior.scaleDown.window
	upCutoff, downCutoff := now.Add(-upWindow), now.Add(-downWindow)
	upRecommendation, downRecommendation := desired, desired
	for _, rec := range a.recommendations {
		if rec.at.After(upCutoff) {
			upRecommendation = min(upRecommendation, rec.replicas)
		}
		if rec.at.After(downCutoff) {
			downRecommendation = max(downRecommendation, rec.replicas)
		}
	}
	stabilized := current
	if stabilized < upRecommendation {
		stabilized = upRecommendation
	}
	if stabilized > downRecommendation {
		stabilized = downRecommendation
	}
	a.recordRecommendation(now, desired, max(upWindow, downWindow))
	if desired >= current {
		return stabilized, ReasonScaleUpStabilized,
			fmt.Sprintf("held at %d, the lowest recommendation of the last %s (behavior.scaleUp.stabilizationWindowSeconds)", stabilized, upWindow)
	}
	return stabilized, ReasonScaleDownStabilized,
		fmt.Sprintf("held at %d, the highest recommendation of the last %s (behavior.scaleDown.stabilizationWindowSeconds)", stabilized, downWindow)
}

// recordRecommendation appends a recommendation and forgets those older
// than window, which no window can see any more. Kubernetes instead reuses
// the slot of one such old entry per call; the windows see the same set.
func (a *Autoscaler) recordRecommendation(now time.Time, replicas int32, window time.Duration) {
	cutoff := now.Add(-window)
	kept := a.recommendations[:0]
	for _, rec := range a.recommendations {
		if !rec.at.Before(cutoff) {
			kept = append(kept, rec)
		}
	}
	kept = append(kept, timestampedRecommendation{replicas: replicas, at: now})
	a.recommendations = kept
}

// limit applies the bounds and the rate limits to a stabilized count and
// returns the count with the reason and note to report when it differs.
func (a *Autoscaler) limit(cfg config, now time.Time, current, desired int32) (int32, Reason, string) {
	if cfg.behavior == nil {
		return limitWithoutBehavior(cfg, current, desired)
	}
	return a.limitWithBehavior(cfg, now, current, desired)
}

// limitWithoutBehavior is convertDesiredReplicasWithRules: at least
// minReplicas, at most maxReplicas, and at most max(2×current, 4) in one
// step (the guard Kubernetes added against bogus usage reports).
func limitWithoutBehavior(cfg config, current, desired int32) (int32, Reason, string) {
	scaleUpLimit := int32(math.Max(2*float64(current), 4))
	maxAllowed, reason, note := cfg.maxReplicas, ReasonAtMax, fmt.Sprintf("capped at maxReplicas %d", cfg.maxReplicas)
	if cfg.maxReplicas > scaleUpLimit {
		maxAllowed, reason = scaleUpLimit, ReasonScaleUpLimited
		note = fmt.Sprintf("limited to %d, the most one step may reach without behavior: max(2×%d, 4)", scaleUpLimit, current)
	}
	switch {
	case desired < cfg.minReplicas:
		return cfg.minReplicas, ReasonAtMin, fmt.Sprintf("raised to minReplicas %d", cfg.minReplicas)
	case desired > maxAllowed:
		return maxAllowed, reason, note
	}
	return desired, "", ""
}

// limitWithBehavior is convertDesiredReplicasWithBehaviorRate: a scale-up
// goes no further than maxReplicas and the scale-up policies allow, a
// scale-down no further than minReplicas and the scale-down policies allow.
func (a *Autoscaler) limitWithBehavior(cfg config, now time.Time, current, desired int32) (int32, Reason, string) {
	switch {
	case desired > current:
		r := cfg.behavior.scaleUp
		limit := a.scaleUpLimit(now, current, r)
		limit = max(limit, current) // no scaling up until events age out
		maxAllowed, reason, note := cfg.maxReplicas, ReasonAtMax, fmt.Sprintf("capped at maxReplicas %d", cfg.maxReplicas)
		if maxAllowed > limit {
			maxAllowed = limit
			if r.selected == autoscalingv2.DisabledPolicySelect {
				reason, note = ReasonScalingDisabled, "scale-up disabled by behavior.scaleUp.selectPolicy"
			} else {
				reason = ReasonScaleUpLimited
				note = fmt.Sprintf("limited to %d by behavior.scaleUp policies (selectPolicy %s)", limit, r.selected)
			}
		}
		if desired > maxAllowed {
			return maxAllowed, reason, note
		}
	case desired < current:
		r := cfg.behavior.scaleDown
		limit := a.scaleDownLimit(now, current, r)
		limit = min(limit, current) // no scaling down until events age out
		minAllowed, reason, note := cfg.minReplicas, ReasonAtMin, fmt.Sprintf("raised to minReplicas %d", cfg.minReplicas)
		if minAllowed < limit {
			minAllowed = limit
			if r.selected == autoscalingv2.DisabledPolicySelect {
				reason, note = ReasonScalingDisabled, "scale-down disabled by behavior.scaleDown.selectPolicy"
			} else {
				reason = ReasonScaleDownLimited
				note = fmt.Sprintf("limited to %d by behavior.scaleDown policies (selectPolicy %s)", limit, r.selected)
			}
		}
		if desired < minAllowed {
			return minAllowed, reason, note
		}
	}
	return desired, "", ""
}

// scaleUpLimit is calculateScaleUpLimitWithScalingRules: for each policy,
// the count at the start of its period (current, less what was added, plus
// what was removed within the period) plus the policy's Pods, or times
// (1 + Percent/100) rounded up; selectPolicy Max takes the largest, Min
// the smallest, Disabled forbids scaling up.
func (a *Autoscaler) scaleUpLimit(now time.Time, current int32, r rules) int32 {
	if r.selected == autoscalingv2.DisabledPolicySelect {
		return current
	}
	pickMin := r.selected == autoscalingv2.MinChangePolicySelect
	result := int32(math.MinInt32)
	if pickMin {
		result = math.MaxInt32
	}
	for _, p := range r.policies {
		start := a.periodStartReplicas(now, current, p.PeriodSeconds)
		var proposed int32
		switch p.Type {
		case autoscalingv2.PodsScalingPolicy:
			proposed = start + p.Value
		case autoscalingv2.PercentScalingPolicy:
			// Rounded up, or a small count could never grow.
			proposed = ceilReplicas(float64(start) * (1 + float64(p.Value)/100))
		default:
			continue
		}
		if pickMin {
			result = min(result, proposed)
		} else {
			result = max(result, proposed)
		}
	}
	return result
}

// scaleDownLimit is calculateScaleDownLimitWithBehaviors: for each policy,
// the count at the start of its period less the policy's Pods, or times
// (1 - Percent/100) rounded down; selectPolicy Max takes the largest
// change (the smallest count), Min the smallest change, Disabled forbids
// scaling down.
func (a *Autoscaler) scaleDownLimit(now time.Time, current int32, r rules) int32 {
	if r.selected == autoscalingv2.DisabledPolicySelect {
		return current
	}
	pickMin := r.selected == autoscalingv2.MinChangePolicySelect
	result := int32(math.MaxInt32)
	if pickMin {
		result = math.MinInt32
	}
	for _, p := range r.policies {
		start := a.periodStartReplicas(now, current, p.PeriodSeconds)
		var proposed int32
		switch p.Type {
		case autoscalingv2.PodsScalingPolicy:
			proposed = start - p.Value
		case autoscalingv2.PercentScalingPolicy:
			proposed = int32(float64(start) * (1 - float64(p.Value)/100))
		default:
			continue
		}
		if pickMin {
			result = max(result, proposed)
		} else {
			result = min(result, proposed)
		}
	}
	return result
}

// periodStartReplicas is the replica count at the start of a policy period:
// the current count less the replicas added and plus those removed by scale
// events newer than the period (getReplicasChangePerPeriod).
func (a *Autoscaler) periodStartReplicas(now time.Time, current, periodSeconds int32) int32 {
	cutoff := now.Add(-time.Duration(periodSeconds) * time.Second)
	start := current
	for _, e := range a.scaleUpEvents {
		if e.at.After(cutoff) {
			start -= e.change
		}
	}
	for _, e := range a.scaleDownEvents {
		if e.at.After(cutoff) {
			start += e.change
		}
	}
	return start
}

// storeScaleEvent records a change of count for the rate policies, only
// when the spec has a behavior (as storeScaleEvent does: without one no
// policy reads them). Events older than every policy period of both
// directions are forgotten. Kubernetes reuses the slot of an event older
// than its own direction's longest period, which can drop it from the
// other direction's longer period; here an event stays until no period of
// either direction can see it, so the count at the start of a period is
// always the true one.
func (a *Autoscaler) storeScaleEvent(cfg config, now time.Time, prev, next int32) {
	if cfg.behavior == nil {
		return
	}
	keep := max(cfg.behavior.scaleUp.longestPeriod(), cfg.behavior.scaleDown.longestPeriod())
	cutoff := now.Add(-keep)
	a.scaleUpEvents = pruneEvents(a.scaleUpEvents, cutoff)
	a.scaleDownEvents = pruneEvents(a.scaleDownEvents, cutoff)
	switch {
	case next > prev:
		a.scaleUpEvents = append(a.scaleUpEvents, scaleEvent{change: next - prev, at: now})
	case next < prev:
		a.scaleDownEvents = append(a.scaleDownEvents, scaleEvent{change: prev - next, at: now})
	}
}

func pruneEvents(events []scaleEvent, cutoff time.Time) []scaleEvent {
	kept := events[:0]
	for _, e := range events {
		if e.at.After(cutoff) {
			kept = append(kept, e)
		}
	}
	return kept
}
