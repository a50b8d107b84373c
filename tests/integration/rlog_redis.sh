#!/usr/bin/env bash
# rlog_redis.sh - the Redis Streams back end of the request log (rlog.h)
# against a real redis-server:
#   - 1000 binary records with headers read back in order; a repeated
#     request id returns its first offset and adds nothing (XLEN same);
#     offsets; delete_below(500): first 500, seek 100 out of range (I1),
#     seek 500 reads on;
#   - appends reload the Lua script after SCRIPT FLUSH (NOSCRIPT);
#   - the log survives a restart of Redis with AOF (appendfsync always);
#   - a blocked XREAD wakes on an append by another process within ~100 ms;
#   - a Redis that is down is an I/O error, not out of range;
#   - kafka://BOOTSTRAP selects the Kafka back end (br2k-devkafka);
#   - 3 workers with --kafka redis://... converge on 2000 requests, every
#     request has its result.
source "$(dirname "$0")/lib.sh"
source "$(dirname "$0")/core_helpers.bash"
IT=$BUILD/tests/itest_rlog
[ -x "$IT" ] || fail "no $IT"

# a Redis of the log's own, restarted below on the same port and dir
LPORT=$(free_port)
# (redis-cli exits 0 on the LOADING error too: wait for PONG, the data loaded)
pong() { [ "$(redis-cli -p "$1" ping 2>/dev/null)" = PONG ]; }
start_log_redis() {
    redis_server "$LPORT" logredis
    LPID=$REDIS_SPAWNED
    wait_for 20 pong "$LPORT" || fail "log redis-server still loading"
}
start_log_redis
URL=redis://127.0.0.1:$LPORT
LT=br2k.rl.requests
lc() { redis-cli -p "$LPORT" "$@"; }

"$IT" checks "$URL" "$LT" || fail "rlog checks on Redis Streams"
# (500..999 kept, then record 123's retry appended at 1000: its id had gone
# with the record; the ids hash holds only the records in the log)
[ "$(lc XLEN "$LT")" = 501 ] || fail "XLEN $(lc XLEN "$LT") after delete_below(500) and one append"
[ "$(lc GET "{$LT}:next")" = 1001 ] || fail "counter $(lc GET "{$LT}:next")"
[ "$(lc HLEN "{$LT}:ids")" = 501 ] || fail "the ids hash holds $(lc HLEN "{$LT}:ids") ids, want 501"
[ -z "$(lc HGET "{$LT}:ids" t:1)" ] && [ "$(lc HGET "{$LT}:ids" t:501 | cut -d: -f1)" = 501 ] ||
    fail "ids hash: deleted t:1 -> '$(lc HGET "{$LT}:ids" t:1)', kept t:501 -> '$(lc HGET "{$LT}:ids" t:501)'"
pass "1000 records with headers, idempotent request id, offsets, delete_below with its ids, out of range"

# a deletion larger than one script's chunk (2000): 4500 records, delete below 4321
"$BUILD/tests/itest_core" produce "$URL/br2k.big.requests" x 4500 0 big >/dev/null
"$IT" delete "$URL" br2k.big.requests 4321 || fail "delete_below(4321)"
[ "$(lc XLEN br2k.big.requests)" = 179 ] && [ "$(lc HLEN {br2k.big.requests}:ids)" = 179 ] ||
    fail "after delete_below(4321): XLEN $(lc XLEN br2k.big.requests), ids $(lc HLEN {br2k.big.requests}:ids)"
[ "$(lc XRANGE br2k.big.requests - + COUNT 1 | head -1)" = 1-4321 ] || fail "first entry $(lc XRANGE br2k.big.requests - + COUNT 1 | head -1)"
pass "delete_below(4321) of 4500 records in chunks: 179 entries and 179 ids left, first 1-4321"

# the counter and the ids hash share the stream's Cluster slot ({stream}:...);
# a stream name with braces would not, and is refused in one line
[ "$(lc CLUSTER KEYSLOT "{$LT}:next")" = "$(lc CLUSTER KEYSLOT "$LT")" ] || fail "counter in another slot"
if "$IT" offsets "$URL/br2k.{x}.requests" x 2>"$T/brace.err"; then fail "a stream name with braces was accepted"; fi
grep -q "stream name 'br2k.{x}.requests' is empty or holds '{', '}' or a space" "$T/brace.err" ||
    fail "brace error: $(cat "$T/brace.err")"
pass "counter and ids in the stream's Cluster slot; a stream name with braces refused: $(cat "$T/brace.err")"

# the Kafka back end's checks (itest_core rlog) pass here too
"$BUILD/tests/itest_core" rlog "$URL" br2k.c.requests >/dev/null || fail "itest_core rlog on Redis"
pass "itest_core rlog checks on Redis Streams"

# a repeated request id from another process: same offset, XLEN unchanged
before=$(lc XLEN br2k.x.requests)
o1=$("$BUILD/tests/itest_core" produce "$URL/br2k.x.requests" x 10 0 dup)
o2=$("$BUILD/tests/itest_core" produce "$URL/br2k.x.requests" x 10 0 dup)
[ "$o1" = 9 ] && [ "$o2" = 9 ] || fail "offsets of the repeated appends: $o1 $o2"
[ "$(lc XLEN br2k.x.requests)" = 10 ] || fail "XLEN $(lc XLEN br2k.x.requests), before $before"
pass "repeated request ids add nothing (URL with a stream name, XLEN 10)"

