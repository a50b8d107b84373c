# app_proto.bash - the core, backup and recovery behaviour of an application
# over the application protocol (schemas/app-protocol.md), sourced by
# app_proto_node.sh (the Node token ledger) and app_proto_python.sh (the
# Python key-value registry) with BR2K_TEST_APP=node|python:
#  - 3 workers run the example with --app exec:..., under load;
#  - a backup (backupd + anvil + registry);
#  - the leader SIGSTOPped past its lease: a new leader;
#  - the application process SIGKILLed mid-batch on the leader, then on a
#    follower: the worker kills nothing else, restarts itself in-process,
#    finds its in-flight mark and restores the backup (I6);
#  - a wiped worker rejoins from the backup;
#  - at the end every replica at SSI with the same digest (br2k verify),
#    and the example's own counts say nothing was lost or applied twice.
source "$(dirname "$0")/lib.sh"
source "$(dirname "$0")/core_helpers.bash"
source "$(dirname "$0")/backup_helpers.bash"

case "${BR2K_TEST_APP:-node}" in
node)
    command -v node >/dev/null || { echo "skip: no node"; exit 0; }
    APP="exec:node $SRC/worker/apps/examples/node-ledger/ledger.js"
    STATE=ledger.json ;;
python)
    command -v python3 >/dev/null || { echo "skip: no python3"; exit 0; }
    APP="exec:python3 $SRC/worker/apps/examples/python-kv/kv.py"
    STATE=kv.json ;;
*) fail "BR2K_TEST_APP must be node or python" ;;
esac
[ "$LOG_BACKEND" = kafka ] || { echo "skip: kcat loads the Kafka log only"; exit 0; }
export BR2K_APP_TIMEOUT_MS=5000

start_redis
start_devkafka
start_chain
RARGS=(--eth-rpc "$ETH_RPC" --registry "$REG" --service-key-file "$T/service.key")
for w in w1 w2 w3; do start_worker "$w" "${RARGS[@]}"; done
wait_for 20 has_leader || { show w1 w2 w3; fail "no leader"; }
start_backupd --max-replicated 100000000

# load FROM COUNT [RATE]: COUNT requests with seq FROM.. of clients c0..c9
# (node: mint 1 each; python: put key k<seq>), and every 50th a repeat of
# the one before (same request id: a repeat, never applied twice)
SENT=0 DISTINCT=0
# count FROM COUNT: add a load's records to SENT and DISTINCT (in this shell:
# a load in the background cannot)
count() { SENT=$((SENT + $2 + $2 / 50)); DISTINCT=$((DISTINCT + $2)); }
load() {
    local from=$1 count=$2 rate=${3:-0}
    python3 - "$BR2K_TEST_APP" "$from" "$count" "$rate" >"$T/load.$from" <<'PY'
import json, sys, time
app, first, count, rate = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), float(sys.argv[4])
def req(seq):
    c = "c%d" % (seq % 10)
    if app == "node":
        op, p = "mint", {"amount": 1}
    else:
        op, p = "put", {"key": "k%d" % seq, "value": "v%d" % seq}
    return c, json.dumps({"v": 1, "id": {"client": c, "seq": seq}, "op": op, "payload": p,
                          "ts": 0, "sig": "0x"}, separators=(",", ":"))
for i in range(count):
    seq = first + i
    c, r = req(seq)
    print("%s\t%s" % (c, r))
    if i % 50 == 49:
        print("%s\t%s" % req(seq))
