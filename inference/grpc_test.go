package inference

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/binary"
	"fmt"
	"io"
	"log/slog"
	"math"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	"meridian.dev/meridian/inference/oip"
	"meridian.dev/meridian/internal/auth"
	"meridian.dev/meridian/internal/testbin"
	"meridian.dev/meridian/internal/tlsx"
)

// grpcServer is a server run by Serve on a real loopback listener, as in
// production, with a gRPC client of the generated code on the same port.
type grpcServer struct {
	*testServer
	addr   string
	client oip.GRPCInferenceServiceClient
}

func serveGRPC(t *testing.T, opts Options, dial ...grpc.DialOption) *grpcServer {
	t.Helper()
	needRuntime(t)
	opts.Registry = prometheus.NewRegistry()
	opts.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	srv, err := New(opts)
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	served := make(chan error, 1)
	go func() { served <- srv.Serve(ctx, ln, 2*time.Second) }()
	addr := ln.Addr().String()
	if len(dial) == 0 {
		dial = []grpc.DialOption{grpc.WithTransportCredentials(insecure.NewCredentials())}
	}
	conn, err := grpc.NewClient("passthrough:///"+addr, dial...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = conn.Close()
		cancel()
		if err := <-served; err != nil {
			t.Errorf("Serve: %v", err)
		}
	})
	return &grpcServer{
		testServer: &testServer{Server: srv, url: "http://" + addr, reg: opts.Registry},
		addr:       addr, client: oip.NewGRPCInferenceServiceClient(conn),
	}
}

func bgctx(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	t.Cleanup(cancel)
	return ctx
}

// wantStatus fails unless err is a gRPC status of code whose message holds
// want.
func wantStatus(t *testing.T, what string, err error, code codes.Code, want string) {
	t.Helper()
	st, _ := status.FromError(err)
	if err == nil || st.Code() != code || !strings.Contains(st.Message(), want) {
		t.Errorf("%s: got %v, want %s containing %q", what, err, code, want)
	}
}

func float32Bytes(v []float32) []byte {
	b := make([]byte, 0, 4*len(v))
	for _, f := range v {
		b = binary.LittleEndian.AppendUint32(b, math.Float32bits(f))
	}
	return b
}

func float32sOf(b []byte) []float32 {
	out := make([]float32, len(b)/4)
	for i := range out {
		out[i] = math.Float32frombits(binary.LittleEndian.Uint32(b[4*i:]))
	}
	return out
}

// bytesRaw lays BYTES elements out as raw_input_contents does.
func bytesRaw(elems ...string) []byte {
	var b []byte
	for _, e := range elems {
		b = binary.LittleEndian.AppendUint32(b, uint32(len(e)))
		b = append(b, e...)
	}
	return b
}

func TestGRPCHealthAndMetadata(t *testing.T) {
	s := serveGRPC(t, Options{ModelRepository: testbin.Models(t)})
	ctx := bgctx(t)
	if r, err := s.client.ServerLive(ctx, &oip.ServerLiveRequest{}); err != nil || !r.Live {
		t.Errorf("ServerLive: %v %v", r, err)
	}
	if r, err := s.client.ServerReady(ctx, &oip.ServerReadyRequest{}); err != nil || !r.Ready {
		t.Errorf("ServerReady: %v %v", r, err)
	}
	if r, err := s.client.ServerMetadata(ctx, &oip.ServerMetadataRequest{}); err != nil || r.Name != "meridian" || !strings.Contains(fmt.Sprint(r.Extensions), "binary_tensor_data") {
		t.Errorf("ServerMetadata: %v %v", r, err)
	}
	for _, ver := range []string{"", "1", "2"} {
		if r, err := s.client.ModelReady(ctx, &oip.ModelReadyRequest{Name: "sentiment", Version: ver}); err != nil || !r.Ready {
			t.Errorf("ModelReady sentiment %q: %v %v", ver, r, err)
		}
	}
	m, err := s.client.ModelMetadata(ctx, &oip.ModelMetadataRequest{Name: "textdir"})
	if err != nil || m.Name != "textdir" || m.Platform != "onnxruntime_onnx" || len(m.Inputs) != 1 ||
		m.Inputs[0].Name != "x" || m.Inputs[0].Datatype != "FP32" || fmt.Sprint(m.Inputs[0].Shape) != "[-1 3 -1 -1]" ||
		len(m.Outputs) != 1 || m.Outputs[0].Name != "softmax_0.tmp_0" {
		t.Errorf("ModelMetadata textdir: %v %v", m, err)
	}
	if m, err := s.client.ModelMetadata(ctx, &oip.ModelMetadataRequest{Name: "sentiment"}); err != nil || fmt.Sprint(m.Versions) != "[1 2]" {
		t.Errorf("ModelMetadata sentiment: %v %v", m, err)
	}
	if m, err := s.client.ModelMetadata(ctx, &oip.ModelMetadataRequest{Name: "sentiment", Version: "1"}); err != nil || fmt.Sprint(m.Versions) != "[1]" {
		t.Errorf("ModelMetadata sentiment version 1: %v %v", m, err)
	}
	_, err = s.client.ModelMetadata(ctx, &oip.ModelMetadataRequest{Name: "nope"})
	wantStatus(t, "metadata of an unknown model", err, codes.NotFound, `unknown model "nope"`)
	_, err = s.client.ModelReady(ctx, &oip.ModelReadyRequest{Name: "sentiment", Version: "7"})
	wantStatus(t, "readiness of an unknown version", err, codes.NotFound, `has no version "7"`)
	_, err = s.client.ModelReady(ctx, &oip.ModelReadyRequest{Name: "../metrics"})
	wantStatus(t, "a name no model has", err, codes.NotFound, "unknown model")
}

