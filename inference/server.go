package inference

import (
	"context"
	"crypto/tls"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"go.opentelemetry.io/otel/trace"
	"google.golang.org/grpc"

	"meridian.dev/meridian/internal/auth"
	"meridian.dev/meridian/internal/httpserve"
	"meridian.dev/meridian/internal/metricsreg"
	"meridian.dev/meridian/internal/tracing"
	"meridian.dev/meridian/internal/version"
)

// Options configure a Server. The zero value of every field but
// ModelRepository is usable.
type Options struct {
	// ModelRepository is the directory laid out as ScanRepository expects.
	ModelRepository string
	// Device is the execution provider for every model: cpu (default) or
	// cuda.
	Device Device
	// CacheSize is the result cache's capacity in entries; 0 turns the
	// cache off.
	CacheSize int
	// CacheTTL is how long a cached result may be served; 0 turns the
	// cache off.
	CacheTTL time.Duration
	// RequestTimeout bounds every request, queueing included; a client
	// may ask for less with the "timeout" parameter. Default 10s.
	RequestTimeout time.Duration
	// MaxBodyBytes bounds request bodies; larger ones get 413. Bodies are
	// read as they arrive, never allocated at the length a client
	// announces. Default 64 MiB.
	MaxBodyBytes int64
	// MaxBufferedBodyBytes bounds the bytes of request bodies held in
	// memory at once, over every request; a body that would take the
	// server past it gets 503 + Retry-After. At least MaxBodyBytes.
	// Default 1 GiB.
	MaxBufferedBodyBytes int64
	// Limits bound every model's inputs, per request and per batch; zero
	// fields take DefaultInputLimits, and a model's config.yaml may
	// override them.
	Limits InputLimits
	// HTTP hardens the listener Serve runs (timeouts, header size,
	// connection and in-flight caps); zero fields take httpserve's
	// defaults, but WriteTimeout defaults to RequestTimeout + 20s so a
	// request that uses its whole deadline still gets its answer out.
	// Its Name, Registerer, Logger and Refuse are the server's own.
	HTTP httpserve.Options
	// TLS, when set, serves HTTPS only (internal/tlsx.ServerConfig: the
	// certificate reloaded from its files, mutual TLS when it asks).
	TLS *tls.Config
	// Auth authenticates requests and enforces tenant quotas and model
	// allow-lists (internal/auth); its zero value leaves the server open.
	Auth auth.Options
	// AnalyzeModel is the model behind POST /analyze; it needs a text
	// section in its config. Default "sentiment".
	AnalyzeModel string
	// OnlyVersions, when set, loads just the named version of each model
	// it lists (model name → version); other models load every version.
	// The agent runs each version of a model as its own replicas with it.
	OnlyVersions map[string]int64
	// Logger receives structured logs; default slog.Default().
	Logger *slog.Logger
	// Registry receives the server's metrics; default a new registry.
	Registry *prometheus.Registry
	// TracerProvider traces every inference request (a serve.request
	// server span continuing the caller's traceparent, with serve.queue
	// and serve.batch spans under it); nil: the global provider that
	// internal/tracing.Setup installs, else no tracing.
	TracerProvider trace.TracerProvider
}

// Server serves the models of one repository over HTTP.
type Server struct {
	opts     Options
	log      *slog.Logger
	models   map[string]*model
	cache    *resultCache
	metrics  *metrics
	bodies   *bodyBudget
	auth     *auth.Authenticator
	grpc     *grpc.Server // the same service over gRPC (grpc.go)
	draining atomic.Bool
}

// model is every loaded version of one model.
type model struct {
	name     string
	versions map[string]*modelVersion
	order    []string // ascending
	latest   *modelVersion
}

