package activator

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/http/httputil"
	"net/netip"
	"net/url"
	"strconv"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"meridian.dev/meridian/internal/hostip"
	"meridian.dev/meridian/internal/httpserve"
)

// Defaults of Options.
const (
	// DefaultQueueLimit is how many requests one model may hold at once.
	DefaultQueueLimit = 100
	// DefaultHoldTimeout is how long a request waits for a ready replica.
	// A cold start on a warm node takes seconds; one that pulls the image
	// or waits for a new node takes longer.
	DefaultHoldTimeout = 2 * time.Minute
	// DefaultProbeInterval is how often, while requests are held, the
	// activator lists the model's pods and probes those not yet ready.
	DefaultProbeInterval = 100 * time.Millisecond
	// DefaultRetryAfter is the Retry-After of a refused request.
	DefaultRetryAfter = 5 * time.Second
	// DefaultReadyPath is `meridian serve`'s readiness endpoint.
	DefaultReadyPath = "/v2/health/ready"
	// LivePath is `meridian serve`'s liveness endpoint.
	LivePath = "/v2/health/live"
)

// ScaledToZeroHeader marks the activator's own answer to a health probe of
// a model with no ready replica: "true".
const ScaledToZeroHeader = "X-Meridian-Scaled-To-Zero"

// Options configure an Activator.
type Options struct {
	// Host is the IP address the per-model listeners bind to, and the one
	// written into the models' EndpointSlices: it must be reachable from
	// whatever implements the cluster's Services (kube-proxy on every
	// node, a cloud load balancer, the local fleet's balancer), so not
	// loopback. Default: this host's first global-unicast IPv4 address.
	Host netip.Addr
	// QueueLimit bounds the requests held per model; one more is answered
	// 503 with Retry-After at once. Default DefaultQueueLimit (100).
	QueueLimit int
	// HoldTimeout bounds how long a request is held waiting for a ready
	// replica; then it is answered 503 with Retry-After. Default
	// DefaultHoldTimeout (2 minutes).
	HoldTimeout time.Duration
	// ProbeInterval is how often held requests look for a ready replica.
	// Default DefaultProbeInterval (100ms).
	ProbeInterval time.Duration
	// RetryAfter is the Retry-After a refused request is given. Default
	// DefaultRetryAfter (5s).
	RetryAfter time.Duration
	// ReadyPath is probed on pods Kubernetes does not yet count as ready:
	// a 200 there makes the pod a target before the kubelet's next
	// readiness probe says so. Default DefaultReadyPath. Like LivePath,
	// it is also a health path: see Activator.
	ReadyPath string
	// Registry receives the meridian_agent_activator_* series; nil
	// records none.
	Registry prometheus.Registerer
	// Logger; default slog.Default().
	Logger *slog.Logger
}

// Backend is one replica of a model: a pod with an address.
type Backend struct {
	// Addr is host:port of its server.
	Addr string
	// Ready says Kubernetes counts it ready (its readiness probe passed).
	Ready bool
}

// Target is what the activator needs to know of one model.
type Target struct {
	// Activate asks for a replica; it is called when a request is held
	// and no replica is ready (again every second while it fails and
	// requests wait). It must be quick and idempotent.
	Activate func(ctx context.Context) error
	// Backends lists the model's replicas that have an address, ready or
	// not; it is called for every request and, while requests are held,
	// every ProbeInterval, so it should read a cache.
	Backends func(ctx context.Context) ([]Backend, error)
}

// Activator holds requests for models that have no ready replica, asks for
// one and proxies the held requests to it once it answers. Each model gets
// a listener of its own, so that it needs nothing but the connection to
// know which model a request is for: L4 Service implementations (kube-proxy,
// cloud and local TCP load balancers) pass no Host header that names it.
//
// A GET or HEAD of a health path (DefaultReadyPath, LivePath,
// Options.ReadyPath) is a probe, not traffic: with a ready replica it is
// proxied to it, and without one the activator answers it itself, 200 with
// ScaledToZeroHeader, so that a global balancer's health probe keeps the
// model's address in its answers. A probe never starts a cold start and
// never counts as the model's last request.
type Activator struct {
	opts      Options
	log       *slog.Logger
	metrics   *metrics
	transport *http.Transport

	mu     sync.Mutex
	models map[string]*model
	closed bool
}

