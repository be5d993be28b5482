package kube

import (
	"context"
	"fmt"
	"sort"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/resource"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"meridian.dev/meridian/crds/v1alpha1"
)

// UnknownGPUProduct is the GPU type reported for GPUs on nodes without the
// nvidia.com/gpu.product label, and for pending GPU pods that ask for no
// product in particular.
const UnknownGPUProduct = "unknown"

// Where the Cluster Autoscaler writes its status by default (its flags
// --status-config-map-name and --namespace change it).
const (
	AutoscalerStatusNamespace = "kube-system"
	AutoscalerStatusName      = "cluster-autoscaler-status"
)

// CapacityOptions configure MeasureCapacity. The zero value measures nodes
// and pods and reports nothing addable.
type CapacityOptions struct {
	// NodeGroups are the Cluster Autoscaler node groups whose nodes carry
	// GPUs, from the agent's configuration: the status ConfigMap says how
	// many nodes a group may still grow by, not what the nodes hold.
	// Groups the status lists that are not configured here add nothing.
	NodeGroups []NodeGroup
	// StatusNamespace and StatusName locate the Cluster Autoscaler's status
	// ConfigMap; defaults AutoscalerStatusNamespace and
	// AutoscalerStatusName.
	StatusNamespace, StatusName string
}

// NodeGroup maps one Cluster Autoscaler node group to the GPUs each of its
// nodes carries.
type NodeGroup struct {
	// Name of the node group exactly as the Cluster Autoscaler's status
	// names it (e.g. an AWS Auto Scaling group's name).
	Name string
	// GPUType is the nvidia.com/gpu.product of its nodes; empty counts as
	// UnknownGPUProduct.
	GPUType string
	// GPUsPerNode is the nvidia.com/gpu each node offers; 0 for a group
	// without GPUs.
	GPUsPerNode int32
}

