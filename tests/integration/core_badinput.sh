# core_badinput.sh - the replicated core under load and bad input, with
# 3 InfoDID workers on real redis-server and br2k-devkafka:
#   - 5 clients x 2,000 signed registrations: every result received, every
#     replica at the same LPI with the same digest, and the leader's
#     external index (active DIDs, DID -> controller) matches them;
#   - malformed JSON, a wrong schema version, an unknown operation, a bad
#     signature, an oversize request and a repeated request id each get a
#     rejected result naming the reason; the service goes on and the
#     replicas stay identical.
source "$(dirname "$0")/lib.sh"
start_redis
start_devkafka
export BR2K_KAFKA=$KAFKA BR2K_REDIS=$REDIS BR2K_SERVICE=default
for w in w1 w2 w3; do
    "$BIN/br2k-worker" --id "$w" --state-dir "$T/$w" >"$T/$w.log" 2>&1 &
    PIDS+=($!)
done
# verify_at LAST OUT: br2k verify says consistent with every replica at LAST
verify_at() {
    "$BIN/br2k" verify --json --timeout-ms 10000 >"$2" &&
        jq -e --argjson last "$1" '.consistent and .lpi == $last and (.replicas | length) == 3' "$2" >/dev/null
}
ready() { "$BIN/br2k" status --json | jq -e '.leader != null and (.members | length) == 3' >/dev/null; }
wait_for 30 ready || fail "no leader with 3 members"

# 1. load: 5 x 2,000 registrations
N=${CORE_LOAD_COUNT:-2000}
"$BIN/br2k" submit --clients 5 --count "$N" --json --prefix load --wait-ms 120000 >"$T/load.json" ||
    fail "load generator: $(cat "$T/load.json")"
jq -e --argjson n $((5 * N)) '.sent == $n and .succeeded == $n and .failed == 0' "$T/load.json" \
    >/dev/null || fail "load: $(cat "$T/load.json")"
wait_for 60 verify_at $((5 * N - 1)) "$T/verify1.json" || fail "verify: $(cat "$T/verify1.json")"
active=$(redis-cli -p "$REDIS_PORT" GET 'br2k:{default}:ext:active')
dids=$(redis-cli -p "$REDIS_PORT" HLEN 'br2k:{default}:ext:did')
[ "$active" = $((5 * N)) ] && [ "$dids" = $((5 * N)) ] ||
    fail "external index: active $active, dids $dids, want $((5 * N))"
pass "5 x $N registrations: all results, replicas consistent at LPI $((5 * N - 1)), external index $active"

# 2. bad input, each rejected with its reason
KEY=0x59c6995e998f97a5a0044966f0945389dc9e86dae88c7a8412f4603b6b78690d
expect_rejected() { # NAME CODE FILE-OR-- ARGS...: submit, assert rejected with CODE
    local name=$1 code=$2 rc=0; shift 2
    "$BIN/br2k" submit --wait-ms 20000 "$@" >"$T/$name.json" || rc=$?
    [ "$rc" -eq 1 ] || fail "$name: exit $rc, expected 1 (rejected): $(cat "$T/$name.json")"
    jq -e --arg c "$code" '.status == "rejected" and .reason.code == $c and (.reason.text | length) > 0' \
        "$T/$name.json" >/dev/null || fail "$name: $(cat "$T/$name.json")"
    pass "$name rejected: $(jq -c .reason "$T/$name.json")"
}
echo '{"v":1,"id":{"client":"bad","seq":1},' | expect_rejected malformed malformed_json --client bad --seq 1
echo '{"v":7,"id":{"client":"bad","seq":2},"op":"register","payload":{},"ts":1,"sig":"0x00"}' |
    expect_rejected wrong-schema bad_version --client bad --seq 2
BR2K_CLIENT_KEY=$KEY expect_rejected unknown-op unknown_op --op frobnicate --client bad --seq 3
BR2K_CLIENT_KEY=$KEY "$BIN/br2k" submit --dry-run --op register --payload '{"attrs":{"name":"Mallory"}}' \
    --client bad --seq 4 | jq -c '.sig = (.sig[0:130] + "1d")' >"$T/badsig.req"
