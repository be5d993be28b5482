package front_test

import (
	"context"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"net/url"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"

	"meridian.dev/meridian/glb/front"
	"meridian.dev/meridian/inference/oip"
)

// grpcCluster is one member cluster that speaks the Open Inference
// Protocol's gRPC service: a real grpc-go server on loopback (HTTP/2 in
// the clear), whose answers the test scripts. ModelInfer echoes the raw
// input back as output and names the cluster in the response's id.
type grpcCluster struct {
	oip.UnimplementedGRPCInferenceServiceServer
	name  string
	url   *url.URL
	srv   *grpc.Server
	hits  atomic.Int64
	fail  atomic.Int64 // answer with this gRPC code instead, when not 0
	hold  chan struct{}
	model atomic.Value // the model_name of the last call
}

func newGRPCCluster(t *testing.T, name string) *grpcCluster {
	t.Helper()
	c := &grpcCluster{name: name, srv: grpc.NewServer()}
	oip.RegisterGRPCInferenceServiceServer(c.srv, c)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go func() { _ = c.srv.Serve(ln) }()
	t.Cleanup(c.srv.Stop)
	c.url = &url.URL{Scheme: "http", Host: ln.Addr().String()}
	return c
}

func (c *grpcCluster) answer() error {
	c.hits.Add(1)
	if c.hold != nil {
		<-c.hold
	}
	if code := c.fail.Load(); code != 0 {
		return status.Errorf(codes.Code(code), "%s refuses", c.name)
	}
	return nil
}

func (c *grpcCluster) ModelInfer(ctx context.Context, in *oip.ModelInferRequest) (*oip.ModelInferResponse, error) {
	c.model.Store(in.ModelName)
	if err := c.answer(); err != nil {
		return nil, err
	}
	_ = grpc.SetTrailer(ctx, metadata.Pairs("served-by", c.name))
	return &oip.ModelInferResponse{
		ModelName: in.ModelName, Id: c.name,
		Outputs:           []*oip.ModelInferResponse_InferOutputTensor{{Name: "echo", Datatype: "FP32", Shape: []int64{1, 2}}},
		RawOutputContents: in.RawInputContents,
	}, nil
}

func (c *grpcCluster) ModelReady(_ context.Context, in *oip.ModelReadyRequest) (*oip.ModelReadyResponse, error) {
	c.model.Store(in.Name)
	return &oip.ModelReadyResponse{Ready: true}, c.answer()
}

func (c *grpcCluster) ServerLive(context.Context, *oip.ServerLiveRequest) (*oip.ServerLiveResponse, error) {
	return &oip.ServerLiveResponse{Live: true}, c.answer()
}

// grpcRouter serves each model from its clusters, in one tier each, best
// first.
type grpcRouter map[string][]*grpcCluster

func (gr grpcRouter) Route(_ *http.Request, model string, _ netip.Addr) []front.Candidate {
	var cands []front.Candidate
	for i, c := range gr[model] {
		cands = append(cands, front.Candidate{Cluster: c.name, URL: c.url, Tier: i})
	}
	return cands
}

// serveGRPCFront starts a front on loopback speaking HTTP/2 in the clear,
// as the balancer's listener does (internal/httpserve), and returns a
// generated client connected to it.
func serveGRPCFront(t *testing.T, router front.Router, opts front.Options) oip.GRPCInferenceServiceClient {
	t.Helper()
	opts.AllowLocalEndpoints = true
	opts.Logger = slog.New(slog.DiscardHandler)
	f, err := front.New(router, opts)
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewUnstartedServer(f)
	srv.Config.Protocols = new(http.Protocols)
	srv.Config.Protocols.SetHTTP1(true)
	srv.Config.Protocols.SetUnencryptedHTTP2(true)
	srv.Start()
	t.Cleanup(srv.Close)
	conn, err := grpc.NewClient(strings.TrimPrefix(srv.URL, "http://"), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = conn.Close() })
	return oip.NewGRPCInferenceServiceClient(conn)
}

func inferCall(model string) *oip.ModelInferRequest {
	return &oip.ModelInferRequest{
		ModelName:        model,
		Inputs:           []*oip.ModelInferRequest_InferInputTensor{{Name: "x", Datatype: "FP32", Shape: []int64{1, 2}}},
		RawInputContents: [][]byte{{0, 0, 0x80, 0x3f, 0, 0, 0, 0x40}},
	}
}

func TestGRPCRoutedByTheModelInTheMessage(t *testing.T) {
	t.Parallel()
	eu, us := newGRPCCluster(t, "eu-west"), newGRPCCluster(t, "us-east")
	client := serveGRPCFront(t, grpcRouter{"sentiment": {eu}, "textdir": {us}}, front.Options{})
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()

	for model, want := range map[string]*grpcCluster{"sentiment": eu, "textdir": us} {
		var header, trailer metadata.MD
		resp, err := client.ModelInfer(ctx, inferCall(model), grpc.Header(&header), grpc.Trailer(&trailer))
		if err != nil {
			t.Fatalf("ModelInfer %s: %v", model, err)
		}
		if resp.Id != want.name || resp.ModelName != model || string(resp.RawOutputContents[0]) != string(inferCall(model).RawInputContents[0]) {
			t.Errorf("ModelInfer %s: answered %+v, want %s's echo", model, resp, want.name)
		}
		if got := header.Get(strings.ToLower(front.ClusterHeader)); len(got) != 1 || got[0] != want.name {
			t.Errorf("ModelInfer %s: %s = %v, want %s", model, front.ClusterHeader, got, want.name)
		}
		if got := trailer.Get("served-by"); len(got) != 1 || got[0] != want.name {
			t.Errorf("ModelInfer %s: the cluster's trailer did not come through: %v", model, trailer)
		}
	}
	if r, err := client.ModelReady(ctx, &oip.ModelReadyRequest{Name: "textdir"}); err != nil || !r.Ready || us.model.Load() != "textdir" {
		t.Errorf("ModelReady textdir: %v %v, reached us-east for %v", r, err, us.model.Load())
	}

	// The last model_name in the message is the one a server decodes, so
	// it is the one the front routes by.
	sneaky := protowireAppendName(t, inferCall("sentiment"), "textdir")
	resp, err := client.ModelInfer(ctx, sneaky)
	if err != nil || resp.Id != "us-east" {
		t.Errorf("a message naming its model twice went to %v (%v), want us-east, which serves the name a server reads", resp.GetId(), err)
	}
}