PY
    if [ "$rate" = 0 ]; then
        kcat -P -b "$KAFKA" -t "$TOPIC" -K$'\t' -z none <"$T/load.$from" 2>>"$T/kcat.log" ||
            fail "kcat: $(tail -3 "$T/kcat.log")"
    else # about RATE lines a second, in slices of a tenth of a second
        split -l "$((rate / 10))" "$T/load.$from" "$T/slice.$from."
        for f in "$T/slice.$from."*; do
            kcat -P -b "$KAFKA" -t "$TOPIC" -K$'\t' -z none <"$f" 2>>"$T/kcat.log" || fail "kcat failed"
            sleep 0.1
        done
    fi
}
ssi() { rc_ GET "br2k:{$SVC}:SSI"; }
last() { echo $((SENT - 1)); }
all_at() { at "$(last)" "$@"; }
app_pid() { pgrep -P "${WPID[$1]}" | head -1; } # the worker's application child
# follower [NOT] ID...: the first of ID... that does not lead (and is not NOT)
follower() {
    local not=$1 w; shift
    for w in "$@"; do [ "$w" = "$(leader_id)" ] || [ "$w" = "$not" ] || { echo "$w"; return; }; done
}

t0=$SECONDS
count 0 600; load 0 600
wait_for 30 all_at w1 w2 w3 || { show w1 w2 w3; fail "replicas did not converge at $(last)"; }
pass "3 workers on $BR2K_TEST_APP ($APP) applied $SENT records at the same digest"

"$BIN/br2k" --redis "$REDIS" backup now --wait 60 >/dev/null || fail "backup now: $(tail -3 "$T/backupd.log")"
[ "$(sv)" = 2 ] || fail "SV $(sv) after the first backup"
pass "backup 2 taken at cut $(rc_ GET "br2k:{$SVC}:backup-last" | cut -d' ' -f2) (the application's snapshot streamed)"

# the leader paused past its lease: a new leader
old=$(leader_id); epoch=$(leader_epoch)
count 600 300; load 600 300 2000 &
lp=$!; PIDS+=("$lp")
kill -STOP "${WPID[$old]}"
wait_for 15 epoch_is $((epoch + 1)) || { kill -CONT "${WPID[$old]}"; show w1 w2 w3; fail "no new leader"; }
kill -CONT "${WPID[$old]}"
wait "$lp" || fail "load failed"
pass "$old paused past its lease: $(leader_id) leads with epoch $((epoch + 1))"

# the application killed mid-batch on the leader, then on a follower: it is
# stopped first, so that the worker sends it the next batch (the in-flight
# mark durable) and waits; then SIGKILLed
inflight() { # the in-flight mark of worker.pos is set
    local first
    read -r _ _ _ _ first _ <"$T/$1/worker.pos"
    [ "$first" -ge 0 ]
}
w=""
for who in leader follower; do
    [ "$who" = leader ] && w=$(leader_id) || w=$(follower "$w" w1 w2 w3)
    pid=$(app_pid "$w"); [ -n "$pid" ] || fail "no application process under $w"
    before=$(grep -c "restarting the worker" "$T/$w.log" || true)
    # idle, its digest computed: the next call to the application is the batch
    wait_for 30 all_at w1 w2 w3 || { show w1 w2 w3; fail "replicas did not converge at $(last)"; }
    kill -STOP "$pid"
    from=$DISTINCT
    count "$from" 400; load "$from" 400 4000 &
    lp=$!; PIDS+=("$lp")
    wait_for 4 inflight "$w" || { kill -CONT "$pid"; fail "$w marked no batch in flight"; }
    mark=$(cut -d' ' -f5,6 "$T/$w/worker.pos" | sed 's/ /../')
    kill -KILL "$pid"
    wait "$lp" || fail "load failed"
    wait_for 30 all_at w1 w2 w3 || { show w1 w2 w3; fail "no convergence after the $who's application was killed"; }
    kill -0 "${WPID[$w]}" || fail "$w exited"
    [ "$(grep -c "restarting the worker" "$T/$w.log")" -gt "$before" ] || fail "$w did not restart"
    grep -q "get-the-latest-state: stopped in the middle of records" "$T/$w.log" || fail "$w: no I6 recovery"
    how=$(grep -o "restored backup version [0-9]* (cut [0-9]*" "$T/$w.log" | tail -1 || true)
    pass "the $who's ($w) application killed mid-batch (in-flight mark $mark): the worker restarted in-process, $how) and converged at $(last)"
done