// The same image through gRPC raw_input_contents and HTTP binary infer on
// the same port gives the same answer; typed contents give it too.
func TestGRPCInferMatchesHTTP(t *testing.T) {
	s := serveGRPC(t, Options{ModelRepository: testbin.Models(t)})
	ctx := bgctx(t)
	img := stripes()
	raw := float32Bytes(img)
	var header metadata.MD
	r, err := s.client.ModelInfer(ctx, &oip.ModelInferRequest{
		ModelName: "textdir", Id: "req-7",
		Inputs:           []*oip.ModelInferRequest_InferInputTensor{{Name: "x", Datatype: "FP32", Shape: []int64{1, 3, 48, 192}}},
		RawInputContents: [][]byte{raw},
	}, grpc.Header(&header))
	if err != nil {
		t.Fatal(err)
	}
	if r.ModelName != "textdir" || r.ModelVersion != "1" || r.Id != "req-7" || len(r.Outputs) != 1 || len(r.RawOutputContents) != 1 ||
		r.Outputs[0].Name != "softmax_0.tmp_0" || r.Outputs[0].Datatype != "FP32" || fmt.Sprint(r.Outputs[0].Shape) != "[1 2]" {
		t.Fatalf("unexpected answer %v", r)
	}
	if got := header.Get(mdModelVersion); len(got) != 1 || got[0] != "1" {
		t.Errorf("header %s = %v, want [1]", mdModelVersion, got)
	}
	p := float32sOf(r.RawOutputContents[0])
	if len(p) != 2 || math.Abs(float64(p[0]+p[1]-1)) > 1e-5 {
		t.Fatalf("want two probabilities summing to 1, got %v", p)
	}

	hdr := fmt.Sprintf(`{"inputs":[{"name":"x","datatype":"FP32","shape":[1,3,48,192],"parameters":{"binary_data_size":%d}}],"outputs":[{"name":"softmax_0.tmp_0","parameters":{"binary_data":true}}]}`, len(raw))
	bb, hl := binaryBody(hdr, raw)
	code, text, h := post(t, s.url+"/v2/models/textdir/infer", bb, HeaderLength, hl, "Content-Type", "application/octet-stream")
	var n int
	if _, err := fmt.Sscan(h.Get(HeaderLength), &n); code != http.StatusOK || err != nil || len(text) != n+8 {
		t.Fatalf("HTTP binary infer: %d %s", code, text)
	}
	if httpP := float32sOf([]byte(text[n:])); fmt.Sprint(httpP) != fmt.Sprint(p) {
		t.Errorf("HTTP answered %v, gRPC %v", httpP, p)
	}

	// Typed contents: the image as fp32_contents, the answer as before.
	r, err = s.client.ModelInfer(ctx, &oip.ModelInferRequest{ModelName: "textdir", ModelVersion: "1",
		Inputs: []*oip.ModelInferRequest_InferInputTensor{{Name: "x", Datatype: "FP32", Shape: []int64{1, 3, 48, 192},
			Contents: &oip.InferTensorContents{Fp32Contents: img}}}})
	if err != nil || fmt.Sprint(float32sOf(r.RawOutputContents[0])) != fmt.Sprint(p) {
		t.Errorf("typed contents: %v %v, want %v", r, err, p)
	}
}

