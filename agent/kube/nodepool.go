package kube

import (
	"context"
	"encoding/json"
	"fmt"
	"sort"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"sigs.k8s.io/controller-runtime/pkg/client"
)

// Karpenter's API (karpenter.sh/v1), read as unstructured objects: the agent
// has no compile-time dependency on Karpenter.
var (
	NodePoolListGVK  = schema.GroupVersionKind{Group: "karpenter.sh", Version: "v1", Kind: "NodePoolList"}
	NodeClaimListGVK = schema.GroupVersionKind{Group: "karpenter.sh", Version: "v1", Kind: "NodeClaimList"}
)

// KarpenterNodePoolLabel names the NodePool of a NodeClaim (and of its node).
const KarpenterNodePoolLabel = "karpenter.sh/nodepool"

// KarpenterResourceNodes is the resource a NodePool's limits and status
// count its nodes in.
const KarpenterResourceNodes corev1.ResourceName = "nodes"

// NodePool is what the agent reads of one Karpenter NodePool.
type NodePool struct {
	Name string
	// GPUType is the nvidia.com/gpu.product of its nodes: the label its
	// template gives them, else the one value its requirements allow, else
	// UnknownGPUProduct.
	GPUType string
	// Ready is its Ready condition: Karpenter launches nothing for a
	// NodePool that is not Ready (e.g. its node class is missing).
	Ready bool
	// Limits is spec.limits: what all its nodes together may hold; a
	// resource without a limit is unbounded.
	Limits corev1.ResourceList
	// Used is status.resources: what its nodes, launched or launching,
	// hold now, as Karpenter counts it.
	Used corev1.ResourceList
}

// Addable is what the NodePool may still add before its limits stop it:
// each limited resource's limit minus its use, at least zero. Unlimited
// resources are absent.
func (p NodePool) Addable() corev1.ResourceList {
	out := corev1.ResourceList{}
	for name, limit := range p.Limits {
		left := limit.DeepCopy()
		if used, ok := p.Used[name]; ok {
			left.Sub(used)
		}
		if left.Sign() < 0 {
			left = *resource.NewQuantity(0, limit.Format)
		}
		out[name] = left
	}
	return out
}

// AddableGPUs is how many nvidia.com/gpu the NodePool can still add: none
// unless it is Ready and limits nvidia.com/gpu (without that limit
// Karpenter bounds it by nothing the API shows), and none once any of its
// cpu, memory or nodes limits is used up, since every node needs some of
// each.
func (p NodePool) AddableGPUs() int32 {
	if !p.Ready {
		return 0
	}
	addable := p.Addable()
	gpus, ok := addable[GPUResource]
	if !ok {
		return 0
	}
	for _, r := range []corev1.ResourceName{corev1.ResourceCPU, corev1.ResourceMemory, KarpenterResourceNodes} {
		if q, ok := addable[r]; ok && q.Sign() <= 0 {
			return 0
		}
	}
	return int32(min(gpus.Value(), 1<<30))
}

// NodeClaim is what the agent reads of one Karpenter NodeClaim: a node
// Karpenter has asked its cloud provider for.
type NodeClaim struct {
	Name string
	// NodePool it belongs to.
	NodePool string
	// NodeName is the node it became, once registered.
	NodeName string
	// GPUType is its nvidia.com/gpu.product label, else its NodePool's.
	GPUType string
	// GPUs is the nvidia.com/gpu of the machine launched (status.capacity),
	// or what it was asked for before launch (spec.resources.requests).
	GPUs int32
	// Ready is its Ready condition: launched, registered and initialized.
	Ready bool
	// Deleting is set once it is being deleted.
	Deleting bool
}

// Karpenter is the NodePools and NodeClaims of a cluster's Karpenter.
type Karpenter struct {
	NodePools  []NodePool
	NodeClaims []NodeClaim
}

