# backup_lost_finish.sh - a Redis failover loses the finish of the latest
# backup (its SV and backup-last, with the cut) and backupd is restarted in
# the same failure, so it does not remember that version (issue 16). The
# version's cut is read back from storage (v<V>-done-<sha>, stored before
# the version was logged on chain, checked against the chain's digest):
# backupd puts the finish back and the next backup archives from that cut,
# so `br2k history verify` replays every version with nothing archived
# twice. The loss is made by hand on one redis-server (what the promoted
# replica would hold: SV and backup-last of the version before) while
# backupd is SIGKILLed.
source "$(dirname "$0")/lib.sh"
source "$(dirname "$0")/core_helpers.bash"
source "$(dirname "$0")/backup_helpers.bash"
APP=infodid

start_redis
start_devkafka
start_chain
for w in w1 w2; do start_worker "$w"; done
wait_for 15 has_leader || fail "no leader"
start_backupd --max-replicated 100000000

load() { load_infodid "$@"; }
last() { rc_ GET "br2k:{$SVC}:backup-last"; }
cut_of() { echo "$1" | cut -d' ' -f2; }

load 60; backup_now
last2=$(last)
load 60; backup_now
last3=$(last)
[ "$(sv)" = 3 ] && [ "$(chain_sv)" = 3 ] || fail "SV $(sv), chain $(chain_sv) after two backups"
cut3=$(cut_of "$last3")
ls "$T/backups" | grep -q '^v00000003-done-' || fail "no v00000003-done-* object: $(ls "$T/backups")"
pass "backups 2 (cut $(cut_of "$last2")) and 3 (cut $cut3), each with its finish in storage"

# the failover: backupd dies, Redis is back at version 2's finish
kill -KILL "$BD_PID"; wait "$BD_PID" 2>/dev/null || true
rc_ SET "br2k:{$SVC}:backup-last" "$last2" >/dev/null
rc_ SET "br2k:{$SVC}:Service-State" 2 >/dev/null
start_backupd --max-replicated 100000000
load 60
"$BIN/br2k" --redis "$REDIS" backup now --wait 60 >"$T/now.out" 2>&1 ||
    fail "backup now after the loss: $(cat "$T/now.out"); $(tail -3 "$T/backupd.log")"
# (`backup now --wait` returns when SV rises: the finish of 3 put back)
at4() { [ "$(sv)" = 4 ] && [ "$(chain_sv)" = 4 ]; }
wait_for 60 at4 || fail "SV $(sv), chain $(chain_sv): not version 4"
grep -q "backup version 3 is on chain but Redis's last backup is version 2: its cut $cut3 read from storage" "$T/backupd.log" ||
    fail "backupd did not read version 3's cut from storage: $(grep -i 'version 3\|lost' "$T/backupd.log" | tail -3)"
grep -q "Redis lost the finish of backup version 3 .*putting it back, cut $cut3" "$T/backupd.log" ||
    fail "backupd did not put version 3's finish back: $(tail -3 "$T/backupd.log")"
grep -q "backup version 4 done (.*): cut [0-9]*, 60 records since the previous cut" "$T/backupd.log" ||
    fail "version 4 did not archive from version 3's cut: $(grep 'version 4 done' "$T/backupd.log")"
pass "restarted backupd read version 3's cut $cut3 from storage, put its finish back, version 4 archived the 60 records after it"

# the history: every version's archive starts right after the previous cut
BR2K_SERVICE_KEY_FILE="$T/service.key" "$BIN/br2k" --eth-rpc "$ETH_RPC" --registry "$REG" \
    history verify --app infodid --json >"$T/history.json" 2>"$T/history.log" ||
    fail "br2k history verify: $(jq -r .error "$T/history.json" 2>/dev/null || cat "$T/history.log")"
[ "$(jq .to "$T/history.json")" = 4 ] || fail "history verify went to $(jq .to "$T/history.json"), not 4"
pass "br2k history verify: versions 2..4, $(jq .records "$T/history.json") records replayed from genesis"
