#!/usr/bin/env bash
# Builds the binaries of the real single-node test cluster from Go modules and caches them by version.
#
# Why from source: this machine (and CI) has no Docker engine and cannot download release binaries; only
# package registries are reachable, and the Go module proxy serves the source of every component.
#
# Layout:   ${MCP_GUARD_CACHE:-$HOME/.cache/mcp-guard}/cluster/<component>-<version>/bin/<binary>
# Usage:    e2e/cluster/build.sh [kubernetes] [etcd] [helm] [kube-router] [coredns]    (default: all)
#
# A component whose binaries are already cached is skipped, so a second run takes seconds. Go's module
# cache (~/go/pkg/mod) and build cache (~/.cache/go-build) stay at their defaults, so even a rebuild of a
# new patch version reuses most compiled packages. Builds run under `nice -n 19` so they never starve
# other work on this 2-core machine.
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
# shellcheck source=versions.env
source "$HERE/versions.env"

CACHE="${MCP_GUARD_CACHE:-$HOME/.cache/mcp-guard}/cluster"
# Generated wrapper modules live in the cache, never inside the repository.
SRC="$CACHE/src"

# Static binaries (no libc dependency, run in any image); GOTOOLCHAIN=local so a dependency's
# `toolchain` line never makes go try to download another toolchain (nothing but the proxy is reachable).
export CGO_ENABLED=0 GOTOOLCHAIN=local GOFLAGS=-buildvcs=false GO111MODULE=on
NICE=(nice -n 19)
BUILD_DATE="$(date -u +%Y-%m-%dT%H:%M:%SZ)"

