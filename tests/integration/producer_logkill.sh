#!/usr/bin/env bash
# producer_logkill.sh - appends survive a restart of the log's server:
#   - `br2k submit --clients 5 --count 1000 --rate 1000 --no-wait` against a
#     Redis Streams log; mid-load its redis-server is killed (-9) and
#     started again 2 s later on the same port and dir (AOF, appendfsync
#     always): the submit reports 5000 appended, 0 lost, and every request
#     id is in the log exactly once (offsets 0..4999, dense);
#   - the same load against br2k-devkafka whose broker is stopped (SIGSTOP)
#     for 3 s mid-load: 0 lost, every request id once (librdkafka's
#     idempotent producer, delivery.timeout.ms from --retry-ms);
#   - an append that cannot succeed before --retry-ms is reported lost, by
#     request id.
source "$(dirname "$0")/lib.sh"

# ids FILE: the request ids of a dump (itest_rlog dump / kcat), one a line
ids() { awk '{print $3}' "$1" | sed 's/^br2k-request-id=//; s/,.*//'; }
# check_once DUMP N: N records, N distinct request ids, offsets 0..N-1
check_once() {
    local n; n=$(wc -l <"$1")
    [ "$n" = "$2" ] || fail "$n records in the log, want $2"
    [ "$(ids "$1" | sort -u | wc -l)" = "$2" ] ||
        fail "$(ids "$1" | sort | uniq -d | wc -l) request ids twice or more: $(ids "$1" | sort | uniq -d | head -3 | tr '\n' ' ')"
    [ "$(awk '{print $1}' "$1" | tr '\n' ' ')" = "$(seq 0 $(($2 - 1)) | tr '\n' ' ')" ] ||
        fail "offsets are not 0..$(($2 - 1))"
}

# 1. Redis Streams: kill -9 of the log's redis-server under load
LPORT=$(free_port)
redis_server "$LPORT" logredis
LPID=$REDIS_SPAWNED
export BR2K_KAFKA=redis://127.0.0.1:$LPORT BR2K_REDIS=127.0.0.1:$LPORT BR2K_SERVICE=default
TOPIC=br2k.default.requests
"$BIN/br2k" submit --clients 5 --count 1000 --rate 1000 --no-wait --json --prefix kill \
    --retry-ms 60000 >"$T/load.json" 2>"$T/load.log" &
SUB=$!
PIDS+=("$SUB")
counter() { redis-cli -p "$LPORT" GET "{$TOPIC}:next" 2>/dev/null; }
above() { local c; c=$(counter); [ -n "$c" ] && [ "$c" -ge "$1" ]; }
wait_for 30 above 1000 || fail "the load did not start: $(cat "$T/load.log")"
killed_at=$(counter)
kill -KILL "$LPID"
wait "$LPID" 2>/dev/null || true
sleep 2 # the length of the outage (the fault itself, not a wait for a condition)
redis_server "$LPORT" logredis
rc=0
wait "$SUB" || rc=$?
[ "$rc" = 0 ] || fail "br2k submit exited $rc: $(cat "$T/load.json") $(tail -n 5 "$T/load.log")"
jq -e '.sent == 5000 and .appended == 5000 and .succeeded == 5000 and .failed == 0 and
       .lost == 0' "$T/load.json" >/dev/null || fail "load: $(cat "$T/load.json")"
"$BUILD/tests/itest_rlog" dump "$BR2K_KAFKA" "$TOPIC" >"$T/redis.dump" 2>"$T/dump.log" ||
    fail "dump: $(cat "$T/dump.log")"
check_once "$T/redis.dump" 5000
pass "kill -9 of the log's Redis at about offset $killed_at, back 2 s later: 5000 appended, 0 lost," \
    "every request id once at offsets 0..4999 ($(jq -c '{elapsed_s}' "$T/load.json"))"

# 2. an append that cannot succeed before --retry-ms is reported lost
kill -KILL "$REDIS_SPAWNED"
wait "$REDIS_SPAWNED" 2>/dev/null || true
set +e
"$BIN/br2k" submit --clients 2 --count 3 --no-wait --json --prefix gone --retry-ms 1500 \
    >"$T/lost.json" 2>"$T/lost.log"
rc=$?
set -e
[ "$rc" = 2 ] || fail "submit to a log that is down exited $rc"
jq -e '.lost == 6 and .failed == 6 and (.lost_ids | sort) == ["gone-0:1","gone-0:2","gone-0:3","gone-1:1","gone-1:2","gone-1:3"]' \
    "$T/lost.json" >/dev/null || fail "lost: $(cat "$T/lost.json")"
jq -r .first_failure "$T/lost.json" | grep -q "within delivery.timeout.ms=1500" ||
    fail "first failure: $(jq -r .first_failure "$T/lost.json")"
pass "a log down longer than --retry-ms: 6 lost, named ($(jq -r .first_failure "$T/lost.json" | cut -c1-160)...)"

# 3. Kafka (br2k-devkafka): the broker stopped for 3 s under load
LOG_BACKEND=kafka
start_devkafka
export BR2K_KAFKA=$KAFKA
"$BIN/br2k" submit --clients 5 --count 1000 --rate 1000 --no-wait --json --prefix stop \
    --retry-ms 60000 >"$T/kload.json" 2>"$T/kload.log" &
SUB=$!
PIDS+=("$SUB")
kend() { local e; e=$(log_offsets "$TOPIC" | cut -d' ' -f2); [ -n "$e" ] && [ "$e" -ge "$1" ]; }
wait_for 30 kend 500 || fail "the load did not start on Kafka: $(cat "$T/kload.log")"
kill -STOP "$KAFKA_PID"
sleep 3 # the length of the outage (the fault itself, not a wait for a condition)
kill -CONT "$KAFKA_PID"
rc=0
wait "$SUB" || rc=$?
[ "$rc" = 0 ] || fail "br2k submit exited $rc: $(cat "$T/kload.json")"
jq -e '.sent == 5000 and .appended == 5000 and .failed == 0 and .lost == 0' \
    "$T/kload.json" >/dev/null || fail "load: $(cat "$T/kload.json")"
kcat -C -b "$KAFKA" -t "$TOPIC" -o beginning -e -q -f '%o %k %h %s\n' >"$T/kafka.dump"
check_once "$T/kafka.dump" 5000
pass "br2k-devkafka stopped 3 s under load: 5000 appended, 0 lost, every request id once"
