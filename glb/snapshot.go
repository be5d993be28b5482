package glb

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"sigs.k8s.io/controller-runtime/pkg/client"

	v1 "meridian.dev/meridian/crds/v1alpha1"
)

// Snapshot is everything a balancer needs from the hub to answer: the
// GlobalEndpoints and the member clusters with their models. It is kept
// on disk as the last-known-good copy, so a balancer keeps answering
// while the hub is down and after its own restart.
type Snapshot struct {
	// Taken is when the hub was read.
	Taken time.Time `json:"taken"`
	// Endpoints are the public names, sorted by hostname.
	Endpoints []Endpoint `json:"endpoints"`
	// Clusters are the members, sorted by name.
	Clusters []Cluster `json:"clusters"`

	// sites are the distinct located places of the clusters with their
	// region (prepare): what nearestRegion searches per query, a few
	// dozen where the clusters may be thousands.
	sites []site
}

type site struct {
	region   string
	lat, lon float64
}

// Endpoint is one GlobalEndpoint.
type Endpoint struct {
	Namespace     string            `json:"namespace"`
	Name          string            `json:"name"`
	Hostname      string            `json:"hostname"`
	Model         string            `json:"model"`
	Steering      v1.SteeringPolicy `json:"steering"`
	FailoverOrder []string          `json:"failoverOrder,omitempty"`
	TTL           int32             `json:"ttl"`
	HealthPath    string            `json:"healthPath"`
	HealthEvery   time.Duration     `json:"healthEvery"`
	HealthTimeout time.Duration     `json:"healthTimeout"`
	Failures      int32             `json:"failures"`
}

// Cluster is one member as the hub last saw it.
type Cluster struct {
	Name        string           `json:"name"`
	Region      string           `json:"region"`
	Lat         float64          `json:"lat"`
	Lon         float64          `json:"lon"`
	HasLocation bool             `json:"hasLocation"`
	Health      v1.ClusterHealth `json:"health"`
	// Headroom is the free fraction of the cluster's CPU, 0 to 1.
	Headroom float64 `json:"headroom"`
	// Models maps a model name to where and how it serves there.
	Models map[string]ModelTarget `json:"models"`
}

// ModelTarget is one model in one cluster.
type ModelTarget struct {
	Endpoint string `json:"endpoint"`
	Ready    int32  `json:"ready"`
	// Cold says the model has no ready replica here but is scaled to zero
	// on purpose: the agent's activator answers at Endpoint and holds each
	// request until a replica is ready. Such a cluster is answered after
	// every cluster with a ready replica (steer.Target.Cold).
	Cold bool `json:"cold,omitempty"`
	// Addrs are the addresses of Endpoint's host when it is a name, as
	// cloud load balancers publish (e.g. an ELB's hostname): the balancer
	// resolves it on each refresh and answers DNS with them.
	Addrs []netip.Addr `json:"addrs,omitempty"`

	// url and addrs are Endpoint parsed once when the snapshot is
	// published (prepare), so no query or request parses it again.
	url   *url.URL
	addrs []netip.Addr
	probe string // probeKey of this target
}

// prepare parses every endpoint once, and gathers the clusters' sites,
// before the snapshot is published.
func (s *Snapshot) prepare() {
	seen := map[site]bool{}
	s.sites = nil
	for _, c := range s.Clusters {
		if st := (site{c.Region, c.Lat, c.Lon}); c.HasLocation && c.Region != "" && !seen[st] {
			seen[st] = true
			s.sites = append(s.sites, st)
		}
		for name, m := range c.Models {
			if u, err := url.Parse(m.Endpoint); err == nil && m.Endpoint != "" {
				m.url, m.addrs = u, hostAddrs(u, m.Addrs)
			}
			m.probe = probeKey(c.Name, name, m.Endpoint)
			c.Models[name] = m
		}
	}
}

