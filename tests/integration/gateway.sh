# gateway.sh - br2k-gateway on a real stack (3 InfoDID workers, the log,
# Redis): curl alone registers and updates a DID (signed with `cast wallet
# sign`); bad input gets the right status and JSON error and appends
# nothing (the log's end offset is checked); a flood from one client gets
# 429; a short wait gets 202 and the result at its Location; two gateways,
# one killed mid-run while a client goes on through the other; the status;
# the metrics hash; /readyz 503 once Redis is down.
source "$(dirname "$0")/lib.sh"
source "$(dirname "$0")/core_helpers.bash"
source "$(dirname "$0")/gateway_helpers.bash"
APP=infodid

start_redis
start_devkafka
for w in w1 w2 w3; do start_worker "$w"; done
wait_for 15 has_leader || fail "no leader"
# the results wait up to 30 s by default here (a slow machine must not turn a
# 200 into a 202); the 202 cases ask for wait_ms=0
start_gateway a --rate-client 1 --burst-client 10 --max-body 4096 --wait-ms 30000
start_gateway b --wait-ms 30000
A=${GWURL[a]}; B=${GWURL[b]}
wait_for 15 ready_is "$A" 200 || fail "gateway a not ready: $(curl -s "$A/readyz")"

# --- curl alone: register, then update, a DID ---
req=$(signed alice 1 register '{"attrs":{"name":"Alice","email":"alice@example.org"}}')
got=$(post "$A" "$req")
[ "$got" = 200 ] || fail "register: HTTP $got: $(cat "$T/body")"
[ "$(jq -r .status "$T/body")" = ok ] || fail "register rejected: $(cat "$T/body")"
did=$(jq -r .data.did "$T/body")
[ "$did" = "did:br2k:0xf39fd6e51aad88f6f4ce6ab8827279cfffb92266" ] || fail "did $did"
req2=$(signed alice 2 update "{\"did\":\"$did\",\"attrs\":{\"name\":\"Alice B\"}}")
got=$(post "$B" "$req2")
[ "$got" = 200 ] && [ "$(jq -r .status "$T/body")" = ok ] ||
    fail "update: HTTP $got: $(cat "$T/body")"
[ "$(jq -r .data.attrs "$T/body")" = 2 ] || fail "update result $(cat "$T/body")"
got=$(curl -s -o "$T/body" -w '%{http_code}' "$A/v1/results/alice:2")
[ "$got" = 200 ] && [ "$(jq -r .op "$T/body")" = update ] || fail "GET result: $got"
got=$(curl -s -o "$T/body" -w '%{http_code}' "$A/v1/results/alice:99")
expect_error 404 no_result "an unknown result"
pass "curl + cast: $did registered and updated through the gateways"

# --- a short wait: 202 and the result at its Location ---
req3=$(signed alice 3 update "{\"did\":\"$did\",\"attrs\":{\"city\":\"Oslo\"}}")
got=$(curl -s -D "$T/headers" -o "$T/body" -w '%{http_code}' -H 'Content-Type: application/json' \
    --data-binary "$req3" "$A/v1/requests?wait_ms=0")
[ "$got" = 202 ] || fail "wait_ms=0: HTTP $got: $(cat "$T/body")"
loc=$(grep -i '^location:' "$T/headers" | tr -d '\r' | cut -d' ' -f2)
[ "$loc" = /v1/results/alice:3 ] || fail "Location '$loc'"
result_there() { curl -sf "$A$loc" | jq -e '.status == "ok"'; }
wait_for 10 result_there || fail "no result at $loc"
pass "wait_ms=0: 202 with Location $loc, then the result there"

# --- bad input: the right status and error, nothing appended ---
end0=$(log_end)
got=$(post "$A" '{"v":1,"id":')
expect_error 400 malformed_json "malformed JSON"
got=$(post "$A" "$(head -c 5000 /dev/zero | tr '\0' 'x')")
expect_error 413 too_large "an oversize body"
got=$(curl -s -o "$T/body" -w '%{http_code}' -H 'Transfer-Encoding: chunked' \
    -H 'Content-Type: application/json' --data-binary "$(head -c 5000 /dev/zero | tr '\0' 'x')" \
    "$A/v1/requests")
