#!/usr/bin/env bash
# registry_contract.sh - the registry contract (registryd/contracts/) on a
# real anvil, driven with cast only: the committed artifact matches a fresh
# compile; deploy; access information; leader records with rising epochs and
# StaleEpoch; backup history with BadVersion; writers and NotWriter/NotOwner;
# BackupLogged events carry the encrypted bytes intact. Run twice: instant
# mining, then --block-time 1.
source "$(dirname "$0")/lib.sh"

ARTIFACT=$SRC/registryd/contracts/BR2KRegistry.json
# anvil's first two default accounts
OWNER_KEY=0xac0974bec39a17e36ba4a6b4d238ff944bacb478cbed5efcae784d7bf4f2ff80
OWNER=0xf39Fd6e51aad88F6F4ce6aB8827279cffFb92266
OTHER_KEY=0x59c6995e998f97a5a0044966f0945389dc9e86dae88c7a8412f4603b6b78690d
OTHER=0x70997970C51812dc3A010C7d01b50e0d17dc79C8
ZERO32=0x0000000000000000000000000000000000000000000000000000000000000000

out=$(node "$SRC/registryd/contracts/compile.js" --check 2>&1) || fail "compile.js --check: $out"
pass "committed contract artifact matches a fresh compile"

BYTECODE=$(jq -r .bytecode "$ARTIFACT")
DEPLOYED=$(jq -r .deployedBytecode "$ARTIFACT")

lower() { tr 'A-F' 'a-f'; }
# join: the lines of stdin on one line, separated by single spaces
join() { paste -sd ' ' -; }

# view SIG [ARGS...]: eth_call on the registry, the decoded values on one line
view() { "$CAST" call --rpc-url "$ETH_RPC" "$REG" "$@" | join; }

# expect_view WANT SIG [ARGS...]
expect_view() {
    local want=$1; shift
    local got; got=$(view "$@")
    [ "$got" = "$want" ] || fail "$1: got '$got', expected '$want'"
}

# send_ok KEY SIG [ARGS...]: the transaction is mined with status 1; its
# receipt is left in $T/receipt.json
send_ok() {
    local key=$1; shift
    "$CAST" send --rpc-url "$ETH_RPC" --private-key "$key" --json "$REG" "$@" >"$T/receipt.json" ||
        fail "cast send $*: failed"
    [ "$(jq -r .status "$T/receipt.json")" = "0x1" ] || fail "cast send $*: status is not 1"
}

# check_revert WHAT OUTPUT ERROR_SIG WANT_ARGS: OUTPUT (cast's error text)
# carries revert data whose selector is ERROR_SIG's and whose decoded
# arguments, space-separated, are WANT_ARGS.
check_revert() {
    local what=$1 output=$2 esig=$3 want=$4 data sel got
    data=$(printf '%s\n' "$output" | sed -n 's/.*data: "\(0x[0-9a-fA-F]*\)".*/\1/p' | head -n 1)
    [ -n "$data" ] || fail "$what: no revert data in: $output"
    sel=$("$CAST" sig "$esig")
    [ "${data:0:10}" = "$sel" ] || fail "$what: reverted with selector ${data:0:10}, expected $esig ($sel)"
    got=$("$CAST" decode-error --sig "$esig" "$data" | join)
    [ "$got" = "$want" ] || fail "$what: reverted $esig($got), expected $esig($want)"
}

# expect_send_revert KEY ERROR_SIG WANT_ARGS SIG [ARGS...]: the write is refused
expect_send_revert() {
    local key=$1 esig=$2 want=$3 output; shift 3
    if output=$("$CAST" send --rpc-url "$ETH_RPC" --private-key "$key" "$REG" "$@" 2>&1); then
        fail "$* was accepted, expected $esig"
    fi
    check_revert "$*" "$output" "$esig" "$want"
}

# expect_call_revert ERROR_SIG WANT_ARGS SIG [ARGS...]: the view reverts
expect_call_revert() {
    local esig=$1 want=$2 output; shift 2
    if output=$("$CAST" call --rpc-url "$ETH_RPC" "$REG" "$@" 2>&1); then
        fail "$* returned '$output', expected $esig"
    fi
    check_revert "$*" "$output" "$esig" "$want"
}

