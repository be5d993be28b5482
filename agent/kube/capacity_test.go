package kube

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	autoscalingv2 "k8s.io/api/autoscaling/v2"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"meridian.dev/meridian/crds/v1alpha1"
	"meridian.dev/meridian/internal/controlplane"
	"meridian.dev/meridian/internal/testbin"
)

// A GPU ModelDeployment on a cluster with a real controller-manager and
// scheduler and fake (kwok) nodes: two GPU nodes with one H100 each and a
// CPU node. Three replicas of one GPU each: the Deployment and ReplicaSet
// controllers create the pods, the scheduler puts two on the GPU nodes and
// leaves the third Pending, and MeasureCapacity sees it all, plus what the
// Cluster Autoscaler could still add.
func TestGPUReplicasScheduleAndCapacityOnRealControlPlane(t *testing.T) {
	t.Parallel()
	cp := controlplane.ForTest(t, controlplane.Options{
		ControllerManager: true,
		Scheduler:         true,
		Nodes: []controlplane.Node{
			{Name: "gpu-a", GPUs: 1, GPUProduct: h100},
			{Name: "gpu-b", GPUs: 1, GPUProduct: h100},
			{Name: "cpu-1"},
		},
	})
	c := cp.Client
	ctx := context.Background()

	md := createModelDeployment(t, c, &v1alpha1.ModelDeployment{
		ObjectMeta: metav1.ObjectMeta{Name: "sentiment-h100", Namespace: "default"},
		Spec: v1alpha1.ModelDeploymentSpec{
			Model: v1alpha1.ModelSource{Name: "sentiment"},
			Resources: v1alpha1.Resources{
				CPU: resource.MustParse("1"), Memory: resource.MustParse("1Gi"),
				GPU: &v1alpha1.GPURequirement{Count: 1, Type: h100},
			},
			Autoscaling: v1alpha1.Autoscaling{
				MinReplicas: ptr.To[int32](3), MaxReplicas: 5,
				Targets: v1alpha1.MetricTargets{QueueLength: ptr.To[int32](2)},
			},
		},
	})
	if _, err := Apply(ctx, c, md, Options{}); err != nil {
		t.Fatal(err)
	}

	var pods []corev1.Pod
	testbin.Eventually(t, "two replicas on the GPU nodes and one unschedulable", 60*time.Second, func() (bool, string) {
		var list corev1.PodList
		if err := c.List(ctx, &list, client.InNamespace("default"), client.MatchingLabels{InstanceLabel: md.Name}); err != nil {
			return false, err.Error()
		}
		pods = list.Items
		var nodes []string
		pending := 0
		for i := range pods {
			if n := pods[i].Spec.NodeName; n != "" {
				nodes = append(nodes, n)
			} else if Unschedulable(&pods[i]) {
				pending++
			}
		}
		slices.Sort(nodes)
		state := fmt.Sprintf("%d pods, bound to %v, %d unschedulable", len(pods), nodes, pending)
		// Say why, should it time out.
		for _, p := range pods {
			for _, cond := range p.Status.Conditions {
				if cond.Type == corev1.PodScheduled && cond.Status != corev1.ConditionTrue {
					state += fmt.Sprintf("\n  pod %s: %s: %s", p.Name, cond.Reason, cond.Message)
				}
			}
		}
		var nodeList corev1.NodeList
		if err := c.List(ctx, &nodeList); err == nil {
			for _, n := range nodeList.Items {
				state += fmt.Sprintf("\n  node %s: ready %v, taints %v", n.Name, nodeReady(&n), n.Spec.Taints)
			}
		}
		return len(pods) == 3 && slices.Equal(nodes, []string{"gpu-a", "gpu-b"}) && pending == 1, state
	})
	for _, p := range pods {
		if p.Spec.NodeName != "" {
			continue
		}
		for _, cond := range p.Status.Conditions {
			if cond.Type == corev1.PodScheduled {
				t.Logf("pod %s: %s %s: %s", p.Name, cond.Status, cond.Reason, cond.Message)
				if !strings.Contains(cond.Message, "nvidia.com/gpu") {
					t.Errorf("the scheduler's reason does not name nvidia.com/gpu: %s", cond.Message)
				}
			}
		}
	}

	testbin.Eventually(t, "Apply reports 3 replicas, 2 ready (kwok runs them), 1 pending", 60*time.Second, func() (bool, string) {
		st, err := Apply(ctx, c, getModelDeployment(t, c, md.Name), Options{})
		if err != nil {
			return false, err.Error()
		}
		return st.Replicas == 3 && st.ReadyReplicas == 2 && st.PendingReplicas == 1 && st.DesiredReplicas == 3, fmt.Sprintf("%+v", st)
	})

	groups := CapacityOptions{NodeGroups: []NodeGroup{
		{Name: "gpu-h100", GPUType: h100, GPUsPerNode: 1},
		{Name: "not-in-status", GPUType: "NVIDIA-A100-SXM4-80GB", GPUsPerNode: 8},
	}}
	want := v1alpha1.GPUCapacity{Type: h100, Allocatable: 2, Free: 0, Pending: 1}

	t.Run("without a Cluster Autoscaler", func(t *testing.T) {
		capacity, err := MeasureCapacity(ctx, c, groups)
		if err != nil {
			t.Fatal(err)
		}
		if len(capacity.GPUs) != 1 || capacity.GPUs[0] != want {
			t.Errorf("GPUs %+v, want [%+v]", capacity.GPUs, want)
		}
		// Three nodes of 8 CPUs and 32Gi; two pods of 1 CPU and 1Gi on them.
		for _, q := range []struct {
			name      string
			got, want resource.Quantity
		}{
			{"cpu", capacity.CPU, resource.MustParse("24")},
			{"free cpu", capacity.FreeCPU, resource.MustParse("22")},
			{"memory", capacity.Memory, resource.MustParse("96Gi")},
			{"free memory", capacity.FreeMemory, resource.MustParse("94Gi")},
		} {
			if q.got.Cmp(q.want) != 0 {
				t.Errorf("%s %s, want %s", q.name, &q.got, &q.want)
			}
		}
	})

	status := &corev1.ConfigMap{
		ObjectMeta: metav1.ObjectMeta{Namespace: "kube-system", Name: "cluster-autoscaler-status"},
		Data: map[string]string{"status": `time: 2026-01-01 00:00:00 +0000 UTC
autoscalerStatus: Running
clusterWide:
  health:
    status: Healthy
nodeGroups:
- name: gpu-h100
  health:
    status: Healthy
    nodeCounts:
      registered:
        total: 2
        ready: 2
    cloudProviderTarget: 2
    minSize: 0
    maxSize: 5
  scaleUp:
    status: InProgress
- name: cpu-pool
  health:
    status: Healthy
    cloudProviderTarget: 1
    minSize: 1
    maxSize: 20
`},
	}
	if err := c.Create(ctx, status); err != nil {
		t.Fatal(err)
	}
	want.Addable = 3

	t.Run("with the Cluster Autoscaler's YAML status", func(t *testing.T) {
		capacity, err := MeasureCapacity(ctx, c, groups)
		if err != nil {
			t.Fatal(err)
		}
		if len(capacity.GPUs) != 1 || capacity.GPUs[0] != want {
			t.Errorf("GPUs %+v, want [%+v]", capacity.GPUs, want)
		}
	})

	t.Run("with the Cluster Autoscaler's text status", func(t *testing.T) {
		status.Data["status"] = `Cluster-autoscaler status at 2023-11-24 04:28:19.546750398 +0000 UTC:
Cluster-wide:
  Health:      Healthy (ready=3 unready=0 (resourceUnready=0) notStarted=0 longNotStarted=0 registered=3 longUnregistered=0)
NodeGroups:
  Name:        gpu-h100
  Health:      Healthy (ready=2 unready=0 (resourceUnready=0) notStarted=0 longNotStarted=0 registered=2 longUnregistered=0 cloudProviderTarget=2 (minSize=0, maxSize=5))
               LastProbeTime:      2023-11-24 04:28:19.408724799 +0000 UTC m=+48988.192673876
  ScaleUp:     NoActivity (ready=2 cloudProviderTarget=2)
`
		if err := c.Update(ctx, status); err != nil {
			t.Fatal(err)
		}
		capacity, err := MeasureCapacity(ctx, c, groups)
		if err != nil {
			t.Fatal(err)
		}
		if len(capacity.GPUs) != 1 || capacity.GPUs[0] != want {
			t.Errorf("GPUs %+v, want [%+v]", capacity.GPUs, want)
		}
	})

	t.Run("a node group with room but no configured GPUs adds none", func(t *testing.T) {
		capacity, err := MeasureCapacity(ctx, c, CapacityOptions{NodeGroups: []NodeGroup{{Name: "gpu-h100", GPUType: h100}}})
		if err != nil {
			t.Fatal(err)
		}
		if capacity.GPUs[0].Addable != 0 {
			t.Errorf("addable %d, want 0", capacity.GPUs[0].Addable)
		}
	})

	t.Run("a malformed status is an error naming the ConfigMap", func(t *testing.T) {
		status.Data["status"] = "nodeGroups: [{name: gpu-h100, health: {status: Healthy}}]"
		if err := c.Update(ctx, status); err != nil {
			t.Fatal(err)
		}
		_, err := MeasureCapacity(ctx, c, groups)
		if err == nil || !strings.Contains(err.Error(), "kube-system/cluster-autoscaler-status") {
			t.Fatalf("error %v, want one naming kube-system/cluster-autoscaler-status", err)
		}
		t.Log(err)
	})

	t.Run("deleting the ModelDeployment collects its objects", func(t *testing.T) {
		if err := c.Delete(ctx, getModelDeployment(t, c, md.Name)); err != nil {
			t.Fatal(err)
		}
		key := client.ObjectKeyFromObject(md)
		testbin.Eventually(t, "the garbage collector deletes the Deployment, Service and HPA", 60*time.Second, func() (bool, string) {
			var left []string
			for _, obj := range []client.Object{&appsv1.Deployment{}, &corev1.Service{}, &autoscalingv2.HorizontalPodAutoscaler{}} {
				err := c.Get(ctx, key, obj)
				if err == nil {
					left = append(left, fmt.Sprintf("%T", obj))
				} else if !apierrors.IsNotFound(err) {
					return false, err.Error()
				}
			}
			return len(left) == 0, fmt.Sprintf("still there: %v", left)
		})
	})
}
