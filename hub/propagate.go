package hub

import (
	"cmp"
	"context"
	"fmt"
	"maps"
	"slices"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/controller/controllerutil"
	"sigs.k8s.io/multicluster-runtime/pkg/multicluster"
	mcreconcile "sigs.k8s.io/multicluster-runtime/pkg/reconcile"

	v1 "meridian.dev/meridian/crds/v1alpha1"
	"meridian.dev/meridian/hub/placement"
)

type mcreconcileRequest = mcreconcile.Request

// Labels the hub puts on the ModelDeployments it writes into members.
const (
	ManagedByLabel      = "app.kubernetes.io/managed-by"
	ManagedByValue      = "meridian-hub"
	InferenceModelLabel = "meridian.dev/inference-model"
	// InferenceModelNamespaceLabel is the namespace of that
	// InferenceModel: a pull member's ModelDeployments all live in its
	// one namespace on the hub.
	InferenceModelNamespaceLabel = "meridian.dev/inference-model-namespace"
	// finalizer lets the hub remove a deleted InferenceModel's
	// ModelDeployments from every member it can reach.
	finalizer = "meridian.dev/placement"
)

// Reconcile places one InferenceModel: it chooses clusters, writes a
// ModelDeployment into each, removes it from clusters no longer chosen
// once the new ones are ready (make-before-break), and rolls the members'
// state up into the InferenceModel's status.
func (h *Hub) Reconcile(ctx context.Context, req mcreconcileRequest) (ctrl.Result, error) {
	im := &v1.InferenceModel{}
	if err := h.client.Get(ctx, req.NamespacedName, im); err != nil {
		return ctrl.Result{}, client.IgnoreNotFound(err)
	}
	if !im.DeletionTimestamp.IsZero() {
		return ctrl.Result{}, h.unplace(ctx, im)
	}
	if controllerutil.AddFinalizer(im, finalizer) {
		if err := h.client.Update(ctx, im); err != nil {
			return ctrl.Result{}, err
		}
	}
	if err := h.opts.AllowedModelSources.Check(im.Spec.Model.Repository); err != nil {
		return ctrl.Result{}, h.refuseSource(ctx, im, err)
	}
	var clusters v1.ClusterList
	if err := h.client.List(ctx, &clusters); err != nil {
		return ctrl.Result{}, err
	}
	previous, pending := map[string]int32{}, map[string]int32{}
	for _, a := range im.Status.Clusters {
		previous[a.Cluster] = a.DesiredReplicas
		pending[a.Cluster] = a.DesiredReplicas - a.ReadyReplicas
	}
	model := toModel(im)
	var reports v1.DemandReportList
	demand, demandSource := im.Status.Demand, im.Status.DemandSource
	if err := h.client.List(ctx, &reports); err != nil {
		h.log.Warn("listing DemandReports; placing by the demand used last", "err", err)
		if demandSource == "" {
			demand, demandSource = im.Spec.Placement.Demand, DemandSpec
		}
	} else {
		demand, demandSource = demandFor(im, reports.Items, time.Now())
	}
	model.Demand = toDemand(demand)
	candidates := toClusters(clusters.Items)
	// A cluster's free capacity already counts this model's replicas
	// there; give them back so keeping them is always possible.
	for i := range candidates {
		if n := int64(previous[candidates[i].Name]); n > 0 {
			c, r := &candidates[i], model.PerReplica
			c.Free.MilliCPU += n * r.MilliCPU
			c.Free.MemoryBytes += n * r.MemoryBytes
			if r.GPUs > 0 {
				c.Free.GPUs[r.GPUType] += int(gpuRoomForPrevious(&clusters.Items[i], r.GPUType, int32(n), pending[c.Name], int32(r.GPUs)))
			}
		}
	}
	result := placement.Place(model, candidates, previous)
	warmMinimum(result.Assignments, im.Spec.Placement.WarmRegions)
	buffers := warmBuffers(im, result.Assignments, demand)

	base := im.DeepCopy()
	st := &im.Status
	st.ObservedGeneration = im.Generation
	st.Demand, st.DemandSource = demand, demandSource
	st.Excluded = exclusions(result.Excluded)
	health := map[string]v1.ClusterHealth{}
	for _, c := range clusters.Items {
		health[c.Name] = c.Status.Health
	}

	// Make: write every chosen cluster's ModelDeployment and read back how
	// many replicas are ready there.
	traffic := h.rolloutTraffic(ctx, im)
	var assignments []v1.ClusterAssignment
	chosen := map[string]bool{}
	var ready, wanted int32
	allReady, writeFailed := true, false
	for _, a := range result.Assignments {
		chosen[a.Cluster] = true
		n, err := h.propagate(ctx, a.Cluster, im, a.Replicas, buffers[a.Cluster], versionsIn(im, traffic, a.Region))
		if err != nil {
			h.log.Warn("writing ModelDeployment; retrying", "cluster", a.Cluster, "inferencemodel", req.NamespacedName, "err", err, "in", writeRetry)
			allReady, writeFailed = false, true
		}
		if n < a.Replicas {
			allReady = false
		}
		ready += n
		wanted += a.Replicas
		assignments = append(assignments, v1.ClusterAssignment{Cluster: a.Cluster, Region: a.Region, DesiredReplicas: a.Replicas, ReadyReplicas: n, Reason: a.Reason})
	}
	// Break: clusters that held the model and are no longer chosen keep it
	// until the new placement is ready. A member the hub cannot reach is
	// never touched: its replicas may still serve users the balancer sends
	// there, and it is cleaned up when it is back.
	for _, old := range base.Status.Clusters {
		if chosen[old.Cluster] {
			continue
		}
		switch {
		case health[old.Cluster] == v1.HealthUnreachable:
			h.log.Info("keeping the placement on an unreachable cluster until it is back", "cluster", old.Cluster, "inferencemodel", req.NamespacedName)
			old.DesiredReplicas, old.Reason = 0, "unreachable: left in place, replaced elsewhere"
			assignments = append(assignments, old)
		case !allReady:
			old.Reason = "draining: kept until the new placement is ready"
			assignments = append(assignments, old)
		default:
			if err := h.remove(ctx, old.Cluster, im); err != nil {
				h.log.Warn("removing ModelDeployment", "cluster", old.Cluster, "err", err)
				assignments = append(assignments, old)
				continue
			}
			h.log.Info("placement moved off cluster", "cluster", old.Cluster, "inferencemodel", req.NamespacedName)
		}
	}
	slices.SortFunc(assignments, func(a, b v1.ClusterAssignment) int { return compare(a.Cluster, b.Cluster) })
	st.Clusters, st.ReadyReplicas = assignments, ready

	if result.Satisfied {
		v1.SetCondition(&st.Conditions, v1.ConditionPlaced, true, v1.ReasonPlaced,
			fmt.Sprintf("%d replicas on %d clusters", wanted, len(result.Assignments)), im.Generation)
	} else {
		v1.SetCondition(&st.Conditions, v1.ConditionPlaced, false, v1.ReasonUnsatisfiable, result.Problem, im.Generation)
	}
	allReady = allReady && len(result.Assignments) > 0
	readyReason := v1.ReasonWaiting
	if allReady {
		readyReason = v1.ReasonAllReady
	}
	v1.SetCondition(&st.Conditions, v1.ConditionReady, allReady, readyReason, fmt.Sprintf("%d of %d replicas ready", ready, wanted), im.Generation)
	if err := h.client.Status().Patch(ctx, im, client.MergeFrom(base)); err != nil {
		if ctx.Err() != nil {
			return ctrl.Result{}, nil //nolint:nilerr // shutting down: nothing to retry
		}
		return ctrl.Result{}, err
	}
	h.metrics.placed.WithLabelValues(im.Namespace, im.Name).Set(float64(wanted))
	h.metrics.satisfied.WithLabelValues(im.Namespace, im.Name).Set(map[bool]float64{true: 1, false: 0}[result.Satisfied])
	if writeFailed {
		// A member chosen but not yet engaged (a hub just started or
		// just elected) or a write that timed out: try again soon, not
		// at the resync.
		return ctrl.Result{RequeueAfter: min(writeRetry, h.opts.ResyncPeriod)}, nil
	}
	return ctrl.Result{RequeueAfter: h.opts.ResyncPeriod}, nil
}