// protowireAppendName returns in with a second model_name field after the
// first: a message whose decoders take the last one.
func protowireAppendName(t *testing.T, in *oip.ModelInferRequest, second string) *oip.ModelInferRequest {
	t.Helper()
	b, err := proto.Marshal(in)
	if err != nil {
		t.Fatal(err)
	}
	b = protowire.AppendTag(b, 1, protowire.BytesType)
	b = protowire.AppendString(b, second)
	out := &oip.ModelInferRequest{}
	if err := proto.Unmarshal(b, out); err != nil {
		t.Fatal(err)
	}
	if out.ModelName != second {
		t.Fatalf("the decoder took %q", out.ModelName)
	}
	return out
}

func TestGRPCRetriesARefusalAtTheNextCluster(t *testing.T) {
	t.Parallel()
	for _, refusal := range []codes.Code{codes.Unavailable, codes.ResourceExhausted} {
		first, second := newGRPCCluster(t, "first"), newGRPCCluster(t, "second")
		first.fail.Store(int64(refusal))
		client := serveGRPCFront(t, grpcRouter{"sentiment": {first, second}}, front.Options{})
		resp, err := client.ModelInfer(context.Background(), inferCall("sentiment"))
		if err != nil || resp.Id != "second" || first.hits.Load() != 1 {
			t.Errorf("%s from the first cluster: got %v %v after %d calls there; want the second cluster's answer", refusal, resp.GetId(), err, first.hits.Load())
		}
	}

	// A cluster that is gone: the call goes to the next.
	dead, alive := newGRPCCluster(t, "dead"), newGRPCCluster(t, "alive")
	dead.srv.Stop()
	client := serveGRPCFront(t, grpcRouter{"sentiment": {dead, alive}}, front.Options{})
	if resp, err := client.ModelInfer(context.Background(), inferCall("sentiment")); err != nil || resp.Id != "alive" {
		t.Errorf("past a dead cluster: %v %v", resp.GetId(), err)
	}
}

func TestGRPCAnswersAreNotRetriedWhenTheyAreTheAnswer(t *testing.T) {
	t.Parallel()
	first, second := newGRPCCluster(t, "first"), newGRPCCluster(t, "second")
	first.fail.Store(int64(codes.InvalidArgument))
	client := serveGRPCFront(t, grpcRouter{"sentiment": {first, second}}, front.Options{})
	_, err := client.ModelInfer(context.Background(), inferCall("sentiment"))
	if s, _ := status.FromError(err); s.Code() != codes.InvalidArgument || s.Message() != "first refuses" || second.hits.Load() != 0 {
		t.Errorf("got %v (second cluster called %d times); want the first cluster's InvalidArgument, unretried", err, second.hits.Load())
	}
}

func TestGRPCErrorsOfTheFront(t *testing.T) {
	t.Parallel()
	c := newGRPCCluster(t, "eu-west")
	hung := newGRPCCluster(t, "hung")
	hung.hold = make(chan struct{})
	t.Cleanup(func() { close(hung.hold) })
	client := serveGRPCFront(t, grpcRouter{"sentiment": {c}, "slow": {hung}},
		front.Options{PathModels: map[string]string{"/inference.GRPCInferenceService/ServerLive": "sentiment"}, MaxBodyBytes: 1 << 10})
	ctx := context.Background()

	cases := []struct {
		name string
		call func() error
		want codes.Code
		msg  string
	}{
		{"model no cluster serves", func() error { _, err := client.ModelInfer(ctx, inferCall("nope")); return err }, codes.Unavailable, "no cluster can serve model nope"},
		{"no model named", func() error { _, err := client.ModelInfer(ctx, inferCall("")); return err }, codes.InvalidArgument, "names no model"},
		{"server-level call not mapped", func() error { _, err := client.ServerReady(ctx, &oip.ServerReadyRequest{}); return err }, codes.NotFound, "names no model"},
		{"over the body limit", func() error {
			big := inferCall("sentiment")
			big.RawInputContents = [][]byte{make([]byte, 2<<10)}
			_, err := client.ModelInfer(ctx, big)
			return err
		}, codes.ResourceExhausted, "over the 1024-byte limit"},
		{"deadline", func() error {
			dctx, cancel := context.WithTimeout(ctx, 300*time.Millisecond)
			defer cancel()
			_, err := client.ModelInfer(dctx, inferCall("slow"))
			return err
		}, codes.DeadlineExceeded, ""},
	}
	for _, tc := range cases {
		s, _ := status.FromError(tc.call())
		if s.Code() != tc.want || !strings.Contains(s.Message(), tc.msg) {
			t.Errorf("%s: %v %q, want %v containing %q", tc.name, s.Code(), s.Message(), tc.want, tc.msg)
		}
	}
	// A server-level call that PathModels maps goes to that model's cluster.
	if r, err := client.ServerLive(ctx, &oip.ServerLiveRequest{}); err != nil || !r.Live {
		t.Errorf("ServerLive mapped to sentiment: %v %v", r, err)
	}
}
