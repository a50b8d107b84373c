#!/usr/bin/env bash
# bench/failover.sh - failover figures (printed, not asserted): how long after
# the leader stops the next result is committed, and how often a loaded leader
# with no fault injected loses its lease anyway (a spurious leader change).
#
# Usage: bench/failover.sh [--mode both|pauses|loaded] [--pauses N] [--minutes M]
#                          [--rate N] [--lease-ms MS] [--log kafka|redis] [--dir DIR] [--keep]
#   --mode MODE     pauses: N leader pauses; loaded: an M-minute loaded run with no
#                   fault; both (default): the loaded run, then the pauses, each on
#                   a fresh stack
#   --pauses N      leader pauses (default 20)
#   --minutes M     length of the loaded run in minutes (default 2; 10 for the
#                   issue's figure)
#   --rate N        steady load, requests/s (default 500; InfoDID registrations and
#                   updates, `br2k submit --rate --updates`)
#   --lease-ms MS   the workers' --lease-ms (BR2K_LEASE_MS; default: the worker's own)
#   --log LOG       the request log: kafka (br2k-devkafka, default) or redis (Streams)
#   --dir DIR       where the stacks go (default: a new directory under /tmp)
#   --keep          keep DIR (logs) afterwards
# Binaries: $BR2K_BUILD_DIR/bin (default /work/main/build-bench; a Release build),
# including br2k-bench-changes (bench/backup_stall.c), the monitor of SSI.
#
# Each mode runs on a fresh `deploy/local/stack up --workers 3` (backupd does not
# back up by itself: BR2K_MAX_REPLICATED=100000000) under a steady load.
#
# pauses: the monitor time-stamps every SSI the leaders publish on
# br2k:{default}:changes. Once the three workers are alive, one of them leading
# and the others caught up, and after a random 1-2.5 s (so that the pause falls
# anywhere between two lease renewals), the leader's worker is stopped
# (SIGSTOP); SSI is read just after. The failover time is from the SIGSTOP to the
# first SSI above that value (a result committed by the next leader); then the
# old leader is resumed (SIGCONT) and steps down (its lease is fenced).
#
# loaded: after 5 s of warm-up, M minutes of load with no fault. The leader
# changes are the epoch's increments (br2k:{default}:epoch) over the window: any
# is spurious. From the workers' logs: the lease renewals of each leader (the
# "lease renewals:" line each logs every 60 s while leading and when it stops:
# the gap from one renewal to the next, p50..max, how many were late, i.e. over
# half the lease, and how many reached the lease), and the "lease renewal late"
# warnings inside the window.
#
# Every process is stopped by PID (`stack down`, the load generator, the
# monitor); nothing is left running.
set -euo pipefail
SRC=$(cd "$(dirname "$0")/.." && pwd)
export BR2K_BUILD_DIR=${BR2K_BUILD_DIR:-/work/main/build-bench}
BIN=$BR2K_BUILD_DIR/bin
STACK=$SRC/deploy/local/stack

MODE=both PAUSES=20 MINUTES=2 RATE=500 LEASE_MS="" LOG=kafka BASE_DIR="" KEEP=0
while [ $# -gt 0 ]; do
    case $1 in
    --mode) MODE=${2:?}; shift 2 ;;
    --pauses) PAUSES=${2:?}; shift 2 ;;
    --minutes) MINUTES=${2:?}; shift 2 ;;
    --rate) RATE=${2:?}; shift 2 ;;
    --lease-ms) LEASE_MS=${2:?}; shift 2 ;;
    --log) LOG=${2:?}; shift 2 ;;
    --dir) BASE_DIR=${2:?}; shift 2 ;;
    --keep) KEEP=1; shift ;;
    -h | --help) sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
    *) echo "failover: unknown argument '$1' (see --help)" >&2; exit 2 ;;
    esac
done
case $MODE in both | pauses | loaded) ;; *)
    echo "failover: --mode: '$MODE' is not both, pauses or loaded" >&2; exit 2 ;;
esac
case $LOG in kafka | redis) ;; *)
    echo "failover: --log: '$LOG' is not kafka or redis" >&2; exit 2 ;;
