// Package karpenter runs a real node autoscaler beside a control plane of
// internal/controlplane: Karpenter with its kwok cloud provider, built from
// the pinned module by tools/controlplane/build.sh into
// .cache/controlplane/bin/karpenter-kwok. Karpenter watches for pods the
// scheduler cannot place, creates a NodeClaim for them from a NodePool and
// has its cloud provider "launch" it; the kwok provider launches by
// creating a Node object, which a kwok process started here makes Ready and
// keeps alive (a node lease, a heartbeat), and whose pods it runs.
//
// Start installs Karpenter's CRDs from the pinned module (NodePool,
// NodeClaim, NodeOverlay, KWOKNodeClass; build.sh copies them into
// karpenter-crds), writes the instance types the provider may launch (GPU
// types included: the provider's own list has none), starts Karpenter and
// kwok, and creates the KWOKNodeClass that NodePools refer to.
// CreateNodePool adds a NodePool and waits until Karpenter calls it Ready.
//
// The control plane needs its scheduler (Karpenter acts on the pods it
// marks Unschedulable), its controller manager with NodeLifecycle (the node
// lifecycle controller lifts the node.kubernetes.io/not-ready taint the API
// server puts on every new node, once kwok reports the node Ready) and no
// fake Nodes of its own: the control plane's kwok would manage Karpenter's
// nodes too.
package karpenter

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/resource"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/rest"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/envtest"

	"meridian.dev/meridian/internal/controlplane"
)

// The API groups and kinds Karpenter serves.
var (
	NodePoolGVK      = schema.GroupVersionKind{Group: "karpenter.sh", Version: "v1", Kind: "NodePool"}
	NodeClaimGVK     = schema.GroupVersionKind{Group: "karpenter.sh", Version: "v1", Kind: "NodeClaim"}
	KWOKNodeClassGVK = schema.GroupVersionKind{Group: "karpenter.kwok.sh", Version: "v1alpha1", Kind: "KWOKNodeClass"}
)

// NodeClassName is the KWOKNodeClass Start creates and NodePools use by
// default.
const NodeClassName = "default"

// Binary is the Karpenter binary (with the kwok cloud provider) in the
// control-plane bin directory; CRDDir its CRDs there.
const (
	Binary = "karpenter-kwok"
	CRDDir = "karpenter-crds"
)

// Well-known labels Karpenter puts on the nodes it adds.
const (
	NodePoolLabel     = "karpenter.sh/nodepool"
	CapacityTypeLabel = "karpenter.sh/capacity-type"
)

// InstanceType is one machine type the kwok provider may launch.
type InstanceType struct {
	// Name, e.g. "gpu-h100-1x"; the node label node.kubernetes.io/instance-type.
	Name string
	// CPU and Memory capacity, e.g. "8" and "32Gi".
	CPU, Memory string
	// GPUs is the nvidia.com/gpu capacity; 0 for a machine without GPUs.
	GPUs int64
	// Price per hour on demand; Karpenter launches the cheapest type that fits.
	Price float64
}

// DefaultInstanceTypes are two CPU machines and a one-GPU and a four-GPU
// machine, all amd64 Linux on demand in one zone.
var DefaultInstanceTypes = []InstanceType{
	{Name: "cpu-4x", CPU: "4", Memory: "16Gi", Price: 0.2},
	{Name: "cpu-16x", CPU: "16", Memory: "64Gi", Price: 0.8},
	{Name: "gpu-1x", CPU: "8", Memory: "64Gi", GPUs: 1, Price: 4},
	{Name: "gpu-4x", CPU: "32", Memory: "256Gi", GPUs: 4, Price: 16},
}

// Zone is the topology.kubernetes.io/zone of every instance type offered.
const Zone = "zone-a"

// Options say how to run Karpenter.
type Options struct {
	// BinDir holds karpenter-kwok, kwok and their configs; default
	// controlplane.FindBinDir().
	BinDir string
	// InstanceTypes the provider may launch; default DefaultInstanceTypes.
	InstanceTypes []InstanceType
	// NodeRegistrationDelay is how long a launched machine takes to become a
	// Node (the KWOKNodeClass's nodeRegistrationDelay); 0 registers at once.
	NodeRegistrationDelay time.Duration
	// Logs receives the output of Karpenter and kwok; nil discards it.
	Logs io.Writer
}