expect_error 413 too_large "an oversize chunked body"
got=$(curl -s -o "$T/body" -w '%{http_code}' -H 'Content-Type: text/plain' \
    --data-binary "$req" "$A/v1/requests")
expect_error 415 unsupported_media_type "a wrong content type"
got=$(curl -s -o "$T/body" -w '%{http_code}' "$A/v1/nothing")
expect_error 404 not_found "an unknown route"
got=$(curl -s -o "$T/body" -w '%{http_code}' "$A/v1/requests")
expect_error 405 method_not_allowed "GET /v1/requests"
got=$(post "$A" "$(jq -c '.sig = "0x" + ("00" * 64) + "1b"' <<<"$req")")
expect_error 422 bad_signature "a signature that recovers nothing"
got=$(post "$A" "$(jq -c '.signer = "0x70997970c51812dc3a010c7d01b50e0d17dc79c8"' <<<"$req")")
expect_error 422 signer_mismatch "a signature that recovers to another address than its signer"
got=$(post "$A" "$(jq -c '.extra = 1' <<<"$req")")
expect_error 400 unknown_field "an unknown field"
got=$(post "$A" "$req" "-o" "$T/body" --url-query wait_ms=soon)
expect_error 400 bad_wait "a bad wait"
[ "$(log_end)" = "$end0" ] || fail "rejected requests were appended: log end $end0 -> $(log_end)"
pass "bad input: 400/413/415/404/405/422, JSON errors, log end stays $end0"

# --- a flood from one client: 429 + Retry-After; only the admitted appended ---
# 30 different requests (a repeated request id is not appended again on the
# Redis Streams log), signed before the flood starts
for i in $(seq 30); do signed flood "$i" register "{\"did\":\"did:example:flood$i\"}"; done >"$T/flood.jsonl"
n200=0 n429=0
while read -r fl; do
    got=$(post "$A" "$fl" -D "$T/fh" "--url-query" wait_ms=0)
    case $got in
    202 | 200) n200=$((n200 + 1)) ;;
    429) n429=$((n429 + 1))
         grep -qi '^retry-after: [1-9]' "$T/fh" || fail "429 without Retry-After"
         [ "$(jq -r .error.code "$T/body")" = rate_limited ] || fail "429: $(cat "$T/body")" ;;
    *) fail "flood: HTTP $got: $(cat "$T/body")" ;;
    esac
done <"$T/flood.jsonl"
[ "$n429" -gt 0 ] && [ "$n200" -ge 10 ] || fail "flood: $n200 admitted, $n429 refused"
want=$((end0 + n200))
log_at() { [ "$(log_end)" = "$1" ]; }
wait_for 10 log_at "$want" || fail "flood: log end $(log_end), expected $want ($n200 admitted)"
got=$(post "$A" "$(signed bob 1 register '{}')")
[ "$got" = 200 ] || fail "after the flood: HTTP $got"
pass "flood: $n200 admitted and appended, $n429 refused with 429; others still served"

# --- status, metrics ---
st=$(curl -sf "$A/v1/status")
curl -sf "$B/v1/status" >/dev/null || fail "status through b" # b's exit code is checked below
[ "$(jq -r .leader.id <<<"$st")" = "$(leader_id)" ] || fail "status leader: $st"
[ "$(jq '.members | length' <<<"$st")" = 3 ] || fail "status members: $st"
[ "$(jq -c '[.gateways[] | .id + " " + .url]' <<<"$st")" = "[\"a $A\",\"b $B\"]" ] ||
    fail "status gateways: $(jq -c .gateways <<<"$st")"
"$BIN/br2k" --redis "$REDIS" --service "$SVC" status >"$T/status.txt"
grep -qE "^  a +$A +1 " "$T/status.txt" || fail "br2k status: $(cat "$T/status.txt")"
metrics_ok() {
    [ "$(rc_ HGET "br2k:{$SVC}:gateway-a" rejected_too_large)" = 2 ] &&
        [ "$(rc_ HGET "br2k:{$SVC}:gateway-a" rejected_rate_limited_client)" = "$n429" ]
}
wait_for 5 metrics_ok || fail "metrics: $(rc_ HGETALL "br2k:{$SVC}:gateway-a" | tr '\n' ' ')"
pass "status and metrics (p99 $(rc_ HGET "br2k:{$SVC}:gateway-a" p99_ms) ms)"

