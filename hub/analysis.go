package hub

import (
	"fmt"
	"maps"
	"math"
	"slices"
	"strconv"
	"time"

	v1 "meridian.dev/meridian/crds/v1alpha1"
)

// result is an analysis' verdict on a step.
type result string

const (
	resultPassed       result = "Passed"
	resultFailed       result = "Failed"
	resultInconclusive result = "Inconclusive"
)

type verdict struct {
	result  result
	message string
}

// judge compares the new version's counts over a step with the stable
// version's over the same time: it fails when the new version's error
// rate exceeds the stable one's by more than MaxErrorRateIncrease (judged
// as soon as MinRequests reached the new version) or, at the end of the
// bake, when its p95 is over MaxLatencyRatio times the stable one's and
// LatencyTolerance slower; it
// cannot judge before the new version has MinRequests. With too few
// requests to the stable version (a wave at 100%), the new version's
// error rate is compared with zero and its latency is not judged.
func judge(a v1.RolloutAnalysis, fresh, stable counts, baked bool) verdict {
	maxIncrease := parseOr(a.MaxErrorRateIncrease, 0.02)
	maxRatio := parseOr(a.MaxLatencyRatio, 1.5)
	tolerance := a.LatencyTolerance.Duration
	if tolerance == 0 {
		tolerance = 20 * time.Millisecond
	}
	minRequests := int64(a.MinRequests)
	if minRequests <= 0 {
		minRequests = 20
	}
	rate := func(c counts) float64 {
		if c.requests <= 0 {
			return 0
		}
		return float64(c.errors) / float64(c.requests)
	}
	msg := fmt.Sprintf("new: %d requests, %.1f%% errors, p95 %s; stable: %d requests, %.1f%% errors, p95 %s",
		fresh.requests, 100*rate(fresh), fresh.p95, stable.requests, 100*rate(stable), stable.p95)
	if fresh.requests < minRequests {
		return verdict{resultInconclusive, fmt.Sprintf("%d of the %d requests needed reached the new version (%s)", fresh.requests, minRequests, msg)}
	}
	judgeStable := stable.requests >= minRequests
	stableRate := 0.0
	if judgeStable {
		stableRate = rate(stable)
	}
	if rate(fresh)-stableRate > maxIncrease {
		return verdict{resultFailed, fmt.Sprintf("error rate %.1f%% is over the stable %.1f%% + %.1f points (%s)", 100*rate(fresh), 100*stableRate, 100*maxIncrease, msg)}
	}
	if shift, label, ok := drift(fresh.predictions, stable.predictions, minRequests); baked && a.MaxPredictionShift != "" && ok && shift > parseOr(a.MaxPredictionShift, 1) {
		return verdict{resultFailed, fmt.Sprintf("predictions drifted: %q moved %.1f points from the stable version's share (%s)", label, 100*shift, msg)}
	}
	if baked && judgeStable && stable.p95 > 0 && float64(fresh.p95) > maxRatio*float64(stable.p95) && fresh.p95-stable.p95 > tolerance {
		return verdict{resultFailed, fmt.Sprintf("p95 %s is over %.2f × the stable %s (%s)", fresh.p95, maxRatio, stable.p95, msg)}
	}
	return verdict{resultPassed, msg}
}

// drift is the largest change of a label's share between two versions'
// predictions, and that label; ok is false while either has fewer than
// min predictions.
func drift(fresh, stable map[string]int64, least int64) (float64, string, bool) {
	total := func(m map[string]int64) (n int64) {
		for _, c := range m {
			n += c
		}
		return n
	}
	nf, ns := total(fresh), total(stable)
	if nf < least || ns < least {
		return 0, "", false
	}
	var worst float64
	var label string
	labels := map[string]bool{}
	for l := range fresh {
		labels[l] = true
	}
	for l := range stable {
		labels[l] = true
	}
	for _, l := range slices.Sorted(maps.Keys(labels)) {
		if d := math.Abs(float64(fresh[l])/float64(nf) - float64(stable[l])/float64(ns)); d > worst {
			worst, label = d, l
		}
	}
	return worst, label, true
}

func parseOr(s string, def float64) float64 {
	if f, err := strconv.ParseFloat(s, 64); err == nil {
		return f
	}
	return def
}
