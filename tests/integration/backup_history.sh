# backup_history.sh - the history of service actions (issue 19), on real
# redis-server, the log (br2k-devkafka, or Redis Streams with
# BR2K_TEST_LOG=redis), anvil and file storage, with InfoDID workers:
#  - every backup archives the records since the previous cut, exactly as
#    the log holds them, sealed under v<version>-archive-<sha256>; its
#    digest is in the backup log and on chain (archiveByVersion), beside the
#    state digest; each archive names the previous one (hash chain);
#  - `br2k history list` shows each version's offsets and counts;
#    `export` prints the records (JSON lines, decrypted); `verify` replays
#    every record from genesis through InfoDID and exits 0;
#  - one byte altered, an archive deleted, two archives swapped: verify
#    exits 1 with one line naming the version and what broke;
#  - --from V starts from the verified backup of V - 1;
#  - InfoDID's index (the external state) replayed equals each backup's copy;
#  - --keep 2 prunes state objects, never archives; --archive-keep records
#    pruneArchives on chain, then prunes, and verify says where to start;
#  - the storage (s3rver) down while the archive is stored: the backup is
#    given up and nothing is deleted from the log; the next backup archives
#    it all (in s3, after archives in file storage: verify reads each from
#    the storage its log names);
#  - backupd SIGKILLed while archiving: abandoned, nothing deleted;
#  - an index entry that no record made: verify names the key and field;
#  - (Redis Streams) records trimmed before they were archived: a gap,
#    recorded and reported, verify fails on it.
source "$(dirname "$0")/lib.sh"
source "$(dirname "$0")/core_helpers.bash"
source "$(dirname "$0")/backup_helpers.bash"
APP=infodid
S3RVER_CLI=$SRC/node_modules/@20minutes/s3rver/lib/cli.js
[ -f "$S3RVER_CLI" ] || fail "node_modules/@20minutes/s3rver is missing (npm ci)"
BUCKET=br2k-hist
S3_PORT=$(free_port)
S3_URL="s3://$BUCKET/h?endpoint=http://127.0.0.1:$S3_PORT&region=us-east-1"
export BR2K_S3_ACCESS_KEY_ID=S3RVER BR2K_S3_SECRET_ACCESS_KEY=S3RVER # s3rver's account
start_s3rver() { # as backup_storage.sh; data kept in $T/s3rver across restarts
    mkdir -p "$T/s3rver"
    node --openssl-legacy-provider \
        -e 'require(process.argv[1]).parseAsync(process.argv.slice(2), {from: "user"})' \
        "$S3RVER_CLI" -d "$T/s3rver" -a 127.0.0.1 -p "$S3_PORT" --configure-bucket "$BUCKET" \
        >>"$T/s3rver.log" 2>&1 &
    S3_PID=$!; PIDS+=("$S3_PID")
    wait_for 30 curl -sf "http://127.0.0.1:$S3_PORT/$BUCKET?list-type=2" || fail "s3rver did not start"
}

start_redis
start_devkafka
start_chain
for w in w1 w2 w3; do start_worker "$w"; done
wait_for 15 has_leader || fail "no leader"
start_backupd --max-replicated 100000000 --keep 2

load() { load_infodid "$@"; }
H=("$BIN/br2k" --eth-rpc "$ETH_RPC" --registry "$REG" history)
hist() { BR2K_SERVICE_KEY_FILE="$T/service.key" "${H[@]}" "$@"; }
arch() { ls "$T/backups" | grep "^$(printf 'v%08d' "$1")-archive-"; }
log_first() { log_offsets "$TOPIC" | cut -d' ' -f1; }
stop_backupd() { kill -TERM "$BD_PID"; wait "$BD_PID" 2>/dev/null || true; }
is_stopped() { [ "$(ps -o stat= -p "$1" | cut -c1)" = T ]; }

