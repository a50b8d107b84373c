#!/usr/bin/env bash
# chaos.sh - the paper's Section V as an automated chaos test, with a
# Table 4 style report. See tests/chaos/README.md and --help.
set -euo pipefail
# the whole script is one command, read before it runs: editing this file
# during a (long) run does not change what the run does
{

usage() {
    cat <<'EOF'
Usage: tests/chaos/chaos.sh [OPTIONS]

Starts a whole local BR2K service on 127.0.0.1 (redis-server, br2k-devkafka,
anvil with the registry contract, br2k-registryd, br2k-backupd, W InfoDID
workers, or workers of an example application: --app), sends K clients x C
signed InfoDID registrations (or the example's requests) while an attacker
pauses the leader it finds in the registry contract (SIGSTOP/SIGCONT) and
kills workers in the middle of a request (SIGKILL, then restarts them), then
waits for every worker to reach SSI, compares every replica record by record
and prints a report shaped like the paper's Table 4 (also written as JSON).
Exit 0: nothing lost, nothing applied twice, replicas consistent; 1: a check
failed; 2: a usage error.

Options:
  --app APP           the application the workers run (default: $BR2K_CHAOS_APP,
                      else infodid): infodid (signed registrations); node (the
                      token ledger worker/apps/examples/node-ledger, mints);
                      python (the key-value registry worker/apps/examples/
                      python-kv, puts); node and python run over the
                      application protocol (--app exec:...), the attacker also
                      SIGKILLs the application process mid-batch, and the
                      check reads each replica's application state
  --app-kills N       node/python: application processes SIGKILLed mid-batch,
                      leader and follower in turn (default 2; 0 for infodid)
  --scenario NAME     main (default): pauses and kills; or one fault scenario:
                      redis-restart, broker-faults, anvil-restart,
                      storage-down, backupd-kill, slow-follower,
                      fenced-snapshot (shows a backupd bug; README); on Redis
                      with two replicas and three Sentinels (I9):
                      redis-failover (SIGKILL the primary, Sentinel promotes
                      a replica, the old node comes back as a replica),
                      redis-stale-promotion (a replica misses the last
                      epoch and commits, then exactly it is promoted),
                      redis-node-lost (the primary never comes back)
  --backup-stop STEP  redis-stale-promotion: a backup is in flight, backupd
                      stopped at STEP (cut, wait, phase, snapshot, archive,
                      log, delete, raise, clear; its test hook), while the
                      failover loses its progress (I7; the promoted replica
                      holds the backup-run of an earlier backup in flight
                      instead); it goes on after the promotion, and the run
                      checks SV, the last backup and the history (no
                      version logged twice or skipped)
  --keep-leader       redis-stale-promotion: the leader is not killed, so the
                      promoted replica has its epoch and lease (the workers'
                      lease is 8 s, longer than the failover) but missed its
                      later commits: the same leader goes on with the same
                      token and must itself put SSI back and republish the
                      external view
  --failovers N       redis-failover: primaries killed in turn (default 1);
                      the report gives p50 and max of the time from each
                      primary's death to the next committed result
  --workers W         workers (default 5)
  --clients K         clients (default 5)
  --count C           registrations per client (default 10000)
  --rate R            requests/s per client, 0 = as fast as the window allows
                      (default 20)
  --window N          requests per client waiting for a result (default 20)
  --pauses P          stop attacking after P pauses (default: attack until the
                      load is done)
  --min-pauses P      fail unless at least P pauses happened (default 0)
  --min-kills N       fail unless at least N kills happened (default 0)
  --interval A-B      seconds between attacks, uniform in [A,B] (default 2-6)
  --pause-s S         seconds the leader stays paused (default 1.5)
  --kills K           SIGKILLs mid-request, leader and followers in turn
                      (default 3)
  --kill-every N      every Nth attack is a kill while kills remain (default 4);
                      a kill skipped (no request reached the target in time,
                      e.g. it was holding for a backup) is tried again at the
                      next attack
  --max-replicated M  backupd's --max-replicated (default 2000)
  --result-ms MS      a client retries after this long without a result
                      (default 1000: requests caught in a fault are retried)
  --snapshot-timeout-ms MS
                      backupd's --snapshot-timeout-ms (default: backupd's own,
                      300000; it gives a backup up at once when its leader
                      loses the lease)
  --paper             the paper's settings: --rate 2 --interval 30-120
                      --pause-s 15
  --out DIR           write report.json, report.txt and the logs here
                      (default: a temporary directory, removed on success)
  --drop-record       self-check: the checker drops one acknowledged record
                      from the last replica; the run must then FAIL
  --help              this text

Environment: BR2K_BUILD_DIR (default build), BR2K_SOURCE_DIR, BR2K_TEST_LOG,
BR2K_CHAOS_APP (as --app).
EOF
}

SCENARIO=main W=5 K=5 C=10000 RATE=20 WINDOW=20 MAXP=-1 MINP=0 IA=2 IB=6 PAUSE_S=1.5
KILLS=3 KILL_EVERY=4 MAXREP=2000 OUTDIR= DROP=0 MINK=0 SNAP_MS=300000 RESULT_MS=1000
CAPP=${BR2K_CHAOS_APP:-infodid} APP_KILLS= FAILOVERS=1 BSTOP= KEEP_LEADER=0
while [ $# -gt 0 ]; do
    case $1 in
    --scenario) SCENARIO=$2; shift ;;
    --app) CAPP=$2; shift ;;
    --app-kills) APP_KILLS=$2; shift ;;
    --workers) W=$2; shift ;;
    --clients) K=$2; shift ;;
    --count) C=$2; shift ;;
    --rate) RATE=$2; shift ;;
    --window) WINDOW=$2; shift ;;
    --pauses) MAXP=$2; shift ;;
    --min-pauses) MINP=$2; shift ;;
    --min-kills) MINK=$2; shift ;;
    --interval) IA=${2%-*}; IB=${2#*-}; shift ;;
    --pause-s) PAUSE_S=$2; shift ;;
    --kills) KILLS=$2; shift ;;
    --kill-every) KILL_EVERY=$2; shift ;;
    --max-replicated) MAXREP=$2; shift ;;
    --result-ms) RESULT_MS=$2; shift ;;
    --failovers) FAILOVERS=$2; shift ;;
    --backup-stop) BSTOP=$2; shift ;;
    --keep-leader) KEEP_LEADER=1 ;;
    --snapshot-timeout-ms) SNAP_MS=$2; shift ;;
    --paper) RATE=2 IA=30 IB=120 PAUSE_S=15 ;;
    --out) OUTDIR=$2; shift ;;
    --drop-record) DROP=1 ;;
    --help | -h) usage; exit 0 ;;
    *) echo "chaos.sh: unknown option '$1' (see --help)" >&2; exit 2 ;;
    esac
    shift
done
case $SCENARIO in
main | redis-restart | broker-faults | anvil-restart | storage-down | backupd-kill | slow-follower | fenced-snapshot) ;;
redis-failover | redis-stale-promotion | redis-node-lost) ;;
*) echo "chaos.sh: unknown scenario '$SCENARIO' (see --help)" >&2; exit 2 ;;
esac
case $CAPP in
infodid) APP_KILLS=${APP_KILLS:-0} ;;
node | python) APP_KILLS=${APP_KILLS:-2} ;;
*) echo "chaos.sh: unknown application '$CAPP' (infodid, node or python)" >&2; exit 2 ;;
esac
[ "$CAPP" != infodid ] || [ "$APP_KILLS" = 0 ] ||
    { echo "chaos.sh: --app-kills needs --app node or python" >&2; exit 2; }
