# stack.sh - deploy/local/stack: up, status, env, a second stack beside the
# first, 'up' on a running DIR refused, and 'down' leaves no process behind.
source "$(dirname "$0")/lib.sh"
STACK=$SRC/deploy/local/stack
export BR2K_BUILD_DIR=$BUILD

# both stacks are stopped by the trap too if the test fails midway
stack_cleanup() { "$STACK" down --dir "$T/a" >/dev/null 2>&1 || true; "$STACK" down --dir "$T/b" >/dev/null 2>&1 || true; }
trap 'rc=$?; stack_cleanup; (exit $rc); cleanup' EXIT

"$STACK" up --dir "$T/a" >"$T/up-a.log"
"$STACK" up --dir "$T/b" --service other >"$T/up-b.log"
pass "two stacks up side by side"

pids_of() { jq -r '.parts[].pid' "$1/stack.json"; }
A_PIDS=$(pids_of "$T/a"); B_PIDS=$(pids_of "$T/b")
[ "$(echo "$A_PIDS" | wc -l)" -eq 3 ] || fail "stack a should record 3 processes"

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
  "$BIN/br2k" ping >/dev/null || fail "br2k ping with the stack's env" )
pass "status and env"

# up on a running DIR says so and exits non-zero, touching nothing
if "$STACK" up --dir "$T/a" 2>"$T/up-again.err"; then fail "second up on a running dir succeeded"; fi
grep -q "already running" "$T/up-again.err" || fail "second up: $(cat "$T/up-again.err")"
[ "$(pids_of "$T/a")" = "$A_PIDS" ] || fail "second up changed the recorded PIDs"
pass "up on a running dir refused"

# a bad option is a one-line error
if "$STACK" up --dir "$T/c" --workers many 2>"$T/bad.err"; then fail "bad --workers accepted"; fi
[ "$(cat "$T/bad.err")" = "stack: invalid value 'many' for '--workers': expected an integer from 0 to 64" ] ||
    fail "bad option message: $(cat "$T/bad.err")"

running() { [ -r "/proc/$1/stat" ] && [ "$(awk '{print $3}' "/proc/$1/stat")" != Z ]; }
"$STACK" down --dir "$T/a" >/dev/null
for p in $A_PIDS; do running "$p" && fail "stack a left pid $p running"; done
for p in $B_PIDS; do running "$p" || fail "stack a's down stopped stack b's pid $p"; done
"$STACK" down --dir "$T/b" >/dev/null
for p in $B_PIDS; do running "$p" && fail "stack b left pid $p running"; done
[ ! -e "$T/a/stack.json" ] || fail "stack.json left after down"
pass "down leaves no process behind"
