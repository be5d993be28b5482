package main

import (
	"errors"
	"fmt"
	"io"
	"net"
	"net/url"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"time"

	"github.com/spf13/cobra"

	v1 "meridian.dev/meridian/crds/v1alpha1"
	"meridian.dev/meridian/glb/geo"
	"meridian.dev/meridian/inference"
	"meridian.dev/meridian/internal/controlplane"
	"meridian.dev/meridian/internal/fleet"
)

func upCommand() *cobra.Command {
	var (
		regions, members []string
		stateDir, ortLib string
		listen           []string
		dnsListen, zone  string
		models, runtime  string
		membershipMode   string
		insecure         bool
		pageListen       string
		logs             logFlags
	)
	cmd := &cobra.Command{
		Use:   "up",
		Short: "Run a whole fleet on this machine: a hub and three member regions serving the bundled models",
		Long: `up starts a hub control plane and one member control plane per region (real
kube-apiserver + etcd, built by 'make controlplane'), an agent on the
process runtime in each member, and the hub; registers the members with
the hub through kubeconfig Secrets, as in production (or, with
--membership pull, each agent joins with a bootstrap bundle from 'meridian
member add' and reaches the hub itself); applies the bundled
InferenceModels (sentiment, textdir); waits until both answer in every
region; and prints what to try. Ctrl-C stops everything.

The fleet is secured as a real one: its own CA (--state-dir/pki) issues
the balancer's and each region's certificates; the balancer's front and
the regions' gateways speak HTTPS only, the regions' per-model fronts take
only the balancer's client certificate (mutual TLS), every request needs
the demo tenant's API key (--state-dir/auth, a new one each start), and
gossip is encrypted with a fresh key. The printed curl lines carry the CA
and the key. --insecure turns TLS and keys off, for debugging only.

With --runtime kubernetes each region also gets a controller-manager and a
scheduler, one real worker node (kubelet + containerd + runc + CNI; needs
root and 'apt-get install containerd runc containernetworking-plugins'),
Meridian's image served to it by digest ('make image'), and a LoadBalancer
implementation giving the region addresses of its own (127.0.<100+i>.x);
the replicas run as real Pods, scaled by the real HPA on the metrics the
agent's adapter serves, and each model answers on port 8000 of its
Service's address, which is what the balancer's DNS answers with.

Kubeconfigs for the hub and each member are written to --state-dir. The
control planes start fresh each time; the binaries, downloads and models
are reused.`,
		Example: `  meridian up
  meridian up --regions us-east,eu-west,ap-south,ap-northeast
  meridian up --membership pull
  sudo meridian up --runtime kubernetes
  meridian up --member eu-west=/path/to/eu-west.kubeconfig`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			log, err := logs.logger()
			if err != nil {
				return err
			}
			began := time.Now()
			opts := fleet.Options{StateDir: stateDir, Progress: cmd.OutOrStdout(), Logger: log, Runtime: v1.Runtime(runtime), Membership: membershipMode,
				Insecure: insecure, PageListen: pageListen}
			if insecure {
				log.Warn("INSECURE: --insecure turns the fleet's TLS, mutual TLS and API keys off: plain HTTP, every request served; for debugging only")
			}
			if opts.Regions, err = parseRegions(regions, members); err != nil {
				return err
			}
			if opts.ModelRepository, err = inference.FindRepository(models); err != nil {
				return err
			}
			lib, err := inference.FindLibrary(ortLib)
			if err != nil {
				return err
			}
			opts.ServeArgs = []string{"--ort-lib", lib}
			opts.DNSListen, opts.Zone = dnsListen, zone
			if root, err := controlplane.RepoRoot(); err == nil {
				opts.GeoIPv4 = filepath.Join(root, geo.DefaultIPv4Path)
				opts.GeoIPv6 = filepath.Join(root, geo.DefaultIPv6Path)
			}
			if opts.Binary, err = os.Executable(); err != nil {
				return err
			}
			if _, err := controlplane.FindBinDir(); err != nil {
				return err
			}
			// Take the entry point's port first: failing after minutes of
			// start-up would waste them.
			if len(listen) == 0 {
				return errors.New("--listen: give at least one address for the fleet's entry point")
			}
			for _, addr := range listen {
				ln, err := net.Listen("tcp", addr)
				if err != nil {
					return fmt.Errorf("--listen %s: %w (is 'meridian serve' or another fleet running?)", addr, err)
				}
				opts.HTTPListeners = append(opts.HTTPListeners, ln)
			}
			ctx, stop := signal.NotifyContext(cmd.Context(), syscall.SIGINT, syscall.SIGTERM)
			defer stop()
			f, err := fleet.Up(ctx, opts)
			if err != nil {
				return err
			}
			defer func() {
				fmt.Fprintln(cmd.OutOrStdout(), "==> stopping the fleet")
				f.Stop()
			}()
			if err := f.WaitReady(ctx); err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "==> the fleet is up in %.0fs (%s runtime)\n", time.Since(began).Seconds(), opts.Runtime)
			fmt.Fprintf(cmd.OutOrStdout(), "==> timing preset %s\n", f.Timing())
			printTryLines(cmd, f, opts.HTTPListeners[0].Addr().String())
			select {
			case <-ctx.Done():
				return nil
			case err := <-f.Errors():
				return err
			}
		},
	}
	fs := cmd.Flags()
	fs.StringSliceVar(&regions, "regions", []string{"us-east", "eu-west", "ap-south"}, "member regions to start locally; names known to Meridian get their real location, others NAME=LAT:LON")
	fs.StringSliceVar(&members, "member", nil, "use an existing cluster as a member instead of a local one, as NAME=KUBECONFIG (an agent must run there)")
	fs.StringSliceVar(&listen, "listen", []string{"127.0.0.1:8080", "127.0.0.1:8000"}, "addresses of the global balancer's HTTP front, the fleet's entry point (8080 as at a point of presence; 8000 where 'meridian serve' answers, so the same curl works on either): it sends each request to the best ready region and retries elsewhere on failure")
	fs.StringVar(&dnsListen, "dns-listen", "127.0.0.1:5353", "where the fleet's global balancer answers DNS (UDP and TCP)")
	fs.StringVar(&zone, "zone", "infer.meridian.local", "the balancer's DNS zone; each model answers at <model>.<zone>")
	fs.StringVar(&stateDir, "state-dir", ".meridian", "directory for the fleet's kubeconfigs")
	fs.StringVar(&models, "models", "", "model repository the agents serve (default ./models, else the checkout's)")
	fs.StringVar(&runtime, "runtime", string(v1.RuntimeProcess), "how the local regions run replicas: process (local processes, needs nothing more) or kubernetes (real Pods of Meridian's image on one real node per region; needs root, containerd, runc, the CNI plugins and 'make image')")
	fs.StringVar(&ortLib, "ort-lib", "", "ONNX Runtime library for the replicas (default as for 'meridian serve')")
	fs.StringVar(&membershipMode, "membership", "push", membershipHelp)
	fs.StringVar(&pageListen, "page-listen", "127.0.0.1:8090", "loopback address serving the live fleet page (the regions' health, replicas, load and users on a world map; rollouts; the timelines of the drills in --state-dir/drill) over plain HTTP; empty turns it off")
	logs.registerLevel(fs, "warn")
	return cmd
}