func TestGRPCBytesTensors(t *testing.T) {
	s := serveGRPC(t, Options{ModelRepository: testbin.Models(t)})
	ctx := bgctx(t)
	rows := [][]string{{"i", "love", "it"}, {"so", "bad", ""}, {"kind", "of", "\u00e9"}}
	var flat []string
	var typed [][]byte
	for _, r := range rows {
		flat = append(flat, r...)
		for _, e := range r {
			typed = append(typed, []byte(e))
		}
	}
	in := []*oip.ModelInferRequest_InferInputTensor{{Name: "tokens", Datatype: "BYTES", Shape: []int64{3, 3}}}
	out := []*oip.ModelInferRequest_InferRequestedOutputTensor{{Name: "score"}}
	for _, c := range []struct {
		name string
		req  *oip.ModelInferRequest
	}{
		{"raw", &oip.ModelInferRequest{ModelName: "sentiment", Inputs: in, Outputs: out, RawInputContents: [][]byte{bytesRaw(flat...)}}},
		{"typed", &oip.ModelInferRequest{ModelName: "sentiment", Outputs: out, Inputs: []*oip.ModelInferRequest_InferInputTensor{
			{Name: "tokens", Datatype: "BYTES", Shape: []int64{3, 3}, Contents: &oip.InferTensorContents{BytesContents: typed}}}}},
	} {
		r, err := s.client.ModelInfer(ctx, c.req)
		if err != nil {
			t.Fatalf("%s: %v", c.name, err)
		}
		if len(r.Outputs) != 1 || r.Outputs[0].Name != "score" || r.ModelVersion != "2" {
			t.Fatalf("%s: asked only for score of the newest version, got %v", c.name, r)
		}
		if got := fmt.Sprint(float32sOf(r.RawOutputContents[0])); got != "[3 -3 0]" { // love +3; bad -3; "kind of" 0
			t.Errorf("%s: scores %s, want [3 -3 0]", c.name, got)
		}
	}
}

