package metricsapi

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"time"

	"github.com/go-logr/logr"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/spf13/pflag"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/client-go/rest"
	"k8s.io/klog/v2"
	"meridian.dev/meridian/internal/hostip"
	"sigs.k8s.io/controller-runtime/pkg/client"
	basecmd "sigs.k8s.io/custom-metrics-apiserver/pkg/cmd"
	"sigs.k8s.io/custom-metrics-apiserver/pkg/cmd/options"
)

// Defaults of Options.
const (
	DefaultNamespace   = "meridian-system"
	DefaultService     = "meridian-metrics"
	DefaultServicePort = int32(443)
)

// Options configure the adapter.
type Options struct {
	// Listen is the host:port the adapter serves HTTPS on, e.g. ":6443".
	// Ignored when Listener is set.
	Listen string
	// Listener, when set, is used instead of listening on Listen.
	Listener net.Listener
	// Advertise is the IP the API server dials the adapter at, written
	// into the EndpointSlice. It cannot be a loopback, link-local or
	// unspecified address (the API server rejects those endpoints).
	// Default: Listen's host when it is such an IP, else the first
	// global-unicast IPv4 address of this host's interfaces.
	Advertise string
	// Namespace and Service name the selector-less Service the APIServices
	// point at; ServicePort is its port. Defaults meridian-system,
	// meridian-metrics and 443.
	Namespace, Service string
	ServicePort        int32
	// Source supplies the values; default a Scraper of the model replica
	// pods, configured by the fields below.
	Source Source
	// Period, MaxAge, Selector and Address configure the default Scraper
	// (see ScraperOptions).
	Period, MaxAge time.Duration
	Selector       labels.Selector
	Address        func(*corev1.Pod) (string, bool)
	// Logger; default slog.Default().
	Logger *slog.Logger
	// Registry receives the meridian_agent_metricsapi_* series; nil
	// registers none.
	Registry prometheus.Registerer
	// Ready, when set, is closed once the adapter serves and has
	// registered itself the first time.
	Ready chan<- struct{}
}

// Run serves custom.metrics.k8s.io and external.metrics.k8s.io until ctx
// ends. cfg reaches the cluster's API server (delegated authentication and
// authorization, and the registration); c lists pods and applies the
// registration (the agent's client). The APIServices stay registered when
// Run returns: a restarted agent registers itself again with its new
// address and CA, and meanwhile the HPA reports the metrics as missing.
func Run(ctx context.Context, cfg *rest.Config, c client.Client, opts Options) (err error) {
	log := cmp.Or(opts.Logger, slog.Default())
	opts.Namespace = cmp.Or(opts.Namespace, DefaultNamespace)
	opts.Service = cmp.Or(opts.Service, DefaultService)
	opts.ServicePort = cmp.Or(opts.ServicePort, DefaultServicePort)
	var m *Metrics
	if opts.Registry != nil {
		if m, err = NewMetrics(opts.Registry); err != nil {
			return err
		}
	}

	ln := opts.Listener
	if ln == nil {
		if opts.Listen == "" {
			return errors.New("metrics API: no listen address")
		}
		if ln, err = net.Listen("tcp", opts.Listen); err != nil {
			return fmt.Errorf("metrics API: %w", err)
		}
	}
	defer func() { _ = ln.Close() }() // the server closes it too; a second close is harmless
	tcp, ok := ln.Addr().(*net.TCPAddr)
	if !ok {
		return fmt.Errorf("metrics API: listener %s is not TCP", ln.Addr())
	}
	ip, err := advertiseIP(opts.Advertise, tcp.IP)
	if err != nil {
		return err
	}

	dir, err := os.MkdirTemp("", "meridian-metricsapi-")
	if err != nil {
		return err
	}
	defer func() { _ = os.RemoveAll(dir) }()
	cert, err := newServingCert(opts.Service, opts.Namespace, ip)
	if err != nil {
		return fmt.Errorf("metrics API: serving certificate: %w", err)
	}
	kubeconfig := filepath.Join(dir, "kubeconfig")
	if err := writeFiles(dir, map[string][]byte{"tls.crt": cert.certPEM, "tls.key": cert.keyPEM}); err != nil {
		return err
	}
	if err := writeKubeconfig(kubeconfig, cfg); err != nil {
		return fmt.Errorf("metrics API: %w", err)
	}

	src := opts.Source
	var scraper *Scraper
	if src == nil {
		scraper = NewScraper(ScraperOptions{
			Pods: c, Selector: opts.Selector, Period: opts.Period, MaxAge: opts.MaxAge,
			Address: opts.Address, Logger: log, Metrics: m,
		})
		src = scraper
	}

	// The library and the generic API server log through klog.
	klog.SetLogger(logr.FromSlogHandler(log.Handler()))
	o := options.NewCustomMetricsAdapterServerOptions()
	o.SecureServing.Listener = ln
	o.SecureServing.BindPort = tcp.Port
	o.SecureServing.ServerCert.CertKey.CertFile = filepath.Join(dir, "tls.crt")
	o.SecureServing.ServerCert.CertKey.KeyFile = filepath.Join(dir, "tls.key")
	o.Authentication.RemoteKubeConfigFile = kubeconfig
	o.Authorization.RemoteKubeConfigFile = kubeconfig
	o.EnableMetrics = false // ours are on the agent's registry
	base := &basecmd.AdapterBase{
		Name:                              "meridian-metrics",
		CustomMetricsAdapterServerOptions: o,
		RemoteKubeConfigFile:              kubeconfig,
		FlagSet:                           pflag.NewFlagSet("metricsapi", pflag.ContinueOnError),
	}
	p := &metricsProvider{src: src, metrics: m}
	base.WithCustomMetrics(p)
	base.WithExternalMetrics(p)
	server, err := base.Server()
	if err != nil {
		return fmt.Errorf("metrics API: %w", err)
	}

	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	if scraper != nil {
		go func() { _ = scraper.Run(ctx) }()
	}
	reg := registration{namespace: opts.Namespace, service: opts.Service, servicePort: opts.ServicePort,
		ip: ip, port: int32(tcp.Port), caBundle: cert.caPEM}
	go keepRegistered(ctx, c, reg, m, log, opts.Ready)
	log.Info("metrics API serving", "listen", ln.Addr().String(), "advertise", net.JoinHostPort(ip.String(), strconv.Itoa(tcp.Port)),
		"service", opts.Namespace+"/"+opts.Service)
	if err := server.GenericAPIServer.PrepareRun().RunWithContext(ctx); err != nil {
		return fmt.Errorf("metrics API: %w", err)
	}
	return nil
}

