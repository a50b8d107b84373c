# core_stuck_log.sh - a worker that cannot make progress backs off instead
# of spinning (hardening issue, item 2). On the Redis Streams log, an
# entry deleted by hand in the middle of the log (XDEL: a hole after the
# latest backup's cut) makes every read past it fail: a follower restores
# the latest backup, replays up to the hole, fails again, and so on. That
# is correct (I1: it never skips the hole) but must not run several
# restores a second: the second and later recoveries that fail reading the
# same record wait 1 s, 2 s, 4 s, ... (the record, not the LPI: records
# before the hole may still wait in the queue when the read fails, so the
# LPI at the failure depends on timing; on a loaded CI machine it did, and
# the back-off came 3 restores late) The test counts the restores of a joining
# worker in a fixed window and checks its log says it is waiting.
export BR2K_TEST_LOG=redis # the hole is made with XDEL on the stream
source "$(dirname "$0")/lib.sh"
source "$(dirname "$0")/core_helpers.bash"
source "$(dirname "$0")/backup_helpers.bash"
APP=infodid

start_redis
start_devkafka
start_chain
RARGS=(--eth-rpc "$ETH_RPC" --registry "$REG" --service-key-file "$T/service.key")
for w in w1 w2; do start_worker "$w" "${RARGS[@]}"; done
wait_for 15 has_leader || fail "no leader"
start_backupd --max-replicated 100000000
ssi() { rc_ GET "br2k:{$SVC}:SSI"; }
"$BIN/br2k" --redis "$REDIS" --kafka "$KAFKA" submit --clients 2 --count 20 --prefix a \
    >"$T/load1.out" 2>&1 || fail "load 1: $(tail -3 "$T/load1.out")"
"$BIN/br2k" --redis "$REDIS" backup now --wait 60 >/dev/null || fail "backup failed"
"$BIN/br2k" --redis "$REDIS" --kafka "$KAFKA" submit --clients 2 --count 20 --prefix b \
    >"$T/load2.out" 2>&1 || fail "load 2: $(tail -3 "$T/load2.out")"
wait_for 30 at "$(ssi)" w1 w2 || { show w1 w2; fail "w1, w2 did not converge"; }
cut=$(rc_ GET "br2k:{$SVC}:backup-last" | cut -d' ' -f2)
hole=$((cut + 10))
[ "$(redis-cli -p "$LOG_PORT" XDEL "$TOPIC" "1-$hole")" = 1 ] || fail "cannot XDEL entry 1-$hole"

# w3 joins: restores the backup (cut $cut), replays to the hole, fails there
start_worker w3 "${RARGS[@]}"
wait_for 30 grep -q "restored backup version" "$T/w3.log" || { tail -5 "$T/w3.log"; fail "w3 never restored"; }
# with the back-off, the third wait (4000 ms) comes after 4 restores, about
# 3 s in (restores at about 0, 0+, 1, 3 s); without it, the message never
# comes and the restores go on several times a second
third_wait() { grep -q "made no progress: .*waiting 4000 ms" "$T/w3.log" || ! kill -0 "${WPID[w3]}" 2>/dev/null; }
wait_for 60 third_wait || fail "w3 never waited 4000 ms: $(grep -c "restored backup version" "$T/w3.log") restores"
kill -0 "${WPID[w3]}" 2>/dev/null || fail "w3 stopped: $(tail -2 "$T/w3.log")"
n=$(grep -c "restored backup version" "$T/w3.log")
[ "$n" -le 6 ] || fail "w3 restored the backup $n times before its third wait: it spins"
grep -q "get-the-latest-state made no progress: the log fails again at LPI [0-9]*, reading record $hole .*waiting [0-9]* ms" "$T/w3.log" ||
    fail "w3 does not say it is backing off: $(grep -i 'get-the-latest' "$T/w3.log" | tail -2)"
[ "$(metric w3 lpi)" -lt "$hole" ] || fail "w3 got past the hole at $hole (LPI $(metric w3 lpi))"
stop_worker w3
pass "w3 stuck at the hole $hole after cut $cut: $n restores before its third wait (4 s), backing off, never past the hole"
