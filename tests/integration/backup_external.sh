# backup_external.sh - the external state in every backup (the paper's
# Table 1, line 4), on real redis-server, br2k-devkafka, anvil and file
# storage, with no-op workers whose external keys the test writes itself
# (InfoDID's own index is checked by recover.sh):
#  - no external key yet: an empty external state is stored and logged
#    (key_count 0, applied_offset -1);
#  - a key that appears while a backup runs (after the key names were
#    listed, before the hold): that backup is given up with one clear
#    line, nothing changes (SV, chain, no phase left); the next one holds
#    the key;
#  - every kind of key (string, hash, set, list, sorted set, bytes that are
#    not UTF-8) comes back as it is in Redis, a hash of more than 1000
#    fields too (read with HSCAN in pieces, not in the one script);
#  - a key of a kind backupd cannot store (a stream): refused clearly, and
#    the next backup succeeds once it is gone.
source "$(dirname "$0")/lib.sh"
source "$(dirname "$0")/core_helpers.bash"
source "$(dirname "$0")/backup_helpers.bash"

P="br2k:{$SVC}:ext:"
n=0
more() { n=$((n + 1)); produce 10 0 "r$n" >/dev/null; } # new records: a backup has work
request_backup() { rc_ SET "br2k:{$SVC}:backup-now" 1 >/dev/null; }
stop_backupd() { kill -TERM "$BD_PID"; wait "$BD_PID" 2>/dev/null || true; }
is_stopped() { [ "$(ps -o stat= -p "$1" | cut -c1)" = T ]; }
no_phase() { [ -z "$(rc_ GET "br2k:{$SVC}:backup")" ] && [ -z "$(rc_ GET "br2k:{$SVC}:backup-run")" ]; }
# value KEY: the external state's entry for KEY (compact JSON)
value() { jq -c --arg k "$P$1" '.content.keys[$k]' <<<"$out"; }

start_redis
start_devkafka
start_chain
for w in w1 w2 w3; do start_worker "$w"; done
wait_for 15 has_leader || fail "no leader"
start_backupd --max-replicated 100000000 --hold-timeout-ms 10000

# 1. nothing external yet
more
backup_now
out=$(external_json 2 2>&1) || fail "external state of version 2: $out"
[ "$(jq -c '[.meta.key_count, .meta.applied_offset, .content.keys, .meta.cut_offset == .cut]' <<<"$out")" = '[0,-1,{},true]' ] ||
    fail "empty external state: $(jq -c '[.meta, .content]' <<<"$out")"
obj=$(jq -r .meta.object <<<"$out")
[ "$(sha256sum "$T/backups/$obj" | cut -d' ' -f1)" = "$(jq -r .meta.sha256 <<<"$out")" ] || fail "$obj is not stored under its sha256"
pass "no external key: version 2 logs an empty external state ($obj)"

# 2. a key appears after the names were listed (backupd stopped at 'wait':
# the leader holds, the names are known): the backup is given up
stop_backupd
BR2K_TEST_BACKUP_STOP=wait start_backupd --max-replicated 100000000 --hold-timeout-ms 10000
more
request_backup
wait_for 30 grep -q "stopped at step 'wait'" "$T/backupd.log" || fail "backupd never reached 'wait'"
wait_for 5 is_stopped "$BD_PID" || fail "backupd did not stop itself"
rc_ SET "${P}note" hello >/dev/null
kill -CONT "$BD_PID"
wait_for 30 grep -q "backup version 3 failed at step 'snapshot': the external key '${P}note' appeared while the backup ran" "$T/backupd.log" ||
    fail "no clear refusal: $(grep -E 'failed|error' "$T/backupd.log" | tail -2)"
wait_for 10 no_phase || fail "a phase or backup-run was left: $(rc_ GET "br2k:{$SVC}:backup")"
[ "$(sv)" = 2 ] && [ "$(chain_sv)" = 2 ] || fail "SV $(sv), chain $(chain_sv) after the refused backup"
pass "a key appearing during a backup: refused ($(grep -o "the external key .* appeared while the backup ran" "$T/backupd.log" | head -1)); SV and chain stay at 2"
backup_now
out=$(external_json 3 2>&1) || fail "external state of version 3: $out"
[ "$(value note)" = '{"encoding":"utf-8","type":"string","value":"hello"}' ] && [ "$(jq -r .meta.key_count <<<"$out")" = 1 ] ||
    fail "version 3: $(jq -c .content.keys <<<"$out")"