for v in FAILOVERS APP_KILLS W K C WINDOW KILLS KILL_EVERY MAXREP RESULT_MS MINP MINK IA IB SNAP_MS; do
    [[ ${!v} =~ ^[0-9]+$ ]] || { echo "chaos.sh: '${!v}' is not a whole number (${v})" >&2; exit 2; }
done
[ "$W" -ge 3 ] || { echo "chaos.sh: --workers must be at least 3" >&2; exit 2; }
[ "$IB" -ge "$IA" ] || { echo "chaos.sh: --interval A-B needs A <= B" >&2; exit 2; }

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
source "$HERE/../integration/lib.sh"
source "$HERE/../integration/core_helpers.bash"
source "$HERE/../integration/backup_helpers.bash"
# the redis-* scenarios run on a primary, two replicas and three Sentinels
case $SCENARIO in redis-failover | redis-stale-promotion | redis-node-lost) REDIS_MODE=ha ;; esac
case $BSTOP in
'' | cut | wait | phase | snapshot | archive | log | delete | raise | clear) ;;
*) echo "chaos.sh: unknown backup step '$BSTOP' (cut, wait, phase, snapshot, archive, log, delete, raise, clear)" >&2; exit 2 ;;
esac
[ -z "$BSTOP" ] || [ "$SCENARIO" = redis-stale-promotion ] ||
    { echo "chaos.sh: --backup-stop needs --scenario redis-stale-promotion" >&2; exit 2; }
[ "$KEEP_LEADER" = 0 ] || { [ "$SCENARIO" = redis-stale-promotion ] && [ -z "$BSTOP" ]; } ||
    { echo "chaos.sh: --keep-leader needs --scenario redis-stale-promotion (and no --backup-stop)" >&2; exit 2; }
# --keep-leader: a lease longer than the failover, so that the leader keeps it
[ "$KEEP_LEADER" = 0 ] || export LEASE_MS=8000
case $CAPP in
infodid) APP=infodid ;;
node)
    command -v node >/dev/null || fail "--app node needs node"
    APP="exec:node $SRC/worker/apps/examples/node-ledger/ledger.js" ;;
python)
    command -v python3 >/dev/null || fail "--app python needs python3"
    APP="exec:python3 $SRC/worker/apps/examples/python-kv/kv.py" ;;
esac
# a hung application is restarted by its worker after this long (and
# chaos.sh's own kills are over well before)
[ "$CAPP" = infodid ] || export BR2K_APP_TIMEOUT_MS=${BR2K_APP_TIMEOUT_MS:-5000}
CLIENT=$BUILD/tests/chaos_client
[ -x "$CLIENT" ] || fail "$CLIENT is missing: build the chaos_client target first"
now_ms() { date +%s%3N; }
log() { echo "[$(date +%H:%M:%S)] $*"; }

# anvil keeps its chain in a state file across restarts (anvil-restart)
ANVIL_PORT=
start_anvil() {
    [ -n "$ANVIL_PORT" ] || ANVIL_PORT=$(free_port)
    "$ANVIL" --host 127.0.0.1 --port "$ANVIL_PORT" --state "$T/anvil.state" \
        --state-interval 1 "$@" >>"$T/anvil.log" 2>&1 &
    ANVIL_PID=$!; PIDS+=("$ANVIL_PID")
    ETH_RPC=http://127.0.0.1:$ANVIL_PORT
    wait_for 30 curl -sf -H 'Content-Type: application/json' \
        -d '{"jsonrpc":"2.0","id":1,"method":"eth_chainId","params":[]}' "$ETH_RPC" ||
        fail "anvil did not start"
}

ids=()
for i in $(seq 1 "$W"); do ids+=("w$i"); done
RARGS=()
# every worker holds a register mid-change while $T/hold-ID exists, so that
# a kill lands in the middle of a request (worker/apps/infodid/infodid.c test
# hook); node/python: the attacker stops the application process instead
launch() {
    if [ "$CAPP" = infodid ]; then
        BR2K_TEST_HOLD_APPLY_FILE=$T/hold-$1 start_worker "$1" "${RARGS[@]}"
    else
        start_worker "$1" "${RARGS[@]}"
    fi
}
app_pid() { pgrep -P "${WPID[$1]}" 2>/dev/null | head -1; } # the worker's application child

start_redis
start_devkafka
start_chain
RARGS=(--eth-rpc "$ETH_RPC" --registry "$REG" --service-key-file "$T/service.key")
# --view-fields 0: a backup's external state comes from the leader's view of
# its state whenever the application offers one (InfoDID; not an application
# over the protocol: node, python read it from Redis), at any size
BDARGS=(--max-replicated "$MAXREP" --snapshot-timeout-ms "$SNAP_MS" --view-fields 0)
for id in "${ids[@]}"; do launch "$id"; done
wait_for 30 has_leader || fail "no leader"
start_backupd "${BDARGS[@]}"

ssi() { rc_ GET "br2k:{$SVC}:SSI"; }
chain_leader() { "$CAST" call --rpc-url "$ETH_RPC" "$REG" 'leader()(string,uint64,string)' 2>/dev/null | head -1 | tr -d '"'; }
inflight_n() { # records in the in-flight mark (I6) of worker $1's position file
    local f l
    read -r _ _ _ _ f l _ <"$T/$1/worker.pos" 2>/dev/null || { echo 0; return; }
    if [ "${f:--1}" -ge 0 ] 2>/dev/null; then echo $((l - f + 1)); else echo 0; fi
}
inflight() { [ "$(inflight_n "$1")" -gt 0 ]; }
# held_mark ID [APP-PID]: an in-flight mark that stays put (the same
# records 50 ms later): the worker is held inside apply by the test hook,
# not passing through a batch (a batch of repeats never reaches the hook);
# node/python: and APP-PID, the application process the test stopped, is
# still the worker's (a worker whose call to the stopped application timed
# out restarts it in-process, and its new application is not held: a mark
# then is only a batch passing through)
held_mark() {
    local a b
    [ -z "${2:-}" ] || [ "$(app_pid "$1")" = "$2" ] || return 1
    a=$(cut -d' ' -f5,6 "$T/$1/worker.pos" 2>/dev/null) || return 1
    inflight "$1" || return 1
    read -r -t 0.05 -u "$HOLD_WAIT_FD" _ || true # 50 ms, no fork
    b=$(cut -d' ' -f5,6 "$T/$1/worker.pos" 2>/dev/null) || return 1
    [ "$a" = "$b" ] && inflight "$1"
}
mkfifo "$T/hold-wait.fifo"
exec {HOLD_WAIT_FD}<>"$T/hold-wait.fifo"
all_at() { at "$(ssi)" "$@"; }
alive() { kill -0 "${WPID[$1]}" 2>/dev/null; }
FAULTS=$T/faults.tsv
: >"$FAULTS"
# fault KIND START END TARGET INFLIGHT LEADER(0/1): one line of the report
fault() { echo "$*" >>"$FAULTS"; }
wait_chain_leader() { local l; l=$(chain_leader); [ -n "$l" ] && [ -n "${WPID[$l]:-}" ]; }
wait_for 30 wait_chain_leader || fail "the registry contract never named a leader"

# ---- the load ----
PREFIX=chaos$$
log "scenario $SCENARIO, application $CAPP ($APP): $W workers, $K clients x $C requests at $RATE/s each, max-replicated $MAXREP"
T0=$(now_ms)
ASAN_OPTIONS=${ASAN_OPTIONS:+$ASAN_OPTIONS:}detect_leaks=0 "$CLIENT" load --eth-rpc "$ETH_RPC" \
    --registry "$REG" --prefix "$PREFIX" --clients "$K" --count "$C" --rate "$RATE" \
    --window "$WINDOW" --result-ms "$RESULT_MS" --out "$T/requests.tsv" --app "$CAPP" \
    >"$T/load.json" 2>"$T/load.log" &
