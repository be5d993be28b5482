// Package controlplane starts real Kubernetes control planes on this
// machine — etcd and kube-apiserver through controller-runtime's envtest,
// optionally kube-controller-manager, kube-scheduler, metrics-server and
// kwok fake nodes (GPU nodes included) — from the pinned binaries that
// `make controlplane` builds into .cache/controlplane/bin. Tests use it
// through ForTest; `meridian up` uses Start.
package controlplane

import (
	"bufio"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"math/big"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/rest"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/envtest"

	"meridian.dev/meridian/internal/proc"
	"meridian.dev/meridian/internal/scheme"
)

// BinDirEnv overrides where the control-plane binaries are looked for.
const BinDirEnv = "MERIDIAN_CONTROLPLANE_BIN"

// GPUResource is the extended resource GPU nodes offer.
const GPUResource corev1.ResourceName = "nvidia.com/gpu"

// GPUProductLabel is the node label naming the GPU product (as NVIDIA's
// GPU feature discovery sets it).
const GPUProductLabel = "nvidia.com/gpu.product"

// Options say what to start. The zero value starts etcd and an API server
// with Meridian's CRDs installed.
type Options struct {
	// BinDir holds the binaries; default FindBinDir().
	BinDir string
	// NoCRDs skips installing Meridian's CRDs.
	NoCRDs bool
	// ControllerManager starts kube-controller-manager (Deployments,
	// ReplicaSets, HPAs, garbage collection).
	ControllerManager bool
	// Scheduler starts kube-scheduler.
	Scheduler bool
	// NodeLifecycle adds the controllers that watch real nodes (see
	// internal/node) to kube-controller-manager: node lifecycle (a node
	// whose kubelet stops reporting turns NotReady and is tainted), taint
	// eviction (its pods are evicted and replaced elsewhere) and pod
	// garbage collection. Their timings are Kubernetes' defaults.
	NodeLifecycle bool
	// MetricsServer starts metrics-server, which serves metrics.k8s.io —
	// the CPU and memory of pods and nodes, scraped from the kubelets of
	// real nodes (internal/node; kwok nodes have none) every
	// MetricsServerResolution — to the HPAs' Resource metrics and `kubectl
	// top`. Start returns once its APIService is Available.
	MetricsServer bool
	// HPADownscaleStabilization, when set, is kube-controller-manager's
	// --horizontal-pod-autoscaler-downscale-stabilization: how long an HPA
	// keeps the highest recommendation of the window before scaling down.
	// Kubernetes' default (zero here) is 5m; tests that watch a scale-down
	// shorten it.
	HPADownscaleStabilization time.Duration
	// Nodes are fake nodes, run by kwok, which is started when any is set.
	Nodes []Node
	// Logs receives the output of the processes started here (not of etcd
	// and the API server); nil discards it.
	Logs io.Writer
}

// Node is a fake node that kwok keeps Ready.
type Node struct {
	Name string
	// CPU and Memory allocatable, e.g. "8" and "32Gi" (defaults).
	CPU, Memory string
	// GPUs is the nvidia.com/gpu allocatable; GPUProduct its label value.
	GPUs       int64
	GPUProduct string
	// Labels are extra node labels.
	Labels map[string]string
}

// ControlPlane is a running control plane.
type ControlPlane struct {
	// Config reaches the API server as cluster admin.
	Config *rest.Config
	// Client is a controller-runtime client with the core and Meridian
	// types registered.
	Client client.Client
	// Kubeconfig is the path of an admin kubeconfig file for it.
	Kubeconfig string

	env    *envtest.Environment
	dir    string
	cancel context.CancelFunc
	procs  []*exec.Cmd
	done   []chan struct{}
}

// Scheme has the core Kubernetes and Meridian types.
var Scheme = scheme.Scheme

// RepoRoot finds the Meridian checkout around the working directory.
func RepoRoot() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		if b, err := os.ReadFile(filepath.Join(dir, "go.mod")); err == nil && strings.HasPrefix(string(b), "module meridian.dev/meridian\n") {
			return dir, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", errors.New("not inside a Meridian checkout")
		}
		dir = parent
	}
}