func TestGRPCBadInput(t *testing.T) {
	s := serveGRPC(t, Options{ModelRepository: testbin.Models(t), MaxBodyBytes: 200_000, Limits: InputLimits{MaxRequestElements: 30_000}})
	ctx := bgctx(t)
	tokens := func(shape []int64, elems ...string) *oip.ModelInferRequest {
		return &oip.ModelInferRequest{ModelName: "sentiment",
			Inputs:           []*oip.ModelInferRequest_InferInputTensor{{Name: "tokens", Datatype: "BYTES", Shape: shape}},
			RawInputContents: [][]byte{bytesRaw(elems...)}}
	}
	x := func(dt string, shape []int64, raw []byte) *oip.ModelInferRequest {
		return &oip.ModelInferRequest{ModelName: "textdir",
			Inputs:           []*oip.ModelInferRequest_InferInputTensor{{Name: "x", Datatype: dt, Shape: shape}},
			RawInputContents: [][]byte{raw}}
	}
	typed := func(dt string, shape []int64, c *oip.InferTensorContents) *oip.ModelInferRequest {
		return &oip.ModelInferRequest{ModelName: "textdir",
			Inputs: []*oip.ModelInferRequest_InferInputTensor{{Name: "x", Datatype: dt, Shape: shape, Contents: c}}}
	}
	image := make([]byte, 4*3*48*192)
	nan := append([]byte(nil), image...)
	binary.LittleEndian.PutUint32(nan[40:], math.Float32bits(float32(math.NaN())))
	wide := make([]string, 40_000)
	withTimeout := tokens([]int64{1, 1}, "a")
	withTimeout.Parameters = map[string]*oip.InferParameter{"timeout": {ParameterChoice: &oip.InferParameter_Int64Param{Int64Param: -1}}}
	withOutput := tokens([]int64{1, 1}, "a")
	withOutput.Outputs = []*oip.ModelInferRequest_InferRequestedOutputTensor{{Name: "logits"}}
	both := tokens([]int64{1, 1}, "a")
	both.Inputs[0].Contents = &oip.InferTensorContents{BytesContents: [][]byte{[]byte("a")}}
	cases := []struct {
		name string
		req  *oip.ModelInferRequest
		code codes.Code
		want string
	}{
		{"no model", &oip.ModelInferRequest{}, codes.InvalidArgument, "names no model"},
		{"unknown model", &oip.ModelInferRequest{ModelName: "nope"}, codes.NotFound, `unknown model "nope"`},
		{"unknown version", &oip.ModelInferRequest{ModelName: "sentiment", ModelVersion: "9"}, codes.NotFound, `has no version "9"`},
		{"no inputs", &oip.ModelInferRequest{ModelName: "sentiment"}, codes.InvalidArgument, "no inputs"},
		{"unknown datatype", x("FP8", []int64{1}, []byte{0}), codes.InvalidArgument, `unsupported datatype "FP8"`},
		{"wrong datatype for model", x("FP64", []int64{1, 3, 4, 4}, make([]byte, 8*3*4*4)), codes.InvalidArgument, "must be FP32, got FP64"},
		{"wrong rank", tokens([]int64{2}, "a", "b"), codes.InvalidArgument, "must have shape [-1 -1], got [2]"},
		{"wrong channel count", x("FP32", []int64{1, 4, 1, 1}, make([]byte, 16)), codes.InvalidArgument, "must have shape [-1 3 -1 -1]"},
		{"raw too short", x("FP32", []int64{1, 3, 48, 192}, image[:100]), codes.InvalidArgument, "needs 110592 bytes of raw_input_contents, got 100"},
		{"too few BYTES", tokens([]int64{1, 3}, "a", "b"), codes.InvalidArgument, "needs 3 elements, got 2"},
		{"BYTES left over", tokens([]int64{1, 1}, "a", "b"), codes.InvalidArgument, "left over"},
		{"negative dim", tokens([]int64{1, -1}, "a"), codes.InvalidArgument, "negative dimension"},
		{"empty dim", tokens([]int64{0, 1}), codes.InvalidArgument, "empty dimension"},
		{"NaN", x("FP32", []int64{1, 3, 48, 192}, nan), codes.InvalidArgument, "element 10 is NaN"},
		{"raw count", &oip.ModelInferRequest{ModelName: "sentiment", Inputs: tokens([]int64{1, 1}, "a").Inputs, RawInputContents: [][]byte{{}, {}}}, codes.InvalidArgument, "2 entries for 1 inputs"},
		{"raw and contents", both, codes.InvalidArgument, "send every input one way"},
		{"no contents", &oip.ModelInferRequest{ModelName: "sentiment", Inputs: tokens([]int64{1, 1}, "a").Inputs}, codes.InvalidArgument, "has no contents"},
		{"contents in the wrong field", typed("FP32", []int64{1, 3, 48, 192}, &oip.InferTensorContents{IntContents: make([]int32, 27648)}), codes.InvalidArgument, "go in fp32_contents"},
		{"too few typed", typed("FP32", []int64{1, 3, 48, 192}, &oip.InferTensorContents{Fp32Contents: []float32{1}}), codes.InvalidArgument, "holds 27648 elements but fp32_contents has 1"},
		{"infinite typed", typed("FP32", []int64{1}, &oip.InferTensorContents{Fp32Contents: []float32{float32(math.Inf(1))}}), codes.InvalidArgument, "only finite numbers"},
		{"typed FP16", typed("FP16", []int64{1}, &oip.InferTensorContents{}), codes.InvalidArgument, "only in raw_input_contents"},
		{"INT8 out of range", typed("INT8", []int64{1}, &oip.InferTensorContents{IntContents: []int32{300}}), codes.InvalidArgument, "out of range"},
		{"duplicate input", &oip.ModelInferRequest{ModelName: "sentiment", Inputs: append(tokens([]int64{1, 1}, "a").Inputs, tokens([]int64{1, 1}, "a").Inputs...),
			RawInputContents: [][]byte{bytesRaw("a"), bytesRaw("a")}}, codes.InvalidArgument, "appears twice"},
		{"unknown output", withOutput, codes.InvalidArgument, `no output "logits"`},
		{"negative timeout", withTimeout, codes.InvalidArgument, "timeout"},
		{"batch over max", tokens([]int64{65, 1}, make([]string, 65)...), codes.InvalidArgument, "more than max_batch_size 64"},
		{"over max_request_elements", tokens([]int64{1, 40_000}, wide...), codes.ResourceExhausted, "max_request_elements"},
		{"message over max-body-bytes", x("FP32", []int64{2, 3, 48, 192}, append(image, image...)), codes.ResourceExhausted, "larger than max"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			_, err := s.client.ModelInfer(ctx, c.req)
			wantStatus(t, c.name, err, c.code, c.want)
		})
	}
	// Nothing was lost: the server still answers, and counted the 400s.
	if _, err := s.client.ModelInfer(ctx, tokens([]int64{1, 1}, "good")); err != nil {
		t.Fatalf("after bad input: %v", err)
	}
	if n := testbin.Metric(t, s.reg, "meridian_inference_requests_total", map[string]string{"code": "400"}); n < 20 {
		t.Errorf("requests_total{code=400} = %v, want every bad request counted", n)
	}
}

