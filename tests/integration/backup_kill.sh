# backup_kill.sh - backupd, registryd or the leader killed at each of the
# eight steps of state-version-up (BR2K_TEST_BACKUP_STOP stops backupd at
# a named step; the test then SIGKILLs the target and restarts it):
# afterwards no version is skipped or repeated (Redis SV = the chain's SV,
# and the chain's versions are 2..SV in order), nothing is half-applied
# (no phase left, no backup-run left), the records below a cut are only
# deleted after its log is confirmed (I7; the development broker cannot
# delete, so this checks backupd's order of work), and the next backup
# succeeds.
source "$(dirname "$0")/lib.sh"
source "$(dirname "$0")/core_helpers.bash"
source "$(dirname "$0")/backup_helpers.bash"

STEPS=${BACKUP_KILL_STEPS:-"cut wait phase snapshot log delete raise clear"}
TARGETS=${BACKUP_KILL_TARGETS:-"backupd registryd leader"}

start_redis
start_devkafka
start_chain
for w in w1 w2 w3; do start_worker "$w"; done
wait_for 15 has_leader || fail "no leader"

settled() {
    [ -z "$(rc_ GET "br2k:{$SVC}:backup-run")" ] && [ -z "$(rc_ GET "br2k:{$SVC}:backup")" ] &&
        [ "$(sv)" = "$(chain_sv)" ]
}
stopped_at() {
    local n
    n=$(grep -c "stopped at step '$1'" "$T/backupd.log" 2>/dev/null) || true
    echo "${n:-0}"
}
reached() { [ "$(stopped_at "$1")" -gt "$2" ]; }
is_stopped() { [ "$(ps -o stat= -p "$1" | cut -c1)" = T ]; }
all_at_ssi() {
    local s; s=$(rc_ GET "br2k:{$SVC}:SSI")
    at "$s" w1 w2 w3
}

n=0
for step in $STEPS; do
    for target in $TARGETS; do
        n=$((n + 1))
        produce 20 0 "k$n" >/dev/null
        before=$(stopped_at "$step")
        BR2K_TEST_BACKUP_STOP=$step start_backupd --max-replicated 1000000 --hold-timeout-ms 2000
        rc_ SET "br2k:{$SVC}:backup-now" 1 >/dev/null
        wait_for 30 reached "$step" "$before" || fail "$step: backupd never reached the step"
        wait_for 5 is_stopped "$BD_PID" || fail "$step: backupd did not stop itself"
        v0=$(sv)
        case $target in
        backupd)
            kill -KILL "$BD_PID"; wait "$BD_PID" 2>/dev/null || true
            start_backupd --max-replicated 1000000 --hold-timeout-ms 2000 ;;
        registryd)
            kill -KILL "$REGD_PID"; wait "$REGD_PID" 2>/dev/null || true
            start_registryd
            kill -CONT "$BD_PID" ;;
        leader)
            ldr=$(leader_id); ep=$(leader_epoch)
            kill -KILL "${WPID[$ldr]}"; wait "${WPID[$ldr]}" 2>/dev/null || true
            wait_for 15 epoch_is $((ep + 1)) || fail "$step/leader: no new leader"
            start_worker "$ldr"
            kill -CONT "$BD_PID" ;;
        esac
        wait_for 60 settled || fail "$step/$target: not settled: run=$(rc_ GET "br2k:{$SVC}:backup-run" | cut -c1-120) phase=$(rc_ GET "br2k:{$SVC}:backup") SV=$(sv) chain=$(chain_sv)"
        v1=$(sv)
        [ "$v1" -ge "$v0" ] && [ "$v1" -le $((v0 + 1)) ] || fail "$step/$target: SV went from $v0 to $v1"
        # the next backup succeeds, with the next version
        rc_ SET "br2k:{$SVC}:backup-now" 1 >/dev/null
        wait_for 60 versions_are $((v1 + 1)) || fail "$step/$target: the next backup did not run: SV=$(sv) chain=$(chain_sv)"
        wait_for 30 all_at_ssi || { show w1 w2 w3; fail "$step/$target: replicas diverged or stalled"; }
        pass "$step/$target: SV $v0 -> $v1 after the kill (the chain agrees), next backup $((v1 + 1)) done, replicas equal"
        kill -TERM "$BD_PID"; wait "$BD_PID" 2>/dev/null || true
    done
