// Package fleet starts a whole Meridian fleet on one machine — a hub
// control plane, one control plane per member region with an agent (on the
// process runtime, or on the kubernetes runtime with a real node and a
// LoadBalancer implementation per region), the hub and the global
// balancer — and applies the bundled models. It is `meridian up`, and the
// end-to-end tests' fixture.
package fleet

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"meridian.dev/meridian/agent/hubsync"
	v1 "meridian.dev/meridian/crds/v1alpha1"
	"meridian.dev/meridian/glb"
	"meridian.dev/meridian/hub"
	"meridian.dev/meridian/hub/membership"
	"meridian.dev/meridian/internal/controlplane"
	"meridian.dev/meridian/internal/netfault"
	"meridian.dev/meridian/internal/node"
)

// Region is one member region of a local fleet.
type Region struct {
	// Name is the region and member cluster name, e.g. "eu-west".
	Name string
	// Latitude and Longitude of the region's data centre.
	Latitude, Longitude string
	// Kubeconfig, when set, uses that existing cluster as the member
	// instead of starting a local control plane; an agent must already run
	// there.
	Kubeconfig string
}

// DefaultRegions are Virginia, Ireland and Mumbai.
var DefaultRegions = []Region{
	{Name: "us-east", Latitude: "39.04", Longitude: "-77.49"},
	{Name: "eu-west", Latitude: "53.35", Longitude: "-6.26"},
	{Name: "ap-south", Latitude: "19.08", Longitude: "72.88"},
}

// KnownLocations gives a location to region names commonly used, so
// --regions needs no coordinates for them.
var KnownLocations = map[string][2]string{
	"us-east": {"39.04", "-77.49"}, "us-west": {"45.6", "-121.2"}, "eu-west": {"53.35", "-6.26"},
	"eu-central": {"50.11", "8.68"}, "ap-south": {"19.08", "72.88"}, "ap-northeast": {"35.68", "139.69"},
	"sa-east": {"-23.55", "-46.63"}, "af-south": {"-33.92", "18.42"},
}

// Options configure a local fleet.
type Options struct {
	// Regions are the member regions; default DefaultRegions.
	Regions []Region
	// StateDir receives the kubeconfigs; default .meridian.
	StateDir string
	// Binary is the meridian executable agents run as replicas.
	Binary string
	// ModelRepository and ServeArgs are passed to every agent.
	ModelRepository string
	ServeArgs       []string
	// Progress receives one line per step; nil discards them.
	Progress io.Writer
	// Logger receives the components' logs; nil discards them.
	Logger *slog.Logger
	// Hub tunes the hub (tests shorten its periods).
	Hub hub.Options
	// Zone is the DNS zone of the fleet's global balancer; default
	// "infer.meridian.local".
	Zone string
	// DNSListen is where the balancer serves DNS; default 127.0.0.1:5353.
	DNSListen string
	// GeoIPv4 and GeoIPv6 are the balancer's geo databases; empty turns
	// geo steering off.
	GeoIPv4, GeoIPv6 string
	// HTTPListeners, when set, serve the balancer's HTTP front: the
	// fleet's entry point.
	HTTPListeners []net.Listener
	// Runtime runs the local regions' replicas: v1.RuntimeProcess (the
	// default) as local processes, or v1.RuntimeKubernetes as real Pods of
	// Meridian's image on one real node per region (root, containerd, runc
	// and the CNI plugins needed; see internal/node).
	Runtime v1.Runtime
	// ImageLayout is the OCI layout holding Meridian's image for the
	// kubernetes runtime; default .cache/image/meridian of the checkout
	// (`make image`).
	ImageLayout string
	// Timing names the timing preset of every component (Timings);
	// default "production". Hub fields set explicitly win over it.
	Timing string
	// Membership is how local members join the hub: "push" (the default:
	// the hub holds each member's kubeconfig and reaches its API server)
	// or "pull" (each agent joins with a bootstrap bundle from
	// membership.Add and reaches the hub itself; the hub holds nothing of
	// the member's). Regions given by kubeconfig are always push members.
	Membership string
	// Insecure turns the fleet's TLS, mutual TLS and API keys off (plain
	// HTTP everywhere, every request served), for debugging. The
	// kubernetes runtime's Pods serve plain HTTP either way.
	Insecure bool
	// PageListen, when set, serves the fleet page (hub/fleetpage) there,
	// a loopback address ("127.0.0.1:0" picks a port): see page.go.
	PageListen string
}

