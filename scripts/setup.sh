#!/usr/bin/env bash
# Installs what testing MCP Guard needs on a fresh machine. Idempotent: it only installs what is missing.
# Building needs nothing but cargo (the protos are compiled by protox, in Rust: no protoc).
set -euo pipefail
cd "$(dirname "$0")/.."

step() { printf '\n==> %s\n' "$*"; }

if ! command -v cargo >/dev/null; then
  echo "cargo is required: install Rust with rustup first" >&2
  exit 1
fi

step "Rust components (rustfmt, clippy)"
for component in rustfmt clippy; do
  if ! rustup component list --installed 2>/dev/null | grep -q "^${component}"; then
    rustup component add "$component"
  fi
done

step "Real MCP servers used by the tests and the example"
./scripts/setup-mcp-servers.sh

step "Clients and tools of the API tests (grpcio, MCP conformance suite, MCP SDK, Deno, Node 22)"
./scripts/setup-api-tests.sh

step "Deno for the V8 engine (limits.engine: v8): the binary of the npm package pinned above"
CACHE="${MCP_GUARD_CACHE:-$HOME/.cache/mcp-guard}"
DENO_SRC="$CACHE/api-tests/node/node_modules/@deno/linux-x64-glibc/deno"
DENO_DST="$CACHE/deno/deno"
if [ ! -x "$DENO_SRC" ]; then
  echo "the Deno binary is missing from the npm package ($DENO_SRC)" >&2
  exit 1
fi
if ! cmp -s "$DENO_SRC" "$DENO_DST"; then
  mkdir -p "$(dirname "$DENO_DST")"
  cp "$DENO_SRC" "$DENO_DST.tmp"
  mv "$DENO_DST.tmp" "$DENO_DST"
fi
"$DENO_DST" --version | head -1

step "Rust dependencies"
cargo fetch --locked
