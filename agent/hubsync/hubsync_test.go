package hubsync_test

import (
	"context"
	"io"
	"log/slog"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"meridian.dev/meridian/agent/hubsync"
	v1 "meridian.dev/meridian/crds/v1alpha1"
	"meridian.dev/meridian/hub/membership"
	"meridian.dev/meridian/internal/controlplane"
	"meridian.dev/meridian/internal/testbin"
)

// A joined member whose hub is gone (nothing listens where it was) keeps
// every ModelDeployment the hub placed on it, and says why in its
// ClusterReport; a member with no join Secret says how to join.
func TestHubUnreachableKeepsServing(t *testing.T) {
	cp := controlplane.ForTest(t, controlplane.Options{})
	ctx := context.Background()
	reg := prometheus.NewRegistry()
	s, err := hubsync.New(cp.Config, hubsync.Options{Logger: slog.New(slog.NewTextHandler(io.Discard, nil)), Registry: reg, Period: 100 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	rep := &v1.ClusterReport{ObjectMeta: metav1.ObjectMeta{Name: v1.ClusterReportName}, Spec: v1.ClusterIdentity{Region: "eu-west"}}
	if err := cp.Client.Create(ctx, rep); err != nil {
		t.Fatal(err)
	}

	err = s.SyncOnce(ctx)
	if err == nil || !strings.Contains(err.Error(), "meridian-hub-join") || !strings.Contains(err.Error(), "meridian member add") {
		t.Fatalf("a member never joined: want an error saying how to join, got %v", err)
	}

	// A credential for a hub that is no longer there.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	gone := ln.Addr().String()
	_ = ln.Close()
	cred := membership.Bundle{Server: "https://" + gone, Member: "eu-1", ServiceAccount: "agent-x", Token: "t", Expires: time.Now().Add(24 * time.Hour)}
	key := types.NamespacedName{Namespace: hubsync.DefaultNamespace, Name: hubsync.DefaultCredentialSecret}
	if err := hubsync.WriteBundle(ctx, cp.Client, key, cred); err != nil {
		t.Fatal(err)
	}
	md := &v1.ModelDeployment{ObjectMeta: metav1.ObjectMeta{Namespace: "default", Name: "sentiment",
		Labels: map[string]string{"app.kubernetes.io/managed-by": "meridian-hub"}}, Spec: v1.ModelDeploymentSpec{Model: v1.ModelSource{Name: "sentiment"}}}
	if err := cp.Client.Create(ctx, md); err != nil {
		t.Fatal(err)
	}
	s.Forget()
	runCtx, cancel := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- s.Run(runCtx) }()
	testbin.Eventually(t, "HubConnected False (HubUnreachable) in the ClusterReport", 20*time.Second, func() (bool, string) {
		got := &v1.ClusterReport{}
		_ = cp.Client.Get(ctx, client.ObjectKey{Name: v1.ClusterReportName}, got)
		c := meta.FindStatusCondition(got.Status.Conditions, string(v1.ConditionHubConnected))
		if c == nil {
			return false, "no condition"
		}
		return c.Status == metav1.ConditionFalse && c.Reason == string(v1.ReasonHubUnreachable), c.Reason + ": " + c.Message
	})
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if err := cp.Client.Get(ctx, client.ObjectKeyFromObject(md), &v1.ModelDeployment{}); err != nil {
		t.Fatalf("the ModelDeployment the hub placed is gone while the hub was unreachable: %v", err)
	}
	if v := testbin.Metric(t, reg, "meridian_agent_hub_connected", nil); v != 0 {
		t.Errorf("meridian_agent_hub_connected = %v, want 0", v)
	}
	if v := testbin.Metric(t, reg, "meridian_agent_hub_syncs_total", map[string]string{"result": "error"}); v < 1 {
		t.Errorf("meridian_agent_hub_syncs_total{result=error} = %v, want ≥ 1", v)
	}
}
