package membership_test

import (
	"context"
	"io"
	"log/slog"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	authenticationv1 "k8s.io/api/authentication/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/tools/clientcmd"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"meridian.dev/meridian/agent/hubsync"
	v1 "meridian.dev/meridian/crds/v1alpha1"
	"meridian.dev/meridian/hub"
	"meridian.dev/meridian/hub/membership"
	"meridian.dev/meridian/internal/controlplane"
	"meridian.dev/meridian/internal/scheme"
	"meridian.dev/meridian/internal/testbin"
)

var quiet = slog.New(slog.NewTextHandler(io.Discard, nil))

// add registers member on the hub cp as its admin would.
func add(t *testing.T, hubCP *controlplane.ControlPlane, member, region string) membership.Bundle {
	t.Helper()
	b, err := membership.Add(context.Background(), hubCP.Client, membership.AddOptions{
		Name: member, Identity: v1.ClusterIdentity{Region: v1.RegionName(region)}, Labels: map[string]string{"tier": "gold"},
		Server: hubCP.Config.Host, CAData: hubCP.Config.CAData, TTL: 15 * time.Minute})
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// as is a client of the hub with a member's token: the API server's own
// authentication and RBAC authorizer judge it.
func as(t *testing.T, b membership.Bundle) client.Client {
	t.Helper()
	c, err := client.New(b.RESTConfig(), client.Options{Scheme: scheme.Scheme})
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// writeLocalReport plays the member's agent: its ClusterReport, fresh.
func writeLocalReport(t *testing.T, c client.Client, region string) {
	t.Helper()
	ctx := context.Background()
	rep := &v1.ClusterReport{}
	err := c.Get(ctx, client.ObjectKey{Name: v1.ClusterReportName}, rep)
	if apierrors.IsNotFound(err) {
		rep = &v1.ClusterReport{ObjectMeta: metav1.ObjectMeta{Name: v1.ClusterReportName}, Spec: v1.ClusterIdentity{Region: v1.RegionName(region)}}
		err = c.Create(ctx, rep)
	} else if err == nil && string(rep.Spec.Region) != region {
		rep.Spec.Region = v1.RegionName(region)
		err = c.Update(ctx, rep)
	}
	if err != nil {
		t.Fatal(err)
	}
	rep.Status.Heartbeat = ptr.To(metav1.Now())
	rep.Status.Capacity = v1.Capacity{CPU: resource.MustParse("16"), FreeCPU: resource.MustParse("12"),
		Memory: resource.MustParse("64Gi"), FreeMemory: resource.MustParse("48Gi")}
	if err := c.Status().Update(ctx, rep); err != nil {
		t.Fatal(err)
	}
}

func forbidden(t *testing.T, what string, err error) {
	t.Helper()
	if !apierrors.IsForbidden(err) {
		t.Errorf("%s: want 403 Forbidden from the hub's authorizer, got %v", what, err)
	}
}

// A pull member joins with a bootstrap bundle on real API servers (the
// hub's and the member's), is placed on by the real hub, syncs its
// ModelDeployment and status both ways, cannot touch another member's
// objects or its own Cluster, keeps the hub's region whatever it reports,
// and once revoked is refused while its replicas stay.
func TestPullMemberJoinPlaceRevoke(t *testing.T) {
	hubCP := controlplane.ForTest(t, controlplane.Options{})
	memberCP := controlplane.ForTest(t, controlplane.Options{})
	ctx := context.Background()

	// A bad token is refused with what to do, and nothing is written.
	bad := add(t, hubCP, "eu-1", "eu-west")
	bad.Token = "not-a-token"
	joinKey := types.NamespacedName{Namespace: hubsync.DefaultNamespace, Name: hubsync.DefaultJoinSecret}
	if err := hubsync.WriteBundle(ctx, memberCP.Client, joinKey, bad); err != nil {
		t.Fatal(err)
	}
	reg := newRegistry()
	s, err := hubsync.New(memberCP.Config, hubsync.Options{Logger: quiet, Registry: reg})
	if err != nil {
		t.Fatal(err)
	}
	err = s.SyncOnce(ctx)
	if !membership.Refused(err) || !strings.Contains(err.Error(), "meridian member rotate eu-1") {
		t.Fatalf("a bad bootstrap token: want a refusal saying what to do, got %v", err)
	}
	credKey := client.ObjectKey{Namespace: hubsync.DefaultNamespace, Name: hubsync.DefaultCredentialSecret}
	if err := memberCP.Client.Get(ctx, credKey, &corev1.Secret{}); !apierrors.IsNotFound(err) {
		t.Fatalf("a refused join wrote the credential Secret: %v", err)
	}
	expired := bad
	expired.Expires = time.Now().Add(-time.Minute)
	if _, err := membership.Exchange(ctx, expired, time.Hour); !membership.Refused(err) || !strings.Contains(err.Error(), "expired") {
		t.Fatalf("an expired bundle: want refused as expired, got %v", err)
	}

	// The bootstrap token can do nothing but get the agent's token.
	boot := add(t, hubCP, "eu-1", "eu-west")
	forbidden(t, "bootstrap token listing ModelDeployments", as(t, boot).List(ctx, &v1.ModelDeploymentList{}, client.InNamespace(membership.Namespace("eu-1"))))

	// Join: the member exchanges the bundle, runs the real hub's placement.
	if err := hubsync.WriteBundle(ctx, memberCP.Client, joinKey, boot); err != nil {
		t.Fatal(err)
	}
	writeLocalReport(t, memberCP.Client, "eu-west")
	s.Forget()
	if err := s.SyncOnce(ctx); err != nil {
		t.Fatalf("joining with a good bundle: %v", err)
	}
	sec := &corev1.Secret{}
	if err := memberCP.Client.Get(ctx, credKey, sec); err != nil {
		t.Fatalf("no credential stored after joining: %v", err)
	}
	cred, err := membership.ParseBundle(sec.Data[hubsync.SecretKey])
	if err != nil || cred.Token == boot.Token {
		t.Fatalf("stored credential: want the agent's own token, got err=%v same-as-bootstrap=%v", err, cred.Token == boot.Token)
	}

	hubCtx, stopHub := context.WithCancel(ctx)
	hubDone := make(chan error, 1)
	hubReg := prometheus.NewRegistry()
	go func() {
		hubDone <- hub.Run(hubCtx, hubCP.Config, hub.NewProvider(hubCP.Config, hub.MembersNamespace, quiet),
			hub.Options{Logger: quiet, ResyncPeriod: time.Hour, Registry: hubReg})
	}()
	t.Cleanup(func() {
		stopHub()
		if err := <-hubDone; err != nil {
			t.Errorf("hub: %v", err)
		}
	})

	im := &v1.InferenceModel{ObjectMeta: metav1.ObjectMeta{Name: "sentiment", Namespace: "default"},
		Spec: v1.InferenceModelSpec{Model: v1.ModelSource{Name: "sentiment"},
			Autoscaling: v1.Autoscaling{MinReplicas: ptr.To[int32](1), MaxReplicas: 2}}}
	if err := hubCP.Client.Create(ctx, im); err != nil {
		t.Fatal(err)
	}
	local := &v1.ModelDeployment{}
	testbin.Eventually(t, "the hub's ModelDeployment pulled into the member", 30*time.Second, func() (bool, string) {
		writeLocalReport(t, memberCP.Client, "eu-west")
		err := s.SyncOnce(ctx)
		if err != nil {
			return false, err.Error()
		}
		err = memberCP.Client.Get(ctx, client.ObjectKey{Namespace: "default", Name: "sentiment"}, local)
		return err == nil, "member: " + errString(err)
	})
	// Play the member's agent: its replica is ready; the hub sees it.
	local.Status.Replicas, local.Status.ReadyReplicas, local.Status.DesiredReplicas = 1, 1, 1
	if err := memberCP.Client.Status().Update(ctx, local); err != nil {
		t.Fatal(err)
	}
	testbin.Eventually(t, "the member's ready replica in the InferenceModel's status", 30*time.Second, func() (bool, string) {
		writeLocalReport(t, memberCP.Client, "eu-west")
		if err := s.SyncOnce(ctx); err != nil {
			return false, err.Error()
		}
		got := &v1.InferenceModel{}
		if err := hubCP.Client.Get(ctx, client.ObjectKeyFromObject(im), got); err != nil {
			return false, err.Error()
		}
		return got.Status.ReadyReplicas == 1, "readyReplicas " + itoa(got.Status.ReadyReplicas)
	})
	cl := &v1.Cluster{}
	if err := hubCP.Client.Get(ctx, client.ObjectKey{Name: "eu-1"}, cl); err != nil || cl.Status.Health != v1.HealthReady || cl.Labels["tier"] != "gold" {
		t.Fatalf("Cluster eu-1: want Ready with its admin's labels, got %v health=%s labels=%v", err, cl.Status.Health, cl.Labels)
	}
	if v := testbin.Metric(t, hubReg, "meridian_hub_cluster_health", map[string]string{"cluster": "eu-1", "health": "Ready"}); v != 1 {
		t.Errorf("meridian_hub_cluster_health{eu-1,Ready} = %v, want 1", v)
	}
	if v := testbin.Metric(t, hubReg, "meridian_hub_inferencemodel_placed", map[string]string{"namespace": "default", "name": "sentiment"}); v != 1 {
		t.Errorf("meridian_hub_inferencemodel_placed{default,sentiment} = %v, want 1", v)
	}

	// The member reports another region: the hub keeps its own.
	testbin.Eventually(t, "IdentityAgreed False on a member claiming us-east", 20*time.Second, func() (bool, string) {
		writeLocalReport(t, memberCP.Client, "us-east")
		if err := s.SyncOnce(ctx); err != nil {
			return false, err.Error()
		}
		_ = hubCP.Client.Get(ctx, client.ObjectKey{Name: "eu-1"}, cl)
		return cl.Spec.Region == "eu-west" && !v1.IsConditionTrue(cl.Status.Conditions, v1.ConditionIdentityAgreed) &&
			len(cl.Status.Conditions) > 1, "region " + string(cl.Spec.Region)
	})
	if cl.Spec.Region != "eu-west" {
		t.Fatalf("a member's report moved its Cluster to region %s", cl.Spec.Region)
	}

	// Another member: neither can touch the other's objects, nor its own
	// Cluster, Secrets or anything outside its namespace and report.
	other, err := membership.Exchange(ctx, add(t, hubCP, "us-1", "us-east"), time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	eu := as(t, cred)
	forbidden(t, "eu-1 listing us-1's ModelDeployments", eu.List(ctx, &v1.ModelDeploymentList{}, client.InNamespace(membership.Namespace("us-1"))))
	usRep := &v1.ClusterReport{}
	forbidden(t, "eu-1 reading us-1's ClusterReport", eu.Get(ctx, client.ObjectKey{Name: membership.ReportName("us-1")}, usRep))
	forbidden(t, "eu-1 writing us-1's ClusterReport", eu.Update(ctx, &v1.ClusterReport{ObjectMeta: metav1.ObjectMeta{Name: membership.ReportName("us-1"), ResourceVersion: "1"}, Spec: v1.ClusterIdentity{Region: "eu-west"}}))
	forbidden(t, "eu-1 writing its own Cluster", eu.Update(ctx, cl.DeepCopy()))
	forbidden(t, "eu-1 creating a ModelDeployment", eu.Create(ctx, &v1.ModelDeployment{ObjectMeta: metav1.ObjectMeta{Namespace: membership.Namespace("eu-1"), Name: "default.x"},
		Spec: v1.ModelDeploymentSpec{Model: v1.ModelSource{Name: "x"}}}))
	forbidden(t, "eu-1 reading Secrets of its namespace", eu.List(ctx, &corev1.SecretList{}, client.InNamespace(membership.Namespace("eu-1"))))
	forbidden(t, "us-1 getting a token of eu-1's agent", as(t, other).SubResource("token").Create(ctx,
		&corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Namespace: membership.Namespace("eu-1"), Name: cred.ServiceAccount}}, tokenRequest()))

	// Renewal: a new token that works.
	renewed, err := membership.Exchange(ctx, cred, time.Hour)
	if err != nil || renewed.Token == cred.Token {
		t.Fatalf("renewing: err=%v same token=%v", err, renewed.Token == cred.Token)
	}
	if err := as(t, renewed).Get(ctx, client.ObjectKey{Name: membership.ReportName("eu-1")}, &v1.ClusterReport{}); err != nil {
		t.Fatalf("the renewed token does not work: %v", err)
	}

	// Revoke: refused at once, the member says so, its replicas stay, and
	// its Cluster is Unreachable so placement moves on.
	if err := membership.Revoke(ctx, hubCP.Client, "eu-1"); err != nil {
		t.Fatal(err)
	}
	testbin.Eventually(t, "the revoked member's credential refused", 10*time.Second, func() (bool, string) {
		err := as(t, renewed).Get(ctx, client.ObjectKey{Name: membership.ReportName("eu-1")}, &v1.ClusterReport{})
		return membership.Refused(err), errString(err)
	})
	err = s.SyncOnce(ctx)
	if !membership.Refused(err) {
		t.Fatalf("sync of a revoked member: want refused, got %v", err)
	}
	if err := memberCP.Client.Get(ctx, client.ObjectKey{Namespace: "default", Name: "sentiment"}, local); err != nil {
		t.Fatalf("a revoked member lost its ModelDeployment (its replicas must keep serving): %v", err)
	}
	go func() { runCtx, cancel := context.WithTimeout(ctx, 3*time.Second); defer cancel(); _ = s.Run(runCtx) }()
	testbin.Eventually(t, "HubConnected False (CredentialRejected) in the member's ClusterReport", 10*time.Second, func() (bool, string) {
		rep := &v1.ClusterReport{}
		_ = memberCP.Client.Get(ctx, client.ObjectKey{Name: v1.ClusterReportName}, rep)
		c := findCondition(rep.Status.Conditions, v1.ConditionHubConnected)
		return c != nil && c.Status == metav1.ConditionFalse && c.Reason == string(v1.ReasonCredentialRejected), conditionString(c)
	})
	if got := testbin.Metric(t, reg, "meridian_agent_hub_syncs_total", map[string]string{"result": "refused"}); got < 1 {
		t.Errorf("meridian_agent_hub_syncs_total{result=refused} = %v, want ≥ 1", got)
	}
	_ = hubCP.Client.Get(ctx, client.ObjectKey{Name: "eu-1"}, cl)
	if cl.Status.Health != v1.HealthUnreachable || cl.Labels[membership.MembershipLabel] != "revoked" {
		t.Fatalf("revoked Cluster: health %s membership %q, want Unreachable revoked", cl.Status.Health, cl.Labels[membership.MembershipLabel])
	}
	// Its model has nowhere else to go (us-1 never reported): unsatisfied.
	testbin.Eventually(t, "meridian_hub_inferencemodel_placed 0 once the only member is revoked", 20*time.Second, func() bool {
		v, ok := testbin.MetricIfAny(t, hubReg, "meridian_hub_inferencemodel_placed", map[string]string{"namespace": "default", "name": "sentiment"})
		return ok && v == 0
	})

	// Rotate (revoke + add): the old credential stays refused; a new join works.
	fresh := add(t, hubCP, "eu-1", "eu-west")
	if err := as(t, renewed).Get(ctx, client.ObjectKey{Name: membership.ReportName("eu-1")}, &v1.ClusterReport{}); !membership.Refused(err) {
		t.Fatalf("a revoked token works again after the member was re-added: %v", err)
	}
	// The member's operator replaces the join Secret alone: the agent
	// tries it since its stored credential was refused, and is back.
	if err := hubsync.WriteBundle(ctx, memberCP.Client, joinKey, fresh); err != nil {
		t.Fatal(err)
	}
	testbin.Eventually(t, "the member back in sync with the new bundle", 20*time.Second, func() (bool, string) {
		writeLocalReport(t, memberCP.Client, "eu-west")
		err := s.SyncOnce(ctx)
		return err == nil, errString(err)
	})
}

func newRegistry() *prometheus.Registry { return prometheus.NewRegistry() }

func errString(err error) string {
	if err == nil {
		return "ok"
	}
	return err.Error()
}

func itoa(n int32) string { return strconv.Itoa(int(n)) }

func tokenRequest() *authenticationv1.TokenRequest {
	return &authenticationv1.TokenRequest{Spec: authenticationv1.TokenRequestSpec{ExpirationSeconds: ptr.To[int64](600)}}
}

func findCondition(conds []metav1.Condition, t v1.ConditionType) *metav1.Condition {
	return meta.FindStatusCondition(conds, string(t))
}

func conditionString(c *metav1.Condition) string {
	if c == nil {
		return "no condition"
	}
	return string(c.Status) + " " + c.Reason + ": " + c.Message
}

// A push member: the hub's kubeconfig holds a least-privilege token on the
// member, not its admin's. The member's own API server refuses it
// everything the hub does not do.
func TestPushMemberLeastPrivilege(t *testing.T) {
	hubCP := controlplane.ForTest(t, controlplane.Options{})
	memberCP := controlplane.ForTest(t, controlplane.Options{})
	ctx := context.Background()
	if err := hubCP.Client.Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: hub.MembersNamespace}}); err != nil {
		t.Fatal(err)
	}
	o := membership.AddOptions{Name: "eu-2", Identity: v1.ClusterIdentity{Region: "eu-west"}, Server: memberCP.Config.Host, CAData: memberCP.Config.CAData}
	if err := membership.AddPush(ctx, hubCP.Client, memberCP.Client, hub.MembersNamespace, o); err != nil {
		t.Fatal(err)
	}
	sec := &corev1.Secret{}
	if err := hubCP.Client.Get(ctx, client.ObjectKey{Namespace: hub.MembersNamespace, Name: "eu-2"}, sec); err != nil {
		t.Fatal(err)
	}
	if sec.Labels[membership.KubeconfigLabel] != "true" {
		t.Fatalf("the hub's Secret lacks the label its kubeconfig provider engages: %v", sec.Labels)
	}
	cfg, err := clientcmd.RESTConfigFromKubeConfig(sec.Data["kubeconfig"])
	if err != nil {
		t.Fatal(err)
	}
	if len(cfg.CertData) != 0 || cfg.BearerToken == "" {
		t.Fatal("the hub's kubeconfig should hold a ServiceAccount token, not a client certificate")
	}
	as, err := client.New(cfg, client.Options{Scheme: scheme.Scheme})
	if err != nil {
		t.Fatal(err)
	}
	// What the hub does: namespaces, ModelDeployments, the report.
	if err := as.Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "models"}}); err != nil {
		t.Fatalf("creating a namespace for a model: %v", err)
	}
	md := &v1.ModelDeployment{ObjectMeta: metav1.ObjectMeta{Namespace: "models", Name: "sentiment"}, Spec: v1.ModelDeploymentSpec{Model: v1.ModelSource{Name: "sentiment"}}}
	if err := as.Create(ctx, md); err != nil {
		t.Fatalf("writing a ModelDeployment: %v", err)
	}
	if err := as.Delete(ctx, md); err != nil {
		t.Fatalf("deleting a ModelDeployment: %v", err)
	}
	if err := as.Get(ctx, client.ObjectKey{Name: v1.ClusterReportName}, &v1.ClusterReport{}); !apierrors.IsNotFound(err) {
		t.Fatalf("reading the ClusterReport: want NotFound (none yet), got %v", err)
	}
	// Nothing else.
	forbidden(t, "the hub reading the member's Secrets", as.List(ctx, &corev1.SecretList{}))
	forbidden(t, "the hub deleting a namespace", as.Delete(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "models"}}))
	forbidden(t, "the hub creating a Pod", as.Create(ctx, &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Namespace: "models", Name: "x"},
		Spec: corev1.PodSpec{Containers: []corev1.Container{{Name: "x", Image: "x"}}}}))
	forbidden(t, "the hub writing the ClusterReport", as.Create(ctx, &v1.ClusterReport{ObjectMeta: metav1.ObjectMeta{Name: v1.ClusterReportName}, Spec: v1.ClusterIdentity{Region: "eu-west"}}))
	cl := &v1.Cluster{}
	if err := hubCP.Client.Get(ctx, client.ObjectKey{Name: "eu-2"}, cl); err != nil || cl.Spec.Region != "eu-west" || cl.Labels[membership.MembershipLabel] != "push" {
		t.Fatalf("Cluster eu-2: %v region %q membership %q", err, cl.Spec.Region, cl.Labels[membership.MembershipLabel])
	}
}