LOAD_PID=$!; PIDS+=("$LOAD_PID")
loading() { kill -0 "$LOAD_PID" 2>/dev/null; }
done_count() { [ -s "$T/requests.tsv" ] && wc -l <"$T/requests.tsv" || echo 0; }

# ---- the attacker (main scenario) ----
rsleep() { # a uniform wait in [IA, IB] s, cut short when the load ends
    local end=$(($(now_ms) + IA * 1000 + (RANDOM * 32768 + RANDOM) % ((IB - IA) * 1000 + 1)))
    while loading && [ "$(now_ms)" -lt "$end" ]; do sleep 0.1; done
}
pauses=0 kills=0 attacks=0 kill_leader=1 KILLED=() app_kills=0 app_kill_leader=1 APP_KILLED=()
pause_leader() {
    local l pid s e n is
    l=$(chain_leader)
    [ -n "$l" ] && [ -n "${WPID[$l]:-}" ] || { log "attack: no leader in the registry"; return; }
    pid=${WPID[$l]}
    is=0; [ "$(leader_id)" = "$l" ] && is=1
    s=$(now_ms)
    kill -STOP "$pid" 2>/dev/null || return 0
    n=$(inflight_n "$l")
    sleep "$PAUSE_S"
    kill -CONT "$pid"
    e=$(now_ms)
    pauses=$((pauses + 1))
    fault pause "$s" "$e" "$l" "$n" "$is"
    log "pause $pauses: $l (leader in the registry; current lease holder: $([ $is = 1 ] && echo yes || echo no)) for ${PAUSE_S}s, $n request(s) in flight"
}
# kill_mid ID: hold a register of ID mid-change, SIGKILL it there, restart it
# (node/python: the worker's application process is stopped instead, so
# that the worker marks the next batch in flight (I6), sends it and waits)
hold() { if [ "$CAPP" = infodid ]; then touch "$T/hold-$1"; else kill -STOP "$2" 2>/dev/null; fi; }
unhold() { if [ "$CAPP" = infodid ]; then rm -f "$T/hold-$1"; else kill -CONT "$2" 2>/dev/null || true; fi; }
kill_mid() {
    local id=$1 s n is=0 ap=
    [ "$(leader_id)" = "$id" ] && is=1
    if [ "$CAPP" != infodid ]; then
        ap=$(app_pid "$id")
        [ -n "$ap" ] || { log "kill: $id has no application process now; skipped"; return 1; }
    fi
    hold "$id" "$ap"
    # node/python: within the application's call timeout (5 s; beyond it
    # the worker replaces the stopped application)
    if ! wait_for "$([ -n "$ap" ] && echo 4 || echo 20)" held_mark "$id" "$ap"; then
        unhold "$id" "$ap"
        log "kill: $id never held a request mid-apply (no requests reached it); skipped"
        return 1
    fi
    s=$(now_ms)
    n=$(inflight_n "$id")
    if [ "$n" = 0 ]; then
        unhold "$id" "$ap"
        log "kill: $id's mark went away before the kill; skipped"
        return 1
    fi
    # only the worker: a snapshot process it forked dies with it
    # (PR_SET_PDEATHSIG), so the restarted worker finds its directory free;
    # so does its application process (node/python), stopped here
    kill -KILL "${WPID[$id]}" 2>/dev/null || true
    wait "${WPID[$id]}" 2>/dev/null || true
    rm -f "$T/hold-$id"
    [ -z "$ap" ] || { kill -KILL "$ap" 2>/dev/null || true; }
    kills=$((kills + 1))
    KILLED+=("$id")
    log "kill $kills: $id (leader: $is) SIGKILLed with $n request(s) in flight; restarting it"
    sleep 1
    launch "$id"
    fault kill "$s" "$(now_ms)" "$id" "$n" "$is"
}
# app_kill_mid ID (node/python): the worker's application process stopped
# until the worker has a batch in flight (I6) for it, then SIGKILLed: the
# worker must stop it, start it again and recover like a killed worker
app_kill_mid() {
    local id=$1 s n is=0 ap before
    [ "$(leader_id)" = "$id" ] && is=1
    ap=$(app_pid "$id")
    [ -n "$ap" ] || { log "app-kill: $id has no application process now; skipped"; return 1; }
    before=$(grep -c "restarting the worker" "$T/$id.log" || true)
    kill -STOP "$ap" 2>/dev/null || return 1
    if ! wait_for 4 inflight "$id"; then
        kill -CONT "$ap" 2>/dev/null || true
        log "app-kill: $id marked no batch in flight; skipped"
        return 1
    fi
    s=$(now_ms)
    n=$(inflight_n "$id")
    kill -KILL "$ap" 2>/dev/null || true
    app_kills=$((app_kills + 1))
    APP_KILLED+=("$id")
    restarted() { [ "$(grep -c "restarting the worker" "$T/$1.log" || true)" -gt "$2" ]; }
    wait_for 30 restarted "$id" "$before" || fail "$id did not restart after its application was killed: $(tail -3 "$T/$id.log")"
    fault app-kill "$s" "$(now_ms)" "$id" "$n" "$is"
    log "app-kill $app_kills: $id's application (pid $ap, leader: $is) SIGKILLed with $n record(s) in flight; the worker restarted it"
}
follower_of() { local w; for w in "${ids[@]}"; do [ "$w" != "$(leader_id)" ] && { echo "$w"; return; }; done; }
attack_main() {
    while loading; do
        rsleep
        loading || break
        [ "$MAXP" -lt 0 ] || [ "$pauses" -lt "$MAXP" ] || [ "$kills" -lt "$KILLS" ] ||
            [ "$app_kills" -lt "$APP_KILLS" ] || break
        attacks=$((attacks + 1))
        # (node/python: the kills alternate between the worker and its
        # application process while both remain)
        if [ "$app_kills" -lt "$APP_KILLS" ] && [ $((attacks % KILL_EVERY)) = 0 ] &&
            { [ "$kills" -ge "$KILLS" ] || [ "$app_kills" -lt "$kills" ]; } && [ "$(sv)" -ge 1 ] 2>/dev/null; then
            local target
            if [ "$app_kill_leader" = 1 ]; then target=$(leader_id); else target=$(follower_of); fi
            if [ -n "$target" ] && [ -n "${WPID[$target]:-}" ] && app_kill_mid "$target"; then
                app_kill_leader=$((1 - app_kill_leader))
            else # skipped (e.g. its worker was holding for a backup): the next attack
                attacks=$((attacks - 1)) # is this kill again, not a pause
            fi
        elif [ "$kills" -lt "$KILLS" ] && [ $((attacks % KILL_EVERY)) = 0 ] && [ "$(sv)" -ge 1 ] 2>/dev/null; then
            local target
            if [ "$kill_leader" = 1 ]; then target=$(chain_leader); else target=$(follower_of); fi
            if [ -n "$target" ] && [ -n "${WPID[$target]:-}" ] && kill_mid "$target"; then
                kill_leader=$((1 - kill_leader))
            else # skipped: the next attack is this kill again (see above)
                attacks=$((attacks - 1))
            fi
        elif [ "$MAXP" -lt 0 ] || [ "$pauses" -lt "$MAXP" ]; then
            pause_leader
        fi
    done
    return 0
}

