package karpenter

import (
	"context"
	"fmt"
	"testing"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"meridian.dev/meridian/agent/kube"
	"meridian.dev/meridian/crds/v1alpha1"
)

// The warm buffer with a real node autoscaler and the real scheduler: a
// GPU model with one replica and a warm buffer of one gets two nodes from
// Karpenter, one for the replica and one held by the placeholder, and the
// capacity report counts the held GPU as free. When the model grows to two
// replicas, the new replica preempts the placeholder and runs on its node
// without waiting for Karpenter; the placeholder, pending now, asks for
// the next node (here the NodePool's limit of two GPUs is spent, so it
// waits, and the capacity report does not count it as pending demand).
func TestWarmBufferHoldsANodeForTheNextReplica(t *testing.T) {
	cp, _ := startCluster(t, Options{})
	c := cp.Client
	ctx := context.Background()

	md := &v1alpha1.ModelDeployment{
		ObjectMeta: metav1.ObjectMeta{Name: "llm", Namespace: "default"},
		Spec: v1alpha1.ModelDeploymentSpec{
			Model: v1alpha1.ModelSource{Name: "sentiment"},
			Resources: v1alpha1.Resources{CPU: resource.MustParse("1"), Memory: resource.MustParse("1Gi"),
				GPU: &v1alpha1.GPURequirement{Count: 1, Type: h100}},
			Autoscaling: v1alpha1.Autoscaling{MinReplicas: ptr.To[int32](1), MaxReplicas: 2},
			WarmBuffer:  1,
		},
	}
	if err := c.Create(ctx, md); err != nil {
		t.Fatal(err)
	}
	apply := func() kube.Status {
		t.Helper()
		if err := c.Get(ctx, client.ObjectKeyFromObject(md), md); err != nil {
			t.Fatal(err)
		}
		st, err := kube.Apply(ctx, c, md, kube.Options{Image: "meridian:test", PlaceholderImage: "pause:test"})
		if err != nil {
			t.Fatal(err)
		}
		return st
	}
	pods := func() (replicas, placeholders []corev1.Pod) {
		var l corev1.PodList
		if err := c.List(ctx, &l, client.InNamespace("default")); err != nil {
			t.Fatal(err)
		}
		for _, p := range l.Items {
			if !p.DeletionTimestamp.IsZero() {
				continue
			}
			switch p.Labels[kube.NameLabel] {
			case kube.NameValue:
				replicas = append(replicas, p)
			case kube.WarmBufferNameValue:
				placeholders = append(placeholders, p)
			}
		}
		return replicas, placeholders
	}
	running := func(ps []corev1.Pod) (n int, nodes []string) {
		for _, p := range ps {
			if p.Spec.NodeName != "" && p.Status.Phase == corev1.PodRunning {
				n++
				nodes = append(nodes, p.Spec.NodeName)
			}
		}
		return n, nodes
	}
	claims := func() int {
		s, err := observe(ctx, c, "none")
		if err != nil {
			t.Fatal(err)
		}
		return len(s.claims)
	}

	var st kube.Status
	wait(t, "the replica and the placeholder each Running on a node Karpenter added", func() (bool, string) {
		st = apply()
		r, p := pods()
		nr, rn := running(r)
		np, pn := running(p)
		return nr == 1 && np == 1 && st.WarmBuffer == 1 && rn[0] != pn[0],
			fmt.Sprintf("replicas running %d %v, placeholders running %d %v, status warm buffer %d, claims %d", nr, rn, np, pn, st.WarmBuffer, claims())
	})
	_, p := pods()
	held := p[0].Spec.NodeName
	if p[0].Spec.PriorityClassName != kube.WarmBufferPriorityClass || ptr.Deref(p[0].Spec.Priority, 0) != kube.WarmBufferPriority {
		t.Errorf("placeholder %s priority class %q (%v), want %s (%d)", p[0].Name, p[0].Spec.PriorityClassName, p[0].Spec.Priority, kube.WarmBufferPriorityClass, kube.WarmBufferPriority)
	}
	if q := p[0].Spec.Containers[0].Resources.Limits[kube.GPUResource]; q.Value() != 1 {
		t.Errorf("placeholder asks for %s GPUs, want a replica's 1", &q)
	}
	wait(t, "the capacity report: the placeholder's GPU counts as free", func() (bool, string) {
		g := gpuCapacity(t, c)
		return g == v1alpha1.GPUCapacity{Type: h100, Allocatable: 2, Free: 1}, fmt.Sprintf("%+v", g)
	})
	before := claims()
	t.Logf("replica and placeholder on their own nodes; placeholder holds %s; NodeClaims %d", held, before)

	// Two replicas: the second takes the placeholder's node.
	md.Spec.Autoscaling.MinReplicas = ptr.To[int32](2)
	if err := c.Update(ctx, md); err != nil {
		t.Fatal(err)
	}
	wait(t, "the second replica Running on the node the placeholder held", func() (bool, string) {
		apply()
		r, p := pods()
		nr, rn := running(r)
		np, _ := running(p)
		return nr == 2 && np == 0 && len(p) == 1 && (rn[0] == held || rn[1] == held),
			fmt.Sprintf("replicas running %d on %v (held: %s), placeholders %d running %d", nr, rn, held, len(p), np)
	})
	if after := claims(); after != before {
		t.Errorf("NodeClaims %d → %d: the replica should not have waited for a new node", before, after)
	}
	g := gpuCapacity(t, c)
	if g.Pending != 0 || g.Free != 0 || g.Allocatable != 2 {
		t.Errorf("capacity %+v: want both GPUs used by replicas and the pending placeholder not counted as demand", g)
	}

	// A warm buffer of 0 removes the placeholders.
	md.Spec.WarmBuffer = 0
	if err := c.Update(ctx, md); err != nil {
		t.Fatal(err)
	}
	wait(t, "the placeholders gone", func() (bool, string) {
		apply()
		_, p := pods()
		return len(p) == 0, fmt.Sprintf("%d placeholders", len(p))
	})
}
