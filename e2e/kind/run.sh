#!/usr/bin/env bash
# The same end-to-end suite on kind, for users with Docker (cannot run on the project's CI machines,
# which have no Docker engine: there, e2e/cluster/ builds a cluster from source).
#
#   e2e/kind/run.sh          # create the kind cluster, build + load the images, install, test
#   KEEP_CLUSTER=1 e2e/kind/run.sh   # leave the cluster up afterwards
#
# Needs: docker, kind (>= 0.24), kubectl, helm, and cargo (the test driver runs on the host).
# The images are built with the repository's multi-stage Dockerfile approach: each static binary in a
# scratch image, tagged mcp-guard.local/<name>:<appVersion> exactly as on the source-built cluster.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
CLUSTER=mcp-guard-e2e
TAG="$(sed -n 's/^appVersion: *"\{0,1\}\([^"]*\)"\{0,1\}$/\1/p' "$ROOT/charts/mcp-guard/Chart.yaml")"
start=$SECONDS
phase_start=$SECONDS
phase() { echo "== kind: $1 took $((SECONDS - phase_start)) s"; phase_start=$SECONDS; }

if ! kind get clusters | grep -qx "$CLUSTER"; then
  kind create cluster --config "$ROOT/e2e/kind/kind.yaml" --wait 120s
fi
export KUBECONFIG="${KUBECONFIG_KIND:-$(mktemp)}"
kind get kubeconfig --name "$CLUSTER" > "$KUBECONFIG"
phase "cluster"

# The test workloads use a local busybox image under the same name as on the source-built cluster.
docker pull -q busybox:1.35.0
docker tag busybox:1.35.0 mcp-guard.local/busybox:1.35
for spec in "mcp-guard mcp-guard" "mcp-guard-operator mcp-guard-operator" \
            "mcp-guard-test-server mcp-test-server" "mcp-guard-e2e e2e-agent"; do
  set -- $spec
  docker build -f - -t "mcp-guard.local/$2:$TAG" "$ROOT" <<DOCKERFILE
FROM rust:1.95-bookworm AS build
WORKDIR /src
COPY . .
RUN --mount=type=cache,target=/src/target --mount=type=cache,target=/usr/local/cargo/registry \
    RUSTFLAGS="-C target-feature=+crt-static" \
    cargo build --release --locked --target x86_64-unknown-linux-gnu -p $1 --bin $2 && \
    cp target/x86_64-unknown-linux-gnu/release/$2 /$2
FROM scratch
COPY --from=build /$2 /$2
ENTRYPOINT ["/$2"]
DOCKERFILE
done
phase "images"
kind load docker-image --name "$CLUSTER" mcp-guard.local/busybox:1.35 \
  "mcp-guard.local/mcp-guard:$TAG" "mcp-guard.local/mcp-guard-operator:$TAG" \
  "mcp-guard.local/mcp-test-server:$TAG" "mcp-guard.local/e2e-agent:$TAG"
phase "kind load"

rc=0
"$ROOT/e2e/run.sh" || rc=$?
phase "install + tests"
if [[ -z ${KEEP_CLUSTER:-} ]]; then kind delete cluster --name "$CLUSTER"; fi
echo "== kind: total $((SECONDS - start)) s"
exit "$rc"
