package glb

import (
	"context"
	"hash/fnv"
	"log/slog"
	"meridian.dev/meridian/internal/tlsx"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"sync"
	"time"

	v1 "meridian.dev/meridian/crds/v1alpha1"
	"meridian.dev/meridian/glb/front"
	"meridian.dev/meridian/glb/geo"
	"meridian.dev/meridian/glb/steer"
)

// Balancer turns the fleet's snapshot, the balancer's own health probes,
// what the agents gossip and the client's location into a ranked list of
// clusters for a model. The DNS server and the HTTP front both ask it.
type Balancer struct {
	src    *Source
	geo    *geo.DB // nil: clients have no location
	health *steer.Health
	// gossip is the agents' verdict (gossip.go); nil when the balancer is
	// not in their pool. Set before serving, never changed after.
	gossip *gossipHealth
	site   string
	log    *slog.Logger
	demand *Demand // nil: not counted
	// dial opens the probes' connections; nil: a net.Dialer.
	dial func(ctx context.Context, network, addr string) (net.Conn, error)
	// upstreamTLS is the probes' client for https:// endpoints (mutual
	// TLS); nil: the system's roots.
	upstreamTLS *tlsx.Client
	// rtts are the probes' round-trip times by probeKey (*rttStat), for
	// latency steering.
	rtts sync.Map
}

// rttStat is a moving average of one endpoint's probe round trips.
type rttStat struct {
	mu  sync.Mutex
	avg time.Duration
}

// rttWeight is the weight of the newest probe in the moving average: a
// few probes move it, one slow probe does not.
const rttWeight = 0.3

func (b *Balancer) observeRTT(key string, d time.Duration) {
	v, _ := b.rtts.LoadOrStore(key, &rttStat{})
	s := v.(*rttStat)
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.avg == 0 {
		s.avg = d
		return
	}
	s.avg = time.Duration(rttWeight*float64(d) + (1-rttWeight)*float64(s.avg))
}

func (b *Balancer) rtt(key string) (time.Duration, bool) {
	v, ok := b.rtts.Load(key)
	if !ok {
		return 0, false
	}
	s := v.(*rttStat)
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.avg, s.avg > 0
}

// NewBalancer returns a balancer for one site (the balancer's own name,
// for latency steering). db may be nil.
func NewBalancer(src *Source, db *geo.DB, health *steer.Health, site string, log *slog.Logger) *Balancer {
	if health == nil {
		health = steer.NewHealth(steer.DefaultHealthConfig())
	}
	if log == nil {
		log = slog.Default()
	}
	return &Balancer{src: src, geo: db, health: health, site: site, log: log}
}

// CountDemand makes the balancer count every DNS query and HTTP request
// it ranks in d. Call it before serving.
func (b *Balancer) CountDemand(d *Demand) { b.demand = d }

// Choice is a ranked answer for one request or query.
type Choice struct {
	// Endpoint is the GlobalEndpoint that matched.
	Endpoint Endpoint
	// Targets are the usable clusters, best first.
	Targets []steer.Target
	// Scope is the client prefix the ranking depended on (for the ECS
	// scope): the geo record's network, or 0 when location played no part.
	Scope int
	// ClientRegion is the fleet region nearest to the client, "" when the
	// client could not be located: where the demand comes from.
	ClientRegion string
}

// ByHost ranks clusters for a DNS name; false when no GlobalEndpoint has
// that hostname.
func (b *Balancer) ByHost(host string, client netip.Addr) (Choice, bool) {
	snap := b.src.Current()
	if snap == nil {
		return Choice{}, false
	}
	for _, e := range snap.Endpoints {
		if e.Hostname == host {
			return b.rank(snap, e, client), true
		}
	}
	return Choice{}, false
}

