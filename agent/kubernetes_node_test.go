package agent

import (
	"context"
	"io"
	"log/slog"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"meridian.dev/meridian/agent/kube"
	v1 "meridian.dev/meridian/crds/v1alpha1"
	"meridian.dev/meridian/internal/controlplane"
	"meridian.dev/meridian/internal/loadbalancer"
	"meridian.dev/meridian/internal/node"
)

// The kubernetes runtime end to end on a real node: the agent's
// Deployment runs Meridian's image (by digest) as real Pods under the
// restricted profile, its LoadBalancer Service gets the region's own
// address, the ModelDeployment's endpoint is that address, and /analyze
// answers there — what a client that follows a DNS answer reaches.
func TestKubernetesRuntimeServesOnARealNode(t *testing.T) {
	cp := controlplane.ForTest(t, controlplane.Options{ControllerManager: true, Scheduler: true, NodeLifecycle: true})
	_, ref := node.ForTest(t, "region-node", cp.Kubeconfig)
	ctx, cancel := context.WithCancel(context.Background())
	pool := loadbalancer.PoolFor(91, 4)
	lbDone := make(chan error, 1)
	go func() { lbDone <- loadbalancer.Run(ctx, cp.Config, loadbalancer.Options{Pool: pool}) }()
	done := make(chan error, 1)
	go func() {
		done <- Run(ctx, cp.Config, Options{
			ClusterName: "k8s", Identity: v1.ClusterIdentity{Region: "us-east"}, Runtime: v1.RuntimeKubernetes,
			Kube:       kube.Options{Image: ref, ServerArgs: []string{"--cache-size=0"}},
			SyncPeriod: 500 * time.Millisecond, ReportPeriod: time.Second,
			Logger: slog.New(slog.NewTextHandler(io.Discard, nil)), Registry: prometheus.NewRegistry(),
		})
	}()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("agent: %v", err)
		}
		if err := <-lbDone; err != nil {
			t.Errorf("load balancer: %v", err)
		}
	})

	md := &v1.ModelDeployment{
		ObjectMeta: metav1.ObjectMeta{Name: "sentiment", Namespace: "default"},
		Spec: v1.ModelDeploymentSpec{
			Model:       v1.ModelSource{Name: "sentiment"},
			Autoscaling: v1.Autoscaling{MinReplicas: ptr.To[int32](1), MaxReplicas: 2},
		},
	}
	if err := cp.Client.Create(ctx, md); err != nil {
		t.Fatal(err)
	}
	want := "http://" + pool[0].String() + ":8000"
	eventually(t, "a ready replica and the load balancer's address as the endpoint", 3*time.Minute, func() bool {
		got := &v1.ModelDeployment{}
		return cp.Client.Get(ctx, client.ObjectKeyFromObject(md), got) == nil &&
			got.Status.ReadyReplicas == 1 && got.Status.Endpoint == want
	})
	var pods corev1.PodList
	if err := cp.Client.List(ctx, &pods, client.MatchingLabels(kube.Labels(md))); err != nil || len(pods.Items) != 1 {
		t.Fatalf("pods: %v %d", err, len(pods.Items))
	}
	p := pods.Items[0]
	if p.Spec.NodeName != "region-node" || p.Status.Phase != corev1.PodRunning || p.Spec.Containers[0].Image != ref {
		t.Errorf("pod %s: node %q phase %s image %s; want a Running pod of %s on the real node", p.Name, p.Spec.NodeName, p.Status.Phase, p.Spec.Containers[0].Image, ref)
	}
	if sc := p.Spec.SecurityContext; sc == nil || !ptr.Deref(sc.RunAsNonRoot, false) {
		t.Errorf("pod is not restricted to a non-root user: %+v", sc)
	}
	resp, err := http.Post(want+"/analyze", "application/json", strings.NewReader(`{"text":"I love this, it is amazing"}`))
	if err != nil {
		t.Fatalf("the model does not answer at its endpoint: %v", err)
	}
	body, _ := io.ReadAll(resp.Body)
	_ = resp.Body.Close()
	if resp.StatusCode != http.StatusOK || !strings.Contains(string(body), `"POSITIVE"`) {
		t.Fatalf("/analyze at %s: %d %s", want, resp.StatusCode, body)
	}
}