// Karpenter is a running Karpenter with its kwok.
type Karpenter struct {
	client client.Client
	dir    string
	cancel context.CancelFunc
	done   []chan struct{}
}

// Start installs Karpenter's CRDs into the control plane that config and
// kubeconfig (a file, which Karpenter and kwok read) reach, starts
// Karpenter and kwok and creates the KWOKNodeClass NodeClassName. Stop ends
// them.
func Start(ctx context.Context, config *rest.Config, kubeconfig string, opts Options) (*Karpenter, error) {
	bin := opts.BinDir
	if bin == "" {
		var err error
		if bin, err = controlplane.FindBinDir(); err != nil {
			return nil, err
		}
	}
	for _, f := range []string{Binary, "kwok", CRDDir, "kwok-stages"} {
		if _, err := os.Stat(filepath.Join(bin, f)); err != nil {
			return nil, fmt.Errorf("%s missing in %s; run `make controlplane`", f, bin)
		}
	}
	c, err := client.New(config, client.Options{})
	if err != nil {
		return nil, err
	}
	if _, err := envtest.InstallCRDs(config, envtest.CRDInstallOptions{
		Paths: []string{filepath.Join(bin, CRDDir)}, ErrorIfPathMissing: true,
	}); err != nil {
		return nil, fmt.Errorf("installing Karpenter's CRDs from %s: %w", filepath.Join(bin, CRDDir), err)
	}
	dir, err := os.MkdirTemp("", "meridian-karpenter-")
	if err != nil {
		return nil, err
	}
	k := &Karpenter{client: c, dir: dir}
	if err := k.start(ctx, bin, kubeconfig, opts); err != nil {
		_ = k.Stop()
		return nil, err
	}
	return k, nil
}

func (k *Karpenter) start(ctx context.Context, bin, kubeconfig string, opts Options) error {
	types := opts.InstanceTypes
	if len(types) == 0 {
		types = DefaultInstanceTypes
	}
	typesFile := filepath.Join(k.dir, "instance-types.json")
	b, err := instanceTypesJSON(types)
	if err != nil {
		return err
	}
	if err := os.WriteFile(typesFile, b, 0o600); err != nil {
		return err
	}

	nc := &unstructured.Unstructured{}
	nc.SetGroupVersionKind(KWOKNodeClassGVK)
	nc.SetName(NodeClassName)
	if d := opts.NodeRegistrationDelay; d > 0 {
		nc.Object["spec"] = map[string]any{"nodeRegistrationDelay": fmt.Sprintf("%ds", int(d.Round(time.Second)/time.Second))}
	}
	if err := k.client.Create(ctx, nc); err != nil && !apierrors.IsAlreadyExists(err) {
		return fmt.Errorf("creating the KWOKNodeClass %s: %w", NodeClassName, err)
	}

	stages, _ := filepath.Glob(filepath.Join(bin, "kwok-stages", "*.yaml"))
	if len(stages) == 0 {
		return fmt.Errorf("kwok stage configs missing in %s/kwok-stages; run `make controlplane`", bin)
	}
	pctx, cancel := context.WithCancel(context.Background())
	k.cancel = cancel
	// kwok manages exactly the nodes the kwok provider creates (they carry
	// this label); its node leases keep the node lifecycle controller
	// content.
	k.run(pctx, opts.Logs, nil, filepath.Join(bin, "kwok"),
		"--kubeconfig="+kubeconfig, "--config="+strings.Join(stages, ","),
		"--manage-all-nodes=false", "--manage-nodes-with-label-selector=kwok.x-k8s.io/node=fake",
		"--node-lease-duration-seconds=40", "--server-address=127.0.0.1:0")
	// Karpenter outside a cluster: no leader election (one replica), metrics
	// and health probes on ports of the kernel's choosing.
	env := append(os.Environ(),
		"KUBECONFIG="+kubeconfig,
		"DISABLE_LEADER_ELECTION=true",
		"METRICS_PORT=0",
		"HEALTH_PROBE_PORT=0",
		"INSTANCE_TYPES_FILE_PATH="+typesFile,
		"LOG_LEVEL=info",
	)
	k.run(pctx, opts.Logs, env, filepath.Join(bin, Binary))
	return nil
}

