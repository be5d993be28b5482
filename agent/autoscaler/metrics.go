package autoscaler

import (
	"fmt"
	"math"
	"strings"
	"time"

	"meridian.dev/meridian/crds/v1alpha1"
)

// Metric names, as Decision.Metric and MetricStatus.Name report them.
const (
	// MetricCPU is CPU use in percent of request (MetricTargets.CPUUtilization).
	MetricCPU = "cpu"
	// MetricMemory is memory use in percent of request
	// (MetricTargets.MemoryUtilization).
	MetricMemory = "memory"
	// MetricRequestsPerSecond is requests per second per replica.
	MetricRequestsPerSecond = "requestsPerSecond"
	// MetricQueueLength is queued requests per replica.
	MetricQueueLength = "queueLength"
	// MetricP95Latency is the mean over replicas of each replica's p95
	// request latency.
	MetricP95Latency = "p95Latency"
)

// metricKind is how Kubernetes would read a metric.
type metricKind int

const (
	// utilization is a Resource metric with a Utilization target: usage
	// in percent of the pods' requests, averaged as total usage over total
	// request and truncated to a whole percent.
	utilization metricKind = iota
	// averageValue is a Pods metric (or a Resource metric with an
	// AverageValue target): the plain mean over pods of a per-pod value,
	// in milli-units.
	averageValue
)

// milli is the fixed-point scale Kubernetes computes plain metrics in
// (Quantity.MilliValue): values are int64 thousandths.
const milli = 1000

// maxMilli bounds one sample so that sums over many replicas cannot
// overflow int64.
const maxMilli = int64(1) << 50

// metricSource is one metric with a target in the spec.
type metricSource struct {
	name string
	kind metricKind
	// target is a whole percent for utilization, milli-units for
	// averageValue. Zero or negative makes the metric invalid.
	target int64
	// value extracts the metric from a sample, nil when absent.
	value func(Sample) *float64
	// format prints a value in target's units for messages.
	format func(int64) string
	// toFloat converts a value in target's units to the metric's natural
	// unit for MetricStatus.
	toFloat func(int64) float64
}

// metricSources lists the metrics with a target, in a fixed order.
func metricSources(t v1alpha1.MetricTargets) []metricSource {
	var out []metricSource
	percent := func(v int64) string { return fmt.Sprintf("%d%%", v) }
	percentFloat := func(v int64) float64 { return float64(v) }
	plainFloat := func(v int64) float64 { return float64(v) / milli }
	if t.CPUUtilization != nil {
		out = append(out, metricSource{
			name: MetricCPU, kind: utilization, target: int64(*t.CPUUtilization),
			value:  func(s Sample) *float64 { return s.CPUUtilization },
			format: percent, toFloat: percentFloat,
		})
	}
	if t.MemoryUtilization != nil {
		out = append(out, metricSource{
			name: MetricMemory, kind: utilization, target: int64(*t.MemoryUtilization),
			value:  func(s Sample) *float64 { return s.MemoryUtilization },
			format: percent, toFloat: percentFloat,
		})
	}
	if t.RequestsPerSecond != nil {
		out = append(out, metricSource{
			name: MetricRequestsPerSecond, kind: averageValue, target: t.RequestsPerSecond.MilliValue(),
			value:  func(s Sample) *float64 { return s.RequestsPerSecond },
			format: func(v int64) string { return formatMilli(v) + "/s" }, toFloat: plainFloat,
		})
	}
	if t.QueueLength != nil {
		out = append(out, metricSource{
			name: MetricQueueLength, kind: averageValue, target: int64(*t.QueueLength) * milli,
			value:  func(s Sample) *float64 { return s.QueueLength },
			format: formatMilli, toFloat: plainFloat,
		})
	}
	if t.P95Latency != nil {
		// The p95 of a fleet is not an average of anything, but the HPA
		// algorithm needs a per-replica value whose average falls as
		// replicas are added. We use the mean of the replicas' p95s, not
		// the max: it is exactly what a real HPA computes from a per-pod
		// p95 gauge as a Pods metric with an AverageValue target (so the
		// process and kubernetes runtimes scale alike); it keeps
		// Kubernetes' missing/unready rebalancing meaningful (a max
		// ignores the zeros that stand for unready replicas); and one slow
		// replica (a noisy node, a cold cache) cannot multiply the fleet
		// when adding replicas would not make that replica faster.
		// Values are milliseconds, the milli-units of seconds.
		d := t.P95Latency.Duration
		out = append(out, metricSource{
			name: MetricP95Latency, kind: averageValue, target: int64((d + time.Millisecond - 1) / time.Millisecond),
			value: func(s Sample) *float64 { return s.P95LatencySeconds },
			format: func(v int64) string {
				return (time.Duration(v) * time.Millisecond).String()
			},
			toFloat: plainFloat,
		})
	}
	return out
}

