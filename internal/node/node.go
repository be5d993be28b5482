package node

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/client-go/tools/clientcmd"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"meridian.dev/meridian/internal/scheme"
)

// KubeletPort is where every node's kubelet serves its API (on the node's
// own address), as in any cluster.
const KubeletPort = 10250

// Options say what node to start.
type Options struct {
	// Name of the Node object; required.
	Name string
	// Kubeconfig reaches the control plane's API server with a credential
	// that may register nodes and review tokens (an admin one locally).
	Kubeconfig string
	// KubeletPath is the kubelet binary; default the kubelet of `make
	// controlplane` (.cache/controlplane/bin/kubelet).
	KubeletPath string
	// PauseImage is the sandbox image every pod starts with; it must be
	// pullable through Mirrors (nothing is pulled from the internet).
	PauseImage string
	// Mirrors maps a registry name used in image references (e.g.
	// "meridian.local") to the host:port of a registry serving it over
	// plain HTTP.
	Mirrors map[string]string
	// Labels are added to the node's labels.
	Labels map[string]string
	// ReadyTimeout bounds how long Start waits for the node to be Ready;
	// default 90s.
	ReadyTimeout time.Duration
	// Logs receives the kubelet's and containerd's output, each line
	// prefixed with the node and program; nil discards it.
	Logs io.Writer
}

// Node is a running worker node.
type Node struct {
	// Name of the Node object.
	Name string
	// IP is the node's InternalIP, where its kubelet listens.
	IP string
	// PodCIDR is the range its pods' addresses come from.
	PodCIDR string

	opts      Options
	slot      slot
	cniBinDir string

	mu    sync.Mutex
	procs map[string]*proc
}

type proc struct {
	cmd  *exec.Cmd
	done chan struct{}
	tail *tailBuffer
}

// cniPluginDirs are where Debian (and the upstream tarball) put the CNI
// plugins.
var cniPluginDirs = []string{"/usr/lib/cni", "/opt/cni/bin"}

// Available reports what is missing to run real nodes here, or "" when
// nothing is. The kubelet is looked for at kubeletPath.
func Available(kubeletPath string) string {
	if os.Geteuid() != 0 {
		return "real nodes need root (containerd, cgroups, bridges); run as root, as .ci/run does"
	}
	var missing []string
	for _, b := range []string{"containerd", "runc", "ip"} {
		if _, err := exec.LookPath(b); err != nil {
			missing = append(missing, b)
		}
	}
	if cniDir() == "" {
		missing = append(missing, "CNI plugins (bridge, host-local)")
	}
	if len(missing) > 0 {
		return fmt.Sprintf("%s missing: install Debian's containerd, runc, containernetworking-plugins and iproute2 (apt-get install containerd runc containernetworking-plugins iproute2)",
			strings.Join(missing, ", "))
	}
	if _, err := os.Stat(kubeletPath); err != nil {
		return fmt.Sprintf("kubelet missing at %s: run `make controlplane`", kubeletPath)
	}
	return ""
}

func cniDir() string {
	for _, d := range cniPluginDirs {
		if _, err := os.Stat(filepath.Join(d, "bridge")); err == nil {
			if _, err := os.Stat(filepath.Join(d, "host-local")); err == nil {
				return d
			}
		}
	}
	return ""
}

// Start starts a node and waits until its Node object is Ready. Stop ends
// it.
func Start(ctx context.Context, opts Options) (*Node, error) {
	if opts.Name == "" || opts.Kubeconfig == "" || opts.PauseImage == "" || opts.KubeletPath == "" {
		return nil, errors.New("starting a node: Name, Kubeconfig, KubeletPath and PauseImage are required")
	}
	if why := Available(opts.KubeletPath); why != "" {
		return nil, fmt.Errorf("starting node %s: %s", opts.Name, why)
	}
	if opts.ReadyTimeout <= 0 {
		opts.ReadyTimeout = 90 * time.Second
	}
	s, err := claimSlot()
	if err != nil {
		return nil, fmt.Errorf("starting node %s: %w", opts.Name, err)
	}
	n := &Node{Name: opts.Name, IP: s.ip(), PodCIDR: s.subnet(), opts: opts, slot: s, cniBinDir: cniDir(), procs: map[string]*proc{}}
	if err := n.start(ctx); err != nil {
		n.Stop()
		return nil, fmt.Errorf("starting node %s: %w", opts.Name, err)
	}
	return n, nil
}

