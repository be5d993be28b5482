package terraform_test

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/client-go/tools/clientcmd"
	clientcmdapi "k8s.io/client-go/tools/clientcmd/api"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"meridian.dev/meridian/internal/controlplane"
	"meridian.dev/meridian/internal/testbin"
)

// The example applied to a local fleet, a hub and three members, each a
// real API server with kube-controller-manager, kube-scheduler and a kwok
// node that runs the pods as if Ready: the releases install and become
// ready under the restricted Pod Security profile, each member holds its
// own join bundle; then everything is destroyed.
func TestApplyExample(t *testing.T) {
	tf := newTofu(t)
	clusters := []string{"hub", "us-east", "eu-west", "ap-south"}
	cps := map[string]*controlplane.ControlPlane{}
	merged := clientcmdapi.NewConfig()
	for _, name := range clusters {
		cp := controlplane.ForTest(t, controlplane.Options{
			NoCRDs: true, ControllerManager: true, Scheduler: true,
			Nodes: []controlplane.Node{{Name: name + "-node"}},
		})
		cps[name] = cp
		moreControllers(t, cp.Kubeconfig)
		addContext(t, merged, name, cp.Kubeconfig)
	}
	dir := "examples/three-regions"
	kubeconfig := filepath.Join(tf.root, "kubeconfig")
	if err := clientcmd.WriteToFile(*merged, kubeconfig); err != nil {
		t.Fatal(err)
	}
	vars := filepath.Join(tf.root, "apply.tfvars")
	if err := os.WriteFile(vars, []byte(`
kubeconfig_path = "`+kubeconfig+`"
hub_context     = "hub"
member_contexts = { us-east = "us-east", eu-west = "eu-west", ap-south = "ap-south" }
join_bundle_dir = "tests/join"
image           = { repository = "registry.example/meridian", tag = "v1.2.3" }
balancer_zone   = "infer.example.com"
# No load balancer here: a LoadBalancer Service would never be ready.
values = ["glb: {service: {type: ClusterIP}}"]
`), 0o644); err != nil {
		t.Fatal(err)
	}
	tf.run(t, dir, true, "init", "-input=false", "-no-color")
	tf.run(t, dir, true, "apply", "-auto-approve", "-input=false", "-no-color", "-var-file="+vars)

	ctx := t.Context()
	hub := cps["hub"].Client
	if n := readyDeployments(ctx, t, hub); n != "meridian-hub 2/2" {
		t.Errorf("hub cluster's deployments: %q, want the hub's two replicas ready", n)
	}
	for _, name := range clusters[1:] {
		c := cps[name].Client
		var ns corev1.Namespace
		if err := c.Get(ctx, client.ObjectKey{Name: "meridian-system"}, &ns); err != nil || ns.Labels["pod-security.kubernetes.io/enforce"] != "restricted" {
			t.Errorf("%s: namespace meridian-system %v, labels %v: want restricted Pod Security", name, err, ns.Labels)
		}
		var s corev1.Secret
		if err := c.Get(ctx, client.ObjectKey{Namespace: "meridian-system", Name: "meridian-hub-join"}, &s); err != nil {
			t.Fatalf("%s: join Secret: %v", name, err)
		}
		want, err := os.ReadFile(filepath.Join(tf.root, "terraform", dir, "tests", "join", name+".json"))
		if err != nil {
			t.Fatal(err)
		}
		if string(s.Data["bundle.json"]) != string(want) {
			t.Errorf("%s: bundle.json is %q, want its own bundle %q", name, s.Data["bundle.json"], want)
		}
		if n := readyDeployments(ctx, t, c); n != "meridian-member-agent 1/1" {
			t.Errorf("%s: deployments %q, want the agent ready", name, n)
		}
	}

	tf.run(t, dir, true, "destroy", "-auto-approve", "-input=false", "-no-color", "-var-file="+vars)
	for _, name := range clusters {
		err := cps[name].Client.Get(ctx, client.ObjectKey{Name: "meridian-system"}, &corev1.Namespace{})
		if !apierrors.IsNotFound(err) {
			t.Errorf("%s: namespace meridian-system after destroy: %v, want it gone", name, err)
		}
	}
}

// readyDeployments lists the Deployments of meridian-system as "name
// ready/replicas".
func readyDeployments(ctx context.Context, t *testing.T, c client.Client) string {
	t.Helper()
	var list appsv1.DeploymentList
	if err := c.List(ctx, &list, client.InNamespace("meridian-system")); err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, d := range list.Items {
		out = append(out, d.Name+" "+itoa(d.Status.ReadyReplicas)+"/"+itoa(*d.Spec.Replicas))
	}
	return strings.Join(out, ", ")
}

func itoa(n int32) string { return strconv.Itoa(int(n)) }

// addContext adds the admin context of kubeconfig to merged as name.
func addContext(t *testing.T, merged *clientcmdapi.Config, name, kubeconfig string) {
	t.Helper()
	cfg, err := clientcmd.LoadFromFile(kubeconfig)
	if err != nil {
		t.Fatal(err)
	}
	cur := cfg.Contexts[cfg.CurrentContext]
	merged.Clusters[name] = cfg.Clusters[cur.Cluster]
	merged.AuthInfos[name] = cfg.AuthInfos[cur.AuthInfo]
	merged.Contexts[name] = &clientcmdapi.Context{Cluster: name, AuthInfo: name}
}

// moreControllers runs the kube-controller-manager controllers the control
// plane's runs without: the StatefulSet controller (the balancer is one)
// and the namespace controller, which empties a deleted namespace and lets
// it go (destroy waits for that).
func moreControllers(t *testing.T, kubeconfig string) {
	t.Helper()
	bin, err := controlplane.FindBinDir()
	testbin.Need(t, err)
	ctx, cancel := context.WithCancel(context.Background())
	cmd := exec.CommandContext(ctx, filepath.Join(bin, "kube-controller-manager"),
		"--kubeconfig="+kubeconfig, "--leader-elect=false", "--secure-port=0", "--controllers=namespace-controller,statefulset-controller")
	cmd.WaitDelay = 5 * time.Second
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cancel(); _ = cmd.Wait() })
}
