#!/usr/bin/env bash
# The soak in one command (bench/README.md, "Soak"): installs what is missing (Debian 12, as root), builds the gateway
# and the mock Poe in Release, and runs bench/soak.mjs: 10 minutes of 1,000 concurrent paced streams on both route
# kinds, clients giving up at random, with RSS and open fds watched. Arguments go to bench/soak.mjs (e.g. --duration 60
# --streams 200). Exits non-zero when the verdict fails.
source "$(dirname "$0")/lib.sh"

packages=(gcc iproute2)
command -v node >/dev/null 2>&1 || packages+=(nodejs)
bench_install soak "${packages[@]}"
bench_build

# 1,000 streams need about 1,100 open files in the gateway and in the client
ulimit -n "$(ulimit -Hn)" 2>/dev/null || true
exec node bench/soak.mjs --gateway "$BENCH_GATEWAY" --mock "$BENCH_MOCK" "$@"
