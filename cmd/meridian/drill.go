package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"os/signal"
	"path/filepath"
	"syscall"
	"time"

	"github.com/spf13/cobra"

	"meridian.dev/meridian/glb/geo"
	"meridian.dev/meridian/inference"
	"meridian.dev/meridian/internal/controlplane"
	"meridian.dev/meridian/internal/drill"
	"meridian.dev/meridian/internal/fleet"
)

func drillCommand() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "drill",
		Short: "Run failover drills on a local fleet and report what users would have seen",
	}
	cmd.Long = `drill runs failover drills on a local fleet it starts itself, with real
control planes, agents, replicas, hub and global balancer, and reports what
users would have seen. docs/drills.md explains each drill and its figures.`
	cmd.AddCommand(
		drillSubcommand(drill.RegionLoss, "Kill a region under load and measure detection, DNS re-steering, failed requests and replacement",
			`crashes the region without warning — SIGKILL of its agent, every
replica, its API server and etcd; nothing drains — or, with --blackhole,
drops every packet to and from it so connections hang until their
timeouts (root: nftables). It measures how long the hub took to mark it
Unreachable, how long DNS kept answering with it, how long until the lost
capacity was Ready elsewhere, and what each kind of client met (P4).`),
		drillSubcommand(drill.HubLoss, "Take the hub away under load for a while, then bring it back",
			`stops the hub's controllers and cuts the balancer off from the hub's API
server for --for, while DNS is asked as every region's clients; then the
hub returns. It counts failed requests and DNS answers that did not send a
region's clients to their region during the outage (both should be 0: the
balancer steers from its last-known-good copy and its own probes), and how
long the returned hub took to read every member again.`),
		drillSubcommand(drill.Partition, "Partition a region away from the hub and the balancer, then heal it",
			`cuts the network between the region and the rest of the fleet for --for
while the region keeps running — as root every packet of the region is
dropped, gossip included; otherwise the hub's link and the balancer's
connections are closed and refused — then heals it. It measures
detection, DNS re-steering and failed requests during the partition, and
after the heal how long until the hub saw the region Ready and DNS sent its
clients back — with no operator.`),
	)
	return cmd
}

func drillSubcommand(name, short, what string) *cobra.Command {
	var (
		opts           drill.Options
		out            string
		subnet         string
		membershipMode string
		logs           logFlags
	)
	cmd := &cobra.Command{
		Use:   name,
		Short: short,
		Long: name + ` starts a local fleet (as 'meridian up' does, every component
on the production timing preset, which it prints), and offers load at a
fixed rate (--rate, open loop, achieved rate checked) from two kinds of
users near --region: clients of the global balancer's HTTP front, and
clients that resolve the model's name through a real recursive resolver
(Unbound, with ECS; ` + "`make unbound`" + `), keep the answer for its TTL and
connect straight to the answered region's gateway. Then it ` + what + `
It prints one line per figure with its target and ok or short, and writes
the figures as JSON and an SVG timeline into --out. docs/drills.md explains
each figure.`,
		Example: "  meridian drill " + name + " --region eu-west",
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			log, err := logs.logger()
			if err != nil {
				return err
			}
			if _, ok := drill.DefaultSubnets[opts.Region]; !ok {
				return fmt.Errorf("--region %q: the drill's fleet has us-east, eu-west and ap-south", opts.Region)
			}
			if opts.Rate <= 0 {
				return fmt.Errorf("--rate %d: want requests per second above 0", opts.Rate)
			}
			if subnet != "" {
				if opts.Subnet, err = netipPrefix(subnet); err != nil {
					return err
				}
			}
			ctx, stop := signal.NotifyContext(cmd.Context(), syscall.SIGINT, syscall.SIGTERM)
			defer stop()
			p := cmd.OutOrStdout()
			f, front, err := drillFleet(ctx, filepath.Join(out, "fleet"), membershipMode, p, log)
			if err != nil {
				return err
			}
			defer f.Stop()
			opts.Front = front
			fmt.Fprintf(p, "==> timing preset %s\n", f.Timing())
			fmt.Fprintf(p, "==> load at %d/s through the front and %d/s from DNS-following clients; the %s drill starts after %s\n", opts.Rate, opts.Rate, name, opts.Before)
			res, err := drill.Run(ctx, f, name, opts)
			if err != nil {
				return err
			}
			return report(p, out, res)
		},
	}
	fs := cmd.Flags()
	fs.StringVar(&opts.Region, "region", "eu-west", "the region to kill or partition, and the one the load's clients are near: us-east, eu-west or ap-south")
	fs.StringVar(&subnet, "subnet", "", "the clients' network, e.g. 193.0.0.0/24 (default: one near the region)")
	fs.IntVar(&opts.Rate, "rate", 50, "requests per second offered by each kind of client: through the balancer's HTTP front, and following DNS to a region")
	if name == drill.RegionLoss {
		fs.BoolVar(&opts.Blackhole, "blackhole", false, "lose the region by dropping every packet to and from it (connections hang) instead of crashing it; needs root (nftables)")
	}
	fs.DurationVar(&opts.Before, "before", 5*time.Second, "load before the fault")
	if name != drill.RegionLoss {
		fs.DurationVar(&opts.For, "for", 15*time.Second, "how long the fault lasts before the fleet is healed")
	}
	fs.DurationVar(&opts.After, "after", 30*time.Second, "how long to watch after the kill or the heal")
	fs.StringVar(&out, "out", ".meridian/drill", "directory for "+name+".json and "+name+".svg")
	fs.StringVar(&membershipMode, "membership", "push", membershipHelp)
	logs.registerLevel(fs, "warn")
	return cmd
}

