package main

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os/signal"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/spf13/cobra"
	"github.com/spf13/pflag"
	"k8s.io/apimachinery/pkg/api/resource"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"
	ctrl "sigs.k8s.io/controller-runtime"

	"meridian.dev/meridian/agent"
	"meridian.dev/meridian/agent/activator"
	"meridian.dev/meridian/agent/hubsync"
	"meridian.dev/meridian/agent/kube"
	"meridian.dev/meridian/agent/metricsapi"
	v1 "meridian.dev/meridian/crds/v1alpha1"
	"meridian.dev/meridian/gossip"
	"meridian.dev/meridian/inference"
	"meridian.dev/meridian/internal/modelsource"
	"meridian.dev/meridian/internal/tlsx"
	"meridian.dev/meridian/internal/tracing"
)

func agentCommand() *cobra.Command {
	var (
		opts                       agent.Options
		kubeconfig, runtime        string
		lat, lon, cpu, mem, ortLib string
		gpus, nodeGroups           []string
		activatorHost              string
		metrics                    metricsFlags
		metricsAPI                 metricsapi.Options
		gossipFlags                gossipFlags
		logs                       logFlags
		membershipMode             string
		hubSync                    hubsync.Options
		tlsFlags                   tlsx.ServerFlags
		sources                    []string
	)
	var traceCfg *tracing.Config
	cmd := &cobra.Command{
		Use:   "agent",
		Short: "Run and scale this cluster's models and report its capacity (one per member cluster)",
		Long: `agent connects to its own cluster, reconciles the ModelDeployments the hub
writes there, runs their replicas, scales them with the Kubernetes HPA
algorithm (plus a burst mode for spikes), and keeps the cluster's
ClusterReport (identity, heartbeat, capacity, per-model load) current.

With --runtime process (the default, for embedded, edge and bare-metal
sites) replicas are local 'meridian serve' processes behind one front per
model, whose address is the model's endpoint in this cluster.

With --runtime kubernetes, a model with minReplicas 0 that serves no
request for --idle-window is scaled to zero replicas; its Service then
reaches the agent's activator (--activator-host), which holds requests
(at most --activator-queue per model, each for at most
--activator-timeout, then 503 with Retry-After), asks for a replica at
once and answers them through it (docs/kubernetes.md, "Scale to zero").
docs/agent.md explains the autoscaling maths, every knob and every metric.`,
		Example: `  meridian agent --kubeconfig member.kubeconfig --cluster-name eu-west-1 --region eu-west \
    --latitude 53.35 --longitude -6.26 --capacity-cpu 16 --capacity-memory 64Gi`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			log, err := logs.logger()
			if err != nil {
				return err
			}
			stopTracing, err := startTracing(cmd.Context(), traceCfg, log)
			if err != nil {
				return err
			}
			defer stopTracing()
			opts.Logger = log
			opts.Runtime = v1.Runtime(runtime)
			if opts.Kube.IdleWindow == 0 {
				opts.Kube.IdleWindow = -1 // off (agent.Options reads 0 as the default)
			}
			if activatorHost != "" {
				if opts.Activator.Host, err = netip.ParseAddr(activatorHost); err != nil {
					return fmt.Errorf("--activator-host: %w", err)
				}
			}
			if lat != "" || lon != "" {
				opts.Identity.Location = &v1.GeoLocation{Latitude: lat, Longitude: lon}
			}
			if opts.Process.Capacity, err = parseCapacity(cpu, mem, gpus); err != nil {
				return err
			}
			if opts.Capacity.NodeGroups, err = parseNodeGroups(nodeGroups); err != nil {
				return err
			}
			if opts.Runtime == v1.RuntimeProcess {
				// Replicas run here: they need the models and ONNX Runtime.
				if opts.Process.ModelRepository, err = inference.FindRepository(opts.Process.ModelRepository); err != nil {
					return err
				}
				lib, err := inference.FindLibrary(ortLib)
				if err != nil {
					return err
				}
				opts.Process.ServeArgs = append(opts.Process.ServeArgs, "--ort-lib", lib)
				// Replicas trace as this agent does (their spans continue its front's).
				opts.Process.ServeArgs = append(opts.Process.ServeArgs, traceCfg.ServeArgs()...)
			}
			cfg, err := restConfig(kubeconfig)
			if err != nil {
				return err
			}
			if opts.Gossip, err = gossipFlags.config(); err != nil {
				return err
			}
			if opts.Process.AllowedModelSources, err = modelsource.Parse("--allowed-model-sources", sources); err != nil {
				return err
			}
			opts.Registry = prometheus.NewRegistry()
			if metricsAPI.Listen != "" {
				opts.MetricsAPI = &metricsAPI
			}
			tm, err := tlsx.NewMetrics(opts.Registry)
			if err != nil {
				return err
			}
			if err := metrics.serve(opts.Registry, tm, log); err != nil {
				return err
			}
			ctx, stop := signal.NotifyContext(cmd.Context(), syscall.SIGINT, syscall.SIGTERM)
			defer stop()
			if opts.Process.TLS, err = tlsFlags.Config(ctx, tlsx.ReloaderOptions{Name: "agent", Logger: log, Metrics: tm}); err != nil {
				return err
			}
			switch membershipMode {
			case "push":
				return agent.Run(ctx, cfg, opts)
			case "pull":
				hubSync.Logger, hubSync.Registry = log.With("component", "hubsync"), opts.Registry
				s, err := hubsync.New(cfg, hubSync)
				if err != nil {
					return err
				}
				ctx, cancel := context.WithCancel(ctx)
				defer cancel()
				synced := make(chan error, 1)
				go func() { synced <- s.Run(ctx) }()
				err = agent.Run(ctx, cfg, opts)
				cancel()
				return errors.Join(err, <-synced)
			}
			return fmt.Errorf("--membership %q: use push or pull", membershipMode)
		},
	}
	fs := cmd.Flags()
	fs.StringVar(&kubeconfig, "kubeconfig", "", "kubeconfig of this member cluster (default: $KUBECONFIG, in-cluster config, or ~/.kube/config)")
	fs.StringVar(&runtime, "runtime", "process", "how replicas run: process (local 'meridian serve' processes) or kubernetes (a Deployment, Service and HPA per model)")
	fs.StringVar(&opts.Kube.Image, "image", kube.DefaultImage, "kubernetes runtime: container image holding meridian, ONNX Runtime and the models")
	fs.StringVar(&opts.Kube.ModelRepository, "image-models", kube.DefaultModelRepository, "kubernetes runtime: model repository path inside the image")
	fs.StringSliceVar(&nodeGroups, "node-group", nil, "kubernetes runtime: a Cluster Autoscaler node group and the GPUs of its nodes, as NAME=PRODUCT:COUNT (repeatable), to report addable GPUs")
	fs.DurationVar(&opts.Kube.IdleWindow, "idle-window", kube.DefaultIdleWindow, "kubernetes runtime: a model with minReplicas 0 that serves no request for this long is scaled to zero replicas; the activator answers for it and wakes it on the next request; 0 or negative turns scale to zero off")
	fs.StringVar(&opts.Kube.PlaceholderImage, "placeholder-image", kube.DefaultPlaceholderImage, "kubernetes runtime: the image of warm-buffer placeholder pods (spec.warmBuffer); it must do nothing until stopped, as the pause image does")
	fs.StringVar(&activatorHost, "activator-host", "", "kubernetes runtime: IP the activator listens on for models at zero (a port per model), written into their Services' EndpointSlices; must be reachable from the cluster's Service implementation, not loopback (default: this host's first global IPv4)")
	fs.IntVar(&opts.Activator.QueueLimit, "activator-queue", activator.DefaultQueueLimit, "kubernetes runtime: requests the activator holds per model at zero; more are answered 503 with Retry-After")
	fs.DurationVar(&opts.Activator.HoldTimeout, "activator-timeout", activator.DefaultHoldTimeout, "kubernetes runtime: how long the activator holds a request for a model at zero before it answers 503 with Retry-After")
	fs.StringVar(&opts.ClusterName, "cluster-name", "", "this cluster's name in the fleet")
	fs.StringVar((*string)(&opts.Identity.Region), "region", "", "region this cluster is in, e.g. eu-west (required)")
	fs.StringVar(&opts.Identity.Zone, "zone", "", "zone within the region")
	fs.StringVar(&lat, "latitude", "", "cluster latitude in decimal degrees, for proximity steering")
	fs.StringVar(&lon, "longitude", "", "cluster longitude in decimal degrees")
	fs.StringVar(&opts.Identity.Endpoint, "endpoint", "", "public base URL of this cluster's models, reported to the hub")
	fs.StringVar(&opts.Process.ModelRepository, "models", "", "model repository the replicas serve (default ./models, else the checkout's)")
	fs.StringVar(&ortLib, "ort-lib", "", "ONNX Runtime library passed to the replicas (default as for 'meridian serve')")
	fs.StringSliceVar(&opts.Process.ServeArgs, "serve-arg", nil, "extra flag for every replica's 'meridian serve', e.g. --serve-arg=--cache-size=0 (repeatable)")
	fs.StringVar(&opts.Process.FrontHost, "front-host", "127.0.0.1", "interface the per-model fronts listen on")
	tlsFlags.Register(fs, "tls", "the process runtime's per-model fronts (the endpoints the balancer reaches; mutual TLS with --tls-require-client-cert) and its gateway (same certificate, no client certificate asked: users connect there); endpoints become https://")
	opts.Process.Auth.RegisterFlags(fs, "")
	fs.StringSliceVar(&sources, "allowed-model-sources", nil, "directories (or file:// URLs) a ModelDeployment's spec.model.repository may lie under; others are refused (Ready False, ModelSourceNotAllowed). Empty: only --models (a ModelDeployment naming no repository)")
	fs.IntVar(&opts.Process.GatewayPort, "gateway-port", 0, "process runtime: also serve every model on this one port of --front-host, routed by path (/v2/models/<name>/...) or by the Host header's first label; clients that follow the global balancer's DNS answers connect here, so every site of a fleet must use the same port; 0 turns it off")
	fs.StringVar(&cpu, "capacity-cpu", "4", "CPU this site offers to replicas (process runtime)")
	fs.StringVar(&mem, "capacity-memory", "8Gi", "memory this site offers to replicas (process runtime)")
	fs.StringSliceVar(&gpus, "capacity-gpu", nil, "GPUs this site offers, as PRODUCT=COUNT (repeatable), e.g. NVIDIA-L4=2")
	fs.DurationVar(&opts.SyncPeriod, "sync-period", 2*time.Second, "how often each model is measured, scaled and its status written")
	fs.DurationVar(&opts.MetricsWindow, "metrics-window", 10*time.Second, "window the autoscaler's stable metrics are averaged over")
	fs.DurationVar(&opts.ReportPeriod, "report-period", 10*time.Second, "how often the ClusterReport heartbeat is written")
	gossipFlags.register(fs, "host:port to gossip health and load on (UDP and TCP), e.g. 0.0.0.0:7946; empty turns gossip off", "agent")
	metrics.register(fs, "127.0.0.1:9090", "the agent's /metrics")
	fs.StringVar(&metricsAPI.Listen, "metrics-api-addr", "", "host:port to serve custom.metrics.k8s.io and external.metrics.k8s.io on (HTTPS), for the cluster's HPA; the agent registers it with APIServices; empty turns it off, e.g. :6443")
	fs.StringVar(&metricsAPI.Advertise, "metrics-api-advertise", "", "IP the API server dials the metrics API at, written into its EndpointSlice; not loopback (default: the --metrics-api-addr host, else this host's first global IPv4)")
	fs.Int32Var(&metricsAPI.ServicePort, "metrics-api-service-port", metricsapi.DefaultServicePort, "port of the meridian-system/meridian-metrics Service the metrics APIServices point at")
	fs.DurationVar(&metricsAPI.Period, "metrics-api-period", metricsapi.DefaultPeriod, "how often the metrics API scrapes each ready replica pod; a pod whose last good scrape is older than 3 periods is left out")
	fs.StringVar(&membershipMode, "membership", "push", "push: the hub reaches this cluster's API server with a kubeconfig it holds; pull: this agent reaches the hub with its own credential (from --hub-join-secret's bundle, kept in --hub-credential-secret), pulls its ModelDeployments and pushes its ClusterReport, so the hub needs no access to this cluster")
	fs.StringVar(&hubSync.JoinSecret.Name, "hub-join-secret", hubsync.DefaultJoinSecret, "pull membership: Secret in "+hubsync.DefaultNamespace+" holding the join bundle from `meridian member add` (key "+hubsync.SecretKey+")")
	fs.StringVar(&hubSync.CredentialSecret.Name, "hub-credential-secret", hubsync.DefaultCredentialSecret, "pull membership: Secret in "+hubsync.DefaultNamespace+" where the agent keeps its renewed hub credential")
	fs.DurationVar(&hubSync.Period, "hub-sync-period", hubsync.DefaultPeriod, "pull membership: how often ModelDeployments are pulled from the hub and the ClusterReport pushed to it; the hub calls the member Unreachable when its report goes unchanged for the hub timing's pull grace (2s production, 8s wan: use 2s here with --timing wan)")
	traceCfg = tracing.RegisterFlags(fs, "meridian-agent")
	logs.register(fs)
	_ = cmd.MarkFlagRequired("region")
	return cmd
}

