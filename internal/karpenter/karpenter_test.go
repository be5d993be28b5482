package karpenter

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/go-logr/logr"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"
	ctrllog "sigs.k8s.io/controller-runtime/pkg/log"

	"meridian.dev/meridian/agent/kube"
	"meridian.dev/meridian/crds/v1alpha1"
	"meridian.dev/meridian/internal/controlplane"
)

const h100 = "NVIDIA-H100-80GB-HBM3"

// envtest logs through controller-runtime's logger; these tests read none of it.
func init() { ctrllog.SetLogger(logr.Discard()) }

// wait polls cond every half second for up to three minutes: the
// controllers, Karpenter's batching and kwok take their time on a loaded
// machine, and these tests assert outcomes, not speed.
func wait(t *testing.T, what string, cond func() (bool, string)) {
	t.Helper()
	const limit = 3 * time.Minute
	deadline := time.Now().Add(limit)
	for {
		ok, state := cond()
		if ok {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: not within %s; last state: %s", what, limit, state)
		}
		time.Sleep(500 * time.Millisecond)
	}
}

// startCluster starts a control plane with the controllers Karpenter's
// nodes need, Karpenter beside it, and a NodePool of H100 nodes (one GPU
// each, the cheapest type that fits) limited to two GPUs.
func startCluster(t *testing.T, opts Options) (*controlplane.ControlPlane, NodePool) {
	cp := controlplane.ForTest(t, controlplane.Options{ControllerManager: true, Scheduler: true, NodeLifecycle: true})
	k := ForTest(t, cp, opts)
	pool := NodePool{
		Name:   "gpu-h100",
		Labels: map[string]string{controlplane.GPUProductLabel: h100, "meridian.dev/pool": "inference"},
		Taints: []corev1.Taint{{Key: string(controlplane.GPUResource), Effect: corev1.TaintEffectNoSchedule}},
		Limits: corev1.ResourceList{controlplane.GPUResource: resource.MustParse("2")},
	}
	if err := k.CreateNodePool(context.Background(), pool); err != nil {
		t.Fatal(err)
	}
	return cp, pool
}

// gpuDeployment is a Deployment of pods that each ask for one H100, as the
// agent's GPU replicas do: a node selector on the product and a toleration
// of the nvidia.com/gpu taint.
func gpuDeployment(name string, replicas int32) *appsv1.Deployment {
	labels := map[string]string{"app": name}
	return &appsv1.Deployment{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: "default"},
		Spec: appsv1.DeploymentSpec{
			Replicas: ptr.To(replicas),
			Selector: &metav1.LabelSelector{MatchLabels: labels},
			Template: corev1.PodTemplateSpec{
				ObjectMeta: metav1.ObjectMeta{Labels: labels},
				Spec: corev1.PodSpec{
					NodeSelector: map[string]string{controlplane.GPUProductLabel: h100},
					Tolerations:  []corev1.Toleration{{Key: string(controlplane.GPUResource), Operator: corev1.TolerationOpExists, Effect: corev1.TaintEffectNoSchedule}},
					Containers: []corev1.Container{{
						Name: "server", Image: "meridian:test",
						Resources: corev1.ResourceRequirements{
							Requests: corev1.ResourceList{corev1.ResourceCPU: resource.MustParse("1"), corev1.ResourceMemory: resource.MustParse("1Gi"), controlplane.GPUResource: resource.MustParse("1")},
							Limits:   corev1.ResourceList{controlplane.GPUResource: resource.MustParse("1")},
						},
					}},
				},
			},
		},
	}
}

// state is what the tests look at: the Deployment's pods, the nodes and
// Karpenter's NodeClaims.
type state struct {
	running, pending []corev1.Pod // running: bound and Running
	nodes            []corev1.Node
	claims           []unstructured.Unstructured
}

