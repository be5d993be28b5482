package glb

import (
	"cmp"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"os"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"meridian.dev/meridian/glb/dns"
	"meridian.dev/meridian/glb/front"
	"meridian.dev/meridian/glb/geo"
	"meridian.dev/meridian/glb/steer"
	"meridian.dev/meridian/gossip"
	"meridian.dev/meridian/internal/auth"
	"meridian.dev/meridian/internal/endpoint"
	"meridian.dev/meridian/internal/httpserve"
	"meridian.dev/meridian/internal/tlsx"
)

// Options configure a running balancer.
type Options struct {
	// Zone is the DNS zone served, e.g. "infer.example.com.".
	Zone string
	// DNSListen is the UDP and TCP address of the DNS server, e.g.
	// "0.0.0.0:53".
	DNSListen string
	// HTTPListen, when set, serves the HTTP front there; HTTPListeners,
	// already bound, serve it too.
	HTTPListen    string
	HTTPListeners []net.Listener
	// TLS, when set, makes the HTTP front HTTPS only (internal/tlsx:
	// certificates reloaded from their files).
	TLS *tls.Config
	// UpstreamTLS is the client the front and the probes speak to https://
	// endpoints with: the clusters' CA and the balancer's client
	// certificate (mutual TLS). Nil: the system's roots, no certificate.
	UpstreamTLS *tlsx.Client
	// Auth is the HTTP front's door (internal/auth): API keys, JWTs,
	// tenant quotas and model allow-lists; zero leaves the front open.
	Auth auth.Options
	// Dial, when set, opens every connection the balancer makes to the
	// clusters (probes and the HTTP front); drills use it to partition a
	// region away from this site. Default: a net.Dialer.
	Dial func(ctx context.Context, network, addr string) (net.Conn, error)
	// DemandPeriod is how often this site's DemandReport is written on the
	// hub (the rates are averaged over it). Default 30s.
	DemandPeriod time.Duration
	// ForwardedFor says which X-Forwarded-For entries the HTTP front
	// believes, counted from the right (front.ForwardedFor); the zero
	// value believes none.
	ForwardedFor front.ForwardedFor
	// TrustForwardedFor, when ForwardedFor is zero, trusts one hop: the
	// client is the rightmost X-Forwarded-For entry, what the peer saw.
	// Set it only when every client comes through one proxy.
	TrustForwardedFor bool
	// RetryBudget bounds the HTTP front's retries and hedges
	// (front.RetryBudget); zero fields take its defaults.
	RetryBudget front.RetryBudget
	// AllowLocalEndpoints lets the HTTP front send to loopback model
	// endpoints, for a fleet on one machine; link-local, metadata,
	// unspecified and multicast endpoints are refused whatever it says
	// (package internal/endpoint).
	AllowLocalEndpoints bool
	// Affinity, when its Header or Cookie is set, makes the HTTP front
	// send requests that carry the same key to the same cluster, from
	// every site alike (front.Affinity). The zero value turns it off.
	Affinity front.Affinity
	// HedgeAfter, when positive, makes the HTTP front send a request that
	// has had no answer for this long a second copy at the next cluster;
	// the first answer wins. Zero: no hedging.
	HedgeAfter time.Duration
	// DNS are the DNS server's abuse controls (rate limiting, what counts
	// as demand) and DNSSEC signing; the zero value is rate limited and
	// unsigned (DNSOptions).
	DNS DNSOptions
	// NS are the zone's name servers and the addresses they resolve to
	// (glue); default one "ns1.<zone>" at the DNS listen address.
	NS map[string][]netip.Addr
	// StateFile keeps the last-known-good snapshot of the hub.
	StateFile string
	// GeoIPv4 and GeoIPv6 are the db-ip city databases; both empty
	// disables geo steering (clients then follow failover order).
	GeoIPv4, GeoIPv6 string
	// Site names this balancer, for latency steering and as its
	// DemandReport; unique among the balancers, at most 63 characters.
	// Default the host name.
	Site string
	// RefreshPeriod is how often the hub is read. Default 2s.
	RefreshPeriod time.Duration
	// ProbeInterval is how often the prober turns: each model endpoint
	// is probed as often as its GlobalEndpoint's healthCheck.interval asks
	// (500ms by default), at most once a turn. Default 250ms.
	ProbeInterval time.Duration
	// ProbeTimeout bounds one probe of an endpoint whose GlobalEndpoint
	// sets no healthCheck.timeout (and of models the HTTP front serves
	// without one). Default 1s, the API's default.
	ProbeTimeout time.Duration
	// Health is the failure threshold and hold-down of the probes; the
	// hold-down applies to gossip's verdicts too.
	Health steer.HealthConfig
	// Gossip, when set, joins the agents' gossip pool as an observer (no
	// Cluster in its Meta, no state published; see gossip.Config)
	// so that a cluster whose agent dies or leaves is out of answers at
	// once, and a model an agent reports unready is skipped there. Join
	// lists agents' gossip addresses; the balancer keeps trying them while
	// it sees no live member. NodeName defaults to "glb-<host name>" and
	// must be unique in the pool. Nil: health from the hub and probes
	// alone.
	Gossip *gossip.Config
	// Logger; default slog.Default().
	Logger *slog.Logger
	// Registry receives meridian_glb_* metrics; default a new one.
	Registry *prometheus.Registry
	// Ready, if set, receives the DNS address once it serves.
	Ready chan<- string
}

