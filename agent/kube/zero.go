package kube

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"strconv"
	"sync"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/controller/controllerutil"

	"meridian.dev/meridian/agent/activator"
	"meridian.dev/meridian/crds/v1alpha1"
)

// Scale to zero (spec.autoscaling.minReplicas: 0).
//
// autoscaling/v2 cannot scale to 0 (hpaMinReplicas), so the agent does it
// itself, the way Knative does: when a model has served no request for
// Options.IdleWindow, Zero sets its Deployment's replicas to 0. The HPA,
// if any, keeps minReplicas 1 but stops acting while its target has 0
// replicas (the controller's ScalingActive=False, reason ScalingDisabled:
// k8s.io/kubernetes pkg/controller/podautoscaler, without the alpha
// HPAScaleToZero gate) and resumes once the count is above 0 again.
//
// While the model has no ready endpoint of its own, its Service still
// answers: an extra EndpointSlice (ActivatorSliceName, managed by
// ManagedBy) points it at the agent's activator (agent/activator), which
// holds the requests, asks for one replica at once (Zero's Activate) and
// proxies them to it once it answers. The slice is deleted as soon as the
// Service's own EndpointSlices have a ready endpoint again.

// ManagedBy is the endpointslice.kubernetes.io/managed-by value of the
// EndpointSlices the agent writes (the EndpointSlice controller leaves
// slices managed by others alone).
const ManagedBy = "meridian-agent"

// DefaultIdleWindow is how long a model that may scale to zero serves no
// request before its replicas go (the agent's default for
// Options.IdleWindow).
const DefaultIdleWindow = 5 * time.Minute

// ScalesToZero reports whether md may run with no replica:
// spec.autoscaling.minReplicas is 0, it is not adopted (the agent never
// sets an adopted Deployment's replica count), and opts.IdleWindow is
// positive (without it nothing would wake the model again, so Apply keeps
// its older rule: with no metric target the replica count is pinned to
// minReplicas, 0 included).
func ScalesToZero(md *v1alpha1.ModelDeployment, opts Options) bool {
	return md.Spec.Adopt == nil && minReplicas(md) == 0 && opts.IdleWindow > 0
}

// ActivatorSliceName is the name of the EndpointSlice that points md's
// Service at the activator.
func ActivatorSliceName(md *v1alpha1.ModelDeployment) string {
	return activatorSliceName(md.Name)
}

func activatorSliceName(name string) string { return name + "-meridian-activator" }

// ZeroOptions configure Zero.
type ZeroOptions struct {
	// Client reads (a cache is fine) and writes the cluster.
	Client client.Client
	// Reader reads the Deployment when a request wakes a model, where a
	// stale cache would miss a scale to zero just made; default Client.
	Reader client.Reader
	// Activator holds the requests of models at zero; required.
	Activator *activator.Activator
	// Activity says whether a model's replicas served requests lately:
	// busy when any replica's last measurement shows requests (or a
	// queue), known when at least one replica was measured at all. An
	// unknown model is never idle while it has ready replicas.
	Activity func(namespace, name string) (busy, known bool)
	// Options are the runtime's (IdleWindow, Port).
	Options Options
	// Event, when set, is told of a scale to zero and of a wake-up (for a
	// Kubernetes Event and a reconcile).
	Event func(key types.NamespacedName, reason, message string)
	// Logger; default slog.Default().
	Logger *slog.Logger
}

// Zero scales models idle for the idle window to zero replicas and wakes
// them through the activator.
type Zero struct {
	opts ZeroOptions
	log  *slog.Logger

	mu     sync.Mutex
	models map[types.NamespacedName]*zeroModel
}

type zeroModel struct {
	// mu orders a scale to zero against a wake-up: a request the
	// activator takes after the idle check waits here and then finds 0.
	mu         sync.Mutex
	lastActive time.Time
}

