package membership

import (
	"context"
	"fmt"
	"maps"
	"time"

	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	utilrand "k8s.io/apimachinery/pkg/util/rand"
	"k8s.io/apimachinery/pkg/util/validation"
	"k8s.io/client-go/util/retry"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/controller/controllerutil"

	v1 "meridian.dev/meridian/crds/v1alpha1"
)

// AddOptions describe a member to the hub. The hub owns all of it: the
// member's agent reports its own view, which cannot change these.
type AddOptions struct {
	// Name of the member (a DNS label).
	Name string
	// Identity: region (required) and zone; location and endpoint come
	// from the agent's reports.
	Identity v1.ClusterIdentity
	// Labels of its Cluster, for placement policies.
	Labels map[string]string
	// Provider and CostPerGPUHour of its Cluster.
	Provider       string
	CostPerGPUHour *resource.Quantity
	// TTL of the bootstrap token; default 1h, at least 10m.
	TTL time.Duration
	// Server, CAData and TLSServerName are how the member reaches the
	// hub's API server (Add), or the hub the member's (AddPush).
	Server        string
	CAData        []byte
	TLSServerName string
}

// DefaultBootstrapTTL is how long a join bundle works.
const DefaultBootstrapTTL = time.Hour

// Add registers a pull member on the hub through c (an admin's client):
// its namespace, ServiceAccounts, RBAC, Cluster and ClusterReport. Run
// again on an existing member, it re-creates what Revoke removed and
// returns a new join bundle; every earlier token stays refused.
func Add(ctx context.Context, c client.Client, o AddOptions) (Bundle, error) {
	if errs := validation.IsDNS1123Label(o.Name); len(errs) > 0 {
		return Bundle{}, fmt.Errorf("member name %q: %v", o.Name, errs)
	}
	if o.Identity.Region == "" {
		return Bundle{}, fmt.Errorf("member %s: a region is required (--region)", o.Name)
	}
	if o.Server == "" {
		return Bundle{}, fmt.Errorf("member %s: the hub's API server URL as the member reaches it is required (--hub-server)", o.Name)
	}
	ns := Namespace(o.Name)
	if err := deleteAccounts(ctx, c, o.Name); err != nil {
		return Bundle{}, err
	}
	gen := utilrand.String(5)
	for _, obj := range objects(o.Name, gen) {
		if err := apply(ctx, c, obj); err != nil {
			return Bundle{}, fmt.Errorf("member %s: %s %s: %w", o.Name, kind(obj), obj.GetName(), err)
		}
	}
	if err := writeCluster(ctx, c, o, "pull"); err != nil {
		return Bundle{}, fmt.Errorf("member %s: Cluster: %w", o.Name, err)
	}
	rep := &v1.ClusterReport{ObjectMeta: metav1.ObjectMeta{Name: ReportName(o.Name)}, Spec: v1.ClusterIdentity{Region: o.Identity.Region, Zone: o.Identity.Zone}}
	if err := c.Create(ctx, rep); err != nil && !apierrors.IsAlreadyExists(err) {
		return Bundle{}, fmt.Errorf("member %s: ClusterReport: %w", o.Name, err)
	}
	ttl := o.TTL
	if ttl == 0 {
		ttl = DefaultBootstrapTTL
	}
	tok, err := requestToken(ctx, c, o.Name, BootstrapPrefix+gen, ttl)
	if err != nil {
		return Bundle{}, fmt.Errorf("member %s: bootstrap token in %s: %w", o.Name, ns, err)
	}
	return Bundle{Server: o.Server, CAData: o.CAData, TLSServerName: o.TLSServerName, Member: o.Name, ServiceAccount: AgentPrefix + gen,
		Token: tok.Status.Token, Expires: tok.Status.ExpirationTimestamp.Time}, nil
}

// writeCluster creates or updates the member's Cluster with what the
// admin said, labelled with its membership mode; its status is the hub's.
// The running hub writes the Cluster too (its labels and region once the
// identity is agreed), so a write that lost the race is read and tried
// again rather than failing the admin's command.
func writeCluster(ctx context.Context, c client.Client, o AddOptions, mode string) error {
	return retry.RetryOnConflict(retry.DefaultRetry, func() error {
		return writeClusterOnce(ctx, c, o, mode)
	})
}