// FindBinDir returns $MERIDIAN_CONTROLPLANE_BIN, else $KUBEBUILDER_ASSETS,
// else .cache/controlplane/bin of the checkout, checking that it holds the
// binaries; the error says how to build them.
func FindBinDir() (string, error) {
	dir := os.Getenv(BinDirEnv)
	if dir == "" {
		dir = os.Getenv("KUBEBUILDER_ASSETS")
	}
	if dir == "" {
		root, err := RepoRoot()
		if err != nil {
			return "", fmt.Errorf("finding the control-plane binaries: %w; set %s", err, BinDirEnv)
		}
		dir = filepath.Join(root, ".cache", "controlplane", "bin")
	}
	for _, b := range []string{"kube-apiserver", "etcd", "kubectl"} {
		if _, err := os.Stat(filepath.Join(dir, b)); err != nil {
			return "", fmt.Errorf("control-plane binary %s missing in %s; run `make controlplane` (first build ~15 min)", b, dir)
		}
	}
	return filepath.Abs(dir)
}

// Start starts a control plane; Stop ends it.
func Start(ctx context.Context, opts Options) (*ControlPlane, error) {
	bin := opts.BinDir
	if bin == "" {
		var err error
		if bin, err = FindBinDir(); err != nil {
			return nil, err
		}
	}
	dir, err := os.MkdirTemp("", "meridian-controlplane-")
	if err != nil {
		return nil, err
	}
	env := &envtest.Environment{BinaryAssetsDirectory: bin, Scheme: Scheme, ErrorIfCRDPathMissing: true}
	if !opts.NoCRDs {
		root, err := RepoRoot()
		if err != nil {
			return nil, fmt.Errorf("finding crds/manifests: %w", err)
		}
		env.CRDDirectoryPaths = []string{filepath.Join(root, "crds", "manifests")}
	}
	if err := configureAggregation(env, dir); err != nil {
		_ = os.RemoveAll(dir)
		return nil, err
	}
	cfg, err := env.Start()
	if err != nil {
		_ = os.RemoveAll(dir)
		return nil, fmt.Errorf("starting etcd and kube-apiserver from %s: %w", bin, err)
	}
	cp := &ControlPlane{Config: cfg, env: env, dir: dir}
	if err := cp.setup(ctx, bin, opts); err != nil {
		_ = cp.Stop()
		return nil, err
	}
	return cp, nil
}

func (cp *ControlPlane) setup(ctx context.Context, bin string, opts Options) error {
	var err error
	if cp.Client, err = client.New(cp.Config, client.Options{Scheme: Scheme}); err != nil {
		return err
	}
	admin, err := cp.env.AddUser(envtest.User{Name: "meridian-admin", Groups: []string{"system:masters"}}, nil)
	if err != nil {
		return err
	}
	kubeconfig, err := admin.KubeConfig()
	if err != nil {
		return err
	}
	cp.Kubeconfig = filepath.Join(cp.dir, "kubeconfig")
	if err := os.WriteFile(cp.Kubeconfig, kubeconfig, 0o600); err != nil {
		return err
	}
	pctx, cancel := context.WithCancel(context.Background())
	cp.cancel = cancel
	if opts.ControllerManager {
		args := []string{"--kubeconfig=" + cp.Kubeconfig, "--leader-elect=false", "--secure-port=0",
			"--controllers=" + strings.Join(controllers(opts), ","),
			"--horizontal-pod-autoscaler-sync-period=5s", "--concurrent-deployment-syncs=2"}
		if opts.HPADownscaleStabilization > 0 {
			args = append(args, "--horizontal-pod-autoscaler-downscale-stabilization="+opts.HPADownscaleStabilization.String())
		}
		cp.run(pctx, opts.Logs, filepath.Join(bin, "kube-controller-manager"), args...)
	}
	if opts.Scheduler {
		cp.run(pctx, opts.Logs, filepath.Join(bin, "kube-scheduler"),
			"--kubeconfig="+cp.Kubeconfig, "--leader-elect=false", "--secure-port=0")
	}
	if opts.MetricsServer {
		if err := cp.startMetricsServer(ctx, pctx, bin, opts.Logs); err != nil {
			return err
		}
	}
	if len(opts.Nodes) > 0 {
		stages, _ := filepath.Glob(filepath.Join(bin, "kwok-stages", "*.yaml"))
		if len(stages) == 0 {
			return fmt.Errorf("kwok stage configs missing in %s/kwok-stages; run `make controlplane`", bin)
		}
		cp.run(pctx, opts.Logs, filepath.Join(bin, "kwok"),
			"--kubeconfig="+cp.Kubeconfig, "--config="+strings.Join(stages, ","),
			"--manage-all-nodes=false", "--manage-nodes-with-annotation-selector=kwok.x-k8s.io/node=fake",
			"--server-address=127.0.0.1:0")
		for _, n := range opts.Nodes {
			node := n.object()
			if err := cp.Client.Create(ctx, node); err != nil {
				return fmt.Errorf("creating fake node %s: %w", n.Name, err)
			}
			// The API server's TaintNodesByCondition admission taints every
			// new node node.kubernetes.io/not-ready:NoSchedule; the node
			// lifecycle controller, which is not started here, would lift it
			// once the node is Ready. kwok keeps the node Ready, so lift it
			// now, or the scheduler never places a pod on it.
			untainted := node.DeepCopy()
			untainted.Spec.Taints = nil
			for _, t := range node.Spec.Taints {
				if t.Key != corev1.TaintNodeNotReady {
					untainted.Spec.Taints = append(untainted.Spec.Taints, t)
				}
			}
			if err := cp.Client.Patch(ctx, untainted, client.MergeFrom(node)); err != nil {
				return fmt.Errorf("removing the not-ready taint of fake node %s: %w", n.Name, err)
			}
		}
	}
	return nil
}

