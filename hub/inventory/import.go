package inventory

import (
	"context"
	"fmt"
	"maps"
	"strings"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/util/validation"
	cpv1 "sigs.k8s.io/cluster-inventory-api/apis/v1alpha1"
	"sigs.k8s.io/controller-runtime/pkg/builder"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/event"
	"sigs.k8s.io/controller-runtime/pkg/handler"
	"sigs.k8s.io/controller-runtime/pkg/log"
	"sigs.k8s.io/controller-runtime/pkg/manager"
	"sigs.k8s.io/controller-runtime/pkg/predicate"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"
	"sigs.k8s.io/controller-runtime/pkg/source"

	v1 "meridian.dev/meridian/crds/v1alpha1"
)

// Reasons of the Ready condition of an imported Cluster, taken from its
// profile's ControlPlaneHealthy condition.
const (
	ReasonControlPlaneHealthy       v1.ConditionReason = "ControlPlaneHealthy"
	ReasonControlPlaneUnhealthy     v1.ConditionReason = "ControlPlaneUnhealthy"
	ReasonControlPlaneHealthUnknown v1.ConditionReason = "ControlPlaneHealthUnknown"
)

// Reasons of the Warning events Meridian puts on ClusterProfiles.
const (
	// EventInvalidProfile: a profile cannot be imported as it is (no
	// region, a malformed property); the note says what to fix.
	EventInvalidProfile = "InvalidClusterProfile"
	// EventNameTaken: a profile and a Cluster of Meridian's share a name
	// that only one of them can have.
	EventNameTaken = "NameTaken"
)

// setupImport adds the importer: one reconcile per ClusterProfile of the
// namespace, and again when a Cluster of its name is deleted or an
// imported one changes (someone edited or deleted it).
func (s *syncer) setupImport(mgr manager.Manager) error {
	imported := func(o client.Object) bool { return o.GetLabels()[ImportedFromLabel] != "" }
	return builder.ControllerManagedBy(mgr).
		Named("clusterprofile-import").
		WithOptions(controllerOptions).
		WatchesRawSource(source.Kind(s.profiles, &cpv1.ClusterProfile{}, &handler.TypedEnqueueRequestForObject[*cpv1.ClusterProfile]{})).
		Watches(&v1.Cluster{},
			handler.EnqueueRequestsFromMapFunc(func(_ context.Context, c client.Object) []reconcile.Request {
				return []reconcile.Request{{NamespacedName: client.ObjectKey{Namespace: s.namespace, Name: c.GetName()}}}
			}),
			builder.WithPredicates(predicate.Funcs{
				CreateFunc:  func(e event.CreateEvent) bool { return imported(e.Object) },
				UpdateFunc:  func(e event.UpdateEvent) bool { return imported(e.ObjectNew) },
				DeleteFunc:  func(event.DeleteEvent) bool { return true },
				GenericFunc: func(event.GenericEvent) bool { return false },
			})).
		Complete(reconcile.Func(s.importProfile))
}

// importProfile makes the Cluster named after profile req match it:
// created, updated, or deleted when the profile is gone or is Meridian's
// own. A profile that cannot be imported changes nothing and is reported
// with a Warning event on it.
func (s *syncer) importProfile(ctx context.Context, req reconcile.Request) (reconcile.Result, error) {
	p := &cpv1.ClusterProfile{}
	perr := s.profiles.Get(ctx, req.NamespacedName, p)
	if client.IgnoreNotFound(perr) != nil {
		return reconcile.Result{}, perr
	}
	c := &v1.Cluster{}
	cerr := s.client.Get(ctx, client.ObjectKey{Name: req.Name}, c)
	if client.IgnoreNotFound(cerr) != nil {
		return reconcile.Result{}, cerr
	}
	ours := cerr == nil && c.Annotations[ImportedProfileAnnotation] == req.String()
	switch {
	case perr != nil || !p.DeletionTimestamp.IsZero() || isMeridians(p):
		if !ours {
			return reconcile.Result{}, nil
		}
		err := s.client.Delete(ctx, c, client.Preconditions{UID: &c.UID})
		if err == nil {
			log.FromContext(ctx).Info("deleted an imported Cluster whose ClusterProfile is gone", "cluster", c.Name, "clusterprofile", req)
		}
		return reconcile.Result{}, client.IgnoreNotFound(err)
	case cerr == nil && !ours:
		s.warn(ctx, p, c, "Import", EventNameTaken, fmt.Sprintf("Meridian already has a Cluster %s that was not imported from this ClusterProfile; it keeps it and imports nothing from here", c.Name))
		return reconcile.Result{}, nil
	}
	want, err := clusterFor(p)
	if err != nil {
		s.warn(ctx, p, nil, "Import", EventInvalidProfile, fmt.Sprintf("Meridian cannot import this ClusterProfile: %v; nothing was imported or changed", err))
		return reconcile.Result{}, nil
	}
	if cerr != nil {
		c = want.DeepCopy()
		if err := s.client.Create(ctx, c); err != nil {
			s.warn(ctx, p, nil, "Import", EventInvalidProfile, fmt.Sprintf("Meridian cannot import this ClusterProfile: creating Cluster %s: %v", c.Name, err))
			return reconcile.Result{}, nil
		}
		log.FromContext(ctx).Info("imported a Cluster from a ClusterProfile", "cluster", c.Name, "clusterprofile", req, "region", c.Spec.Region)
	} else if !equality.Semantic.DeepEqual(c.Labels, want.Labels) || !equality.Semantic.DeepEqual(c.Annotations, want.Annotations) ||
		!equality.Semantic.DeepEqual(c.Spec, want.Spec) {
		c.Labels, c.Annotations, c.Spec = want.Labels, want.Annotations, want.Spec
		if err := s.client.Update(ctx, c); err != nil {
			return reconcile.Result{}, fmt.Errorf("updating imported Cluster %s: %w", c.Name, err)
		}
	}
	return reconcile.Result{}, s.importStatus(ctx, c, want.Status)
}

