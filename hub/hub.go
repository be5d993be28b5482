package hub

import (
	"cmp"
	"context"
	"fmt"
	"log/slog"
	"time"

	"github.com/go-logr/logr"
	"github.com/prometheus/client_golang/prometheus"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/client-go/rest"
	"k8s.io/utils/ptr"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/cache"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/cluster"
	"sigs.k8s.io/controller-runtime/pkg/config"
	"sigs.k8s.io/controller-runtime/pkg/controller"
	"sigs.k8s.io/controller-runtime/pkg/event"
	"sigs.k8s.io/controller-runtime/pkg/manager"
	metricsserver "sigs.k8s.io/controller-runtime/pkg/metrics/server"
	"sigs.k8s.io/controller-runtime/pkg/predicate"
	mcbuilder "sigs.k8s.io/multicluster-runtime/pkg/builder"
	mcmanager "sigs.k8s.io/multicluster-runtime/pkg/manager"
	"sigs.k8s.io/multicluster-runtime/pkg/multicluster"
	"sigs.k8s.io/multicluster-runtime/providers/kubeconfig"

	v1 "meridian.dev/meridian/crds/v1alpha1"
	"meridian.dev/meridian/hub/inventory"
	"meridian.dev/meridian/hub/membership"
	"meridian.dev/meridian/internal/endpoint"
	"meridian.dev/meridian/internal/modelsource"
	"meridian.dev/meridian/internal/scheme"
)

// Options configure a Hub. The timing fields default to the preset Timing
// names (Production when empty); a field set here replaces the preset's.
// docs/hub.md explains how they bound failover time.
type Options struct {
	// Timing names the timing preset: TimingProduction (the default) or
	// TimingWAN. See TimingPresets.
	Timing string
	// HealthPeriod is how often every member's ClusterReport is read.
	HealthPeriod time.Duration
	// ProbeTimeout bounds one read of a member's API server.
	ProbeTimeout time.Duration
	// FailureThreshold is how many probes in a row must fail before a
	// member is Unreachable, so one lost request does not move replicas.
	FailureThreshold int
	// HeartbeatGrace is how old an agent's heartbeat may be before its
	// cluster is Unreachable even though its API server answers.
	HeartbeatGrace time.Duration
	// PullGrace is how long a pull member's report may go unchanged
	// before it is Unreachable (Timing.PullGrace).
	PullGrace time.Duration
	// ResyncPeriod is how often every InferenceModel is placed again when
	// nothing it watches changed.
	ResyncPeriod time.Duration
	// Workers is how many InferenceModels are placed at once. Default 16:
	// each placement mostly waits for the API servers it writes to.
	Workers int
	// MembersNamespace holds the push members' kubeconfig Secrets (the
	// provider's namespace); the hub reads Secrets there only. Default
	// MembersNamespace.
	MembersNamespace string
	// LeaderElection runs the hub as one of several replicas: only the
	// holder of the Lease "meridian-hub" in LeaderElectionNamespace
	// (default MembersNamespace) probes, places and writes.
	LeaderElection          bool
	LeaderElectionNamespace string
	// AllowLocalEndpoints accepts loopback endpoints in members' reports,
	// for a fleet on one machine. Endpoints that are not http or https,
	// or name a link-local, cloud metadata, unspecified or multicast
	// address, are dropped whatever it says (EndpointsAllowed).
	AllowLocalEndpoints bool
	// AllowedModelSources are the directories an InferenceModel's
	// spec.model.repository may lie under (modelsource.AllowList); one
	// elsewhere is not placed (condition Placed False,
	// ModelSourceNotAllowed). Empty allows only the agents' default
	// repository.
	AllowedModelSources modelsource.AllowList
	// Inventory publishes Clusters as ClusterProfiles and imports other
	// cluster managers' (hub/inventory); the zero value does neither.
	Inventory inventory.Options
	// Logger; default slog.Default().
	Logger *slog.Logger
	// Registry receives meridian_hub_* metrics; default a new one.
	Registry *prometheus.Registry
}

