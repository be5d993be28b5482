package agent

import (
	"context"
	"io"
	"log/slog"
	"net/http"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	autoscalingv2 "k8s.io/api/autoscaling/v2"

	"meridian.dev/meridian/agent/kube"
	v1 "meridian.dev/meridian/crds/v1alpha1"
	"meridian.dev/meridian/internal/controlplane"
	"meridian.dev/meridian/internal/loadbalancer"
	"meridian.dev/meridian/internal/node"
)

// realRegionOptions are what differs between the regions of the real-node
// tests.
type realRegionOptions struct {
	// Nodes are the names of the real nodes to start, in order; at least
	// one.
	Nodes []string
	// ControlPlane is started with ControllerManager, Scheduler and
	// NodeLifecycle set; what else it sets (MetricsServer,
	// HPADownscaleStabilization) is kept.
	ControlPlane controlplane.Options
	// Pool is the region's number for loadbalancer.PoolFor: a load
	// balancer hands out its 4 addresses to LoadBalancer Services. Each
	// test has a number of its own, so that no two share an address. Zero
	// runs no load balancer.
	Pool int
	// Registry is the agent's; nil, a new one.
	Registry *prometheus.Registry
	// Agent, when set, changes the agent's options (kube.Options such as
	// IdleWindow, MetricsAPI, ...) after the defaults are filled in.
	Agent func(*Options)
}

// realRegion is a control plane with real nodes, a load balancer and an
// agent with the kubernetes runtime, running until the test ends.
type realRegion struct {
	cp    *controlplane.ControlPlane
	nodes map[string]*node.Node
	// ref is Meridian's image by digest, as the nodes pull it.
	ref string
	// pool is the load balancer's addresses; nil without one.
	pool []netip.Addr
	// endpoint is the address of the first LoadBalancer Service, which a
	// model's endpoint is: "http://<pool[0]>:8000"; empty without a load
	// balancer.
	endpoint string
	// ctx ends when the test does, before the agent and load balancer are
	// waited for.
	ctx context.Context
}

// startRealRegion starts a region for a real-node test: the control plane
// (with the controllers real nodes need), o.Nodes, the load balancer and
// the agent, and stops them when the test ends, failing it if the agent or
// the load balancer returned an error. Cleanups the test registers later
// run first, while the region still runs.
func startRealRegion(t *testing.T, o realRegionOptions) *realRegion {
	t.Helper()
	cpOpts := o.ControlPlane
	cpOpts.ControllerManager, cpOpts.Scheduler, cpOpts.NodeLifecycle = true, true, true
	r := &realRegion{cp: controlplane.ForTest(t, cpOpts), nodes: map[string]*node.Node{}}
	for _, name := range o.Nodes {
		r.nodes[name], r.ref = node.ForTest(t, name, r.cp.Kubeconfig)
	}
	ctx, cancel := context.WithCancel(context.Background())
	r.ctx = ctx
	var lbDone chan error
	if o.Pool != 0 {
		r.pool = loadbalancer.PoolFor(o.Pool, 4)
		r.endpoint = "http://" + r.pool[0].String() + ":8000"
		lbDone = make(chan error, 1)
		go func() { lbDone <- loadbalancer.Run(ctx, r.cp.Config, loadbalancer.Options{Pool: r.pool}) }()
	}
	reg := o.Registry
	if reg == nil {
		reg = prometheus.NewRegistry()
	}
	opts := Options{
		ClusterName: "k8s", Identity: v1.ClusterIdentity{Region: "us-east"}, Runtime: v1.RuntimeKubernetes,
		Kube:       kube.Options{Image: r.ref, ServerArgs: []string{"--cache-size=0"}},
		SyncPeriod: 500 * time.Millisecond, ReportPeriod: time.Second,
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil)), Registry: reg,
	}
	if o.Agent != nil {
		o.Agent(&opts)
	}
	done := make(chan error, 1)
	go func() { done <- Run(ctx, r.cp.Config, opts) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("agent: %v", err)
		}
		if lbDone != nil {
			if err := <-lbDone; err != nil {
				t.Errorf("load balancer: %v", err)
			}
		}
	})
	return r
}

// analyze sends one /analyze request with text to endpoint (a base URL)
// through c, and returns the answer's status, header and body.
func analyze(c *http.Client, endpoint, text string) (int, http.Header, string, error) {
	resp, err := c.Post(endpoint+"/analyze", "application/json", strings.NewReader(`{"text":"`+text+`"}`))
	if err != nil {
		return 0, nil, "", err
	}
	defer func() { _ = resp.Body.Close() }()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return 0, nil, "", err
	}
	return resp.StatusCode, resp.Header, string(b), nil
}

// hpaCondition is h's condition of type typ; nil if it has none.
func hpaCondition(h *autoscalingv2.HorizontalPodAutoscaler, typ autoscalingv2.HorizontalPodAutoscalerConditionType) *autoscalingv2.HorizontalPodAutoscalerCondition {
	for i := range h.Status.Conditions {
		if h.Status.Conditions[i].Type == typ {
			return &h.Status.Conditions[i]
		}
	}
	return nil
}
