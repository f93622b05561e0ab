#!/usr/bin/env bash
# `make fuzz`: every fuzz target (fuzz/fuzz_targets/) for FUZZ_SECONDS each (default 300) with
# cargo-fuzz on the nightly toolchain, starting from the committed seeds in fuzz/corpus/<target>/ and
# growing that corpus locally (only `seed-*` files are committed). A crash or an input that runs over 5 s
# (instrumented) stops the run;
# crashes are copied to fuzz/regressions/<target>/, which `make test` replays on stable
# (fuzz/tests/corpus.rs) once the cause is fixed; copy slow inputs (fuzz/artifacts/) there too.
#
#   make fuzz                                  # all targets, 5 minutes each
#   FUZZ_SECONDS=60 FUZZ_TARGETS="validator config" make fuzz
#   FUZZ_JOBS=2 make fuzz                      # libFuzzer workers per target
set -euo pipefail
cd "$(dirname "$0")/.."
CARGO_FUZZ_VERSION=0.13.2
SECONDS_EACH="${FUZZ_SECONDS:-300}"
JOBS="${FUZZ_JOBS:-1}"
TARGETS="${FUZZ_TARGETS:-validator typescript config quantity host_frames proxy_messages}"
# Instrumented builds use other flags: their own target dir, so the stable build cache stays warm.
TARGET_DIR="${MCP_GUARD_CACHE:-$HOME/.cache/mcp-guard}/target-fuzz"

if ! cargo fuzz --version 2>/dev/null | grep -q "$CARGO_FUZZ_VERSION"; then
  echo "==> installing cargo-fuzz $CARGO_FUZZ_VERSION"
  cargo install cargo-fuzz --version "$CARGO_FUZZ_VERSION" --locked
fi
rustup toolchain list | grep -q '^nightly' || rustup toolchain install nightly --profile minimal

for t in $TARGETS; do
  echo "==> fuzz $t for ${SECONDS_EACH}s"
  mkdir -p "fuzz/corpus/$t" "fuzz/artifacts/$t"
  # More than one job: libFuzzer forks workers that log to fuzz-<n>.log in the working directory.
  parallel=()
  ((JOBS > 1)) && parallel=(-jobs="$JOBS" -workers="$JOBS")
  if ! cargo +nightly fuzz run "$t" --features libfuzzer --target-dir "$TARGET_DIR" \
      "fuzz/corpus/$t" -- -max_total_time="$SECONDS_EACH" "${parallel[@]}" \
      -rss_limit_mb=4096 -max_len=65536 -timeout=5; then
    mkdir -p "fuzz/regressions/$t"
    cp fuzz/artifacts/"$t"/crash-* fuzz/artifacts/"$t"/slow-unit-* fuzz/artifacts/"$t"/timeout-* \
      "fuzz/regressions/$t/" 2>/dev/null || true
    echo "fuzz: $t found a crash; its input is in fuzz/regressions/$t/ (replayed by make test)" >&2
    exit 1
  fi
done
echo "fuzz: done ($TARGETS, ${SECONDS_EACH}s each)"
