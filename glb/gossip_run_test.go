package glb

import (
	"context"
	"fmt"
	"path/filepath"
	"testing"
	"time"

	mdns "github.com/miekg/dns"
	"github.com/prometheus/client_golang/prometheus"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	v1 "meridian.dev/meridian/crds/v1alpha1"
	"meridian.dev/meridian/gossip"
	"meridian.dev/meridian/internal/controlplane"
	"meridian.dev/meridian/internal/testbin"
)

// Run with Options.Gossip, against a real hub: the balancer joins the
// agents' pool, and when an agent dies its cluster's address leaves the
// DNS answers within the gossip detection bound, though its endpoint
// still passes the probes.
func TestRunWithGossipDropsADeadClusterFromDNS(t *testing.T) {
	cp := controlplane.ForTest(t, controlplane.Options{})
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	ge := &v1.GlobalEndpoint{
		ObjectMeta: metav1.ObjectMeta{Name: "sentiment", Namespace: "default"},
		Spec: v1.GlobalEndpointSpec{Hostname: "sentiment.infer.test", Model: "sentiment", TTL: 5,
			Steering: v1.SteerFailover, FailoverOrder: []v1.RegionName{"eu-west", "us-east"}},
	}
	if err := cp.Client.Create(ctx, ge); err != nil {
		t.Fatal(err)
	}
	var join []string
	agents := map[string]*agentNode{}
	keys := gossipKeyring(t)
	// Each cluster on its own loopback address, as in `meridian up`, so
	// the A record names the cluster.
	for _, c := range []struct{ name, ip string }{{"eu-west", "127.0.1.2"}, {"us-east", "127.0.1.1"}} {
		ep := startEndpoint(t, c.ip)
		cl := &v1.Cluster{ObjectMeta: metav1.ObjectMeta{Name: c.name},
			Spec: v1.ClusterSpec{ClusterIdentity: v1.ClusterIdentity{Region: v1.RegionName(c.name)}}}
		if err := cp.Client.Create(ctx, cl); err != nil {
			t.Fatal(err)
		}
		cl.Status = v1.ClusterStatus{Health: v1.HealthReady,
			Capacity: v1.Capacity{CPU: resource.MustParse("4"), FreeCPU: resource.MustParse("3")},
			Models:   []v1.ModelLoad{{Namespace: "default", Name: "sentiment", Model: "sentiment", Endpoint: ep.URL, ReadyReplicas: 1}}}
		if err := cp.Client.Status().Update(ctx, cl); err != nil {
			t.Fatal(err)
		}
		agents[c.name] = startAgent(t, c.name, "127.0.0.1:0", keys, join, "sentiment")
		join = append(join, agents[c.name].Addr())
	}

	reg := prometheus.NewRegistry()
	ready := make(chan string, 1)
	done := make(chan error, 1)
	go func() {
		done <- Run(ctx, cp.Client, Options{
			Zone: "infer.test", DNSListen: "127.0.0.1:0", StateFile: filepath.Join(t.TempDir(), "snap.json"),
			RefreshPeriod: 200 * time.Millisecond, ProbeInterval: 100 * time.Millisecond, AllowLocalEndpoints: true,
			Gossip:   &gossip.Config{NodeName: "glb-run", BindAddr: "127.0.0.1", Timing: gossipTiming(), Join: join, KeyringFile: keys},
			Logger:   quiet(),
			Registry: reg, Ready: ready,
		})
	}()
	var addr string
	select {
	case addr = <-ready:
	case err := <-done:
		t.Fatal(err)
	}
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Run: %v", err)
		}
	})
	answer := func() string {
		m := new(mdns.Msg)
		m.SetQuestion("sentiment.infer.test.", mdns.TypeA)
		r, err := mdns.Exchange(m, addr)
		if err != nil || len(r.Answer) == 0 {
			return ""
		}
		return r.Answer[0].(*mdns.A).A.String()
	}
	peers := func(state string) float64 {
		v, _ := testbin.MetricIfAny(t, reg, "meridian_glb_gossip_peers", map[string]string{"state": state})
		return v
	}
	testbin.Eventually(t, "eu-west answers and the balancer sees both agents", 30*time.Second, func() bool {
		return answer() == "127.0.1.2" && peers("alive") == 2
	})
	// The balancer's own gossip node reports its keyring on /metrics (what
	// a key rotation is watched by).
	if got := testbin.Metric(t, reg, "meridian_gossip_keyring_keys", nil); got != 1 {
		t.Errorf("meridian_gossip_keyring_keys on the balancer's registry = %v, want 1", got)
	}

	bound := gossipTiming().DeadWithin(3)
	if err := agents["eu-west"].Shutdown(); err != nil {
		t.Fatal(err)
	}
	testbin.Eventually(t, fmt.Sprintf("DNS answers us-east (DeadWithin %s)", bound), 3*bound, func() bool { return answer() == "127.0.1.1" })
	if got := peers("dead"); got != 1 {
		t.Errorf("meridian_glb_gossip_peers{state=dead} = %v, want 1", got)
	}
	// Still out some probe rounds later: the endpoint answers, gossip
	// keeps it out.
	time.Sleep(500 * time.Millisecond)
	if got := answer(); got != "127.0.1.1" {
		t.Errorf("after eu-west's agent died, DNS answers %s", got)
	}
}
