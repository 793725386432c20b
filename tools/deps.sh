#!/usr/bin/env bash
# Installs what poe-gateway needs on Debian 12, as root: the build and runtime packages, and with --test also what the
# test suite uses (Node.js, nginx and the npm test clients). Safe to run again: it installs only what is missing.
set -euo pipefail
cd "$(dirname "$0")/.."

packages=(build-essential cmake pkg-config ca-certificates openssl
          libh2o-dev libuv1-dev libyajl-dev libyaml-dev libcurl4-openssl-dev libnghttp2-dev libssl-dev libsqlite3-dev libhiredis-dev)
with_tests=0
if [ "${1:-}" = "--test" ]; then
    with_tests=1
    packages+=(python3 curl nghttp2-client wrk util-linux nginx-light haproxy linux-perf clang libclang-rt-14-dev docker-compose chromium redis-server)
    command -v node >/dev/null 2>&1 || packages+=(nodejs)
    command -v npm >/dev/null 2>&1 || packages+=(npm)
fi

missing=()
for p in "${packages[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
    echo "deps: installing ${missing[*]}"
    if [ "$(id -u)" != 0 ]; then
        echo "deps: run as root (or install these packages yourself): ${missing[*]}" >&2
        exit 1
    fi
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
    # t/83rotation runs an nginx of its own: the service the package starts (on port 80) is not wanted
    if [[ " ${missing[*]} " == *" nginx-light "* ]] && command -v systemctl >/dev/null 2>&1; then
        systemctl disable --now nginx >/dev/null 2>&1 || true
    fi
    # likewise the haproxy service: bench/run.mjs runs its own (t/70bench-smoke)
    if [[ " ${missing[*]} " == *" haproxy "* ]] && command -v systemctl >/dev/null 2>&1; then
        systemctl disable --now haproxy >/dev/null 2>&1 || true
    fi
fi

if [ $with_tests = 1 ]; then
    # the official Anthropic SDK and the Claude Code CLI, pinned by t/package-lock.json
    (cd t && npm ci --no-audit --no-fund --loglevel=error)
    # the Kubernetes API's schemas, for t/99replicas-deploy's check of deploy/k8s (pinned by its package-lock.json)
    (cd deploy/k8s/validate && npm ci --no-audit --no-fund --loglevel=error)
fi
