# status_truth.sh - what an operator reads is true (hardening item 6):
#  - `br2k status --json` takes a member's role from the lease and its
#    heartbeat, not from its metrics hash: after start exactly one member is
#    `leader`, the lease holder; LAG is SSI - LPI of the very numbers shown;
#  - the leader paused (SIGSTOP) past its lease until another takes over:
#    exactly one `leader`, the new one; the paused one is not `leader` and
#    its row is marked stale (its metrics still say leader); `br2k status`
#    and `br2k top --once` say so too, and the row heals once it resumes;
#  - `br2k backup now` with no record since the last backup says "nothing
#    new", exits 0, asks nothing (SV unchanged, no backup-now key); with
#    --force it asks anyway (br2k-backupd makes a version with the same cut).
source "$(dirname "$0")/lib.sh"
source "$(dirname "$0")/core_helpers.bash"
source "$(dirname "$0")/backup_helpers.bash"

start_redis
start_devkafka
start_chain
for w in w1 w2 w3; do start_worker "$w"; done
wait_for 15 has_leader || fail "no leader"
start_backupd --max-replicated 1000000
export BR2K_REDIS=$REDIS BR2K_SERVICE=$SVC
BR2K=("$BIN/br2k")

# check_status FILE: the invariants of one status --json: at most one
# leader row, the lease holder's; every lag is SSI - LPI of the same
# object; a heartbeat age exactly for live rows; every stale row says why
check_status() {
    jq -e --argjson ssi "$(jq '.ssi // -1' "$1")" '
        ([.members[] | select(.role == "leader")] | length) <= 1 and
        (if .leader == null then true
         else [.members[] | select(.role == "leader") | .id] == [.leader.id] end) and
        all(.members[]; .lag == (if .lpi == null then null
                                 elif $ssi > .lpi then $ssi - .lpi else 0 end)) and
        all(.members[]; (.alive | not) == (.heartbeat_age_ms == null)) and
        all(.members[]; (.stale | not) or (.note | type == "string"))
    ' "$1" >/dev/null
}

# 1. right after start
started() {
    "${BR2K[@]}" status --json >"$T/s0.json" &&
        jq -e '.leader != null and (.members | length) == 3' "$T/s0.json"
}
wait_for 15 started || fail "no leader with 3 members: $(cat "$T/s0.json")"
check_status "$T/s0.json" || fail "status after start: $(cat "$T/s0.json")"
L0=$(jq -r .leader.id "$T/s0.json")
[ "$(jq -r --arg l "$L0" '.members[] | select(.id == $l) | .role' "$T/s0.json")" = leader ] ||
    fail "the lease holder's row is not leader: $(cat "$T/s0.json")"
pass "after start: one leader, the lease holder $L0; lags are SSI - LPI"

# 2. the leader paused past its lease, under load
produce 3000 300 steady >"$T/produce.out" &
prod=$!; PIDS+=("$prod")
ssi_at_least() { local s; s=$(rc_ GET "br2k:{$SVC}:SSI"); [ -n "$s" ] && [ "$s" -ge "$1" ]; }
wait_for 30 ssi_at_least 300 || { show w1 w2 w3; fail "the load is not being committed"; }
old=$(leader_id); epoch=$(leader_epoch)
kill -STOP "${WPID[$old]}"
wait_for 10 epoch_is $((epoch + 1)) || { show w1 w2 w3; fail "no new epoch after pausing $old"; }
new=$(leader_id)
[ "$new" != "$old" ] || fail "the paused worker kept the lease"
"${BR2K[@]}" status --json >"$T/s1.json" || fail "status --json"
"${BR2K[@]}" status >"$T/s1.txt" || fail "status"
"${BR2K[@]}" top --once >"$T/t1.txt" || fail "top --once"
cat "$T/s1.txt"
check_status "$T/s1.json" || fail "status after the pause: $(cat "$T/s1.json")"
jq -e --arg n "$new" '[.members[] | select(.role == "leader") | .id] == [$n] and .leader.id == $n' \
    "$T/s1.json" >/dev/null || fail "not exactly one leader, $new: $(cat "$T/s1.json")"