// Fleet is a running local fleet.
type Fleet struct {
	// Hub is the hub's control plane.
	Hub *controlplane.ControlPlane
	// Members are the local member control planes, by region.
	Members map[string]*controlplane.ControlPlane
	// HubKubeconfig is the path of an admin kubeconfig for the hub.
	HubKubeconfig string
	// DNSAddr is where the global balancer answers DNS.
	DNSAddr string
	// Zone is the balancer's zone; each model is <model>.<zone>.
	Zone string
	// PageURL is where the fleet page is served; empty without
	// Options.PageListen.
	PageURL string

	opts   Options
	cancel context.CancelFunc
	runCtx context.Context
	// agents are the local regions' agents, each its own process.
	agents map[string]*agentProc
	// timing is the preset in use; firewall drops a region's packets
	// (root only; nil otherwise).
	timing   Timing
	firewall *firewall
	// stopHub ends the hub's controllers, nil while the hub is down;
	// hubDone is closed when they have.
	stopHub context.CancelFunc
	hubDone chan struct{}
	// links are the network paths faults are injected on: the
	// balancer's to the hub's API server, and the hub's to each local
	// member's API server.
	hubLink     *netfault.Proxy
	memberLinks map[string]*netfault.Proxy
	// nodes are the local regions' real nodes (kubernetes runtime).
	nodes map[string]*node.Node
	// images serve Meridian's image to the nodes; kubelet is their binary.
	images  node.Images
	kubelet string
	// regionHosts are the local regions' loopback addresses.
	regionHosts map[string]string
	// gossipPort is the port every agent, and the balancer, gossip on,
	// each on its own loopback address.
	gossipPort  int
	gossipPeers []string
	// gossipKeys is the pool's keyring file: the fleet gossips encrypted
	// as a real one does.
	gossipKeys string
	// sec is the fleet's PKI and API key; nil when insecure.
	sec *security
	// conns are the balancer's open connections and the region hosts it
	// cannot reach (partitions).
	conns   connSet
	faultMu sync.Mutex // stopHub, hubDone, agents, Members, memberLinks
	wg      sync.WaitGroup
	errs    chan error
	// pageLn is the fleet page's listener (page.go).
	pageLn net.Listener
}

func (f *Fleet) step(format string, args ...any) {
	if f.opts.Progress != nil {
		fmt.Fprintf(f.opts.Progress, "==> "+format+"\n", args...)
	}
}

