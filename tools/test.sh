#!/usr/bin/env bash
# Installs everything the tests need, then builds and runs the whole suite twice: a normal build with warnings as
# errors, and an ASan+UBSan build. ctest runs the C unit tests and the integration tests (t/*.test.mjs). Last, every
# libFuzzer target replays its saved inputs and fuzzes for 60 s (clang, ASan+UBSan), one target per core at a time.
set -euo pipefail
cd "$(dirname "$0")/.."
bash tools/deps.sh --test
jobs=$(nproc)

cmake -S . -B build -DWERROR=ON -DPGW_TESTS=ON -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
cmake --build build -j"$jobs"
ctest --test-dir build --output-on-failure -j"$jobs"

cmake -S . -B build-sanitize -DWERROR=ON -DSANITIZE=ON -DPGW_TESTS=ON -DCMAKE_BUILD_TYPE=Debug >/dev/null
cmake --build build-sanitize -j"$jobs"
ASAN_OPTIONS=detect_leaks=1:abort_on_error=0 UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
    LSAN_OPTIONS=suppressions="$PWD/t/lsan.supp" \
    ctest --test-dir build-sanitize --output-on-failure -j"$jobs"

FUZZ_PARALLEL=$jobs bash fuzz/run.sh 60
