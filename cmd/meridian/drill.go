package main

import (
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/netip"
	"os"
	"os/signal"
	"path/filepath"
	"syscall"
	"time"

	"github.com/spf13/cobra"

	"meridian.dev/meridian/glb/geo"
	"meridian.dev/meridian/hub"
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
	cmd.AddCommand(regionLossCommand())
	return cmd
}

func regionLossCommand() *cobra.Command {
	var (
		opts   drill.Options
		out    string
		subnet string
		logs   logFlags
	)
	cmd := &cobra.Command{
		Use:   "region-loss",
		Short: "Kill a region of a local fleet under load and measure detection, DNS re-steering, failed requests and replacement",
		Long: `region-loss starts a local fleet (as 'meridian up' does, with the hub probing
members every 500 ms), offers steady load through the global balancer's
HTTP front as clients near --region and queries its DNS the same way, then
kills the region — its agent, replicas and API server — and measures how
long the hub took to mark it Unreachable, how long DNS kept sending the
region's clients there, how long until the lost capacity was Ready
elsewhere, and how many requests failed. It prints the figures (P4) and
writes them as JSON and as an SVG timeline into --out.`,
		Example: `  meridian drill region-loss --region eu-west`,
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			log, err := logs.logger()
			if err != nil {
				return err
			}
			if subnet != "" {
				if opts.Subnet, err = netipPrefix(subnet); err != nil {
					return err
				}
			}
			models, err := inference.FindRepository("")
			if err != nil {
				return err
			}
			lib, err := inference.FindLibrary("")
			if err != nil {
				return err
			}
			bin, err := os.Executable()
			if err != nil {
				return err
			}
			root, err := controlplane.RepoRoot()
			if err != nil {
				return err
			}
			ln, err := net.Listen("tcp", "127.0.0.1:0")
			if err != nil {
				return err
			}
			opts.Front = ln.Addr().String()
			ctx, stop := signal.NotifyContext(cmd.Context(), syscall.SIGINT, syscall.SIGTERM)
			defer stop()
			p := cmd.OutOrStdout()
			f, err := fleet.Up(ctx, fleet.Options{
				StateDir: filepath.Join(out, "fleet"), Binary: bin, ModelRepository: models, ServeArgs: []string{"--ort-lib", lib},
				Progress: p, Logger: log, DNSListen: "127.0.0.1:0", HTTPListener: ln,
				GeoIPv4: filepath.Join(root, geo.DefaultIPv4Path), GeoIPv6: filepath.Join(root, geo.DefaultIPv6Path),
				Hub: hub.Options{HealthPeriod: 500 * time.Millisecond, ProbeTimeout: time.Second, ResyncPeriod: time.Second},
			})
			if err != nil {
				return err
			}
			defer f.Stop()
			if err := f.WaitReady(ctx); err != nil {
				return err
			}
			time.Sleep(3 * time.Second)
			fmt.Fprintf(p, "==> load through the front at %d/s; killing %s after %s\n", max(opts.Rate, 50), opts.Region, opts.Before)
			res, err := drill.RegionLoss(ctx, f, opts)
			if err != nil {
				return err
			}
			return report(p, out, res)
		},
	}
	fs := cmd.Flags()
	fs.StringVar(&opts.Region, "region", "eu-west", "the region to kill: us-east, eu-west or ap-south")
	fs.StringVar(&subnet, "subnet", "", "the clients' network, e.g. 193.0.0.0/24 (default: one near the region)")
	fs.IntVar(&opts.Rate, "rate", 50, "requests per second offered through the balancer's HTTP front")
	fs.DurationVar(&opts.Before, "before", 5*time.Second, "load before the kill")
	fs.DurationVar(&opts.After, "after", 30*time.Second, "how long to watch after the kill")
	fs.StringVar(&out, "out", ".meridian/drill", "directory for region-loss.json and region-loss.svg")
	logs.register(fs)
	_ = fs.Set("log-level", "warn")
	return cmd
}

func netipPrefix(s string) (netip.Prefix, error) {
	p, err := netip.ParsePrefix(s)
	if err != nil {
		return p, fmt.Errorf("--subnet %q: want a network such as 193.0.0.0/24", s)
	}
	return p.Masked(), nil
}

// report prints the P4 figures and writes the JSON and the timeline.
func report(w io.Writer, out string, r *drill.Result) error {
	if err := os.MkdirAll(out, 0o755); err != nil {
		return err
	}
	b, err := json.MarshalIndent(r, "", "  ")
	if err != nil {
		return err
	}
	jsonPath, svgPath := filepath.Join(out, "region-loss.json"), filepath.Join(out, "region-loss.svg")
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
	verdict := func(ok bool) string {
		if ok {
			return "ok"
		}
		return "short"
	}
	secs := func(s *drill.Seconds) (string, float64) {
		if s == nil {
			return "never", 1e9
		}
		return fmt.Sprintf("%.2fs", float64(*s)), float64(*s)
	}
	det, detV := secs(r.Detected)
	dnsS, dnsV := secs(r.DNSResteered)
	rep, _ := secs(r.Replaced)
	fmt.Fprintf(w, "\n%d requests through the HTTP front, %d failed; the timeline is %s, the figures %s\n", r.Requests, r.Failed, svgPath, jsonPath)
	fmt.Fprintf(w, "P4 detection=%s target<=2s %s\n", det, verdict(detV <= 2))
	fmt.Fprintf(w, "P4 dns_resteer=%s target<=2s+ttl(%ds) %s\n", dnsS, r.DNSTTL, verdict(dnsV <= 2+float64(r.DNSTTL)))
	fmt.Fprintf(w, "P4 lost_requests=%d target=0 %s\n", r.Failed, verdict(r.Failed == 0))
	fmt.Fprintf(w, "P4 capacity_replaced=%s (informational)\n", rep)
	return nil
}
