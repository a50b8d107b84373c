# gateway_registry.sh - the registry knows the gateways: two br2k-gateways
# advertise their URLs in Redis, br2k-registryd records them on the chain
# (setGateways) and fills the leader record's endpoint with them; a client
# that knows only the contract address and the RPC URL finds a gateway
# (`br2k registry gateways`, bk_reg_discover_gateways) and registers a DID
# through it with curl; one gateway stops and the registry's list follows;
# `br2k registry set-gateways` sets the list by hand (a writer's key) and a
# stranger's key is refused.
source "$(dirname "$0")/lib.sh"
source "$(dirname "$0")/core_helpers.bash"
source "$(dirname "$0")/gateway_helpers.bash"
APP=infodid
OWNER_KEY=0xac0974bec39a17e36ba4a6b4d238ff944bacb478cbed5efcae784d7bf4f2ff80
WRITER_KEY=0x59c6995e998f97a5a0044966f0945389dc9e86dae88c7a8412f4603b6b78690d
STRANGER_KEY=0x5de4111afa1a4b94908f83103eb1f1706367c2e68ca870fc3fb9a804cdab365a
echo "$OWNER_KEY" >"$T/owner.key"; echo "$WRITER_KEY" >"$T/writer.key"
echo "$STRANGER_KEY" >"$T/stranger.key"; chmod 600 "$T"/*.key

start_redis
start_devkafka
start_anvil
REG=$("$BIN/br2k" --eth-rpc "$ETH_RPC" registry deploy --key-file "$T/owner.key" \
    --writer-key-file "$T/writer.key" 2>"$T/deploy.log") || fail "deploy: $(cat "$T/deploy.log")"
"$BIN/br2k-registryd" --registry "$REG" --eth-rpc "$ETH_RPC" --redis "$REDIS" --service "$SVC" \
    --key-file "$T/writer.key" --poll-ms 20 >>"$T/registryd.log" 2>&1 &
PIDS+=($!)
gws() { "$BIN/br2k" --eth-rpc "$ETH_RPC" registry gateways --registry "$REG" 2>/dev/null | paste -sd, -; }
[ -z "$(gws)" ] || fail "a new registry lists gateways: $(gws)"
"$BIN/br2k" --eth-rpc "$ETH_RPC" registry gateways --registry "$REG" >/dev/null 2>"$T/err" &&
    fail "no gateways: exit 0"
grep -q "lists no gateway" "$T/err" || fail "no gateways: $(cat "$T/err")"

# the gateways come up before the workers: the first leader record names them
start_gateway a
start_gateway b
want=$(printf '%s\n' "${GWURL[a]}" "${GWURL[b]}" | sort | paste -sd, -)
gws_are() { [ "$(gws)" = "$1" ]; }
wait_for 20 gws_are "$want" || fail "registry gateways '$(gws)', expected '$want'"
pass "registryd recorded the advertised gateways: $want"
for w in w1 w2 w3; do start_worker "$w"; done
wait_for 15 has_leader || fail "no leader"
show_json() { "$BIN/br2k" --eth-rpc "$ETH_RPC" registry show --registry "$REG" --json; }
leader_recorded() { [ "$(show_json | jq -r .leader.worker)" = "$(leader_id)" ]; }
wait_for 20 leader_recorded || fail "leader record: $(show_json)"
[ "$(show_json | jq -r .leader.endpoint)" = "$want" ] || fail "leader endpoint: $(show_json | jq -c .leader)"
pass "the leader record of $(leader_id) has endpoint $want"

# a client that knows only the contract and the RPC URL
url=$("$BIN/br2k" --eth-rpc "$ETH_RPC" registry gateways --registry "$REG" --json | jq -r '.[0]')
wait_for 15 ready_is "$url" 200 || fail "gateway $url not ready"
got=$(post "$url" "$(signed found 1 register '{"attrs":{"name":"Found"}}')")
[ "$got" = 200 ] && [ "$(jq -r .status "$T/body")" = ok ] || fail "through $url: $got $(cat "$T/body")"
pass "found $url from the registry alone and registered $(jq -r .data.did "$T/body") through it"

# gateway a stops (its hash is deleted): the registry lists b only
kill -TERM "${GWPID[a]}"; wait "${GWPID[a]}" || fail "gateway a exited non-zero"
wait_for 20 gws_are "${GWURL[b]}" || fail "after a stopped: '$(gws)'"
pass "gateway a stopped: the registry lists ${GWURL[b]} only"

# by hand: a writer's key sets them, a stranger's is refused
"$BIN/br2k" --eth-rpc "$ETH_RPC" registry set-gateways --registry "$REG" \
    --key-file "$T/stranger.key" --urls http://x.example:1 2>"$T/err" && fail "stranger accepted"
grep -q NotWriter "$T/err" || fail "stranger: $(cat "$T/err")"
"$BIN/br2k" --eth-rpc "$ETH_RPC" registry set-gateways --registry "$REG" \
    --key-file "$T/owner.key" --urls "https://gw1.example.org,https://gw2.example.org" 2>"$T/err" ||
    fail "set-gateways: $(cat "$T/err")"
[ "$("$BIN/br2k" --eth-rpc "$ETH_RPC" registry gateways --registry "$REG" --json)" = \
    '["https://gw1.example.org","https://gw2.example.org"]' ] || fail "after set-gateways: $(gws)"
"$BIN/br2k" --eth-rpc "$ETH_RPC" registry set-gateways --registry "$REG" \
    --key-file "$T/owner.key" --urls "bad url" 2>"$T/err" && fail "a URL with a space accepted"
grep -q "no spaces" "$T/err" || fail "bad url: $(cat "$T/err")"
pass "set-gateways by a writer; a stranger refused (NotWriter); a bad list refused"
