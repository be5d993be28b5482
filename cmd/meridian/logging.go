package main

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"time"

	"github.com/go-logr/logr"
	"github.com/spf13/pflag"
	ctrl "sigs.k8s.io/controller-runtime"

	"meridian.dev/meridian/internal/tracing"
)

// logFlags are the logging flags every long-running subcommand shares.
type logFlags struct {
	format string
	level  string
}

func (l *logFlags) register(fs *pflag.FlagSet) { l.registerLevel(fs, "info") }

// registerLevel registers the flags with another default level (commands
// that print their own progress log only warnings by default).
func (l *logFlags) registerLevel(fs *pflag.FlagSet, level string) {
	fs.StringVar(&l.format, "log-format", "text", "log format: text (key=value, for people) or json (for log pipelines)")
	fs.StringVar(&l.level, "log-level", level, "least severe level logged: debug, info, warn or error")
}

// logger builds the slog logger the flags describe and makes it the default.
func (l *logFlags) logger() (*slog.Logger, error) {
	var level slog.Level
	if err := level.UnmarshalText([]byte(l.level)); err != nil {
		return nil, fmt.Errorf("--log-level %q: use debug, info, warn or error", l.level)
	}
	opts := &slog.HandlerOptions{Level: level}
	var h slog.Handler
	switch l.format {
	case "text":
		h = slog.NewTextHandler(os.Stderr, opts)
	case "json":
		h = slog.NewJSONHandler(os.Stderr, opts)
	default:
		return nil, fmt.Errorf("--log-format %q: use text or json", l.format)
	}
	// Lines logged with a traced request's context carry its trace_id
	// and span_id.
	h = tracing.LogHandler(h)
	log := slog.New(h)
	slog.SetDefault(log)
	// controller-runtime's own logs (envtest, managers) go the same way.
	ctrl.SetLogger(logr.FromSlogHandler(h))
	return log, nil
}

// startTracing installs the tracer provider the tracing flags (or the
// OTEL_* environment) configure, and returns what flushes it at exit.
// With no OTLP endpoint tracing stays off and it does nothing.
func startTracing(ctx context.Context, c *tracing.Config, log *slog.Logger) (stop func(), err error) {
	shutdown, err := tracing.Setup(ctx, c)
	if err != nil {
		return nil, err
	}
	if !c.Enabled() {
		return func() {}, nil
	}
	log.Info("tracing on: exporting spans over OTLP", "endpoint", c.EndpointInUse(), "protocol", c.ProtocolInUse(), "sample_ratio", c.SampleRatio)
	return func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if err := shutdown(ctx); err != nil {
			log.Warn("tracing: flushing spans at exit failed", "err", err)
		}
	}, nil
}
