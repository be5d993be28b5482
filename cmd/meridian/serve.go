package main

import (
	"fmt"
	"net"
	"os/signal"
	"syscall"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"meridian.dev/meridian/inference"
	"meridian.dev/meridian/internal/httpserve"
	"meridian.dev/meridian/internal/tlsx"
	"meridian.dev/meridian/internal/tracing"
	"meridian.dev/meridian/internal/version"
)

func serveCommand() *cobra.Command {
	var (
		listen, models, ortLib, device, analyze string
		opts                                    inference.Options
		drain                                   time.Duration
		logs                                    logFlags
		tlsFlags                                tlsx.ServerFlags
	)
	var traceCfg *tracing.Config
	cmd := &cobra.Command{
		Use:   "serve",
		Short: "Serve the ONNX models of a model repository over HTTP (Open Inference Protocol v2)",
		Long: `serve loads every model version in the model repository into ONNX Runtime
and answers the Open Inference Protocol v2 (KServe/Triton, JSON and binary
tensors), POST /analyze for sentiment, and GET /metrics for Prometheus.

Requests are batched dynamically per model, wait in a bounded queue with a
deadline, and are shed with 429 + Retry-After when the queue is full.
The listener is hardened against slow and greedy clients (header, body and
write deadlines, header-size, connection and in-flight caps), and every
model's inputs are bounded per request and per batch (413 beyond).
SIGINT/SIGTERM turn readiness off and drain in-flight requests.

Run from a Meridian checkout after 'make', it needs no flag: the bundled
models and the ONNX Runtime library are found where 'make deps' puts them.
docs/inference.md documents the API, the repository layout and every metric.`,
		Example: `  meridian serve
  curl -s localhost:8000/analyze -d '{"text":"I love this, it is amazing"}'
  meridian serve --listen :8000 --models /srv/models --device cuda --log-format json`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			log, err := logs.logger()
			if err != nil {
				return err
			}
			stopTracing, err := startTracing(cmd.Context(), traceCfg, log)
			if err != nil {
				return err
			}
			defer stopTracing()
			lib, err := inference.FindLibrary(ortLib)
			if err != nil {
				return err
			}
			if err := inference.InitRuntime(lib); err != nil {
				return err
			}
			if opts.ModelRepository, err = inference.FindRepository(models); err != nil {
				return err
			}
			opts.Device, opts.AnalyzeModel, opts.Logger = inference.Device(device), analyze, log
			log.Info("starting", "version", version.String(), "onnxruntime", lib, "models", opts.ModelRepository)
			ctx, stop := signal.NotifyContext(cmd.Context(), syscall.SIGINT, syscall.SIGTERM)
			defer stop()
			opts.Registry = prometheus.NewRegistry()
			tm, err := tlsx.NewMetrics(opts.Registry)
			if err != nil {
				return err
			}
			if opts.TLS, err = tlsFlags.Config(ctx, tlsx.ReloaderOptions{Name: "serve", Logger: log, Metrics: tm}); err != nil {
				return err
			}
			srv, err := inference.New(opts)
			if err != nil {
				return err
			}
			ln, err := net.Listen("tcp", listen)
			if err != nil {
				srv.Close()
				return fmt.Errorf("listening on %s: %w (is another server on that port? pick one with --listen)", listen, err)
			}
			log.Info("serving", "addr", ln.Addr().String(), "tls", opts.TLS != nil, "auth", opts.Auth.Enabled())
			err = srv.Serve(ctx, ln, drain)
			log.Info("stopped")
			return err
		},
	}
	fs := cmd.Flags()
	fs.StringVar(&listen, "listen", "127.0.0.1:8000", "address to serve HTTP on; use :8000 to accept connections from other hosts")
	fs.StringVar(&models, "models", "", "model repository: <model>/config.yaml and <model>/<version>/model.onnx (default ./models, else the models directory of the checkout holding the binary)")
	fs.StringVar(&ortLib, "ort-lib", "", "path of libonnxruntime.so 1.24.x (default $"+inference.LibraryEnv+", else .cache/onnxruntime/libonnxruntime.so.1 as fetched by 'make deps')")
	fs.StringVar(&device, "device", "cpu", "execution provider for every model: cpu, or cuda (fails at start-up with the reason if CUDA is not usable)")
	fs.StringVar(&analyze, "analyze-model", "sentiment", "model behind POST /analyze; its config.yaml needs a text section")
	fs.StringToInt64Var(&opts.OnlyVersions, "only-version", nil, "MODEL=VERSION: load only that version of the model (repeatable, or comma-separated); requests without a version get it. The agent runs each version of a model as its own replicas this way")
	fs.IntVar(&opts.CacheSize, "cache-size", 10000, "result cache capacity in entries (least recently used are evicted); 0 turns the cache off")
	fs.DurationVar(&opts.CacheTTL, "cache-ttl", time.Minute, "how long a cached result may be served; 0 turns the cache off")
	fs.DurationVar(&opts.RequestTimeout, "request-timeout", 10*time.Second, "deadline for every request, queueing included; clients may ask for less with the \"timeout\" parameter (µs); expired requests are dropped before they reach the model")
	fs.Int64Var(&opts.MaxBodyBytes, "max-body-bytes", 64<<20, "largest request body accepted; larger ones get 413")
	fs.Int64Var(&opts.MaxBufferedBodyBytes, "max-buffered-body-bytes", 1<<30, "most bytes of request bodies held in memory at once, over every request; a body past it gets 503 + Retry-After (at least --max-body-bytes)")
	fs.DurationVar(&drain, "drain-timeout", 30*time.Second, "on SIGTERM, how long to wait for in-flight requests before exiting")
	listenerFlags(fs, &opts.HTTP)
	inputLimitFlags(fs, &opts.Limits)
	tlsFlags.Register(fs, "tls", "the model server's listener")
	opts.Auth.RegisterFlags(fs, "")
	traceCfg = tracing.RegisterFlags(fs, "meridian-serve")
	logs.register(fs)
	return cmd
}