// A call whose deadline passes while the model is busy fails
// DeadlineExceeded and never reaches the model; a full queue sheds calls
// Unavailable with a retry-after trailer, and readiness says so.
func TestGRPCDeadlinesAndShedding(t *testing.T) {
	repo := newRepo(t, repoModel{name: "scale", versions: map[int64][]byte{1: scaleModel(t, 2)}, config: "max_batch_size: 4\nqueue_size: 3\n"})
	s := serveGRPC(t, Options{ModelRepository: repo})
	started, release := hold(s.testServer, "scale")
	defer release()
	request := func(f float32) *oip.ModelInferRequest {
		return &oip.ModelInferRequest{ModelName: "scale",
			Inputs:           []*oip.ModelInferRequest_InferInputTensor{{Name: "x", Datatype: "FP32", Shape: []int64{1, 1}}},
			RawInputContents: [][]byte{float32Bytes([]float32{f})}}
	}
	call := func(ctx context.Context, f float32, opts ...grpc.CallOption) (*oip.ModelInferResponse, error) {
		return s.client.ModelInfer(ctx, request(f), opts...)
	}
	answered := func(code string) float64 {
		n, _ := testbin.MetricIfAny(t, s.reg, "meridian_inference_requests_total", map[string]string{"code": code})
		return n
	}
	ctx := bgctx(t)
	var wg sync.WaitGroup
	results := make(chan string, 2)
	send := func(f float32) {
		defer wg.Done()
		r, err := call(ctx, f)
		if err != nil {
			results <- err.Error()
			return
		}
		results <- fmt.Sprint(float32sOf(r.RawOutputContents[0]))
	}
	wg.Add(1)
	go send(21) // runs, held
	<-started

	// The call's own deadline, while the worker is busy: long enough for
	// the call to reach the queue on a loaded machine, where it expires.
	short, cancel := context.WithTimeout(ctx, time.Second)
	_, err := call(short, 1)
	cancel()
	wantStatus(t, "call past its deadline", err, codes.DeadlineExceeded, "")
	// The server sees its deadline pass (504), or the client's cancel
	// first (499), whichever comes first.
	testbin.Eventually(t, "the server to give up on the expired call", 5*time.Second, func() bool {
		return answered("504")+answered("499") == 1
	})
	// The server's own deadline: the "timeout" parameter (microseconds).
	timed := request(5)
	timed.Parameters = map[string]*oip.InferParameter{"timeout": {ParameterChoice: &oip.InferParameter_Int64Param{Int64Param: 200_000}}}
	_, err = s.client.ModelInfer(ctx, timed)
	wantStatus(t, "call past its timeout parameter", err, codes.DeadlineExceeded, "deadline passed before the model answered")

	// The expired calls hold queue slots until a worker drops them; this
	// one takes the last.
	wg.Add(1)
	go send(2)
	testbin.Eventually(t, "three queued calls", 5*time.Second, func() bool { return len(s.models["scale"].latest.queue) == 3 })
	if r, err := s.client.ServerReady(ctx, &oip.ServerReadyRequest{}); err != nil || r.Ready {
		t.Errorf("ServerReady with a full queue: %v %v", r, err)
	}
	if r, err := s.client.ModelReady(ctx, &oip.ModelReadyRequest{Name: "scale"}); err != nil || r.Ready {
		t.Errorf("ModelReady with a full queue: %v %v", r, err)
	}
	var trailer metadata.MD
	_, err = call(ctx, 3, grpc.Trailer(&trailer))
	wantStatus(t, "call over a full queue", err, codes.Unavailable, "queue is full")
	if got := trailer.Get(mdRetryAfter); len(got) != 1 || got[0] != "1" {
		t.Errorf("trailer %s = %v, want [1]", mdRetryAfter, got)
	}
	release()
	wg.Wait()
	close(results)
	var got []string
	for r := range results {
		got = append(got, r)
	}
	if strings.Join(got, " ") != "[42] [4]" && strings.Join(got, " ") != "[4] [42]" {
		t.Errorf("admitted calls answered %v, want [42] and [4]", got)
	}
	// The expired calls never reached the model: one batch per admitted call.
	if n := testbin.Metric(t, s.reg, "meridian_inference_batch_size", map[string]string{"model": "scale"}); n != 2 {
		t.Errorf("model ran %v batches, want 2", n)
	}
	if n := testbin.Metric(t, s.reg, "meridian_inference_expired_total", map[string]string{"model": "scale"}); n != 2 {
		t.Errorf("expired_total = %v, want the 2 expired calls", n)
	}
}

