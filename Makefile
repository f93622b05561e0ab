# The two commands a new user needs (see README.md):
#   make run    run an example through the sandbox and print its outcome
#   make test   install what the tests need, then run every check and test
.PHONY: run test setup bench schema fuzz

EXAMPLE ?= examples/time.ts
CONFIG ?= examples/mcp-guard.yaml
MCP_SERVERS := $(or $(MCP_GUARD_CACHE),$(HOME)/.cache/mcp-guard)/mcp-servers

# Runs sandboxed code that calls a real MCP tool (mcp-server-time) through the binding proxy. Needs Rust,
# Python 3 (with venv) and Node with npm; nothing else (no protoc, no root). See README.md.
run:
	@echo "==> installing the example's MCP servers (pinned) under $(MCP_SERVERS)"
	@./scripts/setup-mcp-servers.sh
	@echo "==> building mcp-guard (cargo profile 'local': optimised, no LTO; a first build takes a few minutes)"
	cargo build --profile local --locked -p mcp-guard --bin mcp-guard
	@echo "==> running $(EXAMPLE) in the sandbox with $(CONFIG); the outcome follows"
	@PATH="$(MCP_SERVERS)/venv/bin:$$PATH" cargo run --quiet --profile local --locked -p mcp-guard --bin mcp-guard -- exec --config $(CONFIG) $(EXAMPLE)

test:
	./scripts/test.sh

setup:
	./scripts/setup.sh

bench:
	cargo bench -p mcp-guard --bench engine
	cargo bench -p mcp-guard --bench proxy
	cargo bench -p mcp-guard --bench api

# Regenerate sandbox/outcome.schema.json after changing the outcome types.
schema:
	cargo run --quiet -p mcp-guard --bin mcp-guard -- outcome-schema > sandbox/outcome.schema.json

# Fuzz every target for FUZZ_SECONDS (default 300) each on nightly (cargo-fuzz); see scripts/fuzz.sh.
fuzz:
	./scripts/fuzz.sh
