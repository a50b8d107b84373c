#!/usr/bin/env bash
# rlog_foreign.sh - entries that BR2K did not append, on the Redis Streams log
# (rlog_redis.c; common/log/README.md, "Foreign entries"):
#   - under 3 running workers, `XADD br2k.default.requests '*' v junk`: no
#     worker exits; the entry becomes record 1000 (empty, header
#     br2k-foreign=<its id>), appends go on at 1001.. with dense offsets
#     (entry ids 1-0..1-1999, counter 2000), the replicas agree on the
#     digest, and a fourth worker joining afterwards reaches the same;
#   - an XADD of our exact form at the next id is a record as written; a
#     foreign XADD then XDEL (the stream keeps its last id) does not stop
#     appends; an entry at a far id (1-5000) is adopted at the next offset;
#   - a failed append changes nothing (no hole): the stream key holding a
#     string, more foreign entries than one step adopts, and the counter
#     deleted by hand fail with an error that says so, the counter and the
#     entries unchanged; once cleared, the next append takes the next
#     offset.
source "$(dirname "$0")/lib.sh"
source "$(dirname "$0")/core_helpers.bash"
LOG_BACKEND=redis # this test is about the Redis Streams back end

start_redis
start_devkafka # the log's own redis-server: LOG_PORT
lc() { redis-cli -p "$LOG_PORT" "$@"; }
ids() { lc EVAL "local r = {} for _, x in ipairs(redis.call('XRANGE', KEYS[1], '-', '+')) do r[#r + 1] = x[1] end return r" 1 "$1"; }

# 1. a foreign entry under running workers
for w in w1 w2 w3; do start_worker "$w"; done
last=$(produce 1000 0 before)
[ "$last" = 999 ] || fail "last offset $last"
wait_for 60 at 999 w1 w2 w3 || { show w1 w2 w3; fail "replicas did not converge at 999"; }
junk=$(lc XADD "$TOPIC" '*' v junk)
pass "XADD $TOPIC '*' v junk -> $junk"
# the workers read past it (they adopted it: a record of its own at 1000),
# and none of them exited
wait_for 30 at 1000 w1 w2 w3 || { show w1 w2 w3; fail "replicas did not apply the foreign record at 1000"; }
for w in w1 w2 w3; do kill -0 "${WPID[$w]}" 2>/dev/null || fail "$w exited: $(tail -n 3 "$T/$w.log")"; done
[ "$(lc XRANGE "$TOPIC" 1-1000 1-1000 | tr '\n' ' ')" = "1-1000 k  v  h:br2k-foreign $junk x:v junk " ] ||
    fail "entry 1-1000: $(lc XRANGE "$TOPIC" 1-1000 1-1000 | tr '\n' ' ')"
pass "no worker exited; the foreign entry is record 1000 (header br2k-foreign=$junk) on every replica"
last=$(produce 999 0 after)
[ "$last" = 1999 ] || fail "appends after the foreign entry end at $last, want 1999"
wait_for 60 at 1999 w1 w2 w3 || { show w1 w2 w3; fail "replicas did not converge at 1999"; }
ids "$TOPIC" >"$T/ids"
seq 0 1999 | sed 's/^/1-/' | diff -q - "$T/ids" >/dev/null || fail "entry ids are not 1-0..1-1999: $(diff <(seq 0 1999 | sed 's/^/1-/') "$T/ids" | head -5)"
[ "$(lc GET "{$TOPIC}:next")" = 2000 ] || fail "counter $(lc GET "{$TOPIC}:next")"
[ "$(lc XINFO STREAM "$TOPIC" | sed -n '/^last-generated-id$/{n;p}')" = 1-1999 ] || fail "last id of the stream"
n=$(result_count after:)
[ "$n" -eq 999 ] || fail "$n results for the 999 requests after the foreign entry"
pass "appends go on at 1001..1999: entry ids dense 1-0..1-1999, counter 2000, digest $(metric w1 digest | cut -c1-16) on 3 replicas"
start_worker w4
wait_for 60 at 1999 w1 w2 w3 w4 || { show w1 w2 w3 w4; fail "w4 did not join at 1999"; }
for w in w1 w2 w3 w4; do
    ! grep -q "out of range\|never skipping\|not 1-<offset>" "$T/$w.log" || fail "$w: $(grep -m2 "out of range\|never skipping\|not 1-<offset>" "$T/$w.log")"
done
pass "a worker added afterwards reads the log from 0 and joins at 1999 with the same digest"
for w in w1 w2 w3 w4; do stop_worker "$w"; done
for w in w1 w2 w3 w4; do
    [ "$(noop_count $w)" = 2000 ] || fail "$w applied $(noop_count $w) records, want 2000"
done
pass "workers stopped cleanly, each applied 2000 records"