func restConfig(kubeconfig string) (*rest.Config, error) {
	if kubeconfig != "" {
		cfg, err := clientcmd.BuildConfigFromFlags("", kubeconfig)
		if err != nil {
			return nil, fmt.Errorf("--kubeconfig %s: %w", kubeconfig, err)
		}
		return cfg, nil
	}
	cfg, err := ctrl.GetConfig()
	if err != nil {
		return nil, fmt.Errorf("no cluster to connect to (%w); pass --kubeconfig", err)
	}
	return cfg, nil
}

func parseCapacity(cpu, mem string, gpus []string) (v1.Capacity, error) {
	var c v1.Capacity
	var err error
	if c.CPU, err = resource.ParseQuantity(cpu); err != nil {
		return c, fmt.Errorf("--capacity-cpu %q: %w", cpu, err)
	}
	if c.Memory, err = resource.ParseQuantity(mem); err != nil {
		return c, fmt.Errorf("--capacity-memory %q: %w", mem, err)
	}
	for _, g := range gpus {
		product, count, ok := strings.Cut(g, "=")
		n, err := strconv.ParseInt(count, 10, 32)
		if !ok || product == "" || err != nil || n < 0 {
			return c, fmt.Errorf("--capacity-gpu %q: want PRODUCT=COUNT, e.g. NVIDIA-L4=2", g)
		}
		c.GPUs = append(c.GPUs, v1.GPUCapacity{Type: product, Allocatable: int32(n), Free: int32(n)})
	}
	return c, nil
}

