package autoscaler

import (
	"fmt"
	"strings"
	"sync"
	"time"

	"meridian.dev/meridian/crds/v1alpha1"
)

// Defaults that apply where the spec leaves a knob unset. The first three
// are kube-controller-manager's defaults for the HorizontalPodAutoscaler
// (--horizontal-pod-autoscaler-tolerance and
// --horizontal-pod-autoscaler-downscale-stabilization) and the CRD's
// default for maxReplicas; the burst ones are the CRD's BurstPolicy defaults.
const (
	// DefaultTolerance is the band around a usage ratio of 1 inside which no
	// metric proposes a change: 0.1, so 90% to 110% of the target.
	DefaultTolerance = 0.1
	// DefaultScaleDownStabilization is how long a higher recommendation
	// holds off a scale-down when behavior.scaleDown sets no window.
	DefaultScaleDownStabilization = 300 * time.Second
	// DefaultMaxReplicas applies when Autoscaling.MaxReplicas is 0.
	DefaultMaxReplicas int32 = 10
	// DefaultBurstThreshold is the ratio of burst recommendation to current
	// replicas that starts burst mode.
	DefaultBurstThreshold = 2.0
	// DefaultBurstWindow is the short window of burst mode.
	DefaultBurstWindow = 6 * time.Second
)

// Sample is one replica's metrics over a measurement window. A nil field
// means the replica did not report that metric (Kubernetes' "missing"
// pods); NaN, infinite and negative values count as missing too.
type Sample struct {
	// Replica names the replica, for messages and debugging.
	Replica string
	// Ready is whether the replica answers requests. A replica that is not
	// ready (still starting, loading its model) is handled as Kubernetes
	// handles an unready or pending pod: ignored, except that it counts as
	// zero usage when the metrics call for a scale-up.
	Ready bool
	// CPUUtilization is CPU use in percent of the replica's CPU request.
	CPUUtilization *float64
	// MemoryUtilization is memory use in percent of the replica's memory
	// request.
	MemoryUtilization *float64
	// RequestsPerSecond is the rate of requests the replica served.
	RequestsPerSecond *float64
	// QueueLength is the number of requests waiting in the replica's queue.
	QueueLength *float64
	// P95LatencySeconds is the replica's 95th-percentile request latency,
	// in seconds.
	P95LatencySeconds *float64
}

// Input is everything one decision needs. The Autoscaler reads no clock and
// no other state than what it kept from earlier decisions.
type Input struct {
	// Now is the time of the decision. It should not go backwards between
	// calls; windows and policy periods are measured from it.
	Now time.Time
	// Spec is the ModelDeployment's autoscaling spec: bounds, targets,
	// behavior and burst policy. MinReplicas nil means 1; MaxReplicas 0
	// means DefaultMaxReplicas; a MinReplicas above MaxReplicas is lowered
	// to MaxReplicas.
	Spec v1alpha1.Autoscaling
	// CurrentReplicas is the replica count the agent runs now (what the
	// last applied decision asked for), ready or not.
	CurrentReplicas int32
	// Samples has one entry per existing replica, measured over the normal
	// (stable) window.
	Samples []Sample
	// ShortWindow has one entry per existing replica, measured over the
	// burst window (Spec.Burst.Window). It is read only when Spec.Burst is
	// set and may be nil, which never starts burst mode.
	ShortWindow []Sample
}

// Reason says why a Decision came out as it did. The values are
// CamelCase, as Kubernetes Event reasons are.
type Reason string

