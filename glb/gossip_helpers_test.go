package glb

import (
	"context"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"path/filepath"
	"strconv"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	v1 "meridian.dev/meridian/crds/v1alpha1"
	"meridian.dev/meridian/glb/steer"
	"meridian.dev/meridian/gossip"
	"meridian.dev/meridian/internal/testbin"
)

// gossipTiming is memberlist's Local preset, as the gossip package tests use
// it: LAN's RetransmitMult of 4 instead of 2, so that a dead verdict
// reaches every member of a small pool rather than waiting out a lone
// suspicion timer (see gossip.Timing.DeadWithin), and push/pull every 2s
// instead of 15s, so that a state broadcast lost on a loaded test machine
// is repaired soon. Neither changes DeadWithin.
func gossipTiming() gossip.Timing {
	t := gossip.Local()
	t.RetransmitMult = gossip.LAN().RetransmitMult
	t.PushPullInterval = 2 * time.Second
	return t
}

// testHoldDown is long enough to tell "back after the hold-down" from
// "back at once" on a loaded machine, short enough for a quick test.
const testHoldDown = 2 * time.Second

// fakeEndpoint is a cluster's model endpoint that the balancer probes:
// 200 on the health path until failing is set, then 503.
type fakeEndpoint struct {
	*httptest.Server
	failing atomic.Bool
}

// startEndpoint serves on ip (any loopback address) and an ephemeral port.
func startEndpoint(t *testing.T, ip string) *fakeEndpoint {
	t.Helper()
	e := &fakeEndpoint{}
	ln, err := net.Listen("tcp", net.JoinHostPort(ip, "0"))
	if err != nil {
		t.Fatal(err)
	}
	e.Server = httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		if e.failing.Load() {
			w.WriteHeader(http.StatusServiceUnavailable)
		}
	}))
	e.Listener = ln
	e.Start()
	t.Cleanup(e.Close)
	return e
}

// agentNode is a cluster's agent in the gossip pool, as agent.gossipLoop
// runs it: node name and Meta.Cluster are the cluster's name.
type agentNode struct {
	*gossip.Node
	cluster string
}

// gossipKeyring writes a new keyring file for one test's pool: the agents
// and the balancer gossip encrypted, as in production.
func gossipKeyring(t *testing.T) string {
	t.Helper()
	k, err := gossip.GenerateKey()
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "gossip.keys")
	if err := gossip.WriteKeyring(path, k); err != nil {
		t.Fatal(err)
	}
	return path
}

// startAgent starts cluster's agent node on bind ("127.0.0.1:0" for any
// port) with the keyring file keys, joining join, and publishes models as
// ready and healthy.
func startAgent(t *testing.T, cluster, bind, keys string, join []string, models ...string) *agentNode {
	t.Helper()
	host, port, _ := net.SplitHostPort(bind)
	p, _ := strconv.Atoi(port)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	n, err := gossip.Start(ctx, gossip.Config{
		NodeName: cluster, BindAddr: host, BindPort: p, Join: join, Timing: gossipTiming(), KeyringFile: keys,
		Meta:   gossip.Meta{Cluster: cluster, Region: cluster, Endpoint: "http://" + cluster + ".test"},
		Logger: quiet(),
	})
	if err != nil {
		t.Fatalf("agent %s: %v", cluster, err)
	}
	t.Cleanup(func() { _ = n.Shutdown() })
	a := &agentNode{Node: n, cluster: cluster}
	var ds []gossip.ModelDigest
	for _, m := range models {
		ds = append(ds, gossip.ModelDigest{Namespace: "default", Name: m, Model: m, ReadyReplicas: 1, DesiredReplicas: 1, Healthy: true})
	}
	a.publish(t, ds...)
	return a
}

func (a *agentNode) publish(t *testing.T, ds ...gossip.ModelDigest) {
	t.Helper()
	if err := a.SetLocalState(gossip.NodeState{Models: ds}); err != nil {
		t.Fatal(err)
	}
}

// gossipRig is a real Balancer in a real gossip pool with one agent and
// one probed HTTP endpoint per cluster. Every model steers by failover
// order, eu-west first, so the answer says which clusters are usable.
type gossipRig struct {
	b         *Balancer
	node      *gossip.Node // the balancer's
	reg       *prometheus.Registry
	agents    map[string]*agentNode
	endpoints map[string]*fakeEndpoint
	keys      string // the pool's keyring file
}

var (
	rigClusters = []string{"eu-west", "us-east", "ap-south"}
	rigModels   = []string{"sentiment", "textdir"}
)

func newGossipRig(t *testing.T) *gossipRig {
	t.Helper()
	r := &gossipRig{reg: prometheus.NewRegistry(), agents: map[string]*agentNode{}, endpoints: map[string]*fakeEndpoint{}, keys: gossipKeyring(t)}
	snap := &Snapshot{}
	for _, m := range rigModels {
		snap.Endpoints = append(snap.Endpoints, Endpoint{Name: m, Hostname: m + ".infer.test", Model: m,
			Steering: v1.SteerFailover, FailoverOrder: rigClusters, TTL: 5})
	}
	var join []string
	for _, c := range rigClusters {
		e := startEndpoint(t, "127.0.0.1")
		r.endpoints[c] = e
		cl := Cluster{Name: c, Region: c, Health: v1.HealthReady, Headroom: 0.8, Models: map[string]ModelTarget{}}
		for _, m := range rigModels {
			cl.Models[m] = ModelTarget{Endpoint: e.URL, Ready: 1}
		}
		snap.Clusters = append(snap.Clusters, cl)
		a := startAgent(t, c, "127.0.0.1:0", r.keys, join, rigModels...)
		r.agents[c] = a
		join = append(join, a.Addr())
	}
	src := &Source{}
	src.set(snap)
	r.b = NewBalancer(src, nil, steer.NewHealth(steer.HealthConfig{FailureThreshold: 2, HoldDown: testHoldDown}), "test", quiet())

	// As Run does: join, export the health metrics, probe.
	ctx, cancel := context.WithCancel(context.Background())
	node, leave, err := r.b.joinGossip(ctx, gossip.Config{NodeName: "glb-test", BindAddr: "127.0.0.1", Timing: gossipTiming(),
		KeyringFile: r.keys, Join: join}, r.b.health.Config())
	if err != nil {
		t.Fatal(err)
	}
	r.node = node
	if err := r.b.registerHealthMetrics(r.reg, node); err != nil {
		t.Fatal(err)
	}
	go r.b.Probe(ctx, 100*time.Millisecond, time.Second)
	t.Cleanup(func() { cancel(); leave() })

	testbin.Eventually(t, "the balancer has every agent's state", 30*time.Second, func() bool {
		for _, c := range rigClusters {
			if p, ok := node.Peer(c); !ok || p.Status != gossip.StatusAlive || !p.HasState {
				return false
			}
		}
		return true
	})
	for _, m := range rigModels {
		if got := r.first(m); got != "eu-west" {
			t.Fatalf("%s answered %q with everything healthy, want eu-west", m, got)
		}
	}
	return r
}

// first is the cluster the balancer answers model with now, "" for none.
func (r *gossipRig) first(model string) string {
	c := r.b.ByModel(model, netip.Addr{})
	if len(c.Targets) == 0 {
		return ""
	}
	return c.Targets[0].Cluster
}
