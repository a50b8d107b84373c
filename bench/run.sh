#!/usr/bin/env bash
# bench/run.sh - the hot path's figures (issue 20 (a), (b), (c)), printed,
# not asserted; each over BENCH_RUNS runs with min/median/max:
#   (a) no-op application, one worker: committed requests/s against a plain
#       reader of the same records, each read ONCE from the same starting
#       state and timed the same way (target: ratio >= 0.5), on the Redis
#       Streams log (a plain hiredis XREAD reader) and on br2k-devkafka (a
#       plain librdkafka consumer), with the worker's per-stage breakdown
#       and the CPU each side used per record (the worker, both Redis
#       servers; the reader, the log's Redis): the ratio the two cores
#       allow at most, however well the worker overlaps its stages;
#   (b) InfoDID, 1 and 3 workers, as fast as possible, against the CPU
#       bound cores / (replicas x t_apply) measured in the same run
#       (br2k-bench-apply: one thread applying the same signed requests;
#       target: >= 0.8 of the bound), with the CPU per request of the
#       workers, each Redis and the load generator (while its clock ran)
#       and the apply's share of all of it: with the cores busy, the
#       fraction cannot pass that share;
#   (c) publish-to-result latency p50/p99 at 500, 1,000 and 2,000
#       requests/s, 3 InfoDID workers (target at 1,000/s: p50 <= 10 ms,
#       p99 <= 50 ms), with the leader's per-batch breakdown.
# Usage: bench/run.sh [BUILD_DIR]   (default: build; a Release build is best)
# Environment:
#   BENCH_PARTS   parts to run (default "a b c"; e.g. BENCH_PARTS=a)
#   BENCH_RUNS    runs of each figure (default 3)
#   BENCH_LOG     the log of (b) and (c): redis (default: Redis Streams,
#                 any length) or kafka (br2k-devkafka, ~5 MiB kept)
#   BENCH_A_RECORDS (default 150000), BENCH_A_KAFKA_RECORDS (default 9000:
#                 inside the development broker's ~5 MiB), BENCH_A_KAFKA=0
#                 skips (a) on br2k-devkafka
#   BENCH_B_CLIENTS (10), BENCH_B_COUNT (2000 per client)
#   BENCH_C_SECONDS (5 per rate), BENCH_C_RATES ("500 1000 2000"),
#   BENCH_C_APP (infodid), BENCH_C_WORKERS (3),
#   BENCH_C_COMPARE "LABEL=PATH ..." other br2k binaries (e.g. one built
#                 without the br2k_poll fix), each also measured at 1,000/s
#                 in each run, for comparison
#   BENCH_WORKER_ARGS extra worker arguments
# Every server is started by tests/integration/lib.sh on a free loopback
# port and stopped by PID. The machine's other processes move every figure:
# compare the ratios measured in the same run.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
export BR2K_SOURCE_DIR=$(cd "$here/.." && pwd)
export BR2K_BUILD_DIR=$(cd "${1:-$BR2K_SOURCE_DIR/build}" && pwd)
export BR2K_TEST_LOG=${BENCH_LOG:-redis}
source "$BR2K_SOURCE_DIR/tests/integration/lib.sh"
MAIN_LOG=$LOG_BACKEND

RUNS=${BENCH_RUNS:-3}
N_A=${BENCH_A_RECORDS:-150000}
N_AK=${BENCH_A_KAFKA_RECORDS:-9000}
CLIENTS_B=${BENCH_B_CLIENTS:-10}
COUNT_B=${BENCH_B_COUNT:-2000}
SECS_C=${BENCH_C_SECONDS:-5}
APP_C=${BENCH_C_APP:-infodid}
NW_C=${BENCH_C_WORKERS:-3}
RATES_C=(${BENCH_C_RATES:-500 1000 2000})
NCPU=$(nproc)
for b in br2k-worker br2k br2k-bench-consume br2k-bench-apply; do
    [ -x "$BIN/$b" ] || fail "build $b first ($BIN)"
done
mkfifo "$T/sleep.fifo"
exec {SLEEPFD}<>"$T/sleep.fifo" # read -t on it: a sleep without a fork