# ---- fault scenarios: one fault (or a few), then the same checks ----
wait_load_share() { # wait until FRACTION% of the requests have results (roughly: SSI)
    local want=$(($1 * K * C / 100))
    until [ "$(ssi)" -ge "$want" ] 2>/dev/null || ! loading; do sleep 0.2; done
}
restart_redis() {
    local s; s=$(now_ms)
    kill -TERM "$REDIS_PID"; wait "$REDIS_PID" 2>/dev/null || true
    sleep 2
    redis_server "$REDIS_PORT" redis
    REDIS_PID=$REDIS_SPAWNED
    fault redis-restart "$s" "$(now_ms)" redis 0 0
    log "redis-server restarted (AOF) after 2 s down"
}
# ---- Redis with replicas and Sentinel (I9) ----
RESUME=$T/resume.tsv # one line per primary's death: the ms to the next committed result
: >"$RESUME"
# ha_port_of ROLE: a port of the set with that ROLE (master/slave), in order
ha_role() { redis-cli -p "$1" ROLE 2>/dev/null | head -1; }
ha_replicas() { local p; for p in "${HA_PORTS[@]}"; do [ "$(ha_role "$p")" = slave ] && echo "$p"; done; return 0; }
ssi_quiet() { local v; v=$(rc_ GET "br2k:{$SVC}:SSI" 2>/dev/null); [[ $v =~ ^-?[0-9]+$ ]] && echo "$v" || echo -1; }
new_primary() { local p; p=$(redis_port); [ "$p" != "$1" ] && [ "$(ha_role "$p")" = master ]; }
# resumed SINCE-MS SSI-BEFORE: SSI rose above SSI-BEFORE (a result committed
# after the death); prints nothing, records the time
ssi_above() { [ "$(ssi_quiet)" -gt "$1" ]; }
# wait_resumed START-MS SSI: the time from START-MS to the first commit
# above SSI (the load is running), into $RESUME
wait_resumed() {
    local s=$1 v=$2
    wait_for 60 ssi_above "$v" || fail "no result committed within 60 s of the primary's death (SSI $(ssi_quiet), was $v)"
    echo $(($(now_ms) - s)) >>"$RESUME"
    log "service resumed $(tail -1 "$RESUME") ms after the primary's death (SSI $(ssi_quiet), was $v)"
}
# ha_restart PORT: the node on PORT starts again with its data; Sentinel
# makes it a replica of the current primary
ha_restart() {
    local p=$1 i
    for i in 0 1 2; do [ "${HA_PORTS[i]}" = "$p" ] && break; done
    # (as the operator would: a replica of the primary the Sentinels name)
    ha_node "$p" "redis$i" "$(redis_port)"
}
is_replica_of_primary() { [ "$(ha_role "$1")" = slave ] && redis-cli -p "$1" INFO replication | tr -d '\r' | grep -q '^master_link_status:up'; }
kill_primary() { # kill_primary: SIGKILL the current primary; prints its port
    local p; p=$(redis_port)
    kill -KILL "${HA_PID[$p]}"; wait "${HA_PID[$p]}" 2>/dev/null || true
    echo "$p"
}
redis_failover() {
    local n p s v
    for n in $(seq 1 "$FAILOVERS"); do
        loading || { log "redis-failover: the load ended after $((n - 1)) failover(s)"; break; }
        wait_for 30 ssi_above "$(ssi_quiet)" || true # under load: results flow
        v=$(ssi_quiet); s=$(now_ms)
        p=$(kill_primary)
        log "failover $n: primary on port $p SIGKILLed at SSI $v"
        wait_for 30 new_primary "$p" || fail "Sentinel did not promote a replica within 30 s"
        log "failover $n: Sentinel promoted port $(redis_port) after $(($(now_ms) - s)) ms"
        wait_resumed "$s" "$v"
        ha_restart "$p"
        wait_for 30 is_replica_of_primary "$p" || fail "the old primary on port $p did not come back as a replica"
        fault redis-failover "$s" "$(now_ms)" "redis:$p" 0 0
        log "failover $n: the old primary on port $p is a replica of $(redis_port) again"
    done
}
redis_node_lost() {
    local p s v
    wait_load_share 30
    v=$(ssi_quiet); s=$(now_ms)
    p=$(kill_primary)
    log "node lost: primary on port $p SIGKILLed at SSI $v; it never comes back"
    wait_for 30 new_primary "$p" || fail "Sentinel did not promote a replica within 30 s"
    wait_resumed "$s" "$v"
    fault redis-node-lost "$s" "$(now_ms)" "redis:$p" 0 0
    wait_load_share 80
    log "node lost: still serving on the remaining two (SSI $(ssi_quiet))"
}
# redis-stale-promotion: replica B is stopped (its link to the primary
# paused) while the leader changes and commits: the new epoch and the
# commits reach only the primary and replica A. Then the primary and A die
# and B, which missed them, is the only one Sentinel can promote. Without
# I9 the next take would hand out the epoch the last leader holds.
# bd_hooked N: backupd.log has more than N lines of the test hook
# (BR2K_TEST_BACKUP_STOP) of step STEP (any step when STEP is empty)
bd_hooked() { [ "$(grep -c "BR2K_TEST_BACKUP_STOP: stopped at step '${2:-[a-z]*}'" "$T/backupd.log" || true)" -gt "$1" ]; }
redis_stale_promotion() {
    local p a b s v ep l ep_after stale_run=""
    wait_load_share 20
    p=$(redis_port)
    read -r a b <<<"$(ha_replicas | tr '\n' ' ')"
    [ -n "$a" ] && [ -n "$b" ] || fail "expected two replicas, got '$a' '$b'"
    if [ -n "$BSTOP" ]; then
        # B keeps the backup-run of a backup in flight (what a replica
        # stopped mid-backup holds; stale after the promotion): backupd
        # stopped at step 'cut' (backup-run saved, no hold yet), then B
        # stops and this backupd is SIGKILLed
        kill -TERM "$BD_PID"; wait "$BD_PID" 2>/dev/null || true
        local h0; h0=$(grep -c 'BR2K_TEST_BACKUP_STOP: stopped at step' "$T/backupd.log" || true)
        export BR2K_TEST_BACKUP_STOP=cut
        start_backupd "${BDARGS[@]}"
        unset BR2K_TEST_BACKUP_STOP
        rc_ SET "br2k:{$SVC}:backup-now" 1 >/dev/null
        wait_for 60 bd_hooked "$h0" cut || fail "backupd did not reach step 'cut': $(tail -2 "$T/backupd.log")"
        stale_run=$(rc_ GET "br2k:{$SVC}:backup-run" | jq -c '{version, step}')
        [ -n "$stale_run" ] && [ "$stale_run" != null ] || fail "backupd stopped at step 'cut' but there is no backup-run"
        b_has_run() { [ "$(redis-cli -p "$b" GET "br2k:{$SVC}:backup-run" | jq -c '{version, step}')" = "$stale_run" ]; }
        wait_for 30 b_has_run || fail "replica $b did not receive the backup-run $stale_run"
    fi
    # B's link to the primary (its local address, as the primary sees it)
    local link; link=$(redis-cli -p "$b" CLIENT LIST | tr -d '\r' | awk '/flags=M/ {for (i = 1; i <= NF; i++) if ($i ~ /^laddr=/) print substr($i, 7)}')
    [ -n "$link" ] || fail "replica $b has no link to the primary"
    # B stops, and the primary cuts its link: what B has not received yet
    # it never gets (a stopped process still receives into its socket
    # buffer; a closed link does not)
    kill -STOP "${HA_PID[$b]}"
    redis-cli -p "$p" CLIENT KILL ADDR "$link" >/dev/null || fail "cannot cut the link of replica $b ($link)"
    local off0; off0=$(redis-cli -p "$p" INFO replication | tr -d '\r' | awk -F: '/^master_repl_offset/ {print $2}')
    log "stale-promotion: replica $b stopped and its link cut at replication offset $off0${stale_run:+ (it holds the backup-run $stale_run of a backup in flight)}"
    if [ -n "$BSTOP" ]; then
        kill -KILL "$BD_PID"; wait "$BD_PID" 2>/dev/null || true
    fi
    l=$(leader_id); ep=$(leader_epoch)
    if [ "$KEEP_LEADER" = 1 ]; then
        log "stale-promotion: leader $l (epoch $ep) keeps leading; waiting for commits"
    else
        kill -KILL "${WPID[$l]}"; wait "${WPID[$l]}" 2>/dev/null || true
        log "stale-promotion: leader $l (epoch $ep) SIGKILLed; waiting for a new epoch and commits"
        epoch_above() { [ "$(leader_epoch)" -gt "$1" ] 2>/dev/null; }
        wait_for 30 epoch_above "$ep" || fail "no new epoch after the leader's kill"
        rc_ DEL "br2k:{$SVC}:metrics-$l" >/dev/null
        launch "$l"
        following() { [ -n "$(metric "$l" lpi)" ] && [ "$(metric "$l" role)" = follower ]; }
        wait_for 30 following || fail "the restarted $l does not follow"
    fi
    ep_after=$(leader_epoch)
    v=$(ssi_quiet)
    wait_for 60 ssi_above "$v" || fail "the new leader committed nothing"
    wait_for 30 ssi_above "$(ssi_quiet)" || true
    log "stale-promotion: epoch $ep_after ($(leader_id)) committed up to SSI $(ssi_quiet); replica $b missed all of it"
    if [ -n "$BSTOP" ]; then
        # backupd again with its test hook: a backup it finishes that B
        # misses (its SV, last cut and state digest), then one in flight
        # whose progress (phase, backup-run) only the primary and A get,
        # stopped (SIGSTOP) at step $BSTOP until B is promoted
        # (it first gives up the backup-run the SIGKILLed one left)
        local h1; h1=$(grep -c "BR2K_TEST_BACKUP_STOP: stopped at step '$BSTOP'" "$T/backupd.log" || true)
        export BR2K_TEST_BACKUP_STOP=$BSTOP:2
        start_backupd "${BDARGS[@]}"
        unset BR2K_TEST_BACKUP_STOP
        local v0; v0=$(sv)
        rc_ SET "br2k:{$SVC}:backup-now" 1 >/dev/null
        sv_above0() { [ "$(sv)" -gt "$v0" ]; }
        wait_for 60 sv_above0 || fail "no backup finished before the failover (SV $(sv))"
        BSTOP_SV=$(sv); BSTOP_CHAIN=$(chain_sv)
        rc_ SET "br2k:{$SVC}:backup-now" 1 >/dev/null
        wait_for 60 bd_hooked "$h1" "$BSTOP" || fail "backupd did not reach step '$BSTOP': $(tail -2 "$T/backupd.log")"
        log "stale-promotion: backup $BSTOP_SV finished, then one in flight, backupd stopped at step '$BSTOP' (phase '$(rc_ GET "br2k:{$SVC}:backup")', SV $(sv), chain $(chain_sv)); replica $b misses both"
    fi
    v=$(ssi_quiet); s=$(now_ms)
    # the primary and the replica that has the writes die together; the
    # stale replica wakes up and is the only candidate
    kill -KILL "${HA_PID[$p]}" "${HA_PID[$a]}"
    wait "${HA_PID[$p]}" "${HA_PID[$a]}" 2>/dev/null || true
    kill -CONT "${HA_PID[$b]}"
    log "stale-promotion: primary $p and replica $a SIGKILLed, $b resumed"
    promoted_b() { [ "$(redis_port)" = "$b" ] && [ "$(ha_role "$b")" = master ]; }
    wait_for 60 promoted_b || fail "Sentinel did not promote the stale replica $b (primary named: $(redis_port))"
    local ep_b ssi_b; ep_b=$(redis-cli -p "$b" GET "br2k:{$SVC}:epoch"); ssi_b=$(redis-cli -p "$b" GET "br2k:{$SVC}:SSI")
    log "stale-promotion: $b promoted with epoch $ep_b and SSI $ssi_b (the leader held $ep_after, SSI was $v)"
    if [ "$KEEP_LEADER" = 1 ]; then
        [ "$ep_b" = "$ep_after" ] && [ "$ssi_b" -lt "$v" ] ||
            fail "the promoted replica has epoch $ep_b and SSI $ssi_b (the leader held $ep_after, SSI was $v): the test did not test"
    else
        [ "$ep_b" -lt "$ep_after" ] || fail "the promoted replica is not stale (epoch $ep_b, the leader held $ep_after): the test did not test"
    fi
    STALE_EPOCH=$ep_after
    # a write needs one replica (min-replicas-to-write 1): A comes back
    # (its newer data is replaced by B's), then the old primary
    ha_restart "$a"
    wait_for 30 is_replica_of_primary "$a" || fail "replica $a did not follow the promoted $b"
    wait_resumed "$s" "$v"
    if [ -n "$BSTOP" ]; then
        local run_b; run_b=$(rc_ GET "br2k:{$SVC}:backup-run" | jq -c '{version, step}')
        log "stale-promotion: Redis now says phase '$(rc_ GET "br2k:{$SVC}:backup")', SV $(sv), last backup '$(rc_ GET "br2k:{$SVC}:backup-last")', backup-run $run_b, chain $(chain_sv); backupd goes on"
        [ "$run_b" = "$stale_run" ] || fail "the promoted replica holds the backup-run $run_b, not $stale_run (the one it had when stopped): the test did not test"
        kill -CONT "$BD_PID"
    fi
    if [ "$KEEP_LEADER" = 1 ]; then
        [ "$(leader_id)" = "$l" ] && [ "$(leader_epoch)" = "$ep_after" ] ||
            fail "the leader is $(leader_id) with epoch $(leader_epoch) after the failover, not $l with $ep_after: the test did not test"
        log "stale-promotion: $l still leads with epoch $ep_after on the promoted $b"
    fi
    ha_restart "$p"
    wait_for 30 is_replica_of_primary "$p" || fail "the old primary $p did not come back as a replica"
    fault redis-stale-promotion "$s" "$(now_ms)" "redis:$p+$a" 0 0
}