// NewZero returns a Zero.
func NewZero(o ZeroOptions) *Zero {
	if o.Reader == nil {
		o.Reader = o.Client
	}
	log := o.Logger
	if log == nil {
		log = slog.Default()
	}
	return &Zero{opts: o, log: log, models: map[types.NamespacedName]*zeroModel{}}
}

// Tracks reports whether the model namespace/name may scale to zero (Sync
// saw it so): the agent measures only these models' replicas.
func (z *Zero) Tracks(namespace, name string) bool {
	z.mu.Lock()
	defer z.mu.Unlock()
	return z.models[types.NamespacedName{Namespace: namespace, Name: name}] != nil
}

// TracksAny reports whether any model may scale to zero.
func (z *Zero) TracksAny() bool {
	z.mu.Lock()
	defer z.mu.Unlock()
	return len(z.models) > 0
}

// ZeroState is where a model stands with scale to zero.
type ZeroState struct {
	// Enabled: the model may scale to zero (ScalesToZero).
	Enabled bool
	// AtZero: its Deployment asks for no replica.
	AtZero bool
	// ScaledToZero: this Sync set the replicas to 0.
	ScaledToZero bool
	// ActivatorPublished: the Service's activator EndpointSlice exists, so
	// requests reach the activator.
	ActivatorPublished bool
	// Activator is the activator's address for this model.
	Activator netip.AddrPort
	// IdleFor is how long the model has served no request.
	IdleFor time.Duration
}

// Sync applies scale to zero to md (as read from the API server, after
// Apply): it scales an idle model to zero, and publishes the activator's
// EndpointSlice while the Service has no ready endpoint of its own or
// deletes it once it has. For a model that may not scale to zero it
// undoes what an earlier Sync did.
func (z *Zero) Sync(ctx context.Context, md *v1alpha1.ModelDeployment) (ZeroState, error) {
	key := client.ObjectKeyFromObject(md)
	if !ScalesToZero(md, z.opts.Options) {
		return ZeroState{}, z.Forget(ctx, key)
	}
	opts := z.opts.Options.withDefaults()
	z.mu.Lock()
	m := z.models[key]
	if m == nil {
		m = &zeroModel{lastActive: time.Now()}
		z.models[key] = m
	}
	z.mu.Unlock()
	addr, err := z.opts.Activator.Register(key.Namespace, key.Name, activator.Target{
		Activate: func(ctx context.Context) error { return z.activate(ctx, key) },
		Backends: func(ctx context.Context) ([]activator.Backend, error) { return Backends(ctx, z.opts.Client, key, opts) },
	})
	if err != nil {
		return ZeroState{}, err
	}
	st := ZeroState{Enabled: true, Activator: addr}

	m.mu.Lock()
	defer m.mu.Unlock()
	dep := &appsv1.Deployment{}
	if err := z.opts.Client.Get(ctx, key, dep); err != nil {
		return st, client.IgnoreNotFound(err)
	}
	replicas := ptr.Deref(dep.Spec.Replicas, 1)
	now := time.Now()
	if z.opts.Activity != nil {
		busy, known := z.opts.Activity(key.Namespace, key.Name)
		if busy || (!known && dep.Status.ReadyReplicas > 0) {
			m.lastActive = now
		}
	} else if dep.Status.ReadyReplicas > 0 {
		m.lastActive = now // nothing measures it: never idle
	}
	if replicas > 0 && dep.Status.ReadyReplicas == 0 {
		// Starting (woken, or waiting for a node): the idle window counts
		// from the first ready replica, so a request held longer than the
		// window does not send the model back to zero under it.
		m.lastActive = now
	}
	if t := z.opts.Activator.LastRequest(key.Namespace, key.Name); t.After(m.lastActive) {
		m.lastActive = t
	}
	if z.opts.Activator.Held(key.Namespace, key.Name) > 0 {
		m.lastActive = now
	}
	st.IdleFor = now.Sub(m.lastActive)

	if replicas > 0 && st.IdleFor >= opts.IdleWindow {
		// The activator first, so the Service never has no endpoint.
		if err := applyActivatorSlice(ctx, z.opts.Client, md, addr); err != nil {
			return st, err
		}
		st.ActivatorPublished = true
		if err := setReplicas(ctx, z.opts.Client, dep, 0); err != nil {
			return st, fmt.Errorf("scaling Deployment %s to zero: %w", key, err)
		}
		replicas, st.ScaledToZero = 0, true
		msg := fmt.Sprintf("no request for %s (idle window %s): replicas 0; the activator at %s holds the next request and asks for a replica", st.IdleFor.Round(time.Second), opts.IdleWindow, addr)
		z.log.Info("scaled to zero", "modeldeployment", key, "idle", st.IdleFor.Round(time.Second).String())
		if z.opts.Event != nil {
			z.opts.Event(key, "ScaledToZero", msg)
		}
	}
	st.AtZero = replicas == 0
	ready, err := readyServiceEndpoints(ctx, z.opts.Client, md)
	if err != nil {
		return st, err
	}
	if st.AtZero || ready == 0 {
		if err := applyActivatorSlice(ctx, z.opts.Client, md, addr); err != nil {
			return st, err
		}
		st.ActivatorPublished = true
		return st, nil
	}
	return st, deleteActivatorSlice(ctx, z.opts.Client, key.Namespace, ActivatorSliceName(md))
}

