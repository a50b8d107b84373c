# discover.sh - a client finds the service from the registry contract alone
# (its address and an Ethereum RPC URL, the first one dead), as the paper's
# clients do: submit, status and verify work with no Kafka or Redis setting.
source "$(dirname "$0")/lib.sh"
STACK=$SRC/deploy/local/stack
export BR2K_BUILD_DIR=$BUILD
trap 'rc=$?; set +e; "$STACK" down --dir "$T/s" >/dev/null 2>&1 || true; (exit $rc); cleanup' EXIT
"$STACK" up --dir "$T/s" --service idreg >"$T/up.log"
REG=$(jq -r .registry "$T/s/stack.json")
RPC="http://127.0.0.1:$(free_port),$(jq -r .eth_rpc "$T/s/stack.json")"
unset BR2K_KAFKA BR2K_REDIS BR2K_SERVICE
KEY=0x59c6995e998f97a5a0044966f0945389dc9e86dae88c7a8412f4603b6b78690d
out=$(BR2K_CLIENT_KEY=$KEY "$BIN/br2k" --registry "$REG" --eth-rpc "$RPC" submit --op register \
    --payload '{"attrs":{"name":"Alice"}}' --client alice --seq 1 --wait-ms 30000) ||
    fail "submit through the registry: $out"
echo "$out" | jq -e '.status == "ok" and .id == "alice:1"' >/dev/null || fail "result: $out"
pass "submit found the service through registry $REG: $(echo "$out" | jq -c '{id, offset, status}')"
BR2K_REGISTRY=$REG BR2K_ETH_RPC=$RPC "$BIN/br2k" status --json >"$T/status.json" ||
    fail "status through the registry"
jq -e '.service == "idreg" and .ssi == 0' "$T/status.json" >/dev/null || fail "status: $(cat "$T/status.json")"
pass "status through the registry (BR2K_REGISTRY, BR2K_ETH_RPC): service idreg, SSI 0"
# a wrong address is a one-line error naming what failed
rc=0; "$BIN/br2k" --registry 0x1234 --eth-rpc "$RPC" status 2>"$T/err.txt" || rc=$?
[ "$rc" -eq 2 ] && [ "$(wc -l <"$T/err.txt")" -eq 1 ] && grep -q "invalid registry address" "$T/err.txt" ||
    fail "bad registry address: rc $rc, $(cat "$T/err.txt")"
pass "a bad registry address: $(cat "$T/err.txt")"
