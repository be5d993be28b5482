package hub

import (
	"fmt"
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
	if baked && judgeStable && stable.p95 > 0 && float64(fresh.p95) > maxRatio*float64(stable.p95) && fresh.p95-stable.p95 > tolerance {
		return verdict{resultFailed, fmt.Sprintf("p95 %s is over %.2f × the stable %s (%s)", fresh.p95, maxRatio, stable.p95, msg)}
	}
	return verdict{resultPassed, msg}
}

func parseOr(s string, def float64) float64 {
	if f, err := strconv.ParseFloat(s, 64); err == nil {
		return f
	}
	return def
}
