# backup_helpers.bash - the whole service for the backup tests (sourced
# after lib.sh and core_helpers.bash): Redis, br2k-devkafka, anvil with the
# registry contract, registryd, a service key, backupd and workers.
REGD_KEY=0x59c6995e998f97a5a0044966f0945389dc9e86dae88c7a8412f4603b6b78690d
OWNER_KEY=0xac0974bec39a17e36ba4a6b4d238ff944bacb478cbed5efcae784d7bf4f2ff80

# start_chain: anvil, the registry (sets REG), registryd (REGD_PID)
start_chain() {
    start_anvil
    echo "$REGD_KEY" >"$T/regd.key"
    REG=$(BR2K_ETH_KEY=$OWNER_KEY "$BIN/br2k" --eth-rpc "$ETH_RPC" registry deploy \
        --writer-key-file "$T/regd.key" --bootstrap "$KAFKA" --topic "$TOPIC" \
        --results "$([[ $REDIS == sentinel://* ]] || echo redis://)$REDIS" 2>"$T/deploy.log") || fail "deploy: $(cat "$T/deploy.log")"
    start_registryd
    "$BIN/br2k" keygen --out "$T/service.key" >"$T/keygen.out" 2>&1 || fail "keygen: $(cat "$T/keygen.out")"
}

start_registryd() {
    "$BIN/br2k-registryd" --registry "$REG" --eth-rpc "$ETH_RPC" --redis "$REDIS" \
        --service "$SVC" --key-file "$T/regd.key" --poll-ms 20 >>"$T/registryd.log" 2>&1 &
    REGD_PID=$!; PIDS+=("$REGD_PID")
}

# start_backupd [ARGS]: sets BD_PID; storage $T/backups unless STORAGE is set
start_backupd() {
    BR2K_SERVICE_KEY=$(cat "$T/service.key") "$BIN/br2k-backupd" --service "$SVC" \
        --redis "$REDIS" --kafka "$KAFKA" --eth-rpc "$ETH_RPC" --registry "$REG" \
        --storage "${STORAGE:-file://$T/backups}" --poll-ms 50 "$@" >>"$T/backupd.log" 2>&1 &
    BD_PID=$!; PIDS+=("$BD_PID")
}