// Stop ends Karpenter and kwok. The nodes they added stay in the cluster.
func (k *Karpenter) Stop() error {
	if k.cancel != nil {
		k.cancel()
	}
	for _, d := range k.done {
		<-d
	}
	return os.RemoveAll(k.dir)
}

// NodePool is a Karpenter NodePool of the KWOKNodeClass NodeClassName.
type NodePool struct {
	Name string
	// Labels every node of the pool gets (e.g. nvidia.com/gpu.product);
	// pods select the pool by them.
	Labels map[string]string
	// Taints every node of the pool gets (e.g. nvidia.com/gpu:NoSchedule).
	Taints []corev1.Taint
	// InstanceTypes the pool may launch; empty allows all.
	InstanceTypes []string
	// Limits cap the resources of all the pool's nodes together (cpu,
	// memory, nvidia.com/gpu, nodes); Karpenter launches no node that would
	// exceed them.
	Limits corev1.ResourceList
}

// Object is the NodePool as Karpenter's API has it: amd64 Linux nodes on
// demand, its labels and taints, consolidation only of empty nodes.
func (p NodePool) Object() *unstructured.Unstructured {
	reqs := []any{
		map[string]any{"key": corev1.LabelArchStable, "operator": "In", "values": []any{"amd64"}},
		map[string]any{"key": corev1.LabelOSStable, "operator": "In", "values": []any{"linux"}},
		map[string]any{"key": CapacityTypeLabel, "operator": "In", "values": []any{"on-demand"}},
	}
	if len(p.InstanceTypes) > 0 {
		vals := make([]any, len(p.InstanceTypes))
		for i, t := range p.InstanceTypes {
			vals[i] = t
		}
		reqs = append(reqs, map[string]any{"key": corev1.LabelInstanceTypeStable, "operator": "In", "values": vals})
	}
	spec := map[string]any{
		"requirements": reqs,
		"nodeClassRef": map[string]any{"group": KWOKNodeClassGVK.Group, "kind": KWOKNodeClassGVK.Kind, "name": NodeClassName},
		"expireAfter":  "Never",
	}
	if len(p.Taints) > 0 {
		taints := make([]any, len(p.Taints))
		for i, t := range p.Taints {
			m := map[string]any{"key": t.Key, "effect": string(t.Effect)}
			if t.Value != "" {
				m["value"] = t.Value
			}
			taints[i] = m
		}
		spec["taints"] = taints
	}
	template := map[string]any{"spec": spec}
	if len(p.Labels) > 0 {
		labels := map[string]any{}
		for k, v := range p.Labels {
			labels[k] = v
		}
		template["metadata"] = map[string]any{"labels": labels}
	}
	npSpec := map[string]any{
		"template":   template,
		"disruption": map[string]any{"consolidationPolicy": "WhenEmpty", "consolidateAfter": "Never"},
	}
	if len(p.Limits) > 0 {
		limits := map[string]any{}
		for name, q := range p.Limits {
			limits[string(name)] = q.String()
		}
		npSpec["limits"] = limits
	}
	u := &unstructured.Unstructured{Object: map[string]any{"spec": npSpec}}
	u.SetGroupVersionKind(NodePoolGVK)
	u.SetName(p.Name)
	return u
}