// controllers are the kube-controller-manager controllers opts ask for.
func controllers(opts Options) []string {
	c := []string{"deployment-controller", "replicaset-controller", "horizontal-pod-autoscaler-controller",
		"garbage-collector-controller", "endpointslice-controller"}
	if opts.NodeLifecycle {
		c = append(c, "node-lifecycle-controller", "taint-eviction-controller", "pod-garbage-collector-controller")
	}
	return c
}

// run starts a control-plane process that lives until Stop; the channel
// is closed when it has exited.
func (cp *ControlPlane) run(ctx context.Context, logs io.Writer, path string, args ...string) <-chan struct{} {
	name := filepath.Base(path)
	cmd := exec.CommandContext(ctx, path, args...)
	cmd.WaitDelay = 5 * time.Second
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL} // never outlive a killed test
	if logs != nil {
		pr, pw := io.Pipe()
		cmd.Stdout, cmd.Stderr = pw, pw
		go func() {
			s := bufio.NewScanner(pr)
			for s.Scan() {
				fmt.Fprintf(logs, "%s: %s\n", name, s.Text())
			}
		}()
		defer func() {
			go func() { <-ctx.Done(); _ = pw.Close() }()
		}()
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
	cp.procs = append(cp.procs, cmd)
	cp.done = append(cp.done, done)
	return done
}

// Kill crashes the control plane — etcd, kube-apiserver and the processes
// Options added — with SIGKILL and no warning, as a lost machine would;
// Stop still cleans up after it.
func (cp *ControlPlane) Kill() error {
	var pids []int
	for _, c := range cp.procs {
		if c.Process != nil {
			pids = append(pids, c.Process.Pid)
		}
	}
	// envtest starts etcd and the API server itself; their own data and
	// certificate directories name them.
	if s := cp.env.ControlPlane.APIServer; s != nil && s.CertDir != "" {
		pids = append(pids, proc.Matching("--cert-dir="+s.CertDir)...)
	}
	if e := cp.env.ControlPlane.Etcd; e != nil && e.DataDir != "" {
		pids = append(pids, proc.Matching("--data-dir="+e.DataDir)...)
	}
	return proc.Kill(pids)
}

// Stop ends every process and removes the control plane's files.
func (cp *ControlPlane) Stop() error {
	if cp.cancel != nil {
		cp.cancel()
	}
	for _, d := range cp.done {
		<-d
	}
	err := cp.env.Stop()
	_ = os.RemoveAll(cp.dir)
	return err
}

func (n Node) object() *corev1.Node {
	cpu, mem := n.CPU, n.Memory
	if cpu == "" {
		cpu = "8"
	}
	if mem == "" {
		mem = "32Gi"
	}
	alloc := corev1.ResourceList{
		corev1.ResourceCPU:    resource.MustParse(cpu),
		corev1.ResourceMemory: resource.MustParse(mem),
		corev1.ResourcePods:   resource.MustParse("110"),
	}
	labels := map[string]string{"kubernetes.io/hostname": n.Name, "kubernetes.io/os": "linux", "type": "kwok"}
	if n.GPUs > 0 {
		alloc[GPUResource] = *resource.NewQuantity(n.GPUs, resource.DecimalSI)
		labels[GPUProductLabel] = n.GPUProduct
	}
	for k, v := range n.Labels {
		labels[k] = v
	}
	return &corev1.Node{
		ObjectMeta: metav1.ObjectMeta{
			Name:        n.Name,
			Labels:      labels,
			Annotations: map[string]string{"kwok.x-k8s.io/node": "fake"},
		},
		Status: corev1.NodeStatus{Allocatable: alloc, Capacity: alloc},
	}
}