// listenerFlags are the model server's listener limits (internal/httpserve).
func listenerFlags(fs *pflag.FlagSet, o *httpserve.Options) {
	fs.DurationVar(&o.ReadHeaderTimeout, "read-header-timeout", httpserve.DefaultReadHeaderTimeout, "deadline for a request's line and headers, from its first byte (slowloris)")
	fs.DurationVar(&o.BodyTimeout, "body-timeout", httpserve.DefaultBodyTimeout, "deadline for a request's body after its headers, extended by --min-body-rate; a body late past it gets 408")
	fs.Int64Var(&o.MinBodyRate, "min-body-rate", httpserve.DefaultMinBodyRate, "bytes per second of body that each buy another second of --body-timeout, so uploads at least this fast are never cut off; negative: --body-timeout is fixed")
	fs.DurationVar(&o.WriteTimeout, "write-timeout", 0, "deadline for writing an answer, from the end of the request; 0: --request-timeout + 20s")
	fs.DurationVar(&o.IdleTimeout, "idle-timeout", httpserve.DefaultIdleTimeout, "close keep-alive connections idle this long (above the 90s of the agent's and balancer's connection pools)")
	fs.IntVar(&o.MaxHeaderBytes, "max-header-bytes", httpserve.DefaultMaxHeaderBytes, "largest request line and headers; larger ones get 431")
	fs.IntVar(&o.MaxConns, "max-connections", httpserve.DefaultMaxConns, "most connections open at once; one over is closed as soon as it is accepted")
	fs.IntVar(&o.MaxInFlight, "max-in-flight", httpserve.DefaultMaxInFlight, "most requests being handled at once (bodies being read included); one over gets 503 + Retry-After")
}

// inputLimitFlags are every model's input limits; a model's config.yaml
// may override them under limits:.
func inputLimitFlags(fs *pflag.FlagSet, l *inference.InputLimits) {
	d := inference.DefaultInputLimits
	fs.Int64Var(&l.MaxDim, "max-input-dim", d.MaxDim, "largest size of any dimension of any input, padded ones included; beyond it 413")
	fs.Int64Var(&l.MaxRequestElements, "max-request-elements", d.MaxRequestElements, "most elements of one request's inputs together; beyond it 413")
	fs.Int64Var(&l.MaxRequestBytes, "max-request-bytes", d.MaxRequestBytes, "most bytes of one request's inputs together (BYTES elements at their length); beyond it 413")
	fs.Int64Var(&l.MaxBatchElements, "max-batch-elements", d.MaxBatchElements, "most elements of one batch's inputs, padding included; a request that would exceed it waits for the next batch")
	fs.Int64Var(&l.MaxBatchBytes, "max-batch-bytes", d.MaxBatchBytes, "most bytes of one batch's inputs, padding included; a request that would exceed it waits for the next batch")
}
