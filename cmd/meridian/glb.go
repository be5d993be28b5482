package main

import (
	"fmt"
	"net/netip"
	"os/signal"
	"syscall"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/spf13/cobra"
	"github.com/spf13/pflag"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"meridian.dev/meridian/glb"
	"meridian.dev/meridian/glb/dns"
	"meridian.dev/meridian/glb/front"
	"meridian.dev/meridian/glb/geo"
	"meridian.dev/meridian/glb/steer"
	"meridian.dev/meridian/internal/scheme"
	"meridian.dev/meridian/internal/tlsx"
	"meridian.dev/meridian/internal/tracing"
)

func glbCommand() *cobra.Command {
	var (
		opts           glb.Options
		kubeconfig     string
		metrics        metricsFlags
		gossipFlags    gossipFlags
		gossipName     string
		healthFailures int
		holdDown       time.Duration
		logs           logFlags
		dnsFlags       dnsFlags
		trustedProxies []string
		frontTLS       tlsx.ServerFlags
		upstreamTLS    tlsx.ClientFlags
	)
	var traceCfg *tracing.Config
	cmd := &cobra.Command{
		Use:   "glb",
		Short: "Answer DNS for the fleet's global endpoints, steering each user to the nearest healthy cluster with room",
		Long: `glb is the global balancer: an authoritative DNS server for --zone that
answers each GlobalEndpoint's hostname with the address of the best
cluster for the client — by the client's location (EDNS Client Subnet, or
the resolver's address) for geo steering, or by the endpoint's weighted,
latency or failover policy — skipping clusters that are unreachable, have
no ready replica, have no room, or fail this balancer's own probes.

It reads GlobalEndpoints and Clusters from the hub every --refresh-period
and keeps the last good copy in --state-file, so it keeps answering while
the hub is down and after its own restart. docs/glb.md has the details.

Health comes from the hub, from this balancer's HTTP probes of every model
endpoint (--probe-*, --health-*) and, with --gossip-bind, from the agents'
gossip pool, which it joins as an observer: a cluster whose agent dies is
out of answers within the preset's detection bound, without waiting for
probes. A target is answered only while every source says it is up, and
comes back only after --health-hold-down of uninterrupted health.

With --http-listen it is also the HTTP front of a point of presence: each
request goes to the best cluster by the same policies, and is retried at
the next one on errors, 5xx and 429 within its deadline. Every query and
request is counted by model and client region and written to the hub every
--demand-period, so placement follows the users.

DNS abuse controls are on by default: response rate limiting per client
network (--dns-rrl-*; --dns-rrl=false turns it off and says so loudly in
the log), and demand counted by each query's source address, capped per
source network (--dns-demand-per-source): an EDNS Client Subnet steers
the answer from any resolver but counts as demand only from
--dns-ecs-trusted-resolvers. --dnssec-key-file signs the zone online
(ECDSA P-256; make keys with "meridian glb dnssec-keygen").`,
		Example: `  meridian glb --kubeconfig hub.kubeconfig --zone infer.example.com --dns-listen 0.0.0.0:53 \
    --gossip-bind 0.0.0.0:7946 --gossip-join eu-west-1.agents.example.com:7946 --gossip-keyring gossip.keys`,
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
			opts.Registry = prometheus.NewRegistry()
			tm, err := tlsx.NewMetrics(opts.Registry)
			if err != nil {
				return err
			}
			if err := metrics.serve(opts.Registry, tm, log); err != nil {
				return err
			}
			if healthFailures < 1 {
				return fmt.Errorf("--health-failures %d: want at least 1", healthFailures)
			}
			if opts.Affinity.Header != "" && opts.Affinity.Cookie != "" {
				return fmt.Errorf("--affinity-header and --affinity-cookie: set one of them")
			}
			if opts.DNS, err = dnsFlags.options(); err != nil {
				return err
			}
			if opts.ForwardedFor.TrustedProxies, err = prefixes("--trusted-proxies", trustedProxies); err != nil {
				return err
			}
			opts.Health = steer.HealthConfig{FailureThreshold: healthFailures, HoldDown: holdDown}
			if holdDown <= 0 {
				opts.Health.HoldDown = -1 // steer's "none"; zero would mean its default
			}
			if opts.Gossip, err = gossipFlags.config(); err != nil {
				return err
			}
			if opts.Gossip != nil {
				opts.Gossip.NodeName = gossipName
			}
			cfg, err := restConfig(kubeconfig)
			if err != nil {
				return err
			}
			hub, err := client.New(cfg, client.Options{Scheme: scheme.Scheme})
			if err != nil {
				return err
			}
			ctx, stop := signal.NotifyContext(cmd.Context(), syscall.SIGINT, syscall.SIGTERM)
			defer stop()
			if opts.TLS, err = frontTLS.Config(ctx, tlsx.ReloaderOptions{Name: "glb-front", Logger: log, Metrics: tm}); err != nil {
				return err
			}
			if opts.UpstreamTLS, err = upstreamTLS.Client(ctx, tlsx.ReloaderOptions{Name: "glb-upstream", Logger: log, Metrics: tm}); err != nil {
				return err
			}
			return glb.Run(ctx, hub, opts)
		},
	}
	fs := cmd.Flags()
	metrics.register(fs, "127.0.0.1:9092", "the balancer's /metrics (meridian_glb_*, docs/glb.md)")
	fs.StringVar(&kubeconfig, "kubeconfig", "", "kubeconfig of the hub cluster (default: $KUBECONFIG, in-cluster config, or ~/.kube/config)")
	fs.StringVar(&opts.Zone, "zone", "", "DNS zone this balancer is authoritative for, e.g. infer.example.com (required)")
	fs.StringVar(&opts.DNSListen, "dns-listen", "127.0.0.1:5353", "UDP and TCP address to answer DNS on; 0.0.0.0:53 in production")
	fs.StringVar(&opts.HTTPListen, "http-listen", "", "address for the HTTP front (e.g. 0.0.0.0:8080 at a point of presence); empty serves DNS only")
	fs.BoolVar(&opts.TrustForwardedFor, "trust-forwarded-for", false, "HTTP front: the same as --trusted-proxy-hops 1 (the client is the rightmost X-Forwarded-For entry); only when every client comes through one proxy")
	fs.IntVar(&opts.ForwardedFor.TrustedHops, "trusted-proxy-hops", 0, "HTTP front: how many proxies in front of the balancer append to X-Forwarded-For, the immediate peer included (Envoy's xff_num_trusted_hops); the client is the entry that many from the right. 0 and no --trusted-proxies: X-Forwarded-For is ignored and not passed on")
	fs.StringSliceVar(&trustedProxies, "trusted-proxies", nil, "HTTP front: networks (CIDRs or addresses) of the proxies whose X-Forwarded-For is believed; from any other peer it is ignored, and their entries are skipped from the right")
	fs.Float64Var(&opts.RetryBudget.Percent, "retry-budget-percent", front.DefaultRetryBudgetPercent, "HTTP front: retries and hedges in flight may be at most this percent of the requests in flight (Envoy's retry budget)")
	fs.IntVar(&opts.RetryBudget.MinConcurrency, "retry-budget-min-concurrency", front.DefaultRetryBudgetMinConcurrency, "HTTP front: retries and hedges always allowed at once, whatever the load")
	fs.BoolVar(&opts.AllowLocalEndpoints, "allow-local-endpoints", false, "HTTP front and probes: send to loopback model endpoints, for a fleet on one machine (meridian up); never in production (link-local and metadata addresses are refused whatever it says)")
	frontTLS.Register(fs, "tls", "the HTTP front (HTTPS only when set)")
	upstreamTLS.Register(fs, "upstream-tls", "the front's and the probes' connections to https:// cluster endpoints (mutual TLS: this balancer's client certificate, the clusters' CA)")
	opts.Auth.RegisterFlags(fs, "")
	fs.StringVar(&opts.Affinity.Header, "affinity-header", "", "HTTP front: request header holding a session key; requests with the same key go to the same cluster from every site (empty: no affinity)")
	fs.StringVar(&opts.Affinity.Cookie, "affinity-cookie", "", "HTTP front: cookie holding a session key, as --affinity-header (set one of the two)")
	fs.DurationVar(&opts.HedgeAfter, "hedge-after", 0, "HTTP front: send a request still unanswered after this long a second copy at the next cluster, the first answer winning (0: no hedging; it costs up to twice the upstream work of slow requests)")
	fs.StringVar(&opts.StateFile, "state-file", "glb-snapshot.json", "where the last-known-good copy of the hub's endpoints and clusters is kept")
	fs.StringVar(&opts.GeoIPv4, "geo-ipv4", geo.DefaultIPv4Path, "db-ip city database for IPv4 clients (make deps fetches it); empty with --geo-ipv6 empty disables geo steering")
	fs.StringVar(&opts.GeoIPv6, "geo-ipv6", geo.DefaultIPv6Path, "db-ip city database for IPv6 clients")
	fs.StringVar(&opts.Site, "site", "", "this balancer's site name, unique among the balancers (at most 63 characters; default the host name): for latency steering and as the name of its DemandReport on the hub")
	fs.DurationVar(&opts.DemandPeriod, "demand-period", 30*time.Second, "how often the queries and requests counted per model and client region are written to the hub as this site's DemandReport (the rates are averaged over it; placement follows them)")
	fs.DurationVar(&opts.RefreshPeriod, "refresh-period", 2*time.Second, "how often the hub is read")
	fs.DurationVar(&opts.ProbeInterval, "probe-interval", 250*time.Millisecond, "how often the prober turns: each model endpoint is probed as often as its GlobalEndpoint's healthCheck.interval asks (default 500ms, which with its 500ms timeout and 2 failures takes a silent or refusing cluster out within 1.5s at 2 probes/s per endpoint), at most once a turn")
	fs.DurationVar(&opts.ProbeTimeout, "probe-timeout", time.Second, "how long one probe may take before it counts as failed, where the model's GlobalEndpoint sets no healthCheck.timeout (the API defaults it to 1s)")
	fs.IntVar(&healthFailures, "health-failures", steer.DefaultFailureThreshold, "consecutive failed probes that take a model endpoint out of answers, where its GlobalEndpoint's healthCheck.failureThreshold is not set (2 forgives one lost probe; gossip needs none, its verdicts are already confirmed)")
	fs.DurationVar(&holdDown, "health-hold-down", steer.DefaultHoldDown, "how long a target taken out (by probes or gossip) must stay healthy, without a single failure, before it is answered again, so it cannot flap in and out of cached DNS answers; 0 brings it back on the first success")
	gossipFlags.register(fs, "host:port (UDP and TCP) to join the agents' gossip pool on, as an observer, to learn within seconds that a cluster died or a model is not ready there, e.g. 0.0.0.0:7946; empty: health from the hub and probes alone", "balancer")
	fs.StringVar(&gossipName, "gossip-name", "", "this balancer's node name in the gossip pool, unique there (default glb-<host name>; agents use their cluster's name)")
	dnsFlags.register(fs)
	traceCfg = tracing.RegisterFlags(fs, "meridian-glb")
	logs.register(fs)
	_ = cmd.MarkFlagRequired("zone")
	cmd.AddCommand(dnssecKeygenCommand())
	return cmd
}