stop_pids() { # stop what this part started (by PID)
    local pid
    for pid in "$@"; do kill -TERM "$pid" 2>/dev/null || true; done
    for pid in "$@"; do
        for _ in $(seq 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
        kill -KILL "$pid" 2>/dev/null || true
    done
}
want() { [[ " ${BENCH_PARTS:-a b c} " == *" $1 "* ]]; }
# stats V...: "min M, median D, max X" of the values
median() { printf '%s\n' "$@" | sort -g | awk '{ v[NR] = $1 } END { if (NR % 2) print v[(NR + 1) / 2]; else printf "%.6g\n", (v[NR / 2] + v[NR / 2 + 1]) / 2 }'; }
stats() { # FORMAT V...: min/median/max of V in FORMAT (printf)
    local f=$1; shift
    local s; s=$(printf '%s\n' "$@" | sort -g)
    printf "min $f, median $f, max $f" "$(head -1 <<<"$s")" "$(median "$@")" "$(tail -1 <<<"$s")"
}
div() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.4g", (b != 0 ? a / b : 0) }'; }
# cpu_s PID...: the user + system CPU seconds the processes used so far (all
# their threads; /proc/PID/stat fields 14 and 15, after the command's ")")
CLK_TCK=$(getconf CLK_TCK)
cpu_s() {
    local pid s t=0
    for pid in "$@"; do
        s=$(cat "/proc/$pid/stat" 2>/dev/null) || fail "cpu_s: no process $pid"
        s=${s##*) }
        read -r -a f <<<"$s"
        t=$((t + f[11] + f[12])) # utime, stime (fields 14, 15 of the line)
    done
    awk -v t="$t" -v hz="$CLK_TCK" 'BEGIN { printf "%.3f", t / hz }'
}
# child_cpu: the user + system CPU seconds of the children waited for so far
# (times runs in this shell: in $(...) it would count the subshell's)
child_cpu() {
    times >"$T/times"
    awk 'END { n = split($0, f, " "); s = 0; for (i = 1; i <= n; i++) { split(f[i], p, "m"); s += p[1] * 60 + p[2] } printf "%.3f", s }' "$T/times"
}
# us_per N CPU0 CPU1: (CPU1 - CPU0) seconds over N, in microseconds
us_per() { awk -v n="$1" -v a="$2" -v b="$3" 'BEGIN { printf "%.2f", (b - a) * 1e6 / n }'; }

# use_log redis|kafka: the log back end of the next start_devkafka
use_log() { LOG_BACKEND=$1; }
# fresh_redis / fresh_log: fresh_redis / fresh_log on empty data
fresh_redis() { rm -rf "$T/redis"; start_redis; }
fresh_log() { rm -rf "$T/logredis" "$T/devkafka.sock"; start_devkafka; }

# start_worker ID APP LOG [ARGS]: a worker with a fresh state, debug log
# to LOG; sets WPID
start_worker() {
    local id=$1 app=$2 log=$3; shift 3
    rm -rf "$T/st-$id"; mkdir -p "$T/st-$id"; : >"$log"
    "$BIN/br2k-worker" --id "$id" --state-dir "$T/st-$id" --app "$app" --log-level debug \
        ${BENCH_WORKER_ARGS:-} "$@" >"$log" 2>&1 &
    WPID=$!; PIDS+=("$WPID")
}

# wait_log LOG PATTERN PID SECS: read LOG as it grows (no fork) until a
# line matches the extended regex PATTERN; fails when PID dies or SECS pass
wait_log() {
    local log=$1 pat=$2 pid=$3 end=$((SECONDS + $4)) line="" part="" fd
    exec {fd}<"$log"
    while :; do
        if IFS= read -r -u "$fd" line; then
            line=$part$line part=""
            [[ $line =~ $pat ]] && break
        else
            part=$part$line
            [ "$SECONDS" -lt "$end" ] && kill -0 "$pid" 2>/dev/null ||
                { exec {fd}<&-; fail "no line /$pat/ in $log: $(tail -3 "$log")"; }
            read -r -t 0.05 -u "$SLEEPFD" _ || true # 50 ms, no fork
        fi
    done
    exec {fd}<&-
}

# stages LOG FROM LAST: the worker's rate and breakdown from its debug log
# (ms time stamps): the batches after its first one (ending at offset O1,
# time T1) up to the commit that covers LAST (time T2). Prints
# "RATE N WALL_MS" then one "name us_per_request share" line per stage.
# Main thread, per batch (worker/batch.c's debug line): apply (the
# application), bookkeeping (results' ids, digest: the batch minus its
# phases), local sync of the state, read-ahead (the log's records already
# there), held results (worker.held), position (worker.pos), the rest of
# the durable phase (LPI mirror), the wait for the previous commit; log
# read: the main thread's time between batches (waiting for the log).
# Commit thread (worker/commit.c's debug line, overlapping the next
# batches): the fenced commit (results + SSI + PUBLISH, one script).
stages() {
    awk -v last="$3" -v from="$2" '
    function ts(s,  d, h) { split(s, d, "T"); split(substr(d[2], 1, 12), h, ":"); return (h[1] * 3600 + h[2] * 60 + h[3]) * 1000 }
    function f(name,  re, x) { re = name " [0-9.]+"; if (!match($0, re)) return 0; x = substr($0, RSTART + length(name) + 1, RLENGTH - length(name) - 1); return x + 0 }
    / debug: batch \.\.[0-9]+ / {
        t = ts($1); match($0, /batch \.\.[0-9]+/); o = substr($0, RSTART + 8, RLENGTH - 8) + 0
        if (o < from) next
        if (nb++ == 0) { t1 = t; o1 = o; tp = t; next }
        ap = f("apply"); du = f("durable"); cm = f("commit"); b = f("; batch")
        st = f("state"); ra = f("read-ahead"); he = f("results"); po = f("position")
        S["apply"] += ap; S["bookkeeping"] += b - ap - du - cm; S["sync state"] += st
        S["read-ahead"] += ra; S["sync results"] += he; S["sync position"] += po
        S["durable other"] += du - st - ra - he - po; S["commit wait"] += cm
        S["log read + main loop (between batches)"] += (t - tp) - b; tp = t; recs += 0
    }
    / debug: commit \.\.[0-9]+ / && nb > 0 {
        t = ts($1); match($0, /commit \.\.[0-9]+/); o = substr($0, RSTART + 9, RLENGTH - 9) + 0
        if (o <= o1) next
        C += f("fenced commit"); nc++
        if (o >= last) { t2 = t; exit }
    }
    END {
        n = last - o1; w = t2 - t1
        if (nb < 2 || t2 <= t1 || n <= 0) { print "0 0 0"; exit }
        printf "%.0f %d %d\n", n * 1000 / w, n, w
        split("apply|bookkeeping|sync state|sync results|sync position|durable other|commit wait|read-ahead|log read + main loop (between batches)", k, "|")
        for (i = 1; i <= 9; i++) printf "%s|%.3f|%.1f\n", k[i], S[k[i]] * 1000 / n, 100 * S[k[i]] / w
        printf "fenced commit (commit thread, %d commits)|%.3f|%.1f\n", nc, C * 1000 / n, 100 * C / w
        printf "last batch to its commit|%.3f|%.1f\n", (t2 - tp) * 1000 / n, 100 * (t2 - tp) / w
    }' "$1"
}

# ---------------------------------------------------------------- (a)
# a_fill LOG N: a fresh log server (LOG) holding N records (the no-op
# ignores their content); sets A_LAST
a_fill() {
    use_log "$1"
    fresh_log
    A_LOGPID=$KAFKA_PID
    export BR2K_KAFKA=$KAFKA BR2K_SERVICE=default
    fresh_redis # the load generator's Redis (not used with --no-wait)
    export BR2K_REDIS=$REDIS
    "$BIN/br2k" submit --clients 10 --count $(($2 / 10)) --no-wait --json \
        --prefix bencha >"$T/a-fill.json" || fail "fill: $(cat "$T/a-fill.json")"
    A_LAST=$(jq .last_offset "$T/a-fill.json")
    stop_pids "$REDIS_PID"
}

# a_run LOG RUN: one run of (a) on the filled log: the plain reader and the
# worker (fresh Redis, fresh state), in an order that alternates by run
a_run() {
    local lg=$1 r=$2 first
    fresh_redis
    export BR2K_REDIS=$REDIS
    first=$([ $((r % 2)) = 1 ] && echo plain || echo worker)
    local n=$((A_LAST + 1)) l0 c0 r0 w1 # CPU (s) before / of the worker
    for side in $first $([ "$first" = plain ] && echo worker || echo plain); do
        l0=$(cpu_s "$A_LOGPID")
        if [ "$side" = plain ]; then
            child_cpu >"$T/c0"
            "$BIN/br2k-bench-consume" --count "$n" --from 0 \
                >"$T/a-$lg-$r.plain.json" || fail "plain reader: $(cat "$T/a-$lg-$r.plain.json")"
            child_cpu >"$T/c1"
            A_PCPU=$(us_per "$n" "$(cat "$T/c0")" "$(cat "$T/c1")")
            A_PLOG=$(us_per "$n" "$l0" "$(cpu_s "$A_LOGPID")")
        else
            r0=$(cpu_s "$REDIS_PID")
            start_worker w1 noop "$T/a-$lg-$r.log"
            wait_log "$T/a-$lg-$r.log" " debug: commit \.\.$A_LAST " "$WPID" 600
            w1=$(cpu_s "$WPID")
            A_WCPU=$(us_per "$n" 0 "$w1")
            A_WRED=$(us_per "$n" "$r0" "$(cpu_s "$REDIS_PID")")
            A_WLOG=$(us_per "$n" "$l0" "$(cpu_s "$A_LOGPID")")
            stop_pids "$WPID"
        fi
    done
    stop_pids "$REDIS_PID"
    stages "$T/a-$lg-$r.log" 0 "$A_LAST" >"$T/a-$lg-$r.stages"
    read -r wr wn wms <"$T/a-$lg-$r.stages"
    local pr pn pfirst
    pr=$(jq .rate_after_first "$T/a-$lg-$r.plain.json")
    pfirst=$(jq .first_batch "$T/a-$lg-$r.plain.json")
    pn=$(jq .records "$T/a-$lg-$r.plain.json")
    [ "$wr" != 0 ] || fail "(a) $lg run $r: no rate from the worker's log"
    AW+=("$wr") AP+=("$pr") AR+=("$(div "$wr" "$pr")")
    printf '  run %d (%s first): worker %.0f requests/s (%d records, %d ms); plain %.0f records/s (%d of %d records after its first batch, %.0f ms); ratio %.3f\n' \
        "$r" "$first" "$wr" "$wn" "$wms" "$pr" "$((pn - pfirst))" "$pn" \
        "$(jq '.seconds_after_first * 1000' "$T/a-$lg-$r.plain.json")" "$(div "$wr" "$pr")"
    # the CPU each side used per record, all its processes (from start to
    # end, so a little more than the timed window): what the two cores
    # allow the worker's side at most, whatever it overlaps
    local wt cap
    wt=$(awk -v a="$A_WCPU" -v b="$A_WRED" -v c="$A_WLOG" 'BEGIN { printf "%.2f", a + b + c }')
    cap=$(awk -v c="$NCPU" -v t="$wt" 'BEGIN { printf "%.0f", c * 1e6 / t }')
    AC+=("$(div "$cap" "$pr")")
    printf '    CPU per record: worker %s + coordination Redis %s + log Redis %s = %s us; plain reader %s + log Redis %s us;
' \
        "$A_WCPU" "$A_WRED" "$A_WLOG" "$wt" "$A_PCPU" "$A_PLOG"
    printf '    %d cores run the worker'"'"'s side at most %s requests/s: ratio at most %.3f\n' \
        "$NCPU" "$cap" "$(div "$cap" "$pr")"
}

a_part() { # LOG N WHAT
    local lg=$1 n=$2 what=$3 r
    echo "== (a) no-op application, one worker, vs $what; $n records on the $lg log, $RUNS runs"
    echo "   each side reads every record once from the same log (fresh Redis, fresh state each run),"
    echo "   timed from the end of its first batch to its last record (the worker: to the commit"
    echo "   that covers it, from its own debug log's ms time stamps); target ratio >= 0.5"
    AW=() AP=() AR=() AC=()
    a_fill "$lg" "$n"
    for r in $(seq "$RUNS"); do a_run "$lg" "$r"; done
    stop_pids "$A_LOGPID"
    echo "  worker: $(stats '%.0f' "${AW[@]}") requests/s"
    echo "  plain:  $(stats '%.0f' "${AP[@]}") records/s"
    echo "  ratio:  $(stats '%.3f' "${AR[@]}") (target >= 0.5)"
    echo "  ratio the CPU allows (all the worker's side's CPU per record on $NCPU cores):"
    echo "          $(stats '%.3f' "${AC[@]}")"
    echo "  the worker's stages (run 1..$RUNS, us per request and % of the worker's wall time;"
    echo "  the commit thread's fenced commit overlaps the main thread's next batches):"
    for r in $(seq "$RUNS"); do tail -n +2 "$T/a-$lg-$r.stages"; done | awk -F'|' '
        { if (!($1 in u)) o[++k] = $1; u[$1] = u[$1] " " sprintf("%.3f", $2); p[$1] = p[$1] " " sprintf("%.1f%%", $3) }
        END { for (i = 1; i <= k; i++) printf "    %-44s us/req%s   share%s\n", o[i], u[o[i]], p[o[i]] }'
}

want a && {
    a_part redis "$N_A" "a plain hiredis XREAD reader (COUNT 500, as the worker's reader)"
    [ "${BENCH_A_KAFKA:-1}" = 0 ] ||
        a_part kafka "$N_AK" "a plain librdkafka consumer (the development broker's ~5 MiB window: a short run)"
}

# ---------------------------------------------------------------- (b)
want b && {
    echo "== (b) InfoDID, as fast as possible ($CLIENTS_B clients x $COUNT_B requests), 1 and 3 workers,"
    echo "   against the CPU bound cores / (replicas x t_apply), t_apply measured in the same run"
    echo "   (br2k-bench-apply: one thread applying the same signed requests, CPU time; $NCPU cores),"
    echo "   $MAIN_LOG log, $RUNS runs each; target >= 0.8 of the bound"
    for nw in 1 3; do
        BR=() BT=() BB=() BF=() BS=()
        for r in $(seq "$RUNS"); do
            use_log "$MAIN_LOG"
            fresh_redis
            fresh_log
            export BR2K_KAFKA=$KAFKA BR2K_REDIS=$REDIS BR2K_SERVICE=default
            wp=()
            for i in $(seq "$nw"); do
                start_worker "w$i" infodid "$T/b$nw-$r-w$i.log"
                wp+=("$WPID")
            done
            ready() { "$BIN/br2k" status --json | jq -e --argjson n "$nw" \
                '.leader != null and (.members | length) == $n' >/dev/null; }
            wait_for 30 ready || fail "workers did not start (see $T)"
            w0=0 r0=0 l0=0 w1=0 r1=0 l1=0
            w0=$(cpu_s "${wp[@]}") r0=$(cpu_s "$REDIS_PID") l0=$(cpu_s "$KAFKA_PID")
            "$BIN/br2k" submit --clients "$CLIENTS_B" --count "$COUNT_B" --json \
                --prefix "benchb$r" --wait-ms 120000 >"$T/b$nw-$r.json" || true
            w1=$(cpu_s "${wp[@]}") r1=$(cpu_s "$REDIS_PID") l1=$(cpu_s "$KAFKA_PID")
            stop_pids "${wp[@]}"
            # t_apply: the same records, one thread, no other work running
            rm -rf "$T/b-apply"; mkdir -p "$T/b-apply"
            "$BIN/br2k-bench-apply" --app infodid --state-dir "$T/b-apply" --from 0 \
                >"$T/b$nw-$r.apply.json" || fail "br2k-bench-apply: $(cat "$T/b$nw-$r.apply.json")"
            stop_pids "$KAFKA_PID" "$REDIS_PID"
            rps=$(jq .throughput_rps "$T/b$nw-$r.json")
            tap=$(jq .cpu_us_per_request "$T/b$nw-$r.apply.json")
            bound=$(awk -v c="$NCPU" -v n="$nw" -v t="$tap" 'BEGIN { printf "%.0f", c / (n * t / 1e6) }')
            BR+=("$rps") BT+=("$tap") BB+=("$bound") BF+=("$(div "$rps" "$bound")")
            printf '  %d worker(s), run %d: %.0f requests/s (%s); t_apply %.1f us CPU (apply alone %.1f us, %s records, wall %.1f us: the thread had %.0f%% of a core); bound %s/s; fraction %.3f\n' \
                "$nw" "$r" "$rps" "$(jq -c '{succeeded, failed}' "$T/b$nw-$r.json")" "$tap" \
                "$(jq .apply_cpu_us_per_request "$T/b$nw-$r.apply.json")" \
                "$(jq .records "$T/b$nw-$r.apply.json")" "$(jq .wall_us_per_request "$T/b$nw-$r.apply.json")" \
                "$(jq '100 * .cpu_s / .wall_s' "$T/b$nw-$r.apply.json")" "$bound" "$(div "$rps" "$bound")"
            # where the rest of the two cores went: the CPU per request of the
            # workers (all replicas) and both Redis servers over the load, and of
            # the load generator while its clock ran (its signing before it not);
            # the apply's share of it is what the fraction can reach when the
            # cores are never idle
            nreq=0 wc=0 rc=0 lc=0 gc=0 tc=0
            nreq=$(jq .succeeded "$T/b$nw-$r.json")
            wc=$(us_per "$nreq" "$w0" "$w1") rc=$(us_per "$nreq" "$r0" "$r1")
            lc=$(us_per "$nreq" "$l0" "$l1")
            gc=$(us_per "$nreq" 0 "$(jq .cpu_s "$T/b$nw-$r.json")") # while its clock ran
            tc=$(awk -v a="$wc" -v b="$rc" -v c="$gc" -v d="$lc" 'BEGIN { printf "%.1f", a + b + c + d }')
            BS+=("$(div "$(awk -v n="$nw" -v t="$tap" 'BEGIN { print n * t }')" "$tc")")
            printf '    CPU per request: workers %s us (%s per replica: %s over t_apply), coordination Redis %s, log Redis %s, load generator %s; total %s us;\n' \
                "$wc" "$(awk -v a="$wc" -v n="$nw" 'BEGIN { printf "%.1f", a / n }')" \
                "$(awk -v a="$wc" -v n="$nw" -v t="$tap" 'BEGIN { printf "%+.1f", a / n - t }')" \
                "$rc" "$lc" "$gc" "$tc"
            printf '    the cores were busy %.0f%% of the load; the apply (replicas x t_apply) is %.3f of the CPU used\n' \
                "$(awk -v t="$tc" -v x="$rps" -v c="$NCPU" 'BEGIN { print 100 * t * x / 1e6 / c }')" \
                "$(div "$(awk -v n="$nw" -v t="$tap" 'BEGIN { print n * t }')" "$tc")"
        done
        echo "  $nw worker(s): $(stats '%.0f' "${BR[@]}") requests/s"
        echo "               t_apply $(stats '%.1f' "${BT[@]}") us; bound $(stats '%.0f' "${BB[@]}")/s"
        echo "               fraction of the bound: $(stats '%.3f' "${BF[@]}") (target >= 0.8)"
        echo "               the apply's share of the CPU used: $(stats '%.3f' "${BS[@]}")"
    done
}

# ---------------------------------------------------------------- (c)

# c_load BR2K RATE TAG: one paced load of SECS_C seconds; appends to C[RATE]
c_load() {
    local br=$1 rate=$2 tag=$3 out=$T/c-$3.json l0 l1 ll
    ll=$T/c-$r-$LEADER.log
    l0=$(wc -l <"$ll")
    local c0; child_cpu >"$T/c0"; c0=$(cat "$T/c0")
    "$br" submit --clients 10 --count $((rate * SECS_C / 10)) --rate "$rate" --json \
        --prefix "benchc$tag" --wait-ms 60000 >"$out" || true
    local gcpu; child_cpu >"$T/c1"
    gcpu=$(awk -v a="$c0" -v b="$(cat "$T/c1")" 'BEGIN { printf "%.2f", b - a }')
    l1=$(wc -l <"$ll")
    local p50 p99
    p50=$(jq .latency_ms.p50 "$out") p99=$(jq .latency_ms.p99 "$out")
    CP50[$tag]=$p50 CP99[$tag]=$p99
    # the leader's batches during this load (worker/batch.c, worker/commit.c debug lines)
    CBRK[$tag]=$(sed -n "$((l0 + 1)),${l1}p" "$ll" | awk '
        function f(name,  re) { re = name " [0-9.]+"; if (!match($0, re)) return -1; return substr($0, RSTART + length(name) + 1, RLENGTH - length(name) - 1) + 0 }
        function med(a, n,  i, j, x) { for (i = 2; i <= n; i++) { x = a[i]; for (j = i - 1; j > 0 && a[j] > x; j--) a[j + 1] = a[j]; a[j + 1] = x } return n ? (n % 2 ? a[(n + 1) / 2] : (a[n / 2] + a[n / 2 + 1]) / 2) : 0 }
        / debug: batch \.\./ { match($0, /\(([0-9]+) records/); nb++; rs += substr($0, RSTART + 1, RLENGTH - 9); A[nb] = f("apply"); S[nb] = f("state"); R[nb] = f("read-ahead"); H[nb] = f("results"); P[nb] = f("position"); D[nb] = f("durable"); B[nb] = f("; batch"); O[nb] = D[nb] - S[nb] - R[nb] - H[nb] - P[nb] }
        / debug: commit \.\./ { nc++; F[nc] = f("fenced commit") }
        END { if (nb == 0) { print "no batches"; exit } printf "%d batches of %.1f records; medians per batch (ms): apply %.2f, sync state %.2f, read-ahead %.2f, sync results %.2f, sync position %.2f, durable other %.2f (durable %.2f), batch %.2f; fenced commit %.2f", nb, rs / nb, med(A, nb), med(S, nb), med(R, nb), med(H, nb), med(P, nb), med(O, nb), med(D, nb), med(B, nb), med(F, nc) }')
    printf '    %-18s p50 %6.2f ms, p99 %7.2f ms  %s, load generator %s CPU-s; leader: %s\n' "$tag" "$p50" "$p99" \
        "$(jq -c '{succeeded, failed}' "$out")" "$gcpu" "${CBRK[$tag]}"
}

want c && {
    echo "== (c) publish-to-result latency (br2k submit --rate, 10 clients, $SECS_C s per rate), $NW_C $APP_C"
    echo "   worker(s), $MAIN_LOG log, $RUNS runs (one stack each, the rates in rotating order);"
    echo "   target at 1,000/s: p50 <= 10 ms, p99 <= 50 ms"
    declare -A CP50 CP99 CBRK
    for r in $(seq "$RUNS"); do
        use_log "$MAIN_LOG"
        fresh_redis
        fresh_log
        export BR2K_KAFKA=$KAFKA BR2K_REDIS=$REDIS BR2K_SERVICE=default
        wp=()
        for i in $(seq "$NW_C"); do
            start_worker "w$i" "$APP_C" "$T/c-$r-w$i.log"
            wp+=("$WPID")
        done
        ready() { "$BIN/br2k" status --json | jq -e --argjson n "$NW_C" '.leader != null and (.members | length) == $n' >/dev/null; }
        wait_for 30 ready || fail "workers did not start (see $T)"
        LEADER=$("$BIN/br2k" status --json | jq -r .leader.id)
        echo "  run $r (leader $LEADER):"
        k=${#RATES_C[@]}
        for ((i = 0; i < k; i++)); do
            rate=${RATES_C[$(((i + r - 1) % k))]}
            c_load "$BIN/br2k" "$rate" "$rate-$r"
        done
        for cmp in ${BENCH_C_COMPARE:-}; do
            c_load "${cmp#*=}" 1000 "1000-${cmp%%=*}-$r"
        done
        stop_pids "${wp[@]}" "$KAFKA_PID" "$REDIS_PID"
    done
    echo "  summary (min/median/max over $RUNS runs):"
    tags=("${RATES_C[@]}")
    for cmp in ${BENCH_C_COMPARE:-}; do tags+=("1000-${cmp%%=*}"); done
    for rate in "${tags[@]}"; do
        a=() b=()
        for r in $(seq "$RUNS"); do a+=("${CP50[$rate-$r]}") b+=("${CP99[$rate-$r]}"); done
        printf '    %-16s p50 %s ms; p99 %s ms\n' "$rate/s" "$(stats '%.2f' "${a[@]}")" "$(stats '%.2f' "${b[@]}")"
    done
}
true
