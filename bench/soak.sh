#!/usr/bin/env bash
# The soak in one command (bench/README.md, "Soak"): installs what is missing (Debian 12, as root), builds the gateway
# and the mock Poe in Release, and runs bench/soak.mjs: 10 minutes of 1,000 concurrent paced streams on both route
# kinds, clients giving up at random, with RSS and open fds watched. Arguments go to bench/soak.mjs (e.g. --duration 60
# --streams 200). Exits non-zero when the verdict fails.
set -euo pipefail
cd "$(dirname "$0")/.."

bash tools/deps.sh
packages=(gcc iproute2)
command -v node >/dev/null 2>&1 || packages+=(nodejs)
missing=()
for p in "${packages[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
    echo "soak: installing ${missing[*]}"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

# the same Release build as bench/run.sh
cmake -S . -B build-bench -DCMAKE_BUILD_TYPE=Release >/dev/null
cmake --build build-bench -j"$(nproc)" --target poe-gateway mock-poe >/dev/null

# 1,000 streams need about 1,100 open files in the gateway and in the client
ulimit -n "$(ulimit -Hn)" 2>/dev/null || true
exec node bench/soak.mjs --gateway build-bench/poe-gateway --mock build-bench/t/mock-poe/mock-poe "$@"