esac
for v in "$PAUSES" "$MINUTES" "$RATE" ${LEASE_MS:+"$LEASE_MS"}; do
    [[ $v =~ ^[1-9][0-9]*$ ]] || { echo "failover: '$v' is not a positive integer" >&2; exit 2; }
done
for b in br2k br2k-worker br2k-bench-changes; do
    [ -x "$BIN/$b" ] || { echo "failover: no $BIN/$b: build first" \
        "(cmake -S $SRC -B $BR2K_BUILD_DIR -DCMAKE_BUILD_TYPE=Release && make -C $BR2K_BUILD_DIR)" >&2; exit 2; }
done
if [ -z "$BASE_DIR" ]; then BASE_DIR=$(mktemp -d /tmp/br2k-failover.XXXXXX); fi
mkdir -p "$BASE_DIR"
BASE_DIR=$(cd "$BASE_DIR" && pwd)

say() { echo "failover: $*" >&2; }
now_ms() { local t=${EPOCHREALTIME/./}; echo "${t:0:13}"; } # no fork
die() { say "$*"; exit 1; }

DIR="" MON_PID="" LOAD_PID="" STOPPED_PID=""
stop_pid() { # PID: one we started
    [ -n "$1" ] || return 0
    kill -TERM "$1" 2>/dev/null || return 0
    for _ in $(seq 50); do kill -0 "$1" 2>/dev/null || break; sleep 0.1; done
    kill -KILL "$1" 2>/dev/null || true
    wait "$1" 2>/dev/null || true
}
teardown() {
    [ -z "$STOPPED_PID" ] || kill -CONT "$STOPPED_PID" 2>/dev/null || true
    STOPPED_PID=""
    stop_pid "$LOAD_PID"; LOAD_PID=""
    stop_pid "$MON_PID"; MON_PID=""
    if [ -n "$DIR" ] && [ -f "$DIR/stack.json" ]; then
        "$STACK" down --dir "$DIR" >&2 || say "stack down failed in $DIR"
    fi
    DIR=""
}
on_exit() {
    local rc=$?
    teardown
    if [ "$rc" -ne 0 ]; then
        say "failed (rc=$rc); logs kept in $BASE_DIR"
    elif [ "$KEEP" -eq 0 ]; then
        rm -rf "$BASE_DIR"
    else
        say "logs kept in $BASE_DIR"
    fi
    exit "$rc"
}
trap on_exit EXIT
trap 'exit 130' INT TERM

status_json() { "$BIN/br2k" status --json 2>/dev/null || echo '{}'; }
rget() { redis-cli -h "${BR2K_REDIS%:*}" -p "${BR2K_REDIS##*:}" --no-auth-warning GET "$1"; }

# a fresh stack in $BASE_DIR/NAME, with a steady load running
stack_up() { # NAME REQUESTS
    DIR=$BASE_DIR/$1
    rm -rf "$DIR"; mkdir -p "$DIR"
    unset BR2K_STACK_DIR BR2K_SERVICE BR2K_REDIS BR2K_KAFKA BR2K_KAFKA_CONTROL \
        BR2K_ETH_RPC BR2K_REGISTRY BR2K_SERVICE_KEY_FILE
    local lease=()
    [ -z "$LEASE_MS" ] || lease=(BR2K_LEASE_MS="$LEASE_MS")
    env "${lease[@]}" BR2K_MAX_REPLICATED=100000000 "$STACK" up --dir "$DIR" --workers 3 \
        --log "$LOG" >"$DIR/up.log" 2>&1 || die "stack up failed: $(tail -3 "$DIR/up.log")"
    eval "$("$STACK" env --dir "$DIR")"
    wait_ready 30 || die "no leader with 3 workers 30 s after stack up: $(status_json | jq -c .)"
    local clients=4
    "$BIN/br2k" submit --clients "$clients" --count $(( ($2 + clients - 1) / clients )) \
        --rate "$RATE" --updates --window 20000 --prefix "fo-$1" --json \
        >"$DIR/load.json" 2>"$DIR/load.err" &
    LOAD_PID=$!
    say "$1: stack in $DIR (log $LOG, $(grep -om1 'lease [0-9]* ms' "$DIR/logs/worker-w1.log")), load $RATE requests/s (pid $LOAD_PID)"
}