func parseNodeGroups(specs []string) ([]kube.NodeGroup, error) {
	var out []kube.NodeGroup
	for _, s := range specs {
		name, gpu, ok1 := strings.Cut(s, "=")
		product, count, ok2 := strings.Cut(gpu, ":")
		n, err := strconv.ParseInt(count, 10, 32)
		if !ok1 || !ok2 || name == "" || product == "" || err != nil || n < 1 {
			return nil, fmt.Errorf("--node-group %q: want NAME=PRODUCT:COUNT, e.g. gpu-h100=NVIDIA-H100-80GB-HBM3:8", s)
		}
		out = append(out, kube.NodeGroup{Name: name, GPUType: product, GPUsPerNode: int32(n)})
	}
	return out, nil
}

// gossipFlags are the --gossip-* flags that the agent and the balancer
// share, so that both join the same pool the same way.
type gossipFlags struct {
	bind, preset string
	cfg          gossip.Config
}

// register adds the flags to fs: bindHelp explains --gossip-bind for this
// process, who names it in the other help texts.
func (g *gossipFlags) register(fs *pflag.FlagSet, bindHelp, who string) {
	fs.StringVar(&g.bind, "gossip-bind", "", bindHelp)
	fs.StringVar(&g.cfg.AdvertiseAddr, "gossip-advertise", "", "address other members reach this "+who+"'s gossip at, when it differs from --gossip-bind (NAT)")
	fs.StringSliceVar(&g.cfg.Join, "gossip-join", nil, "members to join, host:port (repeatable); retried until one answers")
	fs.StringVar(&g.cfg.KeyringFile, "gossip-keyring", "", "file of base64 AES keys (16, 24 or 32 bytes), one per line, first = primary, the same on every member (make one: head -c32 /dev/urandom | base64 > gossip.keys); encrypts and authenticates all gossip, UDP and TCP; re-read when it changes, the only way keys change (rotate: add the new key as line 2, then move it first, then delete the old line, waiting for every member between steps); required unless --gossip-bind is loopback or --gossip-insecure is set")
	fs.BoolVar(&g.cfg.Insecure, "gossip-insecure", false, "gossip in plaintext without --gossip-keyring on a non-loopback address: anyone who reaches it reads cluster health and can declare members dead; debugging on a trusted network only (logged as a warning)")
	fs.StringVar(&g.preset, "gossip-preset", "lan", "failure-detection timing: lan (one region), wan (across regions) or local (one machine); docs/agent.md gives the detection bound of each")
}

