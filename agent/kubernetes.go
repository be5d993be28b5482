package agent

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/manager"

	"meridian.dev/meridian/agent/activator"
	"meridian.dev/meridian/agent/kube"
	"meridian.dev/meridian/agent/metricsapi"
	v1 "meridian.dev/meridian/crds/v1alpha1"
)

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
	cond := func(t v1.ConditionType, ok bool, reason v1.ConditionReason, msg string) {
		v1.SetCondition(&md.Status.Conditions, t, ok, reason, msg, gen)
	}
	// adoptionHealth sets AdoptionHealthy and records a Warning Event for
	// each problem when the condition's message changes, so a problem is
	// told once, not every sync.
	adoptionHealth := func(ok bool, reason, msg string, problems []kube.Diagnosis) {
		prev := meta.FindStatusCondition(base.Status.Conditions, string(v1.ConditionAdoptionHealthy))
		cond(v1.ConditionAdoptionHealthy, ok, v1.ConditionReason(reason), msg)
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
		cond(v1.ConditionDegraded, true, v1.ReasonAdoptionRefused, ae.Message)
		adoptionHealth(false, ae.Reason, ae.Message, []kube.Diagnosis{{Reason: ae.Reason, Message: ae.Message}})
		if perr := a.client.Status().Patch(ctx, md, client.MergeFrom(base)); perr != nil {
			a.log.Warn("writing ModelDeployment status", "modeldeployment", key, "err", perr)
		}
		return ctrl.Result{RequeueAfter: a.opts.SyncPeriod}, nil
	}
	if err != nil {
		reason := v1.ReasonApplyFailed
		if errors.Is(err, kube.ErrNotControlled) {
			reason = v1.ReasonNameTaken
		}
		cond(v1.ConditionDegraded, true, reason, err.Error())
		if perr := a.client.Status().Patch(ctx, md, client.MergeFrom(base)); perr != nil {
			a.log.Warn("writing ModelDeployment status", "modeldeployment", key, "err", perr)
		}
		return ctrl.Result{}, err
	}
	var zs kube.ZeroState
	if a.zero != nil {
		if zs, err = a.zero.Sync(ctx, md); err != nil {
			a.log.Warn("scale to zero", "modeldeployment", key, "err", err)
		}
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
		meta.RemoveStatusCondition(&md.Status.Conditions, string(v1.ConditionAdoptionHealthy))
	} else if len(st.Diagnoses) == 0 {
		adoptionHealth(true, kube.ReasonAdoptionAsExpected, "the adopted objects can work as written", nil)
	} else {
		msgs := make([]string, len(st.Diagnoses))
		for i, d := range st.Diagnoses {
			msgs[i] = d.Message
		}
		adoptionHealth(false, st.Diagnoses[0].Reason, strings.Join(msgs, "; "), st.Diagnoses)
	}
	readyReason := v1.ReasonNoReadyReplica
	if st.ReadyReplicas > 0 {
		readyReason = v1.ReasonReplicasReady
	}
	cond(v1.ConditionReady, st.ReadyReplicas > 0, readyReason, fmt.Sprintf("%d of %d replicas ready", st.ReadyReplicas, st.DesiredReplicas))
	cond(v1.ConditionProgressing, st.ReadyReplicas < st.DesiredReplicas, v1.ReasonScaling,
		fmt.Sprintf("%d replicas, %d ready, %d wanted", st.Replicas, st.ReadyReplicas, st.DesiredReplicas))
	if zs.AtZero {
		msg := fmt.Sprintf("scaled to zero after %s without a request; the activator at %s answers for the model: it holds the next request and asks for a replica", a.opts.Kube.IdleWindow, zs.Activator)
		cond(v1.ConditionReady, false, v1.ReasonScaledToZero, msg)
		cond(v1.ConditionProgressing, st.Replicas > 0, v1.ReasonScaledToZero, msg)
	}
	if st.PendingReplicas > 0 {
		cond(v1.ConditionDegraded, true, v1.ReasonReplicasPending, st.PendingMessage)
	} else {
		cond(v1.ConditionDegraded, false, v1.ReasonAsExpected, "every replica is scheduled")
	}
	if err := a.client.Status().Patch(ctx, md, client.MergeFrom(base)); err != nil {
		return ctrl.Result{}, err
	}
	a.mu.Lock()
	a.kubeLoads[key] = v1.ModelLoad{Namespace: key.Namespace, Name: key.Name, Model: md.Spec.Model.Name,
		Endpoint: st.Endpoint, DesiredReplicas: st.DesiredReplicas, ReadyReplicas: st.ReadyReplicas,
		ScaledToZero: zs.AtZero && st.ReadyReplicas == 0}
	a.mu.Unlock()
	// The Deployment's changes wake us; the requeue catches pods turning
	// unschedulable, which change no owned object.
	return ctrl.Result{RequeueAfter: a.opts.SyncPeriod}, nil
}