// New loads every model version in the repository into ONNX Runtime (which
// InitRuntime must have set up) and starts their workers.
func New(opts Options) (*Server, error) {
	if opts.Device == "" {
		opts.Device = CPU
	}
	if opts.Device != CPU && opts.Device != CUDA {
		return nil, fmt.Errorf("device %q is not supported; use cpu or cuda", opts.Device)
	}
	if opts.RequestTimeout <= 0 {
		opts.RequestTimeout = 10 * time.Second
	}
	if opts.MaxBodyBytes <= 0 {
		opts.MaxBodyBytes = 64 << 20
	}
	if opts.MaxBufferedBodyBytes <= 0 {
		opts.MaxBufferedBodyBytes = 1 << 30
	}
	if opts.MaxBufferedBodyBytes < opts.MaxBodyBytes {
		return nil, fmt.Errorf("--max-buffered-body-bytes %d is below --max-body-bytes %d: a body the server accepts could never be held", opts.MaxBufferedBodyBytes, opts.MaxBodyBytes)
	}
	if opts.AnalyzeModel == "" {
		opts.AnalyzeModel = "sentiment"
	}
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	if opts.Registry == nil {
		opts.Registry = prometheus.NewRegistry()
	}
	if opts.HTTP.WriteTimeout == 0 {
		opts.HTTP.WriteTimeout = opts.RequestTimeout + 20*time.Second
	}
	opts.HTTP.Name, opts.HTTP.Registerer, opts.HTTP.Logger, opts.HTTP.Refuse = "inference", opts.Registry, opts.Logger, writeError
	specs, err := ScanRepository(opts.ModelRepository)
	if err != nil {
		return nil, err
	}
	if specs, err = OnlyVersions(specs, opts.OnlyVersions); err != nil {
		return nil, fmt.Errorf("model repository %s: %w", opts.ModelRepository, err)
	}
	metrics, err := newMetrics(opts.Registry)
	if err != nil {
		return nil, err
	}
	s := &Server{
		opts:    opts,
		log:     opts.Logger,
		models:  make(map[string]*model),
		cache:   newResultCache(opts.CacheSize, opts.CacheTTL),
		metrics: metrics,
		bodies:  &bodyBudget{max: opts.MaxBufferedBodyBytes},
	}
	if err := metricsreg.Register(opts.Registry, "model server bodies", prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "meridian_inference_buffered_body_bytes",
		Help: "Bytes of request bodies held in memory now, against --max-buffered-body-bytes.",
	}, func() float64 { return float64(s.bodies.held.Load()) })); err != nil {
		return nil, err
	}
	if opts.Auth.ModelOf == nil {
		opts.Auth.ModelOf = auth.ModelFromPath(map[string]string{"/analyze": opts.AnalyzeModel})
	}
	if s.auth, err = auth.New(opts.Auth, opts.Registry, opts.Logger); err != nil {
		return nil, err
	}
	if s.cache != nil {
		err := metricsreg.Register(opts.Registry, "model server cache", prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "meridian_inference_cache_entries",
			Help: "Results held in the result cache.",
		}, func() float64 { return float64(s.cache.len()) }))
		if err != nil {
			return nil, err
		}
	}
	for _, spec := range specs {
		start := time.Now()
		limits := DefaultInputLimits.over(opts.Limits).over(spec.Config.Limits)
		if err := limits.validate(); err != nil {
			s.Close()
			return nil, fmt.Errorf("model %s: %w (the server's --max-* flags, or limits: in its config.yaml)", spec.Name, err)
		}
		sess, err := openSession(spec, opts.Device)
		if err != nil {
			s.Close()
			return nil, fmt.Errorf("model %s version %d: %w", spec.Name, spec.Version, err)
		}
		v := newModelVersion(spec, sess, limits, s.metrics, s.log)
		if err := s.metrics.registerQueue(opts.Registry, v); err != nil {
			s.Close()
			return nil, err
		}
		m := s.models[spec.Name]
		if m == nil {
			m = &model{name: spec.Name, versions: make(map[string]*modelVersion)}
			s.models[spec.Name] = m
		}
		m.versions[v.version] = v
		m.order = append(m.order, v.version)
		m.latest = v // specs are in ascending version order
		s.log.Info("model loaded", "model", spec.Name, "version", spec.Version, "device", opts.Device,
			"inputs", sess.inputs, "outputs", sess.outputs, "max_batch_size", spec.Config.MaxBatchSize,
			"took", time.Since(start).Round(time.Millisecond))
	}
	s.grpc = s.newGRPC()
	if m := s.models[opts.AnalyzeModel]; m == nil || m.latest.spec.Config.Text == nil {
		s.log.Warn("POST /analyze is off: its model is not loaded or has no text section", "model", opts.AnalyzeModel)
	}
	return s, nil
}