// Reasons a Decision can carry.
const (
	// ReasonScaleUp means the metrics asked for more replicas and got them.
	ReasonScaleUp Reason = "ScaleUp"
	// ReasonScaleDown means the metrics asked for fewer replicas and got
	// them.
	ReasonScaleDown Reason = "ScaleDown"
	// ReasonWithinTolerance means the metric with the largest proposal is
	// within the tolerance band of its target (so no metric asks for more
	// replicas), and the count stays.
	ReasonWithinTolerance Reason = "WithinTolerance"
	// ReasonSteady means the computed count equals the current one although
	// the ratio is outside the tolerance band: the ceiling lands on the
	// current count, or counting replicas that are unready or report no
	// metric would reverse the direction of the change.
	ReasonSteady Reason = "Steady"
	// ReasonScaleUpStabilized means a lower recommendation within the
	// scale-up stabilization window held a scale-up back.
	ReasonScaleUpStabilized Reason = "ScaleUpStabilized"
	// ReasonScaleDownStabilized means a higher recommendation within the
	// scale-down stabilization window held a scale-down back.
	ReasonScaleDownStabilized Reason = "ScaleDownStabilized"
	// ReasonScaleUpLimited means a scale-up rate limit (behavior.scaleUp
	// policies, or without behavior the default max(2×current, 4)) cut the
	// scale-up short.
	ReasonScaleUpLimited Reason = "ScaleUpLimited"
	// ReasonScaleDownLimited means a behavior.scaleDown policy cut the
	// scale-down short.
	ReasonScaleDownLimited Reason = "ScaleDownLimited"
	// ReasonScalingDisabled means selectPolicy Disabled forbids scaling in
	// the direction the metrics asked for.
	ReasonScalingDisabled Reason = "ScalingDisabled"
	// ReasonAtMax means the metrics asked for more than maxReplicas.
	ReasonAtMax Reason = "AtMax"
	// ReasonAtMin means the metrics asked for fewer than minReplicas.
	ReasonAtMin Reason = "AtMin"
	// ReasonAboveMax means the current count exceeded maxReplicas and is
	// brought down to it, before any metric is read.
	ReasonAboveMax Reason = "AboveMax"
	// ReasonBelowMin means the current count was below minReplicas and is
	// brought up to it, before any metric is read.
	ReasonBelowMin Reason = "BelowMin"
	// ReasonBurstScaleUp means burst mode scaled up straight to the
	// short-window recommendation, bypassing scale-up policies.
	ReasonBurstScaleUp Reason = "BurstScaleUp"
	// ReasonBurstHold means burst mode is on and holds the count: no
	// scale-down happens until the burst ends.
	ReasonBurstHold Reason = "BurstHold"
	// ReasonNoMetrics means no metric target could be evaluated (no ready
	// replica reported any of them), so the count stays.
	ReasonNoMetrics Reason = "NoMetrics"
	// ReasonPartialMetrics means some metrics could not be evaluated and
	// the others asked for a scale-down, which Kubernetes does not do on
	// partial information; the count stays.
	ReasonPartialMetrics Reason = "PartialMetrics"
	// ReasonNoTargets means the spec sets no metric target, so the count
	// steers to minReplicas and stays there.
	ReasonNoTargets Reason = "NoTargets"
)

// Decision is the outcome of one Decide call.
type Decision struct {
	// DesiredReplicas is the replica count to run now.
	DesiredReplicas int32
	// Reason is why, as a typed CamelCase word.
	Reason Reason
	// Message says the same for people, naming the metric that drove the
	// decision and its numbers, e.g. "cpu 180% of target 60% on 2 ready
	// replicas -> 6".
	Message string
	// Metric is the metric that drove the decision (one of the Metric…
	// constants), or empty when none did.
	Metric string
	// Burst is whether burst mode is on after this decision.
	Burst bool
	// Metrics reports each metric with a target in the spec, over the
	// normal window, in a fixed order: cpu, memory, requestsPerSecond,
	// queueLength, p95Latency. Empty when the decision was made before
	// reading metrics (AboveMax, BelowMin).
	Metrics []MetricStatus
}

// MetricStatus is what one metric said in a decision, for status fields
// and gauges.
type MetricStatus struct {
	// Name is one of the Metric… constants.
	Name string
	// Valid is false when the metric could not be evaluated; Message says
	// why.
	Valid bool
	// Current is the average over ready replicas that reported the metric,
	// in the metric's unit: percent of request for cpu and memory,
	// requests per second, queued requests, seconds for p95Latency.
	Current float64
	// Target is the spec's target in the same unit.
	Target float64
	// DesiredReplicas is the count this metric alone proposes.
	DesiredReplicas int32
	// Message explains the proposal, e.g. "cpu 180% of target 60% on 2
	// ready replicas -> 6".
	Message string
}

// Autoscaler decides replica counts for one ModelDeployment. It remembers
// recent recommendations (for stabilization windows), recent scale events
// (for rate policies) and the burst state, all in memory, as the
// Kubernetes HPA controller does; a new Autoscaler, e.g. after a restart,
// starts by recording the current count as a recommendation, so it does not
// scale down within the first stabilization window. The zero value is not
// ready for use; call New. Decide is safe for concurrent use.
type Autoscaler struct {
	mu sync.Mutex
	// seeded is whether the initial recommendation has been recorded.
	seeded          bool
	recommendations []timestampedRecommendation
	scaleUpEvents   []scaleEvent
	scaleDownEvents []scaleEvent
	burst           burstState
}

