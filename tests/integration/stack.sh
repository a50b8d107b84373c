# stack.sh - deploy/local/stack: up, status, env, a second stack beside the
# first, 'up' on a running DIR refused, and 'down' leaves no process behind.
source "$(dirname "$0")/lib.sh"
STACK=$SRC/deploy/local/stack
export BR2K_BUILD_DIR=$BUILD

# both stacks are stopped by the trap too if the test fails midway
stack_cleanup() { "$STACK" down --dir "$T/a" >/dev/null 2>&1 || true; "$STACK" down --dir "$T/b" >/dev/null 2>&1 || true; }
trap 'rc=$?; set +e; stack_cleanup; (exit $rc); cleanup' EXIT

# the request log: br2k-devkafka, or with BR2K_TEST_LOG=redis `--log redis`
"$STACK" up --dir "$T/a" --log "$LOG_BACKEND" >"$T/up-a.log"
"$STACK" up --dir "$T/b" --service other --workers 0 --log "$LOG_BACKEND" >"$T/up-b.log"
pass "two stacks up side by side (log: $LOG_BACKEND)"

# running PID: the process that had PID when it was recorded (its start time
# in /proc/PID/stat is the one noted; other tests' processes may reuse the
# number) still runs and is not a zombie
declare -A STARTED
started_at() { awk '{print $22}' "/proc/$1/stat" 2>/dev/null || true; }
note() { local p; for p in "$@"; do STARTED[$p]=$(started_at "$p"); done; }
running() {
    [ -r "/proc/$1/stat" ] && [ "$(awk '{print $3}' "/proc/$1/stat")" != Z ] &&
        [ "$(started_at "$1")" = "${STARTED[$1]:-$(started_at "$1")}" ]
}
pids_of() { jq -r '.parts[].pid' "$1/stack.json"; }
A_PIDS=$(pids_of "$T/a"); B_PIDS=$(pids_of "$T/b")
note $A_PIDS $B_PIDS
# 3 servers (2 when the log is a Redis stream in the stack's redis-server),
# registryd, backupd, the gateway, 3 workers
servers=3; [ "$LOG_BACKEND" = kafka ] || servers=2
[ "$(echo "$A_PIDS" | wc -l)" -eq $((servers + 6)) ] || fail "stack a should record $((servers + 6)) processes"
[ "$(echo "$B_PIDS" | wc -l)" -eq $((servers + 3)) ] || fail "stack b should record $((servers + 3)) processes"
grep -q "gateway   http://127.0.0.1:[0-9]* (pid [0-9]*" "$T/up-a.log" || fail "up did not print the gateway"
if [ "$LOG_BACKEND" = redis ]; then
    [ "$(jq -r .kafka "$T/a/stack.json")" = "redis://$(jq -r .redis "$T/a/stack.json")" ] ||
        fail "stack a's log is not its redis-server: $(jq -c . "$T/a/stack.json")"
fi

# each part answers, in both stacks, on different ports
"$STACK" status --dir "$T/a" --json >"$T/status-a.json" || fail "stack a status"
"$STACK" status --dir "$T/b" --json >"$T/status-b.json" || fail "stack b status"
[ "$(jq -r .answers.ok "$T/status-a.json")" = true ] || fail "stack a does not answer"
jq -r .answers.kafka.detail "$T/status-b.json" | grep -q "br2k.other.requests" || fail "stack b topic"
[ "$(jq -r .redis "$T/a/stack.json")" != "$(jq -r .redis "$T/b/stack.json")" ] || fail "same redis"

# env prints exports that point br2k at the stack
( eval "$("$STACK" env --dir "$T/a")"
  [ "$BR2K_REDIS" = "$(jq -r .redis "$T/a/stack.json")" ] || fail "env BR2K_REDIS"
  redis-cli -u "redis://$BR2K_REDIS" ping | grep -q PONG || fail "redis from env"
  "$BIN/br2k" ping >/dev/null || fail "br2k ping with the stack's env"
  # the gateway is ready once a leader holds the lease, and shows it
  wait_for 20 curl -sf "$BR2K_GATEWAY/readyz" || fail "gateway $BR2K_GATEWAY not ready"
  [ "$(curl -sf "$BR2K_GATEWAY/v1/status" | jq -r .leader.id)" != null ] || fail "gateway status" )
pass "status and env"

