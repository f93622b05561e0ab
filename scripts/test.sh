#!/usr/bin/env bash
# Every check and test of MCP Guard, in the order a reviewer would want them: setup, formatting, lints,
# the workspace tests, then the operator against a real single-node Kubernetes assembled from source
# (e2e/cluster), and the end-to-end suite: our images packed without Docker, `helm install`, agents calling
# the executor in the cluster (e2e/run.sh). Each phase prints how long it took.
#
# MCP_GUARD_SKIP_CLUSTER=1 skips the real-cluster phases (they need root).
set -euo pipefail
cd "$(dirname "$0")/.."

phase() {
  local name=$1; shift
  printf '\n==> %s\n' "$name"
  local start=$SECONDS
  "$@"
  printf '<== %s: %ss\n' "$name" "$((SECONDS - start))"
}

phase "setup" ./scripts/setup.sh
phase "cargo fmt --check" cargo fmt --all -- --check
phase "cargo clippy (warnings denied)" cargo clippy --workspace --all-targets --locked -- -D warnings
phase "cargo test" cargo test --workspace --locked
# The attack, limit, built-in and benign-program suites again, on isolate-host processes (what `serve` runs by default), and the
# escape tests with the test-only syscall hatch compiled in.
phase "attack and limit suites on isolate hosts" env MCP_GUARD_TEST_ENGINE=process \
  cargo test -p mcp-guard --locked --test attacks --test limits --test sandbox --test runtime --test web_builtins --test intl --test benign
# The same suites on the V8 engine (Deno, installed by setup.sh), and the V8 host's own confinement tests.
phase "sandbox, attack and limit suites on the V8 engine" env MCP_GUARD_TEST_ENGINE=v8 \
  cargo test -p mcp-guard --locked --test attacks --test limits --test sandbox --test runtime --test web_builtins --test intl --test benign
phase "isolate-host escape tests (feature escape-hatch)" \
  cargo test -p mcp-guard --locked --features escape-hatch --test isolate_escape
phase "soak: serve under a mixed load for 60 s (make soak: 10 minutes)" env MCP_GUARD_SOAK_SECS=60 \
  cargo test -p mcp-guard --locked --test soak -- --ignored --nocapture
phase "make run as on a fresh machine (no protoc)" ./scripts/fresh-make-run.sh

if [ "${MCP_GUARD_SKIP_CLUSTER:-0}" = "1" ]; then
  echo "MCP_GUARD_SKIP_CLUSTER=1: skipping the real-cluster tests"
  exit 0
fi

CLUSTER_DIR="${MCP_GUARD_CLUSTER_DIR:-/tmp/mcp-guard-cluster}"
export KUBECONFIG="$CLUSTER_DIR/admin.kubeconfig"
source e2e/cluster/versions.env
HELM="${MCP_GUARD_CACHE:-$HOME/.cache/mcp-guard}/cluster/helm-${HELM_VERSION}/bin/helm"

cluster_down() {
  local status=$?
  if [ "$status" -ne 0 ] && [ -d "$CLUSTER_DIR/logs" ]; then
    echo "--- the cluster's component logs (last lines) ---"
    for log in "$CLUSTER_DIR"/logs/*.log; do
      echo "## $log"
      tail -n 20 "$log" || true
    done
  fi
  e2e/cluster/down.sh >/dev/null 2>&1 || true
  exit "$status"
}

phase "cluster: build Kubernetes, etcd, Helm and kube-router from Go modules (cached by version)" e2e/cluster/build.sh
phase "cluster: host packages" e2e/cluster/setup-host.sh
trap cluster_down EXIT
phase "cluster: up" e2e/cluster/up.sh
phase "cluster: smoke (pods, services, NetworkPolicy enforcement)" e2e/cluster/smoke.sh
# The images first: the operator's tests run deployed servers, whose gate is the mcp-guard image.
phase "e2e: static binaries packed into images, imported into the cluster" e2e/images.sh
# HELM: the approval tests render the chart's admission policy with `helm template`.
phase "operator against the real cluster" env HELM="$HELM" cargo test -p mcp-guard-operator --locked --test cluster -- --ignored --test-threads=1
# Before the chart is installed: the store's test writes approvals and their status as an admin.
phase "the binding proxy's Kubernetes approval store against the real API server" \
  cargo test -p mcp-guard --locked --test kube_store -- --ignored
phase "helm lint" "$HELM" lint charts/mcp-guard
phase "e2e: CRDs, helm install, the end-to-end suite" e2e/run.sh
