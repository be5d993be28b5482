# Chromium for the browser tests of the fleet page (hub/fleetpage and the
# whole-fleet test in internal/fleet, docs/observability.md "The fleet
# page"): Chromium's headless shell, the Debian 12 packages pinned in
# scripts/chromium.lock (chromium-headless-shell, chromium-common, the
# libraries the shell links against, libc aside, and one font), fetched and
# unpacked into .cache/chromium/root the way kdig is, without root.
# .cache/bin/chromium runs it with LD_LIBRARY_PATH set to the unpacked
# libraries and FONTCONFIG_FILE to .cache/chromium/fonts.conf (the unpacked
# fonts only). Tests find it with hub/fleetpage/browsertest.Chromium and
# start it with --headless --no-sandbox --disable-gpu (root and non-root).
CHROMIUM       := $(CACHE)/bin/chromium
CHROMIUM_DIR   := $(CACHE)/chromium
CHROMIUM_ROOT  := $(CHROMIUM_DIR)/root
CHROMIUM_LOCK  := scripts/chromium.lock
CHROMIUM_FETCH := scripts/fetch-debs.sh --lock $(CHROMIUM_LOCK) --cache $(CHROMIUM_DIR)/debs

.PHONY: chromium chromium-lock
chromium: $(CHROMIUM) ## fetch Chromium's headless shell for the fleet page's browser tests into .cache/bin/chromium (pinned Debian 12 packages, skipped when there)

$(CHROMIUM): $(CHROMIUM_LOCK) scripts/fetch-debs.sh
	$(CHROMIUM_FETCH) $(CHROMIUM_ROOT)
	@printf '%s\n' '<?xml version="1.0"?>' \
	  '<!DOCTYPE fontconfig SYSTEM "urn:fontconfig:fonts.dtd">' \
	  '<!-- the fonts unpacked from scripts/chromium.lock, nothing of the machine (make chromium) -->' \
	  '<fontconfig>' \
	  '  <dir prefix="relative">root/usr/share/fonts</dir>' \
	  '  <cachedir prefix="relative">fontcache</cachedir>' \
	  '  <alias><family>sans-serif</family><prefer><family>DejaVu Sans</family></prefer></alias>' \
	  '  <alias><family>serif</family><prefer><family>DejaVu Serif</family></prefer></alias>' \
	  '  <alias><family>monospace</family><prefer><family>DejaVu Sans Mono</family></prefer></alias>' \
	  '</fontconfig>' >$(CHROMIUM_DIR)/fonts.conf
	@mkdir -p $(@D)
	@printf '%s\n' '#!/bin/sh' \
	  '# Chromium'\''s headless shell unpacked from the Debian packages pinned in scripts/chromium.lock (make chromium).' \
	  'dir=$$(cd "$$(dirname "$$(readlink -f "$$0")")/../chromium" && pwd) || exit 1' \
	  'lib=$$dir/root/usr/lib/x86_64-linux-gnu' \
	  'LD_LIBRARY_PATH=$$lib:$$lib/pulseaudio:$$dir/root/lib/x86_64-linux-gnu$${LD_LIBRARY_PATH:+:$$LD_LIBRARY_PATH}' \
	  'FONTCONFIG_FILE=$$dir/fonts.conf' \
	  'export LD_LIBRARY_PATH FONTCONFIG_FILE' \
	  'exec "$$dir/root/usr/lib/chromium/chromium-headless-shell" "$$@"' >$@.tmp
	@chmod +x $@.tmp
	@# Render a page to its DOM: that shows the shell, its libraries and its resources load.
	@$@.tmp --headless --no-sandbox --disable-gpu --dump-dom 'data:text/html,<p>meridian-chromium-ok</p>' 2>/dev/null | grep -q meridian-chromium-ok || { rm -f $@.tmp; echo "chromium: the unpacked headless shell does not run; check $(CHROMIUM_LOCK) against: LD_LIBRARY_PATH=$(CHROMIUM_ROOT)/usr/lib/x86_64-linux-gnu ldd $(CHROMIUM_ROOT)/usr/lib/chromium/chromium-headless-shell | grep 'not found'"; exit 1; }
	@mv $@.tmp $@
	@echo "chromium: $$($@ --version 2>/dev/null || echo 'headless shell $(CHROMIUM_ROOT)')"

chromium-lock: ## re-pin Chromium's Debian packages to apt's current candidates; check the diff, then commit scripts/chromium.lock
	$(CHROMIUM_FETCH) --update-lock

TEST_TOOLS += $(CHROMIUM)
