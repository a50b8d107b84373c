# stack_ha.sh - deploy/local/stack up --redis-ha: a primary, two replicas and
# three Sentinels on free ports, every program on sentinel://; a request is
# answered, the primary is SIGKILLed, Sentinel promotes a replica and the
# next request is answered too; 'down' stops every recorded PID.
source "$(dirname "$0")/lib.sh"
STACK=$SRC/deploy/local/stack
export BR2K_BUILD_DIR=$BUILD
trap 'rc=$?; set +e; "$STACK" down --dir "$T/a" >/dev/null 2>&1; (exit $rc); cleanup' EXIT

"$STACK" up --dir "$T/a" --redis-ha --app noop >"$T/up.log" || fail "up --redis-ha: $(tail -3 "$T/up.log")"
S=$T/a/stack.json
REDIS=$(jq -r .redis "$S")
[[ $REDIS =~ ^sentinel://127\.0\.0\.1:[0-9]+,127\.0\.0\.1:[0-9]+,127\.0\.0\.1:[0-9]+/br2k$ ]] ||
    fail "the stack's Redis address is '$REDIS'"
[ "$(jq '[.parts[] | select(.program == "redis-server")] | length' "$S")" = 3 ] || fail "not 3 redis-server"
[ "$(jq '[.parts[] | select(.program == "redis-sentinel")] | length' "$S")" = 3 ] || fail "not 3 redis-sentinel"
"$STACK" status --dir "$T/a" >"$T/status.log" || fail "status: $(cat "$T/status.log")"
pass "up --redis-ha: 3 redis-server, 3 redis-sentinel, BR2K_REDIS $REDIS"

sent_port=$(jq -r '[.parts[] | select(.program == "redis-sentinel")][0].addr' "$S" | cut -d: -f2)
primary() { redis-cli -p "$sent_port" SENTINEL get-master-addr-by-name br2k | tail -1; }
p0=$(primary)
[ "$(redis-cli -p "$p0" CONFIG GET min-replicas-to-write | tail -1)" = 1 ] || fail "min-replicas-to-write is not 1"
[ "$(redis-cli -p "$p0" CONFIG GET appendfsync | tail -1)" = always ] || fail "appendfsync is not always"
submit() {
    printf '{"v":1,"id":{"client":"ha","seq":%d},"op":"noop","payload":{},"ts":0,"sig":"0x"}' "$1" |
        env BR2K_REDIS="$REDIS" BR2K_KAFKA="$(jq -r .kafka "$S")" BR2K_SERVICE=default \
            "$BIN/br2k" submit --wait-ms 30000
}
r1=$(submit 1) || fail "first request: $r1"
[ "$(jq -r .id <<<"$r1")" = "ha:1" ] || fail "first result: $r1"
pass "a request answered through the Sentinels: $r1"

pid=$(jq -r --arg a "127.0.0.1:$p0" '.parts[] | select(.program == "redis-server" and .addr == $a) | .pid' "$S")
[ -n "$pid" ] || fail "no recorded redis-server on the primary's port $p0"
kill -KILL "$pid"
moved() { [ "$(primary)" != "$p0" ]; }
wait_for 30 moved || fail "Sentinel did not promote a replica"
r2=$(submit 2) || fail "request after the failover: $r2"
[ "$(jq -r .id <<<"$r2")" = "ha:2" ] || fail "result after the failover: $r2"
pass "primary $p0 SIGKILLed: Sentinel promoted $(primary), the next request answered: $r2"

pids=$(jq -r '.parts[].pid' "$S")
"$STACK" down --dir "$T/a" >"$T/down.log" || fail "down: $(cat "$T/down.log")"
for p in $pids; do
    [ "$p" = "$pid" ] && continue
    if [ -r "/proc/$p/stat" ] && [ "$(awk '{print $3}' "/proc/$p/stat")" != Z ]; then
        tr '\0' ' ' <"/proc/$p/cmdline" | grep -q "redis\|br2k\|anvil" && fail "pid $p still runs after down"
    fi
done
pass "down stopped every recorded process"