func (n *Node) start(ctx context.Context) error {
	s := n.slot
	for _, step := range [][]string{
		{"ip", "link", "add", s.bridge(), "type", "bridge"},
		{"ip", "addr", "add", s.ip() + "/24", "dev", s.bridge()},
		{"ip", "link", "set", s.bridge(), "up"},
	} {
		if out, err := exec.Command(step[0], step[1:]...).CombinedOutput(); err != nil {
			return fmt.Errorf("making the node's bridge (%s): %w: %s", strings.Join(step, " "), err, out)
		}
	}
	for _, cg := range []string{s.sysCgroup(), s.podCgroup()} {
		if err := makeCgroup(cg); err != nil {
			return fmt.Errorf("preparing cgroups: %w", err)
		}
	}
	files := map[string]string{
		"containerd.toml":          n.containerdConfig(),
		"cni/10-meridian.conflist": n.cniConfig(),
		"kubelet.yaml":             n.kubeletConfig(),
	}
	for reg, mirror := range n.opts.Mirrors {
		files[filepath.Join("certs.d", reg, "hosts.toml")] = hostsTOML(reg, mirror)
	}
	if err := writeFiles(s.stateDir(), files); err != nil {
		return fmt.Errorf("writing the node's configuration: %w", err)
	}
	if err := os.MkdirAll(s.dataDir(), 0o755); err != nil {
		return err
	}
	if err := n.run("containerd", "containerd", "--config", filepath.Join(s.stateDir(), "containerd.toml")); err != nil {
		return err
	}
	if err := n.waitSocket(ctx, s.containerd()); err != nil {
		return err
	}
	args := []string{
		"--config=" + filepath.Join(s.stateDir(), "kubelet.yaml"),
		"--kubeconfig=" + n.opts.Kubeconfig,
		"--hostname-override=" + n.Name,
		"--node-ip=" + n.IP,
		"--root-dir=" + filepath.Join(s.dataDir(), "kubelet"),
		"--cert-dir=" + filepath.Join(s.dataDir(), "pki"),
	}
	if len(n.opts.Labels) > 0 {
		args = append(args, "--node-labels="+labelFlag(n.opts.Labels))
	}
	if err := n.run("kubelet", n.opts.KubeletPath, args...); err != nil {
		return err
	}
	return n.waitReady(ctx)
}

// run starts a program of the node inside its system cgroup.
func (n *Node) run(name, path string, args ...string) error {
	cmd := exec.Command(path, args...)
	tail := &tailBuffer{max: 40}
	var out io.Writer = tail
	if n.opts.Logs != nil {
		out = io.MultiWriter(tail, &prefixWriter{w: n.opts.Logs, prefix: n.Name + "/" + name + ": "})
	}
	cmd.Stdout, cmd.Stderr = out, out
	// Never outlive the process that started the node; a killed test's
	// containers are swept by the slot's next holder.
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("starting %s: %w", name, err)
	}
	if err := joinCgroup(n.slot.sysCgroup(), cmd.Process.Pid); err != nil {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
		return err
	}
	p := &proc{cmd: cmd, done: make(chan struct{}), tail: tail}
	go func() { _ = cmd.Wait(); close(p.done) }()
	n.mu.Lock()
	n.procs[name] = p
	n.mu.Unlock()
	return nil
}

// exited returns an error naming the first of the node's programs that
// has exited, with the end of its output.
func (n *Node) exited() error {
	n.mu.Lock()
	defer n.mu.Unlock()
	for name, p := range n.procs {
		select {
		case <-p.done:
			return fmt.Errorf("%s exited (%v); its last output:\n%s", name, p.cmd.ProcessState, p.tail.String())
		default:
		}
	}
	return nil
}

