#!/usr/bin/env bash
# build.sh OUT_DIR — builds OpenTofu and the providers the modules under
# terraform/ use, all from the Go module proxy through the pinning modules
# beside this script, into OUT_DIR:
#
#   bin/tofu      OpenTofu v1.12.6
#   mirror/       a filesystem mirror holding hashicorp/kubernetes v1.13.4
#                 and hashicorp/helm v1.3.2 (the newest versions the proxy
#                 serves), laid out as OpenTofu looks them up
#   tofurc        a CLI configuration that installs providers from that
#                 mirror only: TF_CLI_CONFIG_FILE=OUT_DIR/tofurc makes
#                 `tofu init` work offline
#
# A binary already built for the same pin is skipped; a cold build takes
# about 20 minutes on two cores (OpenTofu most of it), a warm one seconds.
set -euo pipefail
out=$(mkdir -p "$1" && cd "$1" && pwd)
here=$(cd "$(dirname "$0")" && pwd)

TOFU_VERSION=v1.12.6

# The host OpenTofu resolves "hashicorp/<name>" against, as the pinned
# OpenTofu defines it; the mirror's first directory level.
host=$(cd "$here/opentofu" && go run ./registryhost)

# name module package version
targets=(
  "tofu opentofu github.com/opentofu/opentofu/cmd/tofu $TOFU_VERSION"
  "kubernetes kubernetes github.com/hashicorp/terraform-provider-kubernetes v1.13.4"
  "helm helm github.com/hashicorp/terraform-provider-helm v1.3.2"
)

for t in "${targets[@]}"; do
  read -r name module pkg version <<<"$t"
  # The providers' paths hold their versions; tofu's has a stamp beside it
  # (a mirror's package directory holds the provider alone).
  if [ "$name" = tofu ]; then
    dir="$out/bin" file=tofu stamp="$out/bin/.tofu.version"
  else
    dir="$out/mirror/$host/hashicorp/$name/${version#v}/linux_amd64"
    file="terraform-provider-${name}_$version" stamp=""
  fi
  if [ -x "$dir/$file" ] && { [ -z "$stamp" ] || [ "$(cat "$stamp" 2>/dev/null)" = "$version" ]; }; then
    echo "tofu: $name $version already built"
    continue
  fi
  echo "tofu: building $name $version (the first build takes minutes) ..."
  start=$(date +%s)
  ldflags="-s -w"
  # A release build: without this OpenTofu calls itself a -dev prerelease.
  [ "$name" = tofu ] && ldflags+=" -X github.com/opentofu/opentofu/version.dev=no"
  (cd "$here/$module" && CGO_ENABLED=0 go build -trimpath -ldflags "$ldflags" -o "$out/$file.tmp" "$pkg")
  mkdir -p "$dir"
  mv "$out/$file.tmp" "$dir/$file"
  if [ -n "$stamp" ]; then echo "$version" >"$stamp"; fi
  echo "tofu: $name built in $(($(date +%s) - start))s"
done

# Providers come from the mirror only: nothing is fetched from a registry.
cat >"$out/tofurc" <<EOF
# Written by tools/tofu/build.sh: install providers from the mirror beside
# this file only. Use with TF_CLI_CONFIG_FILE=$out/tofurc
provider_installation {
  filesystem_mirror {
    path = "$out/mirror"
  }
}
EOF
TF_CLI_CONFIG_FILE="$out/tofurc" "$out/bin/tofu" version