func parseRegions(regions, members []string) ([]fleet.Region, error) {
	var out []fleet.Region
	for _, r := range regions {
		name, loc, hasLoc := strings.Cut(r, "=")
		reg := fleet.Region{Name: name}
		if hasLoc {
			lat, lon, ok := strings.Cut(loc, ":")
			if !ok {
				return nil, fmt.Errorf("--regions %q: want NAME or NAME=LAT:LON", r)
			}
			reg.Latitude, reg.Longitude = lat, lon
		} else if known, ok := fleet.KnownLocations[name]; ok {
			reg.Latitude, reg.Longitude = known[0], known[1]
		} else {
			return nil, fmt.Errorf("--regions: no known location for %q; give one as %s=LAT:LON", name, name)
		}
		out = append(out, reg)
	}
	for _, m := range members {
		name, path, ok := strings.Cut(m, "=")
		if !ok || name == "" || path == "" {
			return nil, fmt.Errorf("--member %q: want NAME=KUBECONFIG", m)
		}
		i := slices.IndexFunc(out, func(r fleet.Region) bool { return r.Name == name })
		if i < 0 {
			return nil, fmt.Errorf("--member %s: not one of --regions", name)
		}
		out[i].Kubeconfig = path
	}
	return out, nil
}

func printTryLines(cmd *cobra.Command, f *fleet.Fleet, front string) {
	out := cmd.OutOrStdout()
	endpoints, _ := f.Endpoints(cmd.Context())
	bin, _ := controlplane.FindBinDir()
	kubectl := filepath.Join(bin, "kubectl")
	fmt.Fprintf(out, "\nThe fleet is up. Try, from another shell:\n\n")
	fmt.Fprintf(out, "  %s --kubeconfig %s get clusters,inferencemodels\n", kubectl, f.HubKubeconfig)
	if lines := f.KubectlLines(); len(lines) > 0 {
		fmt.Fprintf(out, "\nEach region's real node, its pods, their HPAs (live values from the agent's metrics adapter)\nand the LoadBalancer addresses the models answer on:\n\n")
		for _, l := range lines {
			fmt.Fprintf(out, "  %s\n", l)
		}
		fmt.Fprintln(out)
	}
	curl, scheme := "curl", f.Scheme()
	if ca := f.CAFile(); ca != "" {
		fmt.Fprintf(out, "The fleet speaks HTTPS (its CA: %s) and asks for the demo tenant's key (in %s):\n\n", ca, f.APIKeysFile())
		curl = fmt.Sprintf("curl --cacert %s -H 'Authorization: Bearer %s'", ca, f.APIKey())
	}
	fmt.Fprintf(out, "  %s -si %s://%s/analyze -d '{\"text\":\"I love this, it is amazing\"}'   # through the balancer; X-Meridian-Cluster names the region\n", curl, scheme, front)
	fmt.Fprintf(out, "  scripts/textdir-request.sh | %s -s %s://%s/v2/models/textdir/infer -d @-\n", curl, scheme, front)
	regions := make([]string, 0, len(endpoints))
	for r := range endpoints {
		regions = append(regions, r)
	}
	slices.Sort(regions)
	for _, r := range regions {
		// Each region's gateway, by the model's name as a DNS client
		// reaches it (its per-model fronts take only the balancer's
		// certificate).
		if u, err := url.Parse(endpoints[r]["sentiment"]); err == nil && u.Host != "" {
			name := "sentiment." + f.Zone
			fmt.Fprintf(out, "  %s -s --resolve %s:%d:%s %s://%s:%d/analyze -d '{\"text\":\"I love this, it is amazing\"}'   # %s\n",
				curl, name, fleet.GatewayPort, u.Hostname(), scheme, name, fleet.GatewayPort, r)
		}
	}
	host, port, _ := net.SplitHostPort(f.DNSAddr)
	dig := "dig" // dig and kdig take the same options here
	if _, err := exec.LookPath("dig"); err != nil {
		if _, err := exec.LookPath("kdig"); err == nil {
			dig = "kdig"
		}
	}
	fmt.Fprintf(out, "\nThe global balancer steers by the client's location, from DNS (EDNS Client Subnet) and over HTTP\n(X-Forwarded-For, which the local front trusts); each answer names the region's own address:\n\n")
	for _, c := range []struct{ subnet, who string }{
		{"193.0.0.0/24", "Amsterdam -> eu-west"}, {"3.80.0.0/24", "Ashburn -> us-east"}, {"13.126.0.0/24", "Mumbai -> ap-south"},
	} {
		fmt.Fprintf(out, "  %s @%s -p %s +short +subnet=%s sentiment.%s   # %s\n", dig, host, port, c.subnet, f.Zone, c.who)
	}
	fmt.Fprintf(out, "\nEvery region serves every model on port %d of that address (its gateway), so a client can follow the answer:\n\n", fleet.GatewayPort)
	name := "sentiment." + f.Zone
	fmt.Fprintf(out, "  %s -s --resolve %s:%d:$(%s @%s -p %s +short +subnet=193.0.0.0/24 %s) %s://%s:%d/analyze -d '{\"text\":\"ok\"}'   # Amsterdam, straight to eu-west\n\n",
		curl, name, fleet.GatewayPort, dig, host, port, name, scheme, name, fleet.GatewayPort)
	for _, c := range []struct{ ip, who string }{{"193.0.0.1", "Amsterdam"}, {"3.80.0.1", "Ashburn"}, {"13.126.0.1", "Mumbai"}} {
		fmt.Fprintf(out, "  %s -s -o /dev/null -w '%%header{x-meridian-cluster}\\n' -H 'X-Forwarded-For: %s' %s://%s/analyze -d '{\"text\":\"ok\"}'   # %s\n", curl, c.ip, scheme, front, c.who)
	}
	if len(f.KubectlLines()) == 0 { // the kubernetes runtime does not split versions yet
		printRolloutLines(out, f, kubectl, curl, scheme+"://"+front)
	}
	if f.PageURL != "" {
		fmt.Fprintf(out, "\nThe fleet page (regions, replicas, load, users, rollouts, drills), live: %s\n", f.PageURL)
	}
	fmt.Fprintf(out, "\nCtrl-C stops the fleet.\n")
}