// toMilli converts a sample value to the metric's integer units: thousandths
// of a percent for utilization, thousandths for plain values. ok is false
// for values Kubernetes could never have received (NaN, infinite,
// negative), which count as missing.
func toMilli(v *float64) (int64, bool) {
	if v == nil || math.IsNaN(*v) || math.IsInf(*v, 0) || *v < 0 {
		return 0, false
	}
	return min(int64(math.Round(*v*milli)), maxMilli), true
}

// average computes the current value of the metric from per-replica values
// the way Kubernetes' metrics helpers do: for utilization,
// int(total*100/totalRequest) — every replica has the same request here,
// so that is the mean percentage truncated to a whole percent
// (GetResourceUtilizationRatio); for plain values, the integer mean of
// milli-values (GetMetricUsageRatio).
func (m metricSource) average(values []int64) int64 {
	var total int64
	for _, v := range values {
		total += v
	}
	n := int64(len(values))
	if m.kind == utilization {
		return total / (n * milli)
	}
	return total / n
}

// holdKind says why a metric proposed the current count.
type holdKind int

const (
	// holdNone: the count follows the ratio.
	holdNone holdKind = iota
	// holdTolerance: the (rebalanced) ratio is within tolerance.
	holdTolerance
	// holdReverse: counting missing or unready replicas reverses the
	// direction of the change.
	holdReverse
	// holdSame: the rounded-up count happens to equal the current one.
	holdSame
)

// metricResult is one metric's proposal and how it came about, for
// messages.
type metricResult struct {
	metric *metricSource
	valid  bool
	// invalid explains why valid is false.
	invalid string

	replicas int32
	current  int32
	tol      tolerances
	hold     holdKind

	// usage and ratio are over ready replicas that reported the metric.
	usage int64
	ratio float64
	ready int
	// missing are ready replicas without the metric; unready are replicas
	// not ready.
	missing, unready int

	// rebalanced is whether missing or unready replicas were counted in;
	// newUsage and newRatio are then over counted replicas, and the fills
	// say what each missing or unready replica counted as.
	rebalanced      bool
	newUsage        int64
	newRatio        float64
	counted         int
	missingFilledAs int64
	missingFilled   bool
	unreadyFilled   bool
}

// replicasFor is Kubernetes' replica calculation for one metric
// (ReplicaCalculator.GetResourceReplicas for utilization,
// calcPlainMetricReplicas for plain values), over samples that stand for
// the pods of the target:
//
//  1. Replicas that are not ready are set aside (groupPods puts pending and
//     unready pods aside); ready replicas without the metric are "missing".
//  2. ratio = average usage of the rest / target. With nothing missing and
//     no unready replica on a scale-up: within tolerance keep the count,
//     else ceil(ratio × ready replicas with the metric).
//  3. Otherwise rebalance: on a scale-down (ratio < 1) missing replicas
//     count as using 100% of their request (utilization; the target if it
//     were above 100%) or exactly the target (plain values); on a scale-up
//     (ratio > 1) as using 0, and unready replicas count as 0 too. Compute
//     the new ratio over all counted replicas; if it is within tolerance or
//     on the other side of 1, keep the count; else ceil(new ratio × counted
//     replicas), unless that count moves against the ratio's direction.
//
// One difference: Kubernetes sets unready pods aside only for CPU (its
// readiness check guards against start-up CPU spikes) and pending pods for
// every metric. A replica that is not ready here is one still starting or
// loading its model — a pending pod in all but name — so it is set aside
// for every metric.
func (m *metricSource) replicasFor(current int32, samples []Sample, tol tolerances) metricResult {
	r := metricResult{metric: m, current: current, tol: tol}
	if m.target <= 0 {
		r.invalid = m.name + ": target must be positive"
		return r
	}
	var values []int64
	for _, s := range samples {
		if !s.Ready {
			r.unready++
			continue
		}
		v, ok := toMilli(m.value(s))
		if !ok {
			r.missing++
			continue
		}
		values = append(values, v)
	}
	if len(values) == 0 {
		r.invalid = fmt.Sprintf("%s: no ready replica reports it", m.name)
		return r
	}
	r.valid = true
	r.ready = len(values)
	r.usage = m.average(values)
	r.ratio = float64(r.usage) / float64(m.target)

	scaleUpWithUnready := r.unready > 0 && r.ratio > 1.0
	if !scaleUpWithUnready && r.missing == 0 {
		if tol.isWithin(r.ratio) {
			r.replicas, r.hold = current, holdTolerance
			return r
		}
		r.replicas = ceilReplicas(r.ratio * float64(r.ready))
		if r.replicas == current {
			r.hold = holdSame
		}
		return r
	}

	r.rebalanced = true
	if r.missing > 0 {
		switch {
		case r.ratio < 1.0:
			// Scale-down: a missing replica might be busy; assume it uses
			// all it asked for (or the target, for plain metrics).
			fill := m.target
			if m.kind == utilization {
				fill = max(100, m.target) * milli
			}
			r.missingFilled, r.missingFilledAs = true, fill
			for range r.missing {
				values = append(values, fill)
			}
		case r.ratio > 1.0:
			// Scale-up: a missing replica might be idle; assume it uses
			// nothing.
			r.missingFilled, r.missingFilledAs = true, 0
			for range r.missing {
				values = append(values, 0)
			}
		}
	}
	if scaleUpWithUnready {
		r.unreadyFilled = true
		for range r.unready {
			values = append(values, 0)
		}
	}
	r.counted = len(values)
	r.newUsage = m.average(values)
	r.newRatio = float64(r.newUsage) / float64(m.target)

	if tol.isWithin(r.newRatio) {
		r.replicas, r.hold = current, holdTolerance
		return r
	}
	if (r.ratio < 1.0 && r.newRatio > 1.0) || (r.ratio > 1.0 && r.newRatio < 1.0) {
		r.replicas, r.hold = current, holdReverse
		return r
	}
	newReplicas := ceilReplicas(r.newRatio * float64(r.counted))
	if (r.newRatio < 1.0 && newReplicas > current) || (r.newRatio > 1.0 && newReplicas < current) {
		// More counted replicas than the current count can turn a
		// scale-down ratio into a higher count; keep the count instead.
		r.replicas, r.hold = current, holdReverse
		return r
	}
	r.replicas = newReplicas
	if r.replicas == current {
		r.hold = holdSame
	}
	return r
}