// New returns an Activator; Register starts serving a model.
func New(opts Options) (*Activator, error) {
	if !opts.Host.IsValid() {
		ip, err := hostip.IPv4()
		if err != nil {
			return nil, fmt.Errorf("activator: %w; set its host address", err)
		}
		opts.Host, _ = netip.AddrFromSlice(ip.To4())
	}
	opts.QueueLimit = cmp.Or(opts.QueueLimit, DefaultQueueLimit)
	opts.HoldTimeout = cmp.Or(opts.HoldTimeout, DefaultHoldTimeout)
	opts.ProbeInterval = cmp.Or(opts.ProbeInterval, DefaultProbeInterval)
	opts.RetryAfter = cmp.Or(opts.RetryAfter, DefaultRetryAfter)
	opts.ReadyPath = cmp.Or(opts.ReadyPath, DefaultReadyPath)
	log := cmp.Or(opts.Logger, slog.Default())
	m, err := newMetrics(opts.Registry)
	if err != nil {
		return nil, err
	}
	return &Activator{
		opts:    opts,
		log:     log,
		metrics: m,
		transport: &http.Transport{
			DialContext:         (&net.Dialer{Timeout: 2 * time.Second}).DialContext,
			MaxIdleConnsPerHost: 64,
			IdleConnTimeout:     30 * time.Second,
		},
		models: map[string]*model{},
	}, nil
}

// Host is the address the listeners bind to.
func (a *Activator) Host() netip.Addr { return a.opts.Host }

// Register serves the model namespace/name on a listener of its own, unless
// it is served already, and returns the listener's address. t replaces
// the model's previous Target.
func (a *Activator) Register(namespace, name string, t Target) (netip.AddrPort, error) {
	key := namespace + "/" + name
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.closed {
		return netip.AddrPort{}, errors.New("activator: closed")
	}
	if m := a.models[key]; m != nil {
		m.mu.Lock()
		m.target = t
		m.mu.Unlock()
		return m.addr, nil
	}
	ln, err := net.Listen("tcp", netip.AddrPortFrom(a.opts.Host, 0).String())
	if err != nil {
		return netip.AddrPort{}, fmt.Errorf("activator for %s: %w", key, err)
	}
	m := &model{a: a, namespace: namespace, name: name, target: t, ln: ln,
		addr: ln.Addr().(*net.TCPAddr).AddrPort(), probed: map[string]bool{}}
	// A held request's body is read only once a replica is ready, and its
	// answer written after that: both deadlines run from the headers, so
	// both cover the longest hold.
	m.srv, err = httpserve.New(m, httpserve.Options{
		Name:         "agent-activator",
		BodyTimeout:  a.opts.HoldTimeout + httpserve.DefaultBodyTimeout,
		WriteTimeout: a.opts.HoldTimeout + time.Minute,
		IdleTimeout:  30 * time.Second,
		Registerer:   a.opts.Registry,
		Logger:       a.log,
	})
	if err != nil {
		_ = ln.Close()
		return netip.AddrPort{}, fmt.Errorf("activator for %s: %w", key, err)
	}
	m.proxy = &httputil.ReverseProxy{
		Transport: a.transport,
		Rewrite: func(r *httputil.ProxyRequest) {
			r.SetURL(r.In.Context().Value(backendKey{}).(*url.URL))
			r.Out.Host = r.In.Host
			r.SetXForwarded()
		},
		ErrorHandler: func(w http.ResponseWriter, r *http.Request, err error) {
			m.refuse(w, http.StatusBadGateway, fmt.Sprintf("model %s: the replica the activator sent this request to failed: %v", key, err))
		},
	}
	a.models[key] = m
	go func() {
		if err := m.srv.Serve(httpserve.Listener(ln)); err != nil && !errors.Is(err, http.ErrServerClosed) {
			a.log.Warn("activator listener", "model", key, "err", err)
		}
	}()
	a.log.Info("activator serving", "model", key, "address", m.addr.String())
	return m.addr, nil
}

// Unregister stops serving a model; requests it holds are answered 503.
func (a *Activator) Unregister(namespace, name string) {
	key := namespace + "/" + name
	a.mu.Lock()
	m := a.models[key]
	delete(a.models, key)
	a.mu.Unlock()
	if m != nil {
		m.close()
		a.metrics.forget(namespace, name)
	}
}

// Held is how many requests the model holds now.
func (a *Activator) Held(namespace, name string) int {
	if m := a.model(namespace, name); m != nil {
		m.mu.Lock()
		defer m.mu.Unlock()
		return m.held
	}
	return 0
}

