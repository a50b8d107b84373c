# core_kill_nobackup.sh - get-the-latest-state before the first backup, on
# real redis-server, the request log, anvil with the registry (no backup is
# ever made: SV stays 1) and InfoDID workers that can restore:
#  - a follower killed in the middle of applying a request (the InfoDID
#    hook holds `register` halfway) finds its in-flight mark, finds no
#    backup, and since the log still holds every record from offset 0 it
#    rebuilds from an empty state, replays the whole log and converges to
#    the others' digest (it used to stop for good: "the registry holds no
#    backup yet");
#  - the same for a local state that fails its own integrity check;
#  - on Redis Streams (BR2K_TEST_LOG=redis), where records can really be
#    deleted: once the log no longer starts at offset 0, the same kill
#    ends with exit 3 and one clear line (nothing to rebuild from, I1);
#  - a log that lost its data (offsets from 0 again, other records) is
#    never replayed as ours: exit 3, the state and its mark kept (I1).
source "$(dirname "$0")/lib.sh"
source "$(dirname "$0")/core_helpers.bash"
source "$(dirname "$0")/backup_helpers.bash"
APP=infodid

start_redis
start_devkafka
start_chain
RARGS=(--eth-rpc "$ETH_RPC" --registry "$REG" --service-key-file "$T/service.key")
for w in w1 w2 w3; do start_worker "$w" "${RARGS[@]}"; done
wait_for 15 has_leader || fail "no leader"

n=0
load() { # load COUNT: COUNT signed registrations from a fresh client prefix
    n=$((n + 1))
    "$BIN/br2k" --redis "$REDIS" --kafka "$KAFKA" submit --clients 2 --count "$1" \
        --prefix "c$n.$BASHPID" >"$T/load$n.out" 2>&1 || fail "load $n: $(tail -3 "$T/load$n.out")"
}
ssi() { rc_ GET "br2k:{$SVC}:SSI"; }
all_at() { at "$(ssi)" "$@"; }
follower() { local w; for w in "$@"; do [ "$w" = "$(leader_id)" ] || { echo "$w"; return; }; done; }
inflight() { # the in-flight mark of worker.pos is set
    read -r _ _ _ _ first _ <"$T/$1/worker.pos"
    [ "$first" -ge 0 ]
}
running() { kill -0 "${WPID[$1]}" 2>/dev/null; }
# kill_mid_request ID: restart ID with the hold hook, send 4 requests and
# SIGKILL it while it holds one halfway (its in-flight mark set)
kill_mid_request() {
    stop_worker "$1"
    BR2K_TEST_HOLD_APPLY_MS=5000 start_worker "$1" "${RARGS[@]}"
    wait_for 30 role_is "$1" follower || fail "$1 did not start following"
    load 4 &
    local lp=$!
    wait_for 20 inflight "$1" || fail "$1 never held a request mid-apply"
    kill -KILL "${WPID[$1]}"; wait "${WPID[$1]}" 2>/dev/null || true
    wait "$lp" || fail "load during the kill failed"
    grep -q "BR2K_TEST_HOLD_APPLY_MS" "$T/$1.log" || fail "the hook was not active"
}

load 100
wait_for 30 all_at w1 w2 w3 || { show w1 w2 w3; fail "replicas did not converge"; }
[ "$(sv)" = 1 ] && [ "$(chain_sv)" = 1 ] || fail "SV $(sv), chain $(chain_sv): a backup was made"

# 1. killed in the middle of a request, no backup yet
F=$(follower w1 w2 w3)
kill_mid_request "$F"
: >"$T/$F.log"
start_worker "$F" "${RARGS[@]}"
converged() { running "$F" && all_at w1 w2 w3; }
wait_for 60 converged || { show w1 w2 w3; tail -5 "$T/$F.log"; fail "$F is not running or did not converge after the mid-request kill"; }
grep -q "get-the-latest-state: stopped in the middle of records" "$T/$F.log" || fail "$F did not see its in-flight mark"
grep -q "no backup yet and log .* still holds every record from offset 0: rebuilding from an empty state" "$T/$F.log" ||
    fail "$F did not say it rebuilt from an empty state: $(grep get-the-latest "$T/$F.log")"
