# recover.sh - get-the-latest-state (issue 6) on real redis-server,
# br2k-devkafka, anvil, file storage and InfoDID workers whose first
# Ethereum RPC URL is dead:
#  - a worker killed in the middle of applying a request (the InfoDID
#    hook holds `register` halfway) restarts, restores, replays, and its
#    digest equals the others';
#  - a worker whose state directory is wiped rejoins the same way;
#  - a new worker added after three backups replays only the records after
#    the latest cut (counted) and converges;
#  - an unreadable latest snapshot: the previous version is used (the log
#    still covers it); none readable: the worker stops with one clear error;
#  - a worker leaving on SIGTERM removes itself from the members;
#  - every backup holds the external state at its cut (InfoDID's index,
#    br2k:{svc}:ext:*, from the leader's view of its state: --view-fields 0):
#    read back from the storage with the service key,
#    under its sha256, equal to Redis's keys while nothing runs after the
#    cut, and to the backup's own restored state (the same DIDs and
#    controllers, the same number active), also for a backup taken while
#    records arrive; and its log is valid against the schema.
source "$(dirname "$0")/lib.sh"
source "$(dirname "$0")/core_helpers.bash"
source "$(dirname "$0")/backup_helpers.bash"
APP=infodid

start_redis
start_devkafka
start_chain
DEAD=$(free_port) # nothing listens there: every recovery fails over to anvil
RARGS=(--eth-rpc "http://127.0.0.1:$DEAD,$ETH_RPC" --registry "$REG" --service-key-file "$T/service.key")
for w in w1 w2 w3; do start_worker "$w" "${RARGS[@]}"; done
wait_for 15 has_leader || fail "no leader"
# --view-fields 0: every backup's external state comes from the leader's
# view of its state at the cut (InfoDID offers one), never read from Redis
# while it holds; check_external compares it with Redis's keys (the
# Redis-read path: backup_external.sh, backup_history.sh)
start_backupd --max-replicated 100000000 --view-fields 0

n=0
load() { # load COUNT: COUNT signed registrations from a fresh client prefix
    n=$((n + 1))
    "$BIN/br2k" --redis "$REDIS" --kafka "$KAFKA" submit --clients 2 --count "$1" \
        --prefix "c$n.$BASHPID" >"$T/load$n.out" 2>&1 || fail "load $n: $(tail -3 "$T/load$n.out")"
}
ssi() { rc_ GET "br2k:{$SVC}:SSI"; }
all_at() { # all_at ID...: each at SSI with the same digest
    at "$(ssi)" "$@"
}
backup_now() {
    local v; v=$(sv)
    "$BIN/br2k" --redis "$REDIS" backup now --wait 60 >/dev/null || fail "backup now failed: $(tail -3 "$T/backupd.log")"
    [ "$(sv)" = $((v + 1)) ] || fail "SV $(sv) after a backup from $v"
}
last_cut() { rc_ GET "br2k:{$SVC}:backup-last" | cut -d' ' -f2; }
follower() { local w; for w in "$@"; do [ "$w" = "$(leader_id)" ] || { echo "$w"; return; }; done; }
inflight() { # the in-flight mark of worker.pos is set
    read -r _ _ _ _ first _ <"$T/$1/worker.pos"
    [ "$first" -ge 0 ]
}

load 100
# the record at the cut has no external effect (a rejection): Redis's
# ext:applied stays at the record before it, the view's is the cut
rj=$(submit_rejection 1)
backup_now
[ "$(last_cut)" = "$(jq .offset <<<"$rj")" ] || fail "backup 2 cut at $(last_cut), not at the rejection $(jq .offset <<<"$rj")"
check_external 2 "$(last_cut)" >"$T/external2.out"
grep -q "backup version 2: the external state comes from the leader's view" "$T/backupd.log" ||
    fail "backup 2 read the external state from Redis, not from the leader's view"
pass "backup 2 holds the external state at its cut, from the leader's view: $(tail -1 "$T/external2.out")"
load 100
wait_for 30 all_at w1 w2 w3 || { show w1 w2 w3; fail "replicas did not converge"; }

