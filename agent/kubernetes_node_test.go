package agent

import (
	"net/http"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"meridian.dev/meridian/agent/kube"
	v1 "meridian.dev/meridian/crds/v1alpha1"
	"meridian.dev/meridian/internal/testbin"
)

// The kubernetes runtime end to end on a real node: the agent's
// Deployment runs Meridian's image (by digest) as real Pods under the
// restricted profile, its LoadBalancer Service gets the region's own
// address, the ModelDeployment's endpoint is that address, and /analyze
// answers there — what a client that follows a DNS answer reaches.
func TestKubernetesRuntimeServesOnARealNode(t *testing.T) {
	r := startRealRegion(t, realRegionOptions{Nodes: []string{"region-node"}, Pool: 91})
	cp, ref, ctx := r.cp, r.ref, r.ctx

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
	want := r.endpoint
	testbin.Eventually(t, "a ready replica and the load balancer's address as the endpoint", 3*time.Minute, func() bool {
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
	code, _, body, err := analyze(http.DefaultClient, want, "I love this, it is amazing")
	if err != nil {
		t.Fatalf("the model does not answer at its endpoint: %v", err)
	}
	if code != http.StatusOK || !strings.Contains(body, `"POSITIVE"`) {
		t.Fatalf("/analyze at %s: %d %s", want, code, body)
	}
}