// Capture reads a snapshot from the hub.
func Capture(ctx context.Context, hub client.Reader) (*Snapshot, error) {
	var ges v1.GlobalEndpointList
	if err := hub.List(ctx, &ges); err != nil {
		return nil, fmt.Errorf("listing GlobalEndpoints: %w", err)
	}
	var cls v1.ClusterList
	if err := hub.List(ctx, &cls); err != nil {
		return nil, fmt.Errorf("listing Clusters: %w", err)
	}
	s := &Snapshot{Taken: time.Now().UTC()}
	for _, ge := range ges.Items {
		hc := ge.Spec.HealthCheck
		e := Endpoint{
			Namespace: ge.Namespace, Name: ge.Name, Hostname: strings.ToLower(ge.Spec.Hostname), Model: ge.Spec.Model,
			Steering: ge.Spec.Steering, TTL: ge.Spec.TTL,
			HealthPath: hc.Path, HealthEvery: hc.Interval.Duration, HealthTimeout: hc.Timeout.Duration, Failures: hc.FailureThreshold,
		}
		for _, r := range ge.Spec.FailoverOrder {
			e.FailoverOrder = append(e.FailoverOrder, string(r))
		}
		s.Endpoints = append(s.Endpoints, e)
	}
	for _, c := range cls.Items {
		sc := Cluster{Name: c.Name, Region: string(c.Spec.Region), Health: c.Status.Health}
		if loc := c.Spec.Location; loc != nil {
			lat, err1 := strconv.ParseFloat(loc.Latitude, 64)
			lon, err2 := strconv.ParseFloat(loc.Longitude, 64)
			sc.Lat, sc.Lon, sc.HasLocation = lat, lon, err1 == nil && err2 == nil
		}
		if total := c.Status.Capacity.CPU.AsApproximateFloat64(); total > 0 {
			sc.Headroom = min(max(c.Status.Capacity.FreeCPU.AsApproximateFloat64()/total, 0), 1)
		}
		sc.Models = modelTargets(c.Status.Models)
		s.Clusters = append(s.Clusters, sc)
	}
	slices.SortFunc(s.Endpoints, func(a, b Endpoint) int { return strings.Compare(a.Hostname, b.Hostname) })
	slices.SortFunc(s.Clusters, func(a, b Cluster) int { return strings.Compare(a.Name, b.Name) })
	return s, nil
}

// modelTargets gathers a cluster's ModelLoads by model: the ready replicas
// of every deployment of it, the first endpoint, and cold when none is
// ready and at least one is scaled to zero (its activator answers).
func modelTargets(loads []v1.ModelLoad) map[string]ModelTarget {
	out := map[string]ModelTarget{}
	for _, m := range loads {
		t := out[m.Model]
		t.Ready += m.ReadyReplicas
		t.Cold = t.Cold || m.ScaledToZero
		if t.Endpoint == "" {
			t.Endpoint = m.Endpoint
		}
		out[m.Model] = t
	}
	for name, t := range out {
		if t.Ready > 0 && t.Cold {
			t.Cold = false // a ready replica serves: warm
			out[name] = t
		}
	}
	return out
}

