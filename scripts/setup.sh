#!/usr/bin/env bash
# Installs what building and testing MCP Guard needs on a fresh machine. Idempotent: it only installs
# what is missing.
set -euo pipefail

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

step "Rust dependencies"
cargo fetch --locked
