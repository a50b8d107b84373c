# backup_storage.sh - backups when the storage fails (issue 5), on real
# redis-server, br2k-devkafka, anvil, s3rver (npm @20minutes/s3rver, which
# checks SigV4 signatures) and a small tmpfs:
#  - s3:// storage: a backup is stored in s3rver and restores to the
#    replicas' digest;
#  - s3rver stopped: the backup fails with one clear line, SV (Redis and
#    chain) stays, no phase is left, the followers keep following; once
#    s3rver is back, the next attempt (a max-replicated retry) succeeds;
#  - backupd with a wrong secret: its read-back is refused clearly, SV
#    stays; with the right secret the next request succeeds;
#  - file:// on a full tmpfs (root only): "No space left on device", no
#    partial object, SV stays; with space again the next request succeeds;
#  - nothing is deleted by a failed backup (no "deleting" step, the log
#    still starts at offset 0, earlier objects still in storage).
source "$(dirname "$0")/lib.sh"
source "$(dirname "$0")/core_helpers.bash"
source "$(dirname "$0")/backup_helpers.bash"

S3RVER_CLI=$SRC/node_modules/@20minutes/s3rver/lib/cli.js
[ -f "$S3RVER_CLI" ] || fail "node_modules/@20minutes/s3rver is missing (npm ci)"
unset AWS_ACCESS_KEY_ID AWS_SECRET_ACCESS_KEY AWS_SESSION_TOKEN BR2K_S3_SESSION_TOKEN

# the tmpfs of the full-disk check is unmounted before lib.sh's cleanup
# (lazily if a process still holds it). set +e: under errexit, `(exit 1)`
# would end the trap there, and cleanup would never stop the processes.
FULL=$T/full
unmount_full() {
    if mountpoint -q "$FULL" 2>/dev/null; then umount "$FULL" 2>/dev/null || umount -l "$FULL"; fi
}
trap 'rc=$?; set +e; unmount_full; (exit $rc); cleanup' EXIT

# ---- helpers of this test ----
BUCKET=br2k-test
S3_PORT=$(free_port)
ENDPOINT=http://127.0.0.1:$S3_PORT
PREFIX=svc/backups
S3_URL="s3://$BUCKET/$PREFIX?endpoint=$ENDPOINT&region=us-east-1"
EMPTY_SHA=e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855
# s3rver's one account: access key S3RVER, secret S3RVER (workers and
# backupd inherit these)
export BR2K_S3_ACCESS_KEY_ID=S3RVER BR2K_S3_SECRET_ACCESS_KEY=S3RVER