// dnsFlags are the DNS server's abuse controls and signing.
type dnsFlags struct {
	rrl            bool
	rate           float64
	burst          int
	window         time.Duration
	slip           int
	v4, v6, table  int
	exempt         []string
	trusted        []string
	perSource      int
	keyFiles       []string
	validity, skew time.Duration
}

func (f *dnsFlags) register(fs *pflag.FlagSet) {
	fs.BoolVar(&f.rrl, "dns-rrl", true, "DNS response rate limiting per client network over UDP (as BIND and Knot do), which keeps the server from amplifying spoofed floods; false turns it off, for benchmarks only")
	fs.Float64Var(&f.rate, "dns-rrl-responses-per-second", dns.DefaultRRLRate, "UDP responses per second each client network (--dns-rrl-ipv4-prefix, --dns-rrl-ipv6-prefix) gets; beyond it responses are dropped or slipped")
	fs.IntVar(&f.burst, "dns-rrl-burst", 0, "responses a client network may send at once above the rate (0: one second's worth)")
	fs.DurationVar(&f.window, "dns-rrl-window", dns.DefaultRRLWindow, "how long a flood is remembered: a network over the rate stays limited until its rate over this window falls below it")
	fs.IntVar(&f.slip, "dns-rrl-slip", dns.DefaultRRLSlip, "send every n-th limited response truncated (TC, no records) so a real client retries over TCP, which is not limited; 1 slips all, 0 none")
	fs.IntVar(&f.v4, "dns-rrl-ipv4-prefix", 24, "IPv4 prefix length of a rate-limited client network")
	fs.IntVar(&f.v6, "dns-rrl-ipv6-prefix", 56, "IPv6 prefix length of a rate-limited client network")
	fs.IntVar(&f.table, "dns-rrl-table-size", dns.DefaultRRLTableSize, "client networks tracked at once (least recently seen forgotten first), which bounds the memory a spoofed flood can take")
	fs.StringSliceVar(&f.exempt, "dns-rrl-exempt", nil, "networks (CIDRs or addresses, comma-separated) never rate limited, such as your monitoring")
	fs.StringSliceVar(&f.trusted, "dns-ecs-trusted-resolvers", nil, "networks (CIDRs or addresses) of resolvers whose EDNS Client Subnet counts as demand (moves replicas); ECS steers answers from any resolver, but from others a query counts where the resolver is (default none)")
	fs.IntVar(&f.perSource, "dns-demand-per-source", glb.DefaultDNSDemandPerSource, "most DNS queries one source network (an IPv4 /24, an IPv6 /56) counts as demand per --demand-period, so one flooding source cannot move replicas; 0: no cap")
	fs.StringSliceVar(&f.keyFiles, "dnssec-key-file", nil, "sign the zone online with these keys: BIND key file prefixes (K<zone>.+013+<tag>, with .key and .private beside), one combined key or key- and zone-signing keys, ECDSA P-256 (make them with meridian glb dnssec-keygen); empty serves the zone unsigned")
	fs.DurationVar(&f.validity, "dnssec-signature-validity", dns.DefaultSignatureValidity, "how long each signature is valid; signatures are reused for a quarter of it")
	fs.DurationVar(&f.skew, "dnssec-inception-skew", dns.DefaultInceptionSkew, "how far each signature's inception is backdated, for validators whose clocks run behind")
}