// Up starts the fleet and applies the bundled models; Stop ends it.
func Up(ctx context.Context, opts Options) (*Fleet, error) {
	if len(opts.Regions) == 0 {
		opts.Regions = DefaultRegions
	}
	if opts.StateDir == "" {
		opts.StateDir = ".meridian"
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	if opts.Zone == "" {
		opts.Zone = "infer.meridian.local"
	}
	if opts.DNSListen == "" {
		opts.DNSListen = "127.0.0.1:5353"
	}
	if opts.Runtime == "" {
		opts.Runtime = v1.RuntimeProcess
	}
	if opts.Runtime != v1.RuntimeProcess && opts.Runtime != v1.RuntimeKubernetes {
		return nil, fmt.Errorf("runtime %q: use %s or %s", opts.Runtime, v1.RuntimeProcess, v1.RuntimeKubernetes)
	}
	switch opts.Membership {
	case "", "push", "pull":
	default:
		return nil, fmt.Errorf("membership %q: use push or pull", opts.Membership)
	}
	timing, ok := Timings[cmp.Or(opts.Timing, "production")]
	if !ok {
		return nil, fmt.Errorf("timing preset %q: use production", opts.Timing)
	}
	opts.Hub.Timing = cmp.Or(opts.Hub.Timing, timing().Hub)
	opts.Hub.AllowLocalEndpoints = true // a fleet on one machine publishes loopback endpoints
	if opts.Binary == "" {
		return nil, errors.New("fleet: Options.Binary (the meridian executable the regions' agents run) is required")
	}
	if err := os.MkdirAll(opts.StateDir, 0o755); err != nil {
		return nil, err
	}
	runCtx, cancel := context.WithCancel(context.Background())
	f := &Fleet{opts: opts, Members: map[string]*controlplane.ControlPlane{}, cancel: cancel, runCtx: runCtx, errs: make(chan error, 16),
		agents: map[string]*agentProc{}, timing: timing(), memberLinks: map[string]*netfault.Proxy{}, regionHosts: map[string]string{},
		nodes: map[string]*node.Node{}}
	if err := f.start(ctx, runCtx); err != nil {
		f.Stop()
		return nil, err
	}
	return f, nil
}

func (f *Fleet) start(ctx, runCtx context.Context) error {
	opts := f.opts
	if err := f.listenPage(); err != nil {
		return err
	}
	if f.kubernetesRuntime() {
		// Say what is missing before minutes of start-up.
		if err := f.startImages(runCtx); err != nil {
			return err
		}
	}
	f.step("starting the hub control plane (etcd + kube-apiserver)")
	var err error
	if f.Hub, err = controlplane.Start(ctx, controlplane.Options{}); err != nil {
		return err
	}
	f.HubKubeconfig = filepath.Join(opts.StateDir, "hub.kubeconfig")
	if err := copyFile(f.Hub.Kubeconfig, f.HubKubeconfig); err != nil {
		return err
	}
	if err := f.Hub.Client.Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: hub.MembersNamespace}}); err != nil {
		return err
	}
	if FirewallAvailable() == "" {
		if f.firewall, err = newFirewall(); err != nil {
			return err
		}
	}
	if f.gossipPort, err = freeGossipPort(len(opts.Regions)); err != nil {
		return err
	}
	if f.gossipKeys, err = writeGossipKeyring(opts.StateDir); err != nil {
		return err
	}
	if !opts.Insecure && !f.kubernetesRuntime() {
		hosts := map[string]string{}
		for i, r := range opts.Regions {
			if r.Kubeconfig == "" {
				hosts[r.Name] = regionAddr(i)
			}
		}
		if f.sec, err = secure(opts.StateDir, opts.Zone, hosts); err != nil {
			return err
		}
	}
	for i, r := range opts.Regions {
		kubeconfig := r.Kubeconfig
		if kubeconfig == "" {
			cpOpts := controlplane.Options{}
			if f.kubernetesRuntime() {
				f.step("starting member %s (etcd, kube-apiserver, controller-manager, scheduler), a real node (kubelet, containerd), its load balancer and its agent", r.Name)
				cpOpts = controlplane.Options{ControllerManager: true, Scheduler: true, NodeLifecycle: true}
			} else {
				f.step("starting member %s (etcd + kube-apiserver) and its agent", r.Name)
			}
			cp, err := controlplane.Start(ctx, cpOpts)
			if err != nil {
				return fmt.Errorf("member %s: %w", r.Name, err)
			}
			f.Members[r.Name] = cp
			if f.kubernetesRuntime() {
				if err := f.startNode(ctx, runCtx, i, r, cp); err != nil {
					return err
				}
			}
			kubeconfig = filepath.Join(opts.StateDir, r.Name+".kubeconfig")
			if err := copyFile(cp.Kubeconfig, kubeconfig); err != nil {
				return err
			}
			f.regionHosts[r.Name] = regionAddr(i)
			if f.pull() {
				// The agent reaches the hub through a link a drill can
				// cut, on the region's own address, where its packets
				// can be dropped.
				if err := f.joinPull(ctx, i, r, cp); err != nil {
					return err
				}
				if err := f.runAgent(runCtx, r, cp, regionAddr(i)); err != nil {
					return err
				}
				continue
			}
			if err := f.runAgent(runCtx, r, cp, regionAddr(i)); err != nil {
				return err
			}
			// The hub reaches the member through a link a drill can cut,
			// on the region's own address, where its packets can be
			// dropped.
			link, err := netfault.NewProxyOn(regionAddr(i), hostPort(cp.Config.Host))
			if err != nil {
				return err
			}
			f.memberLinks[r.Name] = link
			// As in production: the hub gets a least-privilege
			// ServiceAccount on the member, never its admin kubeconfig.
			if err := membership.AddPush(ctx, f.Hub.Client, cp.Client, hub.MembersNamespace, f.memberOptions(r, "https://"+link.Addr(), cp.Config)); err != nil {
				return err
			}
			continue
		} else {
			f.step("using the existing cluster %s from %s", r.Name, r.Kubeconfig)
		}
		if err := f.join(ctx, r.Name, kubeconfig); err != nil {
			return err
		}
	}
	f.step("starting the hub")
	f.startHub()
	f.servePage()
	f.step("applying the bundled InferenceModels and their GlobalEndpoints: sentiment, textdir")
	f.Zone = opts.Zone
	for _, o := range bundledModels(len(opts.Regions), opts.Zone, f.timing) {
		if err := f.Hub.Client.Create(ctx, o); err != nil && !apierrors.IsAlreadyExists(err) {
			return err
		}
	}
	f.step("starting the global balancer: DNS for %s on %s", opts.Zone, opts.DNSListen)
	ready := make(chan string, 1)
	// The balancer reaches the hub through a link a drill can cut.
	if f.hubLink, err = netfault.NewProxy(hostPort(f.Hub.Config.Host)); err != nil {
		return err
	}
	hubCfg := rest.CopyConfig(f.Hub.Config)
	hubCfg.Host = "https://" + f.hubLink.Addr()
	glbHub, err := client.New(hubCfg, client.Options{Scheme: f.Hub.Client.Scheme()})
	if err != nil {
		return err
	}
	glbGossip, err := f.gossipConfig("127.0.0.1", "glb-local")
	if err != nil {
		return err
	}
	glbOpts := glb.Options{
		Zone: opts.Zone, DNSListen: opts.DNSListen, StateFile: filepath.Join(opts.StateDir, "glb-snapshot.json"),
		GeoIPv4: opts.GeoIPv4, GeoIPv6: opts.GeoIPv6, Site: "local", Logger: opts.Logger.With("component", "glb"), Ready: ready,
		HTTPListeners: opts.HTTPListeners,
		// Local clients may say where they are from (drills do).
		TrustForwardedFor:   true,
		AllowLocalEndpoints: true,
		// Local clients stand in for public resolvers (the drills'
		// Unbound, kdig): their ECS subnets are where users are.
		DNS: glb.DNSOptions{Demand: glb.DNSDemandPolicy{TrustedResolvers: []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8")}}},
		// Partition drills cut the balancer off from regions.
		Dial:          f.dial,
		Gossip:        glbGossip,
		DemandPeriod:  2 * time.Second,
		ProbeInterval: f.timing.ProbeInterval,
		ProbeTimeout:  f.timing.ProbeTimeout,
	}
	if err := f.secureBalancer(&glbOpts); err != nil {
		return err
	}
	f.goRun(func() error { return glb.Run(runCtx, glbHub, glbOpts) })
	select {
	case f.DNSAddr = <-ready:
	case err := <-f.errs:
		return err
	case <-ctx.Done():
		return ctx.Err()
	}
	return nil
}

// regionAddr gives each local region its own loopback address, so the
// balancer's DNS answers tell the regions apart.
func regionAddr(i int) string { return fmt.Sprintf("127.0.1.%d", i+1) }

func (f *Fleet) pull() bool { return f.opts.Membership == "pull" }

// joinPull registers a local region as a pull member: `meridian member
// add` on the hub, its bundle in the member's join Secret, as an operator
// would; the agent joins with it. The bundle names the hub by a link on
// the region's address, which partition and blackhole drills cut.
func (f *Fleet) joinPull(ctx context.Context, i int, r Region, cp *controlplane.ControlPlane) error {
	link, err := netfault.NewProxyOn(regionAddr(i), hostPort(f.Hub.Config.Host))
	if err != nil {
		return err
	}
	f.memberLinks[r.Name] = link
	b, err := membership.Add(ctx, f.Hub.Client, f.memberOptions(r, "https://"+link.Addr(), f.Hub.Config))
	if err != nil {
		return err
	}
	return hubsync.WriteBundle(ctx, cp.Client, types.NamespacedName{Namespace: hubsync.DefaultNamespace, Name: hubsync.DefaultJoinSecret}, b)
}

// memberOptions describe local region r to the hub, whose API server
// (the hub's for a pull member, the member's for a push member) is
// reached at server through a link, checked against target's certificate.
func (f *Fleet) memberOptions(r Region, server string, target *rest.Config) membership.AddOptions {
	name := ""
	if u, err := url.Parse(target.Host); err == nil {
		name = u.Hostname()
	}
	return membership.AddOptions{
		Name:     r.Name,
		Identity: v1.ClusterIdentity{Region: v1.RegionName(r.Name), Zone: r.Name + "-a", Location: &v1.GeoLocation{Latitude: r.Latitude, Longitude: r.Longitude}},
		Server:   server, CAData: target.CAData, TLSServerName: name,
	}
}

// join registers an existing cluster with the hub: the kubeconfig given
// for it in a labelled Secret.
func (f *Fleet) join(ctx context.Context, name, kubeconfig string) error {
	b, err := os.ReadFile(kubeconfig)
	if err != nil {
		return err
	}
	if _, err := clientcmd.Load(b); err != nil {
		return fmt.Errorf("kubeconfig %s: %w", kubeconfig, err)
	}
	return f.Hub.Client.Create(ctx, &corev1.Secret{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: hub.MembersNamespace,
			Labels: map[string]string{"sigs.k8s.io/multicluster-runtime-kubeconfig": "true"}},
		Data: map[string][]byte{"kubeconfig": b},
	})
}

