#!/usr/bin/env bash
# Proves the README's first command on a fresh machine's terms: `make run` builds and runs with no
# `protoc` anywhere (a `protoc` that fails when called comes first on PATH, and PROTOC is unset; the protos
# are compiled again in this run), and the example's outcome is `completed` with the tool's result.
set -euo pipefail
cd "$(dirname "$0")/.."

shim="$(mktemp -d)"
trap 'rm -rf "$shim"' EXIT
cat > "$shim/protoc" <<'SH'
#!/bin/sh
echo "protoc was called, but building MCP Guard must need nothing but cargo" >&2
exit 97
SH
chmod +x "$shim/protoc"
# The proto crate's build script runs again (with the shim on PATH), not only a cached result of it.
touch proto/build.rs

out="$shim/outcome.txt"
env -u PROTOC PATH="$shim:$PATH" make --no-print-directory run | tee "$out"

python3 - "$out" <<'PY'
import json, sys
text = open(sys.argv[1]).read()
start = text.find("\n{")
if start < 0:
    sys.exit("make run printed no outcome")
outcome = json.loads(text[start:])
if outcome.get("outcome") != "completed":
    sys.exit(f"make run: expected outcome completed, got {outcome.get('outcome')}: {outcome}")
result = outcome["result"]
if "T21:00:00" not in result["noonUtcInTokyo"]:
    sys.exit(f"make run: the tool's result is not 12:00 UTC in Tokyo (21:00): {result}")
calls = [(c["server"], c["tool"], c["status"]) for c in outcome["toolCalls"]]
if calls != [("time", "get_current_time", "ok"), ("time", "convert_time", "ok")]:
    sys.exit(f"make run: unexpected tool calls {calls}")
print(f"make run without protoc: completed, noon UTC in Tokyo is {result['noonUtcInTokyo']} ({result['difference']})")
PY