attack_scenario() {
    case $SCENARIO in
    redis-failover) redis_failover ;;
    redis-node-lost) redis_node_lost ;;
    redis-stale-promotion) redis_stale_promotion ;;
    redis-restart)
        wait_load_share 30; restart_redis
        wait_load_share 60; restart_redis ;;
    broker-faults)
        [ -n "$KAFKA_CTL" ] || { log "broker-faults: the log is not br2k-devkafka (BR2K_TEST_LOG=$LOG_BACKEND); nothing to do"; return; }
        local s b
        wait_load_share 25
        for b in 1 2 3; do
            s=$(now_ms)
            "$BIN/br2k-devkafka" ctl "$KAFKA_CTL" broker down "$b" >>"$T/ctl.log" 2>&1
            sleep 3
            "$BIN/br2k-devkafka" ctl "$KAFKA_CTL" broker up "$b" >>"$T/ctl.log" 2>&1
            fault broker-down "$s" "$(now_ms)" "broker$b" 0 0
            log "broker $b down for 3 s, up again"
            sleep 2
        done
        for b in 2 3 1; do
            s=$(now_ms)
            "$BIN/br2k-devkafka" ctl "$KAFKA_CTL" leader "$b" "$TOPIC" 0 >>"$T/ctl.log" 2>&1
            fault leader-move "$s" "$(($(now_ms) + 2000))" "broker$b" 0 0
            log "partition leader moved to broker $b"
            sleep 3
        done
        if grep -q '^error' "$T/ctl.log"; then fail "a control command failed: $(grep '^error' "$T/ctl.log" | head -1)"; fi
        ;;
    anvil-restart)
        local s v
        for pct in 30 60; do
            wait_load_share "$pct"
            v=$(chain_sv)
            s=$(now_ms)
            kill -TERM "$ANVIL_PID"; wait "$ANVIL_PID" 2>/dev/null || true
            sleep 3
            start_anvil
            fault anvil-restart "$s" "$(now_ms)" anvil 0 0
            log "anvil restarted with its state (block $("$CAST" block-number --rpc-url "$ETH_RPC"))"
            [ "$(chain_sv)" -ge "$v" ] || fail "the chain lost its state in the restart: SV $(chain_sv) on chain, $v before"
        done ;;
    storage-down)
        local s v f0
        wait_load_share 20
        v=$(sv)
        f0=$(grep -c "failed at step" "$T/backupd.log" || true)
        s=$(now_ms)
        mv "$T/backups" "$T/backups.away"; echo "not a directory" >"$T/backups"
        log "storage unavailable (file://$T/backups is a file) at SV $v"
        nfail() { grep -c "failed at step" "$T/backupd.log" || true; }
        failed_more() { [ "$(nfail)" -gt "$1" ]; }
        wait_for 120 failed_more "$f0" || fail "no backup failed while the storage was unavailable"
        log "backupd: $(grep "failed at step" "$T/backupd.log" | tail -1 | cut -d' ' -f4- | cut -c1-150)"
        sleep 3
        rm "$T/backups"; mv "$T/backups.away" "$T/backups"
        fault storage-down "$s" "$(now_ms)" storage 0 0
        log "storage back; SV $(sv)"
        sv_above() { [ "$(sv)" -gt "$1" ]; }
        wait_for 180 sv_above "$v" || fail "no backup succeeded after the storage came back (SV $(sv))"
        log "a backup succeeded after the outage: SV $(sv)" ;;
    backupd-kill)
        local s v n
        for n in 1 2; do
            v=$(sv)
            # the first kill in whatever step, the second in the on-chain
            # step ('log') if it can be caught
            phase_set() { [ -n "$(rc_ GET "br2k:{$SVC}:backup")" ]; }
            phase_log() { rc_ GET "br2k:{$SVC}:backup" | grep -q '^log'; }
            # (once the load is over no backup starts by itself: ask for one)
            ask() { [ "$n" = 1 ] || [ -n "$(rc_ GET "br2k:{$SVC}:backup")" ] || rc_ SET "br2k:{$SVC}:backup-now" 1 >/dev/null; }
            phase_log_asked() { ask; phase_log; }
            phase_set_asked() { ask; phase_set; }
            if [ "$n" = 1 ] || ! wait_for 60 phase_log_asked; then
                wait_for 180 phase_set_asked || fail "no backup started"
            fi
            s=$(now_ms)
            kill -KILL "$BD_PID" "$REGD_PID"
            wait "$BD_PID" "$REGD_PID" 2>/dev/null || true
            log "backupd and registryd killed during a backup (phase '$(rc_ GET "br2k:{$SVC}:backup")', SV $v)"
            sleep 2
            start_registryd
            start_backupd "${BDARGS[@]}"
            fault backupd-kill "$s" "$(now_ms)" backupd+registryd 0 0
            sv_above() { [ "$(sv)" -gt "$1" ]; }
            wait_for 180 sv_above "$v" || fail "no backup completed after backupd and registryd restarted"
            log "backup completed after the restart: SV $(sv)"
        done ;;
    slow-follower)
        local f s v
        wait_load_share 5
        f=$(follower_of)
        v=$(sv)
        s=$(now_ms)
        kill -STOP "${WPID[$f]}"
        # its consumer may hold fetched records beyond its LPI, up to the
        # log's end now: the test is on once that end is gone from the log
        local end0; end0=$(log_offsets "$TOPIC" | cut -d' ' -f2)
        log "follower $f paused at LPI $(metric "$f" lpi) (log end $end0) until the log moved past the broker's window"
        # until the record after its LPI is gone from the log (the
        # development broker keeps ~5 MiB; Redis Streams: the clean-up after
        # a backup), and at least one backup later
        gone() {
            local first; first=$(log_offsets "$TOPIC" | cut -d' ' -f1)
            [ "$first" -gt "$end0" ] && [ "$(sv)" -gt "$v" ]
        }
        wait_for 900 gone || fail "the log still holds offset $end0 (the end when $f was paused): $(log_offsets "$TOPIC") (a longer load is needed)"
        log "the log now starts at $(log_offsets "$TOPIC" | cut -d' ' -f1), $f is at LPI $(metric "$f" lpi)"
        kill -CONT "${WPID[$f]}"
        fault slow-follower "$s" "$(now_ms)" "$f" 0 0
        log "follower $f resumed (SSI $(ssi), SV $(sv))"
        SLOW_F=$f ;;
    fenced-snapshot)
        # the leader is paused (fenced) while a backup waits for its
        # snapshot: backupd must abandon that backup and run the next one
        # soon, not wait for its --snapshot-timeout-ms
        local l pid s v got=0 tries
        for tries in 1 2 3 4 5; do
            v=$(sv)
            phase_early() { rc_ GET "br2k:{$SVC}:backup" | grep -q '^\(hold\|held\|snapshot\) '; }
            wait_for 120 phase_early || fail "no backup started"
            l=$(leader_id); pid=${WPID[$l]}
            kill -STOP "$pid" $(pgrep -P "$pid" || true) 2>/dev/null || true
            s=$(now_ms)
            log "leader $l paused during backup version $((v + 1)) (phase '$(rc_ GET "br2k:{$SVC}:backup")')"
            sleep 3
            kill -CONT "$pid" $(pgrep -P "$pid" || true) 2>/dev/null || true
            fault pause "$s" "$(now_ms)" "$l" 0 1
            sv_above() { [ "$(sv)" -gt "$1" ]; }
            if ! wait_for 60 sv_above "$v"; then
                fail "no backup completed within 60 s after the leader was fenced during backup $((v + 1)): $(grep -c 'FENCED' "$T/$l.log") FENCED lines in $l.log; backupd: $(tail -1 "$T/backupd.log" | cut -c1-200)"
            fi
            grep -q "failed at step 'snapshot'" "$T/backupd.log" && got=1
            log "backup after the fenced leader: SV $(sv)$([ $got = 1 ] && echo " (a snapshot step was abandoned)")"
            [ "$got" = 0 ] || break
        done ;;
    esac
    return 0
}

