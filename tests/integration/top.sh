#!/usr/bin/env bash
# top.sh - `br2k top` and `br2k probe ready|live` on 3 no-op workers.
#   - `br2k top` runs on a terminal (a detached tmux session on a private
#     socket): it shows the leader, and the leader's LPI rises between two
#     captures while records are produced; q and Ctrl-C quit with exit 0 and
#     the terminal back in canonical mode;
#   - `br2k top --once --json` prints the same JSON as `br2k status --json`
#     (both taken while idle; only updated_ms and heartbeat_age_ms may
#     differ);
#   - probes: a caught-up worker is ready and live; a SIGKILLed worker is
#     neither once its heartbeat expired (TTL 3 s), and top calls it dead;
#     an unknown id is neither; "not caught up" / "joining" give their
#     reason; Redis unreachable: live 0 (with a note), ready 1; bad usage 2;
#   - `--process NAME` (br2k-backupd, br2k-registryd: no heartbeat): live
#     while a process of that name runs, not when it is stopped or gone;
#     ready when Redis (and Ethereum, when given) answer too.
source "$(dirname "$0")/lib.sh"
source "$(dirname "$0")/core_helpers.bash"

command -v tmux >/dev/null || fail "tmux is not installed (scripts/install-deps installs it)"
start_redis
start_devkafka
export BR2K_REDIS=$REDIS BR2K_SERVICE=$SVC
BR2K=("$BIN/br2k")

for w in w1 w2 w3; do start_worker "$w"; done
all_caught_up() {
    "${BR2K[@]}" status --json | jq -e '.leader != null and
        ([.members[] | select(.alive and .metrics.caught_up == 1)] | length) == 3'
}
produce 50 >/dev/null
all_at() { for w in w1 w2 w3; do [ "$(metric "$w" lpi)" = "$1" ] || return 1; done; }
wait_for 30 all_at 49 || fail "workers not at LPI 49: $("${BR2K[@]}" status 2>&1)"
wait_for 10 all_caught_up || fail "workers not caught up: $("${BR2K[@]}" status --json)"
L=$(leader_id)
F=w1; [ "$L" != w1 ] || F=w2 # a follower, killed below
pass "3 workers caught up at LPI 49, leader $L"

# 1. the live view on a terminal
TM=(tmux -S "$T/tmux.sock")
cat >"$T/pane.sh" <<EOF
'$BIN/br2k' --redis '$REDIS' --service '$SVC' top --interval 300 2>'$T/top1.log'
echo "top-exit-1=\$?"; stty -a | tr ' ;' '\n\n' | grep -x -- '-\\?icanon' | sed 's/^/tty-1:/'
read -r _
'$BIN/br2k' --redis '$REDIS' --service '$SVC' top --interval 300 2>'$T/top2.log'
echo "top-exit-2=\$?"; stty -a | tr ' ;' '\n\n' | grep -x -- '-\\?icanon' | sed 's/^/tty-2:/'
sleep 600
EOF
"${TM[@]}" new-session -d -s top -x 200 -y 50 "bash '$T/pane.sh'"
PIDS+=("$("${TM[@]}" display-message -p -t top '#{pid}')") # the tmux server
pane() { "${TM[@]}" capture-pane -p -t top; }
shows_leader() { pane | grep -q "^leader  $L (epoch"; }
wait_for 15 shows_leader || fail "top shows no leader $L: $(pane)"

produce 4000 500 more >"$T/produce.out" &
PRODUCER=$!
sleep 2
pane >"$T/capture1.txt"
sleep 3
pane >"$T/capture2.txt"
l1=$(awk -v id="$L" '$1 == id { print $3 }' "$T/capture1.txt")
l2=$(awk -v id="$L" '$1 == id { print $3 }' "$T/capture2.txt")
[[ "$l1" =~ ^[0-9]+$ && "$l2" =~ ^[0-9]+$ ]] ||
    fail "no LPI of $L in the captures: $(cat "$T/capture1.txt" "$T/capture2.txt")"
[ "$l2" -gt "$l1" ] || fail "LPI of $L shown did not rise: $l1 then $l2: $(cat "$T/capture2.txt")"
for w in w1 w2 w3; do
    grep -q "^$w " "$T/capture2.txt" || fail "member $w not shown: $(cat "$T/capture2.txt")"
done
grep -q "^backup  none   last backup: none" "$T/capture2.txt" ||
    fail "backup line: $(cat "$T/capture2.txt")"