log() { printf '[build %s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }

# cached DIR BIN...: true when every named binary is already in DIR/bin.
cached() {
  local dir=$1 b
  shift
  for b in "$@"; do [[ -x "$dir/bin/$b" ]] || return 1; done
}

# install_bins TMPDIR DESTDIR: move freshly built binaries into place only after the whole build
# succeeded, so an interrupted build never leaves a half-filled cache entry that would be skipped.
install_bins() {
  local tmp=$1 dest=$2
  mkdir -p "$dest"
  rm -rf "${dest:?}/bin"
  mv "$tmp" "$dest/bin"
}

# gomod_path MODULE@VERSION: path of that version's go.mod in the module cache (downloads it if needed).
gomod_path() {
  go mod download -json "$1" | sed -n 's/^[[:space:]]*"GoMod": "\(.*\)",\{0,1\}$/\1/p'
}

# phase NAME FUNCTION: run one component's build and print how long it took.
phase() {
  local name=$1 fn=$2 start end
  start=$(date +%s)
  "$fn"
  end=$(date +%s)
  log "$name: done in $((end - start))s"
  printf '%s\t%s\t%ss\n' "$(date -u +%FT%TZ)" "$name" "$((end - start))" >>"$CACHE/build-times.log"
}

# --- Kubernetes ------------------------------------------------------------------------------------
# `go install k8s.io/kubernetes/cmd/...@v1.34.N` fails: k8s.io/kubernetes requires its staging modules at
# v0.0.0 and replaces them with ./staging/src paths, which a dependency's replace lines cannot provide.
# So we generate a wrapper module that requires k8s.io/kubernetes and replaces every staging module with
# its published v0.34.N, reading the list of staging modules from that version's own go.mod.
K8S_BINS=(kube-apiserver kube-controller-manager kube-scheduler kubelet kube-proxy kubectl)

build_kubernetes() {
  local dest="$CACHE/kubernetes-$K8S_VERSION" mod="$SRC/kubernetes-$K8S_VERSION" tmp gomod m
  if cached "$dest" "${K8S_BINS[@]}"; then
    log "kubernetes $K8S_VERSION: cached in $dest/bin"
    return
  fi
  log "kubernetes $K8S_VERSION: generating wrapper module in $mod"
  gomod="$(gomod_path "k8s.io/kubernetes@$K8S_VERSION")"
  local -a staging
  mapfile -t staging < <(sed -n 's#^[[:space:]]*\(k8s\.io/[^[:space:]]*\) => \./staging/src/.*#\1#p' "$gomod")
  ((${#staging[@]} > 20)) || { log "found only ${#staging[@]} staging modules in $gomod"; exit 1; }
  log "kubernetes: ${#staging[@]} staging modules replaced by $K8S_STAGING_VERSION"

  rm -rf "$mod"
  mkdir -p "$mod"
  {
    echo "module mcp-guard.local/cluster-build/kubernetes"
    echo
    grep -m1 '^go ' "$gomod" # same language version as Kubernetes itself
    echo
    echo "require k8s.io/kubernetes $K8S_VERSION"
    echo
    echo "replace ("
    for m in "${staging[@]}"; do echo "	$m => $m $K8S_STAGING_VERSION"; done
    echo ")"
  } >"$mod/go.mod"
  # tools.go keeps the commands (and so all their dependencies) in the module graph for `go mod tidy`.
  {
    echo "//go:build tools"
    echo
    echo "package tools"
    echo
    echo "import ("
    for m in "${K8S_BINS[@]}"; do echo "	_ \"k8s.io/kubernetes/cmd/$m\""; done
    echo ")"
  } >"$mod/tools.go"
  (cd "$mod" && "${NICE[@]}" go mod tidy)

  # Without these the binaries report v0.0.0-master, and kubelet/kubectl version skew checks get confused.
  local minor ldflags="-s -w" p
  minor="$(echo "$K8S_VERSION" | cut -d. -f2)"
  for p in k8s.io/component-base/version k8s.io/client-go/pkg/version; do
    ldflags+=" -X $p.gitVersion=$K8S_VERSION -X $p.gitMajor=1 -X $p.gitMinor=$minor"
    ldflags+=" -X $p.gitTreeState=clean -X $p.buildDate=$BUILD_DATE"
  done

  tmp="$(mktemp -d "$CACHE/.tmp-kubernetes.XXXXXX")"
  local -a pkgs=()
  for m in "${K8S_BINS[@]}"; do pkgs+=("k8s.io/kubernetes/cmd/$m"); done
  log "kubernetes: go build ${K8S_BINS[*]} (one invocation, shared packages compile once)"
  (cd "$mod" && "${NICE[@]}" go build -trimpath -ldflags "$ldflags" -o "$tmp/" "${pkgs[@]}")
  install_bins "$tmp" "$dest"
  "$dest/bin/kube-apiserver" --version >&2
}

# --- etcd ------------------------------------------------------------------------------------------
# go.etcd.io/etcd/server/v3 has replace lines (../api, ../pkg, ...), so it too goes through a wrapper
# module; `go build` of the module root package gives a binary named `server`, renamed to etcd.
build_etcd() {
  local dest="$CACHE/etcd-$ETCD_VERSION" mod="$SRC/etcd-$ETCD_VERSION" tmp
  if cached "$dest" etcd etcdctl; then
    log "etcd $ETCD_VERSION: cached in $dest/bin"
    return
  fi
  log "etcd $ETCD_VERSION: generating wrapper module in $mod"
  rm -rf "$mod"
  mkdir -p "$mod"
  {
    echo "module mcp-guard.local/cluster-build/etcd"
    echo
    grep -m1 '^go ' "$(gomod_path "go.etcd.io/etcd/server/v3@$ETCD_VERSION")"
    echo
    echo "require ("
    echo "	go.etcd.io/etcd/server/v3 $ETCD_VERSION"
    echo "	go.etcd.io/etcd/etcdctl/v3 $ETCD_VERSION"
    echo ")"
  } >"$mod/go.mod"
  printf '//go:build tools\n\npackage tools\n\nimport (\n\t_ "go.etcd.io/etcd/server/v3"\n\t_ "go.etcd.io/etcd/etcdctl/v3"\n)\n' >"$mod/tools.go"
  (cd "$mod" && "${NICE[@]}" go mod tidy)

  tmp="$(mktemp -d "$CACHE/.tmp-etcd.XXXXXX")"
  local ldflags="-s -w -X go.etcd.io/etcd/api/v3/version.GitSHA=$ETCD_VERSION"
  (cd "$mod" && "${NICE[@]}" go build -trimpath -ldflags "$ldflags" -o "$tmp/etcd" go.etcd.io/etcd/server/v3)
  (cd "$mod" && "${NICE[@]}" go build -trimpath -ldflags "$ldflags" -o "$tmp/etcdctl" go.etcd.io/etcd/etcdctl/v3)
  install_bins "$tmp" "$dest"
  "$dest/bin/etcd" --version >&2
}

# --- Helm ------------------------------------------------------------------------------------------
# helm.sh/helm/v3 has no replace lines, so `go install pkg@version` builds it directly.
build_helm() {
  local dest="$CACHE/helm-$HELM_VERSION" tmp gomod kv kmaj kmin ldflags
  if cached "$dest" helm; then
    log "helm $HELM_VERSION: cached in $dest/bin"
    return
  fi
  # Helm's Makefile stamps the Kubernetes version of its client-go as the default for `helm template`.
  gomod="$(gomod_path "helm.sh/helm/v3@$HELM_VERSION")"
  kv="$(sed -n 's#^[[:space:]]*k8s.io/client-go v0\.\([0-9]*\)\..*#\1#p' "$gomod" | head -1)"
  kmaj=1
  kmin="${kv:-34}"
  ldflags="-s -w -X helm.sh/helm/v3/internal/version.version=$HELM_VERSION"
  ldflags+=" -X helm.sh/helm/v3/internal/version.gitTreeState=clean"
  ldflags+=" -X helm.sh/helm/v3/pkg/lint/rules.k8sVersionMajor=$kmaj -X helm.sh/helm/v3/pkg/lint/rules.k8sVersionMinor=$kmin"
  ldflags+=" -X helm.sh/helm/v3/pkg/chartutil.k8sVersionMajor=$kmaj -X helm.sh/helm/v3/pkg/chartutil.k8sVersionMinor=$kmin"
  tmp="$(mktemp -d "$CACHE/.tmp-helm.XXXXXX")"
  GOBIN="$tmp" "${NICE[@]}" go install -trimpath -ldflags "$ldflags" "helm.sh/helm/v3/cmd/helm@$HELM_VERSION"
  install_bins "$tmp" "$dest"
  "$dest/bin/helm" version >&2
}

# --- kube-router -----------------------------------------------------------------------------------
# Used as the NetworkPolicy enforcer only (firewall mode). No replace lines: `go install` works.
build_kube_router() {
  local dest="$CACHE/kube-router-$KUBE_ROUTER_VERSION" tmp ldflags
  if cached "$dest" kube-router; then
    log "kube-router $KUBE_ROUTER_VERSION: cached in $dest/bin"
    return
  fi
  ldflags="-s -w -X github.com/cloudnativelabs/kube-router/v2/pkg/version.Version=$KUBE_ROUTER_VERSION"
  ldflags+=" -X github.com/cloudnativelabs/kube-router/v2/pkg/version.BuildDate=$BUILD_DATE"
  tmp="$(mktemp -d "$CACHE/.tmp-kube-router.XXXXXX")"
  GOBIN="$tmp" "${NICE[@]}" go install -trimpath -ldflags "$ldflags" \
    "github.com/cloudnativelabs/kube-router/v2/cmd/kube-router@$KUBE_ROUTER_VERSION"
  install_bins "$tmp" "$dest"
  "$dest/bin/kube-router" --version >&2 || true
}

# --- CoreDNS ---------------------------------------------------------------------------------------
# The cluster DNS (run as a pod by up.sh). Its main package is the module root and its go.mod has no
# replace lines, so `go install github.com/coredns/coredns@version` builds it directly, with the plugin
# set of the release (core/plugin/zplugin.go is generated and committed upstream). Build tag and
# ldflags as in CoreDNS's own Makefile (grpcnotrace drops gRPC's x/net/trace dependency).
build_coredns() {
  local dest="$CACHE/coredns-$COREDNS_VERSION" tmp ldflags
  if cached "$dest" coredns; then
    log "coredns $COREDNS_VERSION: cached in $dest/bin"
    return
  fi
  ldflags="-s -w -X github.com/coredns/coredns/coremain.GitCommit=$COREDNS_VERSION"
  tmp="$(mktemp -d "$CACHE/.tmp-coredns.XXXXXX")"
  GOBIN="$tmp" "${NICE[@]}" go install -trimpath -tags grpcnotrace -ldflags "$ldflags" \
    "github.com/coredns/coredns@$COREDNS_VERSION"
  install_bins "$tmp" "$dest"
  "$dest/bin/coredns" -version >&2
}

main() {
  mkdir -p "$CACHE" "$SRC"
  rm -rf "$CACHE"/.tmp-* # leftovers of an interrupted run
  local -a want=("$@")
  ((${#want[@]})) || want=(kubernetes etcd kube-router helm coredns)
  local total_start c
  total_start=$(date +%s)
  for c in "${want[@]}"; do
    case "$c" in
      kubernetes) phase "kubernetes $K8S_VERSION" build_kubernetes ;;
      etcd) phase "etcd $ETCD_VERSION" build_etcd ;;
      helm) phase "helm $HELM_VERSION" build_helm ;;
      kube-router) phase "kube-router $KUBE_ROUTER_VERSION" build_kube_router ;;
      coredns) phase "coredns $COREDNS_VERSION" build_coredns ;;
      *) log "unknown component: $c (expected kubernetes, etcd, helm, kube-router, coredns)"; exit 2 ;;
    esac
  done
  log "all done in $(($(date +%s) - total_start))s; binaries under $CACHE"
}

main "$@"
