# The two commands a new user needs (see README.md):
#   make run    run an example through the sandbox and print its outcome
#   make test   install what the tests need, then run every check and test
.PHONY: run test setup bench schema

EXAMPLE ?= examples/completed.ts

run:
	cargo run --quiet --release -p mcp-guard-executor --bin mcp-guard -- exec $(EXAMPLE)

test:
	./scripts/test.sh

setup:
	./scripts/setup.sh

bench:
	cargo bench -p mcp-guard-executor --bench engine

# Regenerate executor/outcome.schema.json after changing the outcome types.
schema:
	cargo run --quiet -p mcp-guard-executor --bin mcp-guard -- outcome-schema > executor/outcome.schema.json