# 2. the other shapes of foreign entries, on a stream of their own
S=br2k.f.requests
pf() { "$BUILD/tests/itest_core" produce "$KAFKA/$S" x "$@"; }
[ "$(pf 3 0 a)" = 2 ] || fail "first appends"
lc XADD "$S" 1-3 k m v mimic h:br2k-request-id m:1 >/dev/null # our exact form, next id
[ "$(pf 1 0 b)" = 4 ] || fail "append after an entry of our form at 1-3"
[ "$(lc HGET "{$S}:ids" m:1)" = 3 ] || fail "the request id of 1-3 is not noted"
j=$(lc XADD "$S" '*' v gone); lc XDEL "$S" "$j" >/dev/null # the stream keeps its last id
[ "$(pf 1 0 c)" = 5 ] || fail "append after a foreign XADD and XDEL"
lc XADD "$S" 1-5000 k a v b >/dev/null # our form, far ahead
[ "$(pf 1 0 d)" = 7 ] || fail "append after an entry at 1-5000"
"$BUILD/tests/itest_rlog" dump "$KAFKA" "$S" >"$T/f.dump" || fail "dump $S"
[ "$(cut -d' ' -f1-3 "$T/f.dump" | tr '\n' '|')" = "0 a br2k-request-id=a:0,br2k-schema=1|1 a br2k-request-id=a:1,br2k-schema=1|2 a br2k-request-id=a:2,br2k-schema=1|3 m br2k-request-id=m:1|4 b br2k-request-id=b:0,br2k-schema=1|5 c br2k-request-id=c:0,br2k-schema=1|6  |7 d br2k-request-id=d:0,br2k-schema=1|" ] ||
    fail "records of $S: $(cat "$T/f.dump")"
[ "$(lc XRANGE "$S" 1-6 1-6 | tr '\n' ' ')" = "1-6 k  v  h:br2k-foreign 1-5000 x:k a x:v b " ] ||
    fail "entry 1-6: $(lc XRANGE "$S" 1-6 1-6 | tr '\n' ' ')"
pass "an entry of our form at the next id is record 3 as written; XADD+XDEL and an entry at 1-5000 do not stop appends (offsets 5, 6 foreign, 7)"

# 3. a failed append changes nothing
S=br2k.g.requests
pg() { "$BUILD/tests/itest_core" produce "$KAFKA/$S" x "$@"; }
[ "$(pg 2 0 a)" = 1 ] || fail "first appends to $S"
lc DEL "$S" >/dev/null
lc SET "$S" junk >/dev/null
if pg 1 0 b >"$T/g1.out" 2>"$T/g1.err"; then fail "append to a string key succeeded"; fi
grep -q "the key $S is a string, not the log stream" "$T/g1.err" || fail "error: $(cat "$T/g1.err")"
[ "$(lc GET "{$S}:next")" = 2 ] || fail "counter $(lc GET "{$S}:next") after a failed append"
pass "append to a stream key holding a string fails, counter unchanged: $(head -1 "$T/g1.err")"
lc DEL "$S" >/dev/null
[ "$(pg 1 0 c)" = 2 ] || fail "append after the key was cleared"
lc EVAL "for i = 1, 10001 do redis.call('XADD', KEYS[1], '*', 'v', 'junk') end" 1 "$S" >/dev/null
if pg 1 0 d >"$T/g2.out" 2>"$T/g2.err"; then fail "append after 10001 foreign entries succeeded"; fi
grep -q "more than 10000 entries after offset 2 of $S were not appended by BR2K" "$T/g2.err" ||
    fail "error: $(cat "$T/g2.err")"
[ "$(lc GET "{$S}:next")" = 3 ] && [ "$(lc XLEN "$S")" = 10002 ] ||
    fail "counter $(lc GET "{$S}:next"), XLEN $(lc XLEN "$S") after a failed append"
pass "10001 foreign entries: the append fails and changes nothing: $(head -1 "$T/g2.err")"
# what the message asks: delete them (the stream keeps the last id, beyond ours)
lc EVAL "for _, x in ipairs(redis.call('XRANGE', KEYS[1], '(1-2', '+')) do redis.call('XDEL', KEYS[1], x[1]) end" 1 "$S" >/dev/null
[ "$(ids "$S")" = 1-2 ] || fail "after XDEL: $(ids "$S" | head -3)"
[ "$(pg 1 0 e)" = 3 ] || fail "append after the foreign entries were deleted"
pass "once they are deleted, the next append takes offset 3 (no hole)"

# 4. the counter deleted by hand while the stream holds trimmed records:
# nothing is adopted (that would rewrite them); the error says what to do
S=br2k.h.requests
ph() { "$BUILD/tests/itest_core" produce "$KAFKA/$S" x "$@"; }
[ "$(ph 5 0 a)" = 4 ] || fail "first appends to $S"
"$BUILD/tests/itest_rlog" delete "$KAFKA" "$S" 3 || fail "delete_below(3)"
lc DEL "{$S}:next" >/dev/null
if ph 1 0 b >"$T/h.out" 2>"$T/h.err"; then fail "append without the counter succeeded"; fi
grep -q "the counter {$S}:next is missing but $S holds records from offset 3" "$T/h.err" ||
    fail "error: $(cat "$T/h.err")"
[ "$(ids "$S" | tr '\n' ' ')" = "1-3 1-4 " ] || fail "entries changed: $(ids "$S" | tr '\n' ' ')"
lc SET "{$S}:next" 5 >/dev/null
[ "$(ph 1 0 c)" = 5 ] || fail "append once the counter is set again"
pass "counter deleted by hand: the append is refused, the records untouched: $(head -1 "$T/h.err" | cut -c1-150)"
