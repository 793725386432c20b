#!/usr/bin/env bash
# Installs the build dependencies, builds poe-gateway and runs it with the default config (conf/gateway.yaml).
# Extra arguments go to the gateway, e.g. `bash tools/run.sh --port 4001`.
set -euo pipefail
cd "$(dirname "$0")/.."
bash tools/deps.sh
cmake -S . -B build -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
cmake --build build -j"$(nproc)" --target poe-gateway >/dev/null
exec ./build/poe-gateway "$@"
