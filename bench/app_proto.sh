#!/usr/bin/env bash
# bench/app_proto.sh - the application protocol's cost (issue 15): requests/s
# of one worker applying the same N signed InfoDID requests (br2k submit's
# load generator: registrations and updates) with each application
# in-process and over the protocol, in the same run, and their ratios
# (target: the protocol keeps >= 0.7 of the in-process rate at the default
# batch size). Figures, not assertions.
#
#   no-op    in-process (--app noop)
#            over the protocol: the same plug-in served by br2k-app-serve
#            (worker/apps/bridge), the same work rewritten on the wire
#            (bench/app_proto_noop.c), and a Node no-op with the SDK
#            (bench/app_proto_noop.js; when node is there)
#   InfoDID  in-process (--app infodid) and over the protocol, the same
#            plug-in served by br2k-app-serve
#
# What is timed: the apply path of a FOLLOWER on both sides (the leader's
# commit and external effect, InfoDID's Redis index, cost the same Redis
# round trips either way and would only blur the protocol's cost): a no-op leader first
# commits the N records (SSI = the last), then each measured worker, with a
# fresh state, replays them up to SSI (no external effect, no commit).
# Three figures each (see measure below): requests/s from its own log (one
# debug line per batch, ms time stamps) from the end of its first batch to
# the last record; requests per CPU-second of the worker and its
# application process (steadier when other processes share the CPUs),
# split into the worker's and the application process's CPU per request
# (where the time goes: the engine's side of the protocol, or the
# application's own work); and requests per second of the batches' apply
# and durable phases. The
# measured workers of a run share the log, in an order that rotates from
# run to run; the digest each reaches is shown (the in-process and bridged
# runs of one plug-in agree).
#
# Usage: bench/app_proto.sh [BUILD_DIR]   (default: build; Release is best)
# BENCH_LOG (redis, the default: the log on Redis Streams; kafka:
# br2k-devkafka), BENCH_RECORDS (default 40000 on redis, 12000 on kafka:
# the development broker keeps ~5 MiB),
# BENCH_RUNS (default 5), BENCH_BATCH (the worker's --batch-max, default its
# own 1000), BENCH_NODE=0 skips the Node no-op.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
export BR2K_SOURCE_DIR=$(cd "$here/.." && pwd)
export BR2K_BUILD_DIR=$(cd "${1:-$BR2K_SOURCE_DIR/build}" && pwd)
# the request log: Redis Streams (default: it keeps any length, so that
# even the no-op's replay lasts long enough to time) or br2k-devkafka
export BR2K_TEST_LOG=${BENCH_LOG:-redis}
source "$BR2K_SOURCE_DIR/tests/integration/lib.sh"

N=${BENCH_RECORDS:-$([ "$BR2K_TEST_LOG" = redis ] && echo 40000 || echo 12000)}
RUNS=${BENCH_RUNS:-5}
BATCH=()
[ -z "${BENCH_BATCH:-}" ] || BATCH=(--batch-max "$BENCH_BATCH")
for b in br2k-app-serve br2k-bench-proto-noop; do
    [ -x "$BIN/$b" ] || fail "build $b first (worker/apps/bridge, bench/CMakeLists.txt)"
done

# the measured configurations: label, --app
LABELS=(noop-in noop-bridge noop-c)
declare -A SPEC=([noop-in]=noop [noop-bridge]="exec:$BIN/br2k-app-serve noop"
    [noop-c]="exec:$BIN/br2k-bench-proto-noop" [infodid-in]=infodid
    [infodid-bridge]="exec:$BIN/br2k-app-serve infodid")
if [ "${BENCH_NODE:-1}" != 0 ] && command -v node >/dev/null; then
    LABELS+=(noop-node)
    SPEC[noop-node]="exec:node $here/app_proto_noop.js"
fi
LABELS+=(infodid-in infodid-bridge)
declare -A RATE CPUR APPR DIGEST WUS AUS # [label,run]
mkfifo "$T/sleep.fifo"
exec {SLEEPFD}<>"$T/sleep.fifo" # read -t on it: a sleep without a fork

