#!/usr/bin/env bash
# bench/run.sh - the figures of issue 3 (printed, not asserted):
#   (a) committed requests/s with the no-op application and one worker, and
#       in the same run the read rate of a plain librdkafka consumer on the
#       same records from the same broker, with their ratio (target >= 0.5);
#   (b) InfoDID with 3 workers on this machine (target >= 10,000 requests/s);
#   (c) publish-to-result latency p50/p99 under a steady 1,000 requests/s.
# Usage: bench/run.sh [BUILD_DIR]   (default: build; a Release build is best)
# Each part starts its own redis-server and br2k-devkafka. The development
# broker keeps about 5 MiB per partition, so the runs stay below ~12,000
# records that a reader has not read yet.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
export BR2K_SOURCE_DIR=$(cd "$here/.." && pwd)
export BR2K_BUILD_DIR=$(cd "${1:-$BR2K_SOURCE_DIR/build}" && pwd)
source "$BR2K_SOURCE_DIR/tests/integration/lib.sh"

N_A=${BENCH_A_RECORDS:-10000}
RUNS_A=${BENCH_A_RUNS:-3}            # (a) is run this many times
MIN_A=${BENCH_A_CONSUMER_MIN:-100000} # the consumer re-reads the records up to this many
CLIENTS_B=${BENCH_B_CLIENTS:-10}
COUNT_B=${BENCH_B_COUNT:-3000}
SECS_C=${BENCH_C_SECONDS:-10}

stop_pids() { # stop what this part started (by PID), keep the EXIT trap's list
    for pid in "$@"; do kill -TERM "$pid" 2>/dev/null || true; done
    for pid in "$@"; do
        for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
        kill -KILL "$pid" 2>/dev/null || true
    done
}

start_workers() { # N [ARGS...]
    local n=$1; shift
    WPIDS=()
    for i in $(seq "$n"); do
        mkdir -p "$T/w$i-$RUN"
        "$BIN/br2k-worker" --id "w$i" --state-dir "$T/w$i-$RUN" ${BENCH_WORKER_ARGS:-} "$@" \
            >"$T/w$i-$RUN.out" 2>"$T/w$i-$RUN.log" &
        WPIDS+=($!); PIDS+=($!)
    done
    ready() { "$BIN/br2k" status --json | jq -e --argjson n "$n" \
        '.leader != null and (.members | length) == $n' >/dev/null; }
    wait_for 30 ready || fail "workers did not start (see $T)"
}

fresh_stack() {
    RUN=$1
    rm -rf "$T/redis" "$T/devkafka.sock"
    start_redis
    start_devkafka
    export BR2K_KAFKA=$KAFKA BR2K_REDIS=$REDIS BR2K_SERVICE=default
}

want() { [[ " ${BENCH_PARTS:-a b c} " == *" $1 "* ]]; } # BENCH_PARTS="a": (a) only

ssi() { "$BIN/br2k" status --json | jq -r '.ssi // -1'; }

want a && {
echo "== (a) no-op application, one worker, vs a plain librdkafka consumer"
if "$BIN/br2k-worker" --help 2>&1 | grep -q noop; then
  for run_a in $(seq "$RUNS_A"); do
    echo "  run $run_a of $RUNS_A"
    fresh_stack a
    # append N records first; the plain consumer reads them, then one
    # no-op worker starts and catches up: its rate is taken from SSI
    # (committed offsets) between its first commit and the last record
    "$BIN/br2k" submit --clients 10 --count $((N_A / 10)) --no-wait --json \
        --prefix bencha >"$T/a-load.json"
    last=$(jq .last_offset "$T/a-load.json")
    # the consumer reads the same N_A records, again and again until it
    # has read MIN_A (timed from its first record): a stable yardstick
    "$BIN/br2k-bench-consume" --count "$N_A" --min-records "$MIN_A" >"$T/a-consume.json"
    plain_rate=$(jq .rate "$T/a-consume.json")
    RUN=a
    mkdir -p "$T/w1-a$run_a"
    "$BIN/br2k-worker" --id w1 --state-dir "$T/w1-a$run_a" --app noop ${BENCH_WORKER_ARGS:-} >"$T/w1-a$run_a.out" 2>"$T/w1-a$run_a.log" &
    WPIDS=($!); PIDS+=($!)
    ssi_now() { redis-cli -p "$REDIS_PORT" get 'br2k:{default}:SSI'; }
    s1=""
    until [ -n "$s1" ]; do s1=$(ssi_now); done
    t1=$(date +%s.%N)
    until [ "$(ssi_now)" -ge "$last" ]; do :; done
    t2=$(date +%s.%N)
    worker_rate=$(awk -v n="$((last - s1))" -v a="$t1" -v b="$t2" 'BEGIN { print n / (b - a) }')
    printf '  worker (read + apply + commit):   %.0f requests/s (%d records after its first commit)\n' \
        "$worker_rate" "$((last - s1))"
    printf '  plain consumer (read only):       %.0f records/s (%d reads of the same %d records)\n' \
        "$plain_rate" "$(jq .records "$T/a-consume.json")" "$N_A"
    printf '  ratio: %.2f (target >= 0.5)\n' \
        "$(awk -v w="$worker_rate" -v p="$plain_rate" 'BEGIN { print w / p }')"
    stop_pids "${WPIDS[@]}" "$KAFKA_PID" "$REDIS_PID"
  done
else
    echo "  skipped: br2k-worker has no no-op application (--app noop)"
fi

}

want b && {
echo "== (b) InfoDID, 3 workers, $CLIENTS_B clients x $COUNT_B requests, as fast as possible"
fresh_stack b
start_workers 3
"$BIN/br2k" submit --clients "$CLIENTS_B" --count "$COUNT_B" --json --prefix benchb \
    --wait-ms 120000 >"$T/b.json" || true
jq -c '{sent, succeeded, rejected, failed, elapsed_s, throughput_rps, latency_ms}' "$T/b.json"
printf '  committed: %.0f requests/s (target >= 10000)\n' "$(jq .throughput_rps "$T/b.json")"
"$BIN/br2k" verify --timeout-ms 30000 | tail -n 1
stop_pids "${WPIDS[@]}" "$KAFKA_PID" "$REDIS_PID"

}

want c && {
echo "== (c) latency under a steady 1,000 requests/s for $SECS_C s, 3 workers"
fresh_stack c
start_workers 3
"$BIN/br2k" submit --clients 10 --count $((SECS_C * 100)) --rate 1000 --json \
    --prefix benchc --wait-ms 60000 >"$T/c.json" || true
jq -c '{sent, succeeded, rejected, failed, elapsed_s, latency_ms}' "$T/c.json"
printf '  publish-to-result latency: p50 %.2f ms, p99 %.2f ms\n' \
    "$(jq .latency_ms.p50 "$T/c.json")" "$(jq .latency_ms.p99 "$T/c.json")"
stop_pids "${WPIDS[@]}" "$KAFKA_PID" "$REDIS_PID"
}
true