// setDefaults fills o from its timing preset and returns the timing.
func (o *Options) setDefaults() (Timing, error) {
	t, err := o.EffectiveTiming()
	if err != nil {
		return Timing{}, err
	}
	o.HealthPeriod, o.ProbeTimeout, o.FailureThreshold = t.HealthPeriod, t.ProbeTimeout, t.FailureThreshold
	o.HeartbeatGrace, o.PullGrace, o.ResyncPeriod = t.HeartbeatGrace, t.PullGrace, t.ResyncPeriod
	o.Workers = cmp.Or(o.Workers, 16)
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	if o.Registry == nil {
		o.Registry = prometheus.NewRegistry()
	}
	return t, nil
}

// Hub places InferenceModels on member clusters and keeps them placed.
type Hub struct {
	opts   Options
	log    *slog.Logger
	mgr    mcmanager.Manager
	client client.Client // the hub cluster
	// endpoints decides which endpoints members may publish.
	endpoints endpoint.Policy
	members   *members
	metrics   *metrics
}

// Run runs the hub against the hub cluster at cfg, engaging the member
// clusters the provider finds, until ctx ends. Production uses
// NewProvider: member kubeconfigs in labelled Secrets on the hub.
func Run(ctx context.Context, cfg *rest.Config, provider multicluster.Provider, opts Options) error {
	timing, err := opts.setDefaults()
	if err != nil {
		return err
	}
	if cfg.QPS == 0 {
		// client-go's default of 5 requests per second would take half
		// an hour to write the status of 10,000 models.
		cfg = rest.CopyConfig(cfg)
		cfg.QPS, cfg.Burst = 200, 400
	}
	log := logr.FromSlogHandler(opts.Logger.Handler())
	ctrl.SetLogger(log)
	membersNS := cmp.Or(opts.MembersNamespace, MembersNamespace)
	mgr, err := mcmanager.New(cfg, provider, manager.Options{
		Scheme: scheme.Scheme,
		// The kubeconfig provider watches Secrets: those of the members'
		// namespace only, so the hub needs no cluster-wide Secret access.
		Cache:                   cache.Options{ByObject: map[client.Object]cache.ByObject{&corev1.Secret{}: {Namespaces: map[string]cache.Config{membersNS: {}}}}},
		LeaderElection:          opts.LeaderElection,
		LeaderElectionID:        "meridian-hub",
		LeaderElectionNamespace: cmp.Or(opts.LeaderElectionNamespace, membersNS),
		// Give the Lease up on a clean stop so the other replica takes
		// over at once, not after the lease runs out.
		LeaderElectionReleaseOnCancel: true,
		Metrics:                       metricsserver.Options{BindAddress: "0"},
		HealthProbeBindAddress:        "0",
		Logger:                        log,
		// Controller names are unique per process only for their metrics;
		// a hub restarted in the same process (tests, the fleet's
		// hub-loss drill) registers the same names again.
		Controller: config.Controller{SkipNameValidation: ptr.To(true)},
	})
	if err != nil {
		return fmt.Errorf("connecting to the hub cluster: %w", err)
	}
	m, err := newMetrics(opts.Registry)
	if err != nil {
		return err
	}
	h := &Hub{opts: opts, log: opts.Logger, mgr: mgr, client: mgr.GetLocalManager().GetClient(), metrics: m,
		endpoints: endpoint.Policy{Local: opts.AllowLocalEndpoints}}
	if p, ok := provider.(interface {
		SetupWithManager(context.Context, mcmanager.Manager) error
	}); ok {
		if err := p.SetupWithManager(ctx, mgr); err != nil {
			return fmt.Errorf("setting up the cluster provider: %w", err)
		}
	}
	if err := inventory.Setup(ctx, mgr.GetLocalManager(), opts.Inventory); err != nil {
		return err
	}
	h.members = &members{h: h, m: make(map[string]*member)}
	if err := mgr.Add(h.members); err != nil {
		return err
	}
	err = mcbuilder.ControllerManagedBy(mgr).
		Named("inferencemodel").
		WithOptions(controller.TypedOptions[mcreconcileRequest]{SkipNameValidation: ptr.To(true), MaxConcurrentReconciles: opts.Workers}).
		For(&v1.InferenceModel{}, mcbuilder.WithEngageWithLocalCluster(true), mcbuilder.WithEngageWithProviderClusters(false),
			mcbuilder.WithPredicates(specOrDeletion)).
		Watches(&v1.Cluster{}, h.onClusterHealth(), mcbuilder.WithEngageWithLocalCluster(true), mcbuilder.WithEngageWithProviderClusters(false)).
		Watches(&v1.ModelDeployment{}, h.onMemberModelDeployment(), mcbuilder.WithEngageWithLocalCluster(false), mcbuilder.WithEngageWithProviderClusters(true)).
		Watches(&v1.ModelRollout{}, onRollout(), mcbuilder.WithEngageWithLocalCluster(true), mcbuilder.WithEngageWithProviderClusters(false)).
		Complete(h)
	if err != nil {
		return err
	}
	if err := setupRollouts(mgr.GetLocalManager(), h); err != nil {
		return err
	}
	h.log.Info("hub starting", "timing", timing.Name, "healthPeriod", timing.HealthPeriod, "probeTimeout", timing.ProbeTimeout,
		"failureThreshold", timing.FailureThreshold, "unreachableWithin", timing.UnreachableWithin(), "resyncPeriod", timing.ResyncPeriod)
	return mgr.Start(ctx)
}