// config is the gossip configuration the flags describe, nil when
// --gossip-bind is empty (gossip off).
func (g *gossipFlags) config() (*gossip.Config, error) {
	if g.bind == "" {
		return nil, nil
	}
	c := g.cfg
	host, port, err := net.SplitHostPort(g.bind)
	if err != nil {
		return nil, fmt.Errorf("--gossip-bind %q: want host:port: %w", g.bind, err)
	}
	if c.BindPort, err = strconv.Atoi(port); err != nil {
		return nil, fmt.Errorf("--gossip-bind %q: bad port", g.bind)
	}
	c.BindAddr = host
	if c.KeyringFile == "" && !c.Insecure && !c.LoopbackOnly() {
		return nil, fmt.Errorf("--gossip-bind %q without --gossip-keyring would gossip cluster health in plaintext and let anyone on the network declare members dead: "+
			"make a keyring (head -c32 /dev/urandom | base64 > gossip.keys), give the same file to every agent and balancer with --gossip-keyring, "+
			"or pass --gossip-insecure on a network you trust", g.bind)
	}
	if c.KeyringFile != "" && c.Insecure {
		return nil, fmt.Errorf("--gossip-insecure and --gossip-keyring: set one of them (with a keyring gossip is always encrypted)")
	}
	if c.Timing, err = gossip.PresetTiming(g.preset); err != nil {
		return nil, fmt.Errorf("--gossip-preset: %w", err)
	}
	return &c, nil
}
