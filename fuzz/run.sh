#!/usr/bin/env bash
# Builds the libFuzzer targets (clang, ASan+UBSan) and fuzzes each for N seconds (default 60), starting from the seed
# corpus in fuzz/corpus/<target>/; first every saved crash in fuzz/regressions/ is replayed. Exits non-zero when a
# target crashes: the input is saved as fuzz/regressions/<target>/crash-* (add it to git: it is replayed from then on).
#
#     fuzz/run.sh [seconds] [target...]        targets: sse usage metrics reqbody reqbody_simd translate_request translate_stream
#                                                       translate_response config (default: all)
# Environment: FUZZ_BUILD_DIR (default build-fuzz), FUZZ_PARALLEL (targets fuzzed at once, default 1; the test suite
# uses one per core), FUZZ_JOBS (parallel fuzzing processes per target, default 1),
# FUZZ_ARGS (more libFuzzer flags, e.g. -runs=10000000). New inputs found go to a scratch corpus in the build directory;
# merge them into the repo's with
#     build-fuzz/fuzz/fuzz_<target> -merge=1 fuzz/corpus/<target> build-fuzz/fuzz/corpus-<target>
# To look past findings already reported and not fixed yet (a long run), name their invariants in FUZZ_ALLOW (see the
# FUZZ_ALLOW= notes in the targets) and their UBSan reports in fuzz/known.supp:
#     FUZZ_ALLOW=config-newline,retry-after-overflow \
#     UBSAN_OPTIONS=halt_on_error=1:print_stacktrace=1:suppressions=$PWD/fuzz/known.supp fuzz/run.sh 1200
set -euo pipefail
cd "$(dirname "$0")/.."
src=$PWD
seconds=${1:-60}
shift || true
targets=("$@")
[ ${#targets[@]} -ne 0 ] || targets=(sse usage metrics reqbody reqbody_simd translate_request translate_stream translate_response config)
build=${FUZZ_BUILD_DIR:-build-fuzz}
jobs=${FUZZ_JOBS:-1}
par=${FUZZ_PARALLEL:-1}
if [ "$par" -gt 1 ] && [ "$jobs" -gt 1 ]; then
    echo "fuzz/run.sh: FUZZ_PARALLEL and FUZZ_JOBS cannot both be above 1 (the workers' logs would collide)" >&2
    exit 2
fi

cmake -S . -B "$build" -DFUZZ=ON -DPGW_TESTS=OFF -DCMAKE_C_COMPILER=clang -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
cmake --build "$build" -j"$(nproc)" --target $(printf 'fuzz_%s ' "${targets[@]}") >/dev/null

export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}
# Replays the saved inputs of target $1, then fuzzes it; prints one line (and the finding); returns non-zero on a crash.
fuzz_one() {
    local t=$1 bin reg replay work log rc execs rate crashes parallel
    bin=$build/fuzz/fuzz_$t
    reg=fuzz/regressions/$t
    # replay the known crashes and the seeds once
    replay=(fuzz/corpus/"$t")
    [ -d "$reg" ] && replay+=("$reg")
    if ! "$bin" -runs=0 -artifact_prefix="$build/fuzz/replay-$t-" "${replay[@]}" >"$build/fuzz/$t.replay.log" 2>&1; then
        echo "FAIL $t: a saved input crashes (see $build/fuzz/$t.replay.log)"
        tail -30 "$build/fuzz/$t.replay.log"
        return 1
    fi
    work=$build/fuzz/corpus-$t
    mkdir -p "$work" "$reg"
    log=$build/fuzz/$t.log
    set +e
    parallel=()
    [ "$jobs" -gt 1 ] && parallel=(-jobs="$jobs" -workers="$jobs")
    "$bin" -max_total_time="$seconds" -print_final_stats=1 -timeout=10 -rss_limit_mb=2048 -max_len=65536 \
        -artifact_prefix="$reg/" ${FUZZ_ARGS:-} "${parallel[@]}" "$work" fuzz/corpus/"$t" >"$log" 2>&1
    rc=$?
    set -e
    # with -jobs, each worker writes fuzz-N.log
    if [ "$jobs" -gt 1 ]; then cat fuzz-[0-9]*.log >>"$log" 2>/dev/null && rm -f fuzz-[0-9]*.log; fi
    execs=$(grep -h '^stat::number_of_executed_units' "$log" | awk '{s += $2} END {print s + 0}')
    rate=$(grep -h '^stat::average_exec_per_sec' "$log" | awk '{s += $2} END {print s + 0}')
    crashes=$(find "$reg" -newer "$build/fuzz/$t.replay.log" -type f \( -name 'crash-*' -o -name 'leak-*' -o -name 'timeout-*' -o -name 'oom-*' \) | wc -l)
    if [ $rc -ne 0 ] || [ "$crashes" -ne 0 ]; then
        echo "FAIL $t: exit $rc, $crashes new input(s) in $reg after $execs executions (log: $log)"
        grep -h -A25 -m1 'ERROR: \|invariant broken' "$log" || tail -30 "$log"
        return 1
    else
        echo "ok   $t: $execs executions in ${seconds} s, $rate exec/s"
    fi
}

status=0
if [ "$par" -le 1 ]; then
    for t in "${targets[@]}"; do fuzz_one "$t" || status=1; done
else
    # several targets at once (one process each), each reporting into its own file, printed in order at the end
    out=$build/fuzz/results
    mkdir -p "$out"
    running=0
    for t in "${targets[@]}"; do
        if [ "$running" -ge "$par" ]; then wait -n || status=1; running=$((running - 1)); fi
        fuzz_one "$t" >"$out/$t" 2>&1 &
        running=$((running + 1))
    done
    while [ "$running" -gt 0 ]; do wait -n || status=1; running=$((running - 1)); done
    for t in "${targets[@]}"; do cat "$out/$t"; done
fi
exit $status
