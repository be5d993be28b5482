package loadbalancer

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"strconv"
	"sync"

	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/rest"
	"k8s.io/utils/ptr"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/controller"
	"sigs.k8s.io/controller-runtime/pkg/handler"
	"sigs.k8s.io/controller-runtime/pkg/manager"
	metricsserver "sigs.k8s.io/controller-runtime/pkg/metrics/server"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"

	"meridian.dev/meridian/internal/scheme"
)

// Options configure a region's load balancer.
type Options struct {
	// Pool is the addresses given to Services, in order; required.
	Pool []netip.Addr
	// Logger receives what the load balancer does; nil discards it.
	Logger *slog.Logger
}

// PoolFor returns n loopback addresses of its own for region number i (0
// to 99): 127.0.<100+i>.1 to 127.0.<100+i>.n.
func PoolFor(i, n int) []netip.Addr {
	out := make([]netip.Addr, 0, n)
	for k := 1; k <= n; k++ {
		out = append(out, netip.AddrFrom4([4]byte{127, 0, byte(100 + i), byte(k)}))
	}
	return out
}

// Run serves Services of type LoadBalancer of the cluster cfg reaches until
// ctx ends.
func Run(ctx context.Context, cfg *rest.Config, opts Options) error {
	if len(opts.Pool) == 0 {
		return errors.New("load balancer: the address pool is empty")
	}
	log := opts.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	mgr, err := ctrl.NewManager(cfg, manager.Options{
		Scheme: scheme.Scheme, Metrics: metricsserver.Options{BindAddress: "0"}, HealthProbeBindAddress: "0",
	})
	if err != nil {
		return fmt.Errorf("load balancer: %w", err)
	}
	lb := &balancer{client: mgr.GetClient(), pool: opts.Pool, log: log, used: map[netip.Addr]types.NamespacedName{}, services: map[types.NamespacedName]*service{}}
	if err := lb.seed(ctx, cfg); err != nil {
		return err
	}
	// One process runs a load balancer per local region.
	err = ctrl.NewControllerManagedBy(mgr).Named("loadbalancer").For(&corev1.Service{}).
		WithOptions(controller.Options{SkipNameValidation: ptr.To(true)}).
		Watches(&discoveryv1.EndpointSlice{}, handler.EnqueueRequestsFromMapFunc(func(_ context.Context, o client.Object) []reconcile.Request {
			if name := o.GetLabels()[discoveryv1.LabelServiceName]; name != "" {
				return []reconcile.Request{{NamespacedName: types.NamespacedName{Namespace: o.GetNamespace(), Name: name}}}
			}
			return nil
		})).Complete(lb)
	if err != nil {
		return fmt.Errorf("load balancer: %w", err)
	}
	defer lb.closeAll()
	return mgr.Start(ctx)
}

// balancer is the controller: the pool, which Service holds which address,
// and the proxies.
type balancer struct {
	client client.Client
	pool   []netip.Addr
	log    *slog.Logger

	mu       sync.Mutex
	used     map[netip.Addr]types.NamespacedName
	services map[types.NamespacedName]*service
}

// service is one LoadBalancer Service's address and a proxy per port.
type service struct {
	addr    netip.Addr
	proxies map[int32]*proxy // by service port
}

// seed takes back the addresses Services already hold.
func (b *balancer) seed(ctx context.Context, cfg *rest.Config) error {
	c, err := client.New(cfg, client.Options{Scheme: scheme.Scheme})
	if err != nil {
		return err
	}
	var list corev1.ServiceList
	if err := c.List(ctx, &list); err != nil {
		return fmt.Errorf("load balancer: listing Services: %w", err)
	}
	for i := range list.Items {
		s := &list.Items[i]
		if a, ok := b.held(s); ok && s.Spec.Type == corev1.ServiceTypeLoadBalancer {
			b.used[a] = client.ObjectKeyFromObject(s)
		}
	}
	return nil
}

// held is the pool address in s's status, if any.
func (b *balancer) held(s *corev1.Service) (netip.Addr, bool) {
	for _, in := range s.Status.LoadBalancer.Ingress {
		if a, err := netip.ParseAddr(in.IP); err == nil {
			for _, p := range b.pool {
				if p == a {
					return a, true
				}
			}
		}
	}
	return netip.Addr{}, false
}

