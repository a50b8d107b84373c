# backup_e2e.sh - state-version-up end to end (issue 5), on real
# redis-server, br2k-devkafka, anvil and file storage:
#  - max-replicated records: a backup runs by itself; SV and every SSV
#    become 2; the chain holds version 2 with the digest of the stored
#    object; the object, decrypted, restores to the replicas' digest at C;
#  - eth-crypto (npm) decrypts the log our C code put on chain;
#  - 2 of 3 workers stopped: a backup runs promptly (majority trigger);
#  - a corrupted object, a wrong key, a tampered log: refused clearly;
#  - br2k history verify replays both versions' records (issue 19).
source "$(dirname "$0")/lib.sh"
source "$(dirname "$0")/core_helpers.bash"
source "$(dirname "$0")/backup_helpers.bash"

start_redis
start_devkafka
start_chain
for w in w1 w2 w3; do start_worker "$w"; done
wait_for 15 has_leader || fail "no leader"
start_backupd --max-replicated 500 --keep 1

# 1. exactly max-replicated records: the backup cuts at offset 499
produce 500 0 load >"$T/produce.out"
[ "$(cat "$T/produce.out")" = 499 ] || fail "produced up to $(cat "$T/produce.out")"
wait_for 60 versions_are 2 w1 w2 w3 || { show w1 w2 w3; fail "no backup: SV=$(sv) chain=$(chain_sv) SSVs $(ssv w1) $(ssv w2) $(ssv w3)"; }
[ "$(rc_ GET "br2k:{$SVC}:backup-last")" = "2 499" ] || fail "backup-last is '$(rc_ GET "br2k:{$SVC}:backup-last")'"
[ -z "$(rc_ GET "br2k:{$SVC}:backup")" ] || fail "the backup phase was not cleared"
pass "500 records: backup version 2 at cut 499 by itself; SV, SSV of w1..w3 and the chain at 2"

wait_for 20 at 499 w1 w2 w3 || { show w1 w2 w3; fail "replicas not at 499"; }
replica=$(metric w1 digest)
out=$(restore_json) || fail "restore: $out"
echo "$out" >"$T/restore.json"
[ "$(jq -r .cut <<<"$out")" = 499 ] || fail "restored cut: $out"
[ "$(jq -r .digest <<<"$out")" = "$replica" ] || fail "restored digest $(jq -r .digest <<<"$out") != replicas' $replica"
[ "$(jq -r .log_digest <<<"$out")" = "$replica" ] || fail "the log's state digest is not the replicas'"
obj=$(jq -r .object <<<"$out"); sha=$(jq -r .sha256 <<<"$out")
[ -f "$T/backups/$obj" ] || fail "object $obj not in storage"
[ "$(sha256sum "$T/backups/$obj" | cut -d' ' -f1)" = "$sha" ] || fail "object is not addressed by its sha256"
onchain=$("$CAST" call --rpc-url "$ETH_RPC" "$REG" 'latestBackup()(uint64,bytes32,uint64)' | sed -n 2p)
[ "$onchain" = "0x$sha" ] || fail "chain digest $onchain, object $sha"
pass "the stored object ($obj) is on chain by its sha256 and restores to the replicas' digest ${replica:0:12}"

# 2. eth-crypto decrypts the on-chain log written by our C code
block=$("$CAST" call --rpc-url "$ETH_RPC" "$REG" 'latestBackup()(uint64,bytes32,uint64)' | sed -n 3p | cut -d' ' -f1)
data=$("$CAST" logs --rpc-url "$ETH_RPC" --from-block "$block" --to-block "$block" --address "$REG" --json | jq -r '.[0].data')
"$CAST" abi-decode --input 'f(bytes32,bytes)' "$data" | sed -n 2p | sed 's/^0x//' >"$T/log.hex"
node "$SRC/tests/integration/ethcrypto_log.js" decrypt "$(cat "$T/service.key")" "$T/log.hex" >"$T/log.json" 2>"$T/node.log" ||
    fail "eth-crypto cannot decrypt the on-chain log: $(cat "$T/node.log")"
