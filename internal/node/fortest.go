package node

import (
	"context"
	"os"
	"path/filepath"
	"testing"

	"meridian.dev/meridian/internal/controlplane"
)

// ForTest starts one real node named name for the control plane behind
// kubeconfig, with Meridian's image (built by `make image`) and the pause
// image served to it from an in-process registry, and stops it when the
// test ends. It returns the node and the reference of Meridian's image by
// digest. Where nodes cannot run (not root, containerd or runc missing) the
// test is skipped with the reason; .ci/run runs as root with them. A
// missing image fails the test with the command that builds it. Set
// MERIDIAN_CONTROLPLANE_LOGS=1 to see the kubelet's and containerd's logs.
func ForTest(t testing.TB, name, kubeconfig string) (*Node, string) {
	t.Helper()
	bin, err := controlplane.FindBinDir()
	if err != nil {
		t.Fatal(err)
	}
	kubelet := filepath.Join(bin, "kubelet")
	if why := Available(kubelet); why != "" {
		t.Skip(why)
	}
	root, err := controlplane.RepoRoot()
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	images, err := ServeImages(ctx, filepath.Join(root, ".cache", "image", "meridian"))
	if err != nil {
		t.Fatal(err)
	}
	opts := Options{
		Name: name, Kubeconfig: kubeconfig, KubeletPath: kubelet,
		PauseImage: images.Pause, Mirrors: images.Mirrors,
	}
	if os.Getenv("MERIDIAN_CONTROLPLANE_LOGS") != "" {
		opts.Logs = os.Stderr
	}
	n, err := Start(ctx, opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(n.Stop)
	return n, images.Meridian
}