func writeClusterOnce(ctx context.Context, c client.Client, o AddOptions, mode string) error {
	cl := &v1.Cluster{ObjectMeta: metav1.ObjectMeta{Name: o.Name}}
	_, err := controllerutil.CreateOrUpdate(ctx, c, cl, func() error {
		if cl.Labels == nil {
			cl.Labels = map[string]string{}
		}
		maps.Copy(cl.Labels, o.Labels)
		cl.Labels[MembershipLabel] = mode
		cl.Spec.Region, cl.Spec.Zone = o.Identity.Region, o.Identity.Zone
		if o.Identity.Location != nil {
			cl.Spec.Location = o.Identity.Location
		}
		if o.Provider != "" {
			cl.Spec.Provider = o.Provider
		}
		if o.CostPerGPUHour != nil {
			cl.Spec.CostPerGPUHour = o.CostPerGPUHour
		}
		return nil
	})
	return err
}

// deleteAccounts deletes every ServiceAccount of member on the hub: each
// token it holds is refused from then on.
func deleteAccounts(ctx context.Context, c client.Client, member string) error {
	err := c.DeleteAllOf(ctx, &corev1.ServiceAccount{}, client.InNamespace(Namespace(member)), client.MatchingLabels{MemberLabel: member})
	if client.IgnoreNotFound(err) != nil {
		return fmt.Errorf("member %s: deleting its ServiceAccounts: %w", member, err)
	}
	return nil
}

// objects are a member's namespace, ServiceAccounts of generation gen and
// RBAC on the hub.
func objects(member, gen string) []client.Object {
	agent, bootstrap := AgentPrefix+gen, BootstrapPrefix+gen
	ns := Namespace(member)
	meta := func(name string) metav1.ObjectMeta {
		return metav1.ObjectMeta{Namespace: ns, Name: name, Labels: map[string]string{MemberLabel: member}}
	}
	clusterMeta := func() metav1.ObjectMeta {
		return metav1.ObjectMeta{Name: ns, Labels: map[string]string{MemberLabel: member}}
	}
	sa := func(name string) rbacv1.Subject {
		return rbacv1.Subject{Kind: rbacv1.ServiceAccountKind, Namespace: ns, Name: name}
	}
	return []client.Object{
		&corev1.Namespace{ObjectMeta: clusterMeta()},
		&corev1.ServiceAccount{ObjectMeta: meta(agent)},
		&corev1.ServiceAccount{ObjectMeta: meta(bootstrap)},
		// The agent reads its ModelDeployments, writes their status and
		// renews its own token; nothing else in its namespace.
		&rbacv1.Role{ObjectMeta: meta("meridian-member-agent"), Rules: []rbacv1.PolicyRule{
			{APIGroups: []string{v1.GroupVersion.Group}, Resources: []string{"modeldeployments"}, Verbs: []string{"get", "list", "watch"}},
			{APIGroups: []string{v1.GroupVersion.Group}, Resources: []string{"modeldeployments/status"}, Verbs: []string{"get", "update", "patch"}},
			{APIGroups: []string{""}, Resources: []string{"serviceaccounts/token"}, Verbs: []string{"create"}, ResourceNames: []string{agent}},
		}},
		&rbacv1.RoleBinding{ObjectMeta: meta("meridian-member-agent"), Subjects: []rbacv1.Subject{sa(agent)},
			RoleRef: rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "Role", Name: "meridian-member-agent"}},
		// The bootstrap token may only be exchanged for the agent's.
		&rbacv1.Role{ObjectMeta: meta("meridian-member-bootstrap"), Rules: []rbacv1.PolicyRule{
			{APIGroups: []string{""}, Resources: []string{"serviceaccounts/token"}, Verbs: []string{"create"}, ResourceNames: []string{agent}},
		}},
		&rbacv1.RoleBinding{ObjectMeta: meta("meridian-member-bootstrap"), Subjects: []rbacv1.Subject{sa(bootstrap)},
			RoleRef: rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "Role", Name: "meridian-member-bootstrap"}},
		// Its own ClusterReport, by name: ClusterReports are cluster-scoped.
		&rbacv1.ClusterRole{ObjectMeta: clusterMeta(), Rules: []rbacv1.PolicyRule{
			{APIGroups: []string{v1.GroupVersion.Group}, Resources: []string{"clusterreports", "clusterreports/status"},
				Verbs: []string{"get", "update", "patch"}, ResourceNames: []string{ReportName(member)}},
		}},
		&rbacv1.ClusterRoleBinding{ObjectMeta: clusterMeta(), Subjects: []rbacv1.Subject{sa(agent)},
			RoleRef: rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "ClusterRole", Name: ns}},
	}
}

