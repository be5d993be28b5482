#!/usr/bin/env bash
# Installs the peers that `make bench` measures Meridian's balancer against
# (P2: dnsperf, PowerDNS with its bind, geoip and LUA backends, Knot DNS as
# the ceiling; P3: HAProxy, wrk) from Debian, when they are missing. Debian builds both with OpenSSL,
# which P3-TLS needs: wrk speaks HTTPS, HAProxy terminates TLS and checks JWTs (jwt_verify). Only
# `make bench` needs them, never `make test` or CI.
#
# The benchmarks run their own pdns_server, knotd and haproxy on loopback high
# ports with their own configs, so the system services these packages come
# with must not start (PowerDNS would take port 53): a policy-rc.d that
# refuses every start is put in place for the install, and anything the
# packages started anyway is stopped afterwards.
set -euo pipefail

packages=(dnsperf pdns-server pdns-backend-bind pdns-backend-geoip pdns-backend-lua2 knot haproxy wrk)
missing=()
for p in "${packages[@]}"; do
	dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done
if [ ${#missing[@]} -eq 0 ]; then
	exit 0
fi
if [ "$(id -u)" -ne 0 ]; then
	echo "bench peers missing: ${missing[*]}; install them as root: apt-get install ${missing[*]}" >&2
	exit 1
fi

policy=/usr/sbin/policy-rc.d
own_policy=
if [ ! -e "$policy" ]; then
	printf '#!/bin/sh\n# written by scripts/bench-peers.sh for one install\nexit 101\n' >"$policy"
	chmod 755 "$policy"
	own_policy=1
fi
cleanup() { if [ -n "$own_policy" ]; then rm -f "$policy"; fi; }
trap cleanup EXIT

echo "installing bench peers: ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
if ! apt-get install -y --no-install-recommends "${missing[@]}"; then
	apt-get update
	apt-get install -y --no-install-recommends "${missing[@]}"
fi

# Where an init system ignored policy-rc.d, stop and disable the services.
for svc in pdns knot haproxy; do
	if [ -d /run/systemd/system ]; then
		systemctl disable --now "$svc" >/dev/null 2>&1 || true
	elif command -v service >/dev/null 2>&1; then
		service "$svc" stop >/dev/null 2>&1 || true
	fi
done