// Reconcile gives a LoadBalancer Service its address and keeps a proxy on
// each of its TCP ports pointed at its ready endpoints.
func (b *balancer) Reconcile(ctx context.Context, req reconcile.Request) (reconcile.Result, error) {
	svc := &corev1.Service{}
	err := b.client.Get(ctx, req.NamespacedName, svc)
	if apierrors.IsNotFound(err) || (err == nil && (svc.Spec.Type != corev1.ServiceTypeLoadBalancer || svc.DeletionTimestamp != nil)) {
		b.release(req.NamespacedName)
		return reconcile.Result{}, nil
	}
	if err != nil {
		return reconcile.Result{}, err
	}
	addr, err := b.assign(svc)
	if err != nil {
		b.log.Warn("no address for Service", "service", req.NamespacedName, "err", err)
		return reconcile.Result{}, err
	}
	targets, err := b.targets(ctx, svc)
	if err != nil {
		return reconcile.Result{}, err
	}
	if err := b.serve(req.NamespacedName, addr, svc.Spec.Ports, targets); err != nil {
		return reconcile.Result{}, err
	}
	want := []corev1.LoadBalancerIngress{{IP: addr.String(), IPMode: ptr.To(corev1.LoadBalancerIPModeProxy)}}
	if cur := svc.Status.LoadBalancer.Ingress; len(cur) == 1 && cur[0].IP == want[0].IP && cur[0].IPMode != nil {
		return reconcile.Result{}, nil
	}
	base := svc.DeepCopy()
	svc.Status.LoadBalancer.Ingress = want
	if err := b.client.Status().Patch(ctx, svc, client.MergeFrom(base)); err != nil {
		return reconcile.Result{}, fmt.Errorf("writing the address of Service %s: %w", req.NamespacedName, err)
	}
	b.log.Info("load balancer address", "service", req.NamespacedName, "address", addr)
	return reconcile.Result{}, nil
}

// assign returns svc's address, taking the first free one of the pool when
// it has none.
func (b *balancer) assign(svc *corev1.Service) (netip.Addr, error) {
	key := client.ObjectKeyFromObject(svc)
	b.mu.Lock()
	defer b.mu.Unlock()
	if s := b.services[key]; s != nil {
		return s.addr, nil
	}
	if a, ok := b.held(svc); ok && (b.used[a] == key || b.used[a] == types.NamespacedName{}) {
		b.used[a] = key
		return a, nil
	}
	for _, a := range b.pool {
		if _, taken := b.used[a]; !taken {
			b.used[a] = key
			return a, nil
		}
	}
	return netip.Addr{}, fmt.Errorf("all %d addresses of the pool are taken", len(b.pool))
}

// targets maps each service port to the ready endpoints' host:port.
func (b *balancer) targets(ctx context.Context, svc *corev1.Service) (map[int32][]string, error) {
	var slices discoveryv1.EndpointSliceList
	if err := b.client.List(ctx, &slices, client.InNamespace(svc.Namespace),
		client.MatchingLabels{discoveryv1.LabelServiceName: svc.Name}); err != nil {
		return nil, fmt.Errorf("listing the EndpointSlices of Service %s/%s: %w", svc.Namespace, svc.Name, err)
	}
	out := map[int32][]string{}
	for _, sp := range svc.Spec.Ports {
		for _, es := range slices.Items {
			for _, p := range es.Ports {
				if p.Port == nil || ptr.Deref(p.Name, "") != sp.Name {
					continue
				}
				for _, ep := range es.Endpoints {
					if !ptr.Deref(ep.Conditions.Ready, false) || ptr.Deref(ep.Conditions.Terminating, false) {
						continue
					}
					for _, a := range ep.Addresses {
						out[sp.Port] = append(out[sp.Port], net.JoinHostPort(a, strconv.Itoa(int(*p.Port))))
					}
				}
			}
		}
	}
	return out, nil
}

// serve makes the proxies of one Service match its ports and targets.
func (b *balancer) serve(key types.NamespacedName, addr netip.Addr, ports []corev1.ServicePort, targets map[int32][]string) error {
	b.mu.Lock()
	defer b.mu.Unlock()
	s := b.services[key]
	if s == nil {
		s = &service{addr: addr, proxies: map[int32]*proxy{}}
		b.services[key] = s
	}
	keep := map[int32]bool{}
	for _, p := range ports {
		if p.Protocol != corev1.ProtocolTCP && p.Protocol != "" {
			continue
		}
		keep[p.Port] = true
		px := s.proxies[p.Port]
		if px == nil {
			var err error
			px, err = listen(netip.AddrPortFrom(addr, uint16(p.Port)), b.log.With("service", key))
			if err != nil {
				return fmt.Errorf("load balancer for Service %s: %w", key, err)
			}
			s.proxies[p.Port] = px
		}
		px.setTargets(targets[p.Port])
	}
	for port, px := range s.proxies {
		if !keep[port] {
			px.close()
			delete(s.proxies, port)
		}
	}
	return nil
}

// release closes a Service's proxies and frees its address.
func (b *balancer) release(key types.NamespacedName) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if s := b.services[key]; s != nil {
		for _, px := range s.proxies {
			px.close()
		}
		delete(b.services, key)
	}
	for a, k := range b.used {
		if k == key {
			delete(b.used, a)
		}
	}
}

func (b *balancer) closeAll() {
	b.mu.Lock()
	keys := make([]types.NamespacedName, 0, len(b.services))
	for k := range b.services {
		keys = append(keys, k)
	}
	b.mu.Unlock()
	for _, k := range keys {
		b.release(k)
	}
}
