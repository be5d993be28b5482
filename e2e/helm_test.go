package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"maps"
	"net"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/miekg/dns"
	authnv1 "k8s.io/api/authentication/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/clientcmd"
	clientcmdapi "k8s.io/client-go/tools/clientcmd/api"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"meridian.dev/meridian/charts"
	v1 "meridian.dev/meridian/crds/v1alpha1"
	"meridian.dev/meridian/hub/membership"
	"meridian.dev/meridian/internal/controlplane"
	"meridian.dev/meridian/internal/netfault"
	"meridian.dev/meridian/internal/node"
	"meridian.dev/meridian/internal/testbin"
)

const helmNamespace = "meridian-system"

// `helm install` of the chart onto a cluster with a real node: the hub,
// the agent and the balancer run as pods of Meridian's image, under the
// chart's ServiceAccounts and generated RBAC, and work. The one cluster is
// the hub and its own push member, which the hub reaches with a token of
// the chart's hub-access ServiceAccount (its minimal ClusterRole). The
// agent's heartbeat reaches the hub's Cluster, a model the hub places runs
// as a pod the agent made, and the balancer answers DNS for its zone and
// writes its DemandReport.
//
// The local control plane runs no ServiceAccount admission nor token
// controllers, and pods cannot reach its loopback address, so each
// component gets a kubeconfig Secret (the chart's kubeconfigSecret)
// holding a token of its own ServiceAccount and the API server's address
// on the node's bridge: the identity, and so the RBAC under test, is the
// chart's.
func TestHelmInstallRunsEveryComponent(t *testing.T) {
	c := newHelmCluster(t, "helm-node-1")
	start := time.Now()
	c.install(t, helmValues)
	for _, comp := range []string{"hub", "agent", "glb"} {
		c.kubeconfigSecret(t, "meridian-"+comp, "meridian-"+comp+"-kubeconfig", nil)
	}
	// The hub's kubeconfig for its push member "eu-west-1", as an admin
	// would make it: the member's hub-access ServiceAccount.
	c.kubeconfigSecret(t, "meridian-hub-access", "eu-west-1", map[string]string{membership.KubeconfigLabel: "true"})
	cp, cs := c.cp, c.cs

	ctx := context.Background()
	testbin.Eventually(t, "the hub's two, the agent's and the balancer's pods Ready", 3*time.Minute, func() bool {
		return podsReady(t, cp.Client, helmNamespace, 4)
	})
	t.Logf("helm install to every pod Ready: %s", time.Since(start).Round(time.Second))
	hubFailsOver(t, cs)

	testbin.Eventually(t, "the agent's heartbeat in Cluster eu-west-1, health Ready", 2*time.Minute, func() bool {
		var c v1.Cluster
		return cp.Client.Get(ctx, client.ObjectKey{Name: "eu-west-1"}, &c) == nil && c.Status.Health == v1.HealthReady
	})

	placeSentiment(t, cp.Client)

	glb := podIP(t, cp.Client, helmNamespace, "glb")
	testbin.Eventually(t, "the balancer's authoritative answer for its zone", time.Minute, func() bool {
		return soa(net.JoinHostPort(glb, "5353"), "infer.example.com")
	})
	testbin.Eventually(t, "the balancer's DemandReport on the hub", time.Minute, func() bool {
		var r v1.DemandReport
		return cp.Client.Get(ctx, client.ObjectKey{Name: "pop-0"}, &r) == nil
	})

	logs := podLogs(t, cs, helmNamespace)
	for _, comp := range []string{"meridian-hub-", "meridian-agent-", "meridian-glb-"} {
		if !slices.ContainsFunc(slices.Collect(maps.Keys(logs)), func(pod string) bool { return strings.HasPrefix(pod, comp) && logs[pod] != "" }) {
			t.Errorf("no logs of %s* among %v", comp, slices.Collect(maps.Keys(logs)))
		}
	}
	noneRefused(t, c)
}

