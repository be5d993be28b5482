package fleetpage

import (
	"cmp"
	"context"
	"fmt"
	"maps"
	"slices"
	"strconv"
	"time"

	"k8s.io/apimachinery/pkg/api/meta"
	"sigs.k8s.io/controller-runtime/pkg/client"

	v1 "meridian.dev/meridian/crds/v1alpha1"
)

// HubSource is the hub's Source: the hub cluster's Clusters and
// InferenceModels, Rollouts' rollouts and DrillReports' drill reports.
type HubSource struct {
	// Client reads the hub cluster.
	Client client.Reader
	// Rollouts gives the rollouts; nil: none.
	Rollouts RolloutSource
	// DrillReports is the directory of the drills' JSON reports (meridian
	// drill --out); empty: none.
	DrillReports string
	// Now is the clock; default time.Now.
	Now func() time.Time
}

// Snapshot reads the hub. An unreadable rollout source or drill report is
// a Problem of the snapshot, not its failure.
func (s *HubSource) Snapshot(ctx context.Context) (Fleet, error) {
	now := time.Now
	if s.Now != nil {
		now = s.Now
	}
	var clusters v1.ClusterList
	if err := s.Client.List(ctx, &clusters); err != nil {
		return Fleet{}, fmt.Errorf("listing Clusters: %w", err)
	}
	var models v1.InferenceModelList
	if err := s.Client.List(ctx, &models); err != nil {
		return Fleet{}, fmt.Errorf("listing InferenceModels: %w", err)
	}
	f := Build(clusters.Items, models.Items)
	f.Time = now()
	if s.Rollouts != nil {
		rs, err := s.Rollouts.Rollouts(ctx)
		if err != nil {
			f.Problems = append(f.Problems, "rollouts: "+err.Error())
		}
		f.Rollouts = rs
	}
	if s.DrillReports != "" {
		ds, problems := ReadDrills(s.DrillReports)
		f.Drills = ds
		f.Problems = append(f.Problems, problems...)
	}
	return f, nil
}

// Build makes the regions and models of a snapshot from the hub's
// Clusters and InferenceModels.
func Build(clusters []v1.Cluster, models []v1.InferenceModel) Fleet {
	type acc struct {
		r            Region
		lat, lon     float64
		located      int
		health       map[string]int
		models       map[string]*RegionModel
		demand, load float64
	}
	regions := map[string]*acc{}
	get := func(name string) *acc {
		a := regions[name]
		if a == nil {
			a = &acc{r: Region{Name: name}, health: map[string]int{}, models: map[string]*RegionModel{}}
			regions[name] = a
		}
		return a
	}
	for _, c := range clusters {
		a := get(string(c.Spec.Region))
		if loc := c.Spec.Location; loc != nil {
			lat, err1 := strconv.ParseFloat(loc.Latitude, 64)
			lon, err2 := strconv.ParseFloat(loc.Longitude, 64)
			if err1 == nil && err2 == nil {
				a.lat, a.lon, a.located = a.lat+lat, a.lon+lon, a.located+1
			}
		}
		health := cmp.Or(string(c.Status.Health), HealthUnknown)
		a.health[health]++
		cl := Cluster{Name: c.Name, Health: health}
		if cond := meta.FindStatusCondition(c.Status.Conditions, "Ready"); cond != nil && health != HealthReady {
			cl.Reason = cond.Message
		}
		if hb := c.Status.LastHeartbeat; hb != nil {
			t := hb.Time
			cl.LastHeartbeat = &t
		}
		a.r.Clusters = append(a.r.Clusters, cl)
		for _, m := range c.Status.Models {
			name := m.Name
			if m.Namespace != "" && m.Namespace != "default" {
				name = m.Namespace + "/" + m.Name
			}
			rm := a.models[name]
			if rm == nil {
				rm = &RegionModel{Model: name}
				a.models[name] = rm
			}
			rps := m.RequestsPerSecond.AsApproximateFloat64()
			rm.ReadyReplicas += m.ReadyReplicas
			rm.DesiredReplicas += m.DesiredReplicas
			rm.RequestsPerSecond += rps
			a.load += rps
		}
	}
	var f Fleet
	var totalDemand float64
	for _, im := range models {
		m := Model{Namespace: im.Namespace, Name: im.Name, ReadyReplicas: im.Status.ReadyReplicas, DemandSource: im.Status.DemandSource}
		var sum float64
		for _, d := range im.Status.Demand {
			sum += d.RequestsPerSecond.AsApproximateFloat64()
		}
		for _, d := range im.Status.Demand {
			rps := d.RequestsPerSecond.AsApproximateFloat64()
			rd := RegionDemand{Region: string(d.Region), RequestsPerSecond: rps}
			if sum > 0 {
				rd.Share = rps / sum
			}
			m.Demand = append(m.Demand, rd)
			get(string(d.Region)).demand += rps
			totalDemand += rps
		}
		f.Models = append(f.Models, m)
	}
	slices.SortFunc(f.Models, func(a, b Model) int {
		return cmp.Or(cmp.Compare(a.Namespace, b.Namespace), cmp.Compare(a.Name, b.Name))
	})
	for _, name := range slices.Sorted(maps.Keys(regions)) {
		a := regions[name]
		r := a.r
		if a.located > 0 {
			r.Location = &Location{Latitude: a.lat / float64(a.located), Longitude: a.lon / float64(a.located)}
		}
		n := len(r.Clusters)
		switch {
		case n == 0:
			// Users near a region the fleet has no cluster in.
			r.Health = HealthUnknown
		case a.health[HealthReady] == n:
			r.Health = HealthReady
		case a.health[HealthUnreachable] == n:
			r.Health = HealthUnreachable
		case a.health[HealthUnknown] == n:
			r.Health = HealthUnknown
		default:
			r.Health = HealthDegraded
		}
		slices.SortFunc(r.Clusters, func(a, b Cluster) int { return cmp.Compare(a.Name, b.Name) })
		for _, m := range slices.Sorted(maps.Keys(a.models)) {
			r.Models = append(r.Models, *a.models[m])
		}
		r.RequestsPerSecond = a.load
		if totalDemand > 0 {
			r.UserShare = a.demand / totalDemand
		}
		f.Regions = append(f.Regions, r)
	}
	return f
}

