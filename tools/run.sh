#!/usr/bin/env bash
# Installs the build dependencies, builds poe-gateway and runs it from this clone with conf/gateway.yaml (made from
# conf/gateway.yaml.template on the first start). Extra arguments go to the gateway, e.g. `bash tools/run.sh --port 4001`.
#
#     bash tools/run.sh --demo [ARGS]   no Poe key needed: the mock Poe of the tests (t/mock-poe) answers instead of
#                                       Poe, on a free port of 127.0.0.1, behind a gateway on port 4000 (or --port N)
#
# Before the gateway starts it prints the next step: the claude-env line that points Claude Code at it. PGW_BUILD_DIR
# (default build) is the CMake build directory; one that is already configured keeps its configuration.
set -euo pipefail
cd "$(dirname "$0")/.."

demo=0
if [ "${1:-}" = "--demo" ]; then
    demo=1
    shift
fi
build=${PGW_BUILD_DIR:-build}

bash tools/deps.sh
if [ ! -f "$build/CMakeCache.txt" ]; then
    # the tests need Node.js and Python, which tools/deps.sh installs only with --test
    tests=OFF
    if command -v node >/dev/null 2>&1 && command -v python3 >/dev/null 2>&1; then tests=ON; fi
    cmake -S . -B "$build" -DCMAKE_BUILD_TYPE=RelWithDebInfo -DPGW_TESTS=$tests >/dev/null
fi
targets=(poe-gateway)
if [ $demo = 1 ]; then targets+=(mock-poe); fi
cmake --build "$build" -j"$(nproc)" --target "${targets[@]}" >/dev/null

case "$build" in
/*) bin="$build/poe-gateway" ;;
*) bin="./$build/poe-gateway" ;;
esac
config_args=()
port=
prev=
for a in "$@"; do
    case "$prev" in --port | -p) port=$a ;; esac
    case "$a" in --port=*) port=${a#--port=} ;; esac
    prev=$a
done

if [ $demo = 1 ]; then
    port=${port:-4000}
    dir=$(mktemp -d -t poe-gateway-demo.XXXXXX)
    mock_pid=
    trap 'if [ -n "$mock_pid" ]; then kill "$mock_pid" 2>/dev/null || true; fi; rm -rf "$dir"' EXIT
    trap 'exit 130' INT # until the gateway runs: through the EXIT trap, so the mock never outlives the script
    trap 'exit 143' TERM
    "$build/t/mock-poe/mock-poe" --http-port 0 --api-key demo-poe-key >"$dir/mock.log" 2>&1 &
    mock_pid=$!
    mock_port=
    for _ in $(seq 100); do
        mock_port=$(sed -n 's/^mock-poe listening http=\([0-9]*\) .*/\1/p' "$dir/mock.log")
        if [ -n "$mock_port" ] || ! kill -0 "$mock_pid" 2>/dev/null; then break; fi
        sleep 0.1
    done
    if [ -z "$mock_port" ]; then
        echo "run: the mock Poe did not start:" >&2
        cat "$dir/mock.log" >&2
        exit 1
    fi
    # Every Claude id passes through to the mock, as the shipped config's claude-* route does to Poe; gpt-5 shows a
    # translated route. The mock's key is not a secret; the master key is yours (LITELLM_MASTER_KEY, or generated).
    cat >"$dir/gateway.yaml" <<EOF
# poe-gateway demo (tools/run.sh --demo): the mock Poe answers, no Poe key and no points.
model_list:
  - model_name: claude-*
    litellm_params:
      model: anthropic/*
      api_base: http://127.0.0.1:$mock_port
      api_key: demo-poe-key
  - model_name: gpt-5
    litellm_params:
      model: openai/GPT-5
      api_base: http://127.0.0.1:$mock_port/v1
      api_key: demo-poe-key
gateway:
  host: 127.0.0.1
  port: $port
EOF
    config_args=(--config "$dir/gateway.yaml")
    echo "run: demo: the mock Poe listens on 127.0.0.1:$mock_port; its answers are canned, and cost nothing"
fi

echo "run: next, in another terminal on this machine, point Claude Code at the gateway and start it:"
step="$bin claude-env --with-key"
if [ ${#config_args[@]} != 0 ]; then step+=$(printf ' %q' "${config_args[@]}"); fi
if [ $demo = 0 ] && [ -n "$port" ] && [ "$port" != 0 ]; then step+=" --port $(printf %q "$port")"; fi # the URL follows the gateway's
printf '    cd %q && eval "$(%s)" && claude\n' "$(pwd)" "$step"
if [ $demo = 0 ]; then
    exec "$bin" "$@"
fi
# The gateway runs in the background so that a signal to this script alone (Ctrl-C, kill) stops it, then the mock.
"$bin" "${config_args[@]}" "$@" &
gw_pid=$!
trap 'kill -TERM "$gw_pid" 2>/dev/null || true' INT TERM
status=0
wait "$gw_pid" || status=$?
if kill -0 "$gw_pid" 2>/dev/null; then # the wait was cut short by a signal: let the gateway stop gracefully
    status=0
    wait "$gw_pid" || status=$?
fi
exit $status
