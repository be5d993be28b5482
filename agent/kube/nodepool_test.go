package kube

import (
	"context"
	"fmt"
	"path/filepath"
	"slices"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/envtest"

	"meridian.dev/meridian/crds/v1alpha1"
	"meridian.dev/meridian/internal/controlplane"
	"meridian.dev/meridian/internal/karpenter"
)

func TestNodePoolAddableGPUs(t *testing.T) {
	q := resource.MustParse
	for _, tc := range []struct {
		name string
		pool NodePool
		want int32
	}{
		{"limit minus use", NodePool{Ready: true,
			Limits: corev1.ResourceList{GPUResource: q("8"), corev1.ResourceCPU: q("1000")},
			Used:   corev1.ResourceList{GPUResource: q("3"), corev1.ResourceCPU: q("24")}}, 5},
		{"nothing used yet", NodePool{Ready: true, Limits: corev1.ResourceList{GPUResource: q("4")}}, 4},
		{"over its limit", NodePool{Ready: true,
			Limits: corev1.ResourceList{GPUResource: q("2")}, Used: corev1.ResourceList{GPUResource: q("4")}}, 0},
		{"no GPU limit", NodePool{Ready: true, Limits: corev1.ResourceList{corev1.ResourceCPU: q("100")}}, 0},
		{"not Ready", NodePool{Limits: corev1.ResourceList{GPUResource: q("4")}}, 0},
		{"node limit reached", NodePool{Ready: true,
			Limits: corev1.ResourceList{GPUResource: q("8"), KarpenterResourceNodes: q("2")},
			Used:   corev1.ResourceList{GPUResource: q("2"), KarpenterResourceNodes: q("2")}}, 0},
		{"memory used up", NodePool{Ready: true,
			Limits: corev1.ResourceList{GPUResource: q("8"), corev1.ResourceMemory: q("512Gi")},
			Used:   corev1.ResourceList{GPUResource: q("4"), corev1.ResourceMemory: q("512Gi")}}, 0},
		{"cpu left", NodePool{Ready: true,
			Limits: corev1.ResourceList{GPUResource: q("8"), corev1.ResourceCPU: q("64")},
			Used:   corev1.ResourceList{GPUResource: q("4"), corev1.ResourceCPU: q("32")}}, 4},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := tc.pool.AddableGPUs(); got != tc.want {
				t.Errorf("AddableGPUs() = %d, want %d", got, tc.want)
			}
		})
	}
}

