#!/usr/bin/env bash
# Builds the static binaries (mcp-guard, mcp-guard-operator, mcp-test-server, e2e-agent) and packs them
# into images with e2e/cluster/pack-image.sh, imported into the running test cluster's containerd.
#
#   e2e/images.sh            # tag = charts/mcp-guard appVersion
#
# Images: mcp-guard.local/{mcp-guard,mcp-guard-operator,mcp-test-server,e2e-agent}:<appVersion>.
# The mcp-guard image also carries the V8 engine's Deno (a glibc build, from scripts/setup.sh; MCP_GUARD_DENO
# names another) at /usr/local/lib/mcp-guard/deno, where the executor looks when its config names none,
# and the C libraries it links (ldd), copied from this host to the paths ldd names.
# Static builds go to ${MCP_GUARD_STATIC_TARGET:-~/.cache/mcp-guard/target-static} so they do not
# invalidate the normal target dir; cargo skips the build when nothing changed.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
STATE="${MCP_GUARD_CLUSTER_DIR:-/tmp/mcp-guard-cluster}"
SOCK="$STATE/containerd/containerd.sock"
TARGET_DIR="${MCP_GUARD_STATIC_TARGET:-$HOME/.cache/mcp-guard/target-static}"
TRIPLE=x86_64-unknown-linux-gnu
TAG="${MCP_GUARD_E2E_TAG:-$(sed -n 's/^appVersion: *"\{0,1\}\([^"]*\)"\{0,1\}$/\1/p' "$ROOT/charts/mcp-guard/Chart.yaml")}"
[[ -n $TAG ]] || { echo "images.sh: no appVersion in charts/mcp-guard/Chart.yaml" >&2; exit 1; }
[[ -S $SOCK ]] || { echo "images.sh: no containerd socket at $SOCK (run e2e/cluster/up.sh)" >&2; exit 1; }
DENO="${MCP_GUARD_DENO:-${MCP_GUARD_CACHE:-$HOME/.cache/mcp-guard}/deno/deno}"
[[ -x $DENO ]] || { echo "images.sh: no Deno binary at $DENO (the V8 engine's, for the mcp-guard image): run scripts/setup.sh" >&2; exit 1; }
DENO="$(readlink -f "$DENO")" # the binary itself, not the setup's symlink
# The shared libraries Deno links, as ldd names them (`name => /path (addr)`, the loader as `/path (addr)`).
mapfile -t DENO_LIBS < <(ldd "$DENO" | awk '$2 == "=>" && $3 ~ /^\// { print $3 } $1 ~ /^\// { print $1 }')
((${#DENO_LIBS[@]} > 0)) || { echo "images.sh: ldd lists no library of $DENO (not a glibc build?)" >&2; exit 1; }

phase_start=$SECONDS
phase() { echo "== images: $1 took $((SECONDS - phase_start)) s"; phase_start=$SECONDS; }

echo "== images: static build (target dir $TARGET_DIR)"
(cd "$ROOT" && RUSTFLAGS="-C target-feature=+crt-static" CARGO_TARGET_DIR="$TARGET_DIR" \
  cargo build --release --locked --target "$TRIPLE" \
    -p mcp-guard --bin mcp-guard \
    -p mcp-guard-operator --bin mcp-guard-operator \
    -p mcp-guard-test-server --bin mcp-test-server \
    -p mcp-guard-e2e --bin e2e-agent)
phase "static build"

BIN="$TARGET_DIR/$TRIPLE/release"
# The isolate-host escape tests' syscall hatch (feature escape-hatch) must never be in an image.
if grep -q __mcpGuardSyscall "$BIN/mcp-guard"; then
  echo "images.sh: the release mcp-guard contains the test-only escape hatch" >&2; exit 1
fi
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
for name in mcp-guard mcp-guard-operator mcp-test-server e2e-agent; do
  if ldd "$BIN/$name" >/dev/null 2>&1 && ! ldd "$BIN/$name" 2>&1 | grep -q 'statically linked'; then
    echo "images.sh: $BIN/$name is not static:" >&2; ldd "$BIN/$name" >&2; exit 1
  fi
  mkdir -p "$work/$name/tmp"
  chmod 1777 "$work/$name/tmp"
  cp "$BIN/$name" "$work/$name/$name"
  # reqwest's rustls-platform-verifier refuses to build an HTTP client (even for http:// URLs) when it
  # finds no CA certificates, so the binding proxy needs a CA bundle in the image.
  if [[ $name == mcp-guard ]]; then
    mkdir -p "$work/$name/etc/ssl/certs"
    cp /etc/ssl/certs/ca-certificates.crt "$work/$name/etc/ssl/certs/ca-certificates.crt"
    # The V8 engine: Deno and its C libraries (files, not this host's symlinks; the confined Deno may
    # read only those, and the root filesystem may be read-only: Deno writes nothing).
    mkdir -p "$work/$name/usr/local/lib/mcp-guard"
    cp "$DENO" "$work/$name/usr/local/lib/mcp-guard/deno"
    for lib in "${DENO_LIBS[@]}"; do
      mkdir -p "$work/$name$(dirname "$lib")"
      cp -L "$lib" "$work/$name$lib"
    done
  fi
  "$ROOT/e2e/cluster/pack-image.sh" -o "$work/$name.tar" --import "$SOCK" \
    "mcp-guard.local/$name:$TAG" "$work/$name" "/$name"
done
phase "pack + import"
echo "== images: mcp-guard.local/{mcp-guard,mcp-guard-operator,mcp-test-server,e2e-agent}:$TAG imported"
