package inference

import (
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"golang.org/x/net/http2"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	"meridian.dev/meridian/inference/oip"
	"meridian.dev/meridian/internal/oipgrpc"
	"meridian.dev/meridian/internal/tracing"
	"meridian.dev/meridian/internal/version"
)

// The gRPC Open Inference Protocol v2 (KServe's grpc_predict_v2.proto,
// service inference.GRPCInferenceService, in package oip) on the HTTP
// port: the http.Server speaks HTTP/2 (h2c, or h2 by ALPN under TLS) and
// hands requests whose Content-Type is application/grpc to a grpc.Server
// through its ServeHTTP. Every call takes the path its HTTP twin takes:
// the same door (authentication, tenant quotas and model allow-lists,
// checked as the HTTP request the call mirrors), the same model lookup,
// validation and limits, cache, queue, batching and metrics; only the
// wire format and the status codes differ.

// serverExtensions are the protocol extensions ServerMetadata (GET /v2)
// lists.
var serverExtensions = []string{"binary_tensor_data", "model_repository"}

// mdModelVersion is HeaderModelVersion as gRPC response metadata: the
// version that answered a ModelInfer call.
var mdModelVersion = strings.ToLower(HeaderModelVersion)

// mdRetryAfter is the trailer that, like HTTP's Retry-After, tells a
// refused caller when to come back (seconds).
const mdRetryAfter = "retry-after"

func (s *Server) newGRPC() *grpc.Server {
	g := grpc.NewServer(
		// A message as large as an HTTP body may be; beyond it gRPC
		// itself answers ResourceExhausted before reading it.
		grpc.MaxRecvMsgSize(int(min(s.opts.MaxBodyBytes, math.MaxInt32))),
	)
	oip.RegisterGRPCInferenceServiceServer(g, &grpcService{s: s})
	return g
}

// GRPCServer is the gRPC server that Handler hands gRPC calls to. Serve
// needs nothing of it; it is here for measuring: served on a listener of
// its own (GRPCServer().Serve(ln)) it answers the same service without the
// HTTP server, its limits (connections, in-flight requests, the body
// budget) and, with authentication on, refuses every call.
func (s *Server) GRPCServer() *grpc.Server { return s.grpc }

// withGRPC sends gRPC calls to the gRPC server, everything else to h.
func (s *Server) withGRPC(h http.Handler) http.Handler {
	g := tracing.Handler(s.opts.TracerProvider, "serve.request", http.HandlerFunc(s.serveGRPC))
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if oipgrpc.IsCall(r) {
			g.ServeHTTP(w, r)
			return
		}
		h.ServeHTTP(w, r)
	})
}

// httpRequestKey holds, in a call's context, the HTTP/2 request it came
// in, for the door to judge (grpc.Server.ServeHTTP derives the call's
// context from the request's).
type httpRequestKey struct{}

func (s *Server) serveGRPC(w http.ResponseWriter, r *http.Request) {
	if r.Body != nil && r.Body != http.NoBody {
		b := &grpcBody{r: r.Body, budget: s.bodies}
		defer b.release()
		r.Body = b
	}
	if s.auth.Enabled() {
		r = r.WithContext(context.WithValue(r.Context(), httpRequestKey{}, r))
	}
	if _, ok := w.(http.Flusher); !ok {
		// A wrapper (tracing's status recorder) that hides Flush, which
		// grpc.Server.ServeHTTP needs, though it can reach it.
		w = flusher{w, http.NewResponseController(w)}
	}
	s.grpc.ServeHTTP(w, r)
}

type flusher struct {
	http.ResponseWriter
	rc *http.ResponseController
}

func (f flusher) Flush() { _ = f.rc.Flush() }

func (f flusher) Unwrap() http.ResponseWriter { return f.ResponseWriter }

// grpcBody counts a call's request bytes against the server's budget of
// buffered bodies (Options.MaxBufferedBodyBytes), as readBody does for
// HTTP, until the call ends. A call that would take the server past it
// fails Unavailable: gRPC maps a refused HTTP/2 stream so.
type grpcBody struct {
	r      io.ReadCloser
	budget *bodyBudget
	held   int64 // read by one goroutine, then by release after it ended
}

func (b *grpcBody) Read(p []byte) (int, error) {
	n, err := b.r.Read(p)
	if n > 0 {
		if !b.budget.reserve(int64(n)) {
			return 0, http2.StreamError{Code: http2.ErrCodeRefusedStream, Cause: fmt.Errorf(
				"the server holds its limit of %d bytes of request bodies (--max-buffered-body-bytes); retry shortly", b.budget.max)}
		}
		b.held += int64(n)
	}
	return n, err
}

