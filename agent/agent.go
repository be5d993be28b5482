package agent

import (
	"cmp"
	"context"
	"crypto/tls"
	"fmt"
	"log/slog"
	"os"
	"sync"
	"time"

	"github.com/go-logr/logr"
	"github.com/prometheus/client_golang/prometheus"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/events"
	"k8s.io/utils/ptr"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/controller"
	"sigs.k8s.io/controller-runtime/pkg/event"
	"sigs.k8s.io/controller-runtime/pkg/handler"
	"sigs.k8s.io/controller-runtime/pkg/manager"
	metricsserver "sigs.k8s.io/controller-runtime/pkg/metrics/server"
	"sigs.k8s.io/controller-runtime/pkg/source"

	"meridian.dev/meridian/agent/activator"
	"meridian.dev/meridian/agent/kube"
	"meridian.dev/meridian/agent/metricsapi"
	v1 "meridian.dev/meridian/crds/v1alpha1"
	"meridian.dev/meridian/gossip"
	"meridian.dev/meridian/internal/auth"
	"meridian.dev/meridian/internal/modelsource"
	"meridian.dev/meridian/internal/scheme"
)

// Options configure an Agent. Every duration has a default suited to
// real-time inference; docs/agent.md explains each.
type Options struct {
	// ClusterName names this member cluster in the fleet.
	ClusterName string
	// Identity is the cluster's region, zone, location and public endpoint,
	// written into the ClusterReport.
	Identity v1.ClusterIdentity
	// Runtime is how ModelDeployments run unless they say otherwise.
	// Default process.
	Runtime v1.Runtime
	// Process configures the process runtime.
	Process ProcessOptions
	// Kube configures the kubernetes runtime's Deployments. Its
	// IdleWindow defaults to kube.DefaultIdleWindow (5 minutes); negative
	// turns scale to zero off.
	Kube kube.Options
	// Activator configures the activator that answers for kubernetes
	// runtime models scaled to zero (agent/activator); its Logger and
	// Registry default to the agent's.
	Activator activator.Options
	// Capacity says which Cluster Autoscaler node groups carry which GPUs,
	// for the kubernetes runtime's capacity report.
	Capacity kube.CapacityOptions
	// Gossip, when set, joins this agent to the gossip pool and publishes
	// its models' health and load there; NodeName defaults to ClusterName
	// and Meta is filled from Identity.
	Gossip *gossip.Config
	// GossipCrashOnStop stops gossip without the graceful leave, as a
	// crash would, so peers detect the loss instead of being told: the
	// local fleet sets it so a drill's killed region is a real surprise.
	GossipCrashOnStop bool
	// SyncPeriod is how often each model's replicas are measured, the
	// autoscaler consulted and the status written. Default 2s (the HPA's
	// default is 15s; real-time inference needs to react faster).
	SyncPeriod time.Duration
	// MetricsWindow is the stable window the autoscaler's samples are
	// averaged over (the burst window is one SyncPeriod). Default 10s.
	MetricsWindow time.Duration
	// ReportPeriod is how often the ClusterReport's heartbeat is written.
	// Default 10s.
	ReportPeriod time.Duration
	// Logger; default slog.Default().
	Logger *slog.Logger
	// Registry receives meridian_agent_* metrics; default a new one.
	Registry *prometheus.Registry
	// MetricsAPI, when set, serves custom.metrics.k8s.io and
	// external.metrics.k8s.io from the replicas' own metrics, so the
	// cluster's HPA scales the kubernetes runtime on them
	// (agent/metricsapi). Its Logger and Registry default to the agent's.
	MetricsAPI *metricsapi.Options
}

// ProcessOptions configure the process runtime.
type ProcessOptions struct {
	// Binary is the meridian executable run for replicas; default this one.
	Binary string
	// ModelRepository is the model repository replicas serve from, unless
	// a ModelDeployment names its own.
	ModelRepository string
	// ServeArgs are extra `meridian serve` flags for every replica (e.g.
	// --ort-lib).
	ServeArgs []string
	// FrontHost is the interface the per-model fronts listen on. Default
	// 127.0.0.1.
	FrontHost string
	// GatewayPort, when set, serves every model of this site on one port
	// of FrontHost too (agent/gateway.go): the address clients that
	// follow the global balancer's DNS answers connect to, the same port
	// at every site. 0: off.
	GatewayPort int
	// TLS, when set, serves the per-model fronts (the endpoints the
	// balancer's front and probes reach) over HTTPS, verifying clients as
	// it says (mutual TLS: the balancer's certificate), and the gateway
	// over HTTPS with the same certificate but no client certificate
	// asked (its clients are users); endpoints are then https://.
	TLS *tls.Config
	// Auth is the door on the fronts and the gateway (internal/auth): API
	// keys, JWTs, tenant policies; zero leaves them open. Tenant quotas
	// belong to one layer (the balancer's front, which forwards the
	// credentials): give the sites the keys, not the tenants file.
	Auth auth.Options
	// AllowedModelSources are the directories a ModelDeployment's
	// spec.model.repository may lie under; others are refused. Empty:
	// only ModelRepository (a ModelDeployment naming none).
	AllowedModelSources modelsource.AllowList
	// Capacity is what this site offers (CPU, memory, GPUs by type), as
	// the process runtime cannot discover it from Nodes.
	Capacity v1.Capacity
}

