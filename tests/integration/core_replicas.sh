# core_replicas.sh - 3 no-op workers against redis-server and br2k-devkafka:
# one leader, all replicas reach the same LPI and digest, SSI covers the
# log, every request has its result; SIGTERM stops them cleanly; a restart
# checks the record at its LPI (I1) and goes on; an in-flight mark (I6), a
# recreated log (I1) and a gap make a worker refuse to start.
source "$(dirname "$0")/lib.sh"
source "$(dirname "$0")/core_helpers.bash"

start_redis
start_devkafka
"$BUILD/tests/itest_core" rlog "$KAFKA" "$TOPIC" >/dev/null || fail "rlog checks"
if [ "$LOG_BACKEND" = redis ]; then
    pass "rlog: offsets, headers, out of range (deletion: rlog_redis.sh, backup_redis.sh)"
else
    ASAN_OPTIONS=detect_leaks=0 "$BUILD/tests/itest_core" delete "$KAFKA" "$TOPIC" >/dev/null ||
        fail "rlog delete check"
    pass "rlog: offsets, headers, out of range, delete unsupported"
fi

# records before the workers start, then more while they run
last=$(produce 1000 0 early)
for w in w1 w2 w3; do start_worker "$w"; done
wait_for 30 at "$last" w1 w2 w3 || { show w1 w2 w3; fail "replicas did not converge at $last"; }
last=$(produce 2000 0 late)
wait_for 30 at "$last" w1 w2 w3 || { show w1 w2 w3; fail "replicas did not converge at $last"; }
pass "3 replicas at LPI $last with digest $(metric w1 digest | cut -c1-16)"

[ "$(rc_ GET "br2k:{$SVC}:SSI")" = "$last" ] || fail "SSI is not $last"
leaders=0
for w in w1 w2 w3; do [ "$(metric $w role)" = leader ] && leaders=$((leaders + 1)); done
[ "$leaders" -eq 1 ] || { show w1 w2 w3; fail "$leaders leaders"; }
[ "$(metric "$(leader_id)" role)" = leader ] || fail "lease holder is not the leader"
n=$(result_count "")
[ "$n" -eq 3000 ] || fail "$n results for 3000 requests"
# the rlog record whose header names x:1 cannot be parsed: its result is
# only under its offset, never the id's own key (no squatting); the other
# rlog record names no id
[ -z "$(result_get x:1)" ] && [ -n "$(rc_ --scan --pattern "br2k:{$SVC}:result:x:1@*")" ] ||
    fail "the unparseable record's result: $(result_get x:1) $(rc_ --scan --pattern "br2k:{$SVC}:result:x:1@*")"
result_get late:1999 | grep -q '"status":"ok"' || fail "result of late:1999"
for w in w1 w2 w3; do
    [ "$(rc_ SISMEMBER "br2k:{$SVC}:members" $w)" = 1 ] || fail "$w not a member"
    [ "$(rc_ EXISTS "br2k:{$SVC}:alive-$w")" = 1 ] || fail "$w not alive"
    [ "$(rc_ GET "br2k:{$SVC}:LPI-$w")" = "$last" ] || fail "LPI-$w is not $last"
    [ "$(rc_ GET "br2k:{$SVC}:State-$w")" = 1 ] || fail "State-$w is not 1"
done
[ "$(rc_ GET "br2k:{$SVC}:Service-State")" = 1 ] || fail "SV is not 1"
pass "one leader, SSI $last, $n results, membership, LPI mirrors, versions 1"

# SIGTERM: exit 0, leave, release the lease
old=$(leader_id)
for w in w1 w2 w3; do stop_worker "$w"; done
[ "$(rc_ EXISTS "br2k:{$SVC}:leader")" = 0 ] || fail "lease not released"
[ "$(rc_ SCARD "br2k:{$SVC}:members")" = 0 ] || fail "members left behind"
for w in w1 w2 w3; do
    [ "$(noop_count $w)" = $((last + 1)) ] || fail "$w applied $(noop_count $w) records"
    [ "$(metric $w role)" = stopped ] || fail "$w role $(metric $w role)"
done
grep -q "released the lease" "$T/$old.log" || fail "leader $old did not log the release"
pass "SIGTERM: exit 0, lease released, membership left, each record applied once"

# restart: the record at LPI is checked, and the worker goes on
start_worker w1
last=$(produce 10 0 again)
wait_for 30 at "$last" w1 || { show w1; fail "w1 did not go on after a restart"; }
grep -q "matches the digest" "$T/w1.log" || fail "w1 did not check the record at its LPI"
stop_worker w1
pass "restart: record at LPI verified, continued to $last"

# I6: an in-flight mark (a stop in the middle of a record) is refused
cp -r "$T/w2" "$T/w4"
read -r magic ver lpi dg _ _ <"$T/w4/worker.pos"
echo "$magic $ver $lpi $dg $((lpi + 1)) $((lpi + 5))" >"$T/w4/worker.pos"
start_worker w4
rc=0; wait "${WPID[w4]}" || rc=$?
[ "$rc" -eq 3 ] || fail "w4 exited $rc with an in-flight mark, want 3"
grep -q "interrupted in the middle of records" "$T/w4.log" || fail "no clear I6 error"
pass "I6: an in-flight mark stops the worker (exit 3)"

# I1: the log server loses its data (offsets from 0 again)
log_lose_data
produce 5 0 other >/dev/null
start_worker w2
rc=0; wait "${WPID[w2]}" || rc=$?
[ "$rc" -eq 3 ] || fail "w2 exited $rc on a foreign log, want 3"
grep -q "not the log this worker was reading" "$T/w2.log" || fail "no clear I1 error"
produce 5000 0 more >/dev/null
start_worker w3
rc=0; wait "${WPID[w3]}" || rc=$?
[ "$rc" -eq 3 ] || fail "w3 exited $rc on a replaced log, want 3"
grep -q "is not the record this worker applied" "$T/w3.log" || fail "no clear digest error"
pass "I1: a recreated log is refused (exit 3), by length and by digest"