func (n *Node) waitSocket(ctx context.Context, path string) error {
	deadline := time.Now().Add(30 * time.Second)
	for {
		if _, err := os.Stat(path); err == nil {
			return nil
		}
		if err := n.exited(); err != nil {
			return err
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("containerd made no socket at %s within 30s", path)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(100 * time.Millisecond):
		}
	}
}

func (n *Node) waitReady(ctx context.Context) error {
	cfg, err := clientcmd.BuildConfigFromFlags("", n.opts.Kubeconfig)
	if err != nil {
		return fmt.Errorf("reading %s: %w", n.opts.Kubeconfig, err)
	}
	c, err := client.New(cfg, client.Options{Scheme: scheme.Scheme})
	if err != nil {
		return err
	}
	deadline := time.Now().Add(n.opts.ReadyTimeout)
	last := "not registered yet"
	for {
		node := &corev1.Node{}
		if err := c.Get(ctx, client.ObjectKey{Name: n.Name}, node); err == nil {
			for _, cond := range node.Status.Conditions {
				if cond.Type == corev1.NodeReady {
					if cond.Status == corev1.ConditionTrue {
						return nil
					}
					last = cond.Reason + ": " + cond.Message
				}
			}
		}
		if err := n.exited(); err != nil {
			return err
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("not Ready within %v (%s); kubelet's last output:\n%s", n.opts.ReadyTimeout, last, n.tail("kubelet"))
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(250 * time.Millisecond):
		}
	}
}

func (n *Node) tail(name string) string {
	n.mu.Lock()
	defer n.mu.Unlock()
	if p := n.procs[name]; p != nil {
		return p.tail.String()
	}
	return ""
}

// KillKubelet kills the node's kubelet with SIGKILL, as a crashed or cut
// off kubelet: its containers keep running, the node stops reporting, and
// the control plane's node lifecycle controller takes it from there.
func (n *Node) KillKubelet() {
	n.mu.Lock()
	p := n.procs["kubelet"]
	n.mu.Unlock()
	if p != nil {
		_ = p.cmd.Process.Kill()
		<-p.done
	}
}

// Stop ends the node: every container, containerd and the kubelet are
// killed, its mounts, bridge, cgroups and files removed, and its slot
// freed. The Node object stays in the API server.
func (n *Node) Stop() {
	_ = n.slot.sweep()
	n.mu.Lock()
	for _, p := range n.procs {
		<-p.done
	}
	n.procs = map[string]*proc{}
	n.mu.Unlock()
	n.slot.release()
}

// prefixWriter writes each line to w with a prefix.
type prefixWriter struct {
	mu     sync.Mutex
	w      io.Writer
	prefix string
	buf    []byte
}

func (p *prefixWriter) Write(b []byte) (int, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.buf = append(p.buf, b...)
	for {
		i := strings.IndexByte(string(p.buf), '\n')
		if i < 0 {
			return len(b), nil
		}
		fmt.Fprintf(p.w, "%s%s\n", p.prefix, p.buf[:i])
		p.buf = p.buf[i+1:]
	}
}

// tailBuffer keeps the last max lines written to it.
type tailBuffer struct {
	mu    sync.Mutex
	max   int
	lines []string
	part  string
}

func (t *tailBuffer) Write(b []byte) (int, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	s := bufio.NewScanner(strings.NewReader(t.part + string(b)))
	t.part = ""
	complete := strings.HasSuffix(string(b), "\n")
	var got []string
	for s.Scan() {
		got = append(got, s.Text())
	}
	if !complete && len(got) > 0 {
		t.part = got[len(got)-1]
		got = got[:len(got)-1]
	}
	t.lines = append(t.lines, got...)
	if len(t.lines) > t.max {
		t.lines = t.lines[len(t.lines)-t.max:]
	}
	return len(b), nil
}

func (t *tailBuffer) String() string {
	t.mu.Lock()
	defer t.mu.Unlock()
	return strings.Join(append(append([]string(nil), t.lines...), t.part), "\n")
}