if [ "$SCENARIO" = main ]; then attack_main; else attack_scenario; fi
rc=0; wait "$LOAD_PID" || rc=$?
T1=$(now_ms)
log "load done: $(cat "$T/load.json")"
[ "$rc" = 0 ] || fail "the load generator failed (rc $rc): $(tail -3 "$T/load.log")"

# ---- drain, then compare every replica ----
for id in "${ids[@]}"; do kill -CONT "${WPID[$id]}" 2>/dev/null || true; done
for id in "${ids[@]}"; do alive "$id" || fail "worker $id is not running: $(tail -3 "$T/$id.log")"; done
wait_for 300 all_at "${ids[@]}" || { show "${ids[@]}"; fail "the replicas did not reach SSI with equal digests"; }
T2=$(now_ms)
log "every worker at SSI $(ssi) with digest $(metric w1 digest | cut -c1-16); SV $(sv)"
# every worker killed mid-request saw its in-flight mark (I6) and restored
# the latest backup, or, with no backup yet, rebuilt from an empty state by
# replaying the log from offset 0 (which still holds every record)
for id in $(printf '%s\n' "${KILLED[@]}" | sort -u); do
    want=$(printf '%s\n' "${KILLED[@]}" | grep -cx "$id")
    got=$(grep -c "get-the-latest-state: stopped in the middle of records" "$T/$id.log" || true)
    [ "$got" -ge "$want" ] || fail "$id was killed mid-request $want time(s) but saw its in-flight mark $got time(s)"
    grep -q "restored backup version\|rebuilding from an empty state" "$T/$id.log" ||
        fail "$id neither restored a backup nor rebuilt from the log after its kill"