[ "$(metric "$F" applied)" = $(($(ssi) + 1)) ] || fail "$F applied $(metric "$F" applied) records, expected all $(($(ssi) + 1)) from offset 0"
ls -d "$T/$F"/app.damaged-* >/dev/null 2>&1 || fail "the interrupted state was not kept aside"
pass "$F killed mid-request before any backup: rebuilt from an empty state, replayed $(metric "$F" applied) records from 0, same digest at SSI $(ssi)"
grep -q "Sanitizer\|runtime error" "$T"/*.log && fail "sanitizer report in a log"

# 2. a local state that fails its integrity check, no backup yet
stop_worker "$F"
echo "not a checkpoint" >"$T/$F/app/checkpoint"
: >"$T/$F.log"
start_worker "$F" "${RARGS[@]}"
load 10
wait_for 60 converged || { show w1 w2 w3; tail -5 "$T/$F.log"; fail "$F did not converge after its state was damaged"; }
grep -q "get-the-latest-state: the local state failed its integrity check" "$T/$F.log" || fail "$F did not see the damage"
grep -q "rebuilding from an empty state" "$T/$F.log" || fail "$F did not rebuild from an empty state"
pass "$F with a damaged state before any backup: rebuilt from an empty state, same digest at SSI $(ssi)"

# 3. no backup and the log no longer starts at 0: nothing to rebuild from
if [ "$LOG_BACKEND" = redis ]; then
    kill_mid_request "$F"
    stream=
    for k in $(redis-cli -p "$LOG_PORT" --scan); do
        [ "$(redis-cli -p "$LOG_PORT" TYPE "$k")" = stream ] && stream=$k
    done
    [ -n "$stream" ] || fail "no stream in the log's Redis"
    redis-cli -p "$LOG_PORT" XTRIM "$stream" MINID 1-5 >/dev/null
    [ "$(log_offsets "$TOPIC" | cut -d' ' -f1)" = 5 ] || fail "the log starts at $(log_offsets "$TOPIC")"
    : >"$T/$F.log"
    start_worker "$F" "${RARGS[@]}"
    rc=0; wait "${WPID[$F]}" || rc=$?
    [ "$rc" = 3 ] || fail "$F exited $rc with no backup and a log starting at 5, expected 3"
    grep -q "no backup yet, and log .* starts at offset 5, not 0" "$T/$F.log" ||
        fail "unclear error: $(grep -i error "$T/$F.log" | tail -2)"
    inflight "$F" || fail "$F lost its in-flight mark"
    pass "no backup and the log starts at 5: $F stops with exit 3: $(grep -o 'the registry holds no backup yet, and[^:]*' "$T/$F.log" | head -1)"
fi

# 4. no backup, and the log is not the one the worker was reading (the
# broker lost its data and offsets start again at 0, with other records):
# never replayed as if it were ours (I1), exit 3, the state and its mark kept
if [ "$LOG_BACKEND" != redis ]; then kill_mid_request "$F"; fi # (redis: stopped by 3.)
inflight "$F" || fail "$F has no in-flight mark before the log is lost"
read -r _ _ L _ <"$T/$F/worker.pos"
log_lose_data
produce $((L + 20)) 0 other >/dev/null || fail "cannot fill the new log"
[ "$(log_offsets "$TOPIC" | cut -d' ' -f1)" = 0 ] || fail "the new log does not start at 0"
: >"$T/$F.log"
start_worker "$F" "${RARGS[@]}"
rc=0; wait "${WPID[$F]}" || rc=$?
[ "$rc" = 3 ] || fail "$F exited $rc on a log that lost its data, expected 3: $(tail -2 "$T/$F.log")"
grep -q "get-the-latest-state failed.*record $L of log .* is not the record this worker applied" "$T/$F.log" ||
    fail "unclear error: $(grep -i error "$T/$F.log" | tail -2)"
inflight "$F" || fail "$F lost its in-flight mark"
pass "no backup and a log that lost its data (offsets from 0 again, other records): $F stops with exit 3, mark kept"

grep -q "Sanitizer\|runtime error" "$T"/*.log && fail "sanitizer report in a log"
echo "core_kill_nobackup: all checks passed"