# 1. three backups with records, one without
load 120; backup_now
load 80; backup_now
backup_now_force() { "$BIN/br2k" --redis "$REDIS" backup now --force --wait 60 >/dev/null || fail "backup now --force"; }
backup_now_force
load 50
# records 200..249 as the log holds them now (Redis Streams deletes them at the backup)
"$BUILD/tests/itest_core" dump "$KAFKA" "$TOPIC" 200 50 >"$T/log.jsonl" 2>"$T/dump.err" || fail "dump: $(cat "$T/dump.err")"
backup_now
[ "$(sv)" = 5 ] || fail "SV $(sv)"
for v in 2 3 4 5; do
    a=$(arch "$v") || fail "no archive of version $v: $(ls "$T/backups")"
    sha=${a##*-archive-}
    [ "$(sha256sum "$T/backups/$a" | cut -d' ' -f1)" = "$sha" ] || fail "$a is not stored under its sha256"
    onchain=$("$CAST" call --rpc-url "$ETH_RPC" "$REG" 'archiveByVersion(uint64)(bytes32,uint64)' "$v" | sed -n 1p)
    [ "$onchain" = "0x$sha" ] || fail "version $v: archive digest on chain $onchain, stored $sha"
done
# --keep 2 pruned the state objects of versions 2 and 3, never an archive
ls "$T/backups" | grep -q '^v0000000[23]-state-' && fail "--keep 2 did not prune the states of versions 2, 3"
grep -q "is not in Redis" "$T/backupd.log" && fail "an archive without its start state: $(grep 'is not in Redis' "$T/backupd.log")"
pass "versions 2..5: each archive stored under its sha256, its digest on chain; --keep 2 pruned states, not archives"

out=$(hist list --json) || fail "history list: $out"
echo "$out" >"$T/list.json"
[ "$(jq -c '[.[] | [.version, .archive.from_offset, .archive.to_offset, .archive.record_count, .on_chain]]' <<<"$out")" = \
  '[[2,0,119,120,true],[3,120,199,80,true],[4,200,199,0,true],[5,200,249,50,true]]' ] ||
    fail "history list: $(jq -c '[.[] | [.version, .archive.from_offset, .archive.to_offset, .archive.record_count, .on_chain]]' <<<"$out")"
[ "$(jq -r '.[1].archive.previous_archive' <<<"$out")" = "$(jq -r '.[0].archive.sha256' <<<"$out")" ] ||
    fail "version 3 does not name version 2's archive"
[ "$(jq -r '.[0].archive.previous_archive' <<<"$out")" = "$(printf '0%.0s' {1..64})" ] || fail "version 2 is not genesis"
hist list >"$T/list.txt" || fail "history list (table)"
grep -q "^5 .* 200 .* 249 .* 50 .* ok" "$T/list.txt" || fail "list table: $(cat "$T/list.txt")"
pass "history list: offsets 0..119, 120..199, (none), 200..249; the chain of archive digests from genesis"

# export: the 250 records, exactly as in the log (offsets, keys, headers, values)
hist export --from 2 --to 5 >"$T/export.jsonl" || fail "export failed"
[ "$(wc -l <"$T/export.jsonl")" = 250 ] || fail "export: $(wc -l <"$T/export.jsonl") lines"
[ "$(jq -s -c '[.[0].offset, .[-1].offset, ([.[].offset] == [range(0;250)])]' "$T/export.jsonl")" = '[0,249,true]' ] ||
    fail "export offsets are not 0..249"
[ "$(jq -c -s '[.[] | [.offset, .key, .value, .headers]]' "$T/log.jsonl")" = \
  "$(tail -50 "$T/export.jsonl" | jq -c -s '[.[] | [.offset, .key, .value, .headers]]')" ] ||
    fail "the archive of version 5 is not the log's records 200..249: $(head -c 400 "$T/log.jsonl") vs $(tail -50 "$T/export.jsonl" | head -c 400)"
grep -q '"op"' <(head -1 "$T/export.jsonl" | jq -r .value) || fail "export value is not the InfoDID request: $(head -1 "$T/export.jsonl")"
pass "history export: 250 records, offsets 0..249; version 5's are the log's records 200..249 (keys, values, headers)"

out=$(hist verify 2>&1) || fail "history verify: $out"
grep -q "history verified: versions 2..5, 250 records replayed from genesis" <<<"$out" || fail "verify: $out"
out=$(hist verify --json) || fail "history verify --json: $out"
[ "$(jq -c '[.ok, .records, [.versions[].version]]' <<<"$out")" = '[true,250,[2,3,4,5]]' ] || fail "verify --json: $out"
# InfoDID's index (the external state) replayed equals each backup's copy
ndid=$(rc_ HLEN "br2k:{$SVC}:ext:did")
[ "$ndid" -gt 0 ] && [ "$(jq -r '.versions[3].external' <<<"$out")" = "3 keys equal" ] ||
    fail "external state not checked: $(jq -c '[.versions[].external]' <<<"$out") ($ndid DIDs)"
out=$(hist verify --from 5 2>&1) || fail "history verify --from 5: $out"
grep -q "versions 5..5, 50 records replayed from a verified backup" <<<"$out" || fail "verify --from 5: $out"
out=$(hist verify --from 4 2>&1) && fail "verify --from 4 passed without the state of version 3: $out"
grep -q "cannot start from the backup of version 3: .*not found" <<<"$out" || fail "verify --from 4: $out"
pass "history verify: 250 records replayed through InfoDID from genesis, every state digest and link holds; --from 5 from version 4's backup"

# 2. tampering: one byte, a deleted archive, two swapped
a3=$(arch 3); a5=$(arch 5); a2=$(arch 2)
cp "$T/backups/$a3" "$T/a3.bak"
printf 'X' | dd of="$T/backups/$a3" bs=1 seek=200 conv=notrunc 2>/dev/null
out=$(hist verify 2>&1) && fail "verify passed with a byte altered: $out"
[ "$(wc -l <<<"$out")" = 1 ] && grep -q "^br2k history verify: version 3: archive.*digest mismatch" <<<"$out" ||
    fail "altered byte: $out"
cp "$T/a3.bak" "$T/backups/$a3"
pass "one byte altered in version 3's archive: '$out'"
mv "$T/backups/$a5" "$T/a5.bak"
out=$(hist verify 2>&1) && fail "verify passed with an archive deleted: $out"
[ "$(wc -l <<<"$out")" = 1 ] && grep -q "^br2k history verify: version 5: archive.*not found" <<<"$out" || fail "deleted: $out"
mv "$T/a5.bak" "$T/backups/$a5"
pass "version 5's archive deleted: '$out'"
cp "$T/backups/$a2" "$T/a2.bak"
cp "$T/backups/$a3" "$T/backups/$a2"; cp "$T/a2.bak" "$T/backups/$a3"
out=$(hist verify 2>&1) && fail "verify passed with two archives swapped: $out"
[ "$(wc -l <<<"$out")" = 1 ] && grep -q "^br2k history verify: version 2: archive" <<<"$out" || fail "swapped: $out"
cp "$T/backups/$a3" "$T/backups/$a2"; cp "$T/a3.bak" "$T/backups/$a3"
hist verify >/dev/null 2>&1 || fail "verify fails after the archives were put back"
pass "versions 2 and 3 swapped: '$out'; put back, verify passes again"

# 3. --archive-keep 2: pruning recorded on chain first
stop_backupd
start_backupd --max-replicated 100000000 --keep 2 --archive-keep 2
load 10; backup_now
wait_for 20 test -z "$(arch 4)" || fail "archive 4 not pruned: $(ls "$T/backups")"
[ -n "$(arch 5)" ] && [ -n "$(arch 6)" ] || fail "archives 5 and 6 must stay: $(ls "$T/backups")"
[ "$("$CAST" call --rpc-url "$ETH_RPC" "$REG" 'archiveByVersion(uint64)(bytes32,uint64)' 6 | sed -n 2p)" = 4 ] ||
    fail "pruneArchives not on chain"
grep -q "recorded on chain: the archives of versions up to 4 are pruned" "$T/backupd.log" || fail "no pruning line"
out=$(hist verify 2>&1) && fail "verify from genesis passed with archives pruned: $out"
grep -q "version 2: its archive was pruned (pruneArchives through version 4 on chain); verify --from 5" <<<"$out" || fail "pruned: $out"
out=$(hist verify --from 6 2>&1) || fail "verify --from 6: $out"
grep -q "versions 6..6, 10 records" <<<"$out" || fail "verify --from 6: $out"
pass "--archive-keep 2: archives 2..4 pruned after pruneArchives(4) on chain; verify says so, --from 6 verifies"

# 4. the storage (s3rver) down while the archive is stored: nothing deleted
start_s3rver
stop_backupd
STORAGE=$S3_URL BR2K_TEST_BACKUP_STOP=archive start_backupd --max-replicated 100000000 --keep 2
load 40
first0=$(log_first); m=$(wc -l <"$T/backupd.log")
rc_ SET "br2k:{$SVC}:backup-now" 1 >/dev/null
wait_for 60 grep -q "stopped at step 'archive'" "$T/backupd.log" || fail "backupd never reached 'archive'"
wait_for 5 is_stopped "$BD_PID" || fail "backupd did not stop itself"
kill -TERM "$S3_PID"; wait "$S3_PID" 2>/dev/null || true # the storage is down
kill -CONT "$BD_PID"
wait_for 60 grep -q "cannot store the history archive of version 7" "$T/backupd.log" ||
    fail "no failure logged: $(tail -5 "$T/backupd.log")"
[ "$(sv)" = 6 ] && [ "$(chain_sv)" = 6 ] || fail "SV $(sv), chain $(chain_sv) after a failed archive"
[ "$(log_first)" = "$first0" ] || fail "the log's first offset moved from $first0 to $(log_first) without an archive"
tail -n "+$((m + 1))" "$T/backupd.log" | grep -q "deleting the records" && fail "a backup without its archive went on to delete"
stop_backupd
start_s3rver
STORAGE=$S3_URL start_backupd --max-replicated 100000000 --keep 2
backup_now
[ "$(hist list --json --from 7 | jq -c '[.[0].archive.from_offset, .[0].archive.to_offset, .[0].on_chain]')" = '[260,299,true]' ] ||
    fail "version 7 archive: $(hist list --json --from 7)"
out=$(hist verify --from 6 2>&1) || fail "verify after the storage came back: $out"
grep -q "versions 6..7, 50 records" <<<"$out" || fail "verify: $out"
pass "s3rver down at the archive: backup given up, SV 6, the log's first offset stays $first0; the next backup archives 260..299 in s3 and verify holds across file and s3 storage"

# 4b. backupd SIGKILLed while archiving: the next one abandons that backup
# (its log was never sent), nothing is deleted, and its next backup
# archives everything since the last cut
stop_backupd
STORAGE=$S3_URL BR2K_TEST_BACKUP_STOP=archive start_backupd --max-replicated 100000000 --keep 2
load 10 # offsets 300..309
first0=$(log_first); m=$(wc -l <"$T/backupd.log")
rc_ SET "br2k:{$SVC}:backup-now" 1 >/dev/null
logged_since() { tail -n "+$(($1 + 1))" "$T/backupd.log" | grep -q "$2"; }
wait_for 60 logged_since "$m" "stopped at step 'archive'" || fail "backupd never reached 'archive'"
wait_for 5 is_stopped "$BD_PID" || fail "backupd did not stop itself"
kill -KILL "$BD_PID"; wait "$BD_PID" 2>/dev/null || true
STORAGE=$S3_URL start_backupd --max-replicated 100000000 --keep 2
wait_for 30 grep -q "backup version 8 failed at step '[a-z]*': interrupted before its log was sent" "$T/backupd.log" ||
    fail "the interrupted backup was not abandoned: $(tail -3 "$T/backupd.log")"
[ "$(sv)" = 7 ] && [ "$(log_first)" = "$first0" ] || fail "SV $(sv), first offset $(log_first) (was $first0) after a kill at 'archive'"
backup_now
[ "$(hist list --json --from 8 | jq -c '[.[0].archive.from_offset, .[0].archive.to_offset]')" = '[300,309]' ] ||
    fail "version 8 archive: $(hist list --json --from 8)"
pass "backupd killed while archiving: the backup abandoned, nothing deleted (first offset $first0); version 8 archives 300..309"

# 5. an index entry that no archived record made: verify names it
rc_ HSET "br2k:{$SVC}:ext:did" did:forged:1 0xabc >/dev/null
load 10; backup_now
out=$(hist verify --from 9 2>&1) && fail "verify passed with a forged index entry: $out"
[ "$(wc -l <<<"$out")" = 1 ] && grep -q "version 9: the replayed external state differs from the backup's: key 'br2k:{$SVC}:ext:did' field 'did:forged:1': the backup holds '0xabc', the replay 'nothing'" <<<"$out" ||
    fail "forged index: $out"
pass "an index entry no record made (did:forged:1): '$out'"

# 6. (Redis Streams, which can lose entries by hand) records gone from the
# log before a backup archived them: a gap, recorded, reported, never hidden
if [ "$LOG_BACKEND" = redis ]; then
    load 20 # offsets 320..339, applied by every worker
    redis-cli -p "$LOG_PORT" XTRIM "$TOPIC" MINID 1-325 >/dev/null # 320..324 lost
    backup_now
    grep -q "backup version 10: records 320..324 were lost from the log before they could be archived" "$T/backupd.log" ||
        fail "the gap was not reported: $(grep 'version 10' "$T/backupd.log" | tail -3)"
    [ "$(hist list --json --from 10 | jq -c '[.[0].archive.gaps, .[0].archive.record_count]')" = '[[[320,324]],15]' ] ||
        fail "the gap is not in the archive: $(hist list --json --from 10)"
    out=$(hist verify --from 10 2>&1) && fail "verify passed over a gap: $out"
    [ "$(wc -l <<<"$out")" = 1 ] && grep -q "version 10: records 320..324 were lost from the log before they were archived (a gap in the history)" <<<"$out" ||
        fail "gap: $out"
    pass "records 320..324 trimmed from the stream before backup 10: the archive records the gap, backupd warns, verify: '$out'"
fi

# 7. backups that take InfoDID's external state from the leader's view
# (--view-fields 0), each cut at a rejection (no external effect): the
# view's ext:applied is the cut, the replay's the record before it; verify
# takes ext:applied as the watermark it is and compares the rest
stop_backupd
STORAGE=$S3_URL start_backupd --max-replicated 100000000 --keep 2 --view-fields 0
v0=$(sv)
load 10; submit_rejection 1 >/dev/null; backup_now
load 10; submit_rejection 2 >/dev/null; backup_now
v=$(sv)
grep -q "backup version $v: the external state comes from the leader's view" "$T/backupd.log" ||
    fail "version $v did not take its external state from the leader's view"
out=$(hist verify --from "$v" 2>&1) || fail "verify of version $v (from the view, cut at a rejection): $out"
grep -q "versions $v..$v, 11 records replayed from a verified backup" <<<"$out" || fail "verify --from $v: $out"
pass "versions $((v0 + 1)) and $v from the leader's view, each cut at a rejection: '$out'"

grep -q "Sanitizer\|runtime error" "$T"/*.log && fail "sanitizer report in a log"
echo "backup_history: all checks passed"