// Close stops every model's workers after they finish what is queued.
func (s *Server) Close() {
	if s.auth != nil {
		s.auth.Close()
	}
	if s.grpc != nil {
		s.grpc.Stop()
	}
	for _, m := range s.models {
		for _, v := range m.versions {
			v.stop()
			_ = v.sess.ort.Destroy()
		}
	}
}

// Serve answers on ln, hardened as Options.HTTP says, until ctx is done,
// then turns readiness off, waits up to drain for in-flight requests to
// finish, and stops the workers.
func (s *Server) Serve(ctx context.Context, ln net.Listener, drain time.Duration) error {
	hs, err := httpserve.New(s.Handler(), s.opts.HTTP)
	if err != nil {
		s.Close()
		return err
	}
	defer s.Close()
	// gRPC shares the port: httpserve's servers speak HTTP/2 by ALPN
	// under TLS, else by prior knowledge (h2c), as gRPC clients do.
	hs.TLSConfig = s.opts.TLS
	served := make(chan error, 1)
	go func() { served <- httpserve.Serve(ctx, hs, ln, drain) }()
	select {
	case err := <-served:
		return err
	case <-ctx.Done():
	}
	s.draining.Store(true)
	s.log.Info("draining in-flight requests", "timeout", drain)
	return <-served
}

// Handler routes the Open Inference Protocol v2, /analyze and /metrics;
// requests whose Content-Type is application/grpc go to the gRPC Open
// Inference Protocol (grpc.go), everything else to the HTTP routes.
func (s *Server) Handler() http.Handler {
	return s.withGRPC(s.httpHandler())
}

// httpHandler routes the HTTP requests.
func (s *Server) httpHandler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /v2/health/live", func(w http.ResponseWriter, _ *http.Request) {
		writeJSON(w, http.StatusOK, map[string]bool{"live": true})
	})
	mux.HandleFunc("GET /v2/health/ready", s.handleReady)
	mux.HandleFunc("GET /v2", func(w http.ResponseWriter, _ *http.Request) {
		writeJSON(w, http.StatusOK, map[string]any{"name": "meridian", "version": version.Version,
			"extensions": serverExtensions})
	})
	mux.HandleFunc("POST /v2/repository/index", s.handleIndex)
	mux.HandleFunc("GET /v2/models/{model}", s.handleMetadata)
	mux.HandleFunc("GET /v2/models/{model}/versions/{version}", s.handleMetadata)
	mux.HandleFunc("GET /v2/models/{model}/ready", s.handleModelReady)
	mux.HandleFunc("GET /v2/models/{model}/versions/{version}/ready", s.handleModelReady)
	mux.HandleFunc("POST /v2/models/{model}/infer", s.handleInfer)
	mux.HandleFunc("POST /v2/models/{model}/versions/{version}/infer", s.handleInfer)
	mux.HandleFunc("POST /analyze", s.handleAnalyze)
	mux.Handle("GET /metrics", promhttp.HandlerFor(s.opts.Registry, promhttp.HandlerOpts{}))
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		writeError(w, http.StatusNotFound, fmt.Sprintf("no route for %s %s; see docs/inference.md", r.Method, r.URL.Path))
	})
	return tracing.Handler(s.opts.TracerProvider, "serve.request", s.auth.Wrap(mux))
}