func kind(obj client.Object) string {
	return fmt.Sprintf("%T", obj)[len("*v1."):]
}

// apply creates obj, or replaces the rules, subjects and labels of the one
// there.
func apply(ctx context.Context, c client.Client, obj client.Object) error {
	want := obj.DeepCopyObject().(client.Object)
	_, err := controllerutil.CreateOrUpdate(ctx, c, obj, func() error {
		obj.SetLabels(want.GetLabels())
		switch o := obj.(type) {
		case *rbacv1.Role:
			o.Rules = want.(*rbacv1.Role).Rules
		case *rbacv1.ClusterRole:
			o.Rules = want.(*rbacv1.ClusterRole).Rules
		case *rbacv1.RoleBinding:
			o.Subjects = want.(*rbacv1.RoleBinding).Subjects
		case *rbacv1.ClusterRoleBinding:
			o.Subjects = want.(*rbacv1.ClusterRoleBinding).Subjects
		}
		return nil
	})
	return err
}

// Revoke ends a member's access: its ServiceAccounts (and with them every
// token it holds) and its RBAC are deleted, and its Cluster is marked
// revoked and Unreachable so the hub places its models elsewhere at once.
// Its namespace, ModelDeployments and Cluster stay, for Add to rejoin it
// or an admin to delete. The member's replicas keep serving until its
// operator stops them: the hub cannot reach it.
func Revoke(ctx context.Context, c client.Client, member string) error {
	ns := Namespace(member)
	if err := deleteAccounts(ctx, c, member); err != nil {
		return err
	}
	for _, obj := range objects(member, "")[3:] { // its RBAC
		if err := client.IgnoreNotFound(c.Delete(ctx, obj)); err != nil {
			return fmt.Errorf("member %s: deleting %s %s: %w", member, kind(obj), obj.GetName(), err)
		}
	}
	// The hub stops engaging the namespace, so no stale report it still
	// holds can mark the member Ready again.
	nsObj := &corev1.Namespace{}
	if err := c.Get(ctx, client.ObjectKey{Name: ns}, nsObj); err != nil {
		return fmt.Errorf("member %s: namespace %s: %w", member, ns, err)
	}
	nsBase := nsObj.DeepCopy()
	delete(nsObj.Labels, MemberLabel)
	if err := c.Patch(ctx, nsObj, client.MergeFrom(nsBase)); err != nil {
		return fmt.Errorf("member %s: unlabelling namespace %s: %w", member, ns, err)
	}
	cl := &v1.Cluster{}
	if err := c.Get(ctx, client.ObjectKey{Name: member}, cl); err != nil {
		return fmt.Errorf("member %s: its Cluster: %w (namespace %s)", member, err, ns)
	}
	base := cl.DeepCopy()
	if cl.Labels == nil {
		cl.Labels = map[string]string{}
	}
	cl.Labels[MembershipLabel] = "revoked"
	if err := c.Patch(ctx, cl, client.MergeFrom(base)); err != nil {
		return fmt.Errorf("member %s: marking its Cluster revoked: %w", member, err)
	}
	base = cl.DeepCopy()
	cl.Status.Health = v1.HealthUnreachable
	v1.SetCondition(&cl.Status.Conditions, v1.ConditionReady, false, v1.ReasonRevoked, "membership revoked: its credentials are refused", cl.Generation)
	if err := c.Status().Patch(ctx, cl, client.MergeFrom(base)); err != nil {
		return fmt.Errorf("member %s: marking its Cluster Unreachable: %w", member, err)
	}
	return nil
}
