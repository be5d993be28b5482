package node

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
)

// containerdConfig is the node's containerd configuration (version 2, as
// containerd 1.6 and 1.7 read it): its own root, state, sockets and runc
// root, the CRI plugin with the slot's CNI network, the sandbox image from
// the mirrors, out-of-memory score adjustment restricted to what this
// host's bounding set allows, and the pods' network namespaces mounted
// under the slot's state directory rather than the host's /run/netns, so
// that the slot's sweep removes those a killed node never tore down.
func (n *Node) containerdConfig() string {
	s := n.slot
	q := func(v string) string { b, _ := json.Marshal(v); return string(b) }
	return fmt.Sprintf(`version = 2
root = %s
state = %s
disabled_plugins = ["io.containerd.snapshotter.v1.btrfs", "io.containerd.snapshotter.v1.zfs", "io.containerd.snapshotter.v1.devmapper", "io.containerd.snapshotter.v1.aufs", "io.containerd.internal.v1.tracing", "io.containerd.tracing.processor.v1.otlp"]

[grpc]
  address = %s

[ttrpc]
  address = %s

[plugins."io.containerd.internal.v1.opt"]
  path = %s

[plugins."io.containerd.grpc.v1.cri"]
  sandbox_image = %s
  restrict_oom_score_adj = true
  netns_mounts_under_state_dir = true
  stream_server_address = "127.0.0.1"
  stream_server_port = "0"
  enable_selinux = false
  [plugins."io.containerd.grpc.v1.cri".containerd]
    snapshotter = "overlayfs"
    default_runtime_name = "runc"
    [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc]
      runtime_type = "io.containerd.runc.v2"
      [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc.options]
        SystemdCgroup = false
        Root = %s
  [plugins."io.containerd.grpc.v1.cri".cni]
    bin_dir = %s
    conf_dir = %s
  [plugins."io.containerd.grpc.v1.cri".registry]
    config_path = %s
`,
		q(filepath.Join(s.dataDir(), "containerd")), q(filepath.Join(s.stateDir(), "containerd")),
		q(s.containerd()), q(s.containerd()+".ttrpc"),
		q(filepath.Join(s.dataDir(), "opt")),
		q(n.opts.PauseImage),
		q(filepath.Join(s.stateDir(), "runc")),
		q(n.cniBinDir), q(filepath.Join(s.stateDir(), "cni")),
		q(filepath.Join(s.stateDir(), "certs.d")))
}

// hostsTOML points containerd at a mirror over plain HTTP for one
// registry name.
func hostsTOML(registry, mirror string) string {
	return fmt.Sprintf("server = %q\n\n[host.%q]\n  capabilities = [\"pull\", \"resolve\"]\n  skip_verify = true\n",
		"http://"+mirror, "http://"+mirror)
}

// cniConfig is the slot's network: a bridge whose address is the node's,
// pods in 10.213.<N>.0/24 with it as their gateway, and loopback.
func (n *Node) cniConfig() string {
	s := n.slot
	conf := map[string]any{
		"cniVersion": "0.4.0",
		"name":       s.network(),
		"plugins": []any{
			map[string]any{
				"type": "bridge", "bridge": s.bridge(), "isGateway": true, "ipMasq": false, "hairpinMode": true,
				"ipam": map[string]any{
					"type":    "host-local",
					"ranges":  []any{[]any{map[string]any{"subnet": s.subnet(), "gateway": s.ip()}}},
					"routes":  []any{map[string]any{"dst": "0.0.0.0/0"}},
					"dataDir": filepath.Join(s.stateDir(), "ipam"),
				},
			},
		},
	}
	b, _ := json.MarshalIndent(conf, "", "  ")
	return string(b)
}

// kubeletConfig is the node's KubeletConfiguration. Timings are the
// kubelet's defaults; only what would collide between nodes on one host,
// and what this host's kernel needs, is set.
func (n *Node) kubeletConfig() string {
	s := n.slot
	return fmt.Sprintf(`apiVersion: kubelet.config.k8s.io/v1beta1
kind: KubeletConfiguration
address: %[1]s
port: %[2]d
readOnlyPort: 0
healthzBindAddress: %[1]s
healthzPort: 10248
cgroupDriver: cgroupfs
cgroupRoot: %[3]s
cgroupsPerQOS: true
failCgroupV1: false
failSwapOn: false
containerRuntimeEndpoint: unix://%[4]s
podLogsDir: %[5]s
volumePluginDir: %[6]s
resolvConf: /etc/resolv.conf
serializeImagePulls: false
registerNode: true
podCIDR: %[7]s
authentication:
  anonymous:
    enabled: false
  webhook:
    enabled: true
    cacheTTL: 30s
authorization:
  mode: Webhook
  webhook:
    cacheAuthorizedTTL: 30s
    cacheUnauthorizedTTL: 10s
evictionHard:
  memory.available: 100Mi
  nodefs.available: "1%%"
  nodefs.inodesFree: "1%%"
  imagefs.available: "1%%"
imageGCHighThresholdPercent: 99
imageGCLowThresholdPercent: 98
`, s.ip(), KubeletPort, s.podCgroup(), s.containerd(),
		filepath.Join(s.dataDir(), "pod-logs"), filepath.Join(s.dataDir(), "volume-plugins"), s.subnet())
}

// labelFlag renders labels as --node-labels wants them, sorted.
func labelFlag(labels map[string]string) string {
	var kv []string
	for k, v := range labels {
		kv = append(kv, k+"="+v)
	}
	sort.Strings(kv)
	return strings.Join(kv, ",")
}

// writeFiles writes name → content under dir, creating directories.
func writeFiles(dir string, files map[string]string) error {
	for name, content := range files {
		p := filepath.Join(dir, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			return err
		}
		if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
			return err
		}
	}
	return nil
}