// LastRequest is when the model's listener last received a request (zero
// if never).
func (a *Activator) LastRequest(namespace, name string) time.Time {
	if m := a.model(namespace, name); m != nil {
		m.mu.Lock()
		defer m.mu.Unlock()
		return m.last
	}
	return time.Time{}
}

// Close stops every listener.
func (a *Activator) Close() {
	a.mu.Lock()
	a.closed = true
	ms := a.models
	a.models = map[string]*model{}
	a.mu.Unlock()
	for _, m := range ms {
		m.close()
	}
	a.transport.CloseIdleConnections()
}

func (a *Activator) model(namespace, name string) *model {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.models[namespace+"/"+name]
}

type backendKey struct{}

// wakeup is one cold start: done is closed when it ends, with addr the
// replica found ("" when none: the model was unregistered, or every held
// request gave up).
type wakeup struct {
	done  chan struct{}
	addr  string
	start time.Time
}

// model is one model's listener and held requests.
type model struct {
	a               *Activator
	namespace, name string
	ln              net.Listener
	addr            netip.AddrPort
	srv             *http.Server
	proxy           *httputil.ReverseProxy

	mu     sync.Mutex
	target Target
	last   time.Time
	held   int
	// wake is the cold start under way, if any.
	wake *wakeup
	// probed are addresses that answered ReadyPath before Kubernetes
	// counted them ready.
	probed map[string]bool
	next   int
	closed bool
}

func (m *model) key() string { return m.namespace + "/" + m.name }

func (m *model) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	start := time.Now()
	probe := m.a.isHealthProbe(r)
	m.mu.Lock()
	if !probe {
		m.last = start
	}
	t := m.target
	m.mu.Unlock()
	if addr := m.pick(r.Context(), t); addr != "" {
		m.forward(w, r, addr, 0)
		return
	}

	// Hold the request until a replica answers; a probe is answered here.
	m.mu.Lock()
	if m.closed {
		m.mu.Unlock()
		m.refuse(w, http.StatusServiceUnavailable, fmt.Sprintf("model %s is no longer served here", m.key()))
		return
	}
	if probe {
		m.mu.Unlock()
		m.answerProbe(w)
		return
	}
	if m.held >= m.a.opts.QueueLimit {
		m.mu.Unlock()
		m.a.metrics.rejected(m.namespace, m.name, "queue_full")
		m.refuse(w, http.StatusServiceUnavailable, fmt.Sprintf("model %s is starting from zero replicas and already holds %d requests (the activator's limit); retry after %s",
			m.key(), m.a.opts.QueueLimit, m.a.opts.RetryAfter))
		return
	}
	m.held++
	m.a.metrics.held(m.namespace, m.name, m.held)
	if m.wake == nil {
		m.wake = &wakeup{done: make(chan struct{}), start: start}
		go m.coldStart(m.wake)
	}
	wake := m.wake
	m.mu.Unlock()
	release := func() {
		m.mu.Lock()
		m.held--
		m.a.metrics.held(m.namespace, m.name, m.held)
		m.mu.Unlock()
	}

	timer := time.NewTimer(m.a.opts.HoldTimeout)
	defer timer.Stop()
	select {
	case <-wake.done:
		release()
		addr := wake.addr // written before done was closed
		if addr == "" {
			m.refuse(w, http.StatusServiceUnavailable, fmt.Sprintf("model %s is no longer served here", m.key()))
			return
		}
		m.forward(w, r, addr, time.Since(start))
	case <-timer.C:
		release()
		m.a.metrics.rejected(m.namespace, m.name, "timeout")
		m.refuse(w, http.StatusServiceUnavailable, fmt.Sprintf("model %s is starting from zero replicas and none became ready within %s (the activator's hold timeout); retry after %s",
			m.key(), m.a.opts.HoldTimeout, m.a.opts.RetryAfter))
	case <-r.Context().Done():
		release()
	}
}

// isHealthProbe says whether r is a health probe (GET or HEAD of a health
// path) rather than traffic for the model.
func (a *Activator) isHealthProbe(r *http.Request) bool {
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		return false
	}
	switch r.URL.Path {
	case DefaultReadyPath, LivePath, a.opts.ReadyPath:
		return true
	}
	return false
}

// answerProbe answers a health probe of a model with no ready replica:
// reachable, because the activator holds its requests until a replica is
// ready. It asks for no replica.
func (m *model) answerProbe(w http.ResponseWriter) {
	w.Header().Set(ScaledToZeroHeader, "true")
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(http.StatusOK)
	_, _ = fmt.Fprintf(w, "{\"scaledToZero\":true,\"message\":%q}\n",
		fmt.Sprintf("model %s has no ready replica (scaled to zero); the activator holds each request until a replica is ready", m.key()))
}

