# slowhttptest, the slow HTTP attack tool (slowloris and slow body) the
# listener-hardening tests of inference/ run against the model server:
# Debian 12 packages pinned in scripts/slowhttptest.lock (slowhttptest and
# the libraries it links against, libc aside), fetched and unpacked into
# .cache/slowhttptest/root the way kdig is; .cache/bin/slowhttptest runs it
# with LD_LIBRARY_PATH set to the unpacked libraries. Tests find it with
# internal/testbin.SlowHTTPTest.
SLOWHTTPTEST       := $(CACHE)/bin/slowhttptest
SLOWHTTPTEST_ROOT  := $(CACHE)/slowhttptest/root
SLOWHTTPTEST_LOCK  := scripts/slowhttptest.lock
SLOWHTTPTEST_FETCH := scripts/fetch-debs.sh --lock $(SLOWHTTPTEST_LOCK) --cache $(CACHE)/slowhttptest/debs

.PHONY: slowhttptest slowhttptest-lock
slowhttptest: $(SLOWHTTPTEST) ## fetch slowhttptest for the slow-attack tests into .cache/bin/slowhttptest (pinned Debian 12 packages, skipped when there)

$(SLOWHTTPTEST): $(SLOWHTTPTEST_LOCK) scripts/fetch-debs.sh
	$(SLOWHTTPTEST_FETCH) $(SLOWHTTPTEST_ROOT)
	@mkdir -p $(@D)
	@printf '%s\n' '#!/bin/sh' \
	  '# slowhttptest unpacked from the Debian packages pinned in scripts/slowhttptest.lock (make slowhttptest).' \
	  'root=$$(cd "$$(dirname "$$(readlink -f "$$0")")/../slowhttptest/root" && pwd) || exit 1' \
	  'LD_LIBRARY_PATH=$$root/usr/lib/x86_64-linux-gnu:$$root/lib/x86_64-linux-gnu$${LD_LIBRARY_PATH:+:$$LD_LIBRARY_PATH}' \
	  'export LD_LIBRARY_PATH' \
	  'exec "$$root/usr/bin/slowhttptest" "$$@"' >$@.tmp
	@chmod +x $@.tmp
	@# -h prints the usage and exits 1; that it prints it shows the binary runs.
	@$@.tmp -h 2>&1 | grep -q 'slowhttptest, a tool' || { rm -f $@.tmp; echo "slowhttptest: the unpacked slowhttptest does not run (above); check $(SLOWHTTPTEST_LOCK) against ldd $(SLOWHTTPTEST_ROOT)/usr/bin/slowhttptest"; exit 1; }
	@mv $@.tmp $@
	@echo "slowhttptest: $$($@ -h 2>&1 | grep -o 'version .*')"

slowhttptest-lock: ## re-pin slowhttptest's Debian packages to apt's current candidates; check the diff, then commit scripts/slowhttptest.lock
	$(SLOWHTTPTEST_FETCH) --update-lock

TEST_TOOLS += $(SLOWHTTPTEST)