# pause-leader and kill-leader act on the current leader: a new one takes over
status_a() { env BR2K_REDIS="$(jq -r .redis "$T/a/stack.json")" "$BIN/br2k" status --json; }
epoch_above() { [ "$(status_a | jq -r '.leader.epoch // 0')" -gt "$1" ]; }
wait_for 20 epoch_above 0 || fail "no leader in stack a"
read -r L1 E1 < <(status_a | jq -r '"\(.leader.id) \(.leader.epoch)"')
"$STACK" pause-leader 2 --dir "$T/a" >"$T/pause.log" || fail "pause-leader: $(cat "$T/pause.log")"
grep -q "paused leader $L1" "$T/pause.log" || fail "pause-leader did not pause $L1"
wait_for 10 epoch_above "$E1" || fail "no new leader after pausing $L1"
read -r L2 E2 < <(status_a | jq -r '"\(.leader.id) \(.leader.epoch)"')
"$STACK" kill-leader --dir "$T/a" >"$T/kill.log" || fail "kill-leader"
grep -q "killed leader $L2" "$T/kill.log" || fail "kill-leader did not kill $L2"
kpid=$(jq -r --arg id "$L2" '.parts[] | select(.id == $id) | .pid' "$T/a/stack.json")
sleep 0.5
! running "$kpid" || fail "kill-leader left $L2 (pid $kpid) running"
wait_for 20 epoch_above "$E2" || fail "no new leader after killing $L2"
pass "pause-leader ($L1, epoch $E1 -> $E2) and kill-leader ($L2)"

# the registry contract was deployed with the access information, and
# registryd recorded every leader change on the chain
reg_show() { env BR2K_ETH_RPC="$(jq -r .eth_rpc "$T/a/stack.json")" \
    BR2K_REGISTRY="$(jq -r .registry "$T/a/stack.json")" "$BIN/br2k" registry show --json; }
reg_epoch_above() { [ "$(reg_show | jq -r '.leader.epoch // 0')" -gt "$1" ]; }
wait_for 20 reg_epoch_above "$E2" || fail "the chain's leader record: $(reg_show)"
reg_show | jq -e --arg k "$(jq -r .kafka "$T/a/stack.json")" '.accessInfo.bootstrap == $k' >/dev/null ||
    fail "access information: $(reg_show)"
pass "registry: access information published, leader record at epoch $(reg_show | jq .leader.epoch)"

# backups: `br2k backup now` through the stack's backupd; `br2k backups`
# decrypts the on-chain log with the stack's service key; add-worker
# starts a new worker that joins from that backup
stack_env() { eval "$("$STACK" env --dir "$T/a")"; }
( stack_env
  "$BIN/br2k" backup now --wait 60 >"$T/backup-now.log" 2>&1 || fail "backup now: $(cat "$T/backup-now.log"; tail -5 "$T/a/logs/backupd.log")"
  "$BIN/br2k" backups --json >"$T/backups.json" || fail "br2k backups: $(cat "$T/backups.json")"
  [ "$(jq -r '.[0].log.version' "$T/backups.json")" = 2 ] || fail "backups: $(cat "$T/backups.json")" )
"$STACK" add-worker --dir "$T/a" >"$T/add.log" || fail "add-worker: $(cat "$T/add.log")"
grep -q "started worker w4" "$T/add.log" || fail "add-worker: $(cat "$T/add.log")"
w4_caught_up() { [ "$(status_a | jq -r '.members[] | select(.id == "w4") | .metrics.caught_up')" = 1 ]; }
wait_for 60 w4_caught_up || fail "w4 did not catch up: $(tail -5 "$T/a/logs/worker-w4.log")"
grep -q "restored backup version 2" "$T/a/logs/worker-w4.log" || fail "w4 did not join from the backup"
A_PIDS=$(pids_of "$T/a"); note $A_PIDS
pass "backup now -> version 2, br2k backups decrypts it, add-worker: w4 joined from it"

# up on a running DIR says so and exits non-zero, touching nothing
if "$STACK" up --dir "$T/a" 2>"$T/up-again.err"; then fail "second up on a running dir succeeded"; fi
grep -q "already running" "$T/up-again.err" || fail "second up: $(cat "$T/up-again.err")"
[ "$(pids_of "$T/a")" = "$A_PIDS" ] || fail "second up changed the recorded PIDs"
pass "up on a running dir refused"

# a bad option is a one-line error
if "$STACK" up --dir "$T/c" --workers many 2>"$T/bad.err"; then fail "bad --workers accepted"; fi
[ "$(cat "$T/bad.err")" = "stack: invalid value 'many' for '--workers': expected an integer from 0 to 64" ] ||
    fail "bad option message: $(cat "$T/bad.err")"
if "$STACK" up --dir "$T/c" --log zookeeper 2>"$T/bad.err"; then fail "bad --log accepted"; fi
[ "$(cat "$T/bad.err")" = "stack: invalid value 'zookeeper' for '--log': expected kafka or redis" ] ||
    fail "bad option message: $(cat "$T/bad.err")"

"$STACK" down --dir "$T/a" >/dev/null
for p in $A_PIDS; do running "$p" && fail "stack a left pid $p running"; done
for p in $B_PIDS; do running "$p" || fail "stack a's down stopped stack b's pid $p"; done
"$STACK" down --dir "$T/b" >/dev/null
for p in $B_PIDS; do running "$p" && fail "stack b left pid $p running"; done
[ ! -e "$T/a/stack.json" ] || fail "stack.json left after down"
pass "down leaves no process behind"