// startZero sets up scale to zero for the kubernetes runtime: the
// activator, and a scraper of the replicas of models that may scale to
// zero (agent/metricsapi's, reused) that says when they last served a
// request.
func (a *Agent) startZero(mgr manager.Manager) error {
	ao := a.opts.Activator
	ao.Logger = cmp.Or(ao.Logger, a.log)
	if ao.Registry == nil {
		ao.Registry = a.opts.Registry
	}
	act, err := activator.New(ao)
	if err != nil {
		// Without an address the cluster can reach, nothing could answer
		// for a model at zero: keep every model's replicas.
		a.log.Warn("scale to zero is off", "err", err)
		a.opts.Kube.IdleWindow = -1
		return nil
	}
	var zero *kube.Zero
	scraper := metricsapi.NewScraper(metricsapi.ScraperOptions{
		Pods:   mgr.GetClient(),
		Logger: a.log,
		Address: func(p *corev1.Pod) (string, bool) {
			if !zero.Tracks(p.Namespace, p.Labels[kube.InstanceLabel]) {
				return "", false
			}
			return metricsapi.PodAddress(p)
		},
	})
	zero = kube.NewZero(kube.ZeroOptions{
		Client:    mgr.GetClient(),
		Reader:    mgr.GetAPIReader(),
		Activator: act,
		Options:   a.opts.Kube,
		Logger:    a.log,
		Activity: func(namespace, name string) (busy, known bool) {
			for _, pm := range scraper.PodMetrics(namespace) {
				if pm.Labels[kube.InstanceLabel] != name || pm.Labels[kube.NameLabel] != kube.NameValue {
					continue
				}
				if rps, ok := pm.Values[metricsapi.MetricRequestsPerSecond]; ok {
					known = true
					busy = busy || rps > 0
				}
				busy = busy || pm.Values[metricsapi.MetricQueueLength] > 0
			}
			return busy, known
		},
		Event: func(key types.NamespacedName, reason, msg string) {
			a.event(context.Background(), key, reason, msg)
			a.notify(key)
		},
	})
	a.zero = zero
	return mgr.Add(manager.RunnableFunc(func(ctx context.Context) error {
		defer act.Close()
		t := time.NewTicker(metricsapi.DefaultPeriod)
		defer t.Stop()
		for {
			if zero.TracksAny() { // no pod watch until a model may scale to zero
				scraper.ScrapeOnce(ctx)
			}
			select {
			case <-ctx.Done():
				return nil
			case <-t.C:
			}
		}
	}))
}

// forgetZero withdraws key from scale to zero, if it was in it.
func (a *Agent) forgetZero(ctx context.Context, key types.NamespacedName) {
	if a.zero == nil {
		return
	}
	if err := a.zero.Forget(ctx, key); err != nil {
		a.log.Warn("withdrawing the activator", "modeldeployment", key, "err", err)
	}
}