done
[ "${#KILLED[@]}" = 0 ] || log "killed workers (${KILLED[*]}) each found their in-flight mark and restored a backup or rebuilt from the log"
# every worker whose application was killed mid-batch restarted in-process
# (counted above in app_kill_mid) and found its in-flight mark (I6) once per
# kill, of the worker or of its application
for id in $(printf '%s\n' "${APP_KILLED[@]}" | sort -u); do
    want=$(( $(printf '%s\n' "${APP_KILLED[@]}" "${KILLED[@]}" | grep -cx "$id") ))
    got=$(grep -c "get-the-latest-state: stopped in the middle of records" "$T/$id.log" || true)
    [ "$got" -ge "$want" ] || fail "$id: $want kill(s) of the worker or its application mid-batch, but its in-flight mark seen $got time(s)"
done
[ "${#APP_KILLED[@]}" = 0 ] || log "workers whose application was killed mid-batch (${APP_KILLED[*]}) restarted it and recovered through their in-flight mark"
if [ "$CAPP" != infodid ]; then
    # br2k verify: every replica's digest at the same LPI, from the workers
    "$BIN/br2k" --redis "$REDIS" verify --json --timeout-ms 20000 >"$T/verify.json" 2>>"$T/verify.log" ||
        fail "br2k verify: $(cat "$T/verify.json")"
    [ "$(jq -r .consistent "$T/verify.json")" = true ] || fail "br2k verify: $(cat "$T/verify.json")"
    log "br2k verify: $(jq '.replicas | length' "$T/verify.json") replicas consistent at LPI $(jq .lpi "$T/verify.json")"
fi
if [ "${SLOW_F:-}" != "" ]; then
    grep -q "restored backup version" "$T/$SLOW_F.log" ||
        fail "$SLOW_F caught up without restoring a backup: $(grep -i 'out of range\|restor' "$T/$SLOW_F.log" | tail -2)"
    log "$SLOW_F recovered through backup: $(grep -o 'restored backup version [0-9]*' "$T/$SLOW_F.log" | tail -1)"
fi
# I9: no fencing token held by two workers (each "took the lease with
# epoch N" of every worker's log, and each counted claim), and the time
# from each primary's death to the next committed result
TOKENS_REUSED=0
# per_epoch PATTERN FIELD: "epoch E: W1 W2" for every epoch that the
# workers' logs show more than once (the same worker twice too: it lost the
# lease and got the same number again) in lines matching PATTERN (the
# epoch is word FIELD of the match)
per_epoch() {
    local id
    for id in "${ids[@]}"; do
        { grep -o "$1" "$T/$id.log" || true; } | awk -v w="$id" -v f="$2" '{print $f, w}'
    done | awk '{n[$1]++; who[$1] = who[$1] " " $2} END {for (e in n) if (n[e] > 1) print "epoch " e ":" who[e]}'
}
if [ "$REDIS_MODE" = ha ]; then
    wlogs=(); for id in "${ids[@]}"; do wlogs+=("$T/$id.log"); done
    # the same epoch number taken by two workers: a failover lost an INCR;
    # only the first claim of it counts, the other gives it up unused
    dup=$(per_epoch 'took the lease with epoch [0-9]*' 6)
    [ -z "$dup" ] || log "I9: an epoch number was taken twice (a Redis failover lost its INCR): $dup"
    # a token used for fenced writes by two workers: two workers leading
    # (their claim read back and counted) with the same epoch
    # (without claims, BR2K_TEST_NO_CLAIMS: every worker that became leader)
    nclaims=$(cat "${wlogs[@]}" | grep -c 'claim of epoch [0-9]* read back' || true)
    if [ "$nclaims" -gt 0 ]; then
        lead=$(per_epoch 'claim of epoch [0-9]* read back' 4)
    else
        lead=$(per_epoch '> leader (epoch [0-9]*' 4 | tr -d ',')
    fi
    [ -z "$lead" ] || { TOKENS_REUSED=1; fail "a fencing token was used by two workers (I9): $lead"; }
    gaveup=$(cat "${wlogs[@]}" | grep -c 'does not count\|claimed epoch [0-9]* at offset' || true)
    restored=$(cat "${wlogs[@]}" | grep -c 'a Redis failover lost it; restoring it' || true)
    log "I9: $nclaims leader claims counted, no epoch by two workers; $gaveup lease(s) given up on a claim; SSI restored by a worker $restored time(s)"
    [ "$nclaims" -ge 1 ] || [ "${BR2K_TEST_NO_CLAIMS:-}" = 1 ] || fail "no leader claim was read back: the claims (I9) were not on"
    if [ "$SCENARIO" = redis-stale-promotion ]; then
        # the promoted replica lacks the external writes (InfoDID's ext:
        # index, the examples' views) of records committed before the
        # failover: the next leader republishes the view from its state
        # (claim.c; over the protocol, Republish 0x09); the checks below
        # compare the view with the replicas
        nrep=$(cat "${wlogs[@]}" | grep -c 'external view republished' || true)
        log "stale-promotion: external view republished $nrep time(s) ($(cat "${wlogs[@]}" | grep -o 'lost writes after SSI [0-9]*' | sort -u | tr '\n' ' '))"
        [ "$nrep" -ge 1 ] || [ "${BR2K_TEST_NO_REPUBLISH:-}" = 1 ] ||
            fail "the stale promotion lost external writes but no leader republished the external view"
    fi
    if [ "$SCENARIO" = redis-stale-promotion ]; then
        log "stale-promotion: epochs taken from $STALE_EPOCH on: $({ cat "${wlogs[@]}" | grep -o 'took the lease with epoch [0-9]*' || true; } | awk -v e="$STALE_EPOCH" '$NF >= e {print $NF}' | sort -n | uniq -c | awk '{printf "%s%s (x%s)", (NR > 1 ? ", " : ""), $2, $1}')"
    fi
