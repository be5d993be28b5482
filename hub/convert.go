package hub

import (
	"strconv"

	v1 "meridian.dev/meridian/crds/v1alpha1"
	"meridian.dev/meridian/hub/placement"
)

// toModel turns an InferenceModel into placement's input.
func toModel(im *v1.InferenceModel) placement.Model {
	spec := im.Spec
	m := placement.Model{
		Key: im.Namespace + "/" + im.Name,
		PerReplica: placement.Request{
			MilliCPU:    spec.Resources.CPU.MilliValue(),
			MemoryBytes: spec.Resources.Memory.Value(),
		},
		MinPerCluster: 1,
		MaxPerCluster: spec.Autoscaling.MaxReplicas,
		MinRegions:    max(spec.Placement.MinRegions, 1),
		MaxClusters:   spec.Placement.MaxClusters,
	}
	if spec.Autoscaling.MinReplicas != nil {
		m.MinPerCluster = *spec.Autoscaling.MinReplicas
	}
	if spec.MaxReplicas != nil {
		m.MaxTotal = *spec.MaxReplicas
	}
	if g := spec.Resources.GPU; g != nil {
		m.PerReplica.GPUs, m.PerReplica.GPUType = int(g.Count), g.Type
	}
	for _, r := range spec.Placement.AllowedRegions {
		m.AllowedRegions = append(m.AllowedRegions, string(r))
	}
	if sel := spec.Placement.ClusterSelector; sel != nil {
		m.Selector = sel.MatchLabels
	}
	p := spec.Placement.Preferences
	m.Weights = placement.Weights{Proximity: deref(p.Proximity, 50), Cost: deref(p.Cost, 20), Capacity: deref(p.Capacity, 30)}
	m.Demand = toDemand(spec.Placement.Demand)
	return m
}

func deref(p *int32, def int32) int32 {
	if p == nil {
		return def
	}
	return *p
}

// toClusters turns the hub's Cluster objects into placement's input.
// Ready and Degraded clusters are healthy (a saturated one simply has no
// room); Unreachable and Unknown ones are not.
func toClusters(items []v1.Cluster) []placement.Cluster {
	out := make([]placement.Cluster, 0, len(items))
	for _, c := range items {
		pc := placement.Cluster{
			Name:    c.Name,
			Region:  string(c.Spec.Region),
			Labels:  c.Labels,
			Healthy: c.Status.Health == v1.HealthReady || c.Status.Health == v1.HealthDegraded,
			Free: placement.Resources{
				MilliCPU:    c.Status.Capacity.FreeCPU.MilliValue(),
				MemoryBytes: c.Status.Capacity.FreeMemory.Value(),
				GPUs:        map[string]int{},
			},
			Addable: map[string]int{},
		}
		if loc := c.Spec.Location; loc != nil {
			lat, err1 := strconv.ParseFloat(loc.Latitude, 64)
			lon, err2 := strconv.ParseFloat(loc.Longitude, 64)
			pc.Lat, pc.Lon, pc.HasLocation = lat, lon, err1 == nil && err2 == nil
		}
		if c.Spec.CostPerGPUHour != nil {
			pc.CostPerGPUHour = c.Spec.CostPerGPUHour.AsApproximateFloat64()
		}
		for _, g := range c.Status.Capacity.GPUs {
			pc.Free.GPUs[g.Type] += int(g.Free)
			// Pods already pending for a GPU and not yet covered by a
			// node being provisioned will take what is addable first.
			pc.Addable[g.Type] += int(max(g.Addable-max(g.Pending-g.Provisioning, 0), 0))
		}
		out = append(out, pc)
	}
	return out
}
