# producer_retry.sh - the client library retries as the paper's clients do
# (br2k_settings.attempt_ms; br2k submit --attempt-ms): on the local stack,
# found through the registry alone, a signed request is submitted while
# every worker is paused (SIGSTOP, 4 s: no result can come), with attempts
# of 1 s. The client sends the same request id and bytes again after each
# attempt, reading the registry again after each failure; when the workers
# resume, the request is applied once (the second copy on Kafka is a
# repeat: its result is the first, marked "repeat"), every replica agrees,
# and InfoDID counts one DID more.
source "$(dirname "$0")/lib.sh"
STACK=$SRC/deploy/local/stack
export BR2K_BUILD_DIR=$BUILD
trap 'rc=$?; set +e; "$STACK" down --dir "$T/s" >/dev/null 2>&1 || true; (exit $rc); cleanup' EXIT
"$STACK" up --dir "$T/s" --service retry >"$T/up.log"
REG=$(jq -r .registry "$T/s/stack.json")
RPC=$(jq -r .eth_rpc "$T/s/stack.json")
RPORT=$(jq -r .redis "$T/s/stack.json" | sed 's/.*://')
unset BR2K_KAFKA BR2K_REDIS BR2K_SERVICE
KEY=0x59c6995e998f97a5a0044966f0945389dc9e86dae88c7a8412f4603b6b78690d
sub() { BR2K_CLIENT_KEY=$KEY "$BIN/br2k" --registry "$REG" --eth-rpc "$RPC" submit "$@"; }
active() { redis-cli -p "$RPORT" GET 'br2k:{retry}:ext:active'; }
out=$(sub --op register --payload '{"attrs":{"name":"First"}}' --client alice --seq 1) ||
    fail "first submit: $out"
[ "$(active)" = 1 ] || fail "ext:active $(active) after one registration"

workers=$(jq -r '.parts[] | select(.program == "br2k-worker") | .pid' "$T/s/stack.json")
[ -n "$workers" ] || fail "no workers in $(cat "$T/s/stack.json")"
# every worker paused for 4 s (the fault's duration), then resumed
kill -STOP $workers
(sleep 4; kill -CONT $workers) &
PIDS+=($!)
sub --op register --payload '{"did":"did:example:retry","attrs":{"name":"Retried"}}' \
    --client alice --seq 2 --attempt-ms 1000 --wait-ms 30000 >"$T/out.json" 2>"$T/err.txt" ||
    { kill -CONT $workers; fail "submit with retries: $(cat "$T/out.json" "$T/err.txt")"; }
jq -e '.status == "ok" and .id == "alice:2" and .data.did == "did:example:retry"' "$T/out.json" >/dev/null ||
    fail "result: $(cat "$T/out.json")"
grep -Eq "sent [0-9]+ times \(the same request id\), [0-9]+ registry reads" "$T/err.txt" ||
    fail "no retry reported: $(cat "$T/err.txt")"
sent=$(grep -Eo "sent [0-9]+ times" "$T/err.txt" | grep -Eo "[0-9]+")
reads=$(grep -Eo "[0-9]+ registry reads" "$T/err.txt" | grep -Eo "[0-9]+")
[ "$sent" -ge 3 ] && [ "$reads" -ge 1 ] || fail "sent $sent times, $reads registry reads: $(cat "$T/err.txt")"
if [[ $(jq -r .kafka "$T/s/stack.json") == redis://* ]]; then
    how="the log kept one copy"
else
    jq -e '.repeat == true and .repeat_offset > .offset' "$T/out.json" >/dev/null ||
        fail "the retried request's result is not marked as a repeat: $(cat "$T/out.json")"
    how="its result the first, marked as a repeat (offset $(jq .offset "$T/out.json"), repeat at $(jq .repeat_offset "$T/out.json"))"
fi
pass "workers paused 4 s: the request was sent $sent times with the same id after $reads registry reads; $how"

"$BIN/br2k" --registry "$REG" --eth-rpc "$RPC" verify --json --timeout-ms 20000 >"$T/verify.json" ||
    fail "verify: $(cat "$T/verify.json")"
jq -e '.consistent' "$T/verify.json" >/dev/null || fail "verify: $(cat "$T/verify.json")"
[ "$(active)" = 2 ] || fail "ext:active $(active): the retried registration applied other than once"
pass "applied once: replicas consistent at LPI $(jq .lpi "$T/verify.json"), 2 DIDs registered"