jq -e --arg o "$old" '.members[] | select(.id == $o) | .role != "leader" and .stale == true and
    (.note | length) > 0' "$T/s1.json" >/dev/null ||
    fail "paused $old not marked stale / still leader: $(cat "$T/s1.json")"
[ "$(grep -c -E '^  [^ ]+ +leader ' "$T/s1.txt")" = 1 ] || fail "status shows not one leader row"
grep -E -q "^  $new +leader " "$T/s1.txt" || fail "status: $new is not the leader row"
grep -E -q "^  $old .*STALE: " "$T/s1.txt" || fail "status: $old not marked STALE"
[ "$(awk '$2 == "leader"' "$T/t1.txt" | wc -l)" = 1 ] || fail "top shows not one leader row: $(cat "$T/t1.txt")"
grep -E -q "^$old .* stale " "$T/t1.txt" || fail "top: $old not marked stale: $(cat "$T/t1.txt")"
pass "$old paused: one leader ($new, epoch $((epoch + 1))); $old is $(jq -r --arg o "$old" \
    '.members[] | select(.id == $o) | "\(.role), stale: \(.note)"' "$T/s1.json")"

# its heartbeat expires while paused: down, still not leader
down() {
    "${BR2K[@]}" status --json >"$T/s2.json" &&
        jq -e --arg o "$old" '.members[] | select(.id == $o) | .alive == false and .role == "down"' "$T/s2.json"
}
wait_for 10 down || fail "paused $old not down after its heartbeat expired: $(cat "$T/s2.json")"
check_status "$T/s2.json" || fail "status with $old down: $(cat "$T/s2.json")"
pass "$old's heartbeat expired: role down, stale"

kill -CONT "${WPID[$old]}"
healed() {
    "${BR2K[@]}" status --json >"$T/s3.json" &&
        jq -e --arg o "$old" '.members[] | select(.id == $o) | .alive and (.stale | not) and .role == "follower"' "$T/s3.json"
}
wait_for 15 healed || fail "$old did not come back as a fresh follower: $(cat "$T/s3.json")"
check_status "$T/s3.json" || fail "status after resume: $(cat "$T/s3.json")"
pass "$old resumed: a follower again, its row fresh"
wait "$prod" || fail "producer failed"
last=$(cat "$T/produce.out")
wait_for 30 at "$last" w1 w2 w3 || { show w1 w2 w3; fail "replicas did not converge at $last"; }
"${BR2K[@]}" status --json >"$T/s4.json"
check_status "$T/s4.json" || fail "status at rest: $(cat "$T/s4.json")"
jq -e 'all(.members[]; .lag == 0 and .alive and (.stale | not))' "$T/s4.json" >/dev/null ||
    fail "at rest: $(cat "$T/s4.json")"
pass "at rest: every row fresh, lag 0"

# 3. backup now: something new, then nothing new, then --force
out=$("${BR2K[@]}" backup now --wait 120) || fail "backup now: exit $?: $out"
[[ "$out" == "backup done: version 2 (cut offset $last)" ]] || fail "backup now: '$out'"
[ "$(sv)" = 2 ] || fail "SV $(sv) after the first backup"
set +e
out=$("${BR2K[@]}" backup now --wait 120 2>"$T/now.err")
rc=$?
set -e
[ "$rc" = 0 ] || fail "backup now with nothing new: exit $rc ($out $(cat "$T/now.err"))"
grep -q "nothing new" <<<"$out" || fail "backup now with nothing new printed '$out'"
[ -z "$(rc_ GET "br2k:{$SVC}:backup-now")" ] || fail "backup now with nothing new asked for a backup"
[ "$(sv)" = 2 ] || fail "SV $(sv): a backup was made with nothing new"
[ "$(chain_sv)" = 2 ] || fail "chain at $(chain_sv): a backup was made with nothing new"
pass "backup now with nothing new: '$out', exit 0, SV still 2"
out=$("${BR2K[@]}" backup now --force --wait 120) || fail "backup now --force: exit $?: $out"
[[ "$out" == "backup done: version 3 (cut offset $last)" ]] || fail "backup now --force: '$out'"
pass "backup now --force: $out"