# a wiped worker rejoins from the backup
w=$(follower "$w" w1 w2 w3)
stop_worker "$w"
rm -rf "${T:?}/$w"
start_worker "$w" "${RARGS[@]}"
from=$DISTINCT; count "$from" 200; load "$from" 200
wait_for 30 all_at w1 w2 w3 || { show w1 w2 w3; fail "the wiped $w did not rejoin"; }
grep -q "restored backup version" "$T/$w.log" || fail "$w did not restore the backup"
pass "$w wiped: rejoined from the backup and converged"

"$BIN/br2k" --redis "$REDIS" verify --json --timeout-ms 20000 >"$T/verify.json" ||
    fail "br2k verify: $(cat "$T/verify.json")"
[ "$(jq -r .consistent "$T/verify.json")" = true ] || fail "verify: $(cat "$T/verify.json")"
[ "$(ssi)" = "$(last)" ] || fail "SSI $(ssi), $SENT records sent"
pass "br2k verify: consistent at SSI $(ssi)"

for w in w1 w2 w3; do stop_worker "$w"; done
for w in w1 w2 w3; do
    s="$T/$w/app/$STATE"
    lpi=$(jq .lpi "$s") seen=$(jq '.seen | length' "$s") applied=$(jq .applied "$s")
    [ "$lpi" = "$(last)" ] || fail "$w: state at $lpi, not $(last)"
    [ "$seen" = "$DISTINCT" ] && [ "$applied" = "$DISTINCT" ] ||
        fail "$w: $applied applied, $seen request ids, for $DISTINCT distinct requests"
    if [ "$BR2K_TEST_APP" = node ]; then
        [ "$(jq .supply "$s")" = "$DISTINCT" ] && [ "$(jq '[.balances[]] | add' "$s")" = "$DISTINCT" ] ||
            fail "$w: supply $(jq .supply "$s"), balances $(jq '[.balances[]] | add' "$s"), for $DISTINCT mints"
    else
        [ "$(jq '.kv | length' "$s")" = "$DISTINCT" ] && [ "$(jq '[.kv[].version] | max' "$s")" = 1 ] ||
            fail "$w: $(jq '.kv | length' "$s") keys (max version $(jq '[.kv[].version] | max' "$s")) for $DISTINCT puts"
    fi
done
pass "nothing lost, nothing applied twice: $DISTINCT distinct requests of $SENT records, each applied once on every replica ($((SECONDS - t0)) s)"

# the leader-only external effect (External, 0x08): made by whichever
# worker led, through a pause, a new leader and the application killed on
# the leader, each request's writes once (an INCRBY made twice would show)
ext() { rc_ "$1" "br2k:{$SVC}:ext:$2" "${@:3}"; }
s="$T/w1/app/$STATE"
if [ "$BR2K_TEST_APP" = node ]; then
    [ "$(ext GET supply)" = "$DISTINCT" ] || fail "ext:supply $(ext GET supply), $DISTINCT mints"
    want=$(jq -r '.balances | to_entries | sort_by(.key) | map("\(.key)=\(.value)") | join(" ")' "$s")
    got=$(ext HGETALL balances | paste - - | sort | tr '\t' '=' | paste -sd' ')
    [ "$got" = "$want" ] || fail "ext:balances '$got', the ledger '$want'"
    pass "external effect: ext:supply $DISTINCT (once per mint) and ext:balances equal the ledger's ($want)"
else
    [ "$(ext GET puts)" = "$DISTINCT" ] || fail "ext:puts $(ext GET puts), $DISTINCT puts"
    [ "$(ext HLEN kv-version)" = "$DISTINCT" ] || fail "ext:kv-version has $(ext HLEN kv-version) keys, $DISTINCT puts"
    [ "$(ext HGET kv-version k7)" = 1 ] || fail "ext:kv-version k7 = $(ext HGET kv-version k7)"
    pass "external effect: ext:puts $DISTINCT (once per put) and ext:kv-version holds every key at version 1"
fi
[ "$(ext GET applied)" = "$(last)" ] || fail "ext:applied $(ext GET applied), not $(last)"
