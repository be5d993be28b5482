package membership

import (
	"context"
	"fmt"
	"log/slog"
	"strings"
	"sync"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/client-go/rest"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/builder"
	"sigs.k8s.io/controller-runtime/pkg/cache"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/cluster"
	"sigs.k8s.io/controller-runtime/pkg/predicate"
	mcmanager "sigs.k8s.io/multicluster-runtime/pkg/manager"
	"sigs.k8s.io/multicluster-runtime/pkg/multicluster"

	"meridian.dev/meridian/internal/scheme"
)

// Provider engages every pull member — each hub namespace labelled
// MemberLabel — as a cluster of the hub's multicluster manager. The
// cluster is the hub's API server seen through that namespace: its
// ModelDeployments are the member's (named by HubName) and its
// ClusterReport "local" is the hub's ClusterReport of the member's name.
type Provider struct {
	cfg *rest.Config
	log *slog.Logger
	mgr mcmanager.Manager

	mu       sync.Mutex
	clusters map[string]*engaged
	indexers []indexer
}

type engaged struct {
	cl     *memberCluster
	cancel context.CancelFunc
}

type indexer struct {
	obj     client.Object
	field   string
	extract client.IndexerFunc
}

var _ multicluster.Provider = (*Provider)(nil)

// NewProvider returns a Provider over the hub's API server at cfg.
func NewProvider(cfg *rest.Config, log *slog.Logger) *Provider {
	return &Provider{cfg: cfg, log: log, clusters: map[string]*engaged{}}
}

// SetupWithManager watches the hub's namespaces for members.
func (p *Provider) SetupWithManager(_ context.Context, mgr mcmanager.Manager) error {
	p.mgr = mgr
	return ctrl.NewControllerManagedBy(mgr.GetLocalManager()).
		Named("pull-members").
		For(&corev1.Namespace{}, builder.WithPredicates(predicate.NewPredicateFuncs(func(o client.Object) bool {
			return strings.HasPrefix(o.GetName(), NamespacePrefix)
		}))).
		Complete(p)
}

// Reconcile engages a member namespace, or disengages one that lost its
// label or went away.
func (p *Provider) Reconcile(ctx context.Context, req ctrl.Request) (ctrl.Result, error) {
	ns := &corev1.Namespace{}
	gone := false
	if err := p.mgr.GetLocalManager().GetClient().Get(ctx, req.NamespacedName, ns); apierrors.IsNotFound(err) {
		gone = true
	} else if err != nil {
		return ctrl.Result{}, err
	}
	member := ns.Labels[MemberLabel]
	if gone || member == "" || Namespace(member) != ns.Name || !ns.DeletionTimestamp.IsZero() {
		p.disengage(strings.TrimPrefix(req.Name, NamespacePrefix))
		return ctrl.Result{}, nil
	}
	p.mu.Lock()
	_, ok := p.clusters[member]
	p.mu.Unlock()
	if ok {
		return ctrl.Result{}, nil
	}
	return ctrl.Result{}, p.engage(ctx, member)
}

func (p *Provider) engage(ctx context.Context, member string) error {
	ns := Namespace(member)
	cl, err := cluster.New(p.cfg, func(o *cluster.Options) {
		o.Scheme = scheme.Scheme
		o.Cache.DefaultNamespaces = map[string]cache.Config{ns: {}}
	})
	if err != nil {
		return fmt.Errorf("pull member %s: %w", member, err)
	}
	p.mu.Lock()
	idx := append([]indexer(nil), p.indexers...)
	p.mu.Unlock()
	for _, i := range idx {
		if err := cl.GetFieldIndexer().IndexField(ctx, i.obj, i.field, i.extract); err != nil {
			return fmt.Errorf("pull member %s: index %s: %w", member, i.field, err)
		}
	}
	// The member lives until the provider's manager stops or it is
	// disengaged, not as long as this one reconcile.
	cctx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	go func() {
		if err := cl.Start(cctx); err != nil {
			p.log.Error("pull member's view of the hub stopped", "member", member, "err", err)
		}
	}()
	if !cl.GetCache().WaitForCacheSync(cctx) {
		cancel()
		return fmt.Errorf("pull member %s: cache never synced", member)
	}
	mc := &memberCluster{Cluster: cl, member: member, namespace: ns}
	p.mu.Lock()
	p.clusters[member] = &engaged{cl: mc, cancel: cancel}
	p.mu.Unlock()
	if err := p.mgr.Engage(cctx, multicluster.ClusterName(member), mc); err != nil {
		p.disengage(member)
		return fmt.Errorf("pull member %s: engaging: %w", member, err)
	}
	p.log.Info("pull member engaged", "member", member, "namespace", ns)
	return nil
}

func (p *Provider) disengage(member string) {
	p.mu.Lock()
	e := p.clusters[member]
	delete(p.clusters, member)
	p.mu.Unlock()
	if e != nil {
		e.cancel()
		p.log.Info("pull member disengaged", "member", member)
	}
}

// Get returns an engaged member.
func (p *Provider) Get(_ context.Context, name multicluster.ClusterName) (cluster.Cluster, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if e := p.clusters[string(name)]; e != nil {
		return e.cl, nil
	}
	return nil, multicluster.ErrClusterNotFound
}

// IndexField indexes a field on every member, present and future.
func (p *Provider) IndexField(ctx context.Context, obj client.Object, field string, extract client.IndexerFunc) error {
	p.mu.Lock()
	p.indexers = append(p.indexers, indexer{obj, field, extract})
	list := make([]*engaged, 0, len(p.clusters))
	for _, e := range p.clusters {
		list = append(list, e)
	}
	p.mu.Unlock()
	for _, e := range list {
		if err := e.cl.GetFieldIndexer().IndexField(ctx, obj, field, extract); err != nil {
			return err
		}
	}
	return nil
}
