package controlplane_test

import (
	"context"
	"encoding/json"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"k8s.io/apimachinery/pkg/api/resource"
	"k8s.io/client-go/kubernetes"

	"meridian.dev/meridian/internal/controlplane"
	"meridian.dev/meridian/internal/node"
)

// metrics-server on a control plane with a real node: its APIService is
// Available when Start returns, it scrapes the node's kubelet (with the
// token of its own ServiceAccount, which the kubelet reviews) and serves
// the node's CPU and memory through the API server — what `kubectl top`
// and the HPAs' Resource metrics read.
func TestMetricsServerServesARealNodesMetrics(t *testing.T) {
	cp := controlplane.ForTest(t, controlplane.Options{MetricsServer: true})
	n, _ := node.ForTest(t, "metrics-node", cp.Kubeconfig)
	ctx := context.Background()
	cs := kubernetes.NewForConfigOrDie(cp.Config)

	var nm struct {
		Timestamp string `json:"timestamp"`
		Window    string `json:"window"`
		Usage     struct {
			CPU    resource.Quantity `json:"cpu"`
			Memory resource.Quantity `json:"memory"`
		} `json:"usage"`
	}
	deadline := time.Now().Add(3 * time.Minute)
	for {
		raw, err := cs.RESTClient().Get().AbsPath("/apis/metrics.k8s.io/v1beta1/nodes/" + n.Name).DoRaw(ctx)
		if err == nil && json.Unmarshal(raw, &nm) == nil && !nm.Usage.Memory.IsZero() {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("no metrics for node %s through metrics.k8s.io after 3m: %v %s", n.Name, err, raw)
		}
		time.Sleep(2 * time.Second)
	}
	t.Logf("metrics.k8s.io node %s: cpu %s memory %s (window %s)", n.Name, &nm.Usage.CPU, &nm.Usage.Memory, nm.Window)

	bin, err := controlplane.FindBinDir()
	if err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command(filepath.Join(bin, "kubectl"), "--kubeconfig", cp.Kubeconfig, "top", "node", n.Name).CombinedOutput()
	if err != nil || !strings.Contains(string(out), n.Name) || !strings.Contains(string(out), "CPU(cores)") {
		t.Fatalf("kubectl top node: %v\n%s", err, out)
	}
	t.Logf("kubectl top node:\n%s", out)
}