func observe(ctx context.Context, c client.Client, app string) (state, error) {
	var s state
	var pods corev1.PodList
	if err := c.List(ctx, &pods, client.InNamespace("default"), client.MatchingLabels{"app": app}); err != nil {
		return s, err
	}
	for _, p := range pods.Items {
		switch {
		case p.Spec.NodeName != "" && p.Status.Phase == corev1.PodRunning:
			s.running = append(s.running, p)
		case p.Spec.NodeName == "":
			s.pending = append(s.pending, p)
		}
	}
	var nodes corev1.NodeList
	if err := c.List(ctx, &nodes); err != nil {
		return s, err
	}
	s.nodes = nodes.Items
	var claims unstructured.UnstructuredList
	claims.SetGroupVersionKind(NodeClaimGVK)
	if err := c.List(ctx, &claims); err != nil {
		return s, err
	}
	s.claims = claims.Items
	return s, nil
}

func (s state) String() string {
	var b strings.Builder
	fmt.Fprintf(&b, "%d pods running, %d pending", len(s.running), len(s.pending))
	for _, p := range s.pending {
		for _, c := range p.Status.Conditions {
			if c.Type == corev1.PodScheduled {
				fmt.Fprintf(&b, "\n  pending pod %s: %s %s", p.Name, c.Reason, c.Message)
			}
		}
	}
	for _, n := range s.nodes {
		fmt.Fprintf(&b, "\n  node %s: ready %v, taints %v, gpus %s", n.Name, nodeReady(&n), n.Spec.Taints, ptr.To(n.Status.Allocatable[controlplane.GPUResource]))
	}
	for _, c := range s.claims {
		conds, _, _ := unstructured.NestedSlice(c.Object, "status", "conditions")
		var cs []string
		for _, x := range conds {
			m, _ := x.(map[string]any)
			cs = append(cs, fmt.Sprintf("%v=%v", m["type"], m["status"]))
		}
		fmt.Fprintf(&b, "\n  nodeclaim %s: %v", c.GetName(), cs)
	}
	return b.String()
}

func nodeReady(n *corev1.Node) bool {
	for _, c := range n.Status.Conditions {
		if c.Type == corev1.NodeReady {
			return c.Status == corev1.ConditionTrue
		}
	}
	return false
}

// gpuCapacity is the agent's capacity report for H100s.
func gpuCapacity(t *testing.T, c client.Client) v1alpha1.GPUCapacity {
	t.Helper()
	capacity, err := kube.MeasureCapacity(context.Background(), c, kube.CapacityOptions{})
	if err != nil {
		t.Fatal(err)
	}
	for _, g := range capacity.GPUs {
		if g.Type == h100 {
			return g
		}
		t.Errorf("capacity reports GPUs of type %q: %+v", g.Type, g)
	}
	return v1alpha1.GPUCapacity{Type: h100}
}