// maxExcluded is how many excluded clusters status.excluded names one by
// one; the rest are counted by reason in one last entry. A fleet of 1,000
// clusters leaves about 500 out of a typical model: listing them all made
// each status about 50 KiB, written through the API server and etcd on
// every change of every model.
const maxExcluded = 20

// exclusions is status.excluded for placement's exclusions.
func exclusions(ex []placement.Exclusion) []v1.ClusterExclusion {
	out := make([]v1.ClusterExclusion, 0, min(len(ex), maxExcluded+1))
	for _, e := range ex[:min(len(ex), maxExcluded)] {
		out = append(out, v1.ClusterExclusion{Cluster: e.Cluster, Reason: e.Reason})
	}
	if len(ex) <= maxExcluded {
		return out
	}
	count := map[string]int{}
	for _, e := range ex[maxExcluded:] {
		count[e.Reason]++
	}
	reasons := slices.SortedFunc(maps.Keys(count), func(a, b string) int { return cmp.Or(count[b]-count[a], strings.Compare(a, b)) })
	var parts []string
	for i, r := range reasons {
		if i == 3 {
			parts = append(parts, fmt.Sprintf("%d other reasons", len(reasons)-3))
			break
		}
		parts = append(parts, fmt.Sprintf("%d × %s", count[r], r))
	}
	return append(out, v1.ClusterExclusion{Cluster: fmt.Sprintf("(%d more)", len(ex)-maxExcluded), Reason: strings.Join(parts, "; ")})
}