func (o *Options) setDefaults() {
	o.Runtime = cmp.Or(o.Runtime, v1.RuntimeProcess)
	o.SyncPeriod = cmp.Or(o.SyncPeriod, 2*time.Second)
	o.MetricsWindow = cmp.Or(o.MetricsWindow, 10*time.Second)
	o.ReportPeriod = cmp.Or(o.ReportPeriod, 10*time.Second)
	o.Process.FrontHost = cmp.Or(o.Process.FrontHost, "127.0.0.1")
	if o.Kube.IdleWindow == 0 {
		o.Kube.IdleWindow = kube.DefaultIdleWindow
	}
	if o.Process.Binary == "" {
		o.Process.Binary, _ = os.Executable()
	}
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	if o.Registry == nil {
		o.Registry = prometheus.NewRegistry()
	}
}

// Agent reconciles ModelDeployments in its cluster and reports the
// cluster's capacity and load.
type Agent struct {
	opts    Options
	log     *slog.Logger
	client  client.Client
	events  events.EventRecorder
	metrics *metrics
	wake    chan event.GenericEvent
	// zero scales idle kubernetes runtime models with minReplicas 0 to
	// zero; nil when scale to zero is off.
	zero *kube.Zero

	// door checks credentials on the process runtime's fronts and gateway.
	door *auth.Authenticator

	mu        sync.Mutex
	locals    map[types.NamespacedName]*local       // process runtime
	kubeLoads map[types.NamespacedName]v1.ModelLoad // kubernetes runtime
}

// Run connects to the cluster at cfg and runs until ctx ends, then stops
// every replica it started.
func Run(ctx context.Context, cfg *rest.Config, opts Options) error {
	opts.setDefaults()
	if opts.Runtime != v1.RuntimeProcess && opts.Runtime != v1.RuntimeKubernetes {
		return fmt.Errorf("runtime %q: use process or kubernetes", opts.Runtime)
	}
	ctrl.SetLogger(logr.FromSlogHandler(opts.Logger.Handler()))
	mgr, err := ctrl.NewManager(cfg, manager.Options{
		Scheme:                 scheme.Scheme,
		Metrics:                metricsserver.Options{BindAddress: "0"},
		HealthProbeBindAddress: "0",
		Logger:                 logr.FromSlogHandler(opts.Logger.Handler()),
	})
	if err != nil {
		return fmt.Errorf("connecting to the cluster: %w", err)
	}
	m, err := newMetrics(opts.Registry)
	if err != nil {
		return err
	}
	a := &Agent{
		opts:      opts,
		log:       opts.Logger,
		client:    mgr.GetClient(),
		events:    mgr.GetEventRecorder("meridian-agent"),
		metrics:   m,
		wake:      make(chan event.GenericEvent, 64),
		locals:    make(map[types.NamespacedName]*local),
		kubeLoads: make(map[types.NamespacedName]v1.ModelLoad),
	}
	if opts.Runtime == v1.RuntimeProcess {
		ao := opts.Process.Auth
		if ao.ModelOf == nil {
			ao.ModelOf = requestModel
		}
		if a.door, err = auth.New(ao, opts.Registry, opts.Logger); err != nil {
			return err
		}
		defer a.door.Close()
	}
	err = ctrl.NewControllerManagedBy(mgr).
		Named("modeldeployment").
		// Several agents may share a process (tests, benchmarks, a local
		// fleet); the name only labels controller-runtime's own metrics.
		WithOptions(controller.Options{SkipNameValidation: ptr.To(true)}).
		For(&v1.ModelDeployment{}).
		Owns(&appsv1.Deployment{}).
		WatchesRawSource(source.Channel(a.wake, &handler.EnqueueRequestForObject{})).
		Complete(a)
	if err != nil {
		return err
	}
	if err := mgr.Add(manager.RunnableFunc(a.report)); err != nil {
		return err
	}
	if opts.Kube.IdleWindow > 0 {
		if err := a.startZero(mgr); err != nil {
			return err
		}
	}
	if opts.MetricsAPI != nil {
		mo := *opts.MetricsAPI
		mo.Logger = cmp.Or(mo.Logger, opts.Logger)
		if mo.Registry == nil {
			mo.Registry = opts.Registry
		}
		err := mgr.Add(manager.RunnableFunc(func(ctx context.Context) error {
			return metricsapi.Run(ctx, cfg, mgr.GetClient(), mo)
		}))
		if err != nil {
			return err
		}
	}
	if opts.Runtime == v1.RuntimeProcess && opts.Process.GatewayPort > 0 {
		if err := mgr.Add(manager.RunnableFunc(a.serveGateway)); err != nil {
			return err
		}
	}
	if opts.Gossip != nil {
		if err := mgr.Add(manager.RunnableFunc(a.gossipLoop)); err != nil {
			return err
		}
	}
	defer a.stopAll()
	a.log.Info("agent starting", "cluster", opts.ClusterName, "region", opts.Identity.Region, "runtime", opts.Runtime)
	return mgr.Start(ctx)
}

