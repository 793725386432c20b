#!/usr/bin/env bash
# The benchmark in one command (bench/README.md): installs what is missing (Debian 12, as root), builds the gateway and
# the mock Poe in Release, installs claude-code-router 2.0.0 (pinned by bench/package-lock.json), and runs the harness
# pinned to the load generators' core. Arguments go to bench/run.mjs (e.g. --runs 5, --no-ccr, --only latency).
set -euo pipefail
cd "$(dirname "$0")/.."

bash tools/deps.sh
packages=(wrk nghttp2-client util-linux gcc)
command -v node >/dev/null 2>&1 || packages+=(nodejs)
command -v npm >/dev/null 2>&1 || packages+=(npm)
missing=()
for p in "${packages[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
    echo "bench: installing ${missing[*]}"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi
(cd bench && npm ci --no-audit --no-fund --loglevel=error)

cmake -S . -B build-bench -DCMAKE_BUILD_TYPE=Release >/dev/null
cmake --build build-bench -j"$(nproc)" --target poe-gateway mock-poe >/dev/null

# the harness itself shares the load generators' core (the last one, as run.mjs picks it)
load_cpu=$(( $(nproc) > 2 ? 2 : $(nproc) - 1 ))
exec taskset -c "$load_cpu" node bench/run.mjs --gateway build-bench/poe-gateway --mock build-bench/t/mock-poe/mock-poe "$@"
