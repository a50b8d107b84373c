# app_proto_bad.sh - applications over the application protocol that fail
# (app_proto_fake.py): each gives one clear error line naming the call and
# a non-zero exit, and never a wrong state:
#   - one that exits at start, one of another protocol version: exit 1 at
#     start-up, no membership;
#   - one that answers garbage, too few results, an Error frame, or nothing
#     (past BR2K_APP_TIMEOUT_MS) to a batch: the worker kills it, restarts
#     itself once in-process, finds its in-flight mark (I6) and, with no
#     backup to restore (no --eth-rpc here), refuses with exit 3; the
#     records stay unapplied (LPI -1);
#   - and a good one over --app unix:PATH (python-kv run by the test).
source "$(dirname "$0")/lib.sh"
source "$(dirname "$0")/core_helpers.bash"
command -v python3 >/dev/null || { echo "skip: no python3"; exit 0; }
FAKE=$SRC/tests/integration/app_proto_fake.py
export BR2K_APP_TIMEOUT_MS=1000

start_redis
start_devkafka
produce 5 >/dev/null || fail "produce"

# bad MODE RC PATTERN: a worker on the fake application in MODE exits RC,
# its log has PATTERN
bad() {
    local mode=$1 want=$2 pat=$3 rc=0
    timeout 60 "$BIN/br2k-worker" --id "$mode" --service "$SVC" --redis "$REDIS" \
        --kafka "$KAFKA" --state-dir "$T/$mode" --app "exec:python3 $FAKE $mode" \
        >"$T/$mode.log" 2>&1 || rc=$?
    [ "$rc" -eq "$want" ] || fail "$mode: exit $rc, expected $want: $(tail -5 "$T/$mode.log")"
    grep -Eq -- "$pat" "$T/$mode.log" || fail "$mode: no '$pat' in: $(cat "$T/$mode.log")"
    pgrep -f "$FAKE $mode" >/dev/null && fail "$mode: the application process is left running"
    echo "    $mode: $(grep -Eo -- "$pat.*" "$T/$mode.log" | head -1 | cut -c1-150)"
}

bad exit 1 "cannot open application 'exec:python3 .*': application 'python3' closed the connection during open.*exited with status 3"
bad version 1 "application 'python3' speaks protocol 2, this worker 1"
[ -z "$(rc_ SMEMBERS "br2k:{$SVC}:members")" ] || fail "a failed start-up joined the members"
pass "an application that exits at start or speaks another protocol: one error, exit 1"

for m in garbage short error late; do
    case $m in
    garbage) pat="malformed reply to apply: frame length [0-9]+" ;;
    short) pat="malformed reply to apply: 0 results for [0-9]+ records" ;;
    error) pat="application 'fake-error' failed in apply: disk full" ;;
    late) pat="application 'fake-late' did not answer apply within 1000 ms" ;;
    esac
    bad "$m" 3 "$pat"
    grep -q "restarting the worker (1 of 5)" "$T/$m.log" || fail "$m: no in-process restart"
    grep -q "interrupted in the middle of records 0\.\.4" "$T/$m.log" || fail "$m: no I6 refusal"
    read -r _ _ lpi _ first last _ <"$T/$m/worker.pos"
    [ "$lpi" = -1 ] && [ "$first" = 0 ] && [ "$last" = 4 ] || fail "$m: worker.pos $(cat "$T/$m/worker.pos")"
done
pass "garbage, too few results, an Error frame, no answer: killed, restarted, refused (I6, exit 3), nothing applied"

# a bad answer to the external effect (External): the application is killed
# and restarted like a crashed worker, again and again; the worker gives up
# after 5 restarts; nothing of it is written, no result published, SSI unset
bad extbad 1 "malformed reply to external: op 1 of offset 0 is bad \(kind 9"
grep -q "restarting the worker (5 of 5)" "$T/extbad.log" || fail "extbad: not restarted 5 times"
grep -q "giving up" "$T/extbad.log" || fail "extbad: did not give up"
[ -z "$(rc_ GET "br2k:{$SVC}:SSI")" ] || fail "extbad: SSI $(rc_ GET "br2k:{$SVC}:SSI") (a commit without its external effect)"
[ -z "$(rc_ --scan --pattern "br2k:{$SVC}:ext:*")" ] || fail "extbad: ext keys written: $(rc_ --scan --pattern "br2k:{$SVC}:ext:*")"
[ "$(cat "$T/extbad/app/lpi")" = 4 ] || fail "extbad: the application's LPI $(cat "$T/extbad/app/lpi")"
pass "a bad answer to External: one error naming the call, restarted 5 times, gave up (exit 1), nothing committed"

# and a good one the operator runs (--app unix:PATH), across a worker restart
BR2K_APP_LISTEN=$T/kv.sock python3 "$SRC/worker/apps/examples/python-kv/kv.py" >>"$T/kv.log" 2>&1 &
PIDS+=("$!")
for i in 1 2; do
    start_worker u1 --app "unix:$T/kv.sock"
    wait_for 20 role_is u1 leader || { show u1; fail "unix: no leader"; }
    wait_for 20 at 4 u1 || { show u1; fail "unix: the 5 records were not applied"; }
    stop_worker u1
done
[ "$(jq .lpi "$T/u1/app/kv.json")" = 4 ] && [ "$(jq '.seen | length' "$T/u1/app/kv.json")" = 5 ] ||
    fail "unix: state $(cat "$T/u1/app/kv.json")"
pass "--app unix:PATH: an application the operator runs serves the worker, and again after its restart"