// Ready reports whether every model is loaded and can take requests now.
func (s *Server) Ready() bool {
	if s.draining.Load() {
		return false
	}
	for _, m := range s.models {
		for _, v := range m.versions {
			if v.saturated() {
				return false
			}
		}
	}
	return true
}

func (s *Server) handleReady(w http.ResponseWriter, _ *http.Request) {
	code := http.StatusOK
	if !s.Ready() {
		code = http.StatusServiceUnavailable
	}
	writeJSON(w, code, map[string]bool{"ready": code == http.StatusOK})
}

// lookup finds the version named in the path, or the model's newest.
func (s *Server) lookup(r *http.Request) (*modelVersion, error) {
	return s.lookupModel(r.PathValue("model"), r.PathValue("version"))
}

// lookupModel finds version ver of model name, or its newest when ver is
// empty; HTTP and gRPC alike.
func (s *Server) lookupModel(name, ver string) (*modelVersion, error) {
	m := s.models[name]
	if m == nil {
		return nil, &requestError{http.StatusNotFound, fmt.Errorf("unknown model %q", name)}
	}
	if ver == "" {
		return m.latest, nil
	}
	v := m.versions[ver]
	if v == nil {
		return nil, &requestError{http.StatusNotFound, fmt.Errorf("model %q has no version %q; it has %v", name, ver, m.order)}
	}
	return v, nil
}

func (s *Server) handleMetadata(w http.ResponseWriter, r *http.Request) {
	v, err := s.lookup(r)
	if err != nil {
		writeErr(w, err)
		return
	}
	versions := s.models[v.spec.Name].order
	if r.PathValue("version") != "" {
		versions = []string{v.version}
	}
	writeJSON(w, http.StatusOK, map[string]any{
		"name": v.spec.Name, "versions": versions, "platform": "onnxruntime_onnx",
		"inputs": v.sess.inputs, "outputs": v.sess.outputs,
		"device": v.sess.device, "max_batch_size": v.spec.Config.MaxBatchSize,
	})
}

func (s *Server) handleModelReady(w http.ResponseWriter, r *http.Request) {
	v, err := s.lookup(r)
	if err != nil {
		writeErr(w, err)
		return
	}
	ready := !s.draining.Load() && !v.saturated()
	code := http.StatusOK
	if !ready {
		code = http.StatusServiceUnavailable
	}
	writeJSON(w, code, map[string]any{"name": v.spec.Name, "version": v.version, "ready": ready})
}

func (s *Server) handleIndex(w http.ResponseWriter, _ *http.Request) {
	type entry struct {
		Name    string `json:"name"`
		Version string `json:"version"`
		State   string `json:"state"`
	}
	var out []entry
	for _, m := range s.models {
		for _, ver := range m.order {
			out = append(out, entry{m.name, ver, "READY"})
		}
	}
	writeJSON(w, http.StatusOK, out)
}

func (s *Server) handleInfer(w http.ResponseWriter, r *http.Request) {
	start := time.Now()
	v, err := s.lookup(r)
	if err != nil {
		s.metrics.requests.WithLabelValues("", "", strconv.Itoa(statusOf(err))).Inc()
		writeErr(w, err)
		return
	}
	traceModel(r.Context(), v)
	w.Header().Set(HeaderModelVersion, v.version)
	resp, err := s.infer(w, r, v)
	code := statusOf(err)
	s.metrics.requests.WithLabelValues(v.spec.Name, v.version, strconv.Itoa(code)).Inc()
	if err != nil {
		s.reject(w, r, v, err)
		return
	}
	s.metrics.duration.WithLabelValues(v.spec.Name, v.version).Observe(time.Since(start).Seconds())
	body, header := EncodeInferResponse(resp)
	if header >= 0 {
		w.Header().Set(HeaderLength, strconv.Itoa(header))
		w.Header().Set("Content-Type", "application/octet-stream")
	} else {
		w.Header().Set("Content-Type", "application/json")
	}
	w.Header().Set("Content-Length", strconv.Itoa(len(body)))
	_, _ = w.Write(body)
}

