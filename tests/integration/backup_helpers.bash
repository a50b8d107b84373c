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
        --results "redis://$REDIS" 2>"$T/deploy.log") || fail "deploy: $(cat "$T/deploy.log")"
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
# restore_check [VERSION]: the backup restores; prints the JSON of itest_backup
restore_json() {
    "$BUILD/tests/itest_backup" restore "$ETH_RPC" "$REG" "$T/service.key" "${APP:-noop}" "$@"
}