// configureAggregation sets up the API server's aggregation layer, so that
// extension API servers (the agent's custom.metrics.k8s.io and
// external.metrics.k8s.io adapter) can be registered with APIServices: a
// front-proxy CA and the client certificate the API server presents when it
// proxies to them, written into dir, and the requestheader flags that it
// publishes in kube-system/extension-apiserver-authentication for them to
// authenticate it. With --enable-aggregator-routing the API server dials an
// APIService's endpoint IPs directly: there is no kube-proxy to route a
// Service's cluster IP. --kubelet-preferred-address-types=InternalIP is for
// real kubelets, whose node names do not resolve here.
func configureAggregation(env *envtest.Environment, dir string) error {
	ca, caKey, err := newCert(pkix.Name{CommonName: "front-proxy-ca"}, nil, nil)
	if err != nil {
		return fmt.Errorf("front-proxy CA: %w", err)
	}
	client, clientKey, err := newCert(pkix.Name{CommonName: "front-proxy-client"}, ca, caKey)
	if err != nil {
		return fmt.Errorf("front-proxy client certificate: %w", err)
	}
	files := map[string][]byte{"front-proxy-ca.crt": ca.Raw, "front-proxy-client.crt": client.Raw}
	for name, der := range files {
		if err := os.WriteFile(filepath.Join(dir, name), pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o600); err != nil {
			return err
		}
	}
	keyDER, err := x509.MarshalPKCS8PrivateKey(clientKey)
	if err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(dir, "front-proxy-client.key"), pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: keyDER}), 0o600); err != nil {
		return err
	}
	env.ControlPlane.GetAPIServer().Configure().
		Set("requestheader-client-ca-file", filepath.Join(dir, "front-proxy-ca.crt")).
		Set("requestheader-allowed-names", "front-proxy-client").
		Set("requestheader-extra-headers-prefix", "X-Remote-Extra-").
		Set("requestheader-group-headers", "X-Remote-Group").
		Set("requestheader-username-headers", "X-Remote-User").
		Set("proxy-client-cert-file", filepath.Join(dir, "front-proxy-client.crt")).
		Set("proxy-client-key-file", filepath.Join(dir, "front-proxy-client.key")).
		Set("enable-aggregator-routing", "true").
		Set("kubelet-preferred-address-types", "InternalIP")
	return nil
}

// newCert makes an ECDSA certificate valid for a year: a CA when parent is
// nil (self-signed), else one signed by parent — a serving certificate for
// hosts (DNS names and IPs) when any is given, else a client certificate.
func newCert(subject pkix.Name, parent *x509.Certificate, parentKey *ecdsa.PrivateKey, hosts ...string) (*x509.Certificate, *ecdsa.PrivateKey, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, nil, err
	}
	serial, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 62))
	if err != nil {
		return nil, nil, err
	}
	tmpl := &x509.Certificate{
		SerialNumber: serial,
		Subject:      subject,
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(365 * 24 * time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth},
	}
	for _, h := range hosts {
		if ip := net.ParseIP(h); ip != nil {
			tmpl.IPAddresses = append(tmpl.IPAddresses, ip)
		} else {
			tmpl.DNSNames = append(tmpl.DNSNames, h)
		}
	}
	if len(hosts) > 0 {
		tmpl.ExtKeyUsage = []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}
	}
	signer, signerKey := tmpl, key
	if parent == nil {
		tmpl.IsCA, tmpl.BasicConstraintsValid = true, true
		tmpl.KeyUsage |= x509.KeyUsageCertSign
		tmpl.ExtKeyUsage = nil
	} else {
		signer, signerKey = parent, parentKey
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, signer, &key.PublicKey, signerKey)
	if err != nil {
		return nil, nil, err
	}
	cert, err := x509.ParseCertificate(der)
	return cert, key, err
}
