package main

import (
	"fmt"
	"os/signal"
	"strings"
	"syscall"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/spf13/cobra"

	"meridian.dev/meridian/hub"
	"meridian.dev/meridian/hub/fleetpage"
	"meridian.dev/meridian/hub/inventory"
	"meridian.dev/meridian/internal/modelsource"
	"meridian.dev/meridian/internal/tlsx"
)

func hubCommand() *cobra.Command {
	var (
		opts                  hub.Options
		kubeconfig, namespace string
		metrics               metricsFlags
		logs                  logFlags
		sources               []string
		page                  fleetpage.Flags
	)
	cmd := &cobra.Command{
		Use:   "hub",
		Short: "Place every InferenceModel across the member clusters and keep it placed",
		Long: `hub runs against the hub cluster. It engages every member cluster whose
kubeconfig is in a Secret labelled sigs.k8s.io/multicluster-runtime-kubeconfig
in --members-namespace (the Secret's name is the member's name), reads each
member's ClusterReport to decide its health into a Cluster object, places
each InferenceModel by policy (residency, spread, capacity, cost,
proximity), writes a ModelDeployment into each chosen member, and moves
replicas off members that become unreachable or full — make-before-break,
never deleting anything from a member it cannot reach.
docs/hub.md explains membership, health, the placement maths and failover.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			log, err := logs.logger()
			if err != nil {
				return err
			}
			opts.Logger = log
			if opts.AllowedModelSources, err = modelsource.Parse("--allowed-model-sources", sources); err != nil {
				return err
			}
			cfg, err := restConfig(kubeconfig)
			if err != nil {
				return err
			}
			opts.Registry = prometheus.NewRegistry()
			tm, err := tlsx.NewMetrics(opts.Registry)
			if err != nil {
				return err
			}
			if err := metrics.serve(opts.Registry, tm, log); err != nil {
				return err
			}
			ctx, stop := signal.NotifyContext(cmd.Context(), syscall.SIGINT, syscall.SIGTERM)
			defer stop()
			if err := page.Start(ctx, cfg, opts.Registry, tm, log); err != nil {
				return err
			}
			opts.MembersNamespace = namespace
			return hub.Run(ctx, cfg, hub.NewProvider(cfg, namespace, log), opts)
		},
	}
	fs := cmd.Flags()
	fs.StringVar(&kubeconfig, "kubeconfig", "", "kubeconfig of the hub cluster (default: $KUBECONFIG, in-cluster config, or ~/.kube/config)")
	fs.StringVar(&namespace, "members-namespace", hub.MembersNamespace, "namespace of the push members' kubeconfig Secrets (pull members have namespaces of their own: meridian member add)")
	fs.StringSliceVar(&sources, "allowed-model-sources", nil, "directories (or file:// URLs) an InferenceModel's spec.model.repository may lie under; others are not placed (Placed False, ModelSourceNotAllowed). Empty: only the agents' default repository")
	fs.BoolVar(&opts.AllowLocalEndpoints, "allow-local-endpoints", false, "accept loopback endpoints in members' reports, for a fleet on one machine (meridian up); never in production")
	fs.StringVar(&opts.Timing, "timing", hub.TimingProduction, "timing preset: how fast an unreachable member is detected, and its probe traffic:\n"+timingHelp())
	fs.DurationVar(&opts.HealthPeriod, "health-period", 0, "how often every member's ClusterReport is read (default: the preset's)")
	fs.DurationVar(&opts.ProbeTimeout, "probe-timeout", 0, "timeout of one read of a member's API server (default: the preset's)")
	fs.IntVar(&opts.FailureThreshold, "failure-threshold", 0, "failed reads in a row before a member is Unreachable (default: the preset's)")
	fs.DurationVar(&opts.HeartbeatGrace, "heartbeat-grace", 0, "push members: age of an agent's heartbeat after which its member is Unreachable (default: the preset's)")
	fs.DurationVar(&opts.PullGrace, "pull-grace", 0, "pull members: how long a member's report on the hub may go unchanged, by the hub's clock, before it is Unreachable; keep it at least three of the agents' --hub-sync-period (default: the preset's)")
	fs.DurationVar(&opts.ResyncPeriod, "resync-period", 0, "how often every InferenceModel is placed again when nothing changed (default: the preset's)")
	fs.BoolVar(&opts.LeaderElection, "leader-elect", false, "run as one of several replicas: only the holder of the Lease meridian-hub probes, places and writes; the others wait to take over")
	fs.StringVar(&opts.LeaderElectionNamespace, "leader-election-namespace", "", "namespace of the leader election Lease (default: --members-namespace)")
	fs.BoolVar(&opts.Inventory.Export, "export-cluster-profiles", false, "publish every Cluster as a ClusterProfile (sigs.k8s.io/cluster-inventory-api) in --cluster-profile-namespace, for Open Cluster Management, Argo CD and other inventory consumers; needs the ClusterProfile CRD on the hub cluster")
	fs.BoolVar(&opts.Inventory.Import, "import-cluster-profiles", false, "turn other cluster managers' ClusterProfiles in --cluster-profile-namespace into Clusters that placement can choose (labelled meridian.dev/imported-from); needs the ClusterProfile CRD")
	fs.StringVar(&opts.Inventory.Namespace, "cluster-profile-namespace", inventory.DefaultNamespace, "namespace of the hub cluster where ClusterProfiles are published and imported")
	metrics.register(fs, "127.0.0.1:9091", "the hub's /metrics")
	page.Register(fs)
	logs.register(fs)
	return cmd
}

// timingHelp is one line per hub timing preset, for --help.
func timingHelp() string {
	var b strings.Builder
	for _, t := range hub.TimingPresets() {
		fmt.Fprintf(&b, "  %s: probe every %s, timeout %s, %d failures: a member that refuses or drops connections is Unreachable within %s; %.1f reads/s per member; heartbeat grace %s, pull grace %s, resync %s\n",
			t.Name, t.HealthPeriod, t.ProbeTimeout, t.FailureThreshold, t.UnreachableWithin(), t.ProbeReadsPerSecond(), t.HeartbeatGrace, t.PullGrace, t.ResyncPeriod)
	}
	return strings.TrimSuffix(b.String(), "\n")
}