grep -q 'q quits' "$T/capture2.txt" || fail "no header: $(cat "$T/capture2.txt")"
pass "top shows leader $L, LPI $l1 then $l2"
cat "$T/capture2.txt"

"${TM[@]}" send-keys -t top q
quit_1() { pane | grep -q '^top-exit-1=0$' && pane | grep -q '^tty-1:'; }
wait_for 10 quit_1 || fail "top did not quit on q with exit 0: $(pane)"
pane | grep -q '^tty-1:icanon$' || fail "terminal not restored after q: $(pane)"
"${TM[@]}" send-keys -t top Enter
second_top() { pane | grep -q 'q quits' && ! pane | grep -q '^top-exit-1='; }
wait_for 15 second_top || fail "second top did not start: $(pane)"
"${TM[@]}" send-keys -t top C-c
quit_2() { pane | grep -q '^top-exit-2=0$' && pane | grep -q '^tty-2:'; }
wait_for 10 quit_2 || fail "top did not quit on Ctrl-C with exit 0: $(pane)"
pane | grep -q '^tty-2:icanon$' || fail "terminal not restored after Ctrl-C: $(pane)"
"${TM[@]}" kill-session -t top
pass "q and Ctrl-C quit top, terminal restored"

wait "$PRODUCER" || fail "producer: $(cat "$T/produce.out")"
wait_for 60 all_at 4049 || fail "workers not at LPI 4049: $("${BR2K[@]}" status 2>&1)"

# 2. top --once --json is status --json (idle: only updated_ms and the
# heartbeat's age move)
norm() { jq -S 'del(.members[].metrics.updated_ms, .members[].heartbeat_age_ms)' "$1"; }
same_json() {
    "${BR2K[@]}" status --json >"$T/status.json" &&
        "${BR2K[@]}" top --once --json >"$T/top.json" &&
        [ "$(norm "$T/status.json")" = "$(norm "$T/top.json")" ]
}
wait_for 10 same_json || fail "top --once --json differs from status --json:
$(cat "$T/status.json")
$(cat "$T/top.json")"
jq -e --arg l "$L" '.leader.id == $l and (.members | length) == 3 and .ssi == 4049 and
    has("backup_last") and .backup == null' "$T/top.json" >/dev/null ||
    fail "top --once --json: $(cat "$T/top.json")"
"${BR2K[@]}" --json top --once >"$T/top2.json" || fail "br2k --json top --once failed"
jq -e --arg l "$L" '.leader.id == $l' "$T/top2.json" >/dev/null ||
    fail "--json before the command: $(cat "$T/top2.json")"
"${BR2K[@]}" top --once >"$T/once.txt" || fail "top --once failed"
grep -q "^leader  $L (epoch" "$T/once.txt" || fail "top --once: $(cat "$T/once.txt")"
grep -q $'\033' "$T/once.txt" && fail "top --once printed escape sequences"
pass "top --once --json equals status --json"

# 3. probes
probe() { # WHAT ID [ARGS]: sets prc and pout
    set +e
    pout=$("${BR2K[@]}" probe "$@" 2>"$T/probe.err")
    prc=$?
    set -e
}
expect() { # RC WHAT ID [ARGS]
    local want=$1; shift
    probe "$@"
    [ "$prc" -eq "$want" ] || fail "probe $*: exit $prc, expected $want ($pout $(cat "$T/probe.err"))"
}
for w in w1 w2 w3; do
    expect 0 ready --id "$w"
    expect 0 live --id "$w"
done
pass "caught-up workers ready and live ($pout)"

kill -KILL "${WPID[$F]}"
wait "${WPID[$F]}" 2>/dev/null || true
expect 0 live --id "$F" # its heartbeat lives on for up to 3 s
heartbeat_gone() { ! "${BR2K[@]}" probe live --id "$F"; }
wait_for 10 heartbeat_gone || fail "live of killed $F still 0 after 10 s"
expect 1 live --id "$F"
[ "$pout" = "no heartbeat" ] || fail "live of killed $F: '$pout'"
expect 1 ready --id "$F"
[ "$pout" = "no heartbeat" ] || fail "ready of killed $F: '$pout'"
"${BR2K[@]}" top --once >"$T/once2.txt"
grep -E -q "^$F .* dead$" "$T/once2.txt" || fail "top does not show $F dead: $(cat "$T/once2.txt")"
pass "killed $F: not live, not ready ('$pout'), top says dead"
expect 0 ready --id "$L"

expect 1 ready --id nosuch
[ "$pout" = "no heartbeat" ] || fail "ready of unknown id: '$pout'"
expect 1 live --id nosuch
pass "unknown id: not ready, not live"