// HTTP/1.1, HTTP/2 without TLS (h2c) and gRPC share one listener, at the
// same time.
func TestGRPCAndHTTPShareThePort(t *testing.T) {
	s := serveGRPC(t, Options{ModelRepository: testbin.Models(t)})
	ctx := bgctx(t)
	h2c := &http.Transport{Protocols: new(http.Protocols)}
	h2c.Protocols.SetUnencryptedHTTP2(true)
	defer h2c.CloseIdleConnections()
	var wg sync.WaitGroup
	for i := range 8 {
		wg.Add(3)
		go func() {
			defer wg.Done()
			code, text, _ := post(t, s.url+"/v2/models/sentiment/infer", `{"inputs":[{"name":"tokens","datatype":"BYTES","shape":[1,1],"data":["good"]}]}`)
			if code != http.StatusOK || !strings.Contains(text, `"name":"score","datatype":"FP32","shape":[1,1],"data":[3]`) {
				t.Errorf("HTTP/1.1 infer %d: %d %s", i, code, text)
			}
		}()
		go func() {
			defer wg.Done()
			resp, err := (&http.Client{Transport: h2c}).Get(s.url + "/v2/health/ready")
			if err != nil {
				t.Errorf("h2c: %v", err)
				return
			}
			body, _ := io.ReadAll(resp.Body)
			_ = resp.Body.Close()
			if resp.ProtoMajor != 2 || resp.StatusCode != http.StatusOK || !strings.Contains(string(body), `"ready":true`) {
				t.Errorf("h2c readiness: %s %d %s", resp.Proto, resp.StatusCode, body)
			}
		}()
		go func() {
			defer wg.Done()
			r, err := s.client.ModelInfer(ctx, &oip.ModelInferRequest{ModelName: "sentiment",
				Inputs:           []*oip.ModelInferRequest_InferInputTensor{{Name: "tokens", Datatype: "BYTES", Shape: []int64{1, 1}}},
				RawInputContents: [][]byte{bytesRaw("good")}})
			if err != nil || fmt.Sprint(float32sOf(r.RawOutputContents[0])) != "[3]" {
				t.Errorf("gRPC infer %d: %v %v", i, r, err)
			}
		}()
	}
	wg.Wait()
	code, text := get(t, s.url+"/metrics")
	if code != http.StatusOK || !strings.Contains(text, `meridian_inference_requests_total{code="200",model="sentiment",version="2"} 16`) {
		t.Errorf("metrics count HTTP and gRPC calls together: %d %s", code, grepLines(text, "requests_total"))
	}
}

func grepLines(text, word string) string {
	var out []string
	for l := range strings.Lines(text) {
		if strings.Contains(l, word) {
			out = append(out, strings.TrimSpace(l))
		}
	}
	return strings.Join(out, "\n")
}

