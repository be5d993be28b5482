package gossip_test

import (
	"context"
	"fmt"
	"time"

	"meridian.dev/meridian/gossip"
)

// Two agents on loopback: the second joins the first, publishes its load,
// and the first reads it.
func Example() {
	ctx := context.Background()
	eu, err := gossip.Start(ctx, gossip.Config{
		NodeName: "eu-1",
		BindAddr: "127.0.0.1", // BindPort 0: any free port
		Meta:     gossip.Meta{Cluster: "eu-1", Region: "eu-west-1", Endpoint: "https://eu-1.infer.example.com"},
		Timing:   gossip.Local(),
	})
	if err != nil {
		fmt.Println(err)
		return
	}
	defer func() { _ = eu.Shutdown() }()

	us, err := gossip.Start(ctx, gossip.Config{
		NodeName: "us-1",
		BindAddr: "127.0.0.1",
		Join:     []string{eu.Addr()},
		Meta:     gossip.Meta{Cluster: "us-1", Region: "us-east-1", Endpoint: "https://us-1.infer.example.com"},
		Timing:   gossip.Local(),
	})
	if err != nil {
		fmt.Println(err)
		return
	}
	defer func() { _ = us.Shutdown() }()

	_ = us.SetLocalState(gossip.NodeState{Models: []gossip.ModelDigest{{
		Namespace: "ml", Name: "sentiment", Model: "sentiment",
		ReadyReplicas: 3, DesiredReplicas: 3, RequestsPerSecond: 120, P95Seconds: 0.045, Healthy: true,
	}}})

	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(10 * time.Millisecond) {
		if p, ok := eu.Peer("us-1"); ok && p.HasState {
			m := p.State.Models[0]
			fmt.Printf("%s (%s, %s): %s %d/%d ready, %.0f req/s\n", p.Name, p.Meta.Region, p.Status, m.Name, m.ReadyReplicas, m.DesiredReplicas, m.RequestsPerSecond)
			break
		}
	}
	// Output: us-1 (us-east-1, alive): sentiment 3/3 ready, 120 req/s
}