// New returns an Autoscaler with no history.
func New() *Autoscaler {
	return &Autoscaler{}
}

// Decide computes the replica count for in and records what later decisions
// need. It assumes the agent applies every decision it returns: a change of
// count is recorded as a scale event, as the HPA controller records one
// after it updates the scale subresource.
func (a *Autoscaler) Decide(in Input) Decision {
	a.mu.Lock()
	defer a.mu.Unlock()

	cfg := resolveConfig(in.Spec)
	now := in.Now
	current := max(in.CurrentReplicas, 0)

	// Kubernetes records the current count as the first recommendation of a
	// new HPA (recordInitialRecommendation), so a fresh controller does not
	// scale down within its first stabilization window.
	if !a.seeded {
		a.recommendations = append(a.recommendations, timestampedRecommendation{replicas: current, at: now})
		a.seeded = true
	}

	// Bounds first, before any metric, as reconcileAutoscaler does. One
	// deliberate difference: Kubernetes treats a target scaled to 0 with
	// minReplicas > 0 as "scaling disabled" (a person paused it); here the
	// agent owns the count, so 0 below minReplicas means "not started yet"
	// and is raised to minReplicas like any other count below it.
	if current > cfg.maxReplicas {
		d := Decision{
			DesiredReplicas: cfg.maxReplicas,
			Reason:          ReasonAboveMax,
			Message:         fmt.Sprintf("current replicas %d above maxReplicas %d -> %d", current, cfg.maxReplicas, cfg.maxReplicas),
		}
		a.finish(cfg, now, current, &d)
		return d
	}
	if current < cfg.minReplicas {
		d := Decision{
			DesiredReplicas: cfg.minReplicas,
			Reason:          ReasonBelowMin,
			Message:         fmt.Sprintf("current replicas %d below minReplicas %d -> %d", current, cfg.minReplicas, cfg.minReplicas),
		}
		a.finish(cfg, now, current, &d)
		return d
	}

	// The normal (stable-window) proposal.
	normal := proposeForMetrics(cfg, current, in.Samples)

	// Burst mode is evaluated on the short window, independently of the
	// normal proposal; its state decides how the two combine.
	var short proposal
	if cfg.burst != nil {
		short = proposeForMetrics(cfg, current, in.ShortWindow)
		a.burst.update(cfg.burst, now, current, short)
	}
	inBurst := cfg.burst != nil && a.burst.active
	if cfg.burst == nil {
		a.burst = burstState{}
	}

	var d Decision
	switch {
	case normal.hold:
		// No (or only partial, scale-down) metrics: Kubernetes keeps the
		// current count and records no recommendation.
		d = Decision{DesiredReplicas: current, Reason: normal.reason, Message: normal.message, Metric: normal.metric}
	default:
		desired := normal.replicas
		if inBurst && short.valid && short.replicas > desired {
			// While bursting, the burst recommendation is what gets
			// recorded, so the scale-down window after the burst holds
			// the replicas it added.
			desired = short.replicas
		}
		stabilized, stabReason, stabNote := a.stabilize(cfg, now, current, desired)
		limited, limitReason, limitNote := a.limit(cfg, now, current, stabilized)
		d = Decision{DesiredReplicas: limited, Metric: normal.metric}
		switch {
		case limited != stabilized:
			d.Reason, d.Message = limitReason, normal.message+"; "+limitNote
		case stabilized != desired:
			d.Reason, d.Message = stabReason, normal.message+"; "+stabNote
		case limited > current:
			d.Reason, d.Message = ReasonScaleUp, normal.message
		case limited < current:
			d.Reason, d.Message = ReasonScaleDown, normal.message
		default:
			d.Reason, d.Message = normal.reason, normal.message
		}
	}
	d.Metrics = normal.statuses

	if inBurst {
		normalWanted := current
		if !normal.hold {
			normalWanted = normal.replicas
		}
		a.applyBurst(cfg, current, normalWanted, short, &d)
	}
	d.Burst = inBurst
	a.finish(cfg, now, current, &d)
	return d
}

