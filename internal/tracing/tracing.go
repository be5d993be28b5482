// Package tracing is Meridian's OpenTelemetry tracing: one set of flags
// for every component (RegisterFlags), the tracer provider they configure
// (Setup: OTLP export over HTTP or gRPC, parent-based sampling, W3C
// traceparent propagation), the server span every hop opens (Handler),
// header injection for the requests a hop sends on (Inject), and a
// log/slog handler that stamps the active span's ids on each log line
// (LogHandler).
//
// Tracing is off unless an OTLP endpoint is configured, by --otlp-endpoint
// or by the standard OTEL_EXPORTER_OTLP_ENDPOINT (or
// OTEL_EXPORTER_OTLP_TRACES_ENDPOINT) environment variable. Off, the
// global tracer provider stays OpenTelemetry's no-op one, Handler returns
// its handler unwrapped and Tracer returns nil, so the hot paths pay one
// atomic load.
//
// A request is traced across the three hops as
//
//	glb.front (server) → glb.front.attempt (client, one per cluster tried)
//	  → agent.front (server)
//	    → serve.request (server) → serve.queue, serve.batch (internal)
//
// docs/observability.md#tracing lists the spans and their attributes.
package tracing

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"os"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/spf13/pflag"
	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracegrpc"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracehttp"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/sdk/resource"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/trace"

	"meridian.dev/meridian/internal/version"
)

// Scope is the instrumentation scope of Meridian's spans.
const Scope = "meridian.dev/meridian"

// Protocols of OTLP export, as OTEL_EXPORTER_OTLP_PROTOCOL names them.
const (
	ProtocolHTTP = "http/protobuf"
	ProtocolGRPC = "grpc"
)

// Environment variables honoured when the flags leave them unset.
const (
	EnvEndpoint       = "OTEL_EXPORTER_OTLP_ENDPOINT"
	EnvTracesEndpoint = "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT"
	EnvProtocol       = "OTEL_EXPORTER_OTLP_PROTOCOL"
	EnvTracesProtocol = "OTEL_EXPORTER_OTLP_TRACES_PROTOCOL"
	EnvServiceName    = "OTEL_SERVICE_NAME"
)

// Config is what the tracing flags set. The zero value is tracing off.
type Config struct {
	// Endpoint is the OTLP receiver: a URL (http://collector:4318,
	// https://…; for OTLP/HTTP a URL without a path gets /v1/traces) or
	// host:port (TLS unless Insecure). Empty: the environment's
	// OTEL_EXPORTER_OTLP_(TRACES_)ENDPOINT, else tracing is off.
	Endpoint string
	// Protocol is http/protobuf (default) or grpc; empty: the
	// environment's OTEL_EXPORTER_OTLP_(TRACES_)PROTOCOL, else
	// http/protobuf.
	Protocol string
	// Insecure exports without TLS to a host:port endpoint (a URL's
	// scheme says it itself).
	Insecure bool
	// SampleRatio is the share of new traces (requests that arrive
	// without a sampled parent) recorded, 0 to 1. A request whose caller
	// sampled it is always recorded, one whose caller did not never is
	// (parent-based), so a trace is whole or absent at every hop.
	SampleRatio float64
	// ServiceName is the service.name of the spans; empty: the
	// environment's OTEL_SERVICE_NAME, else the component's default.
	ServiceName string

	defaultService string
	fs             *pflag.FlagSet
}

// RegisterFlags registers the tracing flags on fs, service naming the
// component's spans unless --otlp-service-name or OTEL_SERVICE_NAME says
// otherwise (meridian-glb, meridian-agent, meridian-serve).
func RegisterFlags(fs *pflag.FlagSet, service string) *Config {
	c := &Config{defaultService: service, fs: fs}
	fs.StringVar(&c.Endpoint, "otlp-endpoint", "", "OTLP receiver to export traces to (OpenTelemetry Collector, Jaeger, Tempo): a URL such as http://127.0.0.1:4318, or host:port; empty: $"+EnvEndpoint+", else tracing is off")
	fs.StringVar(&c.Protocol, "otlp-protocol", "", "OTLP protocol: http/protobuf (port 4318) or grpc (port 4317); default $"+EnvProtocol+", else http/protobuf")
	fs.BoolVar(&c.Insecure, "otlp-insecure", false, "export without TLS to a host:port --otlp-endpoint (a URL's scheme says so itself)")
	fs.Float64Var(&c.SampleRatio, "trace-sample-ratio", 1, "share of new traces recorded, 0 to 1; requests whose caller sent a sampled traceparent are always recorded, unsampled ones never (parent-based)")
	fs.StringVar(&c.ServiceName, "otlp-service-name", "", "service.name of this process's spans; default $"+EnvServiceName+", else "+service)
	return c
}

