#!/usr/bin/env bash
# Installs real, third-party MCP servers that MCP Guard's tests talk to, at pinned versions, under
# ${MCP_GUARD_CACHE:-$HOME/.cache/mcp-guard}/mcp-servers/:
#   - @modelcontextprotocol/server-everything (npm), in DIR/everything
#   - mcp-server-time (PyPI), in a virtualenv at DIR/venv
# Idempotent: a server whose pinned version is already installed is left alone.
# Needs node + npm and python3 (with the venv module).
set -euo pipefail

EVERYTHING_VERSION="2026.8.31"
TIME_VERSION="2026.10.19"

CACHE="${MCP_GUARD_CACHE:-$HOME/.cache/mcp-guard}"
DIR="$CACHE/mcp-servers"
EVERYTHING_DIR="$DIR/everything"
EVERYTHING_PKG="$EVERYTHING_DIR/node_modules/@modelcontextprotocol/server-everything"
VENV="$DIR/venv"

step() { printf '==> %s\n' "$*" >&2; }

for tool in node npm python3; do
  if ! command -v "$tool" >/dev/null; then
    echo "$tool is required" >&2
    exit 1
  fi
done
mkdir -p "$DIR"

installed_everything=""
if [[ -f "$EVERYTHING_PKG/package.json" ]]; then
  installed_everything="$(node -p 'require(process.argv[1]).version' "$EVERYTHING_PKG/package.json")"
fi
if [[ "$installed_everything" == "$EVERYTHING_VERSION" ]]; then
  step "@modelcontextprotocol/server-everything $EVERYTHING_VERSION already installed"
else
  step "installing @modelcontextprotocol/server-everything@$EVERYTHING_VERSION"
  mkdir -p "$EVERYTHING_DIR"
  npm install --prefix "$EVERYTHING_DIR" --no-audit --no-fund --save-exact \
    "@modelcontextprotocol/server-everything@$EVERYTHING_VERSION" >&2
fi

installed_time=""
if [[ -x "$VENV/bin/python" ]]; then
  installed_time="$("$VENV/bin/python" -c \
    'import importlib.metadata as m; print(m.version("mcp-server-time"))' 2>/dev/null || true)"
fi
if [[ "$installed_time" == "$TIME_VERSION" ]]; then
  step "mcp-server-time $TIME_VERSION already installed"
else
  step "installing mcp-server-time==$TIME_VERSION"
  [[ -x "$VENV/bin/python" ]] || python3 -m venv "$VENV"
  "$VENV/bin/python" -m pip install --quiet --disable-pip-version-check "mcp-server-time==$TIME_VERSION" >&2
fi

# server-everything's streamableHttp mode calls app.listen(PORT) with no host, i.e. on every interface.
# Test traffic must stay on this machine, so its HTTP command preloads this file, which makes every TCP
# listen() that names no host bind 127.0.0.1 only.
LOOPBACK="$DIR/listen-loopback.cjs"
cat >"$LOOPBACK.tmp" <<'JS'
// Preloaded with `node --require`: a TCP listen() that names no host binds 127.0.0.1, not every interface.
"use strict";
const net = require("node:net");
const listen = net.Server.prototype.listen;
const isPort = (v) => typeof v === "number" || (typeof v === "string" && /^\d+$/.test(v));
net.Server.prototype.listen = function (...args) {
  if (isPort(args[0]) && typeof args[1] !== "string") {
    args.splice(1, 0, "127.0.0.1");
  } else if (args[0] && typeof args[0] === "object" && args[0].path === undefined && !args[0].host) {
    args[0] = { ...args[0], host: "127.0.0.1" };
  } else if (args.length === 0 || typeof args[0] === "function") {
    args.unshift(0, "127.0.0.1");
  }
  return listen.apply(this, args);
};
JS
mv "$LOOPBACK.tmp" "$LOOPBACK"

cat <<EOF
everything (stdio):           node $EVERYTHING_PKG/dist/index.js stdio
everything (streamable HTTP): PORT=3001 node --require $LOOPBACK $EVERYTHING_PKG/dist/index.js streamableHttp
                              (serves http://127.0.0.1:\$PORT/mcp, loopback only)
time (stdio):                 $VENV/bin/mcp-server-time --local-timezone UTC
EOF
