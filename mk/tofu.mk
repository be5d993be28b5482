# OpenTofu and the providers the modules under terraform/ use, built from
# the Go module proxy (tools/tofu pins them) into .cache/tofu with a
# filesystem mirror and the CLI configuration that installs from it; the
# modules' tests (terraform/tofu_test.go) run them. See terraform/README.md.
TOFU_DIR := $(CACHE)/tofu
TOFU     := $(TOFU_DIR)/.built
TOFU_IN  := $(wildcard tools/tofu/build.sh tools/tofu/*/go.mod tools/tofu/*/go.sum)

.PHONY: tofu
tofu: $(TOFU) ## build OpenTofu v1.12.6 and its providers' mirror into .cache/tofu (about 20 min cold, skipped when built)

$(TOFU): $(TOFU_IN)
	tools/tofu/build.sh $(TOFU_DIR)
	touch $@

TEST_TOOLS += $(TOFU)