expect_rejected bad-signature bad_signature <"$T/badsig.req"
big=$(head -c 70000 /dev/zero | tr '\0' 'x')
BR2K_CLIENT_KEY=$KEY expect_rejected oversize too_large --op register --client bad --seq 5 \
    --payload "{\"attrs\":{\"name\":\"$big\"}}"

# a repeated request id: the first result again, applied once. On Kafka the
# record is appended twice; the second copy's result is the first marked as
# a repeat, with the first offset and the repeat's own (result:<id>@<off>).
# The Redis Streams log does not append the same request (same id, same
# bytes) again: the client gets the first result itself.
req=$(BR2K_CLIENT_KEY=$KEY "$BIN/br2k" submit --dry-run --op register --payload '{"attrs":{"name":"Carol"}}' \
    --client carol --seq 1)
first=$(echo "$req" | "$BIN/br2k" submit --wait-ms 20000) || fail "first: $first"
again=$(echo "$req" | "$BIN/br2k" submit --wait-ms 20000) || fail "again: $again"
echo "$first" | jq -e '.status == "ok" and .repeat == false' >/dev/null || fail "first: $first"
last=$(($(log_offsets br2k.default.requests | cut -d' ' -f2) - 1))
if [ "$LOG_BACKEND" = redis ]; then
    [ "$first" = "$again" ] || fail "a repeated request gave another result: $first / $again"
    n=$(log_dump br2k.default.requests | grep -c ' br2k-request-id=carol:1,') || true
    [ "$n" = 1 ] || fail "the Redis Streams log holds $n records of carol:1, want 1"
    pass "repeated request returns the first result (the log holds it once, last offset $last)"
else
    echo "$again" | jq -e --argjson f "$(echo "$first" | jq .offset)" --argjson l "$last" \
        '.status == "ok" and .repeat == true and .offset == $f and .repeat_offset == $l' >/dev/null ||
        fail "the repeat's result: $again (first $first, repeat at $last)"
    [ "$(echo "$again" | jq -c 'del(.repeat, .repeat_offset)')" = "$(echo "$first" | jq -c 'del(.repeat)')" ] ||
        fail "the repeat's result is not the first one: $again / $first"
    pass "repeated request id: the first result marked as a repeat (offset $(echo "$first" | jq .offset), repeat_offset $last)"
fi
# the same id with another request: told so (duplicate_id), not applied
BR2K_CLIENT_KEY=$KEY expect_rejected same-id-other-request duplicate_id --op register \
    --payload '{"attrs":{"name":"Not Carol"}}' --client carol --seq 1
# squatting: a record that cannot be parsed, naming someone else's request id
# in its header, before that client's real request: the squatter gets its
# rejection, the real request its own result (not the squatter's)
echo '{"v":1,"id":{"client":"victim","seq":1},' | expect_rejected squatter malformed_json --client victim --seq 1
BR2K_CLIENT_KEY=$KEY "$BIN/br2k" submit --op register --payload '{"did":"did:example:victim","attrs":{"name":"Victim"}}' \
    --client victim --seq 1 --wait-ms 20000 >"$T/victim.json" || fail "victim: $(cat "$T/victim.json")"
jq -e '.status == "ok" and .op == "register"' "$T/victim.json" >/dev/null || fail "victim: $(cat "$T/victim.json")"
[ "$(result_get victim:1 | jq -c .)" = "$(jq -c . "$T/victim.json")" ] ||
    fail "the result of victim:1 is $(result_get victim:1)"
pass "an unparseable record naming another client's request id does not take its result"
last=$(($(log_offsets br2k.default.requests | cut -d' ' -f2) - 1))

# 3. the service goes on, and the replicas stay identical
BR2K_CLIENT_KEY=$KEY "$BIN/br2k" submit --op register --payload '{"did":"did:example:dave","attrs":{"name":"Dave"}}' \
    --client dave --seq 1 --wait-ms 20000 >"$T/after.json" || fail "after bad input: $(cat "$T/after.json")"
wait_for 30 verify_at $((last + 1)) "$T/verify2.json" || fail "verify after bad input: $(cat "$T/verify2.json")"
[ "$(redis-cli -p "$REDIS_PORT" GET 'br2k:{default}:ext:active')" = $((5 * N + 3)) ] ||
    fail "external index after: $(redis-cli -p "$REDIS_PORT" GET 'br2k:{default}:ext:active')"
pass "service continues; replicas consistent at LPI $((last + 1))"