// ByModel ranks clusters for a model (the HTTP front routes by path); an
// endpoint for the model supplies the policy, else geo.
func (b *Balancer) ByModel(model string, client netip.Addr) Choice {
	snap := b.src.Current()
	if snap == nil {
		return Choice{}
	}
	e := Endpoint{Model: model, Steering: v1.SteerGeo}
	for _, x := range snap.Endpoints {
		if x.Model == model {
			e = x
			break
		}
	}
	return b.rank(snap, e, client)
}

func (b *Balancer) rank(snap *Snapshot, e Endpoint, client netip.Addr) Choice {
	c := steer.Client{Key: clientKey(client)}
	scope := 0
	if b.geo != nil && client.IsValid() {
		if loc, prefix, ok := b.geo.Locate(client); ok {
			c.Lat, c.Lon, c.HasLocation = loc.Lat, loc.Lon, true
			scope = prefix
		}
	}
	p := steer.Policy{Kind: steer.Kind(e.Steering), FailoverOrder: e.FailoverOrder}
	ch := Choice{Endpoint: e, Targets: steer.Rank(p, b.targets(snap, e.Model, p.Kind == steer.Latency), c, b.site), Scope: scope}
	if c.HasLocation {
		ch.ClientRegion = nearestRegion(snap, c.Lat, c.Lon)
	}
	return ch
}

// targets are the clusters that serve the model, with what the hub, the
// balancer's own probes and gossip say of them: healthy only while all of
// them agree, so any one can take a target out and none can vouch alone.
// A cluster whose model is scaled to zero is a cold target: its activator
// answers the probes, and steer ranks it after every warm one.
func (b *Balancer) targets(snap *Snapshot, model string, withRTT bool) []steer.Target {
	now := time.Now()
	var out []steer.Target
	for _, cl := range snap.Clusters {
		m, ok := cl.Models[model]
		if !ok || m.Endpoint == "" {
			continue
		}
		headroom := cl.Headroom
		if headroom == 0 && cl.Health == v1.HealthReady {
			headroom = 1 // capacity unknown: not full
		}
		t := steer.Target{
			Cluster: cl.Name, Region: cl.Region, Lat: cl.Lat, Lon: cl.Lon,
			Healthy: (cl.Health == v1.HealthReady || cl.Health == v1.HealthDegraded) &&
				b.health.Healthy(m.probe, now) && b.gossip.healthy(cl.Name, model, now),
			ReadyReplicas: m.Ready, Cold: m.Cold, Headroom: headroom, Weight: 1,
			Addrs: m.addrs,
		}
		if withRTT {
			if rtt, ok := b.rtt(m.probe); ok {
				t.RTT = map[string]time.Duration{b.site: rtt}
			}
		}
		out = append(out, t)
	}
	return out
}

// URL returns the base URL of a model in a cluster of the snapshot.
func (b *Balancer) URL(cluster, model string) (*url.URL, bool) {
	snap := b.src.Current()
	if snap == nil {
		return nil, false
	}
	for _, cl := range snap.Clusters {
		if cl.Name == cluster {
			if m, ok := cl.Models[model]; ok && m.url != nil {
				return m.url, true
			}
		}
	}
	return nil, false
}

// probeKey names what a probe judges: a model's endpoint in a cluster. The
// endpoint is part of it, so a cluster that moves a model to a new address
// (or a stale last-known-good copy read at start) never passes the old
// address's failures or hold-down on to the new one.
func probeKey(cluster, model, endpoint string) string { return cluster + "/" + model + "@" + endpoint }

// modelKey names a model in a cluster, for gossip's verdicts.
func modelKey(cluster, model string) string { return cluster + "/" + model }

// clientKey hashes the client's /24 (IPv4) or /56 (IPv6) network, so
// weighted and spill decisions are stable per network.
func clientKey(a netip.Addr) uint64 {
	if !a.IsValid() {
		return 0
	}
	bits := 56
	if a.Unmap().Is4() {
		a, bits = a.Unmap(), 24
	}
	p, _ := a.Prefix(bits)
	h := fnv.New64a()
	b := p.Addr().AsSlice()
	_, _ = h.Write(b)
	return h.Sum64()
}

