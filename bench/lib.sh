# poe-gateway: MIT licence. What bench/run.sh and bench/soak.sh share, sourced by both: strict mode, the checkout's root
# as the working directory, the packages a harness needs (installed when missing: Debian 12, as root), and the Release
# build of the gateway and the mock Poe that both run.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

# The binaries bench_build makes.
BENCH_GATEWAY=build-bench/poe-gateway
BENCH_MOCK=build-bench/t/mock-poe/mock-poe

# Prints those of the Debian packages named that are not installed, one a line.
bench_missing() {
    local p
    for p in "$@"; do
        dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "ok installed" || echo "$p"
    done
}

# Installs the gateway's build dependencies (tools/deps.sh), then those of the packages named after `$1` (the harness's
# name, for the message) that are missing.
bench_install() {
    local who=$1
    shift
    bash tools/deps.sh
    local missing
    mapfile -t missing < <(bench_missing "$@")
    if [ ${#missing[@]} -gt 0 ]; then
        echo "$who: installing ${missing[*]}"
        export DEBIAN_FRONTEND=noninteractive
        apt-get update -qq
        apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
    fi
}

# Builds $BENCH_GATEWAY and $BENCH_MOCK (Release, in build-bench).
bench_build() {
    cmake -S . -B build-bench -DCMAKE_BUILD_TYPE=Release >/dev/null
    cmake --build build-bench -j"$(nproc)" --target poe-gateway mock-poe >/dev/null
}