# random_bytes N: N random bytes as 0x-hex
random_bytes() { echo "0x$(head -c "$1" /dev/urandom | od -An -v -tx1 | tr -d ' \n')"; }

run_suite() {
    local mode=$1; shift
    start_anvil "$@"
    echo "--- $mode${*:+ (anvil $*)}"

    # Deploy with the owner key; the code on chain is the committed runtime.
    "$CAST" send --rpc-url "$ETH_RPC" --private-key "$OWNER_KEY" --json --create "$BYTECODE" \
        >"$T/deploy.json" || fail "deploy failed"
    [ "$(jq -r .status "$T/deploy.json")" = "0x1" ] || fail "deploy: status is not 1"
    REG=$(jq -r .contractAddress "$T/deploy.json")
    local deploy_block; deploy_block=$(($(jq -r .blockNumber "$T/deploy.json")))
    [ "$("$CAST" code --rpc-url "$ETH_RPC" "$REG")" = "$DEPLOYED" ] ||
        fail "code at $REG differs from the artifact's deployedBytecode"
    pass "$mode: deployed at $REG in block $deploy_block"

    # Initial state.
    expect_view "$OWNER" 'owner()(address)'
    expect_view true 'isWriter(address)(bool)' "$OWNER"
    expect_view false 'isWriter(address)(bool)' "$OTHER"
    expect_view 1 'stateVersion()(uint64)'
    expect_view "1 $ZERO32 $deploy_block" 'latestBackup()(uint64,bytes32,uint64)'
    expect_view "1 $ZERO32 $deploy_block" 'backupByVersion(uint64)(uint64,bytes32,uint64)' 1
    expect_view '"" 0 ""' 'leader()(string,uint64,string)'
    expect_view '"" "" ""' 'accessInfo()(string,string,string)'
    pass "$mode: initial state (SV 1, genesis record, no leader, no access info)"

    # Access information.
    send_ok "$OWNER_KEY" 'setAccessInfo(string,string,string)' \
        127.0.0.1:9092,127.0.0.1:9093 br2k.infodid.requests redis://127.0.0.1:6379
    expect_view '"127.0.0.1:9092,127.0.0.1:9093" "br2k.infodid.requests" "redis://127.0.0.1:6379"' \
        'accessInfo()(string,string,string)'
    expect_send_revert "$OWNER_KEY" 'EmptyAccessInfo()' '' \
        'setAccessInfo(string,string,string)' 127.0.0.1:9092 '' redis://x
    pass "$mode: access information set and read back; empty topic refused"

    # Leader records with rising epochs.
    send_ok "$OWNER_KEY" 'setLeader(string,uint64,string)' w1 1 10.0.0.1:7001
    send_ok "$OWNER_KEY" 'setLeader(string,uint64,string)' w2 2 10.0.0.2:7001
    send_ok "$OWNER_KEY" 'setLeader(string,uint64,string)' w3 5 10.0.0.3:7001
    expect_view '"w3" 5 "10.0.0.3:7001"' 'leader()(string,uint64,string)'
    local epochs
    epochs=$("$CAST" logs --rpc-url "$ETH_RPC" --from-block 0 --address "$REG" \
        'LeaderChanged(uint64 indexed,string,string)' --json | jq -r '.[].topics[1]' | while read -r t; do
        echo $((t)); done | join)
    [ "$epochs" = "1 2 5" ] || fail "LeaderChanged epochs: got '$epochs', expected '1 2 5'"
    pass "$mode: leader epochs 1, 2, 5 accepted; record is (w3, 5)"

    # Stale epochs revert with StaleEpoch(given, current).
    expect_send_revert "$OWNER_KEY" 'StaleEpoch(uint64,uint64)' '5 5' \
        'setLeader(string,uint64,string)' w4 5 10.0.0.4:7001
    expect_send_revert "$OWNER_KEY" 'StaleEpoch(uint64,uint64)' '3 5' \
        'setLeader(string,uint64,string)' w4 3 10.0.0.4:7001
    expect_send_revert "$OWNER_KEY" 'EmptyWorkerId()' '' 'setLeader(string,uint64,string)' '' 9 x
    # The same stale write mined anyway (gas limit given, no estimate): it
    # reverts on chain and changes nothing.
    "$CAST" send --rpc-url "$ETH_RPC" --private-key "$OWNER_KEY" --json --gas-limit 200000 "$REG" \
        'setLeader(string,uint64,string)' w4 3 10.0.0.4:7001 >"$T/receipt.json" || true
    [ "$(jq -r .status "$T/receipt.json")" = "0x0" ] || fail "mined stale setLeader: status is not 0"
    expect_view '"w3" 5 "10.0.0.3:7001"' 'leader()(string,uint64,string)'
    pass "$mode: epochs 5 and 3 refused with StaleEpoch(5,5), StaleEpoch(3,5); mined stale write reverted"

    # Backup history: only SV + 1.
    local d2 d3 d4 log2 log3 log4 b2 b3 b4
    d2=$("$CAST" keccak snapshot-v2); d3=$("$CAST" keccak snapshot-v3); d4=$("$CAST" keccak snapshot-v4)
    log2=$(random_bytes 1024)
    log3=0x00ff0000000000000000000000000000000000000000000000000000000000000000000000000000ff00
    log4=$(random_bytes 3000)
    expect_send_revert "$OWNER_KEY" 'BadVersion(uint64,uint64)' '3 2' \
        'appendBackupLog(uint64,bytes32,bytes)' 3 "$d3" "$log3"
    expect_send_revert "$OWNER_KEY" 'BadVersion(uint64,uint64)' '1 2' \
        'appendBackupLog(uint64,bytes32,bytes)' 1 "$d2" "$log2"
    expect_send_revert "$OWNER_KEY" 'EmptyDigest()' '' \
        'appendBackupLog(uint64,bytes32,bytes)' 2 "$ZERO32" "$log2"
    expect_send_revert "$OWNER_KEY" 'EmptyLog()' '' 'appendBackupLog(uint64,bytes32,bytes)' 2 "$d2" 0x
    send_ok "$OWNER_KEY" 'appendBackupLog(uint64,bytes32,bytes)' 2 "$d2" "$log2"
    b2=$(($(jq -r .blockNumber "$T/receipt.json")))
    echo "appendBackupLog with a 1 KiB log: gasUsed $(($(jq -r .gasUsed "$T/receipt.json")))"
    expect_send_revert "$OWNER_KEY" 'BadVersion(uint64,uint64)' '2 3' \
        'appendBackupLog(uint64,bytes32,bytes)' 2 "$d2" "$log2"
    send_ok "$OWNER_KEY" 'appendBackupLog(uint64,bytes32,bytes)' 3 "$d3" "$log3"
    b3=$(($(jq -r .blockNumber "$T/receipt.json")))
    expect_view 3 'stateVersion()(uint64)'
    pass "$mode: skipped (3), old (1) and repeated (2) versions refused with BadVersion; 2 and 3 stored"

    # Writers: a non-writer is refused, then allowed after addWriter.
    expect_send_revert "$OTHER_KEY" 'NotWriter(address)' "$OTHER" \
        'appendBackupLog(uint64,bytes32,bytes)' 4 "$d4" "$log4"
    expect_send_revert "$OTHER_KEY" 'NotWriter(address)' "$OTHER" \
        'setLeader(string,uint64,string)' x 6 y
    expect_send_revert "$OTHER_KEY" 'NotWriter(address)' "$OTHER" \
        'setAccessInfo(string,string,string)' a b c
    expect_send_revert "$OTHER_KEY" 'NotOwner(address)' "$OTHER" 'addWriter(address)' "$OTHER"
    expect_send_revert "$OWNER_KEY" 'ZeroAddress()' '' 'addWriter(address)' \
        0x0000000000000000000000000000000000000000
    send_ok "$OWNER_KEY" 'addWriter(address)' "$OTHER"
    expect_view true 'isWriter(address)(bool)' "$OTHER"
    send_ok "$OTHER_KEY" 'appendBackupLog(uint64,bytes32,bytes)' 4 "$d4" "$log4"
    b4=$(($(jq -r .blockNumber "$T/receipt.json")))
    expect_send_revert "$OTHER_KEY" 'NotOwner(address)' "$OTHER" 'removeWriter(address)' "$OWNER"
    send_ok "$OWNER_KEY" 'removeWriter(address)' "$OTHER"
    expect_view false 'isWriter(address)(bool)' "$OTHER"
    expect_send_revert "$OTHER_KEY" 'NotWriter(address)' "$OTHER" \
        'appendBackupLog(uint64,bytes32,bytes)' 5 "$d4" "$log4"
    pass "$mode: non-writer refused (NotWriter, NotOwner); accepted after addWriter; refused after removeWriter"

    # Views of the backup history.
    expect_view 4 'stateVersion()(uint64)'
    expect_view "4 $d4 $b4" 'latestBackup()(uint64,bytes32,uint64)'
    expect_view "2 $d2 $b2" 'backupByVersion(uint64)(uint64,bytes32,uint64)' 2
    expect_view "3 $d3 $b3" 'backupByVersion(uint64)(uint64,bytes32,uint64)' 3
    expect_view "1 $ZERO32 $deploy_block" 'backupByVersion(uint64)(uint64,bytes32,uint64)' 1
    expect_call_revert 'UnknownVersion(uint64)' 0 'backupByVersion(uint64)(uint64,bytes32,uint64)' 0
    expect_call_revert 'UnknownVersion(uint64)' 5 'backupByVersion(uint64)(uint64,bytes32,uint64)' 5
    pass "$mode: latestBackup and backupByVersion return the stored values; 0 and 5 are UnknownVersion"

    # BackupLogged events: versions 2, 3, 4 with the encrypted bytes intact.
    "$CAST" logs --rpc-url "$ETH_RPC" --from-block 0 --address "$REG" \
        'BackupLogged(uint64 indexed,bytes32,bytes)' --json >"$T/logs.json" || fail "cast logs failed"
    [ "$(jq length "$T/logs.json")" = 3 ] || fail "expected 3 BackupLogged events, got $(jq length "$T/logs.json")"
    local i v d l b got
    for i in 0 1 2; do
        v=$((i + 2))
        case $v in
            2) d=$d2 l=$log2 b=$b2 ;;
            3) d=$d3 l=$log3 b=$b3 ;;
            4) d=$d4 l=$log4 b=$b4 ;;
        esac
        [ $(($(jq -r ".[$i].topics[1]" "$T/logs.json"))) = "$v" ] || fail "event $i: version is not $v"
        [ $(($(jq -r ".[$i].blockNumber" "$T/logs.json"))) = "$b" ] || fail "event $i: block is not $b"
        got=$("$CAST" abi-decode 'f()(bytes32,bytes)' "$(jq -r ".[$i].data" "$T/logs.json")" | join)
        [ "$got" = "$(echo "$d $l" | lower)" ] || fail "event for version $v: digest or log bytes differ"
    done
    pass "$mode: cast logs returns BackupLogged for versions 2, 3, 4 with digests and logs intact"

    # The recovery path: eth_getLogs at the block backupByVersion names,
    # filtered by the version topic, over plain JSON-RPC.
    local topic0 topic1 req
    topic0=$("$CAST" keccak 'BackupLogged(uint64,bytes32,bytes)')
    topic1=$("$CAST" to-uint256 3)
    req=$(jq -nc --arg a "$REG" --arg b "$(printf '0x%x' "$b3")" --arg t0 "$topic0" --arg t1 "$topic1" \
        '{jsonrpc:"2.0",id:1,method:"eth_getLogs",params:[{address:$a,fromBlock:$b,toBlock:$b,topics:[$t0,$t1]}]}')
    curl -sf -H 'Content-Type: application/json' -d "$req" "$ETH_RPC" >"$T/getlogs.json" ||
        fail "eth_getLogs failed"
    [ "$(jq '.result | length' "$T/getlogs.json")" = 1 ] || fail "eth_getLogs: expected one log for version 3"
    got=$("$CAST" abi-decode 'f()(bytes32,bytes)' "$(jq -r '.result[0].data' "$T/getlogs.json")" | join)
    [ "$got" = "$(echo "$d3 $log3" | lower)" ] || fail "eth_getLogs: version 3 digest or log differ"
    pass "$mode: eth_getLogs by block and version topic returns the version 3 log intact"

    # Done with this chain.
    kill -TERM "$ANVIL_PID"
    wait "$ANVIL_PID" 2>/dev/null || true
}

run_suite instant
run_suite block-time-1 --block-time 1
pass "registry contract"