// endpoint is the configured endpoint: the flag's, else the environment's.
func (c *Config) endpoint() string {
	if c.Endpoint != "" {
		return c.Endpoint
	}
	if e := os.Getenv(EnvTracesEndpoint); e != "" {
		return e
	}
	return os.Getenv(EnvEndpoint)
}

// EndpointInUse is the endpoint spans go to: the flag's, else the
// environment's ("" when off).
func (c *Config) EndpointInUse() string { return c.endpoint() }

// ProtocolInUse is the OTLP protocol spans go over.
func (c *Config) ProtocolInUse() string { return c.protocol() }

// Enabled reports whether an endpoint is configured, so traces are
// exported.
func (c *Config) Enabled() bool { return c != nil && c.endpoint() != "" }

func (c *Config) protocol() string {
	for _, p := range []string{c.Protocol, os.Getenv(EnvTracesProtocol), os.Getenv(EnvProtocol)} {
		if p != "" {
			return p
		}
	}
	return ProtocolHTTP
}

func (c *Config) service() string {
	switch {
	case c.ServiceName != "":
		return c.ServiceName
	case os.Getenv(EnvServiceName) != "":
		return os.Getenv(EnvServiceName)
	case c.defaultService != "":
		return c.defaultService
	}
	return "meridian"
}

// Validate checks the flags' values.
func (c *Config) Validate() error {
	if c == nil {
		return nil
	}
	if c.SampleRatio < 0 || c.SampleRatio > 1 {
		return fmt.Errorf("--trace-sample-ratio %v: give a share from 0 to 1", c.SampleRatio)
	}
	if p := c.protocol(); p != ProtocolHTTP && p != ProtocolGRPC {
		return fmt.Errorf("OTLP protocol %q: use %s or %s", p, ProtocolHTTP, ProtocolGRPC)
	}
	if e := c.Endpoint; e != "" && strings.Contains(e, "://") {
		u, err := url.Parse(e)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			return fmt.Errorf("--otlp-endpoint %q: give http://host:port, https://host:port or host:port", e)
		}
	}
	return nil
}

// ServeArgs are the flags that give a `meridian serve` replica this
// configuration (the agent's process runtime appends them to each
// replica's command line), less the service name, which stays the
// replica's own. Nil when the flags were left unset (a replica inherits
// the OTEL_* environment itself).
func (c *Config) ServeArgs() []string {
	if c == nil {
		return nil
	}
	var args []string
	if c.Endpoint != "" {
		args = append(args, "--otlp-endpoint", c.Endpoint)
	}
	if c.Protocol != "" {
		args = append(args, "--otlp-protocol", c.Protocol)
	}
	if c.Insecure {
		args = append(args, "--otlp-insecure")
	}
	if c.fs == nil || c.fs.Changed("trace-sample-ratio") || c.SampleRatio != 1 {
		args = append(args, "--trace-sample-ratio", strconv.FormatFloat(c.SampleRatio, 'g', -1, 64))
	}
	return args
}

// enabled is set while Setup's provider is the global one.
var enabled atomic.Bool

// propagator is W3C Trace Context (traceparent, tracestate) and Baggage.
var propagator = propagation.NewCompositeTextMapPropagator(propagation.TraceContext{}, propagation.Baggage{})

// Propagator is the propagator Meridian reads and writes headers with:
// W3C traceparent and tracestate, and baggage.
func Propagator() propagation.TextMapPropagator { return propagator }