fi
RESUME_JSON=$(sort -n "$RESUME" | awk '{a[NR] = $1} END {if (NR == 0) {print "null"; exit} p = a[int((NR + 1) / 2)]; printf "{\"n\": %d, \"p50_ms\": %d, \"max_ms\": %d, \"each_ms\": [", NR, p, a[NR]; for (i = 1; i <= NR; i++) printf "%s%d", (i > 1 ? ", " : ""), a[i]; printf "]}\n"}')
[ "$RESUME_JSON" = null ] || log "time from the primary's death to the next committed result: $RESUME_JSON"
sv_on_chain() { [ "$(chain_sv)" = "$(sv)" ]; }
wait_for 120 sv_on_chain || fail "SV $(sv) in Redis but $(chain_sv) on chain"
if [ -n "$BSTOP" ]; then
    # the backup in flight at the failover was finished or abandoned, and
    # Redis's last backup is the chain's (the next one archives from its cut)
    [ "$(chain_sv)" -gt "$BSTOP_CHAIN" ] || fail "no backup after the one in flight at the failover (chain at $(chain_sv))"
    last=$(rc_ GET "br2k:{$SVC}:backup-last")
    [ "${last%% *}" = "$(chain_sv)" ] || fail "the last backup in Redis is '$last', the chain is at version $(chain_sv)"
    log "backupd after the failover: $(grep -oE "Redis lost the finish of backup version [0-9]+|backup version [0-9]+ is on chain but Redis (lost its backup-run|holds the backup-run of version [0-9]+)|backup version [0-9]+ failed at step '[a-z]*'" "$T/backupd.log" | tr '\n' ';')"
    log "backup in flight at the failover (stopped at '$BSTOP'): $(grep -E "version $((BSTOP_CHAIN + 1)) (done|failed|is on chain but)|finishing backup version $((BSTOP_CHAIN + 1))" "$T/backupd.log" | tail -1 | cut -d' ' -f4- | cut -c1-160); SV $(sv) = chain; last backup '$last'"
fi
EXT_DIDS=$(rc_ HLEN "br2k:{$SVC}:ext:did")
EXT_ACTIVE=$(rc_ GET "br2k:{$SVC}:ext:active")
# (the examples' views are compared below, with a replica's state)
[ "$CAPP" = infodid ] || EXT_DIDS=-1 EXT_ACTIVE=-1
# ext_view: an example's external view in Redis, one "key field value" line
# each, sorted; state_view STATE: the view its state implies (every ok
# result's ops once: node, balances and the supply; python, each key's
# version and the count of ok puts)
ext_view() {
    local h=balances c=supply
    [ "$CAPP" = node ] || h=kv-version c=puts
    rc_ HGETALL "br2k:{$SVC}:ext:$h" | paste - - | awk -v h="$h" '{print h, $1, $2}'
    echo "$c - $(rc_ GET "br2k:{$SVC}:ext:$c")"
}
state_view() {
    if [ "$CAPP" = node ]; then
        jq -r '(.balances | to_entries[] | "balances \(.key) \(.value)"), "supply - \(.supply)"' "$1"
    else
        jq -r '(.kv | to_entries[] | "kv-version \(.key) \(.value.version)"),
               "puts - \([.seen[] | select(.op == "put" and .status == "ok")] | length)"' "$1"
    fi
}
BACKUPS=$(sv)
# InfoDID offers a view of its external state: with --view-fields 0 every
# backup takes it from the leader's state at the cut (history verify below
# checks it against the replay); node and python read it from Redis
VIEWS=$(cat "$T"/backupd*.log 2>/dev/null | grep -c "the external state comes from the leader's view" || true)
log "backups: SV $BACKUPS; $VIEWS backup attempt(s) took the external state from the leader's view"
[ "$CAPP" != infodid ] || [ "$BACKUPS" -lt 2 ] || [ "$VIEWS" -ge 1 ] ||
    fail "InfoDID backups (SV $BACKUPS) but none took its external state from the leader's view"
# the leader last: a follower left alone would take the lease, and with
# Redis replicas append its claim (I9), one record more than the others
ldr=$(leader_id || true)
for id in "${ids[@]}"; do [ "$id" = "$ldr" ] || stop_worker "$id"; done
for id in "${ids[@]}"; do [ "$id" != "$ldr" ] || stop_worker "$id"; done
if [ "$CAPP" != infodid ]; then
    # every replica is at the same state (the checker below); the view the
    # leaders' External calls made, each request's ops once, equals it
    st=$T/${ids[0]}/app/$([ "$CAPP" = node ] && echo ledger.json || echo kv.json)
    ext_view | sort >"$T/ext-view.txt"
    state_view "$st" | sort >"$T/state-view.txt"
    cmp -s "$T/ext-view.txt" "$T/state-view.txt" ||
        fail "the external view in Redis is not the one the replicas' state implies: $(diff "$T/ext-view.txt" "$T/state-view.txt" | head -6 | tr '\n' ' ')"
    log "external view: $(wc -l <"$T/ext-view.txt") entries in Redis equal the replicas' state ($(grep -E '^(supply|puts) ' "$T/ext-view.txt"))"
fi
cat >"$T/meta.json" <<EOF
{"scenario": "$SCENARIO", "total_s": $(((T2 - T0) / 1000)).$(((T2 - T0) % 1000 / 100)), "load_s": $(((T1 - T0) / 1000)),
 "workers": $W, "clients": $K, "count": $C, "rate_per_client": $RATE, "interval_s": [$IA, $IB],
 "pause_s": $PAUSE_S, "max_replicated": $MAXREP, "backups": $BACKUPS, "log": "$LOG_BACKEND",
 "app": "$CAPP", "app_kills": $app_kills, "redis": "$REDIS_MODE",
 "redis_resume": $RESUME_JSON, "tokens_reused": $TOKENS_REUSED,
 "load": $(cat "$T/load.json")}
EOF
dirs=(); for id in "${ids[@]}"; do dirs+=("$T/$id/app"); done
extra=(); [ "$DROP" = 1 ] && extra=(--drop-record)
crc=0
ASAN_OPTIONS=${ASAN_OPTIONS:+$ASAN_OPTIONS:}detect_leaks=0 "$CLIENT" check --requests "$T/requests.tsv" \
    --faults "$FAULTS" --json "$T/report.json" --meta "$T/meta.json" --ext-dids "$EXT_DIDS" \
    --ext-active "${EXT_ACTIVE:-0}" --app "$CAPP" "${extra[@]}" "${dirs[@]}" | tee "$T/report.txt" || crc=${PIPESTATUS[0]}
if [ -n "$OUTDIR" ]; then
    mkdir -p "$OUTDIR"
    cp "$T/report.json" "$T/report.txt" "$T/faults.tsv" "$T/requests.tsv" "$T"/*.log "$OUTDIR/" 2>/dev/null || true
    log "report: $OUTDIR/report.json"
fi
grep -l "Sanitizer\|runtime error" "$T"/*.log 2>/dev/null && fail "sanitizer report in a log"
[ "$crc" = 0 ] || fail "the chaos checks failed (see the report above)"
if [ "$SCENARIO" = main ] && [ "$pauses" -lt "$MINP" ]; then
    fail "only $pauses pauses, --min-pauses $MINP (the load ended first: lower --rate or --interval)"
fi
if [ "$SCENARIO" = main ] && [ "$kills" -lt "$MINK" ]; then
    fail "only $kills kills, --min-kills $MINK (the load ended first: lower --rate or --interval)"
fi
if [ "$SCENARIO" = main ] && [ "$app_kills" -lt "$APP_KILLS" ]; then
    fail "only $app_kills application kills, --app-kills $APP_KILLS (the load ended first: lower --rate or --interval)"
fi
# the history of service actions (issue 19): every record archived by the
# backups replays from genesis to each version's state digest, and the
# chain of archives holds
if [ "$SCENARIO" = main ] || [ -n "$BSTOP" ]; then
    BR2K_SERVICE_KEY_FILE="$T/service.key" "$BIN/br2k" --eth-rpc "$ETH_RPC" --registry "$REG" \
        history verify --app "$APP" --json >"$T/history.json" 2>>"$T/history.log" ||
        fail "br2k history verify: $(jq -r .error "$T/history.json" 2>/dev/null || cat "$T/history.log")"
    log "br2k history verify: versions 2..$(jq .to "$T/history.json"), $(jq .records "$T/history.json") records replayed from genesis ($(jq '.records_per_s | floor' "$T/history.json") records/s)"
fi
echo "chaos ($SCENARIO, $CAPP): all checks passed"
exit 0
}