func (f *dnsFlags) options() (glb.DNSOptions, error) {
	o := glb.DNSOptions{
		RRL: dns.RRL{Off: !f.rrl, ResponsesPerSecond: f.rate, Burst: f.burst, Window: f.window, Slip: f.slip,
			TableSize: f.table, IPv4PrefixLen: f.v4, IPv6PrefixLen: f.v6},
		DNSSEC: dns.DNSSEC{KeyFiles: f.keyFiles, Validity: f.validity, InceptionSkew: f.skew},
		Demand: glb.DNSDemandPolicy{PerSource: f.perSource},
	}
	if f.slip == 0 {
		o.RRL.Slip = -1 // dns.RRL's "never"
	}
	if f.perSource == 0 {
		o.Demand.PerSource = -1 // glb's "no cap"
	}
	if f.rrl && f.rate <= 0 {
		return o, fmt.Errorf("--dns-rrl-responses-per-second %v: want above 0 (--dns-rrl=false turns rate limiting off)", f.rate)
	}
	var err error
	if o.RRL.Exempt, err = prefixes("--dns-rrl-exempt", f.exempt); err != nil {
		return o, err
	}
	o.Demand.TrustedResolvers, err = prefixes("--dns-ecs-trusted-resolvers", f.trusted)
	return o, err
}

