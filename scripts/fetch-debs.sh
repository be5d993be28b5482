#!/usr/bin/env bash
# fetch-debs.sh [--lock LOCK --cache DIR] DEST    fetch, verify and extract LOCK's packages into DEST
# fetch-debs.sh [--lock LOCK --cache DIR] --update-lock
#                                                pin the current apt candidates in LOCK
#
# LOCK defaults to scripts/image-base.lock and DIR to .cache/image/debs: the
# meridian image's base, a handful of Debian 12 (amd64) packages, the
# libraries bin/meridian and ONNX Runtime link against. Other locks use the
# same way (scripts/kdig.lock: Knot's kdig for the tests, `make kdig`).
# A lock pins each package by version and sha256. Each is fetched with the
# ordinary apt client (`apt-get download PKG:amd64=VERSION`, which also
# checks apt's own signed indexes; no root needed), checked against the lock,
# kept in DIR so a second run does no network work, and unpacked with
# `dpkg-deb -x` into DEST (replaced as a whole). Nothing is installed on this
# machine.
#
# When Debian stops serving a pinned version (a point release or security
# update replaced it), run `make image-lock` (this script with --update-lock,
# after `apt-get update`; `make kdig-lock` for scripts/kdig.lock), check the
# diff and commit the lock file.
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
lock="$root/scripts/image-base.lock"
cache="$root/.cache/image/debs"
arch=amd64

die() { echo "fetch-debs: $*" >&2; exit 1; }
usage="usage: fetch-debs.sh [--lock LOCK --cache DIR] DEST | [--lock LOCK --cache DIR] --update-lock"
while [ $# -gt 0 ]; do
  case "$1" in
    --lock) [ $# -ge 2 ] || die "$usage"; lock=$(realpath -m "$2"); shift 2 ;;
    --cache) [ $# -ge 2 ] || die "$usage"; cache=$(realpath -m "$2"); shift 2 ;;
    *) break ;;
  esac
done
[ -f "$lock" ] || die "no lock file $lock"
lockname=${lock#"$root"/}
# the command that refreshes this lock's pins
case "$lockname" in
  scripts/image-base.lock) relock="make image-lock" ;;
  scripts/kdig.lock) relock="make kdig-lock" ;;
  scripts/unbound.lock) relock="make unbound-lock" ;;
  scripts/slowhttptest.lock) relock="make slowhttptest-lock" ;;
  *) relock="scripts/fetch-debs.sh --lock $lockname --cache ${cache#"$root"/} --update-lock" ;;
esac
need() { command -v "$1" >/dev/null || die "$1 is needed ($2)"; }
need apt-get "a Debian or Ubuntu machine's apt; $lockname pins Debian 12 packages"
need dpkg-deb "apt-get install dpkg"
need sha256sum "apt-get install coreutils"

# download PKG VERSION OUT: apt-get download into a temporary directory.
download() {
  local pkg=$1 version=$2 out=$3 tmp
  tmp=$(mktemp -d)
  chown _apt "$tmp" 2>/dev/null || true # apt downloads as _apt where it can
  if ! (cd "$tmp" && apt-get download -q=2 "$pkg:$arch=$version" >&2); then
    rm -rf "$tmp"
    die "apt cannot download $pkg $version ($arch): Debian may no longer serve that version, or apt's lists are stale.
  Run 'apt-get update' and retry; if $pkg was updated, refresh the pins with '$relock' and commit $lockname."
  fi
  mv "$tmp"/*.deb "$out"
  rm -rf "$tmp"
}

update_lock() {
  local out pkg version file sum
  out=$(mktemp)
  {
    sed -n '/^#/p' "$lock"
    while read -r pkg _; do
      version=$(apt-cache policy "$pkg:$arch" | awk '/Candidate:/ {print $2}')
      [ -n "$version" ] && [ "$version" != "(none)" ] || die "apt has no candidate for $pkg:$arch; run 'apt-get update'"
      file="$cache/${pkg}_${version//:/%3a}_$arch.deb"
      mkdir -p "$cache"
      [ -f "$file" ] || { echo "fetch-debs: fetching $pkg $version ..." >&2; download "$pkg" "$version" "$file"; }
      sum=$(sha256sum "$file" | cut -d' ' -f1)
      echo "$pkg $version $sum"
    done < <(grep -v '^#' "$lock" | grep -v '^$')
  } >"$out"
  mv "$out" "$lock"
  echo "fetch-debs: pinned in $lockname:" >&2
  grep -v '^#' "$lock" >&2
}

fetch() {
  local dest=$1 pkg version sum file got
  local debs=()
  mkdir -p "$cache"
  while read -r pkg version sum; do
    file="$cache/${pkg}_${version//:/%3a}_$arch.deb"
    if [ ! -f "$file" ] || [ "$(sha256sum "$file" | cut -d' ' -f1)" != "$sum" ]; then
      echo "fetch-debs: fetching $pkg $version ..." >&2
      rm -f "$file"
      download "$pkg" "$version" "$file"
      got=$(sha256sum "$file" | cut -d' ' -f1)
      if [ "$got" != "$sum" ]; then
        rm -f "$file"
        die "$pkg $version has sha256 $got, but $lockname pins $sum; refusing to use it.
  If Debian rebuilt the package, check why, then refresh the pins with '$relock' and commit $lockname."
      fi
    fi
    debs+=("$file")
  done < <(grep -v '^#' "$lock" | grep -v '^$')
  [ ${#debs[@]} -gt 0 ] || die "no packages in $lock"

  echo "fetch-debs: extracting ${#debs[@]} packages into ${dest#"$root"/} ..." >&2
  rm -rf "$dest.tmp"
  mkdir -p "$dest.tmp"
  for file in "${debs[@]}"; do
    dpkg-deb -x "$file" "$dest.tmp"
  done
  rm -rf "$dest"
  mv "$dest.tmp" "$dest"
}

case "${1:-}" in
  --update-lock) update_lock ;;
  "" | -*) die "$usage" ;;
  *) [ $# -eq 1 ] || die "$usage"; fetch "$1" ;;
esac
