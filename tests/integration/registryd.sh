#!/usr/bin/env bash
# registryd.sh - br2k-registryd and `br2k registry deploy|show` against a
# real anvil and a real Redis, once with instant mining and once with
# --block-time 1: deploy through the CLI; access information; leader lease
# changes in Redis reach the chain with rising epochs; appendBackupLog
# through the channel (right token: mined; stale token: refused, no
# transaction; skipped version: BadVersion; repeated: already done); a key
# that is not a writer (NotWriter); kill -9 with a transaction in flight and
# a restart that keeps the nonce right and answers; nonce too low (another
# transaction of the key took the nonce); a fee bump on a stuck transaction;
# a transaction replaced at its nonce; a writer without funds; a dead first
# RPC URL everywhere; a malformed request skipped; the in-flight record and
# the request lost with Redis while registryd is killed (a failover to a
# stale replica); `br2k registry log` reads
# a backup's encrypted log back from its event (eth_getLogs).
# REGCLI overrides the br2k binary that has the `registry` commands.
source "$(dirname "$0")/lib.sh"

# The `br2k registry` commands (override to test another build of them).
REGCLI=${REGCLI:-"$BIN/br2k"}
OWNER_KEY=0xac0974bec39a17e36ba4a6b4d238ff944bacb478cbed5efcae784d7bf4f2ff80
WRITER_KEY=0x59c6995e998f97a5a0044966f0945389dc9e86dae88c7a8412f4603b6b78690d
WRITER=0x70997970C51812dc3A010C7d01b50e0d17dc79C8
STRANGER_KEY=0x5de4111afa1a4b94908f83103eb1f1706367c2e68ca870fc3fb9a804cdab365a
SVC=regtest

