// Package fleetpage serves the hub's live fleet page: a world map of the
// regions (each one's health, replicas per model, load and share of the
// users), the model rollouts in progress with their waves, steps and
// verdicts, and the drills' timelines. Everything the page needs (HTML,
// script, style, the map) is built into the binary; the page polls
// /api/fleet and redraws in place, without reloading.
//
// What the page shows comes from a Source. HubSource is the hub's: the
// Cluster and InferenceModel objects of the hub cluster, the rollouts of a
// RolloutSource (ModelRollouts by default) and the drill reports of a
// directory. The page is read-only, and shows nothing secret: no
// endpoints, kubeconfig Secrets or labels, only names, health and numbers.
package fleetpage

import (
	"context"
	"time"
)

// Fleet is one snapshot of everything the page shows.
type Fleet struct {
	// Time is when the snapshot was taken.
	Time time.Time `json:"time"`
	// Regions are the member regions, by name.
	Regions []Region `json:"regions"`
	// Models are the InferenceModels, by namespace and name.
	Models []Model `json:"models"`
	// Rollouts are the model rollouts, in progress first.
	Rollouts []Rollout `json:"rollouts"`
	// Drills are the drill reports found, newest first.
	Drills []Drill `json:"drills"`
	// Problems are parts of the snapshot that could not be read (the
	// rollouts, a drill report); the rest is shown.
	Problems []string `json:"problems,omitempty"`
}

// Health of a region or cluster, as crds/v1alpha1 ClusterHealth.
const (
	HealthReady       = "Ready"
	HealthDegraded    = "Degraded"
	HealthUnreachable = "Unreachable"
	HealthUnknown     = "Unknown"
)

// Region is one member region: its clusters taken together.
type Region struct {
	Name string `json:"name"`
	// Location is where the region is drawn, the mean of its clusters'
	// spec.location; nil when none has one.
	Location *Location `json:"location,omitempty"`
	// Health is the region's: Ready when every cluster is, Unreachable
	// when every cluster is, Unknown when none reported, else Degraded.
	Health   string    `json:"health"`
	Clusters []Cluster `json:"clusters"`
	// Models are the replicas of each model placed here.
	Models []RegionModel `json:"models,omitempty"`
	// RequestsPerSecond is the load the region's replicas report.
	RequestsPerSecond float64 `json:"requestsPerSecond"`
	// UserShare is the share (0..1) of all models' users nearest this
	// region, from the InferenceModels' status.demand (the global
	// balancers' DemandReports, else the specs' demand).
	UserShare float64 `json:"userShare"`
}

// Location is a point on the map, in degrees.
type Location struct {
	Latitude  float64 `json:"lat"`
	Longitude float64 `json:"lon"`
}

// Cluster is one member cluster of a region.
type Cluster struct {
	Name   string `json:"name"`
	Health string `json:"health"`
	// Reason says why it is not Ready (its Ready condition's message).
	Reason string `json:"reason,omitempty"`
	// LastHeartbeat is the agent's last report, when known.
	LastHeartbeat *time.Time `json:"lastHeartbeat,omitempty"`
}

// RegionModel is a model's replicas in one region.
type RegionModel struct {
	Model             string  `json:"model"`
	ReadyReplicas     int32   `json:"readyReplicas"`
	DesiredReplicas   int32   `json:"desiredReplicas"`
	RequestsPerSecond float64 `json:"requestsPerSecond"`
}

// Model is one InferenceModel.
type Model struct {
	Namespace     string `json:"namespace"`
	Name          string `json:"name"`
	ReadyReplicas int32  `json:"readyReplicas"`
	// Demand is where its users are, by region, with each region's share.
	Demand []RegionDemand `json:"demand,omitempty"`
	// DemandSource is Reported (the balancers measured it) or Spec.
	DemandSource string `json:"demandSource,omitempty"`
}

// RegionDemand is a model's users nearest one region.
type RegionDemand struct {
	Region            string  `json:"region"`
	RequestsPerSecond float64 `json:"requestsPerSecond"`
	Share             float64 `json:"share"`
}

// Rollout is one model rollout: a new version moved into the regions
// wave by wave, each wave through weighted steps, each step judged.
type Rollout struct {
	Namespace string `json:"namespace"`
	Name      string `json:"name"`
	Model     string `json:"model"`
	Version   int64  `json:"version"`
	// StableVersion is the version being replaced.
	StableVersion int64  `json:"stableVersion,omitempty"`
	Strategy      string `json:"strategy,omitempty"`
	// Phase: Progressing, Paused, Succeeded, RollingBack, RolledBack.
	Phase string `json:"phase"`
	// Waves are the regions of each wave; Wave and Step the current ones
	// (0-based).
	Waves []Wave `json:"waves"`
	Steps []Step `json:"steps"`
	Wave  int32  `json:"wave"`
	Step  int32  `json:"step"`
	// Verdicts are the judgements of the steps so far, oldest first.
	Verdicts []Verdict `json:"verdicts,omitempty"`
	Message  string    `json:"message,omitempty"`
}

// Wave is the regions one wave of a rollout moves together.
type Wave struct {
	Regions []string `json:"regions"`
}

// Step is one traffic step of a wave: the new version's weight, held for
// Bake before it is judged.
type Step struct {
	Weight int32         `json:"weight"`
	Bake   time.Duration `json:"bake,omitempty"`
}

// Verdict judges one step of one wave.
type Verdict struct {
	Wave    int32     `json:"wave"`
	Step    int32     `json:"step"`
	Result  string    `json:"result"`
	Message string    `json:"message,omitempty"`
	Time    time.Time `json:"time"`
}

// Source gives the page its snapshots. HubSource is the hub's; tests
// give their own.
type Source interface {
	Snapshot(ctx context.Context) (Fleet, error)
}

// SourceFunc is a Source of a function.
type SourceFunc func(ctx context.Context) (Fleet, error)

// Snapshot calls f.
func (f SourceFunc) Snapshot(ctx context.Context) (Fleet, error) { return f(ctx) }

// RolloutSource gives HubSource its rollouts. ModelRollouts reads the
// hub's ModelRollout objects; a nil RolloutSource shows none.
type RolloutSource interface {
	Rollouts(ctx context.Context) ([]Rollout, error)
}

// RolloutFunc is a RolloutSource of a function.
type RolloutFunc func(ctx context.Context) ([]Rollout, error)

// Rollouts calls f.
func (f RolloutFunc) Rollouts(ctx context.Context) ([]Rollout, error) { return f(ctx) }
