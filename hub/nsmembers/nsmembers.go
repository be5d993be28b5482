// Package nsmembers runs a fleet's member clusters as namespaces of one API
// server, for tests and benchmarks of the hub at scales that real clusters
// would not fit on one machine. It is multicluster-runtime's namespace
// provider (member "member-0007" is namespace member-0007, seen by the hub
// as that member's "default") with what the hub needs that a namespace
// cannot give:
//
//   - only namespaces whose name starts with the prefix are members;
//   - a member's ClusterReport "local" (a singleton per API server) is kept
//     as JSON in the ConfigMap ReportConfigMap of its namespace: WriteReport
//     writes it, as the member's agent would write its report;
//   - a member can be cut off: every request of the hub to it then fails
//     as a refused connection would, as to an API server that is down.
//
// ModelDeployments the hub writes into a member live in the namespace
// "default" there, so the InferenceModels of a fleet run this way must be
// in the hub's namespace "default".
package nsmembers

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"sync"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/cluster"
	"sigs.k8s.io/controller-runtime/pkg/controller/controllerutil"
	"sigs.k8s.io/multicluster-runtime/pkg/multicluster"
	"sigs.k8s.io/multicluster-runtime/providers/namespace"

	v1 "meridian.dev/meridian/crds/v1alpha1"
)

// Provider is a multicluster.Provider whose members are the namespaces
// starting with a prefix.
type Provider struct {
	shared cluster.Cluster
	ns     *namespace.Provider
	prefix string

	mu  sync.Mutex
	cut map[string]bool
}

var _ multicluster.ProviderRunnable = (*Provider)(nil)

// New returns a provider over the API server shared reaches; shared is
// started by the provider's Start. Namespaces named prefix+anything are
// members.
func New(shared cluster.Cluster, prefix string) *Provider {
	return &Provider{shared: shared, ns: namespace.New(shared), prefix: prefix, cut: map[string]bool{}}
}

// Cut makes every request to member fail (cut true) or succeed again.
func (p *Provider) Cut(member string, cut bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.cut[member] = cut
}

func (p *Provider) isCut(member string) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.cut[member]
}

// Start starts the shared cluster and engages each member namespace with
// aware until ctx ends.
func (p *Provider) Start(ctx context.Context, aware multicluster.Aware) error {
	errs := make(chan error, 1)
	go func() { errs <- p.shared.Start(ctx) }()
	if !p.shared.GetCache().WaitForCacheSync(ctx) {
		return fmt.Errorf("the shared cluster's cache never synced: %w", <-errs)
	}
	return p.ns.Start(ctx, awareFunc(func(ctx context.Context, name multicluster.ClusterName, cl cluster.Cluster) error {
		if !strings.HasPrefix(string(name), p.prefix) {
			return nil
		}
		return aware.Engage(ctx, name, p.member(string(name), cl))
	}))
}

// Get returns an engaged member.
func (p *Provider) Get(ctx context.Context, name multicluster.ClusterName) (cluster.Cluster, error) {
	if !strings.HasPrefix(string(name), p.prefix) {
		return nil, multicluster.ErrClusterNotFound
	}
	cl, err := p.ns.Get(ctx, name)
	if err != nil {
		return nil, err
	}
	return p.member(string(name), cl), nil
}

// IndexField indexes a field on every member.
func (p *Provider) IndexField(ctx context.Context, obj client.Object, field string, extract client.IndexerFunc) error {
	return p.ns.IndexField(ctx, obj, field, extract)
}

type awareFunc func(context.Context, multicluster.ClusterName, cluster.Cluster) error

func (f awareFunc) Engage(ctx context.Context, name multicluster.ClusterName, cl cluster.Cluster) error {
	return f(ctx, name, cl)
}

func (p *Provider) member(name string, cl cluster.Cluster) *member {
	return &member{Cluster: cl, name: name, p: p}
}

