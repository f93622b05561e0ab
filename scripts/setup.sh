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

step "Rust dependencies"
cargo fetch --locked
