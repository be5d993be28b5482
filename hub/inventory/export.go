package inventory

import (
	"cmp"
	"context"
	"fmt"
	"maps"

	"k8s.io/apimachinery/pkg/api/equality"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/tools/events"
	cpv1 "sigs.k8s.io/cluster-inventory-api/apis/v1alpha1"
	"sigs.k8s.io/controller-runtime/pkg/builder"
	"sigs.k8s.io/controller-runtime/pkg/cache"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/controller/controllerutil"
	"sigs.k8s.io/controller-runtime/pkg/event"
	"sigs.k8s.io/controller-runtime/pkg/handler"
	"sigs.k8s.io/controller-runtime/pkg/log"
	"sigs.k8s.io/controller-runtime/pkg/manager"
	"sigs.k8s.io/controller-runtime/pkg/predicate"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"
	"sigs.k8s.io/controller-runtime/pkg/source"

	v1 "meridian.dev/meridian/crds/v1alpha1"
)

// ConditionJoined is the ClusterProfile condition Meridian adds beside
// ControlPlaneHealthy: True once the cluster's agent has reported to the
// hub.
const ConditionJoined = "Joined"

// Reasons of the ClusterProfile conditions Meridian writes (besides the
// Cluster's own Ready reasons, which ControlPlaneHealthy repeats).
const (
	ReasonNotProbed     = "NotProbed"
	ReasonAgentReported = "AgentReported"
	ReasonNoReport      = "NoReport"
)

// syncer is what the exporter and the importer share.
type syncer struct {
	client    client.Client // the hub cluster; Clusters come from the manager's cache
	profiles  cache.Cache   // the ClusterProfiles of namespace
	namespace string
	events    events.EventRecorder
}

// setupExport adds the exporter: one reconcile per Cluster name, on a
// change of what its profile publishes or of a profile of that name.
func (s *syncer) setupExport(mgr manager.Manager) error {
	return builder.ControllerManagedBy(mgr).
		Named("clusterprofile-export").
		WithOptions(controllerOptions).
		For(&v1.Cluster{}, builder.WithPredicates(predicate.Funcs{UpdateFunc: func(e event.UpdateEvent) bool {
			return published(e.ObjectOld) != published(e.ObjectNew)
		}})).
		WatchesRawSource(source.Kind(s.profiles, &cpv1.ClusterProfile{},
			handler.TypedEnqueueRequestsFromMapFunc(func(_ context.Context, p *cpv1.ClusterProfile) []reconcile.Request {
				return []reconcile.Request{{NamespacedName: client.ObjectKey{Name: p.Name}}}
			}))).
		Complete(reconcile.Func(s.export))
}

// published is what a Cluster's profile shows of it, to tell a change of
// it from one of the heartbeat or the Ready message alone.
func published(o client.Object) string {
	c, ok := o.(*v1.Cluster)
	if !ok {
		return ""
	}
	var reason string
	if ready := meta.FindStatusCondition(c.Status.Conditions, string(v1.ConditionReady)); ready != nil {
		reason = ready.Reason
	}
	return fmt.Sprint(c.Labels, properties(c), reason, c.Status.LastHeartbeat != nil, c.DeletionTimestamp != nil)
}

// export makes the profile of Cluster req.Name match it: created,
// updated, or deleted when the Cluster is gone or was itself imported.
// A profile of that name that another cluster manager owns is left alone
// and reported.
func (s *syncer) export(ctx context.Context, req reconcile.Request) (reconcile.Result, error) {
	c := &v1.Cluster{}
	err := s.client.Get(ctx, req.NamespacedName, c)
	if client.IgnoreNotFound(err) != nil {
		return reconcile.Result{}, err
	}
	gone := err != nil || !c.DeletionTimestamp.IsZero() || c.Labels[ImportedFromLabel] != ""
	p := &cpv1.ClusterProfile{}
	err = s.profiles.Get(ctx, client.ObjectKey{Namespace: s.namespace, Name: req.Name}, p)
	if client.IgnoreNotFound(err) != nil {
		return reconcile.Result{}, err
	}
	exists := err == nil
	switch {
	case gone:
		if !exists || !isMeridians(p) {
			return reconcile.Result{}, nil
		}
		err := s.client.Delete(ctx, p, client.Preconditions{UID: &p.UID})
		if err == nil {
			log.FromContext(ctx).Info("deleted the ClusterProfile of a Cluster that is gone", "clusterprofile", client.ObjectKeyFromObject(p))
		}
		return reconcile.Result{}, client.IgnoreNotFound(err)
	case exists && !isMeridians(p):
		s.warn(ctx, p, c, "Export", EventNameTaken, fmt.Sprintf("Meridian cannot publish its Cluster %s here: this ClusterProfile of %q has its name", c.Name, p.Spec.ClusterManager.Name))
		return reconcile.Result{}, nil
	case !exists:
		p = &cpv1.ClusterProfile{ObjectMeta: metav1.ObjectMeta{Namespace: s.namespace, Name: c.Name}}
		describe(p, c)
		if err := controllerutil.SetOwnerReference(c, p, s.client.Scheme()); err != nil {
			return reconcile.Result{}, err
		}
		if err := s.client.Create(ctx, p); err != nil {
			return reconcile.Result{}, fmt.Errorf("creating ClusterProfile %s/%s: %w", p.Namespace, p.Name, err)
		}
		log.FromContext(ctx).Info("published a ClusterProfile", "clusterprofile", client.ObjectKeyFromObject(p))
	}
	return reconcile.Result{}, s.update(ctx, p, c)
}