func (b *grpcBody) Close() error { return b.r.Close() }

func (b *grpcBody) release() { b.budget.held.Add(-b.held) }

// door runs call behind the server's authenticator, judged as the HTTP
// request the call mirrors (method and path, with the call's own headers,
// which carry its credentials, and peer): the same credentials, tenant
// policies, model allow-lists, quotas and concurrency limits apply. A
// refusal becomes the matching gRPC status.
func (s *Server) door(ctx context.Context, method, path string, call func(context.Context) error) error {
	if !s.auth.Enabled() {
		return call(ctx)
	}
	orig, _ := ctx.Value(httpRequestKey{}).(*http.Request)
	if orig == nil {
		return status.Error(codes.Internal, "the call reached the model server without its HTTP request")
	}
	r := orig.Clone(ctx)
	r.Method, r.URL, r.RequestURI = method, &url.URL{Path: path}, path
	r.Body, r.ContentLength = http.NoBody, 0
	// Judged as the plain HTTP request it mirrors, whose path names the
	// model: not as a gRPC call, whose model a ModelOf would look for in
	// a body this request does not carry.
	r.Proto, r.ProtoMajor, r.ProtoMinor = "HTTP/1.1", 1, 1
	r.Header.Del("Content-Type")
	w := &refusal{header: make(http.Header)}
	var err error
	served := false
	s.auth.Wrap(http.HandlerFunc(func(_ http.ResponseWriter, r *http.Request) {
		served = true
		err = call(r.Context())
	})).ServeHTTP(w, r)
	if served {
		return err
	}
	if ra := w.header.Get("Retry-After"); ra != "" {
		_ = grpc.SetTrailer(ctx, metadata.Pairs(mdRetryAfter, ra))
	}
	var body struct {
		Error string `json:"error"`
	}
	if json.Unmarshal(w.body, &body) != nil || body.Error == "" {
		body.Error = http.StatusText(w.code)
	}
	c := codes.PermissionDenied
	switch w.code {
	case http.StatusUnauthorized:
		c = codes.Unauthenticated
	case http.StatusTooManyRequests:
		c = codes.ResourceExhausted // a tenant's quota
	case http.StatusServiceUnavailable, http.StatusBadGateway, http.StatusGatewayTimeout:
		c = codes.Unavailable
	case http.StatusBadRequest:
		c = codes.InvalidArgument
	}
	return status.Error(c, body.Error)
}

// refusal records what the authenticator answered a call it refused.
type refusal struct {
	header http.Header
	code   int
	body   []byte
}

func (w *refusal) Header() http.Header { return w.header }

func (w *refusal) WriteHeader(code int) {
	if w.code == 0 {
		w.code = code
	}
}

func (w *refusal) Write(b []byte) (int, error) {
	w.WriteHeader(http.StatusOK)
	w.body = append(w.body, b...)
	return len(b), nil
}

// modelPath is the HTTP path of a model (version), as the door judges it.
func modelPath(name, ver string) string {
	p := "/v2/models/" + name
	if ver != "" {
		p += "/versions/" + ver
	}
	return p
}

// checkModelName refuses names that no model directory can have, before
// they are made into a path for the door ("a/b", "..").
func checkModelName(name, ver string) error {
	for _, n := range []string{name, ver} {
		if strings.Contains(n, "/") || n == "." || n == ".." {
			return status.Errorf(codes.NotFound, "unknown model %q version %q", name, ver)
		}
	}
	if name == "" {
		return status.Error(codes.InvalidArgument, "the request names no model")
	}
	return nil
}

// grpcError turns an error of the shared request path into the gRPC status
// mirroring its HTTP status: 400 InvalidArgument, 404 NotFound, 413
// ResourceExhausted, 429 (queue full) and 503 Unavailable with a
// retry-after trailer, 504 DeadlineExceeded, 499 Canceled, else Internal
// (logged, as the HTTP path logs its 500s).
func (s *Server) grpcError(ctx context.Context, v *modelVersion, err error) error {
	c := codes.Internal
	switch statusOf(err) {
	case http.StatusBadRequest:
		c = codes.InvalidArgument
	case http.StatusNotFound:
		c = codes.NotFound
	case http.StatusRequestEntityTooLarge:
		c = codes.ResourceExhausted
	case http.StatusTooManyRequests, http.StatusServiceUnavailable:
		c = codes.Unavailable
		_ = grpc.SetTrailer(ctx, metadata.Pairs(mdRetryAfter, "1"))
	case http.StatusGatewayTimeout, http.StatusRequestTimeout:
		c = codes.DeadlineExceeded
	case statusClientClosed:
		c = codes.Canceled
	default:
		if v != nil {
			s.log.ErrorContext(ctx, "inference failed", "model", v.spec.Name, "version", v.version, "err", err, "protocol", "grpc")
		}
	}
	if errors.Is(err, context.DeadlineExceeded) {
		err = errors.New("the request's deadline passed before the model answered")
	}
	return status.Error(c, err.Error())
}