# 1. killed in the middle of a request
F=$(follower w1 w2 w3)
stop_worker "$F"
[ "$(rc_ SISMEMBER "br2k:{$SVC}:members" "$F")" = 0 ] || fail "$F left on SIGTERM but is still a member"
BR2K_TEST_HOLD_APPLY_MS=5000 start_worker "$F" "${RARGS[@]}"
wait_for 30 role_is "$F" follower || fail "$F did not start following"
load 4 &
lp=$!
wait_for 20 inflight "$F" || fail "$F never held a request mid-apply"
kill -KILL "${WPID[$F]}"; wait "${WPID[$F]}" 2>/dev/null || true
wait "$lp" || fail "load during the kill failed"
grep -q "BR2K_TEST_HOLD_APPLY_MS" "$T/$F.log" || fail "the hook was not active"
start_worker "$F" "${RARGS[@]}"
wait_for 60 all_at w1 w2 w3 || { show w1 w2 w3; tail -5 "$T/$F.log"; fail "$F did not converge after the mid-request kill"; }
grep -q "get-the-latest-state: stopped in the middle of records" "$T/$F.log" || fail "$F did not see its in-flight mark"
grep -q "restored backup version 2" "$T/$F.log" || fail "$F did not restore version 2"
pass "$F killed mid-request: restored backup 2, replayed, same digest as the others at $(ssi)"

# 2. wiped state directory (its metrics hash too: the old one already says
# it is at SSI, and all_at must wait for the new worker's)
stop_worker "$F"
rc_ DEL "br2k:{$SVC}:metrics-$F" >/dev/null
rm -rf "${T:?}/$F"
: >"$T/$F.log"
start_worker "$F" "${RARGS[@]}"
wait_for 60 all_at w1 w2 w3 || { show w1 w2 w3; fail "$F did not rejoin after its state was wiped"; }
# (on Redis Streams the records below the cut are really gone, so the worker
# may first see that the log no longer starts where it must)
grep -q "no local state\|records were deleted" "$T/$F.log" && grep -q "restored backup version 2" "$T/$F.log" || fail "$F did not restore after the wipe"
pass "$F with a wiped state directory: restored backup 2 and rejoined"
# its claim floor (worker/claim.c, wk_claim_floor; I9): the claims before
# the backup's cut are not in the log it read, so the restore sets the
# highest epoch claimed to the epoch the backup ran under (the leader's,
# unchanged since): a take asks for an epoch above it, never a lost one
ep=$(rc_ GET "br2k:{$SVC}:epoch")
[ -f "$T/$F/worker.claim" ] || fail "$F restored backup 2 but has no claim floor ($T/$F/worker.claim missing)"
read -r floor <"$T/$F/worker.claim"
[ "$floor" = "$ep" ] || fail "$F's claim floor after the restore is $floor, expected the backup's epoch $ep"
pass "$F's claim floor after the restore: epoch $floor (the backup's)"

# 3. a new worker after three backups reads only the records after the cut
backup_now; load 50; backup_now
check_external 4 "$(last_cut)" >"$T/external4.out"
pass "backup 4 holds the external state at its cut: $(tail -1 "$T/external4.out")"
load 60
cut=$(last_cut); last=$(ssi)
start_worker w4 "${RARGS[@]}"
wait_for 60 all_at w1 w2 w3 w4 || { show w1 w2 w3 w4; fail "w4 did not converge"; }
[ "$(metric w4 applied)" = $((last - cut)) ] || fail "w4 applied $(metric w4 applied) records, expected $((last - cut)) (SSI $last, cut $cut)"
grep -q "restored backup version 4" "$T/w4.log" || fail "w4 did not start from version 4"
grep -q "joined: caught up with SSI" "$T/w4.log" || fail "w4 never said it caught up"
[ "$(metric w4 caught_up)" = 1 ] && [ "$(metric w4 ssv)" = 4 ] || fail "w4: caught_up $(metric w4 caught_up), ssv $(metric w4 ssv)"
pass "new worker w4 after three backups: restored version 4 (cut $cut), applied exactly the $((last - cut)) records after it"