// A pull member installed with the chart joins a hub installed with the
// chart, in another cluster: its agent exchanges the join bundle (from
// `meridian member add`) for its own credential, kept in the Secret the
// chart's Role lets it write, and its reports reach the hub, which holds
// no credential for the member.
func TestHelmInstallPullMember(t *testing.T) {
	hub := newHelmCluster(t, "helm-hub-1")
	hub.install(t, `
hub: {enabled: true, replicas: 1, leaderElection: false, kubeconfigSecret: meridian-hub-kubeconfig}
`)
	hub.kubeconfigSecret(t, "meridian-hub", "meridian-hub-kubeconfig", nil)

	ctx := context.Background()
	bundle, err := membership.Add(ctx, hub.cp.Client, membership.AddOptions{
		Name: "on-prem-1", Identity: v1.ClusterIdentity{Region: "eu-central"},
		Server: hub.server, CAData: hub.cp.Config.CAData, TLSServerName: "127.0.0.1",
	})
	if err != nil {
		t.Fatal(err)
	}
	join, err := json.Marshal(bundle)
	if err != nil {
		t.Fatal(err)
	}
	member := newHelmCluster(t, "helm-member-1")
	if _, err := member.cs.CoreV1().Secrets(helmNamespace).Create(ctx, &corev1.Secret{
		ObjectMeta: metav1.ObjectMeta{Name: "meridian-hub-join", Namespace: helmNamespace},
		Data:       map[string][]byte{"bundle.json": join},
	}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	member.install(t, `
agent:
  enabled: true
  clusterName: on-prem-1
  region: eu-central
  membership: {mode: pull}
  kubeconfigSecret: meridian-agent-kubeconfig
`)
	member.kubeconfigSecret(t, "meridian-agent", "meridian-agent-kubeconfig", nil)

	testbin.Eventually(t, "the hub's and the member's agent's pods Ready", 3*time.Minute, func() bool {
		return podsReady(t, hub.cp.Client, helmNamespace, 1) && podsReady(t, member.cp.Client, helmNamespace, 1)
	})
	testbin.Eventually(t, "the agent's credential in Secret meridian-hub-credential", time.Minute, func() bool {
		_, err := member.cs.CoreV1().Secrets(helmNamespace).Get(ctx, "meridian-hub-credential", metav1.GetOptions{})
		return err == nil
	})
	testbin.Eventually(t, "Cluster on-prem-1 Ready on the hub, from the reports the agent pushes", 2*time.Minute, func() bool {
		var c v1.Cluster
		return hub.cp.Client.Get(ctx, client.ObjectKey{Name: "on-prem-1"}, &c) == nil && c.Status.Health == v1.HealthReady
	})
	placeSentiment(t, hub.cp.Client)
	noneRefused(t, hub)
	noneRefused(t, member)
}

// helmValues installs every component, each reaching the API server
// through its kubeconfig Secret; two hub replicas, one leading.
const helmValues = `
logFormat: text
hub:
  enabled: true
  kubeconfigSecret: meridian-hub-kubeconfig
agent:
  enabled: true
  clusterName: eu-west-1
  region: eu-west
  latitude: "53.35"
  longitude: "-6.26"
  membership: {push: {hubAccess: true}}
  placeholderImage: meridian.local/pause:3.10
  kubeconfigSecret: meridian-agent-kubeconfig
glb:
  enabled: true
  replicas: 1
  zone: infer.example.com
  site: pop
  demandPeriod: 2s
  service: {type: ClusterIP}
  kubeconfigSecret: meridian-glb-kubeconfig
`

// placeSentiment creates the InferenceModel sentiment on the hub (one
// replica) and waits until a replica is Ready: placed by the hub, run by
// the agent as a pod.
func placeSentiment(t *testing.T, hub client.Client) {
	t.Helper()
	ctx := context.Background()
	im := &v1.InferenceModel{
		ObjectMeta: metav1.ObjectMeta{Name: "sentiment", Namespace: "default"},
		Spec: v1.InferenceModelSpec{
			Model:       v1.ModelSource{Name: "sentiment"},
			Resources:   v1.Resources{CPU: resource.MustParse("100m"), Memory: resource.MustParse("256Mi")},
			Autoscaling: v1.Autoscaling{MinReplicas: ptr.To[int32](1), MaxReplicas: 1},
		},
	}
	if err := hub.Create(ctx, im); err != nil {
		t.Fatal(err)
	}
	testbin.Eventually(t, "sentiment placed and its replica Ready (a pod the agent made)", 3*time.Minute, func() bool {
		var got v1.InferenceModel
		return hub.Get(ctx, client.ObjectKeyFromObject(im), &got) == nil && got.Status.ReadyReplicas >= 1
	})
}

// noneRefused asserts that the generated RBAC is enough: no request of
// any component in c was refused.
func noneRefused(t *testing.T, c *helmCluster) {
	t.Helper()
	for pod, log := range podLogs(t, c.cs, helmNamespace) {
		for line := range strings.SplitSeq(log, "\n") {
			if strings.Contains(line, "forbidden") {
				t.Errorf("%s was refused: %s", pod, line)
			}
		}
	}
}

// hubFailsOver deletes the hub replica that holds the Lease meridian-hub
// and checks that the other one takes it over.
func hubFailsOver(t *testing.T, cs kubernetes.Interface) {
	t.Helper()
	ctx := context.Background()
	holder := func() string {
		l, err := cs.CoordinationV1().Leases(helmNamespace).Get(ctx, "meridian-hub", metav1.GetOptions{})
		if err != nil || l.Spec.HolderIdentity == nil {
			return ""
		}
		pod, _, _ := strings.Cut(*l.Spec.HolderIdentity, "_") // <host name>_<id>
		return pod
	}
	var leader string
	testbin.Eventually(t, "a hub replica holding the Lease meridian-hub", time.Minute, func() bool {
		leader = holder()
		return leader != ""
	})
	start := time.Now()
	if err := cs.CoreV1().Pods(helmNamespace).Delete(ctx, leader, metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	testbin.Eventually(t, "the other hub replica taking the Lease over from "+leader, time.Minute, func() bool {
		h := holder()
		return h != "" && h != leader
	})
	t.Logf("hub leader %s deleted; the other replica leads after %s", leader, time.Since(start).Round(100*time.Millisecond))
}

// statefulSetController runs kube-controller-manager's StatefulSet
// controller, which the local control plane leaves out, for the balancer's
// StatefulSet.
func statefulSetController(t *testing.T, kubeconfig string) {
	t.Helper()
	bin, err := controlplane.FindBinDir()
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(filepath.Join(bin, "kube-controller-manager"), "--kubeconfig="+kubeconfig,
		"--leader-elect=false", "--secure-port=0", "--controllers=statefulset-controller")
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
}

// helmCluster is a control plane with one real node, Meridian's image
// served to it, and its API server reachable from the pods through a
// proxy on the node's address.
type helmCluster struct {
	cp *controlplane.ControlPlane
	cs kubernetes.Interface
	// server is the API server's URL as the pods reach it; its
	// certificate names 127.0.0.1, where the proxy forwards to.
	server string
	// image is Meridian's image by digest.
	image string
}

func newHelmCluster(t *testing.T, nodeName string) *helmCluster {
	t.Helper()
	cp := controlplane.ForTest(t, controlplane.Options{NoCRDs: true, ControllerManager: true, Scheduler: true, NodeLifecycle: true})
	statefulSetController(t, cp.Kubeconfig)
	n, image := node.ForTest(t, nodeName, cp.Kubeconfig)
	api, err := url.Parse(cp.Config.Host)
	if err != nil {
		t.Fatal(err)
	}
	proxy, err := netfault.NewProxyOn(n.IP, api.Host)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(proxy.Cut)
	c := &helmCluster{cp: cp, cs: kubernetes.NewForConfigOrDie(cp.Config), server: "https://" + proxy.Addr(), image: image}
	// The API server's Pod Security admission refuses any pod of the
	// chart that breaks the restricted profile.
	ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: helmNamespace, Labels: map[string]string{"pod-security.kubernetes.io/enforce": "restricted"}}}
	if _, err := c.cs.CoreV1().Namespaces().Create(context.Background(), ns, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if t.Failed() {
			dumpPods(t, c.cs, helmNamespace)
		}
	})
	return c
}

