# The two commands a new user needs (see README.md):
#   make run    run an example through the sandbox and print its outcome
#   make test   install what the tests need, then run every check and test
.PHONY: run test setup bench schema

EXAMPLE ?= examples/time.ts
CONFIG ?= examples/mcp-guard.yaml
MCP_SERVERS := $(or $(MCP_GUARD_CACHE),$(HOME)/.cache/mcp-guard)/mcp-servers

# Runs sandboxed code that calls a real MCP tool (mcp-server-time) through the binding proxy.
run:
	./scripts/setup-mcp-servers.sh >/dev/null
	PATH="$(MCP_SERVERS)/venv/bin:$$PATH" cargo run --quiet --release -p mcp-guard-executor --bin mcp-guard -- exec --config $(CONFIG) $(EXAMPLE)

test:
	./scripts/test.sh

setup:
	./scripts/setup.sh

bench:
	cargo bench -p mcp-guard-executor --bench engine
	cargo bench -p mcp-guard-executor --bench proxy
	cargo bench -p mcp-guard-executor --bench api

# Regenerate executor/outcome.schema.json after changing the outcome types.
schema:
	cargo run --quiet -p mcp-guard-executor --bin mcp-guard -- outcome-schema > executor/outcome.schema.json