// Pods that ask for a GPU where no node has one stay Pending until the real
// Karpenter adds a node for them: it creates a NodeClaim from the NodePool,
// the kwok provider launches it as a node of the GPU instance type, kwok
// makes it Ready and runs the pod. The agent's capacity report follows
// along: before, the NodePool's limit is addable; while the machine boots,
// its GPU is provisioning; after, it is allocatable and used.
func TestKarpenterAddsAGPUNodeForPendingPods(t *testing.T) {
	// The machine takes 15s to register: long enough to see it provisioning.
	cp, pool := startCluster(t, Options{NodeRegistrationDelay: 15 * time.Second})
	c := cp.Client
	ctx := context.Background()

	wait(t, "the capacity report offers the NodePool's limit", func() (bool, string) {
		g := gpuCapacity(t, c)
		return g == v1alpha1.GPUCapacity{Type: h100, Addable: 2}, fmt.Sprintf("%+v", g)
	})

	if err := c.Create(ctx, gpuDeployment("infer", 1)); err != nil {
		t.Fatal(err)
	}
	var s state
	wait(t, "a NodeClaim for the pending pod, launched but not Ready, reported as provisioning", func() (bool, string) {
		var err error
		if s, err = observe(ctx, c, "infer"); err != nil {
			return false, err.Error()
		}
		g := gpuCapacity(t, c)
		return len(s.claims) == 1 && len(s.pending) == 1 && g.Provisioning == 1 && g.Allocatable == 0,
			fmt.Sprintf("capacity %+v; %s", g, s)
	})
	claim := s.claims[0]
	if got := claim.GetLabels()[NodePoolLabel]; got != pool.Name {
		t.Errorf("NodeClaim %s has nodepool label %q, want %q", claim.GetName(), got, pool.Name)
	}
	if q, _, _ := unstructured.NestedString(claim.Object, "status", "capacity", string(controlplane.GPUResource)); q != "1" {
		t.Errorf("NodeClaim %s capacity nvidia.com/gpu %q, want 1 (the one-GPU type is the cheapest that fits)", claim.GetName(), q)
	}

	wait(t, "the pod Running on the node Karpenter added", func() (bool, string) {
		var err error
		if s, err = observe(ctx, c, "infer"); err != nil {
			return false, err.Error()
		}
		return len(s.running) == 1 && len(s.pending) == 0 && len(s.nodes) == 1 && len(s.claims) == 1, s.String()
	})
	node := s.nodes[0]
	if s.running[0].Spec.NodeName != node.Name {
		t.Errorf("pod on %s, want the added node %s", s.running[0].Spec.NodeName, node.Name)
	}
	if got, _, _ := unstructured.NestedString(claim.Object, "status", "nodeName"); got != "" && got != node.Name {
		t.Errorf("NodeClaim %s names node %s, want %s", claim.GetName(), got, node.Name)
	}
	if q := node.Status.Allocatable[controlplane.GPUResource]; q.Value() != 1 {
		t.Errorf("node %s allocatable nvidia.com/gpu %s, want 1", node.Name, &q)
	}
	for k, want := range map[string]string{
		controlplane.GPUProductLabel:   h100,
		"meridian.dev/pool":            "inference",
		NodePoolLabel:                  pool.Name,
		corev1.LabelInstanceTypeStable: "gpu-1x",
		corev1.LabelTopologyZone:       Zone,
		CapacityTypeLabel:              "on-demand",
	} {
		if got := node.Labels[k]; got != want {
			t.Errorf("node %s label %s=%q, want %q", node.Name, k, got, want)
		}
	}
	if !slices.ContainsFunc(node.Spec.Taints, func(tt corev1.Taint) bool {
		return tt.Key == string(controlplane.GPUResource) && tt.Effect == corev1.TaintEffectNoSchedule
	}) {
		t.Errorf("node %s lacks the NodePool's taint nvidia.com/gpu:NoSchedule: %v", node.Name, node.Spec.Taints)
	}
	t.Logf("Karpenter added node %s for the pending pod", node.Name)

	wait(t, "the capacity report: one GPU allocatable and used, one still addable", func() (bool, string) {
		g := gpuCapacity(t, c)
		return g == v1alpha1.GPUCapacity{Type: h100, Allocatable: 1, Free: 0, Addable: 1}, fmt.Sprintf("%+v", g)
	})
}

