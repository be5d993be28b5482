# Dashboards and alerts (docs/observability.md): tools/gendashboards writes
# the Grafana dashboards and the Prometheus rules the chart ships, and its
# tests check them with Prometheus' promtool: the Debian 12 package
# prometheus pinned in scripts/promtool.lock, fetched and unpacked into
# .cache/promtool/root the way kdig is; .cache/bin/promtool runs its
# promtool, a Go binary that needs only libc.
PROMTOOL       := $(CACHE)/bin/promtool
PROMTOOL_ROOT  := $(CACHE)/promtool/root
PROMTOOL_LOCK  := scripts/promtool.lock
PROMTOOL_FETCH := scripts/fetch-debs.sh --lock $(PROMTOOL_LOCK) --cache $(CACHE)/promtool/debs

.PHONY: promtool promtool-lock dashboards
promtool: $(PROMTOOL) ## fetch Prometheus' promtool for the rule tests into .cache/bin/promtool (a pinned Debian 12 package, skipped when there)

$(PROMTOOL): $(PROMTOOL_LOCK) scripts/fetch-debs.sh
	$(PROMTOOL_FETCH) $(PROMTOOL_ROOT)
	@rm -f $(PROMTOOL_ROOT)/usr/bin/prometheus # the server: not needed
	@mkdir -p $(@D)
	@printf '%s\n' '#!/bin/sh' \
	  '# Prometheus'\''s promtool unpacked from the Debian package pinned in scripts/promtool.lock (make promtool).' \
	  'exec "$$(dirname "$$(readlink -f "$$0")")/../promtool/root/usr/bin/promtool" "$$@"' >$@.tmp
	@chmod +x $@.tmp
	@$@.tmp --version >/dev/null || { rm -f $@.tmp; echo "promtool: the unpacked promtool does not run (above); check $(PROMTOOL_LOCK)"; exit 1; }
	@mv $@.tmp $@
	@echo "promtool: $$($@ --version | head -n 1)"

promtool-lock: ## re-pin promtool's Debian package to apt's current candidate; check the diff, then commit scripts/promtool.lock
	$(PROMTOOL_FETCH) --update-lock

dashboards: ## regenerate the Grafana dashboards and Prometheus rules under charts/meridian/files
	$(GO) run ./tools/gendashboards

TEST_TOOLS      += $(PROMTOOL)
GENERATORS      += dashboards
GENERATED_PATHS += charts/meridian/files/dashboards charts/meridian/files/prometheus/rules.yaml