sv() { rc_ GET "br2k:{$SVC}:Service-State"; }
ssv() { rc_ GET "br2k:{$SVC}:State-$1"; }
chain_sv() { "$CAST" call --rpc-url "$ETH_RPC" "$REG" 'stateVersion()(uint64)'; }
# versions_are V ID...: SV, every listed SSV and the chain are at V
versions_are() {
    local v=$1 id; shift
    [ "$(sv)" = "$v" ] && [ "$(chain_sv)" = "$v" ] || return 1
    for id in "$@"; do [ "$(ssv "$id")" = "$v" ] || return 1; done
}
# restore_json [VERSION]: the backup restores; prints the JSON of itest_backup
restore_json() {
    "$BUILD/tests/itest_backup" restore "$ETH_RPC" "$REG" "$T/service.key" "${APP:-noop}" "$@"
}
# external_json [VERSION]: the backup's external state read back (the log
# from the chain, the object from the storage, checked and opened; with
# APP infodid, compared with the backup's restored state): the JSON of
# `itest_backup external`
external_json() {
    "$BUILD/tests/itest_backup" external "$ETH_RPC" "$REG" "$T/service.key" "${APP:-noop}" "$@"
}
# redis_hash KEY: a Redis hash as one sorted JSON object
redis_hash() {
    rc_ HGETALL "$1" | jq -Rn '[inputs] | [range(0; length; 2) as $i | {(.[$i]): .[$i + 1]}] | add // {}' | jq -S .
}
# check_external VERSION CUT: backup VERSION holds the external state at its
# cut CUT: the log names a br2k-external-state object of the cut, stored
# under its sha256 in $T/backups, which opens to exactly Redis's
# br2k:{svc}:ext:* keys now (call it while nothing runs after the cut:
# SSI still at CUT), and the log is valid against the schema. Prints a
# summary.
check_external() {
    local v=$1 cut=$2 out p k n obj sha did_o did_r
    [ "$(rc_ GET "br2k:{$SVC}:SSI")" = "$cut" ] || fail "check_external $v: SSI $(rc_ GET "br2k:{$SVC}:SSI") is past the cut $cut"
    out=$(external_json "$v" 2>&1) || fail "external state of version $v: $out"
    echo "$out" >"$T/external$v.json"
    p="br2k:{$SVC}:ext:"
    [ "$(jq -r .cut <<<"$out")" = "$cut" ] && [ "$(jq -r .meta.cut_offset <<<"$out")" = "$cut" ] ||
        fail "external state of version $v: cut $(jq -c '[.cut, .meta.cut_offset]' <<<"$out"), want $cut"
    [ "$(jq -r .meta.type <<<"$out")" = br2k-external-state ] || fail "external_state.type: $(jq -c .meta <<<"$out")"
    obj=$(jq -r .meta.object <<<"$out"); sha=$(jq -r .meta.sha256 <<<"$out")
    [[ $obj == "$(printf 'v%08d' "$v")-external-$sha" ]] || fail "external object named '$obj' (sha256 $sha)"
    [ "$(sha256sum "$T/backups/$obj" | cut -d' ' -f1)" = "$sha" ] || fail "external object $obj is not in storage under its sha256"
    [ "$(stat -c %s "$T/backups/$obj")" = "$(jq -r .meta.size <<<"$out")" ] || fail "external object $obj: size differs from the log's"
    # exactly the keys Redis holds, with the same content
    k=$(rc_ --scan --pattern "${p}*" | LC_ALL=C sort -u | jq -Rn '[inputs]')
    [ "$(jq -c '.content.keys | keys' <<<"$out")" = "$(jq -c . <<<"$k")" ] ||
        fail "external keys: backup $(jq -c '.content.keys | keys' <<<"$out"), Redis $(jq -c . <<<"$k")"
    [ "$(jq -r '.meta.key_count' <<<"$out")" = "$(jq length <<<"$k")" ] || fail "external_state.key_count: $(jq -c .meta <<<"$out")"
    [ "$(jq -r --arg k "${p}active" '.content.keys[$k].value' <<<"$out")" = "$(rc_ GET "${p}active")" ] ||
        fail "${p}active: backup $(jq -c --arg k "${p}active" '.content.keys[$k]' <<<"$out"), Redis $(rc_ GET "${p}active")"
    # applied is a watermark: read from Redis, Redis's value (the last record
    # with an effect); from the leader's view (owner: a worker), the cut
    local ba ra; ba=$(jq -r --arg k "${p}applied" '.content.keys[$k].value' <<<"$out"); ra=$(rc_ GET "${p}applied")
    if [ "$(jq -r .meta.owner <<<"$out")" = br2k-backupd ]; then
        [ "$ba" = "$ra" ] || fail "${p}applied: backup $ba, Redis $ra"
    else
        [ "$ba" = "$cut" ] || fail "${p}applied from the leader's view: $ba (cut $cut), Redis $ra"
    fi
    [ "$(jq -r .meta.applied_offset <<<"$out")" = "$ba" ] && [ "$ra" -le "$cut" ] ||
        fail "external_state.applied_offset $(jq -r .meta.applied_offset <<<"$out"), backup ${p}applied $ba, Redis $ra, cut $cut"
    [ "$(jq -r .state.match <<<"$out")" = true ] || fail "version $v: the external index is not the restored state's: $(jq -c .state <<<"$out")"
    did_o=$(jq -S --arg k "${p}did" '.content.keys[$k].value' <<<"$out")
    did_r=$(redis_hash "${p}did") || fail "cannot read ${p}did"
    [ "$did_o" = "$did_r" ] || fail "${p}did: backup holds $(jq length <<<"$did_o") DIDs, Redis $(jq length <<<"$did_r"), or other controllers"
    [ "$(jq length <<<"$did_r")" = "$(rc_ HLEN "${p}did")" ] && [ "$(rc_ HLEN "${p}did")" -gt 0 ] || fail "${p}did: HLEN $(rc_ HLEN "${p}did")"
    # the log itself against schemas/state-backup-log.schema.json
    jq .log <<<"$out" >"$T/log$v.json"
    (cd "$SRC" && node -e '
        const Ajv = require("ajv/dist/2020"), fs = require("fs");
        const v = new Ajv({strict: false}).compile(JSON.parse(fs.readFileSync(process.argv[1])));
        if (!v(JSON.parse(fs.readFileSync(process.argv[2])))) { console.error(JSON.stringify(v.errors)); process.exit(1); }' \
        schemas/state-backup-log.schema.json "$T/log$v.json") >"$T/schema$v.out" 2>&1 ||
        fail "the log of version $v is not valid against the schema: $(cat "$T/schema$v.out")"
    echo "external state of version $v at cut $cut: $obj, $(jq length <<<"$k") keys, $(jq length <<<"$did_r") DIDs, ${p}active $(rc_ GET "${p}active"), applied $ba (Redis $ra)"
}

# backup_now: `br2k backup now`, and SV one higher after it
backup_now() {
    local v; v=$(sv)
    "$BIN/br2k" --redis "$REDIS" backup now --wait 60 >"$T/now.out" 2>&1 ||
        fail "backup now failed: $(cat "$T/now.out"); $(tail -3 "$T/backupd.log")"
    [ "$(sv)" = $((v + 1)) ] || fail "SV $(sv) after a backup from $v"
}

# submit_rejection SEQ: a signed InfoDID update of a DID nobody registered
# (client "nobody", seq SEQ), appended at the log's end: rejected
# unknown_did, no external effect. Prints its result (.offset: its record)
submit_rejection() {
    local r
    r=$(BR2K_CLIENT_KEY=0x59c6995e998f97a5a0044966f0945389dc9e86dae88c7a8412f4603b6b78690d \
        "$BIN/br2k" --redis "$REDIS" --kafka "$KAFKA" submit --op update \
        --payload '{"attrs":{"a":"b"}}' --client nobody --seq "$1" --wait-ms 20000) &&
        fail "an update of an unregistered DID was taken: $r"
    jq -e '.reason.code == "unknown_did"' <<<"$r" >/dev/null || fail "not the rejection: $r"
    echo "$r"
}

# load_infodid COUNT: COUNT signed InfoDID requests (br2k submit, 2 clients)
# from a fresh client prefix ($LOAD_PREFIX, then a count)
LOAD_N=0
load_infodid() {
    LOAD_N=$((LOAD_N + 1))
    "$BIN/br2k" --redis "$REDIS" --kafka "$KAFKA" submit --clients 2 --count "$(($1 / 2))" \
        --prefix "${LOAD_PREFIX:-h}$LOAD_N" >"$T/load$LOAD_N.out" 2>&1 ||
        fail "load $LOAD_N: $(tail -3 "$T/load$LOAD_N.out")"
}