func (s *Server) infer(w http.ResponseWriter, r *http.Request, v *modelVersion) (*InferResponse, error) {
	body, release, err := s.readBody(w, r)
	defer release()
	if err != nil {
		return nil, err
	}
	headerLength := int64(-1)
	if h := r.Header.Get(HeaderLength); h != "" {
		if headerLength, err = strconv.ParseInt(h, 10, 64); err != nil || headerLength < 0 {
			return nil, badRequest(fmt.Errorf("%s %q is not a byte count", HeaderLength, h))
		}
	}
	req, err := DecodeInferRequest(body, headerLength)
	if err != nil {
		return nil, badRequest(err)
	}
	return s.answer(r.Context(), v, req)
}

// answer runs a decoded infer request on a model version, for HTTP and
// gRPC alike: the outputs asked for are checked first, then the request
// goes through the cache and the queue (run), and the answer holds the
// outputs asked for, in the order asked, or all of them.
func (s *Server) answer(ctx context.Context, v *modelVersion, req *InferRequest) (*InferResponse, error) {
	// Check the requested outputs before spending a model run.
	index := make(map[string]int, len(v.sess.outputs))
	for i, o := range v.sess.outputs {
		index[o.Name] = i
	}
	for _, o := range req.Outputs {
		if _, ok := index[o.Name]; !ok {
			return nil, badRequest(fmt.Errorf("the model has no output %q; it has %v", o.Name, names(v.sess.outputs)))
		}
	}
	outputs, err := s.run(ctx, v, req.Inputs, req.Timeout)
	if err != nil {
		return nil, err
	}
	resp := &InferResponse{ModelName: v.spec.Name, ModelVersion: v.version, ID: req.ID}
	if len(req.Outputs) == 0 {
		resp.Outputs = outputs
		if req.BinaryOutputs {
			resp.Binary = make([]bool, len(outputs))
			for i := range resp.Binary {
				resp.Binary[i] = true
			}
		}
		return resp, nil
	}
	for _, o := range req.Outputs {
		resp.Outputs = append(resp.Outputs, outputs[index[o.Name]])
		resp.Binary = append(resp.Binary, o.Binary)
	}
	return resp, nil
}

