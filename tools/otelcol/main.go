// Command otelcol is the OTLP receiver Meridian's tracing tests export to:
// the OpenTelemetry Collector's own OTLP receiver component
// (go.opentelemetry.io/collector/receiver/otlpreceiver, pinned in this
// module's go.mod), the one a full Collector runs, wired to a sink that
// writes every batch of spans it receives as one line of OTLP JSON (the
// Collector's ptrace.JSONMarshaler, as its file exporter writes). `make
// otelcol` builds it into .cache/bin; internal/testbin.OtelCol finds it.
//
//	otelcol --http 127.0.0.1:4318 --grpc 127.0.0.1:4317 --out spans.jsonl
//
// It prints "ready" on stderr once both listeners accept, and runs until
// SIGINT or SIGTERM.
package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"sync"
	"syscall"

	"go.opentelemetry.io/collector/component"
	"go.opentelemetry.io/collector/component/componenttest"
	"go.opentelemetry.io/collector/config/configgrpc"
	"go.opentelemetry.io/collector/config/configoptional"
	"go.opentelemetry.io/collector/consumer"
	"go.opentelemetry.io/collector/pdata/ptrace"
	"go.opentelemetry.io/collector/receiver/otlpreceiver"
	"go.opentelemetry.io/collector/receiver/receivertest"
)

func main() {
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "otelcol:", err)
		os.Exit(1)
	}
}

func run() error {
	httpAddr := flag.String("http", "", "OTLP/HTTP listen address (host:port); empty: off")
	grpcAddr := flag.String("grpc", "", "OTLP/gRPC listen address (host:port); empty: off")
	outPath := flag.String("out", "-", "file the received spans are appended to, one OTLP JSON document a line; - for stdout")
	flag.Parse()
	if *httpAddr == "" && *grpcAddr == "" {
		return fmt.Errorf("give --http, --grpc or both")
	}
	var out io.Writer = os.Stdout
	if *outPath != "-" {
		f, err := os.OpenFile(*outPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
		if err != nil {
			return err
		}
		defer func() { _ = f.Close() }()
		out = f
	}
	sink := &jsonSink{w: out}
	next, err := consumer.NewTraces(sink.consume)
	if err != nil {
		return err
	}

	factory := otlpreceiver.NewFactory()
	cfg := factory.CreateDefaultConfig().(*otlpreceiver.Config)
	if *grpcAddr != "" {
		g := cfg.Protocols.GRPC.GetOrInsertDefault()
		g.NetAddr.Endpoint = *grpcAddr
		cfg.Protocols.GRPC = configoptional.Some(*g)
	} else {
		cfg.Protocols.GRPC = configoptional.None[configgrpc.ServerConfig]()
	}
	if *httpAddr != "" {
		h := cfg.Protocols.HTTP.GetOrInsertDefault()
		h.ServerConfig.NetAddr.Endpoint = *httpAddr
		cfg.Protocols.HTTP = configoptional.Some(*h)
	} else {
		cfg.Protocols.HTTP = configoptional.None[otlpreceiver.HTTPConfig]()
	}
	if err := cfg.Protocols.Validate(); err != nil {
		return err
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	set := receivertest.NewNopSettings(component.MustNewType("otlp"))
	rcv, err := factory.CreateTraces(ctx, set, cfg, next)
	if err != nil {
		return err
	}
	if err := rcv.Start(ctx, componenttest.NewNopHost()); err != nil {
		return err
	}
	fmt.Fprintf(os.Stderr, "ready http=%s grpc=%s\n", *httpAddr, *grpcAddr)
	<-ctx.Done()
	return rcv.Shutdown(context.Background())
}

// jsonSink writes each batch of spans as one line of OTLP JSON.
type jsonSink struct {
	mu sync.Mutex
	w  io.Writer
	m  ptrace.JSONMarshaler
}

func (s *jsonSink) consume(_ context.Context, td ptrace.Traces) error {
	b, err := s.m.MarshalTraces(td)
	if err != nil {
		return err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	_, err = s.w.Write(append(b, '\n'))
	return err
}