# the reasons, on hand-made keys (a worker that is behind, one joining)
rc_ SET "br2k:{$SVC}:alive-behind" 1 PX 60000 >/dev/null
rc_ HSET "br2k:{$SVC}:metrics-behind" role follower lpi 10 ssi 20 caught_up 0 joining 0 \
    join_remaining 0 updated_ms "$(date +%s%3N)" >/dev/null
rc_ SET "br2k:{$SVC}:alive-joiner" 1 PX 60000 >/dev/null
rc_ HSET "br2k:{$SVC}:metrics-joiner" role follower lpi 5 ssi 305 caught_up 0 joining 1 \
    join_remaining 300 join_eta_s 7 updated_ms "$(date +%s%3N)" >/dev/null
expect 1 ready --id behind
[ "$pout" = "not caught up: lpi 10 < ssi 20" ] || fail "ready of behind: '$pout'"
expect 0 live --id behind
expect 1 ready --id joiner
[ "$pout" = "joining: 300 records to go" ] || fail "ready of joiner: '$pout'"
rc_ SADD "br2k:{$SVC}:members" joiner behind >/dev/null
"${BR2K[@]}" top --once >"$T/once3.txt"
grep -E -q '^joiner .* joining, 300 to go, eta 7s +[0-9.]+s ago$' "$T/once3.txt" ||
    fail "top does not show joiner joining: $(cat "$T/once3.txt")"
grep -E -q '^behind .* behind ' "$T/once3.txt" || fail "top: behind: $(cat "$T/once3.txt")"
rc_ SREM "br2k:{$SVC}:members" joiner behind >/dev/null
pass "reasons: behind, joining"

PORT=$(free_port) # nothing listens there
set +e
out=$("${BR2K[@]}" --redis "127.0.0.1:$PORT" probe live --id w1 2>"$T/live.err")
rc=$?
set -e
[ "$rc" -eq 0 ] || fail "live with Redis unreachable: exit $rc"
grep -q "cannot reach Redis" "$T/live.err" || fail "live: no note on stderr: $(cat "$T/live.err")"
set +e
out=$("${BR2K[@]}" --redis "127.0.0.1:$PORT" probe ready --id w1 2>/dev/null)
rc=$?
set -e
[ "$rc" -eq 1 ] || fail "ready with Redis unreachable: exit $rc"
[[ "$out" == "cannot reach Redis: "* ]] || fail "ready with Redis unreachable: '$out'"
pass "Redis unreachable: live 0 with a note, ready 1 ($out)"

# a daemon without a heartbeat (--process): a process of a name no other
# test uses, a copy of sleep
P=br2kprobe$$
cp "$(command -v sleep)" "$T/$P"
"$T/$P" 600 &
FAKE=$!; PIDS+=("$FAKE")
named() { [ "$(cat "/proc/$FAKE/comm")" = "$P" ]; }
wait_for 5 named || fail "the fake daemon $P did not start"
expect 0 live --process "$P"
[[ "$pout" == "live: $P (pid $FAKE) runs" ]] || fail "live --process: '$pout'"
expect 0 ready --process "$P"
[[ "$pout" == "ready: $P (pid $FAKE) runs; Redis answers" ]] || fail "ready --process: '$pout'"
set +e
pout=$("${BR2K[@]}" --eth-rpc "http://127.0.0.1:$(free_port)" probe ready --process "$P" 2>/dev/null)
prc=$?
set -e
[ "$prc" = 1 ] && [[ "$pout" == "cannot reach Ethereum: "* ]] || fail "ready, Ethereum down: $prc '$pout'"
kill -STOP "$FAKE"
expect 1 live --process "$P"
[ "$pout" = "$P (pid $FAKE) is stopped" ] || fail "live --process of a stopped one: '$pout'"
expect 1 ready --process "$P"
kill -KILL "$FAKE"
wait "$FAKE" 2>/dev/null || true
expect 1 live --process "$P"
[ "$pout" = "no process $P" ] || fail "live --process of none: '$pout'"
expect 2 live --process "$P" --id w1
pass "probes of a daemon by its process: live, ready, stopped, gone"

expect 2 ready
expect 2 live --id 'bad id!'
expect 2 sideways --id w1
probe
[ "$prc" -eq 2 ] || fail "probe alone: exit $prc"
expect 0 --help
set +e
"${BR2K[@]}" top --json >/dev/null 2>&1
rc=$?
set -e
[ "$rc" -eq 2 ] || fail "top --json without --once: exit $rc, expected 2"
pass "bad usage exits 2"
