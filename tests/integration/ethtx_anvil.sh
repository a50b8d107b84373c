#!/usr/bin/env bash
# ethtx_anvil.sh - transactions signed by our code (common/chain/ethtx.c) go
# through our JSON-RPC client (common/chain/jsonrpc.c) to anvil with instant
# mining; the first RPC URL is dead, so every call fails over.
source "$(dirname "$0")/lib.sh"

start_anvil
DEAD=http://127.0.0.1:$(free_port)
SENDER=0xf39Fd6e51aad88F6F4ce6aB8827279cffFb92266
RECIPIENT=0x70997970C51812dc3A010C7d01b50e0d17dc79C8
before=$("$CAST" balance --rpc-url "$ETH_RPC" "$RECIPIENT")

export ITEST_ETH_KEY=ac0974bec39a17e36ba4a6b4d238ff944bacb478cbed5efcae784d7bf4f2ff80
"$BUILD/tests/itest_ethtx" "$DEAD,$ETH_RPC" >"$T/itest.out" 2>"$T/itest.log" ||
    { cat "$T/itest.out"; fail "itest_ethtx failed"; }
cat "$T/itest.out"
grep -q "via $ETH_RPC" "$T/itest.out" || fail "the dead first URL was not skipped"
grep -q "Couldn't connect" "$T/itest.log" || fail "no transport error logged for the dead URL"

after=$("$CAST" balance --rpc-url "$ETH_RPC" "$RECIPIENT")
[ "$(echo "$after - $before" | bc)" = "1500000000000000000" ] ||
    fail "recipient balance went from $before to $after"
pass "recipient got 1.5 ether"
[ "$("$CAST" nonce --rpc-url "$ETH_RPC" "$SENDER")" = "2" ] || fail "sender nonce is not 2"
pass "sender nonce is 2 (the refused duplicate was not mined)"

contract=$(awk '/^contract /{print $2}' "$T/itest.out")
[ "$("$CAST" code --rpc-url "$ETH_RPC" "$contract")" = "0x602a60005260206000f3" ] ||
    fail "code at $contract"
[ "$("$CAST" compute-address --nonce 1 "$SENDER" | awk '{print $3}')" = "$contract" ] ||
    fail "contract address is not sender's nonce-1 address"
pass "contract deployed at $contract"

# live: the raw bytes of our transfer, as anvil stored them, decode with
# `cast decode-transaction` to our fields and our sender
hash=$("$CAST" block 1 --json --rpc-url "$ETH_RPC" | jq -r '.transactions[0]')
raw=$("$CAST" rpc --rpc-url "$ETH_RPC" eth_getRawTransactionByHash "$hash" | jq -r .)
"$CAST" decode-transaction "$raw" | jq -r 'if type == "string" then fromjson else . end' >"$T/decoded.json"
jq -e --arg s "${SENDER,,}" --arg r "${RECIPIENT,,}" \
    '.signer == $s and .to == $r and .type == "0x2" and .chainId == "0x7a69" and .nonce == "0x0"
     and .value == "0x14d1120d7b160000"' "$T/decoded.json" >/dev/null ||
    fail "cast decodes our transaction differently: $(cat "$T/decoded.json")"
pass "cast decode-transaction of our signed transfer: signer $SENDER, to $RECIPIENT, 1.5 ether"
