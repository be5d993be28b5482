package fleet

import (
	"context"
	"fmt"
	"net"
	"path/filepath"

	v1 "meridian.dev/meridian/crds/v1alpha1"
	"meridian.dev/meridian/internal/controlplane"
	"meridian.dev/meridian/internal/loadbalancer"
	"meridian.dev/meridian/internal/node"
)

// lbAddresses is how many LoadBalancer addresses each local region has:
// one per model's Service, two models today.
const lbAddresses = 8

// kubernetesRuntime says whether the fleet's replicas run as real Pods.
func (f *Fleet) kubernetesRuntime() bool { return f.opts.Runtime == v1.RuntimeKubernetes }

// startImages checks, before anything starts, that this machine can run
// real nodes, and serves Meridian's image and the pause image to them.
func (f *Fleet) startImages(runCtx context.Context) error {
	bin, err := controlplane.FindBinDir()
	if err != nil {
		return err
	}
	f.kubelet = filepath.Join(bin, "kubelet")
	if why := node.Available(f.kubelet); why != "" {
		return fmt.Errorf("--runtime kubernetes cannot start here: %s. The process runtime (the default) needs none of this", why)
	}
	layout := f.opts.ImageLayout
	if layout == "" {
		root, err := controlplane.RepoRoot()
		if err != nil {
			return fmt.Errorf("finding Meridian's image: %w; run from the checkout after `make image`", err)
		}
		layout = filepath.Join(root, ".cache", "image", "meridian")
	}
	f.step("serving Meridian's image and the pause image to the nodes from %s", layout)
	if f.images, err = node.ServeImages(runCtx, layout); err != nil {
		return fmt.Errorf("serving the image: %w", err)
	}
	return nil
}

// startNode gives local region i a real worker node (kubelet + containerd
// + runc + CNI) and a LoadBalancer implementation with addresses of its
// own, 127.0.<100+i>.1 and up: each model's Service gets one, and the
// model answers there on port 8000, as behind a cloud load balancer.
func (f *Fleet) startNode(ctx, runCtx context.Context, i int, r Region, cp *controlplane.ControlPlane) error {
	n, err := node.Start(ctx, node.Options{
		Name: r.Name + "-node-1", Kubeconfig: cp.Kubeconfig, KubeletPath: f.kubelet,
		PauseImage: f.images.Pause, Mirrors: f.images.Mirrors,
		Labels: map[string]string{"topology.kubernetes.io/region": r.Name, "topology.kubernetes.io/zone": r.Name + "-a"},
	})
	if err != nil {
		return fmt.Errorf("member %s: %w", r.Name, err)
	}
	f.faultMu.Lock()
	f.nodes[r.Name] = n
	f.faultMu.Unlock()
	pool := loadbalancer.PoolFor(i, lbAddresses)
	f.goRun(func() error {
		return loadbalancer.Run(runCtx, cp.Config, loadbalancer.Options{Pool: pool, Logger: f.opts.Logger.With("cluster", r.Name, "component", "loadbalancer")})
	})
	return nil
}

// metricsAPIListen is where region r's agent serves the metrics APIs: on
// its node's address, which the region's API server can dial (it refuses
// loopback endpoints).
func (f *Fleet) metricsAPIListen(r string) string {
	f.faultMu.Lock()
	defer f.faultMu.Unlock()
	return net.JoinHostPort(f.nodes[r].IP, "0")
}

// KubectlLines are the commands that show each local region's pods, HPAs
// (with the live values the agent's metrics adapter serves) and
// LoadBalancer addresses; empty on the process runtime.
func (f *Fleet) KubectlLines() []string {
	if !f.kubernetesRuntime() {
		return nil
	}
	bin, err := controlplane.FindBinDir()
	if err != nil {
		return nil
	}
	kubectl := filepath.Join(bin, "kubectl")
	var out []string
	for _, r := range f.opts.Regions {
		if r.Kubeconfig != "" {
			continue
		}
		k := fmt.Sprintf("%s --kubeconfig %s", kubectl, filepath.Join(f.opts.StateDir, r.Name+".kubeconfig"))
		out = append(out,
			k+" get nodes,pods -o wide",
			k+" get hpa",
			k+" get services -o wide",
		)
	}
	return out
}
