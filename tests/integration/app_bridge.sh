#!/usr/bin/env bash
# app_bridge.sh - a C plug-in out of the worker's process: br2k-app-serve
# (worker/apps/bridge) serves InfoDID over the application protocol.
#  - 3 workers run --app 'exec:<build>/bin/br2k-app-serve infodid' and take
#    signed InfoDID requests (br2k submit's load generator: registrations
#    and updates), every result ok; InfoDID's external effect (its index in
#    Redis) runs through the bridge (External);
#  - a 4th worker with InfoDID in-process replays the same log: the same
#    digest at the same LPI as the bridged ones;
#  - a backup (the bridge streams InfoDID's snapshot), then the bridge
#    process of the leader SIGKILLed: its worker restarts in-process,
#    recovers (I6) by restoring the backup through the bridge (Restore);
#  - the in-process worker wiped: it restores the backup a bridged leader
#    made (one state format both ways);
#  - br2k-app-serve --listen PATH: a 5th worker (--app unix:PATH) joins
#    from the backup through it;
#  - at the end `br2k verify`: all 5 consistent at SSI, nothing lost; the
#    workers and the --listen server stop cleanly.
#  - Republish (0x09) through the bridge on a stopped worker's state: the
#    whole index InfoDID's `republish` gives equals what External left.
source "$(dirname "$0")/lib.sh"
source "$(dirname "$0")/core_helpers.bash"
source "$(dirname "$0")/backup_helpers.bash"

SERVE=$BIN/br2k-app-serve
[ -x "$SERVE" ] || fail "no $SERVE (worker/apps/bridge)"
BRIDGE="exec:$SERVE infodid"
export BR2K_APP_TIMEOUT_MS=5000

# the bridge alone: bad arguments are one line and exit 2
for bad in "" "nosuchapp" "/nonexistent/libx.so"; do
    rc=0
    "$SERVE" $bad >"$T/bad.out" 2>&1 </dev/null || rc=$?
    [ "$rc" = 2 ] && [ "$(wc -l <"$T/bad.out")" = 1 ] || fail "br2k-app-serve '$bad': rc $rc: $(cat "$T/bad.out")"
done
pass "br2k-app-serve refuses a missing or unknown application: one line, exit 2"

start_redis
start_devkafka
start_chain
RARGS=(--eth-rpc "$ETH_RPC" --registry "$REG" --service-key-file "$T/service.key")
for w in w1 w2 w3; do APP=$BRIDGE start_worker "$w" "${RARGS[@]}"; done
wait_for 30 has_leader || { show w1 w2 w3; fail "no leader"; }
start_backupd --max-replicated 100000000
for w in w1 w2 w3; do
    # a leader is there; another worker may still be opening (a loaded machine)
    wait_for 30 grep -q "application 'infodid' open over the protocol" "$T/$w.log" ||
        fail "$w: not over the protocol"
done
export BR2K_KAFKA=$KAFKA BR2K_REDIS=$REDIS BR2K_SERVICE=$SVC

SENT=0
# submit PREFIX CLIENTS COUNT: signed InfoDID requests through the log,
# waiting for each result: every one ok
submit() {
    "$BIN/br2k" submit --clients "$2" --count "$3" --updates --prefix "$1" --json \
        --wait-ms 60000 >"$T/submit.$1.json" 2>"$T/submit.$1.log" ||
        fail "submit $1: $(cat "$T/submit.$1.json" "$T/submit.$1.log" | tail -5)"
    [ "$(jq .succeeded "$T/submit.$1.json")" = $(($2 * $3)) ] || fail "submit $1: $(cat "$T/submit.$1.json")"
    SENT=$((SENT + $2 * $3))
}
ssi() { rc_ GET "br2k:{$SVC}:SSI"; }
app_pid() { pgrep -P "${WPID[$1]}" | head -1; }

submit a 5 80
[ "$(ssi)" = $((SENT - 1)) ] || fail "SSI $(ssi) after $SENT requests"
wait_for 30 at $((SENT - 1)) w1 w2 w3 || { show w1 w2 w3; fail "bridged replicas did not converge"; }
pass "3 workers on the bridge: $SENT signed InfoDID requests, every result ok, one digest at $((SENT - 1))"
# InfoDID's external effect ran through the bridge (External): its index
# in Redis, written by the worker fenced and once per offset
dids=$(rc_ HLEN "br2k:{$SVC}:ext:did")
[ "$dids" = $((SENT / 2)) ] || fail "ext:did has $dids DIDs, $((SENT / 2)) registered"
[ "$(rc_ GET "br2k:{$SVC}:ext:applied")" = $((SENT - 1)) ] || fail "ext:applied $(rc_ GET "br2k:{$SVC}:ext:applied")"
pass "InfoDID's external effect through the bridge: ext:did holds the $dids registered DIDs, ext:applied $((SENT - 1))"

