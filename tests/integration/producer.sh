#!/usr/bin/env bash
# producer.sh - libbr2k and `br2k submit` against real redis-server and
# br2k-devkafka, without workers: records land at the reported offsets with
# the right key, headers and value; 1,000 asynchronous appends get
# increasing offsets; bad settings give a one-line error naming them; a
# result that never comes is a timeout (exit 2).
source "$(dirname "$0")/lib.sh"

start_redis
start_devkafka
export BR2K_KAFKA=$KAFKA BR2K_REDIS=$REDIS BR2K_SERVICE=default
TOPIC=br2k.default.requests
# anvil's first development key; its address is 0xf39F...2266
KEY=0xac0974bec39a17e36ba4a6b4d238ff944bacb478cbed5efcae784d7bf4f2ff80
echo "$KEY" >"$T/key"

records() { log_dump "$TOPIC"; }

# 1. a raw request from stdin, request id given explicitly
printf '%s' '{"hello":"world"}' | "$BIN/br2k" submit --no-wait --client alice --seq 1 >"$T/out1" ||
    fail "submit from stdin failed"
grep -qx '{"id":"alice:1","offset":0}' "$T/out1" || fail "unexpected output: $(cat "$T/out1")"
records >"$T/recs1"
grep -qx '0 alice br2k-request-id=alice:1,br2k-schema=1 {"hello":"world"}' "$T/recs1" ||
    fail "record 0 not as submitted: $(cat "$T/recs1")"
pass "raw request appended at offset 0 with key, headers and value"

# 2. a signed InfoDID request built from arguments
"$BIN/br2k" submit --no-wait --op register --payload '{"attrs":{"name":"Bob"}}' \
    --client bob --seq 7 --ts 1700000000000 --key-file "$T/key" >"$T/out2" ||
    fail "signed submit failed"
grep -qx '{"id":"bob:7","offset":1}' "$T/out2" || fail "unexpected output: $(cat "$T/out2")"
records | grep '^1 ' >"$T/rec2" || fail "no record at offset 1"
grep -q '^1 bob br2k-request-id=bob:7,br2k-schema=1 {' "$T/rec2" || fail "bad record: $(cat "$T/rec2")"
value=$(cut -d' ' -f4- "$T/rec2")
echo "$value" | jq -e '.v == 1 and .id.client == "bob" and .id.seq == 7 and .op == "register"
    and .ts == 1700000000000 and (.sig | test("^0x[0-9a-f]{130}$"))' >/dev/null ||
    fail "bad request JSON: $value"
# the same request from the key in the environment, dry run: identical bytes
dry=$(BR2K_CLIENT_KEY=$KEY "$BIN/br2k" submit --dry-run --op register \
    --payload '{"attrs":{"name":"Bob"}}' --client bob --seq 7 --ts 1700000000000)
[ "$dry" = "$value" ] || fail "dry run differs from the appended request: $dry"
pass "signed request appended at offset 1; dry run gives the same bytes"

# 3. 1,000 asynchronous appends (4 clients x 250), offsets increasing
"$BIN/br2k" submit --clients 4 --count 250 --no-wait --json --prefix async >"$T/out3" ||
    fail "load generator (no wait) failed: $(cat "$T/out3")"
jq -e '.sent == 1000 and .appended == 1000 and .failed == 0 and .offsets_increasing
    and .first_offset == 2 and .last_offset == 1001' "$T/out3" >/dev/null ||
    fail "async appends: $(cat "$T/out3")"
n=$(records | wc -l)
[ "$n" -eq 1002 ] || fail "expected 1002 records, found $n"
records | awk 'NR>2 { split($3, h, /[=,]/); if (h[2] != $2 ":" (int((NR-3)/4)+1)) bad++ }
    END { exit bad > 0 }' || fail "a record's request id header does not match its key"
pass "1,000 asynchronous appends at offsets 2..1001, in order"

# 4. bad settings: one line naming the setting
check_bad() { # NAME EXPECTED-SUBSTRING ENV...
    local name=$1 want=$2; shift 2
    set +e
    env "$@" "$BIN/br2k" submit --no-wait --client x --seq 1 </dev/null >"$T/bad.out" 2>"$T/bad.err"
    local rc=$?
    set -e
    [ "$rc" -eq 2 ] || fail "$name: exit $rc, expected 2"
    [ "$(wc -l <"$T/bad.err")" -eq 1 ] || fail "$name: expected one line: $(cat "$T/bad.err")"
    grep -qF -- "$want" "$T/bad.err" || fail "$name: '$want' not in: $(cat "$T/bad.err")"
    echo "  $name: $(cat "$T/bad.err")"
}
check_bad "empty BR2K_KAFKA" "BR2K_KAFKA" BR2K_KAFKA=
check_bad "bad service" "'no such/svc'" "BR2K_SERVICE=no such/svc"
check_bad "bad Redis address" "'localhost:99999'" BR2K_REDIS=localhost:99999
check_bad "bad Kafka property" "'no.such.property" BR2K_KAFKA_PROPS=no.such.property=1
pass "bad settings give one line naming them"

# 5. no worker: waiting for a result times out (exit 2, one line)
set +e
echo '{}' | "$BIN/br2k" submit --client late --seq 1 --wait-ms 300 >/dev/null 2>"$T/to.err"
rc=$?
set -e
[ "$rc" -eq 2 ] || fail "timeout: exit $rc, expected 2"
grep -q "no result for request 'late:1' within 300 ms" "$T/to.err" || fail "timeout: $(cat "$T/to.err")"
pass "a result that never comes is a timeout"

# 6. a result set by hand (no announcement) is found by the fallback look
"$BIN/br2k" submit --client hand --seq 1 --wait-ms 10000 </dev/null >"$T/hand.out" 2>&1 &
sub=$!
sleep 0.5
result_set hand:1 \
    '{"v":1,"id":"hand:1","offset":1003,"op":"x","status":"rejected","repeat":false,"reason":{"code":"unknown_op","text":"x"}}' >/dev/null
set +e
wait "$sub"
rc=$?
set -e
[ "$rc" -eq 1 ] || fail "hand result: exit $rc, expected 1 (rejected): $(cat "$T/hand.out")"
grep -q '"unknown_op"' "$T/hand.out" || fail "hand result not printed: $(cat "$T/hand.out")"
pass "a rejected result is printed, exit 1"