// Save writes the snapshot atomically (a reader never sees half a file).
func (s *Snapshot) Save(path string) error {
	b, err := json.MarshalIndent(s, "", "  ")
	if err != nil {
		return err
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return err
	}
	tmp, err := os.CreateTemp(filepath.Dir(path), ".snapshot-*")
	if err != nil {
		return err
	}
	defer func() { _ = os.Remove(tmp.Name()) }()
	if _, err := tmp.Write(b); err != nil {
		_ = tmp.Close()
		return err
	}
	if err := tmp.Sync(); err != nil {
		_ = tmp.Close()
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	return os.Rename(tmp.Name(), path)
}

// Load reads a saved snapshot.
func Load(path string) (*Snapshot, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	s := &Snapshot{}
	if err := json.Unmarshal(b, s); err != nil {
		return nil, fmt.Errorf("last-known-good config %s is corrupt (%w); delete it to start from the hub alone", path, err)
	}
	return s, nil
}

// Source keeps the current snapshot: read from the hub every period,
// saved to disk after each good read, and, while the hub cannot be read,
// the last good one — from memory or, after a restart, from disk.
type Source struct {
	hub    client.Reader
	path   string
	period time.Duration
	log    *slog.Logger

	// lookup resolves endpoint host names; net.DefaultResolver's.
	lookup func(ctx context.Context, network, host string) ([]netip.Addr, error)

	mu      sync.RWMutex
	current *Snapshot
	hubDown bool
}

// NewSource returns a source; Run starts it. period defaults to 2s.
func NewSource(hub client.Reader, path string, period time.Duration, log *slog.Logger) *Source {
	if period <= 0 {
		period = 2 * time.Second
	}
	if log == nil {
		log = slog.Default()
	}
	return &Source{hub: hub, path: path, period: period, log: log, lookup: net.DefaultResolver.LookupNetIP}
}

// Current is the snapshot to answer from; nil before the first one.
func (s *Source) Current() *Snapshot {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return s.current
}

// Run loads the last-known-good snapshot, then refreshes from the hub
// until ctx ends.
func (s *Source) Run(ctx context.Context) error {
	if snap, err := Load(s.path); err == nil {
		s.set(snap)
		s.log.Info("serving the last-known-good config until the hub answers", "path", s.path, "taken", snap.Taken)
	} else if !os.IsNotExist(err) {
		s.log.Warn("ignoring the last-known-good config", "err", err)
	}
	t := time.NewTicker(s.period)
	defer t.Stop()
	for {
		s.refresh(ctx)
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
	}
}

func (s *Source) refresh(ctx context.Context) {
	rctx, cancel := context.WithTimeout(ctx, s.period)
	defer cancel()
	snap, err := Capture(rctx, s.hub)
	if err != nil {
		if ctx.Err() != nil {
			return
		}
		s.mu.Lock()
		first := !s.hubDown
		s.hubDown = true
		s.mu.Unlock()
		if first {
			s.log.Warn("the hub cannot be read; answering from the last-known-good config", "err", err)
		}
		return
	}
	s.mu.Lock()
	if s.hubDown {
		s.log.Info("the hub answers again")
	}
	s.hubDown = false
	s.mu.Unlock()
	s.resolveNames(rctx, snap)
	s.set(snap)
	if err := snap.Save(s.path); err != nil {
		s.log.Warn("saving the last-known-good config", "path", s.path, "err", err)
	}
}

// resolveNames fills the addresses of endpoints whose host is a name. A
// name that does not resolve now keeps the addresses it had in the
// current snapshot (a resolver's hiccup must not empty the answers); with
// none, the target has no address to answer with, and DNS skips it.
func (s *Source) resolveNames(ctx context.Context, snap *Snapshot) {
	prev := s.Current()
	for ci := range snap.Clusters {
		c := &snap.Clusters[ci]
		for name, m := range c.Models {
			u, err := url.Parse(m.Endpoint)
			if err != nil || m.Endpoint == "" {
				continue
			}
			host := u.Hostname()
			if _, err := netip.ParseAddr(host); err == nil || host == "" {
				continue
			}
			addrs, err := s.lookup(ctx, "ip", host)
			if err != nil || len(addrs) == 0 {
				old := prev.target(c.Name, name)
				s.log.Warn("cannot resolve a model endpoint's host; answering with its last addresses", "cluster", c.Name, "model", name,
					"host", host, "last", old.Addrs, "err", err)
				if old.Endpoint == m.Endpoint {
					addrs = old.Addrs
				}
			}
			m.Addrs = make([]netip.Addr, len(addrs))
			for i, a := range addrs {
				m.Addrs[i] = a.Unmap()
			}
			c.Models[name] = m
		}
	}
}

// target is model's target in cluster; zero when there is none.
func (s *Snapshot) target(cluster, model string) ModelTarget {
	if s == nil {
		return ModelTarget{}
	}
	for _, c := range s.Clusters {
		if c.Name == cluster {
			return c.Models[model]
		}
	}
	return ModelTarget{}
}

func (s *Source) set(snap *Snapshot) {
	snap.prepare()
	s.mu.Lock()
	s.current = snap
	s.mu.Unlock()
}