# InfoDID in-process beside them, on the same log
APP=infodid start_worker w4 "${RARGS[@]}"
wait_for 30 at $((SENT - 1)) w1 w2 w3 w4 || { show w1 w2 w3 w4; fail "in-process w4 differs"; }
pass "in-process InfoDID (w4) replays the log to the same digest $(metric w4 digest | cut -c1-16)... at $((SENT - 1))"

"$BIN/br2k" --redis "$REDIS" backup now --wait 60 >"$T/backup.out" 2>&1 || fail "backup now: $(tail -3 "$T/backupd.log")"
[ "$(sv)" = 2 ] || fail "SV $(sv) after the first backup"
pass "backup 2 taken from a bridged leader ($(leader_id)): InfoDID's snapshot through the bridge"

# the leader's bridge killed: its worker restarts and restores through it
old=$(leader_id)
case $old in w1 | w2 | w3) ;; *) fail "leader $old is not a bridged worker" ;; esac
pid=$(app_pid "$old"); [ -n "$pid" ] || fail "no bridge process under $old"
before=$(grep -c "restarting the worker" "$T/$old.log" || true)
kill -KILL "$pid"
submit b 5 40
wait_for 60 at $((SENT - 1)) w1 w2 w3 w4 || { show w1 w2 w3 w4; fail "no convergence after the bridge of $old was killed"; }
kill -0 "${WPID[$old]}" || fail "$old exited"
[ "$(grep -c "restarting the worker" "$T/$old.log")" -gt "$before" ] || fail "$old did not restart"
grep -q "restored backup version 2" "$T/$old.log" || fail "$old did not restore the backup"
grep -q "restored [0-9]* bytes: LPI" "$T/$old.log" || fail "the bridge of $old did not log its restore"
pass "the leader's ($old) bridge SIGKILLed: the worker restarted, restored backup 2 through the bridge, converged at $((SENT - 1))"

# the in-process worker wiped: it restores the bridged leader's backup
stop_worker w4
rm -rf "${T:?}/w4"
APP=infodid start_worker w4 "${RARGS[@]}"
submit c 4 25
wait_for 60 at $((SENT - 1)) w1 w2 w3 w4 || { show w1 w2 w3 w4; fail "the wiped w4 did not rejoin"; }
grep -q "restored backup version" "$T/w4.log" || fail "w4 did not restore the backup"
pass "in-process w4 wiped: restored the bridged leader's backup and converged"

# the bridge as a server of its own (--listen): a 5th worker with
# --app unix:PATH joins from the backup through it
"$SERVE" --listen "$T/app.sock" infodid >>"$T/serve.log" 2>&1 &
SPID=$!; PIDS+=("$SPID")
wait_for 10 test -S "$T/app.sock" || fail "br2k-app-serve --listen: no socket: $(cat "$T/serve.log")"
APP=unix:$T/app.sock start_worker w5 "${RARGS[@]}"
submit d 2 25
wait_for 60 at $((SENT - 1)) w1 w2 w3 w4 w5 || { show w1 w2 w3 w4 w5; fail "w5 (unix:) did not converge"; }
grep -q "restored [0-9]* bytes: LPI" "$T/serve.log" || fail "w5 did not restore the backup through the socket"
pass "br2k-app-serve --listen: w5 on unix:$T/app.sock restored the backup and converged"

"$BIN/br2k" --redis "$REDIS" verify --json --timeout-ms 20000 >"$T/verify.json" ||
    fail "br2k verify: $(cat "$T/verify.json")"
[ "$(jq -r .consistent "$T/verify.json")" = true ] || fail "verify: $(cat "$T/verify.json")"
[ "$(ssi)" = $((SENT - 1)) ] || fail "SSI $(ssi), $SENT requests sent"
n=$(jq '[.. | objects | select(has("digest"))] | length' "$T/verify.json")
pass "br2k verify: consistent at SSI $(ssi) ($n replicas with a digest), $SENT requests"

bridges=()
for w in w1 w2 w3; do bridges+=("$(app_pid "$w")"); done
for w in w1 w2 w3 w4 w5; do stop_worker "$w"; done
kill -TERM "$SPID"
rc=0; wait "$SPID" || rc=$?
[ "$rc" = 0 ] && [ ! -e "$T/app.sock" ] || fail "br2k-app-serve --listen: exit $rc on SIGTERM, socket $(ls "$T/app.sock" 2>&1)"
for pid in "${bridges[@]}"; do
    wait_for 5 eval "! kill -0 $pid" || fail "bridge process $pid outlived its worker"
