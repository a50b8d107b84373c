# core_stall.sh - a lone leader killed between the durable sync of a batch
# (app state + worker.pos with the new LPI) and its Redis commit (results +
# SSI) restarts with LPI > SSI. It must lead again: it wrote the results of
# that batch to worker.held before the position write, reloads them, re-runs
# their (idempotent, I5) external effects and commits them (SET NX), instead
# of waiting forever for another leader to raise SSI past its LPI.
#
# The crash point is made exact with the test hook of br2k-worker:
# BR2K_TEST_CRASH_BEFORE_COMMIT=1 makes it _exit(9) right after the
# position write of its first batch as leader, before the commit. That
# batch is one record with nothing behind it: with more records already
# read, the same position write carries the in-flight mark of the next
# batch (look-ahead) and the restart refuses to continue (I6, core_kill.sh).
source "$(dirname "$0")/lib.sh"
source "$(dirname "$0")/core_helpers.bash"

start_redis
start_devkafka
N=3000
BR2K_TEST_CRASH_BEFORE_COMMIT=1 start_worker w1
wait_for 15 has_leader || fail "no leader"
produce 1 0 first >/dev/null || fail "producer failed"
rc=0
wait_for 30 eval '! kill -0 "${WPID[w1]}" 2>/dev/null' || fail "w1 did not crash"
wait "${WPID[w1]}" || rc=$?
[ "$rc" -eq 9 ] || fail "w1 exited $rc, not 9 (the crash hook)"
grep -q "BR2K_TEST_CRASH_BEFORE_COMMIT" "$T/w1.log" || fail "the hook did not fire"
lpi=$(cut -d' ' -f3 "$T/w1/worker.pos")
mark=$(cut -d' ' -f5 "$T/w1/worker.pos")
ssi=$(rc_ GET "br2k:{$SVC}:SSI"); ssi=${ssi:--1}
[ "$mark" = "-1" ] || fail "w1 died with an in-flight mark ($mark): not between sync and commit"
[ "$lpi" -gt "$ssi" ] || fail "LPI $lpi is not beyond SSI $ssi after the crash"
[ -s "$T/w1/worker.held" ] || fail "no worker.held"
pass "w1 killed between sync and commit: LPI $lpi, SSI $ssi"

# the requests sent while the service has no leader wait in the log
produce "$N" 0 load >"$T/produce.out" || fail "producer failed"
last=$(cat "$T/produce.out")
[ "$last" -eq "$N" ] || fail "last offset $last, not $N"
# the lease of the dead worker expires; the restarted one must take it
start_worker w1
# (the metrics hash still says "leader" from before the crash: wait for the
# restarted process's own words first)
reloaded() { grep -q "reloaded .* results applied as leader" "$T/w1.log"; }
wait_for 15 reloaded || { show w1; fail "held results not reloaded"; }
leads_again() { [ "$(grep -c 'role: follower -> leader' "$T/w1.log")" -ge 2 ]; }
wait_for 15 leads_again || { show w1; cat "$T/w1.log" >&2; fail "w1 does not lead again"; }
ssi_is_last() { [ "$(rc_ GET "br2k:{$SVC}:SSI")" = "$last" ]; }
wait_for 30 ssi_is_last || { show w1; fail "SSI did not reach $last"; }
wait_for 15 at "$last" w1 || { show w1; fail "w1 did not reach $last"; }
n=$(result_count "")
[ "$n" -eq $((N + 1)) ] || fail "$n results for $((N + 1)) requests"
[ -n "$(result_get first:0)" ] || fail "no result for the crashed batch"
for s in 0 1 $((N / 2)) $((N - 1)); do
    [ -n "$(result_get "load:$s")" ] || fail "no result for load:$s"
done
stop_worker w1
[ "$(noop_count w1)" = $((last + 1)) ] || fail "w1 applied $(noop_count w1) records, not $((last + 1))"
pass "w1 led again from SSI $ssi: SSI $last, $((N + 1)) results, each record applied once"