// With TLS and auth on, gRPC speaks h2 by ALPN and passes the same door as
// HTTP: credentials from the call's metadata, the tenant's model
// allow-list and quota, public health checks.
func TestGRPCTLSAndAuth(t *testing.T) {
	dir := t.TempDir()
	pki := tlsx.LocalPKI{Dir: filepath.Join(dir, "pki")}
	if _, err := pki.Ensure(tlsx.CertRequest{Name: "serve", IssueOptions: tlsx.IssueOptions{DNSNames: []string{"localhost"}, IPs: []net.IP{net.IPv4(127, 0, 0, 1)}}}); err != nil {
		t.Fatal(err)
	}
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	r, err := tlsx.NewReloader(tlsx.Dir(pki.Path("serve")), tlsx.ReloaderOptions{Name: "serve", Logger: log})
	if err != nil {
		t.Fatal(err)
	}
	cfg, err := tlsx.ServerConfig(r, tlsx.ServerOptions{})
	if err != nil {
		t.Fatal(err)
	}
	keys, tenants := filepath.Join(dir, "keys"), filepath.Join(dir, "tenants.yaml")
	writeTestFile(t, keys, "acme acme-key-0123456789abcdef\n")
	writeTestFile(t, tenants, "tenants:\n  acme: {rate: 0.001, burst: 2, models: [sentiment]}\n")
	ca, err := os.ReadFile(filepath.Join(pki.CAPath(), "ca.crt"))
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(ca)
	s := serveGRPC(t, Options{ModelRepository: testbin.Models(t), TLS: cfg, Auth: auth.Options{APIKeysFile: keys, TenantsFile: tenants}},
		grpc.WithTransportCredentials(credentials.NewTLS(&tls.Config{RootCAs: pool, ServerName: "localhost", MinVersion: tls.VersionTLS12})))
	ctx := bgctx(t)
	acme := metadata.AppendToOutgoingContext(ctx, "authorization", "Bearer acme-key-0123456789abcdef")
	good := &oip.ModelInferRequest{ModelName: "sentiment",
		Inputs:           []*oip.ModelInferRequest_InferInputTensor{{Name: "tokens", Datatype: "BYTES", Shape: []int64{1, 1}}},
		RawInputContents: [][]byte{bytesRaw("good")}}

	if r, err := s.client.ServerLive(ctx, &oip.ServerLiveRequest{}); err != nil || !r.Live {
		t.Errorf("ServerLive needs no credential: %v %v", r, err)
	}
	_, err = s.client.ModelInfer(ctx, good)
	wantStatus(t, "infer without a credential", err, codes.Unauthenticated, "")
	if _, err := s.client.ModelInfer(acme, good); err != nil {
		t.Errorf("acme's sentiment call: %v", err)
	}
	_, err = s.client.ModelMetadata(acme, &oip.ModelMetadataRequest{Name: "textdir"})
	wantStatus(t, "a model outside acme's allow-list", err, codes.PermissionDenied, "may not use model textdir")
	_, err = s.client.ModelInfer(acme, &oip.ModelInferRequest{ModelName: "textdir"})
	wantStatus(t, "infer outside acme's allow-list", err, codes.PermissionDenied, "may not use model textdir")
	// acme's burst of 2 is spent (the refusals for textdir cost nothing).
	if _, err := s.client.ModelInfer(acme, good); err != nil {
		t.Errorf("acme's second call: %v", err)
	}
	_, err = s.client.ModelInfer(acme, good)
	wantStatus(t, "acme over its rate", err, codes.ResourceExhausted, "rate")
}

// With tracing on, a call is traced as an HTTP request is: a serve.request
// span continuing the caller's traceparent (sent as metadata), naming the
// model, with serve.queue and serve.batch under it.
func TestGRPCTraced(t *testing.T) {
	rec := tracetest.NewSpanRecorder()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(rec))
	defer func() { _ = tp.Shutdown(context.Background()) }()
	s := serveGRPC(t, Options{ModelRepository: testbin.Models(t), TracerProvider: tp})
	const traceID = "4bf92f3577b34da6a3ce929d0e0e4736"
	ctx := metadata.AppendToOutgoingContext(bgctx(t), "traceparent", "00-"+traceID+"-00f067aa0ba902b7-01")
	_, err := s.client.ModelInfer(ctx, &oip.ModelInferRequest{ModelName: "sentiment",
		Inputs:           []*oip.ModelInferRequest_InferInputTensor{{Name: "tokens", Datatype: "BYTES", Shape: []int64{1, 1}}},
		RawInputContents: [][]byte{bytesRaw("good")}})
	if err != nil {
		t.Fatal(err)
	}
	names := map[string]bool{}
	for _, sp := range rec.Ended() {
		if sp.SpanContext().TraceID().String() != traceID {
			continue
		}
		names[sp.Name()] = true
		if sp.Name() == "serve.request" && !strings.Contains(fmt.Sprint(sp.Attributes()), "sentiment") {
			t.Errorf("serve.request names no model: %v", sp.Attributes())
		}
	}
	for _, want := range []string{"serve.request", "serve.queue", "serve.batch"} {
		if !names[want] {
			t.Errorf("no %s span in the caller's trace; got %v", want, names)
		}
	}
}