for f in version:2 cut_offset:499 subject:"$(leader_id)" format:br2k.state-backup-log.v1; do
    [ "$(jq -r ".${f%%:*}" "$T/log.json")" = "${f#*:}" ] || fail "log field ${f%%:*}: $(jq -c . "$T/log.json")"
done
[ "$(jq -r '.members | length' "$T/log.json")" = 3 ] || fail "log members: $(jq -c .members "$T/log.json")"
[ "$(jq -r .state_data.sha256 "$T/log.json")" = "$sha" ] || fail "log names another object"
grep -qi "secret\|password" "$T/log.json" && fail "a credential-like field in the log"
pass "eth-crypto (npm) decrypts the on-chain log: version 2, cut 499, subject $(leader_id), 3 members"

# 3. a corrupted object, a wrong key, a tampered log: refused
cp "$T/backups/$obj" "$T/obj.bak"
printf 'X' | dd of="$T/backups/$obj" bs=1 seek=100 conv=notrunc 2>/dev/null
out=$(restore_json 2>&1) && fail "a corrupted object was restored: $out"
grep -q "digest mismatch" <<<"$out" || fail "corrupted object: unclear error: $out"
cp "$T/obj.bak" "$T/backups/$obj"
"$BIN/br2k" keygen --out "$T/other.key" >/dev/null 2>&1
out=$("$BUILD/tests/itest_backup" restore "$ETH_RPC" "$REG" "$T/other.key" noop 2>&1) && fail "restored with a wrong key: $out"
grep -qi "bad mac\|cannot decrypt" <<<"$out" || fail "wrong key: unclear error: $out"
restore_json >/dev/null || fail "the repaired object does not restore"
pass "refused with a clear error: a corrupted object (digest mismatch), a wrong service key (bad mac)"

# 4. majority trigger: 2 of 3 workers stopped (killed: they stay members)
ldr=$(leader_id)
for w in w1 w2 w3; do [ "$w" = "$ldr" ] || { kill -KILL "${WPID[$w]}"; wait "${WPID[$w]}" 2>/dev/null || true; }; done
produce 10 0 more >/dev/null
t0=$(date +%s.%N)
wait_for 30 versions_are 3 "$ldr" || fail "no backup after 2 of 3 workers stopped: SV=$(sv)"
t1=$(date +%s.%N)
grep -q "(majority)" "$T/backupd.log" || fail "backup 3 was not the majority trigger"
# --keep 1: version 2's objects are pruned once version 3 is logged
wait_for 10 test ! -e "$T/backups/$obj" || fail "version 2's object was not pruned: $(ls "$T/backups")"
ls "$T/backups" | grep -q '^v00000003-state-' || fail "version 3's object is missing: $(ls "$T/backups")"
pass "2 of 3 workers stopped: backup version 3 by the majority trigger $(echo "$t1 - $t0" | bc) s after the records; version 2 pruned (--keep 1)"

# 5. the history of service actions (issue 19) of the no-op application:
# both versions' records replay from genesis to their state digests
out=$(BR2K_SERVICE_KEY_FILE="$T/service.key" "$BIN/br2k" --eth-rpc "$ETH_RPC" --registry "$REG" history verify --json) ||
    fail "history verify: $out"
[ "$(jq -c '[.ok, .records, [.versions[] | [.version, .from_offset, .to_offset, .external]]]' <<<"$out")" = \
  '[true,510,[[2,0,499,"not compared (pruned from storage)"],[3,500,509,"none"]]]' ] || fail "history verify: $out"
pass "br2k history verify: 510 records of the no-op application replayed from genesis, versions 2 and 3 hold"

grep -q "Sanitizer\|runtime error" "$T"/*.log && fail "sanitizer report in a log"
echo "backup_e2e: all checks passed"