# pipelined appends and sync appends go on after the scripts were flushed
"$IT" noscript "$URL" br2k.ns.requests "127.0.0.1:$LPORT" || fail "appends after SCRIPT FLUSH"
pass "pipelined and sync appends reload the script on NOSCRIPT, in order"

# restart Redis on the same port and dir: everything is still there
lc SCRIPT FLUSH >/dev/null # and the scripts are loaded again (NOSCRIPT)
kill -TERM "$LPID"; wait "$LPID" || true
start_log_redis
"$IT" verify "$URL" "$LT" 500 1000 1001 || fail "log after a Redis restart"
pass "log survives a Redis restart (AOF): offsets 500..999 read again"

# a blocked reader wakes on an append from another process
"$IT" wait "$URL" "$LT" >"$T/wait.out" 2>"$T/wait.log" &
WAITER=$!
wait_for 10 grep -q ready "$T/wait.out" || fail "waiter not ready"
sleep 0.5
"$IT" append "$URL" "$LT" || fail "append for the waiter"
wait "$WAITER" || fail "waiter: $(cat "$T/wait.log")"
lat=$(tail -n 1 "$T/wait.out")
[ "$lat" -le 100 ] || fail "blocked read woke after $lat ms"
pass "blocked XREAD woke $lat ms after the append"

# Redis down: I/O error, not out of range
kill -TERM "$LPID"; wait "$LPID" || true
"$IT" down "$URL" "$LT" || fail "errors with Redis down"
pass "Redis down: BK_E_IO"

# kafka://BOOTSTRAP is the Kafka back end with an explicit scheme
start_devkafka
"$BUILD/tests/itest_core" rlog "kafka://$KAFKA" "$TOPIC" >/dev/null || fail "rlog on kafka://$KAFKA"
pass "kafka://$KAFKA: the Kafka back end"

# the worker end to end on Redis Streams (the coordination Redis holds the log)
start_redis
KAFKA=redis://$REDIS
for w in w1 w2 w3; do start_worker "$w"; done
last=$("$BUILD/tests/itest_core" produce "$KAFKA" "$TOPIC" 2000 0 load)
[ "$last" = 1999 ] || fail "last offset $last"
wait_for 60 at "$last" w1 w2 w3 || { show w1 w2 w3; fail "replicas did not converge at $last"; }
n=$(result_count "")
[ "$n" -eq 2000 ] || fail "$n results for 2000 requests"
result_get load:1999 | grep -q '"status":"ok"' || fail "result of load:1999"
[ "$(rc_ XLEN "$TOPIC")" = 2000 ] || fail "XLEN $(rc_ XLEN "$TOPIC")"
pass "3 workers on redis://$REDIS at LPI $last, digest $(metric w1 digest | cut -c1-16), $n results"
for w in w1 w2 w3; do stop_worker "$w"; done
pass "workers stopped cleanly"

# the log's own redis-server restarted (AOF) under running workers: they do
# not exit; they wait, read on from the same offset, and converge
# (the same dir as the first log Redis above: loading its streams takes a
# while after the restart, so the workers also meet "LOADING" replies)
LPORT=$(free_port); LP=$LPORT
start_logredis() { start_log_redis; LRPID=$LPID; }
start_logredis
KAFKA=redis://127.0.0.1:$LP
SVC=restart; TOPIC=br2k.$SVC.requests # a service of its own in the same coordination Redis
for w in w4 w5 w6; do start_worker "$w"; done
last=$("$BUILD/tests/itest_core" produce "$KAFKA" "$TOPIC" 500 0 before)
wait_for 60 at "$last" w4 w5 w6 || { show w4 w5 w6; fail "replicas did not converge at $last"; }
kill -TERM "$LRPID"; wait "$LRPID" || true
sleep 3
for w in w4 w5 w6; do kill -0 "${WPID[$w]}" 2>/dev/null || fail "$w exited while the log was down"; done
grep -q "cannot read the log for .* retrying" "$T/w4.log" || fail "w4 did not say the log is down"
start_logredis
last=$("$BUILD/tests/itest_core" produce "$KAFKA" "$TOPIC" 500 0 after)
[ "$last" = 999 ] || fail "after the restart the log ends at $last, want 999 (AOF)"
wait_for 60 at "$last" w4 w5 w6 || { show w4 w5 w6; fail "replicas did not converge at $last after the restart"; }
for w in w4 w5 w6; do
    grep -q "the log can be read again after" "$T/$w.log" || fail "$w never read the log again"
done
n=$(result_count after:)
[ "$n" -eq 500 ] || fail "$n results for the 500 requests after the restart"
pass "the log's Redis restarted under 3 workers: none exited, all read on to $last ($(grep -o 'read again after [0-9]* ms' "$T/w4.log" | head -1))"
for w in w4 w5 w6; do stop_worker "$w"; done