# one leader (the lease holder) and two followers, all alive and less than a
# second of load behind
wait_ready() { # SECONDS
    local end=$((SECONDS + $1))
    while :; do
        status_json | jq -e --argjson lag "$RATE" '.leader != null and (.members | length) == 3 and
            all(.members[]; .alive and .metrics.lag <= $lag) and
            ([.members[] | select(.metrics.role == "leader")] | length) == 1 and
            ([.members[] | select(.metrics.role == "follower")] | length) == 2 and
            ([.members[] | select(.metrics.role == "leader")][0].id == .leader.id)' \
            >/dev/null 2>&1 && return 0
        [ "$SECONDS" -lt "$end" ] || return 1
        sleep 0.2
    done
}

pct() { # P (0-100), numbers on stdin: nearest rank
    sort -n | awk -v p="$1" '{a[NR]=$1} END {if (NR==0) {print "-"; exit}
        k=int((p*NR+99)/100); if (k<1) k=1; if (k>NR) k=NR; print a[k]}'
}

# ---- pauses
run_pauses() {
    stack_up pauses $((RATE * (PAUSES * 6 + 60)))
    "$BIN/br2k-bench-changes" >"$DIR/changes.txt" 2>"$DIR/changes.err" &
    MON_PID=$!
    local i
    for i in $(seq 50); do grep -q subscribed "$DIR/changes.txt" && break; sleep 0.1; done
    grep -q subscribed "$DIR/changes.txt" || die "the monitor did not subscribe: $(cat "$DIR/changes.err")"
    local ep0 res="$DIR/pauses.txt" fails=0
    ep0=$(rget 'br2k:{default}:epoch')
    : >"$res"
    for i in $(seq "$PAUSES"); do
        wait_ready 60 || die "pause $i: the workers did not settle in 60 s: $(status_json | jq -c .)"
        sleep "$(awk -v r=$RANDOM 'BEGIN {printf "%.3f", 1 + 1.5 * r / 32768}')"
        local st id ep pid off t0 ssi0 t1="" line
        st=$(status_json)
        id=$(jq -r '.leader.id // empty' <<<"$st")
        ep=$(jq -r '.leader.epoch // empty' <<<"$st")
        pid=$(jq -r --arg id "$id" '.parts[] | select(.id == $id) | .pid' "$DIR/stack.json")
        [ -n "$pid" ] || die "pause $i: no worker for leader '$id'"
        off=$(stat -c %s "$DIR/changes.txt")
        t0=$(now_ms)
        kill -STOP "$pid"
        STOPPED_PID=$pid
        ssi0=$(rget 'br2k:{default}:SSI')
        [[ $ssi0 =~ ^-?[0-9]+$ ]] || die "pause $i: cannot read SSI ('$ssi0')"
        local end=$((SECONDS + 20))
        while [ "$SECONDS" -lt "$end" ]; do
            line=$(tail -c +$((off + 1)) "$DIR/changes.txt" | awk -v t0="$t0" -v s0="$ssi0" \
                '$1 >= t0 && $2 ~ /^[0-9]+$/ && $2 + 0 > s0 + 0 {print $1; exit}')
            if [ -n "$line" ]; then t1=$line; break; fi
            sleep 0.02
        done
        kill -CONT "$pid"
        STOPPED_PID=""
        if [ -z "$t1" ]; then
            fails=$((fails + 1))
            say "  pause $i: leader $id (epoch $ep) stopped; no result committed within 20 s"
            continue
        fi
        local ms tk="" tkms="-" upms="-"
        ms=$(awk -v a="$t1" -v b="$t0" 'BEGIN {printf "%.0f", a - b}')
        echo "$ms" >>"$res"
        # the take: the first "took the lease" line with a higher epoch
        tk=$({ grep -h 'took the lease with epoch' "$DIR"/logs/worker-*.log || true; } |
            awk -v ep="$ep" '$NF + 0 > ep + 0 {print $1}' | sort | head -1)
        if [ -n "$tk" ]; then
            tk=$(date -d "$tk" +%s%3N)
            tkms=$((tk - t0))
            upms=$(awk -v a="$t1" -v b="$tk" 'BEGIN {printf "%.0f", a - b}')
            echo "$tkms" >>"$DIR/takes.txt"
            echo "$upms" >>"$DIR/ups.txt"
        fi
        say "  pause $i: leader $id (epoch $ep, SSI $ssi0) stopped; next result after $ms ms (lease taken after $tkms ms, first result $upms ms later)"
    done
    local ep1 n
    ep1=$(rget 'br2k:{default}:epoch')
    n=$(wc -l <"$res")
    echo "pauses: $n of $PAUSES leader pauses measured ($fails without a result in 20 s), $(grep -om1 'lease [0-9]* ms' "$DIR/logs/worker-w1.log"), load $RATE requests/s, log $LOG"
    echo "  leader stopped -> next committed result (ms): p50 $(pct 50 <"$res")  p90 $(pct 90 <"$res")  max $(pct 100 <"$res")  min $(pct 0 <"$res")  mean $(awk '{s+=$1} END {if (NR) printf "%.0f", s/NR; else print "-"}' "$res")"
    touch "$DIR/takes.txt" "$DIR/ups.txt"
    echo "  of which: stopped -> lease taken by another p50 $(pct 50 <"$DIR/takes.txt") max $(pct 100 <"$DIR/takes.txt"); taken -> first result p50 $(pct 50 <"$DIR/ups.txt") max $(pct 100 <"$DIR/ups.txt") (from the workers' log lines, ms)"
    echo "  leader changes: $((ep1 - ep0)) epoch increments for $PAUSES pauses"
    echo "  all (ms): $(sort -n "$res" | tr '\n' ' ')"
    teardown
}

