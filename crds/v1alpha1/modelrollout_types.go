package v1alpha1

import (
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// RolloutStrategy is how a ModelRollout moves traffic in each wave.
// +kubebuilder:validation:Enum=Canary;BlueGreen
type RolloutStrategy string

// The rollout strategies.
const (
	// StrategyCanary moves a share of each wave's requests to the new
	// version step by step (spec.steps), judging every step.
	StrategyCanary RolloutStrategy = "Canary"
	// StrategyBlueGreen starts the new version's replicas beside the old
	// ones with no traffic, then switches each wave's requests at once and
	// keeps the old version warm until the rollout ends, so switching back
	// is instant too.
	StrategyBlueGreen RolloutStrategy = "BlueGreen"
)

// RolloutStep is one canary step: the new version's share of requests in
// the wave's regions, held for the bake time while the analysis runs.
type RolloutStep struct {
	// Weight is the percentage of requests the new version gets, 1 to 100.
	// +kubebuilder:validation:Minimum=1
	// +kubebuilder:validation:Maximum=100
	// +required
	Weight int32 `json:"weight"`
	// Bake is how long the step runs before it can pass; spec.bake when
	// unset.
	// +optional
	Bake *metav1.Duration `json:"bake,omitempty"`
}

// RolloutWave is a set of regions that take the new version together.
type RolloutWave struct {
	// Regions in this wave.
	// +required
	// +listType=set
	// +kubebuilder:validation:MinItems=1
	// +kubebuilder:validation:MaxItems=64
	Regions []RegionName `json:"regions"`
}

// RolloutAnalysis judges each step: the new version against the stable
// version, both measured by the clusters' fronts over the same time in
// the wave's regions.
type RolloutAnalysis struct {
	// MaxErrorRateIncrease is how far the new version's share of failed
	// requests (5xx) may exceed the stable version's, as a fraction (e.g.
	// "0.02": two percentage points). Past it the step fails at once,
	// without waiting for the end of the bake.
	// +kubebuilder:default="0.02"
	// +kubebuilder:validation:Pattern=`^(0(\.[0-9]+)?|1(\.0+)?)$`
	// +optional
	MaxErrorRateIncrease string `json:"maxErrorRateIncrease,omitempty"`
	// MaxLatencyRatio is how many times the stable version's p95 latency
	// the new version's may reach (e.g. "1.5"), when it is also at least
	// LatencyTolerance slower. Judged at the end of the bake.
	// +kubebuilder:default="1.5"
	// +kubebuilder:validation:Pattern=`^[0-9]+(\.[0-9]+)?$`
	// +optional
	MaxLatencyRatio string `json:"maxLatencyRatio,omitempty"`
	// LatencyTolerance is a slowdown always accepted, however large a
	// ratio it is of a fast model's latency.
	// +kubebuilder:default="20ms"
	// +optional
	LatencyTolerance metav1.Duration `json:"latencyTolerance,omitzero"`
	// MaxPredictionShift, when set, is the drift check: how far the share
	// of any predicted label (POST /analyze answers, e.g. POSITIVE) among
	// the new version's answers may move from its share among the stable
	// version's over the same step, as a fraction (e.g. "0.1": ten
	// points). Judged at the end of the bake. Unset: no drift check.
	// +kubebuilder:validation:Pattern=`^(0(\.[0-9]+)?|1(\.0+)?)$`
	// +optional
	MaxPredictionShift string `json:"maxPredictionShift,omitempty"`
	// MinRequests is the fewest requests the new version must answer in a
	// step for a verdict; with fewer, the analysis cannot judge and the
	// rollout pauses rather than promote.
	// +kubebuilder:default=20
	// +kubebuilder:validation:Minimum=1
	// +optional
	MinRequests int32 `json:"minRequests,omitempty"`
}

// ModelRolloutSpec moves an InferenceModel from the version it serves to
// a new one, in waves of regions and steps of traffic.
// +kubebuilder:validation:XValidation:rule="self.strategy != 'BlueGreen' || !has(self.steps) || size(self.steps) == 0",message="BlueGreen switches each wave at once: remove spec.steps (spec.bake is each wave's bake time)"
// +kubebuilder:validation:XValidation:rule="!has(self.steps) || self.steps.map(s, s.weight).isSorted()",message="steps must be in order of rising weight"
type ModelRolloutSpec struct {
	// Model is the InferenceModel (same namespace) rolled out. Its
	// spec.versions must name the version it serves now at weight 100;
	// when the rollout succeeds the hub sets it to the new version.
	// +required
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=253
	// +kubebuilder:validation:XValidation:rule="self == oldSelf",message="a rollout's model cannot change: abort it and create another"
	Model string `json:"model"`
	// Version is the new version, a directory of the model repository.
	// +required
	// +kubebuilder:validation:Minimum=1
	// +kubebuilder:validation:XValidation:rule="self == oldSelf",message="a rollout's version cannot change: abort it and create another"
	Version int64 `json:"version"`
	// Strategy is Canary (default) or BlueGreen.
	// +kubebuilder:default=Canary
	// +kubebuilder:validation:XValidation:rule="self == oldSelf",message="a rollout's strategy cannot change: abort it and create another"
	// +optional
	Strategy RolloutStrategy `json:"strategy,omitempty"`
	// Steps of a canary, in order of rising weight; each wave runs them
	// all and then goes to 100. Default: 10 and 50.
	// +optional
	// +kubebuilder:validation:MaxItems=16
	// +kubebuilder:validation:XValidation:rule="self == oldSelf",message="a rollout's steps cannot change: abort it and create another"
	Steps []RolloutStep `json:"steps,omitempty"`
	// Bake is how long each step (or each blue-green wave after its
	// switch) runs before it can pass. Default 1m.
	// +kubebuilder:default="1m"
	// +optional
	Bake metav1.Duration `json:"bake,omitzero"`
	// Waves of regions, in order: for example one small region first,
	// then the rest. Regions the model is placed in that no wave names
	// form a last wave. Empty: one wave of every region.
	// +optional
	// +kubebuilder:validation:MaxItems=16
	Waves []RolloutWave `json:"waves,omitempty"`
	// Analysis says when a step fails.
	// +optional
	Analysis RolloutAnalysis `json:"analysis,omitempty"`
	// Paused holds the rollout where it is (traffic stays as it is) until
	// set back to false: `kubectl patch modelrollout NAME --type merge -p
	// '{"spec":{"paused":true}}'`.
	// +optional
	Paused bool `json:"paused,omitempty"`
	// Promote skips the remaining steps and waves: every region goes to
	// the new version now, without analysis.
	// +optional
	Promote bool `json:"promote,omitempty"`
	// Abort rolls back now: traffic to the stable version first, then the
	// new version's replicas are removed.
	// +optional
	Abort bool `json:"abort,omitempty"`
}

// RolloutPhase is where a ModelRollout is.
type RolloutPhase string

// The rollout phases.
const (
	// RolloutProgressing: steps are running.
	RolloutProgressing RolloutPhase = "Progressing"
	// RolloutPaused: held by spec.paused, by an analysis that could not
	// judge, or by a region of the current wave that is unreachable.
	RolloutPaused RolloutPhase = "Paused"
	// RolloutSucceeded: every region serves the new version; the
	// InferenceModel's spec.versions says so.
	RolloutSucceeded RolloutPhase = "Succeeded"
	// RolloutRollingBack: traffic is back on the stable version; the new
	// version's replicas are being removed.
	RolloutRollingBack RolloutPhase = "RollingBack"
	// RolloutRolledBack: the stable version serves everything again.
	RolloutRolledBack RolloutPhase = "RolledBack"
)

// RolloutVerdict is the analysis of one step.
type RolloutVerdict struct {
	// Wave and Step judged (from 0).
	Wave int32 `json:"wave"`
	Step int32 `json:"step"`
	// Result is Passed, Failed or Inconclusive.
	Result string `json:"result"`
	// Message gives the figures: requests, error rates, p95 of both
	// versions.
	Message string `json:"message"`
	// Time of the verdict.
	Time metav1.Time `json:"time"`
}

// RegionTraffic is the weights the hub gives a region's clusters.
type RegionTraffic struct {
	// Region name.
	Region RegionName `json:"region"`
	// Versions and their weights there.
	// +listType=map
	// +listMapKey=version
	Versions []VersionWeight `json:"versions"`
}

// ModelRolloutStatus is written by the hub.
type ModelRolloutStatus struct {
	// ObservedGeneration is the spec generation this status describes.
	// +optional
	ObservedGeneration int64 `json:"observedGeneration,omitempty"`
	// Phase: Progressing, Paused, Succeeded, RollingBack or RolledBack.
	// +optional
	Phase RolloutPhase `json:"phase,omitempty"`
	// StableVersion is the version the model served when the rollout
	// started, and goes back to on a rollback.
	// +optional
	StableVersion int64 `json:"stableVersion,omitempty"`
	// Waves are the regions of each wave, as resolved at the start.
	// +optional
	Waves []RolloutWave `json:"waves,omitempty"`
	// Wave and Step now (from 0).
	// +optional
	Wave int32 `json:"wave"`
	// +optional
	Step int32 `json:"step"`
	// StepStarted is when the current step's bake began: when every
	// cluster of the wave had the new version ready at the step's weight.
	// +optional
	StepStarted *metav1.Time `json:"stepStarted,omitempty"`
	// Traffic is the weights each region's clusters get now.
	// +optional
	// +listType=map
	// +listMapKey=region
	Traffic []RegionTraffic `json:"traffic,omitempty"`
	// Verdicts of the steps judged, the latest last (at most 32).
	// +optional
	Verdicts []RolloutVerdict `json:"verdicts,omitempty"`
	// Message says what the rollout is doing or waiting for.
	// +optional
	Message string `json:"message,omitempty"`
	// Conditions: Progressing, Paused (with the reason), Succeeded.
	// +optional
	// +listType=map
	// +listMapKey=type
	Conditions []metav1.Condition `json:"conditions,omitempty"`
}

// ModelRollout moves an InferenceModel to a new version across regions,
// wave by wave and step by step, judging each step by the versions' own
// figures (the clusters' fronts count each version's requests, errors
// and latency) and rolling back by itself when a step fails. The hub runs
// it: see docs/rollouts.md.
// +kubebuilder:object:root=true
// +kubebuilder:subresource:status
// +kubebuilder:resource:shortName=mro,categories=meridian
// +kubebuilder:printcolumn:name="Model",type=string,JSONPath=`.spec.model`
// +kubebuilder:printcolumn:name="Version",type=integer,JSONPath=`.spec.version`
// +kubebuilder:printcolumn:name="Phase",type=string,JSONPath=`.status.phase`
// +kubebuilder:printcolumn:name="Wave",type=integer,JSONPath=`.status.wave`
// +kubebuilder:printcolumn:name="Step",type=integer,JSONPath=`.status.step`
// +kubebuilder:printcolumn:name="Message",type=string,JSONPath=`.status.message`,priority=1
// +kubebuilder:printcolumn:name="Age",type=date,JSONPath=`.metadata.creationTimestamp`
type ModelRollout struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`

	// Spec is the rollout asked for.
	// +required
	Spec ModelRolloutSpec `json:"spec"`
	// Status is where it is.
	// +optional
	Status ModelRolloutStatus `json:"status,omitempty"`
}

// ModelRolloutList is a list of ModelRollouts.
// +kubebuilder:object:root=true
type ModelRolloutList struct {
	metav1.TypeMeta `json:",inline"`
	metav1.ListMeta `json:"metadata,omitempty"`
	Items           []ModelRollout `json:"items"`
}