// prefixes parses CIDRs; a bare address is its own /32 or /128.
func prefixes(flag string, list []string) ([]netip.Prefix, error) {
	var out []netip.Prefix
	for _, s := range list {
		p, err := netip.ParsePrefix(s)
		if err != nil {
			a, aerr := netip.ParseAddr(s)
			if aerr != nil {
				return nil, fmt.Errorf("%s %q: want a CIDR such as 192.0.2.0/24 or an address", flag, s)
			}
			p = netip.PrefixFrom(a, a.BitLen())
		}
		out = append(out, p.Masked())
	}
	return out, nil
}

// dnssecKeygenCommand is `glb dnssec-keygen`: a key for --dnssec-key-file.
func dnssecKeygenCommand() *cobra.Command {
	var zone, dir string
	var zsk bool
	cmd := &cobra.Command{
		Use:   "dnssec-keygen",
		Short: "Make an ECDSA P-256 DNSSEC key for the balancer's zone, in BIND's key file format",
		Long: `dnssec-keygen writes K<zone>.+013+<tag>.key (the DNSKEY) and .private
(the private key, mode 0600) into --dir, as BIND's dnssec-keygen
-a ECDSAP256SHA256 does, and prints the prefix to give --dnssec-key-file
and the DNS records for the parent zone (DS) and for trust anchors.
A key made without --zsk is a key-signing key (flags 257), which alone
signs everything (a combined signing key); with a zone-signing key made
with --zsk beside it, it signs only the DNSKEY set.`,
		Example: `  meridian glb dnssec-keygen --zone infer.example.com --dir /etc/meridian/dnssec`,
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			prefix, dnskey, ds, err := dns.GenerateKey(dir, zone, zsk)
			if err != nil {
				return err
			}
			out := cmd.OutOrStdout()
			_, err = fmt.Fprintf(out, "%s\n; DNSKEY (trust anchor):\n%s\n; DS for the parent zone:\n%s\n", prefix, dnskey, ds)
			return err
		},
	}
	fs := cmd.Flags()
	fs.StringVar(&zone, "zone", "", "the zone the key signs, as given to meridian glb --zone (required)")
	fs.StringVar(&dir, "dir", ".", "directory to write the key files into")
	fs.BoolVar(&zsk, "zsk", false, "make a zone-signing key (flags 256), to sign the zone's data beside a key-signing key made without --zsk")
	_ = cmd.MarkFlagRequired("zone")
	return cmd
}