// drillFleet starts the local fleet a drill runs on and waits until it
// serves; it returns the fleet and its HTTP front's address.
func drillFleet(ctx context.Context, stateDir, membershipMode string, progress io.Writer, log *slog.Logger) (*fleet.Fleet, string, error) {
	models, err := inference.FindRepository("")
	if err != nil {
		return nil, "", err
	}
	lib, err := inference.FindLibrary("")
	if err != nil {
		return nil, "", err
	}
	bin, err := os.Executable()
	if err != nil {
		return nil, "", err
	}
	root, err := controlplane.RepoRoot()
	if err != nil {
		return nil, "", err
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, "", err
	}
	f, err := fleet.Up(ctx, fleet.Options{
		Membership: membershipMode,
		StateDir:   stateDir, Binary: bin, ModelRepository: models, ServeArgs: []string{"--ort-lib", lib},
		Progress: progress, Logger: log, DNSListen: "127.0.0.1:0", HTTPListeners: []net.Listener{ln},
		GeoIPv4: filepath.Join(root, geo.DefaultIPv4Path), GeoIPv6: filepath.Join(root, geo.DefaultIPv6Path),
	})
	if err != nil {
		return nil, "", err
	}
	if err := f.WaitReady(ctx); err != nil {
		f.Stop()
		return nil, "", err
	}
	time.Sleep(3 * time.Second) // the balancer's snapshot and probes settle
	return f, ln.Addr().String(), nil
}

func netipPrefix(s string) (netip.Prefix, error) {
	p, err := netip.ParsePrefix(s)
	if err != nil {
		return p, fmt.Errorf("--subnet %q: want a network such as 193.0.0.0/24", s)
	}
	return p.Masked(), nil
}

// report prints the drill's figures, one line each with its target, and
// writes the JSON and the timeline.
func report(w io.Writer, out string, r *drill.Result) error {
	if err := os.MkdirAll(out, 0o755); err != nil {
		return err
	}
	b, err := json.MarshalIndent(r, "", "  ")
	if err != nil {
		return err
	}
	name := r.Drill
	if r.Fault == "blackhole" {
		name += "-blackhole"
	}
	jsonPath, svgPath := filepath.Join(out, name+".json"), filepath.Join(out, name+".svg")
	if err := os.WriteFile(jsonPath, b, 0o644); err != nil {
		return err
	}
	svg, err := os.Create(svgPath)
	if err != nil {
		return err
	}
	if err := r.WriteSVG(svg); err != nil {
		_ = svg.Close()
		return err
	}
	if err := svg.Close(); err != nil {
		return err
	}
	fmt.Fprintf(w, "\nthrough the HTTP front %d requests, %d failed; following DNS %d requests, %d failed; the timeline is %s, the figures %s\n",
		r.Front.Sent, r.Front.Failed, r.DNS.Sent, r.DNS.Failed, svgPath, jsonPath)
	for _, l := range r.Verdicts() {
		fmt.Fprintln(w, l)
	}
	return nil
}
