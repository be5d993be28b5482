package main

import (
	"context"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"time"

	"meridian.dev/meridian/agent"
	"meridian.dev/meridian/agent/kube"
	"meridian.dev/meridian/agent/metricsapi"
	v1 "meridian.dev/meridian/crds/v1alpha1"
	"meridian.dev/meridian/internal/controlplane"
	"meridian.dev/meridian/internal/loadbalancer"
	"meridian.dev/meridian/internal/node"
)

// p7 is the same 5x step through the real Kubernetes path — Pods of
// Meridian's image on a real node, the agent's metrics adapter, the real
// HPA in kube-controller-manager, a LoadBalancer address — and through the
// process runtime's autoscaler, with the same ModelDeployment, the
// bundled textdir model and its own configuration on both sides.
func p7(bin string, img []byte) error {
	cpBin, err := controlplane.FindBinDir()
	if err != nil {
		return err
	}
	if why := node.Available(filepath.Join(cpBin, "kubelet")); why != "" {
		fmt.Printf("\nP7 skipped: %s\n", why)
		return nil
	}
	repo, err := filepath.Abs("models")
	if err != nil {
		return err
	}
	fmt.Println()
	base, err := sizeLoad("P7: one bundled textdir replica", bin, repo, img)
	if err != nil {
		return err
	}
	// The same settings on both paths; the HPA has no burst mode.
	proc := scenario{bench: "P7", name: "process", sync: time.Second, window: 5 * time.Second, cpu: "500m"}
	kub := scenario{bench: "P7", name: "kubernetes", sync: time.Second, window: 5 * time.Second, cpu: "500m", kube: true}
	pr, err := proc.run(bin, repo, img, base, *p95Target)
	if err != nil {
		return err
	}
	kr, err := kub.run(bin, repo, img, base, *p95Target)
	if err != nil {
		return err
	}
	verdict := "short"
	if kr.recovered && pr.recovered && kr.recovery <= 2*pr.recovery && kr.load.Failed == 0 && kr.load.Dropped == 0 &&
		kr.load.LoadOffered && pr.load.LoadOffered {
		verdict = "ok"
	}
	ratio := "n/a"
	if kr.recovered && pr.recovered && pr.recovery > 0 {
		ratio = fmt.Sprintf("%.2fx", kr.recovery.Seconds()/pr.recovery.Seconds())
	}
	fmt.Println()
	fmt.Printf("P7 kubernetes_recovery=%s process_recovery=%s ratio=%s target<=2x and 0 failed %s\n", kr, pr, ratio, verdict)
	fmt.Printf("P7 kubernetes: %s; replicas %d -> %d, scale_reaction=%s (HPA sync 5s and adapter scrape 5s: kinder than the 15s HPA default)\n",
		kr.loadString(), kr.startReplicas, kr.endReplicas, kr.reactionString())
	fmt.Printf("P7 kubernetes requests: %s\n", kr.countString())
	fmt.Printf("P7 process:    %s; replicas %d -> %d, scale_reaction=%s\n", pr.loadString(), pr.startReplicas, pr.endReplicas, pr.reactionString())
	fmt.Printf("P7 process requests: %s\n", pr.countString())
	return nil
}

// startNode gives the scenario's cluster a real node running Meridian's
// image, a load balancer, and sets the agent on the kubernetes runtime
// with its metrics adapter on the node's address.
func startNode(ctx context.Context, cp *controlplane.ControlPlane, opts *agent.Options) (stop func(), err error) {
	bin, err := controlplane.FindBinDir()
	if err != nil {
		return nil, err
	}
	images, err := node.ServeImages(ctx, filepath.Join(".cache", "image", "meridian"))
	if err != nil {
		return nil, err
	}
	n, err := node.Start(ctx, node.Options{Name: "p7-node", Kubeconfig: cp.Kubeconfig, KubeletPath: filepath.Join(bin, "kubelet"),
		PauseImage: images.Pause, Mirrors: images.Mirrors})
	if err != nil {
		return nil, err
	}
	lbCtx, cancel := context.WithCancel(ctx)
	lbDone := make(chan error, 1)
	go func() {
		lbDone <- loadbalancer.Run(lbCtx, cp.Config, loadbalancer.Options{Pool: loadbalancer.PoolFor(97, 2), Logger: opts.Logger})
	}()
	opts.Runtime = v1.RuntimeKubernetes
	opts.Kube = kube.Options{Image: images.Meridian, ServerArgs: []string{"--cache-size=0", "--log-level=warn"}}
	opts.MetricsAPI = &metricsapi.Options{Listen: net.JoinHostPort(n.IP, "0")}
	return func() {
		cancel()
		if err := <-lbDone; err != nil {
			fmt.Fprintln(os.Stderr, "load balancer:", err)
		}
		n.Stop()
	}, nil
}