// printRolloutLines says how to roll sentiment out to its version 2, how
// to feed the rollout's analysis, and how to watch it.
func printRolloutLines(out io.Writer, f *fleet.Fleet, kubectl, curl, front string) {
	k := fmt.Sprintf("%s --kubeconfig %s", kubectl, f.HubKubeconfig)
	fmt.Fprintf(out, "\nsentiment serves its version 1; roll version 2 out, eu-west first, then the other regions,\neach step judged on the versions' errors and latency (docs/rollouts.md):\n\n")
	// Unindented, so that the here-document pastes as it is.
	fmt.Fprintf(out, "%s apply -f - <<'EOF'\n", k)
	fmt.Fprintf(out, "apiVersion: meridian.dev/v1alpha1\nkind: ModelRollout\nmetadata: {name: sentiment-v2, namespace: default}\n")
	fmt.Fprintf(out, "spec: {model: sentiment, version: 2, steps: [{weight: 20}, {weight: 50}], bake: 30s, waves: [{regions: [eu-west]}]}\nEOF\n")
	fmt.Fprintf(out, "\nIts analysis needs requests (20 per step by default): users from every region, 5 a second each:\n\n")
	fmt.Fprintf(out, "  while :; do for ip in 193.0.0.1 3.80.0.1 13.126.0.1; do %s -s -o /dev/null -H \"X-Forwarded-For: $ip\" %s/analyze -d '{\"text\":\"ok\"}' & done; sleep 0.2; done\n", curl, front)
	fmt.Fprintf(out, "\nWatch it (the answers' Meridian-Model-Version header says which version served each):\n\n")
	fmt.Fprintf(out, "  %s get modelrollouts -w\n", k)
}

// membershipHelp is the --membership flag of up and the drills.
const membershipHelp = "how the local regions join the hub: push (the hub holds each member's kubeconfig) or pull (each agent joins with a bootstrap bundle from `meridian member add` and reaches the hub itself; the hub holds nothing of the member's)"