// pick returns a replica to send a request to now, or "".
func (m *model) pick(ctx context.Context, t Target) string {
	if t.Backends == nil {
		return ""
	}
	bs, err := t.Backends(ctx)
	if err != nil {
		return ""
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	var ok []string
	live := map[string]bool{}
	for _, b := range bs {
		live[b.Addr] = true
		if b.Ready || m.probed[b.Addr] {
			ok = append(ok, b.Addr)
		}
	}
	for a := range m.probed {
		if !live[a] {
			delete(m.probed, a)
		}
	}
	if len(ok) == 0 {
		return ""
	}
	m.next++
	return ok[m.next%len(ok)]
}

// coldStart asks for a replica and waits until one answers, then hands its
// address to every request held on wake.
func (m *model) coldStart(wake *wakeup) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	log := m.a.log.With("model", m.key())
	log.Info("activator: request held, asking for a replica")
	activated := false
	var lastActivate time.Time
	probe := &http.Client{Transport: m.a.transport, Timeout: time.Second}
	tick := time.NewTicker(m.a.opts.ProbeInterval)
	defer tick.Stop()
	for {
		m.mu.Lock()
		t, held, closed := m.target, m.held, m.closed
		m.mu.Unlock()
		if closed {
			m.finish(wake, "")
			return
		}
		if held == 0 {
			// Every held request gave up (timeout or client gone); a
			// replica asked for comes anyway. The next request starts over.
			m.finish(wake, "")
			return
		}
		if !activated && time.Since(lastActivate) >= time.Second && t.Activate != nil {
			lastActivate = time.Now()
			if err := t.Activate(ctx); err != nil {
				log.Warn("activator: asking for a replica", "err", err)
			} else {
				activated = true
			}
		}
		if addr := m.findReady(ctx, t, probe); addr != "" {
			d := time.Since(wake.start)
			m.a.metrics.coldStart(m.namespace, m.name, d)
			log.Info("activator: replica ready; releasing held requests", "replica", addr, "cold_start", d.Round(time.Millisecond).String(), "held", held)
			m.finish(wake, addr)
			return
		}
		<-tick.C
	}
}

// findReady returns a replica that is ready, probing those Kubernetes does
// not count ready yet.
func (m *model) findReady(ctx context.Context, t Target, probe *http.Client) string {
	if t.Backends == nil {
		return ""
	}
	bs, err := t.Backends(ctx)
	if err != nil {
		return ""
	}
	for _, b := range bs {
		if b.Ready {
			return b.Addr
		}
	}
	for _, b := range bs {
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+b.Addr+m.a.opts.ReadyPath, nil)
		if err != nil {
			continue
		}
		resp, err := probe.Do(req)
		if err != nil {
			continue
		}
		_ = resp.Body.Close()
		if resp.StatusCode == http.StatusOK {
			m.mu.Lock()
			m.probed[b.Addr] = true
			m.mu.Unlock()
			return b.Addr
		}
	}
	return ""
}

// finish ends the cold start on wake with addr ("" when none).
func (m *model) finish(wake *wakeup, addr string) {
	m.mu.Lock()
	defer m.mu.Unlock()
	wake.addr = addr
	if m.wake == wake {
		m.wake = nil
	}
	close(wake.done)
}

func (m *model) forward(w http.ResponseWriter, r *http.Request, addr string, held time.Duration) {
	if held > 0 {
		w.Header().Set("X-Meridian-Activator-Held", strconv.FormatFloat(held.Seconds(), 'f', 3, 64))
	}
	u := &url.URL{Scheme: "http", Host: addr}
	m.proxy.ServeHTTP(w, r.WithContext(context.WithValue(r.Context(), backendKey{}, u)))
}

func (m *model) refuse(w http.ResponseWriter, code int, msg string) {
	w.Header().Set("Retry-After", strconv.Itoa(int((m.a.opts.RetryAfter+time.Second-1)/time.Second)))
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	_, _ = fmt.Fprintf(w, "{\"error\":%q}\n", msg)
}

func (m *model) close() {
	m.mu.Lock()
	m.closed = true
	m.mu.Unlock()
	// Shutdown closes the listener, then waits a moment for the handlers.
	// Held requests see closed at their wake-up (the cold start ends at
	// its next round) or their timeout.
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	_ = m.srv.Shutdown(ctx)
}
