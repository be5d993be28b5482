package auth

import (
	"context"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"

	"meridian.dev/meridian/inference/oip"
)

// tenantEcho is a gRPC inference service that names, in each answer's
// id, the tenant the door let through and the model it was asked for.
type tenantEcho struct {
	oip.UnimplementedGRPCInferenceServiceServer
}

func (tenantEcho) ModelInfer(ctx context.Context, in *oip.ModelInferRequest) (*oip.ModelInferResponse, error) {
	return &oip.ModelInferResponse{ModelName: in.ModelName, Id: "served"}, nil
}

func (tenantEcho) ServerLive(context.Context, *oip.ServerLiveRequest) (*oip.ServerLiveResponse, error) {
	return &oip.ServerLiveResponse{Live: true}, nil
}

// TestPoliciesOverGRPC checks the model allow-lists on gRPC calls, whose
// model is in the message, not the path: the door reads it, as the
// server's decoder would (the last model_name wins), and the call still
// reaches the service whole.
func TestPoliciesOverGRPC(t *testing.T) {
	t.Parallel()
	a, err := New(quotaOptions(t, "tenants:\n  acme: {models: [sentiment]}\n"), nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(a.Close)
	gs := grpc.NewServer()
	oip.RegisterGRPCInferenceServiceServer(gs, tenantEcho{})
	srv := httptest.NewUnstartedServer(a.Wrap(gs))
	srv.Config.Protocols = new(http.Protocols)
	srv.Config.Protocols.SetUnencryptedHTTP2(true)
	srv.Start()
	t.Cleanup(srv.Close)
	conn, err := grpc.NewClient(strings.TrimPrefix(srv.URL, "http://"), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = conn.Close() })
	client := oip.NewGRPCInferenceServiceClient(conn)
	ctx := metadata.AppendToOutgoingContext(context.Background(), "authorization", "Bearer "+acmeKey)

	twice := &oip.ModelInferRequest{ModelName: "sentiment"}
	b, _ := proto.Marshal(twice)
	b = protowire.AppendString(protowire.AppendTag(b, 1, protowire.BytesType), "textdir")
	if err := proto.Unmarshal(b, twice); err != nil || twice.ModelName != "textdir" {
		t.Fatalf("a message naming two models: %v %q", err, twice.ModelName)
	}
	for _, tc := range []struct {
		name string
		in   *oip.ModelInferRequest
		code codes.Code
	}{
		{"allowed model", &oip.ModelInferRequest{ModelName: "sentiment", RawInputContents: [][]byte{make([]byte, 1<<16)}}, codes.OK},
		{"model not allowed", &oip.ModelInferRequest{ModelName: "textdir"}, codes.PermissionDenied},
		{"an allowed name, then the one a server reads", twice, codes.PermissionDenied},
	} {
		resp, err := client.ModelInfer(ctx, tc.in)
		if s, _ := status.FromError(err); s.Code() != tc.code || (err != nil && !strings.Contains(s.Message(), "may not use model textdir")) {
			t.Errorf("%s: %v, want %v", tc.name, err, tc.code)
		} else if err == nil && (resp.Id != "served" || resp.ModelName != tc.in.ModelName) {
			t.Errorf("%s: answered %+v", tc.name, resp)
		}
	}
	if r, err := client.ServerLive(ctx, &oip.ServerLiveRequest{}); err != nil || !r.Live {
		t.Errorf("a call that names no model: %v %v", r, err)
	}
	if _, err := client.ModelInfer(context.Background(), &oip.ModelInferRequest{ModelName: "sentiment"}); status.Code(err) != codes.Unauthenticated || !strings.Contains(err.Error(), "credential") {
		t.Errorf("without credentials: %v, want Unauthenticated", err)
	}
}
