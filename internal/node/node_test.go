package node

import (
	"context"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"meridian.dev/meridian/internal/controlplane"
)

// Meridian's own image, pulled by digest from a registry this test serves,
// runs as a real Pod (restricted security context) on a real node — kubelet,
// containerd, runc, CNI — and answers /analyze on its pod address.
func TestMeridianImageRunsOnARealNode(t *testing.T) {
	cp := controlplane.ForTest(t, controlplane.Options{ControllerManager: true, Scheduler: true, NodeLifecycle: true})
	n, ref := ForTest(t, "worker-1", cp.Kubeconfig)
	ctx := context.Background()

	labels := map[string]string{"app": "sentiment-inference"}
	dep := &appsv1.Deployment{
		ObjectMeta: metav1.ObjectMeta{Name: "sentiment", Namespace: "default"},
		Spec: appsv1.DeploymentSpec{
			Replicas: ptr.To[int32](1),
			Selector: &metav1.LabelSelector{MatchLabels: labels},
			Template: corev1.PodTemplateSpec{
				ObjectMeta: metav1.ObjectMeta{Labels: labels},
				Spec: corev1.PodSpec{
					AutomountServiceAccountToken: ptr.To(false),
					SecurityContext: &corev1.PodSecurityContext{RunAsNonRoot: ptr.To(true),
						SeccompProfile: &corev1.SeccompProfile{Type: corev1.SeccompProfileTypeRuntimeDefault}},
					Containers: []corev1.Container{{
						Name: "server", Image: ref,
						Ports: []corev1.ContainerPort{{Name: "http", ContainerPort: 8000}},
						SecurityContext: &corev1.SecurityContext{AllowPrivilegeEscalation: ptr.To(false),
							Capabilities: &corev1.Capabilities{Drop: []corev1.Capability{"ALL"}}},
						Resources: corev1.ResourceRequirements{Requests: corev1.ResourceList{
							corev1.ResourceCPU: resource.MustParse("200m"), corev1.ResourceMemory: resource.MustParse("256Mi")}},
						ReadinessProbe: &corev1.Probe{PeriodSeconds: 1, ProbeHandler: corev1.ProbeHandler{
							HTTPGet: &corev1.HTTPGetAction{Path: "/v2/health/ready", Port: intstr.FromString("http")}}},
					}},
				},
			},
		},
	}
	if err := cp.Client.Create(ctx, dep); err != nil {
		t.Fatal(err)
	}
	var podIP string
	deadline := time.Now().Add(3 * time.Minute)
	for podIP == "" {
		var pods corev1.PodList
		if err := cp.Client.List(ctx, &pods, client.MatchingLabels(labels)); err == nil {
			for _, p := range pods.Items {
				for _, c := range p.Status.Conditions {
					if c.Type == corev1.PodReady && c.Status == corev1.ConditionTrue && p.Spec.NodeName == "worker-1" {
						podIP = p.Status.PodIP
					}
				}
			}
			if time.Now().After(deadline) {
				t.Fatalf("no ready pod on the real node in 3m: %+v", pods.Items)
			}
		}
		time.Sleep(250 * time.Millisecond)
	}
	if !strings.HasPrefix(podIP, "10.213.") {
		t.Errorf("pod address %s is not in the node's pod range %s", podIP, n.PodCIDR)
	}
	resp, err := http.Post("http://"+net.JoinHostPort(podIP, "8000")+"/analyze", "application/json",
		strings.NewReader(`{"text":"I love this, it is amazing"}`))
	if err != nil {
		t.Fatalf("the pod does not answer: %v", err)
	}
	body, _ := io.ReadAll(resp.Body)
	_ = resp.Body.Close()
	if resp.StatusCode != http.StatusOK || !strings.Contains(string(body), `"POSITIVE"`) {
		t.Fatalf("/analyze on the pod: %d %s", resp.StatusCode, body)
	}
}
