// Package node runs real Kubernetes worker nodes on this machine: for each
// node a kubelet (built from the pinned Kubernetes tree by `make
// controlplane`) with a containerd of its own, runc, and a CNI bridge, so
// that pods of a local control plane run as real containers.
//
// Several nodes, of one control plane or of several, share one Linux host
// and its network namespace. What would collide is kept apart per node:
// each node holds a numbered slot (a file lock in /run/meridian/nodes), and
// the slot number names everything of the node that the host shares — its
// bridge mrdn<N> and pod subnet 10.213.<N>.0/24 (the node's own address,
// the bridge's, is 10.213.<N>.1), its cgroup roots /meridian-node-<N> (pods)
// and /meridian-node-<N>-sys (containerd, its shims, the kubelet), its
// containerd socket, runc root and CNI network, and its directories under
// /run/meridian/nodes/<N> and /var/lib/meridian/nodes/<N>. A slot whose
// holder died (a killed test) is swept by the next holder before use:
// every process left in the slot's cgroups is killed, its mounts undone,
// its veths and bridge deleted and its directories removed. Nothing outside
// the slot is ever touched.
//
// The recipe follows this host's kernel: cgroup v1 hierarchies (the kubelet
// runs with cgroupDriver cgroupfs and failCgroupV1 false; each cgroup root
// is created in every hierarchy, with cpuset.cpus and cpuset.mems copied
// from the top, before the kubelet starts); containerd with
// restrict_oom_score_adj, because CAP_SYS_RESOURCE is not in the bounding
// set; node addresses on a bridge, because the kubelet refuses loopback
// node IPs. cgroup v2 hosts work too (one unified hierarchy).
//
// Images come from a registry the caller serves (Options.Mirrors): each
// node's containerd resolves the mirrored registry names to it over plain
// HTTP, so pods name images as production does (by digest) and nothing is
// pulled from the internet. The pause image of the pods' sandboxes is one
// of them.
//
// Available says whether nodes can run here (root, containerd, runc, the
// CNI plugins, the kubelet binary) and what to install otherwise.
package node