# start_s3rver: on $S3_PORT with data in $T/s3rver (kept across restarts);
# sets S3_PID. s3rver's continuation tokens use DES: Node 17+ needs
# OpenSSL's legacy provider.
start_s3rver() {
    mkdir -p "$T/s3rver"
    node --openssl-legacy-provider \
        -e 'require(process.argv[1]).parseAsync(process.argv.slice(2), {from: "user"})' \
        "$S3RVER_CLI" -d "$T/s3rver" -a 127.0.0.1 -p "$S3_PORT" --configure-bucket "$BUCKET" \
        >>"$T/s3rver.log" 2>&1 &
    S3_PID=$!; PIDS+=("$S3_PID")
    wait_for 30 curl -sf "$ENDPOINT/$BUCKET?list-type=2" || fail "s3rver did not start"
}
stop_s3rver() {
    kill -TERM "$S3_PID"
    wait "$S3_PID" 2>/dev/null || true
}
# s3_get NAME: the object PREFIX/NAME, read by another client (curl signs)
s3_get() {
    curl -sf --aws-sigv4 "aws:amz:us-east-1:s3" --user S3RVER:S3RVER \
        -H "x-amz-content-sha256: $EMPTY_SHA" "$ENDPOINT/$BUCKET/$PREFIX/$1"
}
stop_backupd() {
    kill -TERM "$BD_PID"
    wait "$BD_PID" 2>/dev/null || true
}
request_backup() { rc_ SET "br2k:{$SVC}:backup-now" 1 >/dev/null; }
no_phase() { [ -z "$(rc_ GET "br2k:{$SVC}:backup")" ]; }
ssi() { rc_ GET "br2k:{$SVC}:SSI"; }
# mark: the backupd log's line count; since N: its lines after line N
mark() { wc -l <"$T/backupd.log"; }
since() { tail -n "+$(($1 + 1))" "$T/backupd.log"; }
# failed_since N PATTERN: a "failed" line after line N matches PATTERN
failed_since() { since "$1" | grep "backup version .* failed at step" | grep -q -- "$2"; }
done_since() { since "$1" | grep -q "backup version $2 done"; }
# first_offset: the log's first offset
first_offset() { log_offsets "$TOPIC" | cut -d' ' -f1; }
# kept_first: where the log must start when no failed attempt deleted
# anything: 0 on the development broker (it cannot delete); on Redis Streams
# the cut + 1 of the last backup that succeeded (its step 6 really deletes)
kept_first() {
    if [ "$LOG_BACKEND" = redis ] && [ -n "$(rc_ GET "br2k:{$SVC}:backup-last")" ]; then
        echo $(($(rc_ GET "br2k:{$SVC}:backup-last" | cut -d' ' -f2) + 1))
    else
        echo 0
    fi
}
# nothing_deleted N V: after line N, no step 6 of a failed attempt (nothing
# at all when no version is done since), the log still starts where the last
# good backup left it, and the versions' SV, chain SV are still V
nothing_deleted() {
    local seg; seg=$(since "$1")
    if ! grep -q "done (" <<<"$seg"; then
        grep -q "is on chain: deleting" <<<"$seg" && fail "a failed backup went on to delete: $(grep deleting <<<"$seg")"
    fi
    [ "$(first_offset)" = "$(kept_first)" ] || fail "the log's first offset is '$(first_offset)', not $(kept_first)"
    [ "$(sv)" = "$2" ] || fail "SV is $(sv) after a failed backup, not $2"
    [ "$(chain_sv)" = "$2" ] || fail "the chain's stateVersion is $(chain_sv) after a failed backup, not $2"
}
# phase_cleared_promptly: no backup phase within 5 s
phase_cleared_promptly() { wait_for 5 no_phase || fail "the backup phase '$(rc_ GET "br2k:{$SVC}:backup")' was left"; }

start_redis
start_devkafka
start_chain
start_s3rver
for w in w1 w2 w3; do start_worker "$w"; done
wait_for 15 has_leader || fail "no leader"
STORAGE=$S3_URL start_backupd --max-replicated 300

# 1. s3:// storage: an operator's request backs up to s3rver
produce 20 0 a >"$T/produce.out"
LAST=$(cat "$T/produce.out")
wait_for 20 at "$LAST" w1 w2 w3 || { show w1 w2 w3; fail "replicas not at $LAST"; }
m=$(mark)
request_backup
wait_for 30 versions_are 2 w1 w2 w3 || { show w1 w2 w3; fail "no backup to s3: SV=$(sv) chain=$(chain_sv)"; }
[ "$(rc_ GET "br2k:{$SVC}:backup-last")" = "2 $LAST" ] || fail "backup-last is '$(rc_ GET "br2k:{$SVC}:backup-last")'"
since "$m" | grep -q "backup version 2 done (operator): cut $LAST, .* stored 'v00000002-state-[0-9a-f]\{64\}'" ||
    fail "no 'done' line for version 2: $(since "$m" | tail -n 3)"
replica=$(metric w1 digest)
out=$(restore_json) || fail "restore from s3: $out"
[ "$(jq -r .cut <<<"$out")" = "$LAST" ] || fail "restored cut: $out"
[ "$(jq -r .digest <<<"$out")" = "$replica" ] || fail "restored digest $(jq -r .digest <<<"$out") != replicas' $replica"
OBJ2=$(jq -r .object <<<"$out"); SHA2=$(jq -r .sha256 <<<"$out")
s3_get "$OBJ2" >"$T/obj2" || fail "curl cannot GET $PREFIX/$OBJ2 from s3rver"
[ "$(sha256sum <"$T/obj2" | cut -d' ' -f1)" = "$SHA2" ] || fail "s3 object $OBJ2 is not addressed by its sha256"
pass "s3:// storage: backup version 2 at cut $LAST in s3rver ($PREFIX/$OBJ2, read by curl), restores to the replicas' digest ${replica:0:12}"