# 4. the latest snapshot unreadable: the previous version, when the log
# still covers its cut (the development broker never deletes). On Redis
# Streams the records after version 3's cut were deleted by version 4's
# backup: no version can be used, and the worker must stop, never skip (I1).
latest=$(ls "$T/backups" | grep '^v00000004-state-')
printf 'XX' | dd of="$T/backups/$latest" bs=1 seek=80 conv=notrunc 2>/dev/null
stop_worker w4; rc_ DEL "br2k:{$SVC}:metrics-w4" >/dev/null; rm -rf "${T:?}/w4"; : >"$T/w4.log"
start_worker w4 "${RARGS[@]}"
if [ "$LOG_BACKEND" = redis ]; then
    rc=0; wait "${WPID[w4]}" || rc=$?
    [ "$rc" = 3 ] || fail "w4 exited $rc with version 4 corrupted and version 3 older than the log, expected 3"
    grep -q "cannot restore: backup version 4: .*digest mismatch.*and backup version 3 (cut [0-9]*) is older than the log, which starts at offset $((cut + 1))" "$T/w4.log" ||
        fail "unclear error: $(grep -i error "$T/w4.log" | tail -2)"
    pass "latest snapshot corrupted, version 3 older than the log (records really deleted): w4 stops with exit 3 naming both"
else
    wait_for 60 all_at w1 w2 w3 w4 || { show w1 w2 w3 w4; fail "w4 did not converge from version 3"; }
    grep -q "backup version 4: .*digest mismatch" "$T/w4.log" || fail "w4 did not report version 4's damage: $(grep get-the-latest "$T/w4.log")"
    grep -q "restored backup version 3" "$T/w4.log" || fail "w4 did not fall back to version 3"
    pass "latest snapshot corrupted: w4 refused version 4 (digest mismatch) and restored version 3"

    # ... and none readable: one clear error, exit 3, nothing guessed
    for f in "$T"/backups/v*-state-*; do printf 'XX' | dd of="$f" bs=1 seek=80 conv=notrunc 2>/dev/null; done
    stop_worker w4; rc_ DEL "br2k:{$SVC}:metrics-w4" >/dev/null; rm -rf "${T:?}/w4"; : >"$T/w4.log"
    start_worker w4 "${RARGS[@]}"
    rc=0; wait "${WPID[w4]}" || rc=$?
    [ "$rc" = 3 ] || fail "w4 exited $rc with every snapshot corrupted, expected 3"
    grep -q "cannot restore any backup: backup version 4: .*digest mismatch" "$T/w4.log" ||
        fail "unclear error: $(grep -i error "$T/w4.log" | tail -2)"
    pass "every snapshot corrupted: w4 stops with exit 3: $(grep -o 'cannot restore any backup: backup version 4[^;]*' "$T/w4.log" | head -1 | cut -c1-90)..."
fi

# 5. a backup while records arrive: its external state is the one at its
# cut (not Redis's now): the backup's restored state has the same DIDs
s0=$(ssi)
# paced (3000 requests at 400/s, about 7.5 s), so that the backup, asked
# for once 100 of them are in, cuts while the rest still arrive: an
# unpaced load can be over before the cut on a busy machine
n=$((n + 1))
"$BIN/br2k" --redis "$REDIS" --kafka "$KAFKA" submit --clients 2 --count 1500 --rate 400 \
    --prefix "c$n.$BASHPID" >"$T/load$n.out" 2>&1 &
lp=$!
ssi_above() { [ "$(ssi)" -gt "$1" ]; }
wait_for 30 ssi_above $((s0 + 100)) || fail "the load did not start"
backup_now
wait "$lp" || fail "load during the backup failed: $(tail -3 "$T/load$n.out")"
v=$(sv); cut=$(last_cut)
[ "$cut" -lt "$(ssi)" ] || fail "the backup under load cut at $cut, the load ended at $(ssi): not taken under load"
out=$(external_json "$v" 2>&1) || fail "external state of version $v: $out"
[ "$(jq -r .state.match <<<"$out")" = true ] || fail "version $v: the external index is not the restored state's: $(jq -c .state <<<"$out")"
[ "$(jq -r .meta.applied_offset <<<"$out")" -le "$cut" ] || fail "version $v: applied $(jq -r .meta.applied_offset <<<"$out") beyond the cut $cut"
[ "$(jq -r --arg k "br2k:{$SVC}:ext:did" '.content.keys[$k].value | length' <<<"$out")" -lt "$(rc_ HLEN "br2k:{$SVC}:ext:did")" ] ||
    fail "version $v: the external state holds as many DIDs as Redis after the load"
pass "backup $v under load (cut $cut, SSI $(ssi) after): its external state is its state's: $(jq -c .state <<<"$out")"

grep -q "Sanitizer\|runtime error" "$T"/*.log && fail "sanitizer report in a log"
echo "recover: all checks passed"