// Run serves DNS for the zone (and the HTTP front, when asked) from the
// hub's GlobalEndpoints and Clusters until ctx ends, and reports the
// demand it sees to the hub. hub may be unreachable: the last-known-good
// snapshot answers meanwhile, and the demand waits.
func Run(ctx context.Context, hub client.Client, opts Options) error {
	if opts.Zone == "" || opts.DNSListen == "" {
		return errors.New("glb: a zone and a DNS listen address are required")
	}
	if opts.DemandPeriod < 0 || opts.RefreshPeriod < 0 || opts.ProbeInterval < 0 {
		return errors.New("glb: the demand, refresh and probe periods must be positive")
	}
	if opts.Site == "" {
		host, _ := os.Hostname()
		opts.Site = cmp.Or(host, "glb")
	}
	if len(opts.Site) > 63 {
		return fmt.Errorf("glb: --site %q is longer than 63 characters", opts.Site)
	}
	log := cmp.Or(opts.Logger, slog.Default())
	reg := opts.Registry
	if reg == nil {
		reg = prometheus.NewRegistry()
	}
	var db *geo.DB
	if opts.GeoIPv4 != "" || opts.GeoIPv6 != "" {
		var err error
		if db, err = geo.Open(opts.GeoIPv4, opts.GeoIPv6); err != nil {
			return fmt.Errorf("glb: opening the geo database: %w (run `make deps`)", err)
		}
		defer func() { _ = db.Close() }()
	}
	src := NewSource(hub, opts.StateFile, opts.RefreshPeriod, log)
	health := opts.Health
	if health == (steer.HealthConfig{}) {
		health = steer.DefaultHealthConfig()
	}
	probes := steer.NewHealth(health)
	b := NewBalancer(src, db, probes, opts.Site, log)
	b.dial, b.upstreamTLS = endpointDial(opts), opts.UpstreamTLS
	demand, err := NewDemand(reg)
	if err != nil {
		return fmt.Errorf("glb: %w", err)
	}
	b.CountDemand(demand)
	zone := strings.ToLower(strings.TrimSuffix(opts.Zone, ".")) + "."
	ns := opts.NS
	if len(ns) == 0 {
		ap, err := netip.ParseAddrPort(opts.DNSListen)
		if err != nil {
			return fmt.Errorf("glb: --dns-listen %s: %w", opts.DNSListen, err)
		}
		ns = map[string][]netip.Addr{"ns1." + zone: {ap.Addr()}}
	}
	cfg := dns.Config{Zone: zone, Glue: ns, SOA: dns.SOA{MName: firstKey(ns), RName: "hostmaster." + zone}}
	for name := range ns {
		cfg.NS = append(cfg.NS, name)
	}
	applyDNS(&cfg, demand, opts.DNS, log)
	srv, err := dns.New(cfg, b, reg)
	if err != nil {
		return fmt.Errorf("glb: %w", err)
	}
	var node *gossip.Node
	if opts.Gossip != nil {
		// The same hold-down as the probes', defaults filled in.
		g := *opts.Gossip
		if g.Registerer == nil {
			g.Registerer = reg // the node's meridian_gossip_* on the balancer's /metrics
		}
		n, leave, err := b.joinGossip(ctx, g, probes.Config())
		if err != nil {
			return err
		}
		defer leave()
		node = n
	}
	if err := b.registerHealthMetrics(reg, node); err != nil {
		return fmt.Errorf("glb: %w", err)
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	go func() { _ = src.Run(ctx) }()
	go b.Probe(ctx, cmp.Or(opts.ProbeInterval, 250*time.Millisecond), opts.ProbeTimeout)
	reported := make(chan struct{})
	go func() {
		defer close(reported)
		demand.Report(ctx, hub, opts.Site, cmp.Or(opts.DemandPeriod, 30*time.Second), log)
	}()
	errc := make(chan error, 1+len(opts.HTTPListeners)+1)
	go func() { errc <- srv.ListenAndServe(ctx, opts.DNSListen) }()
	noFront := make(chan struct{})
	close(noFront)
	var drained <-chan struct{} = noFront // closed once the HTTP front has drained
	lns := opts.HTTPListeners
	if opts.HTTPListen != "" {
		ln, err := net.Listen("tcp", opts.HTTPListen)
		if err != nil {
			return fmt.Errorf("glb: --http-listen %s: %w", opts.HTTPListen, err)
		}
		lns = append(lns, ln)
	}
	if len(lns) > 0 {
		f, err := front.New(b, frontOptions(opts, reg, log))
		if err != nil {
			return fmt.Errorf("glb: %w", err)
		}
		ao := opts.Auth
		if ao.ModelOf == nil {
			ao.ModelOf = f.ModelOf
		}
		door, err := auth.New(ao, reg, log)
		if err != nil {
			return fmt.Errorf("glb: %w", err)
		}
		defer door.Close()
		hs, err := httpserve.New(b.withHealth(door.Wrap(f)), httpserve.Options{Name: "glb-front", Refuse: front.WriteError, Registerer: reg, Logger: log})
		if err != nil {
			return fmt.Errorf("glb: %w", err)
		}
		hs.TLSConfig = opts.TLS
		drained = serveHTTP(ctx, hs, lns, errc, log)
	}
	addr, err := srv.Addr(ctx)
	if err != nil {
		return err
	}
	log.Info("glb serving DNS", "zone", zone, "addr", addr.String())
	if opts.Ready != nil {
		opts.Ready <- addr.String()
	}
	err = <-errc
	// Stopping: requests in flight through the front finish, and the last
	// window of demand reaches the hub, before Run returns.
	cancel()
	<-drained
	<-reported
	return err
}

// serveHTTP serves hs on every listener until ctx ends, then drains it
// (up to 10 s); the channel it returns is closed once drained. Requests
// whose framing is ambiguous (both Content-Length and Transfer-Encoding:
// request smuggling) are answered 400 before the front sees them.
func serveHTTP(ctx context.Context, hs *http.Server, lns []net.Listener, errc chan<- error, log *slog.Logger) <-chan struct{} {
	drained := make(chan struct{})
	secure := hs.TLSConfig != nil // read before serving writes it (HTTP/2 set-up)
	go func() {
		defer close(drained)
		<-ctx.Done()
		sctx, c := context.WithTimeout(context.Background(), 10*time.Second)
		defer c()
		_ = hs.Shutdown(sctx)
	}()
	for _, ln := range lns {
		go func() {
			if err := httpserve.ServeOnce(hs, ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
				errc <- err
			}
		}()
		log.Info("glb serving HTTP", "addr", ln.Addr().String(), "tls", secure)
	}
	return drained
}

func firstKey(m map[string][]netip.Addr) string {
	for k := range m {
		return k
	}
	return ""
}

// frontOptions are the HTTP front's options from the balancer's: what
// the command's flags choose, the registry and logger, and the dialer.
func frontOptions(opts Options, reg prometheus.Registerer, log *slog.Logger) front.Options {
	fo := front.Options{
		Registerer: reg, Logger: log, ForwardedFor: opts.ForwardedFor, RetryBudget: opts.RetryBudget,
		Affinity: opts.Affinity, Hedge: opts.HedgeAfter > 0, HedgeAfter: opts.HedgeAfter,
		AllowLocalEndpoints: opts.AllowLocalEndpoints,
	}
	if !fo.ForwardedFor.Enabled() && opts.TrustForwardedFor {
		fo.ForwardedFor.TrustedHops = 1
	}
	if opts.Dial != nil || opts.UpstreamTLS != nil {
		fo.Transport = upstreamTransport(endpointDial(opts), opts.UpstreamTLS)
		fo.GRPCTransport = grpcUpstreamTransport(endpointDial(opts), opts.UpstreamTLS)
	}
	return fo
}

// endpointDial opens the connections to the clusters (opts.Dial, else a
// net.Dialer), refusing the endpoints the policy forbids as soon as
// connected, before anything is written.
func endpointDial(opts Options) dialFunc {
	p := endpoint.Policy{Local: opts.AllowLocalEndpoints}
	if opts.Dial == nil {
		return p.Dialer(&net.Dialer{Timeout: 30 * time.Second, KeepAlive: 30 * time.Second}).DialContext
	}
	return p.Guard(opts.Dial)
}
