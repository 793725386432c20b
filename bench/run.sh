#!/usr/bin/env bash
# The benchmark in one command (bench/README.md): installs what is missing (Debian 12, as root), builds the gateway and
# the mock Poe in Release, installs claude-code-router 2.0.0 (pinned by bench/package-lock.json), and runs the harness
# pinned to the load generators' core. Arguments go to bench/run.mjs (e.g. --runs 5, --no-ccr, --only latency).
source "$(dirname "$0")/lib.sh"

packages=(wrk nghttp2-client util-linux gcc haproxy nginx-light linux-perf)
command -v node >/dev/null 2>&1 || packages+=(nodejs)
command -v npm >/dev/null 2>&1 || packages+=(npm)
bench_install bench "${packages[@]}"
(cd bench && npm ci --no-audit --no-fund --loglevel=error)
bench_build

# the harness itself shares the load generators' core (the last one, as run.mjs picks it)
load_cpu=$(( $(nproc) > 2 ? 2 : $(nproc) - 1 ))
exec taskset -c "$load_cpu" node bench/run.mjs --gateway "$BENCH_GATEWAY" --mock "$BENCH_MOCK" "$@"