// applyBurst combines a normal decision with burst mode, as Knative's KPA
// does in panic mode: take the larger of the normal and the burst
// recommendation, go there at once (only maxReplicas caps it), and never
// go below the current count. normalWanted is what the normal window alone
// proposed, before stabilization and limits.
func (a *Autoscaler) applyBurst(cfg config, current, normalWanted int32, short proposal, d *Decision) {
	burstTarget := int32(0)
	if short.valid {
		burstTarget = short.replicas
	}
	capped := min(burstTarget, cfg.maxReplicas)
	final := max(current, d.DesiredReplicas, capped)
	window := fmt.Sprintf("threshold %s, window %s", formatFloat(cfg.burst.threshold), cfg.burst.window)
	burstMessage := "burst: " + short.message
	if current > 0 && short.valid {
		burstMessage += fmt.Sprintf(", %s× the current %d (%s)",
			formatFloat(float64(burstTarget)/float64(current)), current, window)
	}
	switch {
	case final > current && final == d.DesiredReplicas && normalWanted >= final:
		// The normal window alone asks for at least as much: keep its
		// reason and message.
	case final > current:
		d.DesiredReplicas = final
		d.Reason = ReasonBurstScaleUp
		d.Metric = short.metric
		d.Message = burstMessage
		if burstTarget > cfg.maxReplicas {
			d.Message += fmt.Sprintf("; capped at maxReplicas %d", cfg.maxReplicas)
		}
	case burstTarget > current:
		// Already at maxReplicas.
		d.DesiredReplicas = final
		d.Reason = ReasonAtMax
		d.Metric = short.metric
		d.Message = burstMessage + fmt.Sprintf("; capped at maxReplicas %d", cfg.maxReplicas)
	default:
		held := normalWanted < current
		d.DesiredReplicas = final
		d.Reason = ReasonBurstHold
		note := fmt.Sprintf("burst: holding %d replicas until short-window demand stays below the threshold for %s", final, cfg.burst.window)
		if held {
			note = fmt.Sprintf("burst: not scaling down; holding %d replicas until short-window demand stays below the threshold for %s", final, cfg.burst.window)
		}
		d.Message = note + "; " + d.Message
	}
}

// finish records a scale event when the decision changes the count.
func (a *Autoscaler) finish(cfg config, now time.Time, current int32, d *Decision) {
	if d.DesiredReplicas != current {
		a.storeScaleEvent(cfg, now, current, d.DesiredReplicas)
	}
}

// proposal is the combined outcome of every metric over one window.
type proposal struct {
	// valid is whether at least one metric could be evaluated.
	valid bool
	// hold is true when no count may be computed (no metrics, or partial
	// metrics and a scale-down); reason and message say why.
	hold bool
	// replicas is the largest proposal of the valid metrics, or
	// minReplicas without targets.
	replicas int32
	// reason is the reason to report when nothing later changes replicas
	// and it equals the current count (or the hold reason).
	reason   Reason
	message  string
	metric   string
	statuses []MetricStatus
}

// proposeForMetrics evaluates every metric with a target over samples and
// picks the largest proposal, as computeReplicasForMetrics does: invalid
// metrics are skipped, unless all are invalid, or some are and the others
// would scale down.
func proposeForMetrics(cfg config, current int32, samples []Sample) proposal {
	if len(cfg.metrics) == 0 {
		p := proposal{valid: true, replicas: cfg.minReplicas, reason: ReasonNoTargets}
		p.message = fmt.Sprintf("no metric targets are set -> minReplicas %d", cfg.minReplicas)
		return p
	}
	var (
		p        proposal
		best     metricResult
		invalid  []string
		statuses = make([]MetricStatus, 0, len(cfg.metrics))
	)
	found := false
	for _, m := range cfg.metrics {
		r := m.replicasFor(current, samples, cfg.tolerance)
		statuses = append(statuses, r.status())
		if !r.valid {
			invalid = append(invalid, r.message())
			continue
		}
		if !found || r.replicas > best.replicas {
			best, found = r, true
		}
	}
	p.statuses = statuses
	switch {
	case !found:
		p.hold = true
		p.reason = ReasonNoMetrics
		p.message = fmt.Sprintf("no usable metrics (%s); keeping %d replicas", strings.Join(invalid, "; "), current)
		return p
	case len(invalid) > 0 && best.replicas < current:
		p.valid = true
		p.hold = true
		p.reason = ReasonPartialMetrics
		p.metric = best.metric.name
		p.message = fmt.Sprintf("%s, but not scaling down while other metrics are unavailable (%s); keeping %d replicas",
			best.message(), strings.Join(invalid, "; "), current)
		return p
	}
	p.valid = true
	p.replicas = best.replicas
	p.metric = best.metric.name
	p.message = best.message()
	switch {
	case best.replicas != current:
		// ScaleUp or ScaleDown, decided by the caller.
	case best.hold == holdTolerance:
		p.reason = ReasonWithinTolerance
	default:
		p.reason = ReasonSteady
	}
	return p
}
