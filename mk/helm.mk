# Helm, built from the Go module proxy (tools/helm pins it), for the chart's
# tests (charts/) and the install test (e2e/helm_test.go). Tests find it with
# internal/testbin.
HELM_VERSION := v4.3.2
HELM         := $(CACHE)/bin/helm-$(HELM_VERSION)

.PHONY: helm
helm: $(HELM) ## build Helm v4.3.2 into .cache/bin (4 to 17 min cold on 2 shared cores; skipped when built)

$(HELM): tools/helm/go.mod tools/helm/go.sum
	@mkdir -p $(@D)
	cd tools/helm && CGO_ENABLED=0 $(GO) build -trimpath \
	  -ldflags '-s -w -X helm.sh/helm/v4/internal/version.version=$(HELM_VERSION)' \
	  -o $(abspath $@).tmp helm.sh/helm/v4/cmd/helm
	@mv $@.tmp $@

TEST_TOOLS += $(HELM)

# The chart's generated parts, so they cannot drift from the code: the
# CRDs (copied from crds/manifests, which `make generate` has just
# written) and each component's RBAC rules (controller-gen, from the
# +kubebuilder:rbac markers in hub/rbac.go, agent/rbac.go and glb/rbac.go).
# Each rbac.go is read alone, in a module of its own (it imports nothing):
# loaded with its package, controller-gen would type-check the component's
# dependencies, and fails on those it cannot build.
CHART := charts/meridian

.PHONY: chart-generate
chart-generate: $(CONTROLLER_GEN)
	rm -rf $(CHART)/crds $(CHART)/files/rbac
	mkdir -p $(CHART)/crds
	cp crds/manifests/*.yaml $(CHART)/crds/
	for c in hub agent glb; do \
	  d=$$(mktemp -d) && printf 'module rbac\n\ngo 1.26\n' >$$d/go.mod && cp $$c/rbac.go $$d/ && \
	  (cd $$d && $(abspath $(CONTROLLER_GEN)) rbac:roleName=meridian-$$c paths=./ \
	    output:rbac:artifacts:config=$(abspath $(CHART))/files/rbac/$$c); \
	  s=$$?; rm -rf $$d; [ $$s -eq 0 ] || exit 1; \
	done

GENERATORS      += chart-generate
GENERATED_PATHS += $(CHART)/crds $(CHART)/files/rbac
