package agent

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"meridian.dev/meridian/agent/kube"
	v1 "meridian.dev/meridian/crds/v1alpha1"
)

// AdoptionHealthy is the condition, set only with spec.adopt, that says
// whether the adopted objects can work as written.
const conditionAdoptionHealthy = "AdoptionHealthy"

// reconcileKubernetes runs md on the kubernetes runtime: a Deployment,
// Service and HorizontalPodAutoscaler that the cluster's own controllers
// (and Cluster Autoscaler) act on, created by the agent or adopted
// (spec.adopt); the agent reads their state back into the
// ModelDeployment's status.
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
	// adoptionHealth sets AdoptionHealthy and records a Warning Event for
	// each problem when the condition's message changes, so a problem is
	// told once, not every sync.
	adoptionHealth := func(ok bool, reason, msg string, problems []kube.Diagnosis) {
		prev := meta.FindStatusCondition(base.Status.Conditions, conditionAdoptionHealthy)
		cond(conditionAdoptionHealthy, ok, reason, msg)
		if ok || (prev != nil && prev.Message == msg && prev.Status == metav1.ConditionFalse) {
			return
		}
		for _, p := range problems {
			a.events.Eventf(md, nil, corev1.EventTypeWarning, p.Reason, "Adopt", "%s", p.Message)
		}
	}
	if ae, ok := kube.AsAdoptionError(err); ok {
		// The user must change something; look again every sync period
		// rather than backing off for minutes.
		cond("Degraded", true, "AdoptionRefused", ae.Message)
		adoptionHealth(false, ae.Reason, ae.Message, []kube.Diagnosis{{Reason: ae.Reason, Message: ae.Message}})
		if perr := a.client.Status().Patch(ctx, md, client.MergeFrom(base)); perr != nil {
			a.log.Warn("writing ModelDeployment status", "modeldeployment", key, "err", perr)
		}
		return ctrl.Result{RequeueAfter: a.opts.SyncPeriod}, nil
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
	if !slices.Equal(base.Status.Adopted, st.Adopted) && len(st.Adopted) > 0 {
		names := make([]string, len(st.Adopted))
		for i, o := range st.Adopted {
			names[i] = o.Kind + " " + o.Name
		}
		a.events.Eventf(md, nil, corev1.EventTypeNormal, "Adopted", "Adopt", "Adopted %s; they stay yours: no owner references, so deleting this ModelDeployment leaves them", strings.Join(names, ", "))
	}
	md.Status.Adopted = st.Adopted
	if md.Spec.Adopt == nil {
		meta.RemoveStatusCondition(&md.Status.Conditions, conditionAdoptionHealthy)
	} else if len(st.Diagnoses) == 0 {
		adoptionHealth(true, kube.ReasonAdoptionAsExpected, "the adopted objects can work as written", nil)
	} else {
		msgs := make([]string, len(st.Diagnoses))
		for i, d := range st.Diagnoses {
			msgs[i] = d.Message
		}
		adoptionHealth(false, st.Diagnoses[0].Reason, strings.Join(msgs, "; "), st.Diagnoses)
	}
	readyReason := "NoReadyReplica"
	if st.ReadyReplicas > 0 {
		readyReason = "ReplicasReady"
	}
	cond("Ready", st.ReadyReplicas > 0, readyReason, fmt.Sprintf("%d of %d replicas ready", st.ReadyReplicas, st.DesiredReplicas))
	cond("Progressing", st.ReadyReplicas < st.DesiredReplicas, "Scaling",
		fmt.Sprintf("%d replicas, %d ready, %d wanted", st.Replicas, st.ReadyReplicas, st.DesiredReplicas))
	if st.PendingReplicas > 0 {
		cond("Degraded", true, "ReplicasPending", st.PendingMessage)
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