# ---- loaded run, no fault
in_window() { # FROM_MS TO_MS PATTERN FILES...: lines matching PATTERN logged in the window
    local a=$1 b=$2 pat=$3; shift 3
    { grep -h -- "$pat" "$@" 2>/dev/null || true; } | while read -r ts _; do
        local t; t=$(date -d "$ts" +%s%3N 2>/dev/null) || continue
        if [ "$t" -ge "$a" ] && [ "$t" -le "$b" ]; then echo "$ts"; fi
    done | wc -l
}
run_loaded() {
    stack_up loaded $((RATE * (MINUTES * 60 + 30)))
    sleep 5
    local ep0 t0 t1 ep1 left=$((MINUTES * 60))
    ep0=$(rget 'br2k:{default}:epoch')
    t0=$(now_ms)
    say "loaded: $MINUTES min with no fault from epoch $ep0"
    while [ "$left" -gt 0 ]; do
        local s=$((left < 30 ? left : 30))
        sleep "$s"; left=$((left - s))
        kill -0 "$LOAD_PID" 2>/dev/null || die "the load generator ended early: $(cat "$DIR/load.err" "$DIR/load.json")"
        say "  $(( (MINUTES * 60 - left) )) s: epoch $(rget 'br2k:{default}:epoch'), SSI $(rget 'br2k:{default}:SSI')"
    done
    t1=$(now_ms)
    ep1=$(rget 'br2k:{default}:epoch')
    local ssi; ssi=$(rget 'br2k:{default}:SSI')
    local logs=("$DIR"/logs/worker-*.log)
    local late lost took
    late=$(in_window "$t0" "$t1" 'lease renewal late' "${logs[@]}")
    lost=$(in_window "$t0" "$t1" "lease of epoch .* lost" "${logs[@]}")
    took=$(in_window "$t0" "$t1" 'took the lease' "${logs[@]}")
    teardown # the workers log their last "lease renewals:" line as they stop
    echo "loaded: $MINUTES min at $RATE requests/s with no fault, $(grep -om1 'lease [0-9]* ms' "${logs[0]}"), log $LOG; SSI $ssi at the end"
    echo "  spurious leader changes: $((ep1 - ep0)) (epoch $ep0 -> $ep1; $took lease takes, $lost leases lost in the window)"
    echo "  late renewals in the window (gap over half the lease): $late"
    local f
    for f in "${logs[@]}"; do
        local l; l=$({ grep 'lease renewals:' "$f" || true; } | tail -1 | sed 's/.*lease renewals: /renewals: /')
        [ -z "$l" ] || echo "  $(basename "$f" .log): $l"
    done
}

case $MODE in
both) run_loaded; run_pauses ;;
pauses) run_pauses ;;
loaded) run_loaded ;;
esac