// ReadKarpenter lists Karpenter's NodePools and NodeClaims, sorted by name.
// It returns nil, and no error, where Karpenter's CRDs are not installed.
// The agent needs list on nodepools and nodeclaims (karpenter.sh) for it.
func ReadKarpenter(ctx context.Context, c client.Reader) (*Karpenter, error) {
	var pools unstructured.UnstructuredList
	pools.SetGroupVersionKind(NodePoolListGVK)
	if err := c.List(ctx, &pools); err != nil {
		if meta.IsNoMatchError(err) || apierrors.IsNotFound(err) {
			return nil, nil
		}
		return nil, fmt.Errorf("listing Karpenter NodePools (karpenter.sh/v1): %w", err)
	}
	var claims unstructured.UnstructuredList
	claims.SetGroupVersionKind(NodeClaimListGVK)
	if err := c.List(ctx, &claims); err != nil {
		if meta.IsNoMatchError(err) || apierrors.IsNotFound(err) {
			return nil, nil
		}
		return nil, fmt.Errorf("listing Karpenter NodeClaims (karpenter.sh/v1): %w", err)
	}

	k := &Karpenter{}
	products := map[string]string{}
	for _, u := range pools.Items {
		var np struct {
			Spec struct {
				Template struct {
					Metadata struct {
						Labels map[string]string `json:"labels"`
					} `json:"metadata"`
					Spec struct {
						Requirements []corev1.NodeSelectorRequirement `json:"requirements"`
					} `json:"spec"`
				} `json:"template"`
				Limits corev1.ResourceList `json:"limits"`
			} `json:"spec"`
			Status struct {
				Resources  corev1.ResourceList `json:"resources"`
				Conditions []metav1.Condition  `json:"conditions"`
			} `json:"status"`
		}
		if err := fromUnstructured(&u, &np); err != nil {
			return nil, err
		}
		product := np.Spec.Template.Metadata.Labels[GPUProductLabel]
		if product == "" {
			product = requiredProduct(np.Spec.Template.Spec.Requirements)
		}
		p := NodePool{
			Name:    u.GetName(),
			GPUType: product,
			Ready:   meta.IsStatusConditionTrue(np.Status.Conditions, "Ready"),
			Limits:  np.Spec.Limits,
			Used:    np.Status.Resources,
		}
		products[p.Name] = p.GPUType
		k.NodePools = append(k.NodePools, p)
	}
	for _, u := range claims.Items {
		var nc struct {
			Spec struct {
				Resources struct {
					Requests corev1.ResourceList `json:"requests"`
				} `json:"resources"`
			} `json:"spec"`
			Status struct {
				NodeName   string              `json:"nodeName"`
				Capacity   corev1.ResourceList `json:"capacity"`
				Conditions []metav1.Condition  `json:"conditions"`
			} `json:"status"`
		}
		if err := fromUnstructured(&u, &nc); err != nil {
			return nil, err
		}
		pool := u.GetLabels()[KarpenterNodePoolLabel]
		product := u.GetLabels()[GPUProductLabel]
		if product == "" {
			product = products[pool]
		}
		if product == "" {
			product = UnknownGPUProduct
		}
		gpus, ok := nc.Status.Capacity[GPUResource]
		if !ok {
			gpus = nc.Spec.Resources.Requests[GPUResource]
		}
		k.NodeClaims = append(k.NodeClaims, NodeClaim{
			Name:     u.GetName(),
			NodePool: pool,
			NodeName: nc.Status.NodeName,
			GPUType:  product,
			GPUs:     int32(min(gpus.Value(), 1<<30)),
			Ready:    meta.IsStatusConditionTrue(nc.Status.Conditions, "Ready"),
			Deleting: u.GetDeletionTimestamp() != nil,
		})
	}
	sort.Slice(k.NodePools, func(i, j int) bool { return k.NodePools[i].Name < k.NodePools[j].Name })
	sort.Slice(k.NodeClaims, func(i, j int) bool { return k.NodeClaims[i].Name < k.NodeClaims[j].Name })
	return k, nil
}

// requiredProduct is the one nvidia.com/gpu.product that NodePool
// requirements allow, else UnknownGPUProduct.
func requiredProduct(reqs []corev1.NodeSelectorRequirement) string {
	for _, r := range reqs {
		if r.Key == GPUProductLabel && r.Operator == corev1.NodeSelectorOpIn && len(r.Values) == 1 {
			return r.Values[0]
		}
	}
	return UnknownGPUProduct
}

// fromUnstructured decodes the parts of u that into declares; quantities
// may be strings or numbers there.
func fromUnstructured(u *unstructured.Unstructured, into any) error {
	b, err := json.Marshal(u.Object)
	if err != nil {
		return err
	}
	if err := json.Unmarshal(b, into); err != nil {
		return fmt.Errorf("reading %s %s: %w", u.GetKind(), u.GetName(), err)
	}
	return nil
}