// run answers one request on a model version: from the cache when it can,
// else through the queue, within the request's deadline.
func (s *Server) run(ctx context.Context, v *modelVersion, inputs []*Tensor, timeout time.Duration) ([]*Tensor, error) {
	j, err := v.prepare(inputs)
	var re *requestError
	if err != nil && !errors.As(err, &re) {
		err = badRequest(err)
	}
	if err != nil {
		return nil, err
	}
	cacheable := s.cache != nil && !v.spec.Config.NoCache
	var key [32]byte
	if cacheable {
		key = cacheKey(v.spec.Digest, j.inputs)
		if out, ok := s.cache.get(key); ok {
			s.metrics.cacheHits.WithLabelValues(v.spec.Name, v.version).Inc()
			return out, nil
		}
		s.metrics.cacheMisses.WithLabelValues(v.spec.Name, v.version).Inc()
	}
	if timeout <= 0 || timeout > s.opts.RequestTimeout {
		timeout = s.opts.RequestTimeout
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	j.ctx = ctx
	inflight := s.metrics.inflight.WithLabelValues(v.spec.Name, v.version)
	inflight.Inc()
	defer inflight.Dec()
	if err := v.submit(j); err != nil {
		return nil, err
	}
	select {
	case res := <-j.done:
		if res.err == nil && cacheable {
			s.cache.add(key, res.outputs)
		}
		return res.outputs, res.err
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

// traceModel names the model version on the request's span, if traced.
func traceModel(ctx context.Context, v *modelVersion) {
	if span := trace.SpanFromContext(ctx); span.IsRecording() {
		span.SetAttributes(tracing.AttrModel.String(v.spec.Name), tracing.AttrModelVersion.String(v.version))
	}
}

// reject writes the error for a request that got no answer, with
// Retry-After on 429, and logs failures that are the server's own (with
// the request's trace id, when traced).
func (s *Server) reject(w http.ResponseWriter, r *http.Request, v *modelVersion, err error) {
	code := statusOf(err)
	switch code {
	case http.StatusTooManyRequests, http.StatusServiceUnavailable:
		w.Header().Set("Retry-After", "1")
	case http.StatusInternalServerError:
		s.log.ErrorContext(r.Context(), "inference failed", "model", v.spec.Name, "version", v.version, "err", err)
	case statusClientClosed:
		return // nobody is listening
	}
	if errors.Is(err, context.DeadlineExceeded) {
		err = errors.New("the request's deadline passed before the model answered")
	}
	writeError(w, code, err.Error())
}

type analyzeRequest struct {
	Text *string `json:"text"`
}

type analyzeResponse struct {
	Label string  `json:"label"`
	Score float64 `json:"score"`
}

func (s *Server) handleAnalyze(w http.ResponseWriter, r *http.Request) {
	start := time.Now()
	m := s.models[s.opts.AnalyzeModel]
	if m == nil || m.latest.spec.Config.Text == nil {
		writeError(w, http.StatusNotFound, fmt.Sprintf("POST /analyze needs model %q with a text section in its config.yaml", s.opts.AnalyzeModel))
		return
	}
	v := m.latest
	traceModel(r.Context(), v)
	w.Header().Set(HeaderModelVersion, v.version)
	resp, err := s.analyze(w, r, v)
	s.metrics.requests.WithLabelValues(v.spec.Name, v.version, strconv.Itoa(statusOf(err))).Inc()
	if err != nil {
		s.reject(w, r, v, err)
		return
	}
	s.metrics.duration.WithLabelValues(v.spec.Name, v.version).Observe(time.Since(start).Seconds())
	w.Header().Set(HeaderPrediction, resp.Label)
	writeJSON(w, http.StatusOK, resp)
}

func (s *Server) analyze(w http.ResponseWriter, r *http.Request, v *modelVersion) (*analyzeResponse, error) {
	body, release, err := s.readBody(w, r)
	defer release()
	if err != nil {
		return nil, err
	}
	var req analyzeRequest
	if err := json.Unmarshal(body, &req); err != nil {
		return nil, badRequest(fmt.Errorf(`body must be {"text": "..."}: %w`, err))
	}
	if req.Text == nil {
		return nil, badRequest(errors.New(`body must be {"text": "..."}`))
	}
	if strings.TrimSpace(*req.Text) == "" {
		return nil, badRequest(errors.New("text is empty"))
	}
	tokens := Tokenize(*req.Text)
	if len(tokens) == 0 {
		tokens = []string{""} // punctuation only: no word, so no sentiment
	}
	cfg := v.spec.Config.Text
	in := &Tensor{Name: cfg.Input, Datatype: BYTES, Shape: []int64{1, int64(len(tokens))}, Strings: tokens}
	outputs, err := s.run(r.Context(), v, []*Tensor{in}, 0)
	if err != nil {
		return nil, err
	}
	p, okP := scalarOutput(v, outputs, cfg.Output)
	score, okS := scalarOutput(v, outputs, cfg.Score)
	if !okP {
		return nil, fmt.Errorf("model %s has no FP32 output %q for /analyze", v.spec.Name, cfg.Output)
	}
	lbl, conf := label(p, score, okS)
	return &analyzeResponse{Label: lbl, Score: conf}, nil
}

func scalarOutput(v *modelVersion, outputs []*Tensor, name string) (float64, bool) {
	for i, o := range v.sess.outputs {
		if o.Name == name && outputs[i].Datatype == FP32 && len(outputs[i].Raw) >= 4 {
			return float64(math.Float32frombits(binary.LittleEndian.Uint32(outputs[i].Raw))), true
		}
	}
	return 0, false
}
