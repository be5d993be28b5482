package agent

import (
	"context"
	"errors"
	"fmt"

	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"meridian.dev/meridian/agent/kube"
	v1 "meridian.dev/meridian/crds/v1alpha1"
)

// reconcileKubernetes runs md on the kubernetes runtime: a Deployment,
// Service and HorizontalPodAutoscaler that the cluster's own controllers
// (and Cluster Autoscaler) act on; the agent reads their state back into
// the ModelDeployment's status.
func (a *Agent) reconcileKubernetes(ctx context.Context, md *v1.ModelDeployment) (ctrl.Result, error) {
	key := client.ObjectKeyFromObject(md)
	st, err := kube.Apply(ctx, a.client, md, a.opts.Kube)
	base := md.DeepCopy()
	gen := md.Generation
	cond := func(t string, ok bool, reason, msg string) {
		status := metav1.ConditionFalse
		if ok {
			status = metav1.ConditionTrue
		}
		meta.SetStatusCondition(&md.Status.Conditions, metav1.Condition{Type: t, Status: status, Reason: reason, Message: msg, ObservedGeneration: gen})
	}
	if err != nil {
		reason := "ApplyFailed"
		if errors.Is(err, kube.ErrNotControlled) {
			reason = "NameTaken"
		}
		cond("Degraded", true, reason, err.Error())
		if perr := a.client.Status().Patch(ctx, md, client.MergeFrom(base)); perr != nil {
			a.log.Warn("writing ModelDeployment status", "modeldeployment", key, "err", perr)
		}
		return ctrl.Result{}, err
	}
	md.Status.ObservedGeneration = gen
	md.Status.Replicas, md.Status.ReadyReplicas, md.Status.DesiredReplicas = st.Replicas, st.ReadyReplicas, st.DesiredReplicas
	md.Status.Endpoint = st.Endpoint
	readyReason := "NoReadyReplica"
	if st.ReadyReplicas > 0 {
		readyReason = "ReplicasReady"
	}
	cond("Ready", st.ReadyReplicas > 0, readyReason, fmt.Sprintf("%d of %d replicas ready", st.ReadyReplicas, st.DesiredReplicas))
	cond("Progressing", st.ReadyReplicas < st.DesiredReplicas, "Scaling",
		fmt.Sprintf("%d replicas, %d ready, %d wanted", st.Replicas, st.ReadyReplicas, st.DesiredReplicas))
	if st.PendingReplicas > 0 {
		cond("Degraded", true, "ReplicasPending", fmt.Sprintf("%d replicas wait for a node with room (GPUs or CPU); the Cluster Autoscaler may add one", st.PendingReplicas))
	} else {
		cond("Degraded", false, "AsExpected", "every replica is scheduled")
	}
	if err := a.client.Status().Patch(ctx, md, client.MergeFrom(base)); err != nil {
		return ctrl.Result{}, err
	}
	a.mu.Lock()
	a.kubeLoads[key] = v1.ModelLoad{Namespace: key.Namespace, Name: key.Name, Model: md.Spec.Model.Name,
		Endpoint: st.Endpoint, DesiredReplicas: st.DesiredReplicas, ReadyReplicas: st.ReadyReplicas}
	a.mu.Unlock()
	// The Deployment's changes wake us; the requeue catches pods turning
	// unschedulable, which change no owned object.
	return ctrl.Result{RequeueAfter: a.opts.SyncPeriod}, nil
}