// hostAddrs are the IP addresses of an endpoint URL's host: a literal IP,
// or for a name the addresses the source resolved it to.
func hostAddrs(u *url.URL, resolved []netip.Addr) []netip.Addr {
	if a, err := netip.ParseAddr(u.Hostname()); err == nil {
		return []netip.Addr{a.Unmap()}
	}
	return resolved
}

// Probe turns every interval until ctx ends, probing each model endpoint
// of every cluster as often as its GlobalEndpoint's healthCheck.interval
// asks (every turn where none is set), with its path, timeout (timeout
// where it sets none; default 1s) and failure threshold; the results feed
// the health tracker (threshold, hold-down) and the round-trip averages.
func (b *Balancer) Probe(ctx context.Context, interval, timeout time.Duration) {
	if timeout <= 0 {
		timeout = time.Second
	}
	dial := b.dial
	if dial == nil {
		dial = (&net.Dialer{Timeout: timeout}).DialContext
	}
	client := &http.Client{Transport: upstreamTransport(dial, b.upstreamTLS)}
	t := time.NewTicker(interval)
	defer t.Stop()
	last := map[string]time.Time{}
	for {
		if snap := b.src.Current(); snap != nil {
			b.probeOnce(ctx, client, snap, interval, timeout, last)
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// probeOnce probes every model endpoint that is due: each as often as its
// GlobalEndpoint's healthCheck.interval asks (never more often than the
// Probe loop turns, every turn), with its path, timeout and failure
// threshold. last holds when each was last probed; only the Probe loop
// touches it. An endpoint is due half a turn early: the turns start a
// little late or early, and one that missed by microseconds would wait
// a whole turn more, stretching a 500ms interval to 750ms.
func (b *Balancer) probeOnce(ctx context.Context, client *http.Client, snap *Snapshot, turn, defaultTimeout time.Duration, last map[string]time.Time) {
	checks := map[string]Endpoint{}
	for _, e := range snap.Endpoints {
		checks[e.Model] = e
	}
	now := time.Now()
	var wg sync.WaitGroup
	for _, cl := range snap.Clusters {
		for model, m := range cl.Models {
			if m.Endpoint == "" {
				continue
			}
			e := checks[model]
			if every := e.HealthEvery; every > 0 && now.Sub(last[m.probe]) < every-turn/2 {
				continue // not due yet
			}
			last[m.probe] = now
			p, to, threshold := e.HealthPath, e.HealthTimeout, int(e.Failures)
			if p == "" {
				p = "/v2/health/ready"
			}
			if to <= 0 {
				to = defaultTimeout
			}
			wg.Add(1)
			go func() {
				defer wg.Done()
				pctx, cancel := context.WithTimeout(ctx, to)
				defer cancel()
				ok, key := false, m.probe
				if req, err := http.NewRequestWithContext(pctx, http.MethodGet, m.Endpoint+p, nil); err == nil {
					start := time.Now()
					if resp, err := client.Do(req); err == nil {
						_ = resp.Body.Close()
						ok = resp.StatusCode == http.StatusOK
						if ok {
							b.observeRTT(key, time.Since(start))
						}
					}
				}
				if ctx.Err() == nil {
					b.health.ObserveWith(key, ok, time.Now(), threshold)
				}
			}()
		}
	}
	wg.Wait()
}

// Route ranks clusters for the HTTP front: every usable cluster serving
// the model, best first, each its own tier so the front follows the
// ranking and falls back down it.
func (b *Balancer) Route(_ *http.Request, model string, client netip.Addr) []front.Candidate {
	choice := b.ByModel(model, client)
	b.demand.add(choice.Endpoint, choice.ClientRegion, demandHTTP)
	out := make([]front.Candidate, 0, len(choice.Targets))
	for i, t := range choice.Targets {
		if u, ok := b.URL(t.Cluster, model); ok {
			out = append(out, front.Candidate{Cluster: t.Cluster, URL: u, Tier: i})
		}
	}
	return out
}