// install runs helm install of the chart with values and Meridian's image.
func (c *helmCluster) install(t *testing.T, values string) {
	t.Helper()
	repo, digest, ok := strings.Cut(c.image, "@")
	if !ok {
		t.Fatalf("image %q is not by digest", c.image)
	}
	file := filepath.Join(t.TempDir(), "values.yaml")
	writeFile(t, file, fmt.Sprintf("image: {repository: %s, digest: %q}\n%s", repo, digest, values))
	install := []string{"install", "meridian", charts.Dir(), "--kubeconfig", c.cp.Kubeconfig,
		"--namespace", helmNamespace, "--values", file}
	if out, err := charts.Run(t, install...); err != nil {
		t.Fatalf("helm %s: %v\n%s", strings.Join(install, " "), err, out)
	}
}

// kubeconfigSecret writes Secret name (key kubeconfig) in the chart's
// namespace: the API server as the pods reach it, with a token of
// ServiceAccount sa.
func (c *helmCluster) kubeconfigSecret(t *testing.T, sa, name string, labels map[string]string) {
	t.Helper()
	ctx, cs := context.Background(), c.cs
	var tok *authnv1.TokenRequest
	testbin.Eventually(t, "a token of ServiceAccount "+sa, 30*time.Second, func() bool {
		var err error
		tok, err = cs.CoreV1().ServiceAccounts(helmNamespace).CreateToken(ctx, sa,
			&authnv1.TokenRequest{Spec: authnv1.TokenRequestSpec{ExpirationSeconds: ptr.To[int64](3600)}}, metav1.CreateOptions{})
		return err == nil
	})
	cfg := clientcmdapi.NewConfig()
	cfg.Clusters["c"] = &clientcmdapi.Cluster{Server: c.server, CertificateAuthorityData: c.cp.Config.CAData, TLSServerName: "127.0.0.1"}
	cfg.AuthInfos["u"] = &clientcmdapi.AuthInfo{Token: tok.Status.Token}
	cfg.Contexts["c"] = &clientcmdapi.Context{Cluster: "c", AuthInfo: "u"}
	cfg.CurrentContext = "c"
	b, err := clientcmd.Write(*cfg)
	if err != nil {
		t.Fatal(err)
	}
	s := &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: helmNamespace, Labels: labels}, Data: map[string][]byte{"kubeconfig": b}}
	if _, err := cs.CoreV1().Secrets(helmNamespace).Create(ctx, s, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
}