// keepRegistered applies the registration until it succeeds, then every
// minute, so that deleted or overwritten objects come back.
func keepRegistered(ctx context.Context, c client.Client, reg registration, m *Metrics, log *slog.Logger, ready chan<- struct{}) {
	wait := 500 * time.Millisecond
	registered := false
	for {
		err := reg.apply(ctx, c)
		m.registration(err == nil)
		switch {
		case err == nil && !registered:
			registered = true
			log.Info("metrics API registered", "apiservices", APIServiceNames())
			if ready != nil {
				close(ready)
			}
			wait = time.Minute
		case err == nil:
			wait = time.Minute
		case ctx.Err() == nil:
			log.Warn("metrics API: registering", "err", err)
			wait = min(2*wait, 30*time.Second)
		}
		select {
		case <-ctx.Done():
			return
		case <-time.After(wait):
		}
	}
}

// advertiseIP picks the IP the API server dials: advertise if set, else
// the listener's own IP if it is one the API server accepts, else this
// host's first global-unicast IPv4 address.
func advertiseIP(advertise string, listen net.IP) (net.IP, error) {
	if advertise != "" {
		ip := net.ParseIP(advertise)
		if ip == nil {
			return nil, fmt.Errorf("metrics API: advertise address %q is not an IP", advertise)
		}
		if !ip.IsGlobalUnicast() {
			return nil, fmt.Errorf("metrics API: advertise address %s is loopback, link-local or unspecified; the API server rejects such endpoints", ip)
		}
		if !listen.IsUnspecified() && !listen.Equal(ip) && listen.IsLoopback() {
			return nil, fmt.Errorf("metrics API: listening on %s, which %s does not reach; listen on %s or on all interfaces", listen, ip, ip)
		}
		return ip, nil
	}
	if listen.IsGlobalUnicast() {
		return listen, nil
	}
	if listen.IsLoopback() {
		return nil, fmt.Errorf("metrics API: listening on loopback %s; the API server cannot dial a loopback endpoint: listen on all interfaces or a host IP", listen)
	}
	ip, err := hostip.IPv4()
	if err != nil {
		return nil, fmt.Errorf("metrics API: %w; set the advertise address", err)
	}
	return ip, nil
}
