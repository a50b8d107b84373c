#!/usr/bin/env bash
# core_idwindow.sh - InfoDID's request-id window (INFODID.md, "The
# request-id window") on 3 workers, window 200 records:
#   - a request (carol:5) is taken, then 300 more push it out of the window;
#     meanwhile w3 is SIGKILLed and started again (its journal is replayed
#     through the window, then it catches up from the log);
#   - the same signed bytes again: rejected `expired` (never applied twice),
#     while the first result stays under its result key;
#   - carol's next seq is taken; the replicas agree on one digest (the
#     window drops the same ids at the same record everywhere).
# With BR2K_INFODID_ID_WINDOW=0 the retry is a repeat and this test fails.
source "$(dirname "$0")/lib.sh"

[ -x "$BIN/br2k-worker" ] || fail "no br2k-worker in $BIN"
start_redis
start_devkafka
export BR2K_KAFKA=$KAFKA BR2K_REDIS=$REDIS BR2K_SERVICE=default
export BR2K_INFODID_ID_WINDOW=200

declare -A WPID
start_w() {
    mkdir -p "$T/$1"
    "$BIN/br2k-worker" --id "$1" --state-dir "$T/$1" >>"$T/$1.out" 2>>"$T/$1.log" &
    WPID[$1]=$!
    PIDS+=($!)
}
for w in w1 w2 w3; do start_w "$w"; done
leader_ready() { "$BIN/br2k" status --json | jq -e '.leader != null and (.members | length) == 3' >/dev/null; }
wait_for 30 leader_ready || fail "no leader with 3 members: $("$BIN/br2k" status 2>&1)"

KEY=0x59c6995e998f97a5a0044966f0945389dc9e86dae88c7a8412f4603b6b78690d
req=$(BR2K_CLIENT_KEY=$KEY "$BIN/br2k" submit --dry-run --op register \
    --payload '{"attrs":{"name":"Carol"}}' --client carol --seq 5)
first=$(echo "$req" | "$BIN/br2k" submit --wait-ms 20000) || fail "first submit: $first"
echo "$first" | jq -e '.status == "ok" and .repeat == false' >/dev/null || fail "first: $first"
off=$(echo "$first" | jq .offset)
pass "carol:5 taken at offset $off"

# 300 more records, w3 killed after the first 100 and started again after
# the next 200 (offsets 1..100, 101..300, 301..400)
"$BIN/br2k" submit --clients 2 --count 50 --json --prefix win1 --wait-ms 60000 >"$T/load1.json" ||
    fail "load: $(cat "$T/load1.json")"
# killed idle (caught up, no batch in flight): a kill mid-batch would need
# a backup to restore from (core_kill.sh), which this test does not run
w3_at() { [ "$(redis-cli -p "$(redis_port)" HGET "br2k:{default}:metrics-w3" lpi)" = "$1" ]; }
wait_for 30 w3_at 100 || fail "w3 did not reach LPI 100"
kill -KILL "${WPID[w3]}"
wait "${WPID[w3]}" 2>/dev/null || true
"$BIN/br2k" submit --clients 2 --count 100 --json --prefix win2 --wait-ms 60000 >"$T/load2.json" ||
    fail "load: $(cat "$T/load2.json")"
start_w w3
"$BIN/br2k" submit --clients 2 --count 50 --json --prefix win3 --wait-ms 60000 >"$T/load3.json" ||
    fail "load: $(cat "$T/load3.json")"
for f in load1 load2 load3; do
    jq -e '.failed == 0 and .rejected == 0 and .succeeded == .sent' "$T/$f.json" >/dev/null ||
        fail "$f: $(cat "$T/$f.json")"
done
pass "300 more requests taken; w3 killed and restarted among them"

# the retry, more than 200 records later
rc=0
again=$(echo "$req" | "$BIN/br2k" submit --wait-ms 20000) || rc=$?
[ "$rc" = 1 ] && echo "$again" | jq -e '.status == "rejected" and .reason.code == "expired"' >/dev/null ||
    fail "retry of carol:5 after the window: exit $rc, $again"
kept=$(result_get carol:5)
[ "$(echo "$kept" | jq -c .)" = "$(echo "$first" | jq -c .)" ] ||
    fail "the first result of carol:5 is not kept under its key: $kept"
pass "retry after the window: $(echo "$again" | jq -c .reason); the first result is kept"

next=$(BR2K_CLIENT_KEY=$KEY "$BIN/br2k" submit --op update \
    --payload '{"attrs":{"city":"Seoul"}}' --client carol --seq 6 --wait-ms 20000) ||
    fail "carol:6: $next"
echo "$next" | jq -e '.status == "ok"' >/dev/null || fail "carol:6: $next"
last=$(echo "$next" | jq .offset)

verify_done() {
    "$BIN/br2k" verify --json --timeout-ms 20000 >"$T/verify.json" &&
        jq -e --argjson l "$last" '.consistent == true and (.replicas | length) == 3 and .lpi >= $l' \
            "$T/verify.json" >/dev/null
}
wait_for 60 verify_done || fail "verify: $(cat "$T/verify.json")"
pass "carol:6 taken at $last; replicas consistent at LPI $(jq .lpi "$T/verify.json") with window 200"