// MeasureCapacity reports what the cluster can run:
//
//   - CPU and Memory: the allocatable of nodes that are Ready and not
//     cordoned; FreeCPU and FreeMemory: that minus the requests of the
//     pods bound to those nodes that have not terminated, warm-buffer
//     placeholders left out (what they hold is free to any replica).
//   - GPUs by product (node label nvidia.com/gpu.product, UnknownGPUProduct
//     without it): Allocatable and Free as above for nvidia.com/gpu;
//     Pending, the GPUs that unschedulable pods request, by the product
//     their node selector (or required node affinity) names; Addable, what
//     the Cluster Autoscaler can still add: for each configured node
//     group, (maxSize - target size) * GPUsPerNode, from the status
//     ConfigMap. Groups the status calls Unhealthy or whose scale-up is in
//     Backoff add nothing, as the Cluster Autoscaler will not grow them
//     now. Its cluster-wide limits (--max-nodes-total, --gpu-total) are not
//     in the status and are not accounted for. Plus what Karpenter can
//     still add: for each Ready NodePool that limits nvidia.com/gpu, its
//     limit minus what its nodes hold (NodePool.AddableGPUs), under the
//     product its template gives its nodes; Provisioning, the GPUs of
//     Karpenter NodeClaims launched but not yet Ready (whose node is not a
//     Ready node counted above).
//
// A missing status ConfigMap (no Cluster Autoscaler) means nothing is
// addable; one that cannot be read as a Cluster Autoscaler status is an
// error that names it. Likewise without Karpenter's CRDs; NodePools or
// NodeClaims that cannot be listed are an error. c may be a cached reader;
// MeasureCapacity lists all nodes and pods.
func MeasureCapacity(ctx context.Context, c client.Reader, opts CapacityOptions) (v1alpha1.Capacity, error) {
	var nodes corev1.NodeList
	if err := c.List(ctx, &nodes); err != nil {
		return v1alpha1.Capacity{}, fmt.Errorf("measuring capacity: listing nodes: %w", err)
	}
	var pods corev1.PodList
	if err := c.List(ctx, &pods); err != nil {
		return v1alpha1.Capacity{}, fmt.Errorf("measuring capacity: listing pods: %w", err)
	}

	type nodeUse struct {
		product string
		alloc   corev1.ResourceList
		used    corev1.ResourceList
	}
	usable := map[string]*nodeUse{}
	for i := range nodes.Items {
		n := &nodes.Items[i]
		if n.Spec.Unschedulable || !nodeReady(n) {
			continue
		}
		product := n.Labels[GPUProductLabel]
		if product == "" {
			product = UnknownGPUProduct
		}
		usable[n.Name] = &nodeUse{product: product, alloc: n.Status.Allocatable, used: corev1.ResourceList{}}
	}

	gpus := map[string]*v1alpha1.GPUCapacity{}
	gpu := func(product string) *v1alpha1.GPUCapacity {
		g := gpus[product]
		if g == nil {
			g = &v1alpha1.GPUCapacity{Type: product}
			gpus[product] = g
		}
		return g
	}

	for i := range pods.Items {
		p := &pods.Items[i]
		if p.Status.Phase == corev1.PodSucceeded || p.Status.Phase == corev1.PodFailed || IsPlaceholder(p) {
			// A warm-buffer placeholder's room is free: any replica
			// preempts it.
			continue
		}
		if p.Spec.NodeName != "" {
			if n := usable[p.Spec.NodeName]; n != nil {
				addResources(n.used, PodRequests(p))
			}
			continue
		}
		if Unschedulable(p) {
			if q, ok := PodRequests(p)[GPUResource]; ok && q.Value() > 0 {
				gpu(podGPUProduct(p)).Pending += int32(q.Value())
			}
		}
	}

	var cpu, freeCPU, mem, freeMem int64 // millicores and bytes
	for _, n := range usable {
		cpu += n.alloc.Cpu().MilliValue()
		freeCPU += max(0, n.alloc.Cpu().MilliValue()-n.used.Cpu().MilliValue())
		mem += n.alloc.Memory().Value()
		freeMem += max(0, n.alloc.Memory().Value()-n.used.Memory().Value())
		a, hasGPUs := n.alloc[GPUResource]
		if !hasGPUs && n.product == UnknownGPUProduct {
			continue // a node without GPUs
		}
		u := n.used[GPUResource]
		g := gpu(n.product)
		g.Allocatable += int32(a.Value())
		g.Free += int32(max(0, a.Value()-u.Value()))
	}

	addable, err := autoscalerAddable(ctx, c, opts)
	if err != nil {
		return v1alpha1.Capacity{}, err
	}
	for product, n := range addable {
		if n > 0 {
			gpu(product).Addable += n
		}
	}
	karpenter, err := ReadKarpenter(ctx, c)
	if err != nil {
		return v1alpha1.Capacity{}, fmt.Errorf("measuring capacity: %w", err)
	}
	if karpenter != nil {
		for _, p := range karpenter.NodePools {
			if n := p.AddableGPUs(); n > 0 {
				gpu(p.GPUType).Addable += n
			}
		}
		for _, nc := range karpenter.NodeClaims {
			if nc.Ready || nc.Deleting || nc.GPUs <= 0 || usable[nc.NodeName] != nil {
				continue
			}
			gpu(nc.GPUType).Provisioning += nc.GPUs
		}
	}

	capacity := v1alpha1.Capacity{
		CPU:        *resource.NewMilliQuantity(cpu, resource.DecimalSI),
		FreeCPU:    *resource.NewMilliQuantity(freeCPU, resource.DecimalSI),
		Memory:     *resource.NewQuantity(mem, resource.BinarySI),
		FreeMemory: *resource.NewQuantity(freeMem, resource.BinarySI),
	}
	for _, g := range gpus {
		capacity.GPUs = append(capacity.GPUs, *g)
	}
	sort.Slice(capacity.GPUs, func(i, j int) bool { return capacity.GPUs[i].Type < capacity.GPUs[j].Type })
	return capacity, nil
}