// grpcService implements inference.GRPCInferenceService on the server.
type grpcService struct {
	oip.UnimplementedGRPCInferenceServiceServer
	s *Server
}

func (g *grpcService) ServerLive(ctx context.Context, _ *oip.ServerLiveRequest) (*oip.ServerLiveResponse, error) {
	err := g.s.door(ctx, http.MethodGet, "/v2/health/live", func(context.Context) error { return nil })
	if err != nil {
		return nil, err
	}
	return &oip.ServerLiveResponse{Live: true}, nil
}

func (g *grpcService) ServerReady(ctx context.Context, _ *oip.ServerReadyRequest) (*oip.ServerReadyResponse, error) {
	err := g.s.door(ctx, http.MethodGet, "/v2/health/ready", func(context.Context) error { return nil })
	if err != nil {
		return nil, err
	}
	return &oip.ServerReadyResponse{Ready: g.s.Ready()}, nil
}

func (g *grpcService) ServerMetadata(ctx context.Context, _ *oip.ServerMetadataRequest) (*oip.ServerMetadataResponse, error) {
	err := g.s.door(ctx, http.MethodGet, "/v2", func(context.Context) error { return nil })
	if err != nil {
		return nil, err
	}
	return &oip.ServerMetadataResponse{Name: "meridian", Version: version.Version, Extensions: serverExtensions}, nil
}

func (g *grpcService) ModelReady(ctx context.Context, req *oip.ModelReadyRequest) (*oip.ModelReadyResponse, error) {
	if err := checkModelName(req.Name, req.Version); err != nil {
		return nil, err
	}
	var resp *oip.ModelReadyResponse
	err := g.s.door(ctx, http.MethodGet, modelPath(req.Name, req.Version)+"/ready", func(ctx context.Context) error {
		v, err := g.s.lookupModel(req.Name, req.Version)
		if err != nil {
			return g.s.grpcError(ctx, nil, err)
		}
		resp = &oip.ModelReadyResponse{Ready: !g.s.draining.Load() && !v.saturated()}
		return nil
	})
	return resp, err
}

func (g *grpcService) ModelMetadata(ctx context.Context, req *oip.ModelMetadataRequest) (*oip.ModelMetadataResponse, error) {
	if err := checkModelName(req.Name, req.Version); err != nil {
		return nil, err
	}
	var resp *oip.ModelMetadataResponse
	err := g.s.door(ctx, http.MethodGet, modelPath(req.Name, req.Version), func(ctx context.Context) error {
		v, err := g.s.lookupModel(req.Name, req.Version)
		if err != nil {
			return g.s.grpcError(ctx, nil, err)
		}
		versions := g.s.models[v.spec.Name].order
		if req.Version != "" {
			versions = []string{v.version}
		}
		resp = &oip.ModelMetadataResponse{Name: v.spec.Name, Versions: versions, Platform: "onnxruntime_onnx",
			Inputs: tensorMetadata(v.sess.inputs), Outputs: tensorMetadata(v.sess.outputs)}
		return nil
	})
	return resp, err
}

func tensorMetadata(infos []IOInfo) []*oip.ModelMetadataResponse_TensorMetadata {
	out := make([]*oip.ModelMetadataResponse_TensorMetadata, len(infos))
	for i, t := range infos {
		out[i] = &oip.ModelMetadataResponse_TensorMetadata{Name: t.Name, Datatype: string(t.Datatype), Shape: t.Shape}
	}
	return out
}

func (g *grpcService) ModelInfer(ctx context.Context, req *oip.ModelInferRequest) (*oip.ModelInferResponse, error) {
	if err := checkModelName(req.ModelName, req.ModelVersion); err != nil {
		return nil, err
	}
	var resp *oip.ModelInferResponse
	err := g.s.door(ctx, http.MethodPost, modelPath(req.ModelName, req.ModelVersion)+"/infer", func(ctx context.Context) error {
		var err error
		resp, err = g.s.inferGRPC(ctx, req)
		return err
	})
	return resp, err
}

