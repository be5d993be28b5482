package process

import (
	"context"
	"fmt"
	"net"
	"testing"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"

	"meridian.dev/meridian/inference/oip"
)

// grpcReplica is a replica of one version speaking the gRPC Open
// Inference Protocol: a real grpc-go server on loopback whose ModelInfer
// answers with its version in model_version, or refuses with a code (no
// model runs: process_test.go runs real replicas).
type grpcReplica struct {
	oip.UnimplementedGRPCInferenceServiceServer
	id      string
	addr    string
	version int64
	refuse  codes.Code
}

func (g *grpcReplica) Replicas() []Replica { return []Replica{{ID: g.id, Addr: g.addr, Ready: true}} }

func (g *grpcReplica) ModelInfer(_ context.Context, in *oip.ModelInferRequest) (*oip.ModelInferResponse, error) {
	if g.refuse != codes.OK {
		return nil, status.Error(g.refuse, "busy")
	}
	return &oip.ModelInferResponse{ModelName: in.ModelName, ModelVersion: fmt.Sprint(g.version), Id: g.id}, nil
}

func newGRPCReplica(t *testing.T, id string, version int64, refuse codes.Code) *grpcReplica {
	t.Helper()
	g := &grpcReplica{id: id, version: version, refuse: refuse}
	srv := grpc.NewServer()
	oip.RegisterGRPCInferenceServiceServer(srv, g)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go func() { _ = srv.Serve(ln) }()
	t.Cleanup(srv.Stop)
	g.addr = ln.Addr().String()
	return g
}

// multi is a pool of several replicas.
type multi []*grpcReplica

func (m multi) Replicas() []Replica {
	var out []Replica
	for _, g := range m {
		out = append(out, g.Replicas()...)
	}
	return out
}

func TestGRPCCallsRoutedByTheMessagesVersion(t *testing.T) {
	v1, v2 := newGRPCReplica(t, "v1", 1, codes.OK), newGRPCReplica(t, "v2", 2, codes.OK)
	url, obs := startFront(t, Routes{Pools: []Pool{{Version: 1, Weight: 0, Replicas: v1}, {Version: 2, Weight: 100, Replicas: v2}}})
	conn, err := grpc.NewClient(url[len("http://"):], grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = conn.Close() })
	client := oip.NewGRPCInferenceServiceClient(conn)
	ctx := context.Background()

	for version, want := range map[string]string{"": "2", "1": "1", "2": "2"} {
		resp, err := client.ModelInfer(ctx, &oip.ModelInferRequest{ModelName: "sentiment", ModelVersion: version})
		if err != nil || resp.ModelVersion != want {
			t.Errorf("model_version %q: answered by version %q (%v), want %s", version, resp.GetModelVersion(), err, want)
		}
	}
	for version, code := range map[string]codes.Code{"7": codes.NotFound, "latest": codes.NotFound} {
		_, err := client.ModelInfer(ctx, &oip.ModelInferRequest{ModelName: "sentiment", ModelVersion: version})
		if status.Code(err) != code {
			t.Errorf("model_version %q: %v, want %v", version, err, code)
		}
	}
	obs.mu.Lock()
	defer obs.mu.Unlock()
	if n := obs.by[1] + obs.by[2]; n != 0 {
		t.Errorf("gRPC answers carry no prediction header, yet %d were counted with one", n)
	}
}

func TestGRPCRefusalsMoveToAnotherReplica(t *testing.T) {
	for _, refusal := range []codes.Code{codes.ResourceExhausted, codes.Unavailable} {
		busy, free := newGRPCReplica(t, "busy", 1, refusal), newGRPCReplica(t, "free", 1, codes.OK)
		url, _ := startFront(t, Routes{Pools: []Pool{{Version: 1, Weight: 100, Replicas: multi{busy, free}}}})
		conn, err := grpc.NewClient(url[len("http://"):], grpc.WithTransportCredentials(insecure.NewCredentials()))
		if err != nil {
			t.Fatal(err)
		}
		client := oip.NewGRPCInferenceServiceClient(conn)
		for range 4 { // least outstanding picks either first; each call ends on the free one
			resp, err := client.ModelInfer(context.Background(), &oip.ModelInferRequest{ModelName: "sentiment"})
			if err != nil || resp.Id != "free" {
				t.Errorf("%v from one replica: %v %v, want the other's answer", refusal, resp.GetId(), err)
			}
		}
		_ = conn.Close()
		// Every replica refusing: the last refusal is the answer.
		free.refuse = codes.ResourceExhausted
		conn, _ = grpc.NewClient(url[len("http://"):], grpc.WithTransportCredentials(insecure.NewCredentials()))
		if _, err := oip.NewGRPCInferenceServiceClient(conn).ModelInfer(context.Background(), &oip.ModelInferRequest{ModelName: "sentiment"}); status.Code(err) != codes.ResourceExhausted && status.Code(err) != refusal {
			t.Errorf("every replica refusing: %v", err)
		}
		_ = conn.Close()
	}
}
