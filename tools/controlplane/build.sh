#!/usr/bin/env bash
# build.sh OUT_DIR — builds the pinned control-plane binaries into OUT_DIR:
# kube-apiserver, kube-controller-manager, kube-scheduler, kubectl and
# kubelet (Kubernetes v1.36.3; the kubelet runs the real nodes of
# internal/node), etcd (v3.6.8), kwok (v0.8.0), karpenter-kwok
# (Karpenter v1.14.1 with its kwok cloud provider; internal/karpenter) and
# metrics-server (v0.8.0; CPU and memory for the HPAs), all from the Go
# module proxy through the pinning modules beside this script. A binary
# already built for the same pin is skipped; a cold build takes about
# half an hour on two cores, a warm one under a minute.
set -euo pipefail
out=$(mkdir -p "$1" && cd "$1" && pwd)
here=$(cd "$(dirname "$0")" && pwd)

K8S_VERSION=v1.36.3
ETCD_VERSION=v3.6.8
KWOK_VERSION=v0.8.0
KARPENTER_VERSION=v1.14.1
METRICS_SERVER_VERSION=v0.8.0

k8s_ldflags="-s -w"
for pkg in k8s.io/component-base/version k8s.io/client-go/pkg/version; do
  k8s_ldflags+=" -X $pkg.gitVersion=$K8S_VERSION -X $pkg.gitMajor=1 -X $pkg.gitMinor=36"
  k8s_ldflags+=" -X $pkg.gitTreeState=clean -X $pkg.buildDate=2026-01-01T00:00:00Z"
done

# name module package version ldflags
targets=(
  "kube-apiserver kubernetes k8s.io/kubernetes/cmd/kube-apiserver $K8S_VERSION"
  "kube-controller-manager kubernetes k8s.io/kubernetes/cmd/kube-controller-manager $K8S_VERSION"
  "kube-scheduler kubernetes k8s.io/kubernetes/cmd/kube-scheduler $K8S_VERSION"
  "kubectl kubernetes k8s.io/kubernetes/cmd/kubectl $K8S_VERSION"
  "kubelet kubernetes k8s.io/kubernetes/cmd/kubelet $K8S_VERSION"
  "etcd etcd go.etcd.io/etcd/server/v3 $ETCD_VERSION"
  "kwok kwok sigs.k8s.io/kwok/cmd/kwok $KWOK_VERSION"
  "karpenter-kwok karpenter sigs.k8s.io/karpenter/kwok $KARPENTER_VERSION"
  "metrics-server metrics-server sigs.k8s.io/metrics-server/cmd/metrics-server $METRICS_SERVER_VERSION"
)

i=0
for t in "${targets[@]}"; do
  read -r name module pkg version <<<"$t"
  i=$((i + 1))
  stamp="$out/.$name.version"
  if [ -x "$out/$name" ] && [ "$(cat "$stamp" 2>/dev/null)" = "$version" ]; then
    echo "controlplane: [$i/${#targets[@]}] $name $version already built"
    continue
  fi
  ldflags="-s -w"
  [ "$module" = kubernetes ] && ldflags=$k8s_ldflags
  [ "$module" = karpenter ] && ldflags+=" -X sigs.k8s.io/karpenter/pkg/operator.Version=$version"
  # metrics-server reports client-go's version as its own (its Makefile does so).
  [ "$module" = metrics-server ] && ldflags+=" -X k8s.io/client-go/pkg/version.gitVersion=$version"
  echo "controlplane: [$i/${#targets[@]}] building $name $version (the first build takes minutes) ..."
  start=$(date +%s)
  (cd "$here/$module" && CGO_ENABLED=0 GOFLAGS=-mod=mod go build -trimpath -ldflags "$ldflags" -o "$out/$name.tmp" "$pkg")
  mv "$out/$name.tmp" "$out/$name"
  echo "$version" >"$stamp"
  echo "controlplane: [$i/${#targets[@]}] $name built in $(($(date +%s) - start))s"
done

# kwok runs nothing without its stage configs; take them from the pinned
# module itself: nodes become Ready at once and keep a heartbeat, pods run.
stages="$out/kwok-stages"
if [ ! -f "$stages/.version" ] || [ "$(cat "$stages/.version")" != "$KWOK_VERSION" ]; then
  src=$(cd "$here/kwok" && GOFLAGS=-mod=mod go list -m -f '{{.Dir}}' sigs.k8s.io/kwok)
  rm -rf "$stages" && mkdir -p "$stages"
  cp "$src/kustomize/stage/node/fast/node-initialize.yaml" \
     "$src/kustomize/stage/node/heartbeat/node-heartbeat.yaml" \
     "$src/kustomize/stage/pod/fast/pod-ready.yaml" \
     "$src/kustomize/stage/pod/fast/pod-complete.yaml" \
     "$src/kustomize/stage/pod/fast/pod-delete.yaml" "$stages/"
  chmod u+w "$stages"/*.yaml
  echo "$KWOK_VERSION" >"$stages/.version"
  echo "controlplane: kwok stage configs in ${stages#"$PWD"/}"
fi

# metrics-server's ServiceAccount and roles, from its own manifests in the
# pinned module; internal/controlplane applies them before starting it.
rbac="$out/metrics-server-rbac.yaml"
if [ "$(cat "$out/.metrics-server-rbac.version" 2>/dev/null)" != "$METRICS_SERVER_VERSION" ] || [ ! -f "$rbac" ]; then
  src=$(cd "$here/metrics-server" && GOFLAGS=-mod=mod go list -m -f '{{.Dir}}' sigs.k8s.io/metrics-server)
  cp "$src/manifests/base/rbac.yaml" "$rbac"
  chmod u+w "$rbac"
  echo "$METRICS_SERVER_VERSION" >"$out/.metrics-server-rbac.version"
  echo "controlplane: metrics-server RBAC in ${rbac#"$PWD"/}"
fi

# Karpenter needs its CRDs (NodePool, NodeClaim, NodeOverlay, the kwok
# provider's KWOKNodeClass); take them from the pinned module itself.
crds="$out/karpenter-crds"
if [ ! -f "$crds/.version" ] || [ "$(cat "$crds/.version")" != "$KARPENTER_VERSION" ]; then
  src=$(cd "$here/karpenter" && GOFLAGS=-mod=mod go list -m -f '{{.Dir}}' sigs.k8s.io/karpenter)
  rm -rf "$crds" && mkdir -p "$crds"
  cp "$src"/pkg/apis/crds/karpenter.sh_*.yaml "$src"/kwok/apis/crds/karpenter.kwok.sh_*.yaml "$crds/"
  chmod u+w "$crds"/*.yaml
  echo "$KARPENTER_VERSION" >"$crds/.version"
  echo "controlplane: Karpenter CRDs in ${crds#"$PWD"/}"
fi