// member is one namespace as a cluster.
type member struct {
	cluster.Cluster
	name string
	p    *Provider
}

func (m *member) GetClient() client.Client {
	return &memberClient{Client: m.Cluster.GetClient(), m: m}
}

func (m *member) GetAPIReader() client.Reader {
	return &reportReader{Reader: m.Cluster.GetAPIReader(), m: m}
}

func (m *member) check() error {
	if m.p.isCut(m.name) {
		return fmt.Errorf("member %s: dial tcp: connect: connection refused (cut off by nsmembers)", m.name)
	}
	return nil
}

// ReportConfigMap is the ConfigMap in a member's namespace that holds its
// ClusterReport, under the key "report".
const ReportConfigMap = "meridian-clusterreport"

// WriteReport writes member's ClusterReport (spec and status) through c,
// a client of the shared API server.
func WriteReport(ctx context.Context, c client.Client, member string, rep *v1.ClusterReport) error {
	b, err := json.Marshal(rep)
	if err != nil {
		return err
	}
	cm := &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Namespace: member, Name: ReportConfigMap}}
	_, err = controllerutil.CreateOrUpdate(ctx, c, cm, func() error {
		cm.Data = map[string]string{"report": string(b)}
		return nil
	})
	if err != nil {
		return fmt.Errorf("writing the ClusterReport of member %s: %w", member, err)
	}
	return nil
}

// reportReader reads the member's ClusterReport "local" from its
// ConfigMap, uncached.
type reportReader struct {
	client.Reader
	m *member
}

func (r *reportReader) Get(ctx context.Context, key client.ObjectKey, obj client.Object, opts ...client.GetOption) error {
	if err := r.m.check(); err != nil {
		return err
	}
	rep, ok := obj.(*v1.ClusterReport)
	if !ok || key.Namespace != "" || key.Name != v1.ClusterReportName {
		return r.Reader.Get(ctx, key, obj, opts...)
	}
	cm := &corev1.ConfigMap{}
	if err := r.m.p.shared.GetAPIReader().Get(ctx, client.ObjectKey{Namespace: r.m.name, Name: ReportConfigMap}, cm); err != nil {
		if apierrors.IsNotFound(err) {
			return apierrors.NewNotFound(v1.GroupVersion.WithResource("clusterreports").GroupResource(), key.Name)
		}
		return err
	}
	if err := json.Unmarshal([]byte(cm.Data["report"]), rep); err != nil {
		return fmt.Errorf("member %s: the report in ConfigMap %s: %w", r.m.name, ReportConfigMap, err)
	}
	rep.Name = v1.ClusterReportName
	return nil
}

// memberClient fails every request while the member is cut off.
type memberClient struct {
	client.Client
	m *member
}

func (c *memberClient) Get(ctx context.Context, key client.ObjectKey, obj client.Object, opts ...client.GetOption) error {
	if err := c.m.check(); err != nil {
		return err
	}
	return c.Client.Get(ctx, key, obj, opts...)
}

func (c *memberClient) List(ctx context.Context, list client.ObjectList, opts ...client.ListOption) error {
	if err := c.m.check(); err != nil {
		return err
	}
	return c.Client.List(ctx, list, opts...)
}

func (c *memberClient) Create(ctx context.Context, obj client.Object, opts ...client.CreateOption) error {
	if err := c.m.check(); err != nil {
		return err
	}
	return c.Client.Create(ctx, obj, opts...)
}

func (c *memberClient) Update(ctx context.Context, obj client.Object, opts ...client.UpdateOption) error {
	if err := c.m.check(); err != nil {
		return err
	}
	return c.Client.Update(ctx, obj, opts...)
}

func (c *memberClient) Delete(ctx context.Context, obj client.Object, opts ...client.DeleteOption) error {
	if err := c.m.check(); err != nil {
		return err
	}
	return c.Client.Delete(ctx, obj, opts...)
}