// A NodePool's limits cap what Karpenter adds: three pods of one GPU each
// against a limit of two GPUs get two nodes, and the third pod stays
// Pending; Karpenter considers it and declines (with the limit spent, no
// instance type of the NodePool fits in what is left). Raising the limit to
// three lets Karpenter add the third node: the limit was what held it.
func TestKarpenterNodePoolLimitCapsScaleUp(t *testing.T) {
	cp, pool := startCluster(t, Options{})
	c := cp.Client
	ctx := context.Background()

	if err := c.Create(ctx, gpuDeployment("infer", 3)); err != nil {
		t.Fatal(err)
	}
	var s state
	wait(t, "two pods Running on two added nodes, one Pending", func() (bool, string) {
		var err error
		if s, err = observe(ctx, c, "infer"); err != nil {
			return false, err.Error()
		}
		return len(s.running) == 2 && len(s.pending) == 1 && len(s.nodes) == 2, s.String()
	})
	pending := s.pending[0]
	wait(t, "Karpenter's event on the pending pod: it cannot schedule it", func() (bool, string) {
		var events corev1.EventList
		if err := c.List(ctx, &events, client.InNamespace("default")); err != nil {
			return false, err.Error()
		}
		var seen []string
		for _, e := range events.Items {
			if e.InvolvedObject.Name != pending.Name {
				continue
			}
			seen = append(seen, e.Source.Component+"/"+e.ReportingController+": "+e.Message)
			if e.Source.Component == "karpenter" && strings.HasPrefix(e.Message, "Failed to schedule pod") {
				return true, ""
			}
		}
		return false, fmt.Sprintf("events of %s: %q", pending.Name, seen)
	})

	// Karpenter batches pending pods for up to 10s and retries them; give it
	// several rounds, and it must still add nothing.
	deadline := time.Now().Add(45 * time.Second)
	for time.Now().Before(deadline) {
		var err error
		if s, err = observe(ctx, c, "infer"); err != nil {
			t.Fatal(err)
		}
		if len(s.claims) != 2 || len(s.nodes) != 2 || len(s.pending) != 1 {
			t.Fatalf("past the NodePool's limit of 2 GPUs: %s", s)
		}
		time.Sleep(time.Second)
	}
	var gpus int64
	for _, n := range s.nodes {
		q := n.Status.Allocatable[controlplane.GPUResource]
		gpus += q.Value()
	}
	if gpus != 2 {
		t.Errorf("the added nodes offer %d GPUs, want 2 (the limit)", gpus)
	}

	var np unstructured.Unstructured
	np.SetGroupVersionKind(NodePoolGVK)
	if err := c.Get(ctx, client.ObjectKey{Name: pool.Name}, &np); err != nil {
		t.Fatal(err)
	}
	if used, _, _ := unstructured.NestedString(np.Object, "status", "resources", string(controlplane.GPUResource)); used != "2" {
		t.Errorf("NodePool %s status.resources nvidia.com/gpu %q, want 2", pool.Name, used)
	}
	var conds []metav1.Condition
	if raw, ok, _ := unstructured.NestedSlice(np.Object, "status", "conditions"); ok {
		for _, x := range raw {
			m, _ := x.(map[string]any)
			conds = append(conds, metav1.Condition{Type: fmt.Sprint(m["type"]), Status: metav1.ConditionStatus(fmt.Sprint(m["status"]))})
		}
	}
	if !meta.IsStatusConditionTrue(conds, "Ready") {
		t.Errorf("NodePool %s not Ready at its limit: %v", pool.Name, conds)
	}

	wait(t, "the capacity report: two GPUs allocatable and used, one pending, none addable", func() (bool, string) {
		g := gpuCapacity(t, c)
		return g == v1alpha1.GPUCapacity{Type: h100, Allocatable: 2, Free: 0, Pending: 1}, fmt.Sprintf("%+v", g)
	})

	if err := c.Patch(ctx, &np, client.RawPatch(types.MergePatchType,
		[]byte(`{"spec":{"limits":{"nvidia.com/gpu":"3"}}}`))); err != nil {
		t.Fatal(err)
	}
	wait(t, "with the limit raised to three, a third node and all three pods Running", func() (bool, string) {
		var err error
		if s, err = observe(ctx, c, "infer"); err != nil {
			return false, err.Error()
		}
		return len(s.running) == 3 && len(s.pending) == 0 && len(s.nodes) == 3 && len(s.claims) == 3, s.String()
	})
	wait(t, "the capacity report: three GPUs allocatable and used, none pending or addable", func() (bool, string) {
		g := gpuCapacity(t, c)
		return g == v1alpha1.GPUCapacity{Type: h100, Allocatable: 3}, fmt.Sprintf("%+v", g)
	})
}