done

# the leader paused (SIGSTOP) right after it held at the cut, before it saw
# the snapshot request: it loses its lease and never reports. backupd must
# give the backup up as soon as another leader holds the lease, not after
# --snapshot-timeout-ms (default 300 s)
if [ -z "${BACKUP_KILL_STEPS:-}" ]; then
    produce 20 0 paused >/dev/null
    before=$(stopped_at phase)
    BR2K_TEST_BACKUP_STOP=phase start_backupd --max-replicated 1000000 --hold-timeout-ms 2000
    rc_ SET "br2k:{$SVC}:backup-now" 1 >/dev/null
    wait_for 30 reached phase "$before" || fail "paused leader: backupd never reached the step"
    wait_for 5 is_stopped "$BD_PID" || fail "paused leader: backupd did not stop itself"
    ldr=$(leader_id); ep=$(leader_epoch); v0=$(sv)
    kill -STOP "${WPID[$ldr]}"
    kill -CONT "$BD_PID"
    wait_for 15 epoch_is $((ep + 1)) || fail "paused leader: no new leader"
    t0=$SECONDS
    wait_for 20 settled || fail "paused leader: the backup was not given up: phase=$(rc_ GET "br2k:{$SVC}:backup")"
    grep -q "the leader '$ldr' of epoch $ep lost its lease .* before it reported the snapshot" "$T/backupd.log" ||
        fail "paused leader: no clear reason in backupd's log: $(grep failed "$T/backupd.log" | tail -1)"
    kill -CONT "${WPID[$ldr]}"
    [ "$(sv)" = "$v0" ] || fail "paused leader: SV went from $v0 to $(sv)"
    rc_ SET "br2k:{$SVC}:backup-now" 1 >/dev/null
    wait_for 60 versions_are $((v0 + 1)) || fail "paused leader: the next backup did not run: SV=$(sv) chain=$(chain_sv)"
    wait_for 30 all_at_ssi || { show w1 w2 w3; fail "paused leader: replicas diverged or stalled"; }
    pass "leader $ldr paused after holding: backup given up $((SECONDS - t0)) s after the new leader (lease lost), SV $v0; the next backup $((v0 + 1)) done"
    kill -TERM "$BD_PID"; wait "$BD_PID" 2>/dev/null || true
fi

# every version 2..SV is on chain exactly once (the contract refuses a
# skipped or repeated version; check what it holds)
last=$(chain_sv)
for v in $(seq 2 "$last"); do
    "$CAST" call --rpc-url "$ETH_RPC" "$REG" 'backupByVersion(uint64)(uint64,bytes32,uint64)' "$v" >/dev/null ||
        fail "version $v is not on chain"
done
# I7: backupd deletes the records below a cut only for a version whose log
# is on chain (it says so just before; the development broker itself
# cannot delete, so this checks backupd's order of work)
grep -o "backup version [0-9]* is on chain: deleting" "$T/backupd.log" | awk '{print $3}' | sort -un >"$T/deleted"
[ -s "$T/deleted" ] || fail "no delete step ran"
while read -r v; do
    [ "$v" -le "$last" ] || fail "records deleted for version $v, which is not on chain"
done <"$T/deleted"
pass "versions 2..$last on chain, each once; deletes only after a confirmed log"
grep -q "Sanitizer\|runtime error" "$T"/*.log && fail "sanitizer report in a log"
echo "backup_kill: all checks passed"
