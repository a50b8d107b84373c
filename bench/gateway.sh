#!/usr/bin/env bash
# bench/gateway.sh - the HTTP gateway beside the direct producer path, in the
# same run: throughput and submit-to-result latency p50/p90/p99 at a paced
# rate (default 1,000 requests/s). Figures, not assertions.
#
#   bench/gateway.sh [BUILD_DIR]     (default: build; a Release build is best)
#
# A stack of redis-server, the log (BENCH_LOG=kafka: br2k-devkafka, the
# default; redis: Redis Streams), 3 InfoDID workers and one br2k-gateway
# (rate limits off). Each run sends the same shape of load twice, in turns
# (direct first on odd runs, gateway first on even ones):
#   direct   `br2k submit --clients K --count N --rate R`:
#            libbr2k, the idempotent producer, results from Redis;
#   gateway  br2k-bench-gateway-load (bench/gateway_load.c): the same signed
#            requests POSTed to the gateway with libcurl, keep-alive, waiting
#            for the result in the answer.
# Registrations only: concurrent HTTP requests may be appended in any order,
# so an update could reach the log before the registration it needs.
# BENCH_CLIENTS (5), BENCH_COUNT per client (2000: 10,000 requests),
# BENCH_RATE (1000 requests/s), BENCH_RUNS (2). Requests are signed before
# the clock starts on the gateway side and as they go on the direct side
# (about 0.1 ms each: part of the direct path's send time, not its latency).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
export BR2K_SOURCE_DIR=$(cd "$here/.." && pwd)
export BR2K_BUILD_DIR=$(cd "${1:-$BR2K_SOURCE_DIR/build}" && pwd)
export BR2K_TEST_LOG=${BENCH_LOG:-kafka}
source "$BR2K_SOURCE_DIR/tests/integration/lib.sh"
source "$BR2K_SOURCE_DIR/tests/integration/core_helpers.bash"
source "$BR2K_SOURCE_DIR/tests/integration/gateway_helpers.bash"
APP=infodid
K=${BENCH_CLIENTS:-5}
N=${BENCH_COUNT:-2000}
R=${BENCH_RATE:-1000}
RUNS=${BENCH_RUNS:-2}
LOAD=$BIN/br2k-bench-gateway-load
[ -x "$LOAD" ] || fail "no $LOAD (build bench/)"

start_redis
start_devkafka
for w in w1 w2 w3; do start_worker "$w"; done
wait_for 15 has_leader || fail "no leader"
start_gateway bench --rate-addr 0 --rate-client 0 --max-waits 100000
wait_for 15 ready_is "${GWURL[bench]}" 200 || fail "gateway not ready"

direct() {
    "$BIN/br2k" --redis "$REDIS" --kafka "$KAFKA" --service "$SVC" submit --clients "$K" \
        --count "$N" --rate "$R" --prefix "d$1" --json
}
gateway() { "$LOAD" "${GWURL[bench]}" "$K" "$N" "$R" "g$1" 0; }
for run in $(seq "$RUNS"); do
    if [ $((run % 2)) = 1 ]; then order="direct gateway"; else order="gateway direct"; fi
    for path in $order; do
        "$path" "$run" >"$T/$path-$run.json" 2>"$T/$path-$run.log" ||
            echo "($path run $run: exit $?; $(tail -n 1 "$T/$path-$run.log"))" >&2
    done
done

row() { # PATH RUN FILE
    jq -r --arg p "$1" --arg r "$2" '[$p, $r, .sent, .succeeded, .rejected,
        (.throughput_rps | floor), (.latency_ms.p50 * 100 | round / 100),
        (.latency_ms.p90 * 100 | round / 100), (.latency_ms.p99 * 100 | round / 100),
        (.latency_ms.max * 100 | round / 100)] | @tsv' "$3"
}
{
    printf 'path\trun\tsent\tok\trejected\tanswered/s\tp50 ms\tp90 ms\tp99 ms\tmax ms\n'
    for run in $(seq "$RUNS"); do
        row direct "$run" "$T/direct-$run.json"
        row gateway "$run" "$T/gateway-$run.json"
    done
} | column -t -s $'\t'
m=$(redis-cli -p "$REDIS_PORT" HGETALL "br2k:{$SVC}:gateway-bench" | paste -sd ' ' -)
echo "gateway's own metrics: $m"
echo "($K clients x $N requests at $R/s per run, log $LOG_BACKEND, build $(basename "$BUILD"), $(nproc) CPUs)"
