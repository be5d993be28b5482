package membership

import (
	"context"
	"fmt"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/cluster"

	v1 "meridian.dev/meridian/crds/v1alpha1"
)

// memberCluster is a pull member as the hub sees it: the hub's API server
// through the member's namespace. Its client maps a ModelDeployment
// namespace/name of the member to HubName in that namespace, and its API
// reader maps the ClusterReport "local" to the hub's ClusterReport
// ReportName(member). Nothing else can be read or written through it.
type memberCluster struct {
	cluster.Cluster
	member, namespace string
}

// IsPull reports whether cl is a pull member's cluster from Provider.
func IsPull(cl cluster.Cluster) bool {
	_, ok := cl.(*memberCluster)
	return ok
}

func (m *memberCluster) GetClient() client.Client {
	return &memberClient{Client: m.Cluster.GetClient(), m: m}
}

func (m *memberCluster) GetAPIReader() client.Reader {
	return &memberReader{Reader: m.Cluster.GetAPIReader(), m: m}
}

// toHub renames a member's ModelDeployment to its hub name and returns
// the function that names it back.
func (m *memberCluster) toHub(obj client.Object) (func(), error) {
	if _, ok := obj.(*v1.ModelDeployment); !ok {
		return nil, fmt.Errorf("pull member %s: only ModelDeployments can be written through the hub, not %T", m.member, obj)
	}
	ns, name := obj.GetNamespace(), obj.GetName()
	obj.SetNamespace(m.namespace)
	obj.SetName(HubName(ns, name))
	return func() { obj.SetNamespace(ns); obj.SetName(name) }, nil
}

type memberClient struct {
	client.Client
	m *memberCluster
}

func (c *memberClient) Get(ctx context.Context, key client.ObjectKey, obj client.Object, opts ...client.GetOption) error {
	if _, ok := obj.(*v1.ModelDeployment); !ok {
		return fmt.Errorf("pull member %s: only ModelDeployments can be read through the hub, not %T", c.m.member, obj)
	}
	err := c.Client.Get(ctx, client.ObjectKey{Namespace: c.m.namespace, Name: HubName(key.Namespace, key.Name)}, obj, opts...)
	obj.SetNamespace(key.Namespace)
	obj.SetName(key.Name)
	return err
}

func (c *memberClient) List(context.Context, client.ObjectList, ...client.ListOption) error {
	return fmt.Errorf("pull member %s: listing through the hub is not supported", c.m.member)
}

// Create creates a ModelDeployment. A Namespace needs nothing: the
// member's namespace on the hub holds them all, and the agent creates the
// real one in the member.
func (c *memberClient) Create(ctx context.Context, obj client.Object, opts ...client.CreateOption) error {
	if _, ok := obj.(*corev1.Namespace); ok {
		return apierrors.NewAlreadyExists(corev1.Resource("namespaces"), obj.GetName())
	}
	back, err := c.m.toHub(obj)
	if err != nil {
		return err
	}
	defer back()
	return c.Client.Create(ctx, obj, opts...)
}

func (c *memberClient) Update(ctx context.Context, obj client.Object, opts ...client.UpdateOption) error {
	back, err := c.m.toHub(obj)
	if err != nil {
		return err
	}
	defer back()
	return c.Client.Update(ctx, obj, opts...)
}

func (c *memberClient) Patch(ctx context.Context, obj client.Object, patch client.Patch, opts ...client.PatchOption) error {
	back, err := c.m.toHub(obj)
	if err != nil {
		return err
	}
	defer back()
	return c.Client.Patch(ctx, obj, patch, opts...)
}

func (c *memberClient) Delete(ctx context.Context, obj client.Object, opts ...client.DeleteOption) error {
	back, err := c.m.toHub(obj)
	if err != nil {
		return err
	}
	defer back()
	return c.Client.Delete(ctx, obj, opts...)
}

// memberReader reads the member's ClusterReport, uncached.
type memberReader struct {
	client.Reader
	m *memberCluster
}

func (r *memberReader) Get(ctx context.Context, key client.ObjectKey, obj client.Object, opts ...client.GetOption) error {
	if _, ok := obj.(*v1.ClusterReport); !ok || key.Name != v1.ClusterReportName {
		return fmt.Errorf("pull member %s: only its ClusterReport %q can be read, not %T %s", r.m.member, v1.ClusterReportName, obj, key)
	}
	err := r.Reader.Get(ctx, client.ObjectKey{Name: ReportName(r.m.member)}, obj, opts...)
	obj.SetName(v1.ClusterReportName)
	return err
}