pass "the next backup (version 3) holds it"

# 3. every kind of key, as Redis holds it
rc_ HSET "${P}h" f1 v1 f2 v2 >/dev/null
rc_ SADD "${P}s" c a b >/dev/null
rc_ RPUSH "${P}l" x y x >/dev/null
rc_ ZADD "${P}z" 2.5 m2 1 m1 >/dev/null
printf '\xff\xfeA' | rc_ -x SET "${P}bin" >/dev/null
rc_ SET "${P}applied" 7 >/dev/null
# a hash over the one script's 1000 fields (InfoDID's index has one per DID)
args=(); for i in $(seq 2500); do args+=("f$i" "v$i"); done
rc_ HSET "${P}big" "${args[@]}" >/dev/null
more
backup_now
out=$(external_json 4 2>&1) || fail "external state of version 4: $out"
for want in \
    'h {"encoding":"utf-8","type":"hash","value":{"f1":"v1","f2":"v2"}}' \
    's {"encoding":"utf-8","type":"set","value":["a","b","c"]}' \
    'l {"encoding":"utf-8","type":"list","value":["x","y","x"]}' \
    'z {"encoding":"utf-8","type":"zset","value":{"m1":"1","m2":"2.5"}}' \
    'bin {"encoding":"hex","type":"string","value":"fffe41"}' \
    'note {"encoding":"utf-8","type":"string","value":"hello"}'; do
    got=$(value "${want%% *}")
    [ "$got" = "${want#* }" ] || fail "${P}${want%% *}: got $got, want ${want#* }"
done
[ "$(jq -c '[.meta.key_count, .meta.applied_offset, .content.applied_offset]' <<<"$out")" = '[8,7,7]' ] ||
    fail "version 4 meta: $(jq -c .meta <<<"$out")"
big=$(jq -S -c --arg k "${P}big" '.content.keys[$k] | [.type, .encoding, (.value | length), .value.f1, .value.f2500]' <<<"$out")
[ "$big" = '["hash","utf-8",2500,"v1","v2500"]' ] || fail "${P}big: $big"
[ "$(jq -S -c --arg k "${P}big" '.content.keys[$k].value' <<<"$out")" = "$(redis_hash "${P}big" | jq -S -c .)" ] ||
    fail "${P}big differs from Redis"
grep -q "1 hash(es) of more than 1000 fields read in pieces" "$T/backupd.log" ||
    fail "${P}big was not read in pieces: $(grep -c 'in pieces' "$T/backupd.log") lines"
grep -q "hash+" "$T/backupd.log" && fail "a large hash leaked its marker: $(grep 'hash+' "$T/backupd.log" | head -1)"
pass "version 4: strings, hashes (one of 2500 fields, read in pieces), sets (sorted), lists, sorted sets and bytes (hex) as in Redis; applied_offset from ${P}applied"

# 4. a kind backupd cannot store
rc_ XADD "${P}st" '*' a 1 >/dev/null
more
request_backup
wait_for 30 grep -q "backup version 5 failed at step 'wait': the external key '${P}st' is a stream" "$T/backupd.log" ||
    fail "a stream: no clear refusal: $(grep -E 'failed' "$T/backupd.log" | tail -2)"
wait_for 10 no_phase || fail "a phase or backup-run was left after the stream"
rc_ DEL "${P}st" >/dev/null
backup_now
[ "$(external_json 5 | jq -r .meta.key_count)" = 8 ] || fail "version 5 after the stream was deleted"
pass "a stream under ${P}: refused with one line; version 5 once it is gone"

grep -q "Sanitizer\|runtime error" "$T"/*.log && fail "sanitizer report in a log"
echo "backup_external: all checks passed"