stop_pids() {
    for pid in "$@"; do kill -TERM "$pid" 2>/dev/null || true; done
    for pid in "$@"; do
        for _ in $(seq 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
        kill -KILL "$pid" 2>/dev/null || true
    done
}
rget() { redis-cli -p "$REDIS_PORT" "$@"; }

# setup RUN: a fresh Redis and broker, N signed requests, committed by a
# no-op leader (SSI = LAST) that then stops
setup() {
    local run=$1 ssi=""
    [ -z "${KAFKA_PID:-}" ] || stop_pids "$KAFKA_PID" "$REDIS_PID"
    rm -rf "$T/redis" "$T/logredis" "$T/devkafka.sock" "$T"/w-*
    start_redis
    start_devkafka
    export BR2K_KAFKA=$KAFKA BR2K_REDIS=$REDIS BR2K_SERVICE=default
    "$BIN/br2k" submit --clients 10 --count $((N / 10)) --updates --no-wait --json \
        --prefix "bench$run" >"$T/load-$run.json"
    LAST=$(jq .last_offset "$T/load-$run.json")
    "$BIN/br2k-worker" --id lead --state-dir "$T/w-lead" --app noop >"$T/lead-$run.log" 2>&1 &
    local lpid=$!; PIDS+=("$lpid")
    local end=$((SECONDS + 300))
    until [ -n "$ssi" ] && [ "$ssi" -ge "$LAST" ]; do
        [ "$SECONDS" -lt "$end" ] || fail "the no-op leader did not commit $LAST: $(tail -3 "$T/lead-$run.log")"
        sleep 0.05
        ssi=$(rget GET 'br2k:{default}:SSI')
    done
    stop_pids "$lpid"
}

# cpu_ns PID...: CPU=the CPU time (ns, every thread) of the processes so far
# (no fork: read by bash from /proc/PID/task/*/schedstat)
cpu_ns() {
    local p f a s=0
    for p in "$@"; do
        for f in /proc/"$p"/task/*/schedstat; do
            read -r a _ <"$f" 2>/dev/null && s=$((s + a))
        done
    done
    CPU=$s
}

# measure RUN LABEL: one worker with a fresh state replays the log up to
# SSI as a follower. Its own log has one debug line per batch, with a
# time stamp in ms: RATE[label,run] is the requests/s from the end of its
# first batch to the last record; APPR[label,run] the same records over the
# time of the batches' apply and durable phases (the debug line's "apply X
# ms, durable Y ms": the application's apply and sync calls and the worker's
# own position write), which leaves out reading the log. CPUR[label,run] is
# requests per CPU
# second of the worker and its application process over the same records
# (/proc schedstat sampled when those two lines appear, within ~3 ms):
# steadier than wall time when other processes share the CPUs.
# DIGEST[label,run]: the digest it reaches.
measure() {
    local run=$1 label=$2 id=f-$2 end=$((SECONDS + 600)) log=$T/$2-$1.log
    local line="" part="" o o1="" w1="" w2="" a1="" a2="" kids="" lfd
    : >"$log"
    "$BIN/br2k-worker" --id "$id" --state-dir "$T/w-$label" --app "${SPEC[$label]}" \
        --log-level debug "${BATCH[@]}" >>"$log" 2>&1 &
    local wpid=$!; PIDS+=("$wpid")
    exec {lfd}<"$log"
    while :; do
        if IFS= read -r -u "$lfd" line; then
            line=$part$line part=""
            case $line in *" debug: batch .."*) ;; *) continue ;; esac
            o=${line#* debug: batch ..} o=${o%% *}
            if [ -z "$o1" ]; then
                kids=$(pgrep -P "$wpid" || true)
                cpu_ns "$wpid"; w1=$CPU
                cpu_ns $kids; a1=$CPU o1=$o
            fi
            if [ "$o" -ge "$LAST" ]; then
                cpu_ns "$wpid"; w2=$CPU
                cpu_ns $kids; a2=$CPU
                break
            fi
        else
            part=$part$line # a line not complete yet
            [ "$SECONDS" -lt "$end" ] && kill -0 "$wpid" 2>/dev/null ||
                fail "$label did not reach $LAST: $(tail -3 "$log")"
            read -r -t 0.003 -u "$SLEEPFD" _ || true # 3 ms, no fork
        fi
    done
    exec {lfd}<&-
    [ "$o1" -lt "$LAST" ] || fail "$label: one batch only: raise BENCH_RECORDS"
    CPUR[$label,$run]=$(awk -v n="$((LAST - o1))" -v c="$((w2 - w1 + a2 - a1))" 'BEGIN { printf "%.0f", n * 1e9 / c }')
    WUS[$label,$run]=$(awk -v n="$((LAST - o1))" -v c="$((w2 - w1))" 'BEGIN { printf "%.2f", c / 1e3 / n }')
    AUS[$label,$run]=$(awk -v n="$((LAST - o1))" -v c="$((a2 - a1))" 'BEGIN { printf "%.2f", c / 1e3 / n }')
    local fig
    fig=$(awk -v last="$LAST" '
        / debug: batch \.\.[0-9]+ / {
            split($1, d, "T"); split(substr(d[2], 1, 12), h, ":")
            t = h[1] * 3600 + h[2] * 60 + h[3]
            match($0, /batch \.\.[0-9]+/); o = substr($0, RSTART + 8, RLENGTH - 8) + 0
            if (n++ == 0) { t1 = t; o1 = o } else {
                match($0, /apply [0-9.]+ ms, durable [0-9.]+/); split(substr($0, RSTART, RLENGTH), f, " ")
                ms += f[2] + f[5]
            }
            if (o >= last) { t2 = t; exit }
        }
        END {
            if (t2 > t1 && o1 < last && ms > 0) printf "%.0f %.0f", (last - o1) / (t2 - t1), (last - o1) * 1000 / ms
            else print "0 0"
        }' "$log")
    RATE[$label,$run]=${fig% *} APPR[$label,$run]=${fig#* }
    [ "${RATE[$label,$run]}" != 0 ] || fail "$label: no rate: raise BENCH_RECORDS"
    local d="" dl="" e2=$((SECONDS + 20))
    until [ "$dl" = "$LAST" ] || [ "$SECONDS" -ge "$e2" ]; do
        sleep 0.1
        dl=$(rget HGET "br2k:{default}:metrics-$id" digest_lpi)
        d=$(rget HGET "br2k:{default}:metrics-$id" digest)
    done
    DIGEST[$label,$run]=$([ "$dl" = "$LAST" ] && echo "${d:0:12}" || echo "?")
    stop_pids "$wpid"
    rm -rf "$T/w-$label"
}

ratio() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.2f", a / b }'; }
median() { printf '%s\n' "$@" | sort -g | awk '{ v[NR] = $1 } END { if (NR % 2) print v[(NR + 1) / 2]; else printf "%.6g\n", (v[NR / 2] + v[NR / 2 + 1]) / 2 }'; }

echo "== app_proto: $N signed InfoDID requests (br2k submit --updates) on the $BR2K_TEST_LOG log, batch ${BENCH_BATCH:-default (1000)}, $RUNS runs, $(nproc) CPUs, load average $(cut -d' ' -f1-3 /proc/loadavg)"
echo "   each worker replays the log as a follower (a no-op leader committed it first): the apply"
echo "   path only (no commit, no external effect on either side);"
echo "   requests/s from the end of its first batch to the last record (the worker's debug log),"
echo "   requests per CPU-second of the worker and its application process over the same records"
echo "   (and each one's CPU microseconds per request),"
echo "   and requests per second of the batches' apply and durable phases (no log reading)"
K=${#LABELS[@]}
for r in $(seq "$RUNS"); do
    setup "$r"
    for ((i = 0; i < K; i++)); do
        measure "$r" "${LABELS[$(((i + r - 1) % K))]}"
    done
    line="  run $r, requests/s:" cl="         per CPU-s: " al="         apply+sync:"
    ul="         CPU us/request (worker+application):"
    for l in "${LABELS[@]}"; do
        line+=" $l ${RATE[$l,$r]}" cl+=" $l ${CPUR[$l,$r]}" al+=" $l ${APPR[$l,$r]}"
        ul+=" $l ${WUS[$l,$r]}+${AUS[$l,$r]}"
    done
    printf '%s\n' "$line" "$cl" "$al" "$ul"
    dn="same"
    [ "${DIGEST[noop-in,$r]}" = "${DIGEST[noop-bridge,$r]}" ] || dn="DIFFERENT"
    di="same"
    [ "${DIGEST[infodid-in,$r]}" = "${DIGEST[infodid-bridge,$r]}" ] || di="DIFFERENT"
    echo "         digests at $LAST: noop in-process ${DIGEST[noop-in,$r]}, bridge ${DIGEST[noop-bridge,$r]} ($dn);" \
        "infodid in-process ${DIGEST[infodid-in,$r]}, bridge ${DIGEST[infodid-bridge,$r]} ($di)"
done
[ -z "${KAFKA_PID:-}" ] || stop_pids "$KAFKA_PID" "$REDIS_PID"

# med ARRAY LABEL: the median of ARRAY[LABEL,*]; medr ARRAY LABEL BASE: the
# median of the per-run ratios LABEL / BASE (each pair from the same run,
# on the same log)
med() {
    local -n a=$1
    local v=() r
    for r in $(seq "$RUNS"); do v+=("${a[$2,$r]}"); done
    printf '%.0f' "$(median "${v[@]}")"
}
medr() {
    local -n a=$1
    local v=() r
    for r in $(seq "$RUNS"); do v+=("$(ratio "${a[$2,$r]}" "${a[$3,$r]}")"); done
    printf '%.2f' "$(median "${v[@]}")"
}
verdict() { awk -v x="$1" 'BEGIN { print (x >= 0.7 ? "meets" : "BELOW") }'; }
# medf ARRAY LABEL: the median of ARRAY[LABEL,*], two decimals
medf() {
    local -n a=$1
    local v=() r
    for r in $(seq "$RUNS"); do v+=("${a[$2,$r]}"); done
    printf '%.2f' "$(median "${v[@]}")"
}
row() { # ROW TITLE LABEL [BASE]
    local w c a us
    us="$(medf WUS "$3")+$(medf AUS "$3")"
    if [ -z "${4:-}" ]; then
        printf '  %-8s %-44s %7s/s %7s/CPU-s %7s/s  %11s us\n' "$1" "$2" "$(med RATE "$3")" \
            "$(med CPUR "$3")" "$(med APPR "$3")" "$us"
        return
    fi
    w=$(medr RATE "$3" "$4") c=$(medr CPUR "$3" "$4") a=$(medr APPR "$3" "$4")
    printf '  %-8s %-44s %7s/s %7s/CPU-s %7s/s  %11s us  ratios %s (%s) %s (%s) %s\n' "$1" "$2" \
        "$(med RATE "$3")" "$(med CPUR "$3")" "$(med APPR "$3")" "$us" \
        "$w" "$(verdict "$w")" "$c" "$(verdict "$c")" "$a"
}
echo "== median of $RUNS runs; a ratio is the median of the per-run ratios to in-process; target >= 0.7"
echo "   columns: requests/s (wall), requests per CPU-second, requests per second of apply+sync,"
echo "   CPU microseconds per request of the worker + of the application process"
echo "   (load average at the end: $(cut -d' ' -f1-3 /proc/loadavg))"
row no-op "in-process" noop-in
row "" "protocol: the same plug-in, br2k-app-serve" noop-bridge noop-in
row "" "protocol: the same work in C on the wire" noop-c noop-in
[ -z "${SPEC[noop-node]:-}" ] || row "" "protocol: a no-op in Node (SDK)" noop-node noop-in
row InfoDID "in-process" infodid-in
row "" "protocol: the same plug-in, br2k-app-serve" infodid-bridge infodid-in