# --- two gateways, one killed mid-run: the client goes on through the other ---
for s in $(seq 10 29); do signed carol "$s" register "{\"did\":\"did:example:carol$s\"}"; done \
    >"$T/carol.jsonl"
s=10 failovers=0
while read -r r; do
    if [ "$s" = 20 ]; then kill -KILL "${GWPID[a]}"; wait "${GWPID[a]}" 2>/dev/null || true; fi
    got=$(post "$A" "$r" || true)
    if [ "$got" != 200 ]; then
        failovers=$((failovers + 1))
        got=$(post "$B" "$r")
    fi
    [ "$got" = 200 ] && [ "$(jq -r .status "$T/body")" = ok ] || fail "carol:$s: $got $(cat "$T/body")"
    s=$((s + 1))
done <"$T/carol.jsonl"
[ "$failovers" = 10 ] || fail "$failovers requests went to b"
for s in $(seq 10 29); do
    [ "$(result_get "carol:$s" | jq -r .repeat)" = false ] || fail "carol:$s"
done
wait_for 30 at "$(rc_ GET "br2k:{$SVC}:SSI")" w1 w2 w3 || { show w1 w2 w3; fail "replicas differ"; }
pass "gateway a killed after 10 requests: 10 more through b, each applied once, replicas equal"

# --- concurrent waits: past --max-waits 503 busy + Retry-After, not appended ---
start_gateway c --max-waits 1
C=${GWURL[c]}
d1=$(signed dave 1 register '{}'); d2=$(signed dave 2 register '{}')
end1=$(log_end)
# no results while the workers are stopped (a deliberate fault, resumed below)
for w in w1 w2 w3; do kill -STOP "${WPID[$w]}"; done
curl -s -o "$T/wait1.body" -w '%{http_code}' -H 'Content-Type: application/json' \
    --data-binary "$d1" "$C/v1/requests?wait_ms=30000" >"$T/wait1.code" &
waiter=$!
one_waiting() { [ "$(rc_ HGET "br2k:{$SVC}:gateway-c" inflight)" = 1 ]; }
wait_for 10 one_waiting || fail "the first request is not waiting at gateway c"
got=$(post "$C" "$d2" -D "$T/bh")
expect_error 503 busy "a second wait past --max-waits 1"
grep -qi '^retry-after: 1' "$T/bh" || fail "503 busy without Retry-After"
for w in w1 w2 w3; do kill -CONT "${WPID[$w]}"; done
wait "$waiter" || fail "the waiting curl failed"
[ "$(cat "$T/wait1.code")" = 200 ] && [ "$(jq -r .id "$T/wait1.body")" = dave:1 ] ||
    fail "the waiting request: $(cat "$T/wait1.code") $(cat "$T/wait1.body")"
[ "$(log_end)" = $((end1 + 1)) ] || fail "log end $(log_end), expected $((end1 + 1)): the refused one was appended"
[ -z "$(result_get dave:2)" ] || fail "dave:2 has a result"
pass "concurrent waits: the second got 503 busy with Retry-After and was not appended; the first got its result"

# --- /readyz goes 503 once Redis is down ---
kill -TERM "$REDIS_PID"
# 503 may first say "no leader" (the lease lapses while Redis shuts down):
# wait for the answer that names Redis
redis_down() { ready_is "$B" 503 && [ "$(curl -s "$B/readyz" | jq -r .redis)" = false ]; }
wait_for 10 redis_down || fail "readyz: $(curl -s "$B/readyz")"
curl -sf "$B/healthz" >/dev/null || fail "healthz failed with Redis down"
pass "readyz 503 with Redis down, healthz still 200"

# --- SIGTERM: exit 0 (and no leak under ASan) ---
rc=0
kill -TERM "${GWPID[b]}"; wait "${GWPID[b]}" || rc=$?
[ "$rc" = 0 ] || fail "gateway b exited $rc on SIGTERM"
pass "gateway b stopped cleanly"