done
grep -q "application 'infodid' open over the protocol (process [0-9]*): LPI -1, with an external effect" "$T/w1.log" ||
    fail "w1 did not open the bridged InfoDID with its external effect"
pass "clean stop: every worker exited 0 and closed its bridge"

# Republish (0x09) through the bridge: InfoDID's `republish` on w1's state
# gives, as of its LPI, the whole index that the External calls left in
# Redis (ext:did, ext:active): after a Redis failover that lost external
# writes, the engine puts this view in place of the one in Redis
"$SERVE" --listen "$T/rep.sock" infodid >>"$T/serve.log" 2>&1 &
RPID=$!; PIDS+=("$RPID")
wait_for 10 test -S "$T/rep.sock" || fail "br2k-app-serve --listen did not listen"
rc_ HGETALL "br2k:{$SVC}:ext:did" | paste - - | sort >"$T/ext-did.txt"
python3 - "$T/rep.sock" "$T/w1/app" >"$T/rep.out" 2>&1 <<'PY' || fail "Republish through the bridge: $(tail -2 "$T/rep.out")"
import json, socket, struct, sys
s = socket.socket(socket.AF_UNIX); s.connect(sys.argv[1])
def send(t, p=b""): s.sendall(struct.pack(">IB", len(p) + 1, t) + p)
def recv():
    h = b""
    while len(h) < 5: h += s.recv(5 - len(h))
    n, t = struct.unpack(">IB", h); p = b""
    while len(p) < n - 1: p += s.recv(n - 1 - len(p))
    return t, p
send(1, json.dumps({"protocol": 1, "dir": sys.argv[2]}).encode())
t, p = recv(); o = json.loads(p)
assert t == 0x81 and o.get("external") is True and o.get("republish") is True, (hex(t), o)
send(9, struct.pack(">q", 7))
t, p = recv()
assert t == 0x89, (hex(t), p[:200])
lpi, n = struct.unpack(">qI", p[:12]); q = 12
print("lpi", lpi, o["lpi"])
for _ in range(n):
    kind = p[q]; q += 1; f = []
    for _ in range(3):
        (k,) = struct.unpack(">I", p[q:q + 4]); f.append(p[q + 4:q + 4 + k].decode()); q += 4 + k
    q += 8
    print("op", kind, *f)
assert q == len(p), "trailing bytes"
send(7); t, _ = recv(); assert t == 0x87
PY
want_lpi=$(awk '$1 == "lpi" {print $3}' "$T/rep.out")
[ "$(awk '$1 == "lpi" {print $2}' "$T/rep.out")" = "$want_lpi" ] && [ "$want_lpi" = $((SENT - 1)) ] ||
    fail "Republish gave the view of LPI $(awk '$1 == "lpi"' "$T/rep.out"), the state is at $((SENT - 1))"
awk '$1 == "op" && $2 == 3 && $3 == "did" {print $4 "\t" $5}' "$T/rep.out" | sort >"$T/rep-did.txt"
cmp -s "$T/rep-did.txt" "$T/ext-did.txt" ||
    fail "Republish's ext:did differs from Redis's: $(diff "$T/rep-did.txt" "$T/ext-did.txt" | head -4 | tr '\n' ' ')"
ract=$(awk '$1 == "op" && $2 == 1 && $3 == "active" {print $4}' "$T/rep.out")
[ "$ract" = "$(rc_ GET "br2k:{$SVC}:ext:active")" ] || fail "Republish's ext:active '$ract', Redis's $(rc_ GET "br2k:{$SVC}:ext:active")"
[ "$(grep -c '^op' "$T/rep.out")" = $(($(wc -l <"$T/ext-did.txt") + 1)) ] || fail "Republish gave other ops: $(grep '^op' "$T/rep.out" | grep -v ' did \| active ' | head -2)"
kill -TERM "$RPID"; wait "$RPID" || fail "br2k-app-serve --listen exited $? on SIGTERM"
pass "Republish through the bridge: InfoDID's whole view at LPI $want_lpi ($(wc -l <"$T/ext-did.txt") DIDs, active $ract) equals what External left in Redis"
# a sanitizer build: nothing reported by the bridges (their stderr is in the
# workers' logs) or the workers
! grep -l "Sanitizer" "$T"/*.log >&2 || fail "a sanitizer report (the files above)"