// podsReady says whether want pods of the release run in namespace, each
// Ready; it logs the others' state.
func podsReady(t *testing.T, c client.Client, namespace string, want int) bool {
	t.Helper()
	var pods corev1.PodList
	if err := c.List(context.Background(), &pods, client.InNamespace(namespace), client.MatchingLabels{"app.kubernetes.io/instance": "meridian"}); err != nil {
		return false
	}
	ready := 0
	for _, p := range pods.Items {
		for _, cond := range p.Status.Conditions {
			if cond.Type == corev1.PodReady && cond.Status == corev1.ConditionTrue {
				ready++
			}
		}
	}
	return ready == want && len(pods.Items) == want
}

// podIP is the address of the first pod of component.
func podIP(t *testing.T, c client.Client, namespace, component string) string {
	t.Helper()
	var pods corev1.PodList
	if err := c.List(context.Background(), &pods, client.InNamespace(namespace), client.MatchingLabels{"app.kubernetes.io/component": component}); err != nil || len(pods.Items) == 0 {
		t.Fatalf("pods of %s: %v", component, err)
	}
	return pods.Items[0].Status.PodIP
}

// dumpPods logs the state and the last log lines of every pod in
// namespace, for a failed test.
func dumpPods(t *testing.T, cs kubernetes.Interface, namespace string) {
	ctx := context.Background()
	pods, err := cs.CoreV1().Pods(namespace).List(ctx, metav1.ListOptions{})
	if err != nil {
		t.Logf("listing pods: %v", err)
		return
	}
	if events, err := cs.CoreV1().Events(namespace).List(ctx, metav1.ListOptions{}); err == nil {
		for _, e := range events.Items {
			t.Logf("event %s %s: %s %s", e.InvolvedObject.Kind, e.InvolvedObject.Name, e.Reason, e.Message)
		}
	}
	for _, p := range pods.Items {
		t.Logf("pod %s on %q: %s %+v %+v", p.Name, p.Spec.NodeName, p.Status.Phase, p.Status.Conditions, p.Status.ContainerStatuses)
	}
	for pod, log := range podLogs(t, cs, namespace) {
		lines := strings.Split(strings.TrimSpace(log), "\n")
		t.Logf("logs of %s:\n%s", pod, strings.Join(lines[max(0, len(lines)-30):], "\n"))
	}
}

// podLogs returns the logs of every container of the pods in namespace,
// by pod name, from the kubelet's files: the local API server cannot read
// logs through the kubelets (it has no kubelet client certificate).
func podLogs(t *testing.T, cs kubernetes.Interface, namespace string) map[string]string {
	t.Helper()
	pods, err := cs.CoreV1().Pods(namespace).List(context.Background(), metav1.ListOptions{})
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]string{}
	for _, p := range pods.Items {
		files, _ := filepath.Glob(filepath.Join(node.DataRoot, "*", "pod-logs", namespace+"_"+p.Name+"_"+string(p.UID), "*", "*.log"))
		for _, f := range files {
			b, _ := os.ReadFile(f)
			out[p.Name] += string(b)
		}
	}
	return out
}

// soa says whether server answers the SOA of zone with authority.
func soa(server, zone string) bool {
	m := new(dns.Msg)
	m.SetQuestion(dns.Fqdn(zone), dns.TypeSOA)
	r, _, err := (&dns.Client{Timeout: 2 * time.Second}).Exchange(m, server)
	return err == nil && r.Authoritative && r.Rcode == dns.RcodeSuccess
}

func writeFile(t *testing.T, path, content string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
}
