package membership

import (
	"context"
	"fmt"
	"time"

	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/tools/clientcmd"
	clientcmdapi "k8s.io/client-go/tools/clientcmd/api"
	"sigs.k8s.io/controller-runtime/pkg/client"

	v1 "meridian.dev/meridian/crds/v1alpha1"
)

// Push membership, least privilege: the identity the hub uses on a push
// member.
const (
	// PushRole is the ClusterRole on a push member that the hub's
	// ServiceAccount there is bound to.
	PushRole = "meridian-hub-push"
	// PushNamespace and PushServiceAccount are that ServiceAccount.
	PushNamespace      = "meridian-system"
	PushServiceAccount = "meridian-hub"
	// KubeconfigLabel marks the hub's Secrets of push members
	// (multicluster-runtime's kubeconfig provider).
	KubeconfigLabel = "sigs.k8s.io/multicluster-runtime-kubeconfig"
)

// PushRules are all the hub does on a push member: write the
// ModelDeployments it places there (and their namespaces) and read its
// ClusterReport. charts/meridian renders the same ClusterRole; a test
// keeps the two equal.
func PushRules() []rbacv1.PolicyRule {
	return []rbacv1.PolicyRule{
		{APIGroups: []string{v1.GroupVersion.Group}, Resources: []string{"modeldeployments"},
			Verbs: []string{"get", "list", "watch", "create", "update", "patch", "delete"}},
		{APIGroups: []string{v1.GroupVersion.Group}, Resources: []string{"clusterreports"}, Verbs: []string{"get", "list", "watch"}},
		{APIGroups: []string{""}, Resources: []string{"namespaces"}, Verbs: []string{"get", "create"}},
	}
}

// DefaultPushTokenTTL is how long the hub's token on a push member lives;
// run AddPush again before it ends (it replaces the hub's Secret).
const DefaultPushTokenTTL = 365 * 24 * time.Hour

// AddPush makes o.Name a push member: through member (an admin's client
// of the member cluster) it creates PushRole, the hub's ServiceAccount and
// their binding, asks for a token of that ServiceAccount valid for o.TTL
// (default DefaultPushTokenTTL), and stores a kubeconfig with it — for
// the member's API server at o.Server, o.CAData, o.TLSServerName — in the
// hub's labelled Secret o.Name in namespace (through hub). It writes the
// member's Cluster with o's identity and labels, as Add does. The hub gets
// the rights it needs on the member and no more.
func AddPush(ctx context.Context, hub, member client.Client, namespace string, o AddOptions) error {
	name, ttl := o.Name, o.TTL
	if o.Identity.Region == "" {
		return fmt.Errorf("member %s: a region is required (--region)", name)
	}
	sa := &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Namespace: PushNamespace, Name: PushServiceAccount}}
	for _, obj := range []client.Object{
		&corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: PushNamespace}},
		sa,
		&rbacv1.ClusterRole{ObjectMeta: metav1.ObjectMeta{Name: PushRole}, Rules: PushRules()},
		&rbacv1.ClusterRoleBinding{ObjectMeta: metav1.ObjectMeta{Name: PushRole},
			Subjects: []rbacv1.Subject{{Kind: rbacv1.ServiceAccountKind, Namespace: PushNamespace, Name: PushServiceAccount}},
			RoleRef:  rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "ClusterRole", Name: PushRole}},
	} {
		if err := apply(ctx, member, obj); err != nil {
			return fmt.Errorf("push member %s: %s %s: %w", name, kind(obj), obj.GetName(), err)
		}
	}
	if ttl == 0 {
		ttl = DefaultPushTokenTTL
	}
	tok, err := requestTokenIn(ctx, member, PushNamespace, PushServiceAccount, ttl)
	if err != nil {
		return fmt.Errorf("push member %s: a token for the hub: %w", name, err)
	}
	kc := clientcmdapi.NewConfig()
	kc.Clusters[name] = &clientcmdapi.Cluster{Server: o.Server, CertificateAuthorityData: o.CAData, TLSServerName: o.TLSServerName}
	kc.AuthInfos["meridian-hub"] = &clientcmdapi.AuthInfo{Token: tok.Status.Token}
	kc.Contexts[name] = &clientcmdapi.Context{Cluster: name, AuthInfo: "meridian-hub"}
	kc.CurrentContext = name
	data, err := clientcmd.Write(*kc)
	if err != nil {
		return err
	}
	sec := &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: namespace, Name: name, Labels: map[string]string{KubeconfigLabel: "true"}},
		Data: map[string][]byte{"kubeconfig": data}}
	err = hub.Create(ctx, sec)
	if apierrors.IsAlreadyExists(err) {
		err = hub.Update(ctx, sec)
	}
	if err != nil {
		return fmt.Errorf("push member %s: its kubeconfig Secret %s/%s on the hub: %w", name, namespace, name, err)
	}
	if err := writeCluster(ctx, hub, o, "push"); err != nil {
		return fmt.Errorf("push member %s: Cluster: %w", name, err)
	}
	return nil
}