// ModelRollouts is the RolloutSource of the hub's ModelRollout objects
// (crds/v1alpha1). Where the hub cluster has no ModelRollout CRD yet, it
// gives none.
type ModelRollouts struct {
	Client client.Reader
}

// Rollouts lists the ModelRollouts: those in progress first, then by name.
func (m ModelRollouts) Rollouts(ctx context.Context) ([]Rollout, error) {
	var list v1.ModelRolloutList
	if err := m.Client.List(ctx, &list); err != nil {
		if meta.IsNoMatchError(err) {
			return nil, nil
		}
		return nil, fmt.Errorf("listing ModelRollouts: %w", err)
	}
	out := make([]Rollout, 0, len(list.Items))
	for _, mr := range list.Items {
		out = append(out, FromModelRollout(&mr))
	}
	slices.SortStableFunc(out, func(a, b Rollout) int {
		return cmp.Or(cmp.Compare(finished(a.Phase), finished(b.Phase)), cmp.Compare(a.Namespace, b.Namespace), cmp.Compare(a.Name, b.Name))
	})
	return out, nil
}

func finished(phase string) int {
	switch v1.RolloutPhase(phase) {
	case v1.RolloutSucceeded, v1.RolloutRolledBack:
		return 1
	}
	return 0
}

// FromModelRollout is the page's view of a ModelRollout.
func FromModelRollout(mr *v1.ModelRollout) Rollout {
	r := Rollout{
		Namespace: mr.Namespace, Name: mr.Name, Model: mr.Spec.Model, Version: mr.Spec.Version,
		StableVersion: mr.Status.StableVersion, Strategy: string(mr.Spec.Strategy),
		Phase: cmp.Or(string(mr.Status.Phase), "Pending"), Wave: mr.Status.Wave, Step: mr.Status.Step, Message: mr.Status.Message,
		Waves: []Wave{}, Steps: []Step{},
	}
	waves := mr.Status.Waves // the waves resolved by the controller, else the spec's
	if len(waves) == 0 {
		waves = mr.Spec.Waves
	}
	for _, w := range waves {
		regions := make([]string, 0, len(w.Regions))
		for _, reg := range w.Regions {
			regions = append(regions, string(reg))
		}
		r.Waves = append(r.Waves, Wave{Regions: regions})
	}
	for _, s := range mr.Spec.Plan() {
		r.Steps = append(r.Steps, Step{Weight: s.Weight, Bake: s.Bake.Duration})
	}
	for _, v := range mr.Status.Verdicts {
		r.Verdicts = append(r.Verdicts, Verdict{Wave: v.Wave, Step: v.Step, Result: v.Result, Message: v.Message, Time: v.Time.Time})
	}
	return r
}
