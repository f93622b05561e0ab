#!/usr/bin/env bash
# Installs MCP Guard into the cluster in KUBECONFIG and runs the end-to-end tests.
#
#   e2e/cluster/up.sh && e2e/images.sh && e2e/run.sh      # this machine (KUBECONFIG defaults to the test cluster)
#   e2e/kind/run.sh                                       # with Docker + kind
#
# Phases (each timed): CRDs (kubectl apply -f crds/yaml/), `helm upgrade --install` of charts/mcp-guard
# into namespace mcp-guard-system, wait for the operator to be Ready, the chart tests (`--test chart`:
# RBAC and admission objects from `helm template`), then the Rust suite (`cargo test -p mcp-guard-e2e`
# with MCP_GUARD_E2E=1; its last phase applies examples/kubernetes/ as it is, so the images must carry
# the tags written there). E2E_SKIP_TESTS=1 stops after the install;
# E2E_UNINSTALL=1 uninstalls the release at the end.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
CACHE="${MCP_GUARD_CACHE:-$HOME/.cache/mcp-guard}"
export KUBECONFIG="${KUBECONFIG:-${MCP_GUARD_CLUSTER_DIR:-/tmp/mcp-guard-cluster}/admin.kubeconfig}"
NS="${MCP_GUARD_E2E_OPERATOR_NS:-mcp-guard-system}"
RELEASE=mcp-guard

find_tool() { # kubectl/helm: PATH first, then the cluster harness's cache
  local t=$1 c
  if command -v "$t" >/dev/null; then command -v "$t"; return; fi
  for c in "$CACHE"/cluster/kubernetes-*/bin/"$t" "$CACHE"/cluster/helm-*/bin/"$t"; do
    [[ -x $c ]] && { echo "$c"; return; }
  done
  echo "run.sh: $t not found (PATH or $CACHE/cluster/*/bin)" >&2; exit 1
}
KUBECTL="$(find_tool kubectl)"
HELM="$(find_tool helm)"
export KUBECTL

phase_start=$SECONDS
total_start=$SECONDS
phase() { echo "== e2e: $1 took $((SECONDS - phase_start)) s"; phase_start=$SECONDS; }

"$KUBECTL" apply --server-side --force-conflicts -f "$ROOT/crds/yaml/"
"$KUBECTL" wait --for=condition=Established --timeout=60s \
  crd/mcpguardpolicies.mcpguard.io crd/mcpservers.mcpguard.io
phase "CRDs"

# The CRDs are already applied (helm does not upgrade CRDs anyway); --skip-crds avoids a conflict.
# MCP_GUARD_HELM_ARGS (default below): the suite deploys mcp-guard.local/mcp-test-server as an McpServer
# (images.servers), MCP_GUARD_E2E_EXECUTOR_IMAGE may name another mcp-guard.local/ executor image
# (images.executor). egress.clusterCIDRs stays unset: examples/kubernetes reaches its stand-in "remote"
# server inside the cluster's ranges, which that value would refuse.
HELM_ARGS="${MCP_GUARD_HELM_ARGS-"--set images.servers={mcp-guard.local/} --set images.executor={mcp-guard.local/}"}"
# shellcheck disable=SC2086 # word splitting of HELM_ARGS intended
"$HELM" upgrade --install "$RELEASE" "$ROOT/charts/mcp-guard" --namespace "$NS" --create-namespace \
  --skip-crds --wait --timeout 3m $HELM_ARGS
phase "helm install"

if ! "$KUBECTL" -n "$NS" wait --for=condition=Available --timeout=120s deployment -l app.kubernetes.io/instance="$RELEASE" \
   || ! "$KUBECTL" -n "$NS" wait --for=condition=Ready --timeout=120s pod -l app.kubernetes.io/instance="$RELEASE"; then
  "$KUBECTL" -n "$NS" get pods -o wide >&2 || true
  "$KUBECTL" -n "$NS" describe pods >&2 || true
  "$KUBECTL" -n "$NS" logs -l app.kubernetes.io/instance="$RELEASE" --tail=100 >&2 || true
  echo "run.sh: the operator did not become Ready" >&2
  exit 1
fi
phase "operator Ready"

rc=0
if [[ -z ${E2E_SKIP_TESTS:-} ]]; then
  # The chart's RBAC and admission objects (helm template, no cluster); fails without helm here.
  (cd "$ROOT" && MCP_GUARD_E2E=1 HELM="$HELM" cargo test --locked -p mcp-guard-e2e --test chart) || rc=$?
  phase "chart tests"
  (cd "$ROOT" && MCP_GUARD_E2E=1 cargo test --locked -p mcp-guard-e2e --test e2e -- --ignored --nocapture --test-threads=1) || rc=$?
  phase "e2e tests"
  if ((rc != 0)); then
    echo "== e2e: FAILED; the test namespaces' pods and their logs, then the operator's log tail:" >&2
    "$KUBECTL" get pods -n e2e-guard -o wide >&2 || true
    "$KUBECTL" logs -n e2e-guard --all-containers --prefix --tail=15 -l app.kubernetes.io/managed-by=mcp-guard-operator >&2 || true
    # examples/kubernetes (the last phase), when it got that far
    "$KUBECTL" get pods,jobs,mcps,mgp -n mcp-guard-example -o wide >&2 2>/dev/null || true
    "$KUBECTL" logs -n mcp-guard-example --all-containers --prefix --tail=15 -l app.kubernetes.io/managed-by=mcp-guard-operator >&2 2>/dev/null || true
    "$KUBECTL" -n "$NS" logs -l app.kubernetes.io/instance="$RELEASE" --tail=30 >&2 || true
  fi
fi
if [[ -n ${E2E_UNINSTALL:-} ]]; then
  "$HELM" uninstall "$RELEASE" --namespace "$NS" --wait || true
  phase "helm uninstall"
fi
echo "== e2e: total $((SECONDS - total_start)) s"
exit "$rc"