func (f *Fleet) goRun(run func() error) {
	f.wg.Add(1)
	go func() {
		defer f.wg.Done()
		if err := run(); err != nil {
			f.errs <- err
		}
	}()
}

// Errors delivers a component's failure.
func (f *Fleet) Errors() <-chan error { return f.errs }

// bundledModels are the objects `meridian up` applies: both models in
// every region, one replica each, up to two on load, each with a GlobalEndpoint
// <model>.<zone>; sentiment at version 1.
func bundledModels(regions int, zone string, t Timing) []client.Object {
	var out []client.Object
	// Each scales on its request rate per replica (the HPA's Pods metric
	// requests_per_second on the kubernetes runtime, the same maths in
	// process): a rate one replica serves well within its latency here.
	perReplica := map[string]string{"sentiment": "50", "textdir": "10"}
	for _, name := range []string{"sentiment", "textdir"} {
		out = append(out, &v1.GlobalEndpoint{
			ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: "default"},
			// Probed as the timing preset says.
			Spec: v1.GlobalEndpointSpec{Hostname: name + "." + zone, Model: name, TTL: 5,
				HealthCheck: v1.HealthCheck{Interval: metav1.Duration{Duration: t.ProbeInterval},
					Timeout: metav1.Duration{Duration: t.ProbeTimeout}, FailureThreshold: t.ProbeFailures}},
		})
		out = append(out, &v1.InferenceModel{
			ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: "default"},
			Spec: v1.InferenceModelSpec{
				Model:     v1.ModelSource{Name: name},
				Resources: v1.Resources{CPU: resource.MustParse("250m"), Memory: resource.MustParse("256Mi")},
				Autoscaling: v1.Autoscaling{MinReplicas: ptr.To[int32](1), MaxReplicas: 2,
					Targets: v1.MetricTargets{RequestsPerSecond: ptr.To(resource.MustParse(perReplica[name]))}},
				Placement: v1.Placement{MinRegions: int32(regions)},
			},
		})
		if name == "sentiment" {
			// Version 1 serves; the repository's version 2 is there to
			// roll out (docs/rollouts.md).
			im := out[len(out)-1].(*v1.InferenceModel)
			im.Spec.Versions = []v1.VersionWeight{{Version: 1, Weight: 100}}
		}
	}
	return out
}