// CreateNodePool creates p and waits (up to two minutes) until Karpenter
// has seen it and calls it Ready.
func (k *Karpenter) CreateNodePool(ctx context.Context, p NodePool) error {
	if err := k.client.Create(ctx, p.Object()); err != nil {
		return fmt.Errorf("creating NodePool %s: %w", p.Name, err)
	}
	deadline := time.Now().Add(2 * time.Minute)
	last := "no status yet"
	for {
		u := &unstructured.Unstructured{}
		u.SetGroupVersionKind(NodePoolGVK)
		if err := k.client.Get(ctx, client.ObjectKey{Name: p.Name}, u); err != nil {
			return err
		}
		conds, _, _ := unstructured.NestedSlice(u.Object, "status", "conditions")
		for _, c := range conds {
			m, _ := c.(map[string]any)
			if m["type"] == "Ready" {
				if m["status"] == "True" {
					return nil
				}
				last = fmt.Sprintf("Ready=%v: %v %v", m["status"], m["reason"], m["message"])
			}
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("NodePool %s not Ready within 2m (is Karpenter running?): %s", p.Name, last)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(500 * time.Millisecond):
		}
	}
}

// instanceTypesJSON writes types in the kwok provider's instance-types
// file format: each with one on-demand offering in Zone.
func instanceTypesJSON(types []InstanceType) ([]byte, error) {
	type requirement struct {
		Key      string   `json:"key"`
		Operator string   `json:"operator"`
		Values   []string `json:"values"`
	}
	type offering struct {
		Price        float64       `json:"Price"`
		Available    bool          `json:"Available"`
		Requirements []requirement `json:"Requirements"`
	}
	type instanceType struct {
		Name             string              `json:"name"`
		Offerings        []offering          `json:"offerings"`
		Architecture     string              `json:"architecture"`
		OperatingSystems []string            `json:"operatingSystems"`
		Resources        corev1.ResourceList `json:"resources"`
	}
	out := make([]instanceType, 0, len(types))
	for _, t := range types {
		if t.Name == "" || t.CPU == "" || t.Memory == "" {
			return nil, errors.New("an instance type needs a Name, CPU and Memory")
		}
		res := corev1.ResourceList{}
		for name, v := range map[corev1.ResourceName]string{corev1.ResourceCPU: t.CPU, corev1.ResourceMemory: t.Memory} {
			q, err := resource.ParseQuantity(v)
			if err != nil {
				return nil, fmt.Errorf("instance type %s: %s %q: %w", t.Name, name, v, err)
			}
			res[name] = q
		}
		res[corev1.ResourceEphemeralStorage] = resource.MustParse("100Gi")
		if t.GPUs > 0 {
			res[controlplane.GPUResource] = *resource.NewQuantity(t.GPUs, resource.DecimalSI)
		}
		out = append(out, instanceType{
			Name: t.Name, Architecture: "amd64", OperatingSystems: []string{"linux"}, Resources: res,
			Offerings: []offering{{Price: t.Price, Available: true, Requirements: []requirement{
				{Key: CapacityTypeLabel, Operator: "In", Values: []string{"on-demand"}},
				{Key: corev1.LabelTopologyZone, Operator: "In", Values: []string{Zone}},
			}}},
		})
	}
	return json.MarshalIndent(out, "", "  ")
}

// run starts a process that lives until Stop.
func (k *Karpenter) run(ctx context.Context, logs io.Writer, env []string, path string, args ...string) {
	name := filepath.Base(path)
	cmd := exec.CommandContext(ctx, path, args...)
	cmd.Env = env
	cmd.WaitDelay = 5 * time.Second
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL} // never outlive a killed test
	if logs != nil {
		pr, pw := io.Pipe()
		cmd.Stdout, cmd.Stderr = pw, pw
		go func() {
			s := bufio.NewScanner(pr)
			s.Buffer(make([]byte, 0, 64*1024), 1<<20)
			for s.Scan() {
				fmt.Fprintf(logs, "%s: %s\n", name, s.Text())
			}
		}()
		go func() { <-ctx.Done(); _ = pw.Close() }()
	}
	done := make(chan struct{})
	if err := cmd.Start(); err != nil {
		if logs != nil {
			fmt.Fprintf(logs, "%s: %v\n", name, err)
		}
		close(done)
	} else {
		go func() { _ = cmd.Wait(); close(done) }()
	}
	k.done = append(k.done, done)
}
