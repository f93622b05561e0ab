# The two commands a new user needs (see README.md):
#   make run    run an example through the sandbox and print its outcome
#   make test   install what the tests need, then run every check and test
.PHONY: run test setup bench bench-peers soak schema fuzz

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
	cargo bench -p mcp-guard --bench engines
	cargo bench -p mcp-guard --bench proxy
	cargo bench -p mcp-guard --bench api

# MCP Guard beside the sandboxes people use instead (Deno subprocess and Worker, isolated-vm,
# quickjs-emscripten, node:vm), the same snippets measured the same way, one table (README.md, "Peers").
# PEERS_SECONDS per cell (default 5), PEERS_ONLY=row,row to run some rows; see bench/peers/bench.mjs.
PEERS_DIR := $(or $(MCP_GUARD_CACHE),$(HOME)/.cache/mcp-guard)/peers
PEERS_TARGET := $(or $(CARGO_TARGET_DIR),$(CURDIR)/target)
bench-peers:
	@echo "==> installing the peers (pinned: bench/peers/package-lock.json) under $(PEERS_DIR)"
	@./scripts/setup-peers.sh
	@echo "==> building mcp-guard and the test MCP server (cargo profile 'local', as make run)"
	cargo build --profile local --locked -p mcp-guard --bin mcp-guard -p mcp-guard-test-server --bin mcp-test-server
	@MCP_GUARD_BIN=$(PEERS_TARGET)/local/mcp-guard MCP_TEST_SERVER_BIN=$(PEERS_TARGET)/local/mcp-test-server \
		MCP_GUARD_PROFILE=local $(PEERS_DIR)/node --no-node-snapshot --expose-gc bench/peers/bench.mjs

# `serve` under a mixed load (80% of its measured throughput) for MCP_GUARD_SOAK_SECS (default 600): outcomes
# by kind, latency, memory, descriptors and threads over time, the audit log balanced (executor/tests/soak.rs).
# `make test` runs it for 60 s.
soak:
	MCP_GUARD_SOAK_SECS=$${MCP_GUARD_SOAK_SECS:-600} cargo test --profile local --locked -p mcp-guard --test soak -- --ignored --nocapture

# Regenerate sandbox/outcome.schema.json after changing the outcome types.
schema:
	cargo run --quiet -p mcp-guard --bin mcp-guard -- outcome-schema > sandbox/outcome.schema.json

# Fuzz every target for FUZZ_SECONDS (default 300) each on nightly (cargo-fuzz); see scripts/fuzz.sh.
fuzz:
	./scripts/fuzz.sh
