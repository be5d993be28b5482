package hub

import (
	"cmp"
	"context"

	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/util/workqueue"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/cluster"
	"sigs.k8s.io/controller-runtime/pkg/event"
	"sigs.k8s.io/controller-runtime/pkg/handler"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"
	mchandler "sigs.k8s.io/multicluster-runtime/pkg/handler"
	mcmanager "sigs.k8s.io/multicluster-runtime/pkg/manager"
	"sigs.k8s.io/multicluster-runtime/pkg/multicluster"
	mcreconcile "sigs.k8s.io/multicluster-runtime/pkg/reconcile"

	v1 "meridian.dev/meridian/crds/v1alpha1"
)

type queue = workqueue.TypedRateLimitingInterface[mcreconcile.Request]

// onClusterHealth re-places, as soon as a member's health changes, the
// InferenceModels that hold it (it went away: move them) or whose
// placement is not satisfied (it came back: it may be the room they
// lacked). Heartbeat
// and capacity updates, which change nothing about health, wait for the
// resync.
func (h *Hub) onClusterHealth() mchandler.TypedEventHandlerFunc[client.Object, mcreconcile.Request] {
	return func(multicluster.ClusterName, cluster.Cluster) handler.TypedEventHandler[client.Object, mcreconcile.Request] {
		return handler.TypedFuncs[client.Object, mcreconcile.Request]{
			CreateFunc: func(ctx context.Context, e event.TypedCreateEvent[client.Object], q queue) {
				h.enqueueAffected(ctx, q, e.Object.GetName(), true)
			},
			UpdateFunc: func(ctx context.Context, e event.TypedUpdateEvent[client.Object], q queue) {
				old, okOld := e.ObjectOld.(*v1.Cluster)
				cur, okNew := e.ObjectNew.(*v1.Cluster)
				if okOld && okNew && old.Status.Health != cur.Status.Health {
					h.enqueueAffected(ctx, q, cur.Name, cur.Status.Health == v1.HealthReady || cur.Status.Health == v1.HealthDegraded)
				}
			},
			DeleteFunc: func(ctx context.Context, e event.TypedDeleteEvent[client.Object], q queue) {
				h.enqueueAffected(ctx, q, e.Object.GetName(), false)
			},
		}
	}
}

// enqueueAffected adds every InferenceModel placed on cluster, and when
// healthy every one whose Placed condition is not True, to the queue. It reads the
// manager's cache without copying.
func (h *Hub) enqueueAffected(ctx context.Context, q queue, cluster string, healthy bool) {
	var list v1.InferenceModelList
	if err := h.client.List(ctx, &list, client.UnsafeDisableDeepCopy); err != nil {
		h.log.Warn("listing InferenceModels to re-place after a health change; the resync will", "cluster", cluster, "err", err)
		return
	}
	n := 0
	for i := range list.Items {
		im := &list.Items[i]
		if holdsCluster(im, cluster) || healthy && !v1.IsConditionTrue(im.Status.Conditions, v1.ConditionPlaced) {
			q.Add(localRequest(im.Namespace, im.Name))
			n++
		}
	}
	h.log.Info("member health changed: re-placing its models", "cluster", cluster, "inferencemodels", n)
}

func holdsCluster(im *v1.InferenceModel, cluster string) bool {
	for _, a := range im.Status.Clusters {
		if a.Cluster == cluster {
			return true
		}
	}
	return false
}

// localRequest is the request for an InferenceModel, which lives on the
// hub (multicluster-runtime's local cluster).
func localRequest(namespace, name string) mcreconcile.Request {
	return mcreconcile.Request{ClusterName: mcmanager.LocalCluster,
		Request: reconcile.Request{NamespacedName: types.NamespacedName{Namespace: namespace, Name: name}}}
}

// onMemberModelDeployment re-places the InferenceModel a member's
// ModelDeployment belongs to whenever that ModelDeployment changes — its
// replicas became ready, or someone edited or deleted it — so readiness
// rolls up and make-before-break finishes without polling.
func (h *Hub) onMemberModelDeployment() mchandler.TypedEventHandlerFunc[client.Object, mcreconcile.Request] {
	return func(multicluster.ClusterName, cluster.Cluster) handler.TypedEventHandler[client.Object, mcreconcile.Request] {
		return mchandler.TypedEnqueueRequestsFromMapFuncWithClusterPreservation(func(_ context.Context, o client.Object) []mcreconcile.Request {
			l := o.GetLabels()
			if l[ManagedByLabel] != ManagedByValue || l[InferenceModelLabel] == "" {
				return nil
			}
			return []mcreconcile.Request{localRequest(cmp.Or(l[InferenceModelNamespaceLabel], o.GetNamespace()), l[InferenceModelLabel])}
		})
	}
}

// onRollout re-places the InferenceModel a ModelRollout moves whenever
// the rollout's status changes, so its traffic reaches the members at
// once.
func onRollout() mchandler.TypedEventHandlerFunc[client.Object, mcreconcile.Request] {
	return func(multicluster.ClusterName, cluster.Cluster) handler.TypedEventHandler[client.Object, mcreconcile.Request] {
		return mchandler.TypedEnqueueRequestsFromMapFuncWithClusterPreservation(func(_ context.Context, o client.Object) []mcreconcile.Request {
			ro, ok := o.(*v1.ModelRollout)
			if !ok {
				return nil
			}
			return []mcreconcile.Request{localRequest(ro.Namespace, ro.Spec.Model)}
		})
	}
}