// importStatus sets an imported Cluster's health and capacity from its
// profile until an agent reports for it: from then on the hub's own
// probe of the member decides them.
func (s *syncer) importStatus(ctx context.Context, c *v1.Cluster, want v1.ClusterStatus) error {
	if c.Status.LastHeartbeat != nil {
		return nil
	}
	base := c.DeepCopy()
	c.Status.Health, c.Status.Capacity = want.Health, want.Capacity
	ready := want.Conditions[0]
	v1.SetCondition(&c.Status.Conditions, v1.ConditionReady, ready.Status == metav1.ConditionTrue,
		v1.ConditionReason(ready.Reason), ready.Message, c.Generation)
	if equality.Semantic.DeepEqual(base.Status, c.Status) {
		return nil
	}
	if err := s.client.Status().Patch(ctx, c, client.MergeFrom(base)); err != nil {
		return fmt.Errorf("updating the status of imported Cluster %s: %w", c.Name, err)
	}
	return nil
}

// warn reports what keeps Meridian from doing action ("Import",
// "Export") with profile p, as a Warning event on it and in the log.
func (s *syncer) warn(ctx context.Context, p *cpv1.ClusterProfile, related runtime.Object, action, reason, note string) {
	s.events.Eventf(p, related, corev1.EventTypeWarning, reason, action, note)
	log.FromContext(ctx).Info(note, "clusterprofile", client.ObjectKeyFromObject(p), "reason", reason)
}

// clusterFor is the Cluster that profile p describes: named after it,
// its labels plus ImportedFromLabel, its identity and capacity from its
// properties (properties.go), and a Ready condition (Conditions[0]) and
// health from its ControlPlaneHealthy condition.
func clusterFor(p *cpv1.ClusterProfile) (*v1.Cluster, error) {
	manager := p.Spec.ClusterManager.Name
	if errs := validation.IsValidLabelValue(manager); manager == "" || len(errs) > 0 {
		return nil, fmt.Errorf("its cluster manager name %q cannot be the value of the label %s: %s", manager, ImportedFromLabel, strings.Join(errs, "; "))
	}
	v := newProfileView(p)
	spec, err := v.spec()
	if err != nil {
		return nil, err
	}
	capacity, err := v.capacity()
	if err != nil {
		return nil, err
	}
	labels := maps.Clone(p.Labels)
	if labels == nil {
		labels = map[string]string{}
	}
	labels[ImportedFromLabel] = manager
	c := &v1.Cluster{
		ObjectMeta: metav1.ObjectMeta{Name: p.Name, Labels: labels,
			Annotations: map[string]string{ImportedProfileAnnotation: p.Namespace + "/" + p.Name}},
		Spec:   spec,
		Status: v1.ClusterStatus{Capacity: capacity},
	}
	health, reason, msg := v1.HealthUnknown, ReasonControlPlaneHealthUnknown, "the profile has no ControlPlaneHealthy condition"
	if cond := meta.FindStatusCondition(p.Status.Conditions, cpv1.ClusterConditionControlPlaneHealthy); cond != nil {
		msg = fmt.Sprintf("ControlPlaneHealthy is %s (%s: %s)", cond.Status, cond.Reason, cond.Message)
		switch cond.Status {
		case metav1.ConditionTrue:
			health, reason = v1.HealthReady, ReasonControlPlaneHealthy
		case metav1.ConditionFalse:
			health, reason = v1.HealthUnreachable, ReasonControlPlaneUnhealthy
		}
	}
	c.Status.Health = health
	v1.SetCondition(&c.Status.Conditions, v1.ConditionReady, health == v1.HealthReady, reason,
		fmt.Sprintf("imported from ClusterProfile %s/%s of %s: %s", p.Namespace, p.Name, manager, msg), 0)
	return c, nil
}
