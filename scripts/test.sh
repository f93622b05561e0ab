#!/usr/bin/env bash
# Every check and test of MCP Guard, in the order a reviewer would want them: setup, formatting, lints,
# then the tests. Each phase prints how long it took.
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
