package hub

import (
	"math"

	v1 "meridian.dev/meridian/crds/v1alpha1"
	"meridian.dev/meridian/hub/placement"
)

// defaultWarmBufferMax is WarmBufferPolicy.MaxReplicas's default.
const defaultWarmBufferMax = 8

// warmMinimum applies spec.placement.warmRegions: in each listed region
// the model runs in, the replicas placed there are raised to the warm
// minimum, the difference going to the region's best-scored cluster. A
// model that may scale to zero (autoscaling.minReplicas 0) thus stays
// warm where its first users must not wait for a cold start. Raised
// assignments say so in their Reason.
func warmMinimum(as []placement.Assignment, warm []v1.WarmRegion) {
	for _, w := range warm {
		want := max(w.Replicas, 1)
		best, have := -1, int32(0)
		for i := range as {
			if as[i].Region != string(w.Region) {
				continue
			}
			have += as[i].Replicas
			if best < 0 || as[i].Score > as[best].Score {
				best = i
			}
		}
		if best >= 0 && have < want {
			as[best].Replicas += want - have
			as[best].Reason += "; kept warm (placement.warmRegions)"
		}
	}
}

// warmBuffers sizes each chosen cluster's warm buffer (ModelDeployment
// spec.warmBuffer) from im's spec.warmBuffer: Percent of the replicas the
// cluster needs for its share of its region's demand (the region's
// requests per second, split evenly between the region's chosen clusters,
// over autoscaling.targets.requestsPerSecond), or of the replicas placed
// there when the model has no such target or its region no demand;
// rounded up, at least 1, at most MaxReplicas. Nil without a policy.
func warmBuffers(im *v1.InferenceModel, as []placement.Assignment, demand []v1.RegionDemand) map[string]int32 {
	p := im.Spec.WarmBuffer
	if p == nil || p.Percent <= 0 {
		return nil
	}
	limit := p.MaxReplicas
	if limit <= 0 {
		limit = defaultWarmBufferMax
	}
	perReplica := 0.0
	if q := im.Spec.Autoscaling.Targets.RequestsPerSecond; q != nil {
		perReplica = q.AsApproximateFloat64()
	}
	regionRate, regionClusters := map[string]float64{}, map[string]int{}
	for _, d := range demand {
		regionRate[string(d.Region)] += d.RequestsPerSecond.AsApproximateFloat64()
	}
	for _, a := range as {
		regionClusters[a.Region]++
	}
	out := make(map[string]int32, len(as))
	for _, a := range as {
		need := float64(a.Replicas)
		if rate := regionRate[a.Region]; perReplica > 0 && rate > 0 {
			need = math.Ceil(rate / float64(regionClusters[a.Region]) / perReplica)
		}
		n := int32(math.Ceil(need * float64(p.Percent) / 100))
		out[a.Cluster] = min(max(n, 1), limit)
	}
	return out
}

// gpuRoomForPrevious is how many GPUs of product the hub gives back to a
// cluster for the replicas it placed there before (see Reconcile): all of
// them, less those of its replicas still pending for which the cluster
// has no node coming and none it can still add. Pending GPU replicas go
// pending → provisioning (a node autoscaler launched a node) → ready; one
// the cluster can neither place nor provision is not room the model has
// there, and counting it would keep the model waiting in a full cluster
// instead of moving it.
func gpuRoomForPrevious(c *v1.Cluster, product string, previous, pendingReplicas, gpusPerReplica int32) int32 {
	back := previous * gpusPerReplica
	var stuck int32
	for _, g := range c.Status.Capacity.GPUs {
		if product == "" || g.Type == product {
			stuck += max(g.Pending-g.Provisioning-g.Addable, 0)
		}
	}
	return back - min(stuck, max(pendingReplicas, 0)*gpusPerReplica)
}