// Karpenter's NodePools and NodeClaims on a real API server with
// Karpenter's own CRDs (from the pinned module), as the agent reads them:
// what each NodePool can still add and which NodeClaims are still coming.
// Karpenter itself runs in internal/karpenter's tests; here the objects are
// written by hand, to cover what a running Karpenter rarely shows at once.
func TestMeasureCapacityReadsKarpenter(t *testing.T) {
	t.Parallel()
	cp := controlplane.ForTest(t, controlplane.Options{})
	c := cp.Client
	ctx := context.Background()

	// Before Karpenter is installed there is nothing of it to read.
	if k, err := ReadKarpenter(ctx, c); err != nil || k != nil {
		t.Fatalf("ReadKarpenter without Karpenter's CRDs = %+v, %v; want nil, nil", k, err)
	}
	if _, err := MeasureCapacity(ctx, c, CapacityOptions{}); err != nil {
		t.Fatalf("MeasureCapacity without Karpenter's CRDs: %v", err)
	}

	bin, err := controlplane.FindBinDir()
	if err != nil {
		t.Fatal(err)
	}
	if _, err := envtest.InstallCRDs(cp.Config, envtest.CRDInstallOptions{
		Paths: []string{filepath.Join(bin, karpenter.CRDDir)}, ErrorIfPathMissing: true,
	}); err != nil {
		t.Fatalf("installing Karpenter's CRDs (run `make controlplane`): %v", err)
	}

	const a100 = "NVIDIA-A100-SXM4-80GB"
	ready := func(status string) []any {
		return []any{map[string]any{"type": "Ready", "status": status, "reason": "Test", "message": "",
			"lastTransitionTime": "2026-01-01T00:00:00Z"}}
	}
	requirements := func(extra ...any) []any {
		return append([]any{map[string]any{"key": corev1.LabelArchStable, "operator": "In", "values": []any{"amd64"}}}, extra...)
	}
	nodeClassRef := map[string]any{"group": "karpenter.kwok.sh", "kind": "KWOKNodeClass", "name": "default"}
	pools := []struct {
		name   string
		spec   map[string]any
		status map[string]any
	}{
		// Three more H100s (a limit written as a number).
		{"h100", map[string]any{
			"template": map[string]any{
				"metadata": map[string]any{"labels": map[string]any{GPUProductLabel: h100}},
				"spec":     map[string]any{"nodeClassRef": nodeClassRef, "requirements": requirements()},
			},
			"limits": map[string]any{string(GPUResource): int64(4), "cpu": "100"},
		}, map[string]any{"resources": map[string]any{string(GPUResource): "1", "cpu": "8"}, "conditions": ready("True")}},
		// At its limit; the product from its requirements.
		{"a100", map[string]any{
			"template": map[string]any{"spec": map[string]any{"nodeClassRef": nodeClassRef, "requirements": requirements(
				map[string]any{"key": GPUProductLabel, "operator": "In", "values": []any{a100}})}},
			"limits": map[string]any{string(GPUResource): "8"},
		}, map[string]any{"resources": map[string]any{string(GPUResource): "8"}, "conditions": ready("True")}},
		// No GPU limit: nothing the agent can count on.
		{"unlimited", map[string]any{
			"template": map[string]any{"spec": map[string]any{"nodeClassRef": nodeClassRef, "requirements": requirements()}},
		}, map[string]any{"conditions": ready("True")}},
		// Not Ready: Karpenter launches nothing for it.
		{"h100-not-ready", map[string]any{
			"template": map[string]any{
				"metadata": map[string]any{"labels": map[string]any{GPUProductLabel: h100}},
				"spec":     map[string]any{"nodeClassRef": nodeClassRef, "requirements": requirements()},
			},
			"limits": map[string]any{string(GPUResource): "16"},
		}, map[string]any{"conditions": ready("False")}},
	}
	for _, p := range pools {
		u := &unstructured.Unstructured{Object: map[string]any{"spec": p.spec}}
		u.SetGroupVersionKind(karpenter.NodePoolGVK)
		u.SetName(p.name)
		createWithStatus(t, c, u, p.status)
	}

	claims := []struct {
		name, pool string
		gpus       string // status.capacity (launched), or spec.resources.requests with asked
		asked      bool
		readyState string
		deleting   bool
	}{
		{name: "h100-launching", pool: "h100", gpus: "1", readyState: "False"},
		{name: "h100-running", pool: "h100", gpus: "1", readyState: "True"},
		{name: "h100-leaving", pool: "h100", gpus: "1", readyState: "False", deleting: true},
		{name: "a100-asked", pool: "a100", gpus: "2", asked: true},
	}
	for _, nc := range claims {
		spec := map[string]any{"nodeClassRef": nodeClassRef, "requirements": requirements()}
		var status map[string]any
		if nc.asked {
			spec["resources"] = map[string]any{"requests": map[string]any{string(GPUResource): nc.gpus}}
		} else {
			status = map[string]any{"capacity": map[string]any{string(GPUResource): nc.gpus}, "conditions": ready(nc.readyState)}
		}
		u := &unstructured.Unstructured{Object: map[string]any{"spec": spec}}
		u.SetGroupVersionKind(karpenter.NodeClaimGVK)
		u.SetName(nc.name)
		u.SetLabels(map[string]string{KarpenterNodePoolLabel: nc.pool})
		if nc.deleting {
			u.SetFinalizers([]string{"meridian.dev/test"})
		}
		createWithStatus(t, c, u, status)
		if nc.deleting {
			if err := c.Delete(ctx, u); err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() {
				_ = c.Patch(context.Background(), u, client.RawPatch("application/merge-patch+json", []byte(`{"metadata":{"finalizers":null}}`)))
			})
		}
	}

	k, err := ReadKarpenter(ctx, c)
	if err != nil {
		t.Fatal(err)
	}
	if k == nil {
		t.Fatal("ReadKarpenter found no Karpenter after its CRDs were installed")
	}
	gotPools := map[string]int32{}
	for _, p := range k.NodePools {
		gotPools[p.Name+" "+p.GPUType] = p.AddableGPUs()
	}
	wantPools := map[string]int32{"h100 " + h100: 3, "a100 " + a100: 0, "unlimited " + UnknownGPUProduct: 0, "h100-not-ready " + h100: 0}
	if fmt.Sprint(gotPools) != fmt.Sprint(wantPools) {
		t.Errorf("NodePools (name product: addable GPUs) %v, want %v", gotPools, wantPools)
	}
	var gotClaims []string
	for _, nc := range k.NodeClaims {
		gotClaims = append(gotClaims, fmt.Sprintf("%s %s %s gpus=%d ready=%v deleting=%v", nc.Name, nc.NodePool, nc.GPUType, nc.GPUs, nc.Ready, nc.Deleting))
	}
	wantClaims := []string{
		"a100-asked a100 " + a100 + " gpus=2 ready=false deleting=false",
		"h100-launching h100 " + h100 + " gpus=1 ready=false deleting=false",
		"h100-leaving h100 " + h100 + " gpus=1 ready=false deleting=true",
		"h100-running h100 " + h100 + " gpus=1 ready=true deleting=false",
	}
	if !slices.Equal(gotClaims, wantClaims) {
		t.Errorf("NodeClaims\n  %q\nwant\n  %q", gotClaims, wantClaims)
	}

	capacity, err := MeasureCapacity(ctx, c, CapacityOptions{})
	if err != nil {
		t.Fatal(err)
	}
	want := []v1alpha1.GPUCapacity{
		{Type: a100, Provisioning: 2},
		{Type: h100, Addable: 3, Provisioning: 1},
	}
	if !slices.Equal(capacity.GPUs, want) {
		t.Errorf("GPUs %+v, want %+v", capacity.GPUs, want)
	}
}

// createWithStatus creates u, then writes status through the status
// subresource as Karpenter would.
func createWithStatus(t *testing.T, c client.Client, u *unstructured.Unstructured, status map[string]any) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := c.Create(ctx, u); err != nil {
		t.Fatalf("creating %s %s: %v", u.GetKind(), u.GetName(), err)
	}
	if status == nil {
		return
	}
	u.Object["status"] = status
	if err := c.Status().Update(ctx, u); err != nil {
		t.Fatalf("writing the status of %s %s: %v", u.GetKind(), u.GetName(), err)
	}
}