// NewProvider returns a tracer provider exporting to c's endpoint in
// batches, sampling parent-based with c.SampleRatio for roots, its spans
// naming c's service. Shut it down to flush what it holds.
func NewProvider(ctx context.Context, c *Config) (*sdktrace.TracerProvider, error) {
	if err := c.Validate(); err != nil {
		return nil, err
	}
	if !c.Enabled() {
		return nil, errors.New("tracing: no OTLP endpoint (--otlp-endpoint or $" + EnvEndpoint + ")")
	}
	exp, err := newExporter(ctx, c)
	if err != nil {
		return nil, err
	}
	res, err := resource.Merge(resource.Default(), resource.NewSchemaless(
		attribute.String("service.name", c.service()),
		attribute.String("service.version", version.Version),
	))
	if err != nil {
		return nil, err
	}
	return sdktrace.NewTracerProvider(
		sdktrace.WithBatcher(exp, sdktrace.WithBatchTimeout(time.Second)),
		sdktrace.WithResource(res),
		sdktrace.WithSampler(sdktrace.ParentBased(sdktrace.TraceIDRatioBased(c.SampleRatio))),
	), nil
}

func newExporter(ctx context.Context, c *Config) (sdktrace.SpanExporter, error) {
	e := c.Endpoint // empty: the exporter reads the environment itself
	hasScheme := strings.Contains(e, "://")
	switch c.protocol() {
	case ProtocolGRPC:
		var opts []otlptracegrpc.Option
		switch {
		case hasScheme:
			opts = append(opts, otlptracegrpc.WithEndpointURL(e))
		case e != "":
			opts = append(opts, otlptracegrpc.WithEndpoint(e))
		}
		if c.Insecure {
			opts = append(opts, otlptracegrpc.WithInsecure())
		}
		return otlptracegrpc.New(ctx, opts...)
	default:
		var opts []otlptracehttp.Option
		switch {
		case hasScheme:
			if u, err := url.Parse(e); err == nil && (u.Path == "" || u.Path == "/") {
				u.Path = "/v1/traces"
				e = u.String()
			}
			opts = append(opts, otlptracehttp.WithEndpointURL(e))
		case e != "":
			opts = append(opts, otlptracehttp.WithEndpoint(e))
		}
		if c.Insecure {
			opts = append(opts, otlptracehttp.WithInsecure())
		}
		return otlptracehttp.New(ctx, opts...)
	}
}

// Setup makes c's provider the global one (and W3C Trace Context the
// global propagator) when c enables tracing, and returns the function
// that flushes and stops it at exit. Off, it changes nothing and its
// shutdown does nothing.
func Setup(ctx context.Context, c *Config) (shutdown func(context.Context) error, err error) {
	if err := c.Validate(); err != nil {
		return nil, err
	}
	if !c.Enabled() {
		return func(context.Context) error { return nil }, nil
	}
	tp, err := NewProvider(ctx, c)
	if err != nil {
		return nil, err
	}
	otel.SetTracerProvider(tp)
	otel.SetTextMapPropagator(propagator)
	enabled.Store(true)
	return func(ctx context.Context) error {
		enabled.Store(false)
		return tp.Shutdown(ctx)
	}, nil
}

// Tracer returns the tracer a component traces with: tp's when it is set,
// else the global provider's while Setup enabled it, else nil (tracing
// off: the caller skips its spans).
func Tracer(tp trace.TracerProvider) trace.Tracer {
	if tp != nil {
		return tp.Tracer(Scope)
	}
	if enabled.Load() {
		return otel.GetTracerProvider().Tracer(Scope)
	}
	return nil
}

// Inject writes ctx's span context into h as traceparent (and
// tracestate), replacing any the client sent, so the next hop continues
// this trace.
func Inject(ctx context.Context, h http.Header) {
	propagator.Inject(ctx, propagation.HeaderCarrier(h))
}

// Extract returns ctx with the remote span context that h's traceparent
// names, if any.
func Extract(ctx context.Context, h http.Header) context.Context {
	return propagator.Extract(ctx, propagation.HeaderCarrier(h))
}