// inferGRPC is handleInfer for a gRPC call: lookup, decode, answer (the
// path HTTP takes), counted in the same metrics under the HTTP status the
// outcome mirrors.
func (s *Server) inferGRPC(ctx context.Context, req *oip.ModelInferRequest) (*oip.ModelInferResponse, error) {
	start := time.Now()
	v, err := s.lookupModel(req.ModelName, req.ModelVersion)
	if err != nil {
		s.metrics.requests.WithLabelValues("", "", strconv.Itoa(statusOf(err))).Inc()
		return nil, s.grpcError(ctx, nil, err)
	}
	traceModel(ctx, v)
	_ = grpc.SetHeader(ctx, metadata.Pairs(mdModelVersion, v.version))
	var resp *InferResponse
	in, err := DecodeGRPCInferRequest(req)
	if err != nil {
		err = badRequest(err)
	} else {
		resp, err = s.answer(ctx, v, in)
	}
	s.metrics.requests.WithLabelValues(v.spec.Name, v.version, strconv.Itoa(statusOf(err))).Inc()
	if err != nil {
		return nil, s.grpcError(ctx, v, err)
	}
	s.metrics.duration.WithLabelValues(v.spec.Name, v.version).Observe(time.Since(start).Seconds())
	return EncodeGRPCInferResponse(resp), nil
}

// DecodeGRPCInferRequest reads a gRPC ModelInferRequest into the request
// the HTTP decoder makes, with the same checks: tensors from
// raw_input_contents (one entry per input, in order, in the binary
// extension's layout: numeric elements little-endian, BYTES elements each
// prefixed by a 4-byte little-endian length) or from each input's typed
// contents; the "timeout" parameter (int64, microseconds) as in HTTP.
func DecodeGRPCInferRequest(req *oip.ModelInferRequest) (*InferRequest, error) {
	if len(req.Inputs) == 0 {
		return nil, errors.New("request has no inputs")
	}
	raw := req.RawInputContents
	if len(raw) > 0 && len(raw) != len(req.Inputs) {
		return nil, fmt.Errorf("raw_input_contents has %d entries for %d inputs; give one per input, in the order of inputs", len(raw), len(req.Inputs))
	}
	out := &InferRequest{ID: req.Id}
	if p, ok := req.Parameters["timeout"]; ok {
		us, ok := p.GetParameterChoice().(*oip.InferParameter_Int64Param)
		if !ok || us.Int64Param < 0 {
			return nil, errors.New(`parameter "timeout" must be an int64 >= 0 microseconds`)
		}
		out.Timeout = time.Duration(us.Int64Param) * time.Microsecond
	}
	seen := make(map[string]bool, len(req.Inputs))
	for i, in := range req.Inputs {
		if in.Name == "" {
			return nil, fmt.Errorf("input %d has no name", i)
		}
		if seen[in.Name] {
			return nil, fmt.Errorf("input %q appears twice", in.Name)
		}
		seen[in.Name] = true
		t := &Tensor{Name: in.Name, Datatype: DataType(in.Datatype), Shape: in.Shape}
		if !t.Datatype.Valid() {
			return nil, fmt.Errorf("input %q: unsupported datatype %q", in.Name, in.Datatype)
		}
		if err := checkShape(in.Shape); err != nil {
			return nil, fmt.Errorf("input %q: %w", in.Name, err)
		}
		var err error
		switch {
		case raw != nil && in.Contents != nil:
			return nil, fmt.Errorf("input %q has contents but raw_input_contents is set; send every input one way", in.Name)
		case raw != nil:
			err = decodeRaw(t, raw[i])
		case in.Contents == nil:
			return nil, fmt.Errorf("input %q has no contents and raw_input_contents is empty", in.Name)
		default:
			err = decodeContents(t, in.Contents)
		}
		if err != nil {
			return nil, err
		}
		if err := t.Validate(); err != nil {
			return nil, err
		}
		out.Inputs = append(out.Inputs, t)
	}
	for _, o := range req.Outputs {
		if o.Name == "" {
			return nil, errors.New("a requested output has no name")
		}
		out.Outputs = append(out.Outputs, RequestedOutput{Name: o.Name, Binary: true})
	}
	return out, nil
}

// decodeRaw reads one raw_input_contents entry; a numeric one must hold
// exactly what the shape asks.
func decodeRaw(t *Tensor, b []byte) error {
	if size := t.Datatype.Size(); size > 0 {
		if want := Elements(t.Shape) * int64(size); int64(len(b)) != want {
			return fmt.Errorf("input %q: shape %v of %s needs %d bytes of raw_input_contents, got %d", t.Name, t.Shape, t.Datatype, want, len(b))
		}
	}
	return decodeBinary(t, b)
}

