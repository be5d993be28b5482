package agent

import (
	"context"
	"io"
	"log/slog"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	appsv1 "k8s.io/api/apps/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	v1 "meridian.dev/meridian/crds/v1alpha1"
	"meridian.dev/meridian/internal/controlplane"
)

const h100 = "NVIDIA-H100-80GB-HBM3"

// The kubernetes runtime on a real control plane with the real
// controller-manager and scheduler and kwok nodes: one GPU node with one
// GPU, one CPU node. Two GPU replicas: one runs, one waits for a GPU, and
// both the ModelDeployment and the ClusterReport say so.
func TestKubernetesRuntimeReportsPendingGPUReplicas(t *testing.T) {
	cp := controlplane.ForTest(t, controlplane.Options{
		ControllerManager: true, Scheduler: true,
		Nodes: []controlplane.Node{{Name: "gpu-a", GPUs: 1, GPUProduct: h100}, {Name: "cpu-a"}},
	})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		done <- Run(ctx, cp.Config, Options{
			ClusterName: "k8s", Identity: v1.ClusterIdentity{Region: "us-east"}, Runtime: v1.RuntimeKubernetes,
			SyncPeriod: 500 * time.Millisecond, ReportPeriod: 500 * time.Millisecond,
			Logger: slog.New(slog.NewTextHandler(io.Discard, nil)), Registry: prometheus.NewRegistry(),
		})
	}()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("agent: %v", err)
		}
	})

	md := &v1.ModelDeployment{
		ObjectMeta: metav1.ObjectMeta{Name: "textdir", Namespace: "default"},
		Spec: v1.ModelDeploymentSpec{
			Model:       v1.ModelSource{Name: "textdir"},
			Resources:   v1.Resources{GPU: &v1.GPURequirement{Count: 1, Type: h100}},
			Autoscaling: v1.Autoscaling{MinReplicas: ptr.To[int32](2), MaxReplicas: 4},
		},
	}
	if err := cp.Client.Create(ctx, md); err != nil {
		t.Fatal(err)
	}
	eventually(t, "one ready and one pending GPU replica in the status", 90*time.Second, func() bool {
		got := &v1.ModelDeployment{}
		if cp.Client.Get(ctx, client.ObjectKeyFromObject(md), got) != nil {
			return false
		}
		s := got.Status
		d := meta.FindStatusCondition(s.Conditions, "Degraded")
		return s.ReadyReplicas == 1 && s.Replicas == 2 && s.Endpoint == "http://textdir.default.svc:8000" &&
			meta.IsStatusConditionTrue(s.Conditions, "Ready") && d != nil && d.Reason == "ReplicasPending"
	})
	dep := &appsv1.Deployment{}
	if err := cp.Client.Get(ctx, client.ObjectKeyFromObject(md), dep); err != nil {
		t.Fatalf("the agent's Deployment: %v", err)
	}
	if len(dep.OwnerReferences) != 1 || dep.OwnerReferences[0].Name != "textdir" {
		t.Errorf("Deployment not owned by the ModelDeployment: %+v", dep.OwnerReferences)
	}
	eventually(t, "the ClusterReport's GPU capacity", 60*time.Second, func() bool {
		rep := &v1.ClusterReport{}
		if cp.Client.Get(ctx, client.ObjectKey{Name: v1.ClusterReportName}, rep) != nil {
			return false
		}
		for _, g := range rep.Status.Capacity.GPUs {
			if g.Type == h100 && g.Allocatable == 1 && g.Free == 0 && g.Pending == 1 {
				return len(rep.Status.Models) == 1 && rep.Status.Models[0].ReadyReplicas == 1
			}
		}
		return false
	})
}
