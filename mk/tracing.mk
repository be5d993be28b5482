# The OTLP receiver the tracing tests export to (internal/tracing): the
# OpenTelemetry Collector's own OTLP receiver component, pinned in
# tools/otelcol (a module of its own, so Meridian's go.mod stays free of
# the Collector), built from the Go module proxy into .cache/bin with a
# sink that writes the spans it receives as OTLP JSON lines. Tests find it
# with internal/tracing/otlptest.
OTELCOL_VERSION := v0.165.0
OTELCOL         := $(CACHE)/bin/otelcol-$(OTELCOL_VERSION)

.PHONY: otelcol
otelcol: $(OTELCOL) ## build the OTLP receiver for the tracing tests into .cache/bin (the Collector's otlpreceiver v0.165.0; about 3 min cold, skipped when built)

$(OTELCOL): tools/otelcol/go.mod tools/otelcol/go.sum tools/otelcol/main.go
	@mkdir -p $(@D)
	cd tools/otelcol && CGO_ENABLED=0 $(GO) build -trimpath -ldflags '-s -w' -o $(abspath $@).tmp .
	@mv $@.tmp $@

TEST_TOOLS += $(OTELCOL)
