# backup_redis.sh - I7 where records can really be deleted: the log on
# Redis Streams (--kafka redis://). backupd stopped at step 'log' (before
# appendBackupLog) has deleted nothing; once the log is confirmed on chain,
# the records below the cut are gone (XTRIM MINID); a new worker, which
# cannot replay them, joins through the backup (I1: never skips them).
source "$(dirname "$0")/lib.sh"
source "$(dirname "$0")/core_helpers.bash"
source "$(dirname "$0")/backup_helpers.bash"

start_redis
KAFKA=redis://$REDIS # the request log on Redis Streams, no broker
start_chain
RARGS=(--eth-rpc "$ETH_RPC" --registry "$REG" --service-key-file "$T/service.key")
for w in w1 w2; do start_worker "$w" "${RARGS[@]}"; done
wait_for 15 has_leader || fail "no leader"
first_id() { rc_ XRANGE "$TOPIC" - + COUNT 1 | head -1; }
stopped() { grep -q "stopped at step 'log'" "$T/backupd.log"; }
log_empty() { [ "$(rc_ XLEN "$TOPIC")" = 0 ]; }

produce 300 0 load >/dev/null
wait_for 30 at 299 w1 w2 || { show w1 w2; fail "workers did not apply 300 records"; }
BR2K_TEST_BACKUP_STOP=log start_backupd --max-replicated 1000000000
rc_ SET "br2k:{$SVC}:backup-now" 1 >/dev/null
wait_for 30 stopped || fail "backupd never reached step 'log'"
[ "$(chain_sv)" = 1 ] || fail "the chain moved before the log step"
[ "$(first_id)" = "1-0" ] && [ "$(rc_ XLEN "$TOPIC")" = 300 ] ||
    fail "records deleted before the log was confirmed: first $(first_id), XLEN $(rc_ XLEN "$TOPIC")"
pass "backupd held at step 'log': nothing deleted (first entry 1-0, 300 entries), chain at version 1"

kill -CONT "$BD_PID"
wait_for 60 versions_are 2 w1 w2 || fail "the backup did not finish: SV $(sv), chain $(chain_sv)"
cut=$(rc_ GET "br2k:{$SVC}:backup-last" | cut -d' ' -f2)
[ "$cut" = 299 ] || fail "cut $cut, expected 299"
wait_for 10 log_empty || fail "records below the cut still there: XLEN $(rc_ XLEN "$TOPIC")"
grep -q "backup version 2 is on chain: deleting the records below 300" "$T/backupd.log" ||
    fail "backupd did not say it deleted after the confirmation"
pass "after version 2 was confirmed on chain, the records below 300 were deleted (XLEN 0)"

produce 50 0 more >/dev/null
start_worker w3 "${RARGS[@]}"
wait_for 60 at 349 w1 w2 w3 || { show w1 w2 w3; fail "w3 did not join"; }
grep -q "restored backup version 2" "$T/w3.log" || fail "w3 did not join through the backup"
[ "$(metric w3 applied)" = 50 ] || fail "w3 applied $(metric w3 applied) records, expected 50"
pass "a new worker joined through backup 2 and applied only the 50 records after the cut"
grep -q "Sanitizer\|runtime error" "$T"/*.log && fail "sanitizer report in a log"
echo "backup_redis: all checks passed"
