#!/usr/bin/env bash
# bench/join.sh - issue 6's figure (printed, not asserted): the time for a
# new worker to join a service with a history of N records,
#   (1) by replaying the whole history from offset 0 (no backup used; timed
#       before the backup, which on Redis Streams deletes the records), and
#   (2) by get-the-latest-state: restore the latest backup, then replay the
#       records after its cut (a tail of TAIL records),
# in the same run, on the same log, with the no-op application and with
# InfoDID.
# Usage: bench/join.sh [BUILD_DIR]  (default: build; a Release build is best)
#   BENCH_JOIN_N="30000"   history sizes (records)
#   BENCH_JOIN_TAIL=300    records after the backup's cut
#   BENCH_JOIN_LOG=redis   the log on Redis Streams (redis-server with AOF,
#                          appendfsync always) instead of br2k-devkafka: no
#                          window, so 100,000 and 1,000,000-record histories
#   BENCH_JOIN_APPS="noop infodid"
# The history lives in br2k-devkafka, which keeps about 5 MiB per partition:
# it holds some 40,000 of these no-op records (measured: a reader asking
# for offset 43,432 of a 99,000-record history got OFFSET_OUT_OF_RANGE), so
# a full replay from offset 0 can only be timed up to about that size here;
# the issue's 100,000 and 1,000,000 need the Redis Streams log back end
# (its own issue, not built yet). A run whose log does not start at offset 0
# is reported as such and not timed, never silently shortened.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
export BR2K_SOURCE_DIR=$(cd "$here/.." && pwd)
export BR2K_BUILD_DIR=$(cd "${1:-$BR2K_SOURCE_DIR/build}" && pwd)
source "$BR2K_SOURCE_DIR/tests/integration/lib.sh"
source "$BR2K_SOURCE_DIR/tests/integration/core_helpers.bash"
source "$BR2K_SOURCE_DIR/tests/integration/backup_helpers.bash"
LOG=${BENCH_JOIN_LOG:-kafka} # kafka (br2k-devkafka) or redis (Redis Streams)
SIZES=${BENCH_JOIN_N:-30000}
TAIL=${BENCH_JOIN_TAIL:-300}

now_ms() { date +%s%3N; }
# fill COUNT PREFIX: COUNT records (no-op records, or signed InfoDID registrations)
fill() {
    if [ "$APP" = noop ]; then
        produce "$1" 0 "$2" >/dev/null
    else
        "$BIN/br2k" --redis "$REDIS" --kafka "$KAFKA" submit --clients 4 --count $(($1 / 4)) \
            --prefix "$2" >"$T/fill-$2.out" 2>&1 || fail "fill: $(tail -2 "$T/fill-$2.out")"
    fi
}
# join ID ARGS...: start a worker with no state, print ms until it has
# applied up to SSI (caught_up) and its digest equals w1's
join() {
    local id=$1; shift
    local t0; t0=$(now_ms)
    start_worker "$id" "$@"
    local want; want=$(rc_ GET "br2k:{$SVC}:SSI")
    # LPI-<id> is written as soon as the worker is idle (the metrics hash
    # only every 500 ms): time to it, then check the digest
    until [ "$(rc_ GET "br2k:{$SVC}:LPI-$id")" = "$want" ]; do
        kill -0 "${WPID[$id]}" 2>/dev/null || { echo "worker $id died: $(tail -2 "$T/$id.log")" >&2; return 1; }
        sleep 0.005
    done
    local ms=$(($(now_ms) - t0))
    wait_for 120 at "$want" w1 "$id" || { echo "worker $id: digest differs from w1's" >&2; return 1; }
    echo "$ms"
}
first_offset() { grep -o "holds offsets [0-9]*" "$T/$1.log" | head -1 | awk '{print $3}'; }

echo "log back end: $LOG"
printf '%-9s %-8s %10s %14s %14s %8s\n' app records "replay(s)" "from-backup(s)" "backup-size" ratio
for n in $SIZES; do
    for app in ${BENCH_JOIN_APPS:-noop infodid}; do
        m=$n
        # InfoDID requests are ~450 bytes: the broker's 5 MiB hold ~10,000
        [ "$app" = noop ] || [ "$LOG" = redis ] ||
            m=$((n < ${BENCH_JOIN_INFODID_MAX:-8000} ? n : ${BENCH_JOIN_INFODID_MAX:-8000}))
        rm -rf "${T:?}"/w1 "$T"/w2 "$T"/w3 "$T"/backups "$T"/*.log "$T"/service.key "$T"/regd.key "$T"/redis
        start_redis
        if [ "$LOG" = redis ]; then
            KAFKA=redis://$REDIS # the Redis Streams back end of common/rlog
        else
            start_devkafka
        fi
        start_chain
        APP=$app
        start_worker w1
        wait_for 15 has_leader || fail "no leader"
        start_backupd --max-replicated 1000000000
        fill $((m - TAIL)) hist
        wait_for 600 at $((m - TAIL - 1)) w1 || fail "w1 did not apply the history"
        # (1) full replay of the whole history, before the backup (on Redis
        # Streams backupd really deletes the records below its cut)
        full=$(join w2) || fail "full replay failed"
        [ "$(first_offset w2)" = 0 ] || { echo "$app $m: the log no longer starts at 0 (the broker dropped records): not timed"; continue; }
        [ "$(metric w2 applied)" = $((m - TAIL)) ] || fail "w2 applied $(metric w2 applied) of $((m - TAIL)) records"
        "$BIN/br2k" --redis "$REDIS" backup now --wait 600 >/dev/null || fail "backup failed"
        fill "$TAIL" tail
        wait_for 60 at $((m - 1)) w1 || fail "w1 did not apply the tail"
        size=$(ls -l "$T"/backups/v00000002-state-* | awk '{print $5}')
        # (2) join from the backup: restore, then the tail
        fast=$(join w3 --eth-rpc "$ETH_RPC" --registry "$REG" --service-key-file "$T/service.key") || fail "join from the backup failed"
        [ "$(metric w3 applied)" = "$TAIL" ] || fail "w3 applied $(metric w3 applied) records, expected the tail of $TAIL"
        printf '%-9s %-8s %10.2f %14.2f %14s %7.1fx\n' "$app" "$m" "$(echo "$full / 1000" | bc -l)" \
            "$(echo "$fast / 1000" | bc -l)" "$size" "$(echo "$full / $fast" | bc -l)"
        for p in "${WPID[w3]:-}" "${WPID[w2]:-}" "${WPID[w1]:-}" "$BD_PID" "$REGD_PID" "$ANVIL_PID" "${KAFKA_PID:-}" "$REDIS_PID"; do
            [ -n "$p" ] || continue
            kill -TERM "$p" 2>/dev/null || true
        done
        sleep 1
    done
done