// WaitReady waits until every InferenceModel is Ready in every region,
// printing progress.
func (f *Fleet) WaitReady(ctx context.Context) error {
	last := ""
	for {
		var list v1.InferenceModelList
		if err := f.Hub.Client.List(ctx, &list); err != nil {
			return err
		}
		var lines []string
		done := len(list.Items) > 0
		for _, im := range list.Items {
			ready := v1.IsConditionTrue(im.Status.Conditions, v1.ConditionReady) && len(im.Status.Clusters) >= len(f.opts.Regions)
			done = done && ready
			var where []string
			for _, c := range im.Status.Clusters {
				where = append(where, fmt.Sprintf("%s %d/%d", c.Cluster, c.ReadyReplicas, c.DesiredReplicas))
			}
			lines = append(lines, fmt.Sprintf("%s: %s", im.Name, strings.Join(where, ", ")))
		}
		slices.Sort(lines)
		// Ready means reachable too: every region reports an endpoint for
		// every model (the hub mirrors it from the agents' reports).
		if done {
			endpoints, err := f.Endpoints(ctx)
			if err != nil {
				return err
			}
			for _, im := range list.Items {
				for _, r := range f.opts.Regions {
					done = done && answers(ctx, f.endpointClient(), endpoints[r.Name][im.Spec.Model.Name])
				}
			}
		}
		if s := strings.Join(lines, "; "); s != last {
			f.step("waiting for models: %s", s)
			last = s
		}
		if done {
			return nil
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case err := <-f.errs:
			return err
		case <-time.After(time.Second):
		}
	}
}

