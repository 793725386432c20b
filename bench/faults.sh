#!/usr/bin/env bash
# The long run of the fault property test (bench/README.md, "Faults"): t/84property.test.mjs, the CI test of issue #14,
# with 20,000 requests instead of 2,000. Installs what is missing (Debian 12, as root), builds the gateway and the mock
# Poe in Release into build-bench/, and runs it. `bash bench/faults.sh [N]`; PGW_PROPERTY_SEED repeats a run's draws.
# Exits non-zero when a response broke the contract (the report names each kind of breach with an example).
source "$(dirname "$0")/lib.sh"

packages=()
command -v node >/dev/null 2>&1 || packages+=(nodejs)
bench_install faults "${packages[@]}"
bench_build

export PGW_BIN="$PWD/$BENCH_GATEWAY" MOCK_POE_BIN="$PWD/$BENCH_MOCK" PGW_SOURCE_DIR="$PWD"
export PGW_PROPERTY_N="${1:-${PGW_PROPERTY_N:-20000}}"
export PGW_PROPERTY_CONCURRENCY="${PGW_PROPERTY_CONCURRENCY:-32}"
export PGW_PROPERTY_BUDGET_S="${PGW_PROPERTY_BUDGET_S:-3600}"
exec node --test --test-reporter=spec t/84property.test.mjs