// decodeContents reads an input's typed contents: the field its datatype
// uses must hold every element, and no other field any.
func decodeContents(t *Tensor, c *oip.InferTensorContents) error {
	le := binary.LittleEndian
	var field string
	var got int
	ints := func(vals []int32, bits int) error {
		lo, hi := int64(-1)<<(bits-1), int64(1)<<(bits-1)-1
		t.Raw = make([]byte, 0, len(vals)*bits/8)
		for i, v := range vals {
			if int64(v) < lo || int64(v) > hi {
				return fmt.Errorf("input %q element %d: %s element %d is out of range", t.Name, i, t.Datatype, v)
			}
			t.Raw = appendInt(t.Raw, uint64(v), bits/8)
		}
		return nil
	}
	uints := func(vals []uint32, bits int) error {
		t.Raw = make([]byte, 0, len(vals)*bits/8)
		for i, v := range vals {
			if bits < 32 && v >= 1<<bits {
				return fmt.Errorf("input %q element %d: %s element %d is out of range", t.Name, i, t.Datatype, v)
			}
			t.Raw = appendInt(t.Raw, uint64(v), bits/8)
		}
		return nil
	}
	var err error
	switch t.Datatype {
	case BOOL:
		field, got = "bool_contents", len(c.BoolContents)
		t.Raw = make([]byte, got)
		for i, b := range c.BoolContents {
			if b {
				t.Raw[i] = 1
			}
		}
	case INT8, INT16, INT32:
		field, got = "int_contents", len(c.IntContents)
		err = ints(c.IntContents, t.Datatype.Size()*8)
	case INT64:
		field, got = "int64_contents", len(c.Int64Contents)
		t.Raw = make([]byte, 0, 8*got)
		for _, v := range c.Int64Contents {
			t.Raw = le.AppendUint64(t.Raw, uint64(v))
		}
	case UINT8, UINT16, UINT32:
		field, got = "uint_contents", len(c.UintContents)
		err = uints(c.UintContents, t.Datatype.Size()*8)
	case UINT64:
		field, got = "uint64_contents", len(c.Uint64Contents)
		t.Raw = make([]byte, 0, 8*got)
		for _, v := range c.Uint64Contents {
			t.Raw = le.AppendUint64(t.Raw, v)
		}
	case FP32:
		field, got = "fp32_contents", len(c.Fp32Contents)
		t.Raw = make([]byte, 0, 4*got)
		for _, v := range c.Fp32Contents {
			t.Raw = le.AppendUint32(t.Raw, math.Float32bits(v))
		}
	case FP64:
		field, got = "fp64_contents", len(c.Fp64Contents)
		t.Raw = make([]byte, 0, 8*got)
		for _, v := range c.Fp64Contents {
			t.Raw = le.AppendUint64(t.Raw, math.Float64bits(v))
		}
	case FP16:
		return fmt.Errorf("input %q is FP16, which the protocol carries only in raw_input_contents", t.Name)
	case BYTES:
		field, got = "bytes_contents", len(c.BytesContents)
		t.Strings = make([]string, got)
		for i, b := range c.BytesContents {
			t.Strings[i] = string(b)
		}
	}
	if err != nil {
		return err
	}
	all := len(c.BoolContents) + len(c.IntContents) + len(c.Int64Contents) + len(c.UintContents) +
		len(c.Uint64Contents) + len(c.Fp32Contents) + len(c.Fp64Contents) + len(c.BytesContents)
	if all != got {
		return fmt.Errorf("input %q is %s, whose elements go in %s, but other fields of its contents hold %d", t.Name, t.Datatype, field, all-got)
	}
	if n := Elements(t.Shape); int64(got) != n {
		return fmt.Errorf("input %q: shape %v holds %d elements but %s has %d", t.Name, t.Shape, n, field, got)
	}
	return nil
}

// EncodeGRPCInferResponse writes every output in raw_output_contents, in
// the layout raw_input_contents uses.
func EncodeGRPCInferResponse(r *InferResponse) *oip.ModelInferResponse {
	out := &oip.ModelInferResponse{
		ModelName: r.ModelName, ModelVersion: r.ModelVersion, Id: r.ID,
		Outputs:           make([]*oip.ModelInferResponse_InferOutputTensor, len(r.Outputs)),
		RawOutputContents: make([][]byte, len(r.Outputs)),
	}
	for i, t := range r.Outputs {
		out.Outputs[i] = &oip.ModelInferResponse_InferOutputTensor{Name: t.Name, Datatype: string(t.Datatype), Shape: t.Shape}
		out.RawOutputContents[i] = binaryBlob(t)
	}
	return out
}