// update patches profile p, ours, to describe c, writing only what changed.
func (s *syncer) update(ctx context.Context, p *cpv1.ClusterProfile, c *v1.Cluster) error {
	base := p.DeepCopy()
	describe(p, c)
	if err := controllerutil.SetOwnerReference(c, p, s.client.Scheme()); err != nil {
		return err
	}
	report(p, c, metav1.Now())
	if !equality.Semantic.DeepEqual(base.ObjectMeta, p.ObjectMeta) || !equality.Semantic.DeepEqual(base.Spec, p.Spec) {
		if err := s.client.Patch(ctx, p.DeepCopy(), client.MergeFrom(base)); err != nil {
			return fmt.Errorf("updating ClusterProfile %s/%s: %w", p.Namespace, p.Name, err)
		}
	}
	if !equality.Semantic.DeepEqual(base.Status, p.Status) {
		if err := s.client.Status().Patch(ctx, p.DeepCopy(), client.MergeFrom(base)); err != nil {
			return fmt.Errorf("updating the status of ClusterProfile %s/%s: %w", p.Namespace, p.Name, err)
		}
	}
	return nil
}

// describe sets the labels and spec of c's profile p: c's labels plus the
// cluster manager label, which says the profile is Meridian's.
func describe(p *cpv1.ClusterProfile, c *v1.Cluster) {
	p.Labels = maps.Clone(c.Labels)
	if p.Labels == nil {
		p.Labels = map[string]string{}
	}
	p.Labels[cpv1.LabelClusterManagerKey] = ManagerName
	p.Spec.ClusterManager.Name = ManagerName
	p.Spec.DisplayName = c.Name
}

// report sets the status of c's profile p; a property that changed is
// observed at now.
func report(p *cpv1.ClusterProfile, c *v1.Cluster, now metav1.Time) {
	healthy, reason, msg := metav1.ConditionUnknown, ReasonNotProbed, "the hub has not probed this cluster yet"
	if ready := meta.FindStatusCondition(c.Status.Conditions, string(v1.ConditionReady)); ready != nil {
		reason, msg = ready.Reason, ready.Message
	}
	switch c.Status.Health {
	case v1.HealthReady, v1.HealthDegraded:
		healthy = metav1.ConditionTrue
	case v1.HealthUnreachable:
		healthy = metav1.ConditionFalse
	}
	msg = fmt.Sprintf("Meridian health %s: %s", cmp.Or(c.Status.Health, v1.HealthUnknown), msg)
	// The message is as of the last change of status or reason: the
	// hub's counts of failed probes would rewrite it on every probe.
	if old := meta.FindStatusCondition(p.Status.Conditions, cpv1.ClusterConditionControlPlaneHealthy); old != nil && old.Status == healthy && old.Reason == reason {
		msg = old.Message
	}
	meta.SetStatusCondition(&p.Status.Conditions, metav1.Condition{Type: cpv1.ClusterConditionControlPlaneHealthy,
		Status: healthy, Reason: reason, Message: msg, ObservedGeneration: p.Generation})
	joined := metav1.Condition{Type: ConditionJoined, Status: metav1.ConditionFalse, Reason: ReasonNoReport,
		Message: "no Meridian agent has reported for this cluster yet", ObservedGeneration: p.Generation}
	if c.Status.LastHeartbeat != nil {
		joined.Status, joined.Reason, joined.Message = metav1.ConditionTrue, ReasonAgentReported, "the cluster's Meridian agent reports to the hub"
	}
	meta.SetStatusCondition(&p.Status.Conditions, joined)
	p.Status.Properties = mergeProperties(p.Status.Properties, properties(c), now)
}