// answers says whether a model endpoint answers its readiness check: the
// endpoint a region reports may be an address its load balancer has not
// opened yet.
func answers(ctx context.Context, hc *http.Client, endpoint string) bool {
	if endpoint == "" {
		return false
	}
	ctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, endpoint+"/v2/health/ready", nil)
	if err != nil {
		return false
	}
	resp, err := hc.Do(req)
	if err != nil {
		return false
	}
	_ = resp.Body.Close()
	return resp.StatusCode == http.StatusOK
}

// Endpoints returns, per region, each model's endpoint there, from the
// hub's Cluster objects.
func (f *Fleet) Endpoints(ctx context.Context) (map[string]map[string]string, error) {
	var list v1.ClusterList
	if err := f.Hub.Client.List(ctx, &list); err != nil {
		return nil, err
	}
	out := map[string]map[string]string{}
	for _, c := range list.Items {
		out[c.Name] = map[string]string{}
		for _, m := range c.Status.Models {
			out[c.Name][m.Model] = m.Endpoint
		}
	}
	return out, nil
}

// Stop ends the agents (and their replicas), the hub and every control
// plane.
func (f *Fleet) Stop() {
	// The agents first, together: each stops its replicas.
	f.faultMu.Lock()
	var stopping sync.WaitGroup
	for _, a := range f.agents {
		stopping.Go(func() { a.stop(30 * time.Second) })
	}
	f.faultMu.Unlock()
	stopping.Wait()
	f.cancel()
	f.wg.Wait()
	if f.firewall != nil {
		if err := f.firewall.close(); err != nil {
			f.opts.Logger.Warn("removing the fleet's nftables table", "err", err)
		}
	}
	for _, link := range f.memberLinks {
		link.Cut()
	}
	if f.hubLink != nil {
		f.hubLink.Cut()
	}
	var errs []error
	// Nodes go before their control planes: their pods' containers are
	// stopped and swept while the kubelet can still be told.
	for _, n := range f.nodes {
		n.Stop()
	}
	for _, cp := range f.Members {
		errs = append(errs, cp.Stop())
	}
	if f.Hub != nil {
		errs = append(errs, f.Hub.Stop())
	}
	if err := errors.Join(errs...); err != nil {
		f.opts.Logger.Warn("stopping the fleet", "err", err)
	}
}

// Client is the hub's client.
func (f *Fleet) Client() client.Client { return f.Hub.Client }

func copyFile(from, to string) error {
	b, err := os.ReadFile(from)
	if err != nil {
		return err
	}
	return os.WriteFile(to, b, 0o600)
}