# 2. s3rver stopped: the backup fails clearly, nothing moves, the
#    followers follow; with s3rver back the next attempt succeeds
stop_s3rver
m=$(mark)
request_backup
wait_for 30 failed_since "$m" . || { show w1 w2 w3; fail "no failure logged with s3rver down: $(since "$m" | tail -n 5)"; }
line=$(since "$m" | grep "failed at step" | head -n 1)
grep -q "backup version 3 failed at step 'snapshot': the leader's snapshot of cut $LAST failed: storage: s3://$BUCKET/$PREFIX: put 'v00000003-state-[0-9a-f]\{64\}': cannot reach endpoint $ENDPOINT: Couldn't connect to server" <<<"$line" ||
    fail "unclear error with s3rver down: $line"
phase_cleared_promptly
nothing_deleted "$m" 2
pass "s3rver stopped: the backup fails in one clear line ($(sed 's/.*\(cannot reach endpoint\)/\1/' <<<"$line")); SV, chain at 2; phase cleared; nothing deleted"

# max-replicated records while s3rver is still down: retried and failing
m=$(mark)
produce 300 0 b >"$T/produce.out"
LAST=$(cat "$T/produce.out")
wait_for 30 at "$LAST" w1 w2 w3 || { show w1 w2 w3; fail "followers stopped following while the storage is down (SSI $(ssi))"; }
[ "$(ssi)" = "$LAST" ] || fail "SSI $(ssi), not $LAST"
two_failures() { [ "$(since "$m" | grep -c "backup version 3 failed at step 'snapshot'.*Couldn't connect to server")" -ge 2 ]; }
wait_for 15 two_failures || fail "max-replicated reached with s3rver down: not retried: $(since "$m" | tail -n 5)"
nothing_deleted "$m" 2
pass "s3rver still down, $((LAST - $(rc_ GET "br2k:{$SVC}:backup-last" | cut -d' ' -f2))) records since the cut: retried, failing ($(since "$m" | grep -c "failed at step") times); w1..w3 follow to $LAST; SV 2"

start_s3rver
wait_for 30 versions_are 3 w1 w2 w3 || { show w1 w2 w3; fail "no backup after s3rver came back: SV=$(sv) $(since "$m" | tail -n 5)"; }
no_phase || wait_for 5 no_phase || fail "phase left after version 3"
s3_get "$OBJ2" | cmp -s - "$T/obj2" || fail "version 2's object changed or vanished in s3rver"
pass "s3rver back on the same port: the next automatic attempt stores version 3; version 2's object is still there"

# 3. backupd with a wrong secret: the leader stores (its own, right
#    credentials), backupd's read-back is refused, clearly
stop_backupd
m=$(mark)
BR2K_S3_SECRET_ACCESS_KEY=wrong STORAGE=$S3_URL start_backupd --max-replicated 300
produce 5 0 c >"$T/produce.out"
LAST=$(cat "$T/produce.out")
wait_for 20 at "$LAST" w1 w2 w3 || { show w1 w2 w3; fail "replicas not at $LAST"; }
request_backup
wait_for 30 failed_since "$m" . || fail "no failure logged with a wrong secret: $(since "$m" | tail -n 5)"
line=$(since "$m" | grep "failed at step" | head -n 1)
grep -q "backup version 4 failed at step 'snapshot': cannot read the snapshot back: storage: s3://$BUCKET/$PREFIX: get 'v00000004-state-[0-9a-f]\{64\}': access denied by the server (SignatureDoesNotMatch)" <<<"$line" ||
    fail "unclear error with a wrong secret: $line"
# the hint that follows is cut off when the message exceeds bk_err's 255
# characters (reported; not asserted)
grep -q "check BR2K_S3_ACCESS_KEY_ID / BR2K_S3_SECRET_ACCESS_KEY$" <<<"$line" ||
    echo "note: the error line is cut at 255 characters of message: ...${line: -60}"
grep -q "wrong" <<<"$line" && fail "the secret is in the log: $line"
phase_cleared_promptly
nothing_deleted "$m" 3
pass "backupd with a wrong secret: fails in one clear line ($(sed 's/.*\(access denied\)/\1/' <<<"$line")); SV, chain at 3; nothing deleted"

stop_backupd
m=$(mark)
STORAGE=$S3_URL start_backupd --max-replicated 300
request_backup
wait_for 30 versions_are 4 w1 w2 w3 || fail "no backup with the right secret: SV=$(sv) $(since "$m" | tail -n 5)"
out=$(restore_json) || fail "restore of version 4: $out"
[ "$(jq -r .version <<<"$out")" = 4 ] && [ "$(jq -r .cut <<<"$out")" = "$LAST" ] || fail "restored: $out"
[ "$(jq -r .digest <<<"$out")" = "$(metric w1 digest)" ] || fail "version 4 does not restore to the replicas' digest"
pass "right secret again: the next request stores version 4 (cut $LAST), which restores to the replicas' digest"

# 4. file:// on a full file system (root only)
mkdir -p "$FULL"
if [ "$(id -u)" -ne 0 ]; then
    echo "skipped: full disk: needs root to mount a small tmpfs (uid $(id -u))"
elif ! mount -t tmpfs -o size=64k br2k-itest "$FULL" 2>"$T/mount.log"; then
    echo "skipped: full disk: cannot mount a tmpfs here: $(head -n 1 "$T/mount.log")"
else
    stop_backupd
    mkdir -p "$FULL/objs"
    STORAGE=file://$FULL/objs start_backupd --max-replicated 300
    wait_for 10 grep -q "storage 'file://$FULL/objs'" "$T/backupd.log" || fail "backupd on file:// did not start"
    dd if=/dev/zero of="$FULL/filler" bs=4096 2>/dev/null || true
    [ "$(df --output=avail -B1 "$FULL" | tail -n 1)" -lt 4096 ] || fail "the tmpfs is not full: $(df -h "$FULL" | tail -n 1)"
    m=$(mark)
    request_backup
    wait_for 30 failed_since "$m" . || fail "no failure logged on a full disk: $(since "$m" | tail -n 5)"
    line=$(since "$m" | grep "failed at step" | head -n 1)
    grep -q "backup version 5 failed at step 'snapshot': the leader's snapshot of cut $LAST failed: storage: .*v00000005-state-[0-9a-f]\{64\}.*No space left on device" <<<"$line" ||
        fail "unclear error on a full disk: $line"
    phase_cleared_promptly
    nothing_deleted "$m" 4
    # nothing half-written: no temporary file, every object whole
    leftover=$(ls -A "$FULL/objs")
    for f in $leftover; do
        [[ "$f" =~ ^v[0-9]{8}-[a-z]+-([0-9a-f]{64})$ ]] || fail "a partial or temporary file is left in storage: $f"
        [ "$(sha256sum "$FULL/objs/$f" | cut -d' ' -f1)" = "${BASH_REMATCH[1]}" ] || fail "object $f does not match its sha256"
    done
    pass "file:// on a full tmpfs: fails in one clear line (...${line: -70}); SV, chain at 4; no partial object ($(wc -w <<<"$leftover") objects)"

    rm -f "$FULL/filler"
    m=$(mark)
    request_backup
    wait_for 30 versions_are 5 w1 w2 w3 || fail "no backup after space was freed: SV=$(sv) $(since "$m" | tail -n 5)"
    for f in $(ls -A "$FULL/objs"); do
        [[ "$f" =~ ^v[0-9]{8}-[a-z]+-([0-9a-f]{64})$ ]] || fail "unexpected file in storage: $f"
        [ "$(sha256sum "$FULL/objs/$f" | cut -d' ' -f1)" = "${BASH_REMATCH[1]}" ] || fail "object $f does not match its sha256"
    done
    out=$(restore_json) || fail "restore of version 5: $out"
    [ "$(jq -r .version <<<"$out")" = 5 ] && [ "$(jq -r .digest <<<"$out")" = "$(metric w1 digest)" ] ||
        fail "version 5 does not restore to the replicas' digest: $out"
    pass "space freed: the next request stores version 5 on file://, which restores to the replicas' digest"
    stop_backupd
    umount "$FULL" || fail "cannot unmount $FULL"
fi

# 5. nothing deleted by any failure, over the whole run
[ "$(first_offset)" = "$(kept_first)" ] || fail "the log's first offset is $(first_offset), not $(kept_first)"
s3_get "$OBJ2" | cmp -s - "$T/obj2" || fail "version 2's object changed or vanished"
out=$(restore_json 2) || fail "version 2 no longer restores: $out"
ndone=$(grep -c "done (" "$T/backupd.log"); ndel=$(grep -c "is on chain: deleting" "$T/backupd.log")
[ "$ndel" = "$ndone" ] || fail "$ndel 'deleting' steps for $ndone backups done"
pass "nothing deleted: the log starts at offset $(kept_first), version 2 still restores, step 6 ran only for the $ndone backups that succeeded"

grep -q "Sanitizer\|runtime error" "$T"/*.log && fail "sanitizer report in a log"
echo "backup_storage: all checks passed"