// autoscalerAddable reads the Cluster Autoscaler's status and returns the
// GPUs it can still add, by product.
func autoscalerAddable(ctx context.Context, c client.Reader, opts CapacityOptions) (map[string]int32, error) {
	if len(opts.NodeGroups) == 0 {
		return nil, nil
	}
	key := client.ObjectKey{Namespace: opts.StatusNamespace, Name: opts.StatusName}
	if key.Namespace == "" {
		key.Namespace = AutoscalerStatusNamespace
	}
	if key.Name == "" {
		key.Name = AutoscalerStatusName
	}
	var cm corev1.ConfigMap
	if err := c.Get(ctx, key, &cm); err != nil {
		if apierrors.IsNotFound(err) {
			return nil, nil
		}
		return nil, fmt.Errorf("measuring capacity: reading the Cluster Autoscaler status ConfigMap %s: %w", key, err)
	}
	text, ok := cm.Data["status"]
	if !ok {
		return nil, fmt.Errorf("measuring capacity: the Cluster Autoscaler status ConfigMap %s has no \"status\" key", key)
	}
	groups, err := ParseAutoscalerStatus(text)
	if err != nil {
		return nil, fmt.Errorf("measuring capacity: the Cluster Autoscaler status ConfigMap %s: %w", key, err)
	}
	byName := make(map[string]AutoscalerNodeGroup, len(groups))
	for _, g := range groups {
		byName[g.Name] = g
	}
	addable := map[string]int32{}
	for _, ng := range opts.NodeGroups {
		g, ok := byName[ng.Name]
		if !ok || !g.CanScaleUp() || ng.GPUsPerNode <= 0 {
			continue
		}
		product := ng.GPUType
		if product == "" {
			product = UnknownGPUProduct
		}
		addable[product] += g.Headroom() * ng.GPUsPerNode
	}
	return addable, nil
}

func nodeReady(n *corev1.Node) bool {
	for _, c := range n.Status.Conditions {
		if c.Type == corev1.NodeReady {
			return c.Status == corev1.ConditionTrue
		}
	}
	return false
}

// podGPUProduct is the GPU product p must run on: its nodeSelector's
// nvidia.com/gpu.product, else the one value every required node-affinity
// term allows for it, else UnknownGPUProduct.
func podGPUProduct(p *corev1.Pod) string {
	if v := p.Spec.NodeSelector[GPUProductLabel]; v != "" {
		return v
	}
	a := p.Spec.Affinity
	if a == nil || a.NodeAffinity == nil || a.NodeAffinity.RequiredDuringSchedulingIgnoredDuringExecution == nil {
		return UnknownGPUProduct
	}
	product := ""
	for _, term := range a.NodeAffinity.RequiredDuringSchedulingIgnoredDuringExecution.NodeSelectorTerms {
		v := ""
		for _, e := range term.MatchExpressions {
			if e.Key == GPUProductLabel && e.Operator == corev1.NodeSelectorOpIn && len(e.Values) == 1 {
				v = e.Values[0]
			}
		}
		if v == "" || (product != "" && v != product) {
			return UnknownGPUProduct // terms are ORed: any product may do
		}
		product = v
	}
	if product == "" {
		return UnknownGPUProduct
	}
	return product
}

// PodRequests is what the scheduler reserves for p: its containers'
// requests plus those of its sidecars (restartable init containers), or
// more if an init container needs more while it runs, pod-level requests
// where the pod sets them, plus the pod overhead.
func PodRequests(p *corev1.Pod) corev1.ResourceList {
	reqs := corev1.ResourceList{}
	for _, c := range p.Spec.Containers {
		addResources(reqs, c.Resources.Requests)
	}
	sidecars, initPeak := corev1.ResourceList{}, corev1.ResourceList{}
	for _, c := range p.Spec.InitContainers {
		if c.RestartPolicy != nil && *c.RestartPolicy == corev1.ContainerRestartPolicyAlways {
			addResources(reqs, c.Resources.Requests)
			addResources(sidecars, c.Resources.Requests)
			continue
		}
		// A regular init container runs alone beside the sidecars started
		// before it.
		running := sidecars.DeepCopy()
		addResources(running, c.Resources.Requests)
		maxResources(initPeak, running)
	}
	maxResources(reqs, initPeak)
	if p.Spec.Resources != nil {
		for name, q := range p.Spec.Resources.Requests {
			reqs[name] = q.DeepCopy()
		}
	}
	addResources(reqs, p.Spec.Overhead)
	return reqs
}

func addResources(to, add corev1.ResourceList) {
	for name, q := range add {
		sum := to[name]
		sum.Add(q)
		to[name] = sum
	}
}

func maxResources(to, other corev1.ResourceList) {
	for name, q := range other {
		if cur, ok := to[name]; !ok || q.Cmp(cur) > 0 {
			to[name] = q.DeepCopy()
		}
	}
}
