#!/usr/bin/env bash
# bench/log_rates.sh - append and read rates of the request log (rlog.h) on
# each back end in the same run: br2k-devkafka (Kafka protocol) and
# redis-server (Redis Streams, AOF with appendfsync always). Figures, not
# assertions. Uses $BUILD/tests/itest_rlog bench (see its header).
# Usage: bench/log_rates.sh [BUILD_DIR]   (default: build; Release is best)
#   LOG_RATES_N (100000) records of LOG_RATES_SIZE (200) bytes appended
#   with callbacks (async), LOG_RATES_SYNC (2000) with append_sync, then
#   everything the log kept read from its first offset.
#   br2k-devkafka keeps only ~5 MiB per partition: it gets
#   LOG_RATES_KAFKA_N (20000) async records, and reads what it kept.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
export BR2K_SOURCE_DIR=$(cd "$here/.." && pwd)
export BR2K_BUILD_DIR=$(cd "${1:-$BR2K_SOURCE_DIR/build}" && pwd)
source "$BR2K_SOURCE_DIR/tests/integration/lib.sh"

N=${LOG_RATES_N:-100000}
KN=${LOG_RATES_KAFKA_N:-20000}
SIZE=${LOG_RATES_SIZE:-200}
SYNC=${LOG_RATES_SYNC:-2000}
IT=$BUILD/tests/itest_rlog
[ -x "$IT" ] || fail "no $IT (build the tests)"

start_redis
start_devkafka
"$IT" bench "$KAFKA" br2k.bench.requests "$KN" "$SIZE" "$SYNC" >"$T/kafka.json" 2>"$T/kafka.log" ||
    fail "devkafka bench: $(tail -n 3 "$T/kafka.log")"
"$IT" bench "redis://$REDIS" br2k.bench.requests "$N" "$SIZE" "$SYNC" >"$T/redis.json" \
    2>"$T/redis.log" || fail "redis bench: $(tail -n 3 "$T/redis.log")"

row() { # NAME N FILE
    jq -r --arg name "$1" --arg n "$2" \
        '[$name, $n, .async, .sync, .read, .read_records] | @tsv' "$3"
}
{
    printf 'back end\tappended\tasync/s\tsync/s\treads/s\tread\n'
    row "devkafka" "$KN" "$T/kafka.json"
    row "redis-streams" "$N" "$T/redis.json"
} | column -t -s $'\t'
echo "($SIZE-byte values, 2 headers; sync: $SYNC appends each waiting for its offset;" \
    "build $(basename "$BUILD"))"