// specOrDeletion lets through the changes of an InferenceModel that the
// hub acts on: its spec, and its deletion. The hub's own writes — the
// finalizer, the status — would otherwise place every model two more times
// after each placement; readiness and health come through the
// ModelDeployment and Cluster watches.
var specOrDeletion = predicate.Funcs{UpdateFunc: func(e event.UpdateEvent) bool {
	return e.ObjectNew.GetGeneration() != e.ObjectOld.GetGeneration() || !e.ObjectNew.GetDeletionTimestamp().IsZero()
}}

// MembersNamespace is where the hub looks for member kubeconfig Secrets.
const MembersNamespace = "meridian-system"

// NewProvider returns the hub's members: push members, whose kubeconfigs
// the hub holds — every Secret in namespace labelled
// sigs.k8s.io/multicluster-runtime-kubeconfig, under the key
// "kubeconfig", named after the member (multicluster-runtime's kubeconfig
// provider) — and pull members, which reach the hub themselves
// (membership.Provider over the hub's API server at cfg). A name in both is
// the pull member's.
func NewProvider(cfg *rest.Config, namespace string, log *slog.Logger) multicluster.Provider {
	return &providers{
		push: kubeconfig.New(kubeconfig.Options{
			Namespace:      namespace,
			ClusterOptions: []cluster.Option{func(o *cluster.Options) { o.Scheme = scheme.Scheme }},
		}),
		pull: membership.NewProvider(cfg, log),
	}
}

type providers struct {
	push *kubeconfig.Provider
	pull *membership.Provider
}

func (p *providers) SetupWithManager(ctx context.Context, mgr mcmanager.Manager) error {
	if err := p.push.SetupWithManager(ctx, mgr); err != nil {
		return err
	}
	return p.pull.SetupWithManager(ctx, mgr)
}

func (p *providers) Get(ctx context.Context, name multicluster.ClusterName) (cluster.Cluster, error) {
	if cl, err := p.pull.Get(ctx, name); err == nil {
		return cl, nil
	}
	return p.push.Get(ctx, name)
}

func (p *providers) IndexField(ctx context.Context, obj client.Object, field string, extract client.IndexerFunc) error {
	if err := p.push.IndexField(ctx, obj, field, extract); err != nil {
		return err
	}
	return p.pull.IndexField(ctx, obj, field, extract)
}
