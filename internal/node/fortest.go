package node

import (
	"context"
	"net"
	"os"
	"path/filepath"
	"testing"

	ggcrv1 "github.com/google/go-containerregistry/pkg/v1"

	"meridian.dev/meridian/internal/controlplane"
	"meridian.dev/meridian/internal/image"
)

// ImageDomain is the registry name the test nodes pull Meridian's images
// under; a registry served by the test stands behind it.
const ImageDomain = "meridian.local"

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
	layout := filepath.Join(root, ".cache", "image", "meridian")
	images := map[string]ggcrv1.Image{}
	for ref, as := range map[string]string{"meridian": "meridian:test", "pause": "pause:3.10"} {
		img, err := image.Load(layout, ref)
		if err != nil {
			t.Fatalf("%v: run `make image`", err)
		}
		images[as] = img
	}
	digest, err := images["meridian:test"].Digest()
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go func() { _ = image.ServeRegistry(ctx, ln, images) }()
	opts := Options{
		Name: name, Kubeconfig: kubeconfig, KubeletPath: kubelet,
		PauseImage: ImageDomain + "/pause:3.10", Mirrors: map[string]string{ImageDomain: ln.Addr().String()},
	}
	if os.Getenv("MERIDIAN_CONTROLPLANE_LOGS") != "" {
		opts.Logs = os.Stderr
	}
	n, err := Start(ctx, opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(n.Stop)
	return n, ImageDomain + "/meridian@" + digest.String()
}