// Forget stops serving key through the activator and deletes its
// activator EndpointSlice (the model is gone, or no longer scales to
// zero).
func (z *Zero) Forget(ctx context.Context, key types.NamespacedName) error {
	z.mu.Lock()
	m := z.models[key]
	delete(z.models, key)
	z.mu.Unlock()
	if m == nil {
		return nil
	}
	z.opts.Activator.Unregister(key.Namespace, key.Name)
	return deleteActivatorSlice(ctx, z.opts.Client, key.Namespace, activatorSliceName(key.Name))
}

// activate asks for one replica of key at once, if it has none.
func (z *Zero) activate(ctx context.Context, key types.NamespacedName) error {
	z.mu.Lock()
	m := z.models[key]
	z.mu.Unlock()
	if m == nil {
		return fmt.Errorf("model %s does not scale to zero", key)
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	m.lastActive = time.Now()
	dep := &appsv1.Deployment{}
	if err := z.opts.Reader.Get(ctx, key, dep); err != nil {
		return err
	}
	if ptr.Deref(dep.Spec.Replicas, 1) > 0 {
		return nil
	}
	if err := setReplicas(ctx, z.opts.Client, dep, 1); err != nil {
		return fmt.Errorf("waking Deployment %s: %w", key, err)
	}
	z.log.Info("woken from zero by a request", "modeldeployment", key)
	if z.opts.Event != nil {
		z.opts.Event(key, "ScaledFromZero", "a request reached the activator: replicas 1; it holds the request until the replica answers")
	}
	return nil
}

// setReplicas writes dep's replica count, failing on a conflicting write.
func setReplicas(ctx context.Context, c client.Client, dep *appsv1.Deployment, n int32) error {
	base := dep.DeepCopy()
	dep.Spec.Replicas = ptr.To(n)
	return c.Patch(ctx, dep, client.MergeFromWithOptions(base, client.MergeFromWithOptimisticLock{}))
}

// Backends lists the pods of the model key that have an address: where
// the activator may send its requests, once ready.
func Backends(ctx context.Context, c client.Reader, key types.NamespacedName, opts Options) ([]activator.Backend, error) {
	opts = opts.withDefaults()
	var pods corev1.PodList
	if err := c.List(ctx, &pods, client.InNamespace(key.Namespace),
		client.MatchingLabels{NameLabel: NameValue, InstanceLabel: key.Name}); err != nil {
		return nil, err
	}
	var out []activator.Backend
	for i := range pods.Items {
		p := &pods.Items[i]
		if p.Status.PodIP == "" || p.DeletionTimestamp != nil || p.Status.Phase != corev1.PodRunning {
			continue
		}
		out = append(out, activator.Backend{
			Addr:  net.JoinHostPort(p.Status.PodIP, strconv.Itoa(int(opts.Port))),
			Ready: podReady(p),
		})
	}
	return out, nil
}

func podReady(p *corev1.Pod) bool {
	for _, c := range p.Status.Conditions {
		if c.Type == corev1.PodReady {
			return c.Status == corev1.ConditionTrue
		}
	}
	return false
}

// readyServiceEndpoints counts the ready endpoints of md's Service in the
// slices others manage (the EndpointSlice controller's).
func readyServiceEndpoints(ctx context.Context, c client.Reader, md *v1alpha1.ModelDeployment) (int, error) {
	var list discoveryv1.EndpointSliceList
	if err := c.List(ctx, &list, client.InNamespace(md.Namespace), client.MatchingLabels{discoveryv1.LabelServiceName: md.Name}); err != nil {
		return 0, fmt.Errorf("listing the EndpointSlices of Service %s/%s: %w", md.Namespace, md.Name, err)
	}
	n := 0
	for _, es := range list.Items {
		if es.Labels[discoveryv1.LabelManagedBy] == ManagedBy {
			continue
		}
		for _, ep := range es.Endpoints {
			if ptr.Deref(ep.Conditions.Ready, false) && !ptr.Deref(ep.Conditions.Terminating, false) {
				n++
			}
		}
	}
	return n, nil
}

// applyActivatorSlice makes md's Service send its port to the activator at
// addr, with an EndpointSlice md owns (deleted with it).
func applyActivatorSlice(ctx context.Context, c client.Client, md *v1alpha1.ModelDeployment, addr netip.AddrPort) error {
	es := &discoveryv1.EndpointSlice{ObjectMeta: metav1.ObjectMeta{Name: ActivatorSliceName(md), Namespace: md.Namespace}}
	addrType := discoveryv1.AddressTypeIPv4
	if addr.Addr().Is6() {
		addrType = discoveryv1.AddressTypeIPv6
	}
	_, err := controllerutil.CreateOrUpdate(ctx, c, es, func() error {
		if es.Labels == nil {
			es.Labels = map[string]string{}
		}
		for k, v := range Labels(md) {
			es.Labels[k] = v
		}
		es.Labels[discoveryv1.LabelServiceName] = md.Name
		es.Labels[discoveryv1.LabelManagedBy] = ManagedBy
		if err := controllerutil.SetControllerReference(md, es, c.Scheme()); err != nil {
			return err
		}
		es.AddressType = addrType
		es.Endpoints = []discoveryv1.Endpoint{{
			Addresses:  []string{addr.Addr().String()},
			Conditions: discoveryv1.EndpointConditions{Ready: ptr.To(true), Serving: ptr.To(true), Terminating: ptr.To(false)},
		}}
		es.Ports = []discoveryv1.EndpointPort{{
			Name: ptr.To(PortName), Protocol: ptr.To(corev1.ProtocolTCP), Port: ptr.To(int32(addr.Port())),
		}}
		return nil
	})
	if err != nil {
		return fmt.Errorf("publishing the activator for Service %s/%s: %w", md.Namespace, md.Name, err)
	}
	return nil
}

func deleteActivatorSlice(ctx context.Context, c client.Client, namespace, name string) error {
	es := &discoveryv1.EndpointSlice{ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: namespace}}
	if err := c.Get(ctx, client.ObjectKeyFromObject(es), es); err != nil {
		return client.IgnoreNotFound(err)
	}
	if es.Labels[discoveryv1.LabelManagedBy] != ManagedBy {
		return nil // not ours
	}
	if err := c.Delete(ctx, es, client.Preconditions{UID: &es.UID}); err != nil && !apierrors.IsNotFound(err) {
		return fmt.Errorf("withdrawing the activator from Service %s/%s: %w", namespace, name, err)
	}
	return nil
}
