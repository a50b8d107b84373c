#!/usr/bin/env bash
# bench/registry_bench.sh - registry figures (printed, not asserted):
#   (a) appendBackupLog calls per second through br2k-registryd on anvil with
#       instant mining (all queued at once; registryd sends them in order);
#   (b) call-to-confirmation latency with anvil --block-time 1 (one at a time).
# Usage: bench/registry_bench.sh [BUILD_DIR]   (a Release build is best)
# Needs `br2k registry deploy` and br2k-bench-registry in BUILD_DIR/bin.
# Environment: BENCH_REG_BURST (calls in (a), default 300), BENCH_REG_SEQ
# (calls in (b), default 10), REGCLI (the br2k binary).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
export BR2K_SOURCE_DIR=$(cd "$here/.." && pwd)
export BR2K_BUILD_DIR=$(cd "${1:-$BR2K_SOURCE_DIR/build}" && pwd)
source "$BR2K_SOURCE_DIR/tests/integration/lib.sh"
REGCLI=${REGCLI:-"$BIN/br2k"}
OWNER_KEY=0xac0974bec39a17e36ba4a6b4d238ff944bacb478cbed5efcae784d7bf4f2ff80
WRITER_KEY=0x59c6995e998f97a5a0044966f0945389dc9e86dae88c7a8412f4603b6b78690d
echo "$WRITER_KEY" >"$T/writer.key"

part() { # NAME MODE COUNT [ANVIL ARGS]
    local name=$1 mode=$2 count=$3; shift 3
    start_anvil "$@"
    rm -rf "$T/redis"; start_redis
    local reg; reg=$(BR2K_ETH_KEY=$OWNER_KEY "$REGCLI" --eth-rpc "$ETH_RPC" registry deploy \
        --writer-key-file "$T/writer.key" 2>>"$T/deploy.log")
    "$BIN/br2k-registryd" --registry "$reg" --eth-rpc "$ETH_RPC" --redis "$REDIS" \
        --service bench --key-file "$T/writer.key" --poll-ms 20 --log-level warn \
        >>"$T/registryd-$name.log" 2>&1 &
    local pid=$!; PIDS+=("$pid")
    redis-cli -p "$REDIS_PORT" SET 'br2k:{bench}:epoch' 1 >/dev/null
    echo "== ($name) $mode, $count calls${*:+, anvil $*}"
    "$BIN/br2k-bench-registry" --redis "$REDIS" --service bench --mode "$mode" \
        --count "$count" --epoch 1 --first-version 2
    kill -TERM "$pid" "$ANVIL_PID" "$REDIS_PID"
    wait "$pid" "$ANVIL_PID" "$REDIS_PID" 2>/dev/null || true
}

part a burst "${BENCH_REG_BURST:-300}"
part b seq "${BENCH_REG_SEQ:-10}" --block-time 1