// notify asks for a reconcile of key (e.g. when a replica turned ready).
func (a *Agent) notify(key types.NamespacedName) {
	md := &v1.ModelDeployment{}
	md.Namespace, md.Name = key.Namespace, key.Name
	select {
	case a.wake <- event.GenericEvent{Object: md}:
	default: // a reconcile is already pending
	}
}

// Reconcile makes the process runtime match one ModelDeployment.
func (a *Agent) Reconcile(ctx context.Context, req ctrl.Request) (ctrl.Result, error) {
	md := &v1.ModelDeployment{}
	err := a.client.Get(ctx, req.NamespacedName, md)
	if apierrors.IsNotFound(err) || (err == nil && !md.DeletionTimestamp.IsZero()) {
		a.stop(req.NamespacedName)
		a.forgetZero(ctx, req.NamespacedName)
		a.mu.Lock()
		delete(a.kubeLoads, req.NamespacedName)
		a.mu.Unlock()
		return ctrl.Result{}, nil // owned Kubernetes objects go with it (owner references)
	}
	if err != nil {
		return ctrl.Result{}, err
	}
	if cmp.Or(md.Spec.Runtime, a.opts.Runtime) == v1.RuntimeKubernetes {
		a.stop(req.NamespacedName) // in case it ran as processes before
		return a.reconcileKubernetes(ctx, md)
	}
	a.forgetZero(ctx, req.NamespacedName) // in case it ran on the kubernetes runtime before
	a.mu.Lock()
	l := a.locals[req.NamespacedName]
	a.mu.Unlock()
	switch {
	case l == nil:
	case l.spec.Model != md.Spec.Model:
		a.log.Info("model changed; replacing replicas", "modeldeployment", req.NamespacedName)
		a.stop(req.NamespacedName)
		l = nil
	default:
		l.update(md.Spec)
		return ctrl.Result{}, nil
	}
	if err := a.opts.Process.AllowedModelSources.Check(md.Spec.Model.Repository); err != nil {
		return ctrl.Result{}, a.refuseSource(ctx, md, err)
	}
	l, err = a.startLocal(md)
	if err != nil {
		return ctrl.Result{}, err
	}
	a.mu.Lock()
	a.locals[req.NamespacedName] = l
	a.mu.Unlock()
	a.event(ctx, req.NamespacedName, "Started", fmt.Sprintf("serving %s at %s with %d replicas", md.Spec.Model.Name, l.endpoint(), l.current))
	return ctrl.Result{}, nil
}

// refuseSource runs nothing for md, whose repository lies outside
// --allowed-model-sources, and says so in its conditions (the agent loads
// what it is given: the hub's check is not its only guard).
func (a *Agent) refuseSource(ctx context.Context, md *v1.ModelDeployment, why error) error {
	key := client.ObjectKeyFromObject(md)
	a.log.Warn("refusing a model source", "modeldeployment", key, "err", why)
	a.event(ctx, key, string(v1.ReasonModelSourceNotAllowed), why.Error())
	base := md.DeepCopy()
	v1.SetCondition(&md.Status.Conditions, v1.ConditionReady, false, v1.ReasonModelSourceNotAllowed, why.Error(), md.Generation)
	v1.SetCondition(&md.Status.Conditions, v1.ConditionDegraded, true, v1.ReasonModelSourceNotAllowed, why.Error(), md.Generation)
	return client.IgnoreNotFound(a.client.Status().Patch(ctx, md, client.MergeFrom(base)))
}

func (a *Agent) stop(key types.NamespacedName) {
	a.mu.Lock()
	l := a.locals[key]
	delete(a.locals, key)
	a.mu.Unlock()
	if l != nil {
		l.stop()
		a.metrics.forget(key)
		a.log.Info("model deployment stopped", "modeldeployment", key)
	}
}

func (a *Agent) stopAll() {
	a.mu.Lock()
	keys := make([]types.NamespacedName, 0, len(a.locals))
	for k := range a.locals {
		keys = append(keys, k)
	}
	a.mu.Unlock()
	for _, k := range keys {
		a.stop(k)
	}
}

// event records a Kubernetes Event on the ModelDeployment.
func (a *Agent) event(ctx context.Context, key types.NamespacedName, reason, note string) {
	md := &v1.ModelDeployment{}
	if err := a.client.Get(ctx, key, md); err != nil {
		return
	}
	a.events.Eventf(md, nil, corev1.EventTypeNormal, reason, "Scale", "%s", note)
}
