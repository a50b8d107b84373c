#!/usr/bin/env bash
# bench/app_proto.sh - the application protocol's cost (issue 15): committed
# requests/s of one worker catching up on the same N records with the
# no-op application in-process (--app noop) and over the protocol (--app
# exec:br2k-bench-proto-noop, bench/app_proto_noop.c: the same work in a
# process of its own, one round trip per batch; and the same in Node with
# the SDK, bench/app_proto_noop.js), in the same run, with their ratios
# (target >= 0.7 at the default batch size). Figures, not assertions.
# Usage: bench/app_proto.sh [BUILD_DIR]   (default: build; Release is best)
# BENCH_RECORDS (default 12000: the development broker keeps ~5 MiB),
# BENCH_RUNS (default 5), BENCH_BATCH (the
# worker's --batch-max, default its own 1000).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
export BR2K_SOURCE_DIR=$(cd "$here/.." && pwd)
export BR2K_BUILD_DIR=$(cd "${1:-$BR2K_SOURCE_DIR/build}" && pwd)
source "$BR2K_SOURCE_DIR/tests/integration/lib.sh"

N=${BENCH_RECORDS:-12000}
RUNS=${BENCH_RUNS:-5}
BATCH=()
[ -z "${BENCH_BATCH:-}" ] || BATCH=(--batch-max "$BENCH_BATCH")

stop_pids() {
    for pid in "$@"; do kill -TERM "$pid" 2>/dev/null || true; done
    for pid in "$@"; do
        for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
        kill -KILL "$pid" 2>/dev/null || true
    done
}

# rate RUN APP: a fresh Redis and broker, N records, one worker on APP
# catching up; prints its committed requests/s (from its first commit to
# the last record, as bench/run.sh (a))
rate() {
    local run=$1 app=$2 s1="" t1 t2 last
    rm -rf "$T/redis" "$T/devkafka.sock"
    start_redis
    start_devkafka
    export BR2K_KAFKA=$KAFKA BR2K_REDIS=$REDIS BR2K_SERVICE=default
    "$BIN/br2k" submit --clients 10 --count $((N / 10)) --no-wait --json \
        --prefix bench >"$T/load-$run.json"
    last=$(jq .last_offset "$T/load-$run.json")
    "$BIN/br2k-worker" --id w1 --state-dir "$T/w-$run" --app "$app" "${BATCH[@]}" \
        >"$T/w-$run.log" 2>&1 &
    local wpid=$!; PIDS+=("$wpid")
    ssi_now() { redis-cli -p "$REDIS_PORT" get 'br2k:{default}:SSI'; }
    until [ -n "$s1" ]; do s1=$(ssi_now); done
    t1=$(date +%s.%N)
    until [ "$(ssi_now)" -ge "$last" ]; do :; done
    t2=$(date +%s.%N)
    stop_pids "$wpid" "$KAFKA_PID" "$REDIS_PID"
    awk -v n="$((last - s1))" -v a="$t1" -v b="$t2" 'BEGIN { printf "%.0f", n / (b - a) }'
}

[ -x "$BIN/br2k-bench-proto-noop" ] || fail "build br2k-bench-proto-noop first (bench/CMakeLists.txt)"
NODE=""
command -v node >/dev/null && NODE="exec:node $here/app_proto_noop.js"
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.2f", a / b }'; }
echo "== no-op application, one worker, $N records, batch ${BENCH_BATCH:-default (1000)}: in-process vs over the protocol"
sum_in=0 sum_c=0 sum_js=0
for r in $(seq "$RUNS"); do
    in=$(rate "in$r" noop)
    c=$(rate "c$r" "exec:$BIN/br2k-bench-proto-noop")
    js=0
    [ -z "$NODE" ] || js=$(rate "js$r" "$NODE")
    printf '  run %d: in-process %s/s; over the protocol: C %s/s (ratio %s), Node %s/s (ratio %s)\n' \
        "$r" "$in" "$c" "$(ratio "$c" "$in")" "$js" "$(ratio "$js" "$in")"
    sum_in=$((sum_in + in)) sum_c=$((sum_c + c)) sum_js=$((sum_js + js))
done
printf '  mean: in-process %d requests/s\n' "$((sum_in / RUNS))"
printf '        over the protocol, the same no-op in C:  %d requests/s, ratio %s (target >= 0.7)\n' \
    "$((sum_c / RUNS))" "$(ratio "$sum_c" "$sum_in")"
printf '        over the protocol, a no-op in Node (SDK): %d requests/s, ratio %s\n' \
    "$((sum_js / RUNS))" "$(ratio "$sum_js" "$sum_in")"