// ceilReplicas rounds a replica count up, saturating at MaxInt32 as
// Kubernetes does for huge ratios.
func ceilReplicas(v float64) int32 {
	c := math.Ceil(v)
	if c >= math.MaxInt32 {
		return math.MaxInt32
	}
	if c < 0 {
		return 0
	}
	return int32(c)
}

// message explains the result, e.g. "cpu 180% of target 60% on 2 ready
// replicas -> 6".
func (r metricResult) message() string {
	m := r.metric
	if !r.valid {
		return r.invalid
	}
	perReplica := ""
	if m.kind == averageValue {
		perReplica = " per replica"
	}
	var b strings.Builder
	fmt.Fprintf(&b, "%s %s%s of target %s on %d ready %s", m.name, m.format(r.usage), perReplica,
		m.format(m.target), r.ready, plural(r.ready, "replica", "replicas"))
	if r.rebalanced {
		var parts []string
		if r.missingFilled {
			parts = append(parts, fmt.Sprintf("%d %s without the metric as %s",
				r.missing, plural(r.missing, "replica", "replicas"), r.fillString(r.missingFilledAs)))
		}
		if r.unreadyFilled {
			parts = append(parts, fmt.Sprintf("%d unready as %s", r.unready, r.fillString(0)))
		}
		if len(parts) > 0 {
			fmt.Fprintf(&b, "; counting %s: %s", strings.Join(parts, " and "), m.format(r.newUsage))
		}
	}
	switch r.hold {
	case holdTolerance:
		fmt.Fprintf(&b, " is within tolerance (%s)", r.tol)
	case holdReverse:
		b.WriteString(", which would reverse the direction")
	}
	fmt.Fprintf(&b, " -> %d", r.replicas)
	return b.String()
}

// fillString prints what a missing or unready replica counted as.
func (r metricResult) fillString(v int64) string {
	if r.metric.kind == utilization {
		return fmt.Sprintf("%d%%", v/milli)
	}
	return r.metric.format(v)
}

// status is the public view of the result.
func (r metricResult) status() MetricStatus {
	s := MetricStatus{
		Name:    r.metric.name,
		Valid:   r.valid,
		Target:  r.metric.toFloat(r.metric.target),
		Message: r.message(),
	}
	if r.valid {
		s.Current = r.metric.toFloat(r.usage)
		s.DesiredReplicas = r.replicas
	}
	return s
}

// formatMilli prints a milli-value as a decimal, e.g. 45500 -> "45.5".
func formatMilli(v int64) string {
	return formatFloat(float64(v) / milli)
}

func plural(n int, one, many string) string {
	if n == 1 {
		return one
	}
	return many
}
