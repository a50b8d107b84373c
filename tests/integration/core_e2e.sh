#!/usr/bin/env bash
# core_e2e.sh - the replicated core end to end: 3 workers on real
# redis-server and br2k-devkafka, clients through `br2k submit`.
#   - 5 clients x 200 signed requests: every one succeeds; `br2k verify`
#     says the replicas are consistent; `br2k status` lists 3 members;
#   - a request with a bad signature gets a rejected result with its reason;
#   - a repeated request id (even with another payload) returns the first
#     result, and changes nothing.
source "$(dirname "$0")/lib.sh"

[ -x "$BIN/br2k-worker" ] || fail "no br2k-worker in $BIN"
start_redis
start_devkafka
export BR2K_KAFKA=$KAFKA BR2K_REDIS=$REDIS BR2K_SERVICE=default

for w in w1 w2 w3; do
    mkdir -p "$T/$w"
    "$BIN/br2k-worker" --id "$w" --state-dir "$T/$w" >"$T/$w.out" 2>"$T/$w.log" &
    PIDS+=($!)
done
leader_ready() { "$BIN/br2k" status --json | jq -e '.leader != null and (.members | length) == 3' >/dev/null; }
wait_for 30 leader_ready || fail "no leader with 3 members: $("$BIN/br2k" status 2>&1)"
pass "3 workers up, leader $("$BIN/br2k" status --json | jq -r .leader.id)"

# 1. 5 clients x 200 signed requests
"$BIN/br2k" submit --clients 5 --count 200 --json --prefix e2e --wait-ms 60000 >"$T/load.json" ||
    fail "load generator: $(cat "$T/load.json")"
jq -e '.sent == 1000 and .succeeded == 1000 and .rejected == 0 and .failed == 0' \
    "$T/load.json" >/dev/null || fail "load: $(cat "$T/load.json")"
pass "5 x 200 requests succeeded: $(jq -c '{elapsed_s, throughput_rps, latency_ms}' "$T/load.json")"

# verify compares the digests the workers last published (every 500 ms,
# and at least every 5 s while busy): when the load ends faster than that,
# all may still show the same older LPI, so ask again until it is the end
# (as core_badinput.sh does)
verify_done() {
    "$BIN/br2k" verify --json --timeout-ms 20000 >"$T/verify.json" &&
        jq -e '.consistent == true and (.replicas | length) == 3 and .lpi >= 999' \
            "$T/verify.json" >/dev/null
}
wait_for 60 verify_done || fail "verify: $(cat "$T/verify.json")"
pass "replicas consistent at LPI $(jq .lpi "$T/verify.json")"

"$BIN/br2k" status --json >"$T/status.json"
jq -e '(.members | map(select(.alive)) | length) == 3 and .ssi >= 999' "$T/status.json" \
    >/dev/null || fail "status: $(cat "$T/status.json")"
"$BIN/br2k" status
pass "status lists 3 live members"

# 2. bad signatures. A signature that recovers no address (v = 29) is
# bad_signature; a signed request whose attributes were changed afterwards
# recovers another address than the signer it names: signer_mismatch.
KEY=0x59c6995e998f97a5a0044966f0945389dc9e86dae88c7a8412f4603b6b78690d
ADDR=0x70997970c51812dc3a010c7d01b50e0d17dc79c8 # of KEY (anvil's second)
submit_file() { # IN OUT: submit the request in file IN, result to OUT; sets rc
    set +e
    "$BIN/br2k" submit --wait-ms 20000 <"$1" >"$2"
    rc=$?
    set -e
}
req=$(BR2K_CLIENT_KEY=$KEY "$BIN/br2k" submit --dry-run --op register \
    --payload "{\"did\":\"did:br2k:$ADDR:m\",\"attrs\":{\"name\":\"Mallory\"}}" --client mallory --seq 1)
echo "$req" | jq -c '.sig = (.sig[0:130] + "1d")' >"$T/bad1.req"
submit_file "$T/bad1.req" "$T/bad1.json"
[ "$rc" -eq 1 ] || fail "bad v: exit $rc, expected 1: $(cat "$T/bad1.json")"
jq -e '.status == "rejected" and .reason.code == "bad_signature"' "$T/bad1.json" >/dev/null ||
    fail "bad v: $(cat "$T/bad1.json")"
pass "signature recovering nothing rejected: $(jq -c .reason "$T/bad1.json")"
echo "$req" | jq -c '.id.seq = 2 | .payload.attrs.name = "Eve"' >"$T/bad2.req"
submit_file "$T/bad2.req" "$T/bad2.json"
[ "$rc" -eq 1 ] || fail "tampered: exit $rc, expected 1: $(cat "$T/bad2.json")"
jq -e '.status == "rejected" and .reason.code == "signer_mismatch"' "$T/bad2.json" >/dev/null ||
    fail "tampered: $(cat "$T/bad2.json")"
pass "tampered request rejected: $(jq -c .reason "$T/bad2.json")"

# 3. a repeated request id: the same signed bytes again (a retry) returns the
# first result (marked as a repeat where the log holds a second copy: Kafka;
# Redis Streams does not append the same request again); the same id with
# other content is told so (duplicate_id) and applies nothing
req=$(BR2K_CLIENT_KEY=$KEY "$BIN/br2k" submit --dry-run --op register \
    --payload '{"attrs":{"name":"Carol"}}' --client carol --seq 5)
first=$(echo "$req" | "$BIN/br2k" submit --wait-ms 20000) || fail "first submit: $first"
echo "$first" | jq -e '.status == "ok" and .repeat == false' >/dev/null || fail "first: $first"
again=$(echo "$req" | "$BIN/br2k" submit --wait-ms 20000) || fail "retry: $again"
rc=0
other=$(BR2K_CLIENT_KEY=$KEY "$BIN/br2k" submit --op register \
    --payload '{"attrs":{"name":"Someone else"}}' --client carol --seq 5 --wait-ms 20000) || rc=$?
[ "$(echo "$again" | jq -c 'del(.repeat, .repeat_offset)')" = "$(echo "$first" | jq -c 'del(.repeat)')" ] ||
    fail "retry gave another result: $first vs $again"
[ "$LOG_BACKEND" = redis ] || echo "$again" | jq -e '.repeat == true and .repeat_offset > .offset' >/dev/null ||
    fail "the retry's result is not marked as a repeat: $again"
[ "$rc" = 1 ] && echo "$other" | jq -e '.status == "rejected" and .reason.code == "duplicate_id"' >/dev/null ||
    fail "same id with other content: exit $rc, $other"
pass "repeated request id returns the first result (offset $(echo "$first" | jq .offset)); other content: duplicate_id"

"$BIN/br2k" verify --json --timeout-ms 20000 >"$T/verify2.json" ||
    fail "verify after bad input: $(cat "$T/verify2.json")"
pass "replicas still consistent at LPI $(jq .lpi "$T/verify2.json")"