// propagate writes the ModelDeployment for im into one member and returns
// its ready replicas: replicas is its minReplicas there, warmBuffer its
// spec.warmBuffer, versions its spec.versions.
func (h *Hub) propagate(ctx context.Context, cluster string, im *v1.InferenceModel, replicas, warmBuffer int32, versions []v1.VersionWeight) (int32, error) {
	cl, err := h.mgr.GetCluster(ctx, multicluster.ClusterName(cluster))
	if err != nil {
		return 0, fmt.Errorf("cluster %s is not engaged: %w", cluster, err)
	}
	c := cl.GetClient()
	ctx, cancel := context.WithTimeout(ctx, h.writeTimeout())
	defer cancel()
	md := &v1.ModelDeployment{ObjectMeta: metav1.ObjectMeta{Name: im.Name, Namespace: im.Namespace}}
	write := func() error {
		_, err := controllerutil.CreateOrUpdate(ctx, c, md, func() error {
			if md.Labels == nil {
				md.Labels = map[string]string{}
			}
			md.Labels[ManagedByLabel] = ManagedByValue
			md.Labels[InferenceModelLabel] = im.Name
			md.Labels[InferenceModelNamespaceLabel] = im.Namespace
			md.Spec.Model = im.Spec.Model
			md.Spec.Versions = versions
			md.Spec.Traffic = im.Spec.Traffic
			md.Spec.Resources = im.Spec.Resources
			md.Spec.Autoscaling = *im.Spec.Autoscaling.DeepCopy()
			md.Spec.Autoscaling.MinReplicas = ptr.To(replicas)
			md.Spec.Autoscaling.MaxReplicas = max(im.Spec.Autoscaling.MaxReplicas, replicas)
			md.Spec.WarmBuffer = warmBuffer
			return nil
		})
		return err
	}
	err = write()
	if apierrors.IsNotFound(err) {
		// The first model of its namespace there: create the namespace
		// once, rather than on every placement.
		if err := c.Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: im.Namespace}}); err != nil && !apierrors.IsAlreadyExists(err) {
			return 0, fmt.Errorf("creating namespace %s: %w", im.Namespace, err)
		}
		err = write()
	}
	if err != nil {
		return 0, err
	}
	return md.Status.ReadyReplicas, nil
}

// writeRetry is how soon a placement whose write into a member failed is
// tried again.
const writeRetry = 2 * time.Second

// writeTimeout bounds one write into a member: longer than a probe, since
// a write is not retried for another 30s when the model's placement does
// not change, but short enough that a member not yet found Unreachable
// holds a worker briefly.
func (h *Hub) writeTimeout() time.Duration { return max(4*h.opts.ProbeTimeout, 2*time.Second) }

// remove deletes im's ModelDeployment from one member.
func (h *Hub) remove(ctx context.Context, cluster string, im *v1.InferenceModel) error {
	cl, err := h.mgr.GetCluster(ctx, multicluster.ClusterName(cluster))
	if err != nil {
		return nil //nolint:nilerr // not a member any more: nothing to reach
	}
	ctx, cancel := context.WithTimeout(ctx, h.writeTimeout())
	defer cancel()
	md := &v1.ModelDeployment{ObjectMeta: metav1.ObjectMeta{Name: im.Name, Namespace: im.Namespace}}
	return client.IgnoreNotFound(cl.GetClient().Delete(ctx, md))
}

// unplace removes a deleted InferenceModel from every reachable member,
// then lets it go. Unreachable members keep their copy; docs/hub.md says
// how to clean those up.
func (h *Hub) unplace(ctx context.Context, im *v1.InferenceModel) error {
	for _, a := range im.Status.Clusters {
		if err := h.remove(ctx, a.Cluster, im); err != nil {
			h.log.Warn("removing ModelDeployment of a deleted InferenceModel", "cluster", a.Cluster, "err", err)
		}
	}
	h.metrics.forgetModel(im.Namespace, im.Name)
	if controllerutil.RemoveFinalizer(im, finalizer) {
		return h.client.Update(ctx, im)
	}
	return nil
}