"$REGCLI" registry --help >/dev/null 2>&1 || fail "'$REGCLI registry' is not available"
echo "$WRITER_KEY" >"$T/writer.key"
echo "$STRANGER_KEY" >"$T/stranger.key"
chmod 600 "$T"/*.key

rcli() { redis-cli -p "$REDIS_PORT" "$@"; }
view() { "$CAST" call --rpc-url "$ETH_RPC" "$REG" "$@" | paste -sd ' ' -; }
nonce_of() { "$CAST" nonce --rpc-url "$ETH_RPC" "$1"; }

# call ID JSON-REQUEST [TIMEOUT]: queue a request, print the reply
call() {
    local id=$1 req=$2 to=${3:-30}
    rcli LPUSH "br2k:{$SVC}:registry:queue" "$req" >/dev/null
    rcli --raw BLPOP "br2k:{$SVC}:registry:reply:$id" "$to" | sed -n 2p
}
# expect_reply WHAT REPLY JQ-CONDITION
expect_reply() {
    echo "$2" | jq -e "$3" >/dev/null 2>&1 || fail "$1: reply '$2' does not satisfy $3"
}
append_req() { # ID VERSION DIGEST TOKEN
    echo "{\"id\":\"$1\",\"method\":\"appendBackupLog\",\"args\":{\"version\":$2,\"digest\":\"$3\",\"log\":\"0x$(head -c 64 /dev/urandom | od -An -v -tx1 | tr -d ' \n')\"},\"epoch\":$4}"
}
digest() { printf '0x%064x' "$1"; }

# start_regd NAME KEYFILE [ARGS]: start registryd for $SVC; sets REGD_PID
# a transaction recorded in flight (a predicate: read again on every try)
in_flight() { [ -n "$(rcli GET "br2k:{$SVC}:registry:inflight")" ]; }
start_regd() {
    local name=$1 key=$2; shift 2
    "$BIN/br2k-registryd" --registry "$REG" --eth-rpc "http://127.0.0.1:$DEAD_PORT,$ETH_RPC" \
        --redis "$REDIS" --service "$SVC" --key-file "$key" --poll-ms 20 "$@" \
        >>"$T/$name.log" 2>&1 &
    REGD_PID=$!; PIDS+=("$REGD_PID")
    wait_for 10 grep -q "service '$SVC'" "$T/$name.log" || fail "$name did not start"
}
stop_regd() {
    kill -TERM "$REGD_PID"
    local rc=0
    wait "$REGD_PID" || rc=$?
    [ "$rc" -eq 0 ] || fail "registryd exited $rc on SIGTERM"
}
# take_lease ID: what a worker does: INCR the epoch, SET the lease
take_lease() {
    local ep; ep=$(rcli INCR "br2k:{$SVC}:epoch")
    rcli SET "br2k:{$SVC}:leader" "$1 $ep" PX 60000 >/dev/null
    echo "$ep"
}
leader_epoch_is() { [ "$(view 'leader()(string,uint64,string)' | awk '{print $2}')" = "$1" ]; }

run_suite() {
    local mode=$1; shift
    start_anvil "$@"
    start_redis
    rcli FLUSHALL >/dev/null # the second suite's Redis reloads the first's AOF
    rm -f "$T"/regd*.log
    DEAD_PORT=$(free_port) # nothing listens there: every call fails over
    echo "--- $mode${*:+ (anvil $*)}"

    # Deploy through the CLI, with registryd's address as a writer and the
    # access information; the first RPC URL is dead.
    REG=$(BR2K_ETH_KEY=$OWNER_KEY "$REGCLI" --eth-rpc "http://127.0.0.1:$DEAD_PORT,$ETH_RPC" \
        registry deploy --writer-key-file "$T/writer.key" --bootstrap 127.0.0.1:9092 \
        --topic "br2k.$SVC.requests" --results "redis://$REDIS" 2>"$T/deploy.log") ||
        fail "br2k registry deploy: $(cat "$T/deploy.log")"
    [[ "$REG" =~ ^0x[0-9a-fA-F]{40}$ ]] || fail "deploy printed '$REG', not an address"
    [ "$(view 'isWriter(address)(bool)' "$WRITER")" = true ] || fail "registryd's key is not a writer"
    [ "$(view 'accessInfo()(string,string,string)')" = "\"127.0.0.1:9092\" \"br2k.$SVC.requests\" \"redis://$REDIS\"" ] ||
        fail "access information: $(view 'accessInfo()(string,string,string)')"
    pass "$mode: br2k registry deploy -> $REG, writer added, access information published"

    start_regd regd "$T/writer.key"
    local n0 ep1 ep2 ep3 reply
    # Access information through the channel.
    reply=$(call s1 '{"id":"s1","method":"setAccessInfo","args":{"bootstrap":"k1:9092,k2:9092","topic":"br2k.regtest.requests","results":""},"epoch":null}')
    expect_reply "setAccessInfo" "$reply" '.ok == true and (.tx | startswith("0x"))'
    [ "$(view 'accessInfo()(string,string,string)')" = '"k1:9092,k2:9092" "br2k.regtest.requests" ""' ] ||
        fail "access information after setAccessInfo: $(view 'accessInfo()(string,string,string)')"
    pass "$mode: setAccessInfo through the channel"

    # Leader changes in Redis reach the chain with rising epochs.
    ep1=$(take_lease w1)
    wait_for 20 leader_epoch_is "$ep1" || fail "lease w1/$ep1 did not reach the chain"
    rcli SET "br2k:{$SVC}:registry:endpoint:w2" 10.0.0.2:7001 >/dev/null
    ep2=$(take_lease w2)
    wait_for 20 leader_epoch_is "$ep2" || fail "lease w2/$ep2 did not reach the chain"
    [ "$(view 'leader()(string,uint64,string)')" = "\"w2\" $ep2 \"10.0.0.2:7001\"" ] ||
        fail "leader record: $(view 'leader()(string,uint64,string)')"
    ep3=$(take_lease w3)
    wait_for 20 leader_epoch_is "$ep3" || fail "lease w3/$ep3 did not reach the chain"
    [ "$ep1" -lt "$ep2" ] && [ "$ep2" -lt "$ep3" ] || fail "epochs $ep1 $ep2 $ep3"
    pass "$mode: lease changes w1/$ep1, w2/$ep2 (with endpoint), w3/$ep3 reached the chain"

    # A worker's setLeader with a stale token is fenced; with the current
    # one (already on chain) it is reported as done.
    reply=$(call l1 "{\"id\":\"l1\",\"method\":\"setLeader\",\"args\":{\"worker\":\"w2\",\"epoch\":$ep2,\"endpoint\":\"\"},\"epoch\":$ep2}")
    expect_reply "stale setLeader" "$reply" '.ok == false and .code == "fenced"'
    reply=$(call l2 "{\"id\":\"l2\",\"method\":\"setLeader\",\"args\":{\"worker\":\"w3\",\"epoch\":$ep3,\"endpoint\":\"\"},\"epoch\":$ep3}")
    expect_reply "repeated setLeader" "$reply" '.ok == true and .already == true'
    pass "$mode: setLeader through the channel: stale token fenced, repeat is already done"

    # appendBackupLog: right token, stale token (no transaction), skipped
    # version (BadVersion), repeated (already done).
    reply=$(call b2 "$(append_req b2 2 "$(digest 2)" "$ep3")")
    expect_reply "appendBackupLog v2" "$reply" '.ok == true and .block > 0'
    [ "$(view 'stateVersion()(uint64)')" = 2 ] || fail "SV is not 2 after the first backup"
    n0=$(nonce_of "$WRITER")
    reply=$(call b3 "$(append_req b3 3 "$(digest 3)" "$ep2")")
    expect_reply "stale appendBackupLog" "$reply" '.ok == false and .code == "fenced"'
    [ "$(nonce_of "$WRITER")" = "$n0" ] || fail "a fenced request sent a transaction"
    reply=$(call b4 "$(append_req b4 4 "$(digest 4)" "$ep3")")
    expect_reply "skipped version" "$reply" '.ok == false and .code == "BadVersion" and .revert == "BadVersion(4, 3)"'
    [ "$(nonce_of "$WRITER")" = "$n0" ] || fail "a reverting request sent a transaction"
    reply=$(call b2b "$(append_req b2b 2 "$(digest 2)" "$ep3")")
    expect_reply "repeated version" "$reply" '.ok == true and .already == true'
    pass "$mode: appendBackupLog: mined (SV 2); stale token fenced and skipped version BadVersion(4, 3), both without a transaction; repeat already done"

    # A malformed request is skipped with an error logged; the next is served.
    rcli LPUSH "br2k:{$SVC}:registry:queue" 'this is not JSON' >/dev/null
    reply=$(call u1 '{"id":"u1","method":"noSuchMethod","args":{}}')
    expect_reply "unknown method" "$reply" '.ok == false and .code == "invalid"'
    reply=$(call b3 "$(append_req b3 3 "$(digest 3)" "$ep3")")
    expect_reply "appendBackupLog v3" "$reply" '.ok == true'
    grep -q "skipped: malformed registry request 'this is not JSON'" "$T/regd.log" ||
        fail "the malformed request was not logged"
    pass "$mode: malformed request skipped and logged; unknown method refused; next request served"

    # kill -9 with a transaction in flight; the restart resolves it, answers
    # the request, and sends the next one with the right nonce.
    if [ "$mode" = instant ]; then
        "$CAST" rpc --rpc-url "$ETH_RPC" evm_setAutomine false >/dev/null
    fi
    n0=$(nonce_of "$WRITER")
    rcli LPUSH "br2k:{$SVC}:registry:queue" "$(append_req k4 4 "$(digest 4)" "$ep3")" >/dev/null
    wait_for 10 in_flight ||
        fail "no transaction recorded in flight"
    kill -KILL "$REGD_PID"
    wait "$REGD_PID" 2>/dev/null || true
    [ "$(rcli LLEN "br2k:{$SVC}:registry:processing")" = 1 ] || fail "the request is not left in processing"
    start_regd regd "$T/writer.key"
    if [ "$mode" = instant ]; then
        "$CAST" rpc --rpc-url "$ETH_RPC" evm_setAutomine true >/dev/null
        "$CAST" rpc --rpc-url "$ETH_RPC" evm_mine >/dev/null
    fi
    reply=$(rcli --raw BLPOP "br2k:{$SVC}:registry:reply:k4" 30 | sed -n 2p)
    expect_reply "request in flight at kill -9" "$reply" '.ok == true'
    [ "$(view 'stateVersion()(uint64)')" = 4 ] || fail "SV is not 4"
    [ "$(nonce_of "$WRITER")" = $((n0 + 1)) ] || fail "nonce $(nonce_of "$WRITER"), expected $((n0 + 1)): a duplicate or lost transaction"
    [ -z "$(rcli GET "br2k:{$SVC}:registry:inflight")" ] || fail "in-flight record left"
    reply=$(call b5 "$(append_req b5 5 "$(digest 5)" "$ep3")")
    expect_reply "appendBackupLog after the restart" "$reply" '.ok == true'
    pass "$mode: kill -9 with a transaction in flight: restart answered it, one transaction, next nonce right"

    # Another transaction of the same key takes registryd's next nonce:
    # "nonce too low", re-read, retried once, served.
    "$CAST" send --rpc-url "$ETH_RPC" --private-key "$WRITER_KEY" "$WRITER" --value 0 >/dev/null ||
        fail "cast send with the writer key"
    reply=$(call b6 "$(append_req b6 6 "$(digest 6)" "$ep3")")
    expect_reply "appendBackupLog after a foreign transaction" "$reply" '.ok == true'
    grep -q "too low; re-reading the nonce" "$T/regd.log" || fail "no nonce-too-low retry logged"
    pass "$mode: nonce taken by another transaction of the key: nonce too low, re-read, served"

    # SIGTERM exits 0.
    stop_regd
    pass "$mode: SIGTERM: exit 0"

    # Fee bump of a stuck transaction (instant mode: mining paused).
    if [ "$mode" = instant ]; then
        start_regd regd-bump "$T/writer.key" --stuck-ms 300
        "$CAST" rpc --rpc-url "$ETH_RPC" evm_setAutomine false >/dev/null
        rcli LPUSH "br2k:{$SVC}:registry:queue" "$(append_req f7 7 "$(digest 7)" "$ep3")" >/dev/null
        wait_for 10 grep -q "fees raised" "$T/regd-bump.log" || fail "no fee bump"
        "$CAST" rpc --rpc-url "$ETH_RPC" evm_setAutomine true >/dev/null
        "$CAST" rpc --rpc-url "$ETH_RPC" evm_mine >/dev/null
        reply=$(rcli --raw BLPOP "br2k:{$SVC}:registry:reply:f7" 30 | sed -n 2p)
        expect_reply "bumped transaction" "$reply" '.ok == true and .bumps >= 1'
        stop_regd
        pass "$mode: stuck transaction fee-bumped at the same nonce and mined"
    fi

    local sv=6
    [ "$mode" = instant ] && sv=7
    # A transaction replaced by another of the same key (same nonce, higher
    # fees) is reported as replaced, and the queue goes on.
    if [ "$mode" = instant ]; then
        start_regd regd-replaced "$T/writer.key"
        "$CAST" rpc --rpc-url "$ETH_RPC" evm_setAutomine false >/dev/null
        local n1; n1=$(nonce_of "$WRITER")
        rcli LPUSH "br2k:{$SVC}:registry:queue" "$(append_req r8 8 "$(digest 8)" "$ep3")" >/dev/null
        wait_for 10 in_flight || fail "r8 not in flight"
        "$CAST" send --async --rpc-url "$ETH_RPC" --private-key "$WRITER_KEY" --nonce "$n1" \
            --gas-price 200gwei --priority-gas-price 100gwei "$WRITER" --value 0 >/dev/null ||
            fail "replacement transaction refused"
        "$CAST" rpc --rpc-url "$ETH_RPC" evm_setAutomine true >/dev/null
        "$CAST" rpc --rpc-url "$ETH_RPC" evm_mine >/dev/null
        reply=$(rcli --raw BLPOP "br2k:{$SVC}:registry:reply:r8" 30 | sed -n 2p)
        expect_reply "replaced transaction" "$reply" '.ok == false and .code == "replaced"'
        reply=$(call r8b "$(append_req r8b 8 "$(digest 8)" "$ep3")")
        expect_reply "appendBackupLog after a replacement" "$reply" '.ok == true'
        stop_regd
        pass "$mode: transaction replaced at its nonce: reported 'replaced', next request served"
        sv=8

        # What a Redis failover to a replica that missed the last writes
        # loses (issue 16): the in-flight record and the request in
        # processing are gone, and registryd is restarted in the same
        # failure (kill -9). Its nonce comes from the chain (the node's
        # pending count), so the transaction in flight is mined once and
        # the next one takes the next nonce; the caller, which got no reply,
        # asks again and gets "already" (nothing sent twice).
        start_regd regd-lost "$T/writer.key"
        "$CAST" rpc --rpc-url "$ETH_RPC" evm_setAutomine false >/dev/null
        n1=$(nonce_of "$WRITER")
        rcli LPUSH "br2k:{$SVC}:registry:queue" "$(append_req l9 9 "$(digest 9)" "$ep3")" >/dev/null
        wait_for 10 in_flight || fail "l9 not in flight"
        kill -KILL "$REGD_PID"
        wait "$REGD_PID" 2>/dev/null || true
        rcli DEL "br2k:{$SVC}:registry:inflight" "br2k:{$SVC}:registry:processing" >/dev/null
        start_regd regd-lost "$T/writer.key"
        "$CAST" rpc --rpc-url "$ETH_RPC" evm_setAutomine true >/dev/null
        "$CAST" rpc --rpc-url "$ETH_RPC" evm_mine >/dev/null
        sv_is() { [ "$(view 'stateVersion()(uint64)')" = "$1" ]; }
        wait_for 10 sv_is 9 || fail "the transaction in flight at the loss was not mined (SV $(view 'stateVersion()(uint64)'))"
        reply=$(call l9b "$(append_req l9b 9 "$(digest 9)" "$ep3")")
        expect_reply "the caller's retry after the loss" "$reply" '.ok == true and .already == true'
        reply=$(call l10 "$(append_req l10 10 "$(digest 10)" "$ep3")")
        expect_reply "appendBackupLog after the loss" "$reply" '.ok == true'
        [ "$(nonce_of "$WRITER")" = $((n1 + 2)) ] ||
            fail "nonce $(nonce_of "$WRITER") after the loss, expected $((n1 + 2)): a transaction sent twice or lost"
        [ -z "$(rcli GET "br2k:{$SVC}:registry:inflight")" ] || fail "in-flight record left"
        stop_regd
        pass "$mode: in-flight record and request lost with Redis, registryd killed: the transaction mined once, the retry answered 'already', the next nonce right ($((n1 + 2)))"
        sv=10
    fi

    # A writer without funds: a clear error, and the queue goes on.
    local poor_key poor
    poor_key=0x$(openssl rand -hex 32)
    poor=$("$CAST" wallet address --private-key "$poor_key")
    echo "$poor_key" >"$T/poor.key"
    "$CAST" send --rpc-url "$ETH_RPC" --private-key "$OWNER_KEY" "$REG" 'addWriter(address)' "$poor" >/dev/null ||
        fail "addWriter $poor"
    start_regd regd-poor "$T/poor.key"
    reply=$(call p1 '{"id":"p1","method":"setAccessInfo","args":{"bootstrap":"k:9092","topic":"t","results":""}}')
    expect_reply "writer without funds" "$reply" '.ok == false and .code == "insufficient-funds"'
    reply=$(call p2 '{"id":"p2","method":"addWriter","args":{"account":"nonsense"}}')
    expect_reply "bad address" "$reply" '.ok == false and .code == "invalid"'
    stop_regd
    pass "$mode: a writer without funds: insufficient-funds; the next request is answered"

    # A key that is not a writer is refused with NotWriter.
    start_regd regd-stranger "$T/stranger.key"
    reply=$(call x1 '{"id":"x1","method":"setAccessInfo","args":{"bootstrap":"evil:9092","topic":"t","results":""}}')
    expect_reply "non-writer" "$reply" '.ok == false and .code == "NotWriter"'
    grep -q "reverted: NotWriter(0x3C44CdDdB6a900fa2b585dd299e03d12FA4293BC)" "$T/regd-stranger.log" ||
        fail "the NotWriter revert is not logged with its name"
    stop_regd
    pass "$mode: a key that is not a writer: NotWriter"

    # br2k registry show, with a dead first URL.
    local js
    js=$("$REGCLI" --eth-rpc "http://127.0.0.1:$DEAD_PORT,$ETH_RPC" registry show --json --registry "$REG" 2>/dev/null) ||
        fail "br2k registry show failed"
    echo "$js" | jq -e ".stateVersion == $sv and .latestBackup.version == $sv and .leader.worker == \"w3\" and .leader.epoch == $ep3 and .accessInfo.topic == \"br2k.regtest.requests\" and .latestBackup.digest == \"$(digest "$sv")\"" >/dev/null ||
        fail "registry show: $js"
    "$REGCLI" --eth-rpc "$ETH_RPC" registry show --registry "$REG" | grep -q "^state version  $sv$" ||
        fail "registry show (text)"
    pass "$mode: br2k registry show (JSON and text) from a list starting with a dead URL"

    # The encrypted log of a backup comes back from its BackupLogged event
    # (eth_getLogs), byte for byte.
    local lg='0x00ff0102a5'"$(head -c 300 /dev/urandom | od -An -v -tx1 | tr -d ' \n')"
    reply=$(call g1 "{\"id\":\"g1\",\"method\":\"appendBackupLog\",\"args\":{\"version\":$((sv + 1)),\"digest\":\"$(digest 99)\",\"log\":\"$lg\"},\"epoch\":$ep3}" 1) || true
    [ -z "$reply" ] || fail "appendBackupLog answered without a registryd: $reply"
    start_regd regd "$T/writer.key"
    reply=$(rcli --raw BLPOP "br2k:{$SVC}:registry:reply:g1" 30 | sed -n 2p)
    expect_reply "appendBackupLog for the log check" "$reply" '.ok == true'
    js=$("$REGCLI" --eth-rpc "http://127.0.0.1:$DEAD_PORT,$ETH_RPC" registry log --json --registry "$REG" 2>/dev/null) ||
        fail "br2k registry log failed"
    echo "$js" | jq -e ".version == $((sv + 1)) and .digest == \"$(digest 99)\" and .log == \"$lg\"" >/dev/null ||
        fail "registry log: $js"
    js=$("$REGCLI" --eth-rpc "$ETH_RPC" registry log --json --registry "$REG" --backup-version 2 2>/dev/null) ||
        fail "br2k registry log --version 2 failed"
    echo "$js" | jq -e ".version == 2 and .digest == \"$(digest 2)\"" >/dev/null || fail "registry log v2: $js"
    stop_regd
    pass "$mode: br2k registry log: the encrypted log read back from BackupLogged (eth_getLogs) byte for byte"

    if grep -l "Sanitizer\|runtime error" "$T"/regd*.log "$T/deploy.log"; then
        fail "sanitizer report in the logs above"
    fi
    grep -i "$WRITER_KEY\|${WRITER_KEY#0x}" "$T"/regd*.log "$T/deploy.log" && fail "a key appears in a log"
    kill -TERM "$ANVIL_PID" "$REDIS_PID"
    wait "$ANVIL_PID" "$REDIS_PID" 2>/dev/null || true
}

run_suite instant
run_suite block-time --block-time 1
echo "registryd: all checks passed"
