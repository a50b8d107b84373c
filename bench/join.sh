#!/usr/bin/env bash
# bench/join.sh - the time for a new worker to join a service with a history
# of N records (issue 6's figure, issue 20's (d); printed, not asserted):
#   (1) by replaying the whole history from offset 0 (no backup used; timed
#       before the backup, which on Redis Streams deletes the records), and
#   (2) by get-the-latest-state: restore the latest backup, then replay the
#       records after its cut (a tail of TAIL records), with the stages of
#       the restore read from the joining worker's own log line
#       ("restore stages: ...", worker/recover.c),
# in the same run, on the same log, with the no-op application and with
# InfoDID. See bench/README.md.
#
# Usage: bench/join.sh [options] [BUILD_DIR]   (default build; Release is best)
#   --sizes "N ..."   history sizes in records (default 30000: CI-sized)
#   --full            the issue's size: --sizes 1000000 --log redis --apps infodid
#   --tail N          records after the backup's cut (default 300)
#   --log kafka|redis the log: br2k-devkafka (default; keeps ~5 MiB, so a
#                     replay from 0 is timed only up to ~40,000 no-op or
#                     ~8,000 InfoDID records) or Redis Streams (any length)
#   --apps "A ..."    applications (default "noop infodid")
#   --runs R          joins from the backup per size (default 1; min/median/max)
#   --no-replay       skip (1): at 1M InfoDID records it takes minutes
#   --compare DIR     also join, in the same run and from the same backup, with
#                     the br2k-worker of DIR/bin (another build: before/after)
# The old environment variables still work: BENCH_JOIN_N, BENCH_JOIN_TAIL,
# BENCH_JOIN_LOG, BENCH_JOIN_APPS, BENCH_JOIN_INFODID_MAX.
#
# Every process it starts is recorded by PID in this shell (never inside a
# $(...) subshell, whose variables the parent would not see), stopped by PID
# after each size, and the run ends by checking that none is left.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
SIZES=${BENCH_JOIN_N:-30000}
TAIL=${BENCH_JOIN_TAIL:-300}
LOG=${BENCH_JOIN_LOG:-kafka} # kafka (br2k-devkafka) or redis (Redis Streams)
APPS=${BENCH_JOIN_APPS:-noop infodid}
RUNS=1
REPLAY=1
COMPARE=
build=
usage() { sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//' >&2; exit 2; }
while [ $# -gt 0 ]; do
    case $1 in
    --sizes) SIZES=${2:?--sizes needs a list}; shift 2 ;;
    --full) SIZES=1000000 LOG=redis APPS=infodid; shift ;;
    --tail) TAIL=${2:?--tail needs a number}; shift 2 ;;
    --log) LOG=${2:?--log needs kafka or redis}; shift 2 ;;
    --apps) APPS=${2:?--apps needs a list}; shift 2 ;;
    --runs) RUNS=${2:?--runs needs a number}; shift 2 ;;
    --no-replay) REPLAY=0; shift ;;
    --compare) COMPARE=${2:?--compare needs a build directory}; shift 2 ;;
    -h | --help) usage ;;
    -*) echo "join.sh: unknown option '$1' (--help lists them)" >&2; exit 2 ;;
    *) build=$1; shift ;;
    esac
done
case $LOG in kafka | redis) ;; *) echo "join.sh: --log '$LOG': kafka or redis" >&2; exit 2 ;; esac
for v in "$TAIL" "$RUNS" $SIZES; do
    [[ $v =~ ^[1-9][0-9]*$ ]] || { echo "join.sh: '$v' is not a positive whole number" >&2; exit 2; }
done
[ -z "$COMPARE" ] || [ -x "$COMPARE/bin/br2k-worker" ] ||
    { echo "join.sh: --compare '$COMPARE': no bin/br2k-worker there" >&2; exit 2; }
[ -z "$COMPARE" ] || COMPARE=$(cd "$COMPARE" && pwd)
export BR2K_SOURCE_DIR=$(cd "$here/.." && pwd)
export BR2K_BUILD_DIR=$(cd "${build:-$BR2K_SOURCE_DIR/build}" && pwd)
source "$BR2K_SOURCE_DIR/tests/integration/lib.sh"
source "$BR2K_SOURCE_DIR/tests/integration/core_helpers.bash"
source "$BR2K_SOURCE_DIR/tests/integration/backup_helpers.bash"

now_ms() { date +%s%3N; }
# stop_all: stop every process started so far (PIDS, lib.sh), newest first,
# by PID: TERM, up to 10 s, then KILL; then forget them
stop_all() {
    local i pid
    for ((i = ${#PIDS[@]} - 1; i >= 0; i--)); do
        pid=${PIDS[i]}
        kill -CONT "$pid" 2>/dev/null || true
        kill -TERM "$pid" 2>/dev/null || continue
        for _ in $(seq 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
        kill -KILL "$pid" 2>/dev/null || true
        wait "$pid" 2>/dev/null || true
    done
    ALL_PIDS+=("${PIDS[@]}")
    PIDS=()
}
ALL_PIDS=()
# fill COUNT PREFIX: COUNT records (no-op records, or signed InfoDID registrations)
# (in the background, its PID in PIDS, so that a stopped run stops it too)
fill() {
    if [ "$APP" = noop ]; then
        produce "$1" 0 "$2" >"$T/fill-$2.out" 2>&1 &
    else
        "$BIN/br2k" --redis "$REDIS" --kafka "$KAFKA" submit --clients 4 --count $(($1 / 4)) \
            --prefix "$2" >"$T/fill-$2.out" 2>&1 &
    fi
    local p=$!
    PIDS+=("$p")
    wait "$p" || fail "fill: $(tail -2 "$T/fill-$2.out")"
}
# proc_kb PID FIELD: VmRSS / VmHWM of PID in kB
proc_kb() { awk -v f="$2:" '$1 == f {print $2}' "/proc/$1/status" 2>/dev/null || echo "?"; }
# join ID ARGS...: start a worker with no state (in this shell: its PID goes
# to WPID and PIDS) and set JOIN_MS to the ms until it has applied up to SSI
# (its LPI-<id>, written as soon as it is idle) and its digest equals w1's.
# JOIN_BIN: another bin directory for the worker (--compare).
join() {
    local id=$1; shift
    local t0; t0=$(now_ms)
    if [ -n "${JOIN_BIN:-}" ]; then BIN=$JOIN_BIN start_worker "$id" "$@"; else start_worker "$id" "$@"; fi
    local want; want=$(rc_ GET "br2k:{$SVC}:SSI")
    until [ "$(rc_ GET "br2k:{$SVC}:LPI-$id")" = "$want" ]; do
        kill -0 "${WPID[$id]}" 2>/dev/null || { echo "worker $id died: $(tail -2 "$T/$id.log")" >&2; return 1; }
        sleep 0.005
    done
    JOIN_MS=$(($(now_ms) - t0))
    wait_for 120 at "$want" w1 "$id" || { echo "worker $id: digest differs from w1's" >&2; return 1; }
}
first_offset() { grep -o "holds offsets [0-9]*" "$T/$1.log" | head -1 | awk '{print $3}'; }
# stages ID: the "restore stages: k=v ..." lines of worker ID (the worker's
# and the application's), as "k=v ..."
stages() { grep -o 'restore stages: .*' "$T/$1.log" | cut -d' ' -f3- | paste -sd' '; }
stage() { tr ' ' '\n' <<<"$1" | awk -F= -v k="$2" '$1 == k {print $2}' | tr -d ms; }
# caught-up time after the restore, from the worker's "joined:" line
joined_ms() { grep -o 'joined: caught up .* in [0-9]* ms' "$T/$1.log" | tail -1 | awk '{print $(NF-1)}'; }
# median of the arguments; mmm: "min/median/max"
median() { printf '%s\n' "$@" | sort -n | awk '{a[NR]=$1} END {print (NR % 2) ? a[(NR+1)/2] : (a[NR/2] + a[NR/2+1]) / 2}'; }
mmm() { local s; s=$(printf '%s\n' "$@" | sort -n); echo "$(head -1 <<<"$s")/$(median "$@")/$(tail -1 <<<"$s")"; }
secs() { awk -v m="$1" 'BEGIN {printf "%.2f\n", m / 1000}'; }

echo "log back end: $LOG; sizes: $SIZES; tail $TAIL; runs $RUNS; build $BUILD${COMPARE:+; compared with $COMPARE}"
echo "(the machine may be shared: read the ratios, measured in the same run)"
STAGE_KEYS="start log fetch verify decrypt decompress pass parse write restore check position total"
for n in $SIZES; do
    for app in $APPS; do
        m=$n
        # InfoDID requests are ~450 bytes: the broker's 5 MiB hold ~10,000
        [ "$app" = noop ] || [ "$LOG" = redis ] ||
            m=$((n < ${BENCH_JOIN_INFODID_MAX:-8000} ? n : ${BENCH_JOIN_INFODID_MAX:-8000}))
        rm -rf "${T:?}"/w* "$T"/backups "$T"/*.log "$T"/service.key "$T"/regd.key "$T"/redis "$T"/logredis
        start_redis
        if [ "$LOG" = redis ]; then
            KAFKA=redis://$REDIS # the Redis Streams back end of common/rlog
        else
            start_devkafka
        fi
        start_chain
        APP=$app
        start_worker w1
        wait_for 15 has_leader || fail "no leader"
        # the hold at the cut lasts while backupd reads the external view (at 1M
        # InfoDID identities a 1M-field ext:did hash, seconds): longer than
        # backupd's default hold timeout (3 s), so the bench allows 60 s
        start_backupd --max-replicated 1000000000 --hold-timeout-ms "${BENCH_JOIN_HOLD_MS:-60000}"
        t=$(now_ms)
        fill $((m - TAIL)) hist
        wait_for 3600 at $((m - TAIL - 1)) w1 || fail "w1 did not apply the history"
        fill_s=$(secs $(($(now_ms) - t)))
        rss1=$(proc_kb "${WPID[w1]}" VmRSS) hwm1=$(proc_kb "${WPID[w1]}" VmHWM)
        echo "   $app $m: filled in $fill_s s; w1 VmRSS $((rss1 / 1024)) MiB, VmHWM $((hwm1 / 1024)) MiB"
        # (1) full replay of the whole history, before the backup (on Redis
        # Streams backupd really deletes the records below its cut)
        full=
        if [ "$REPLAY" = 1 ]; then
            join w2 || fail "full replay failed"
            full=$JOIN_MS
            if [ "$(first_offset w2)" != 0 ]; then
                echo "$app $m: the log no longer starts at 0 (the broker dropped records): not timed"
                stop_all
                continue
            fi
            [ "$(metric w2 applied)" = $((m - TAIL)) ] || fail "w2 applied $(metric w2 applied) of $((m - TAIL)) records"
            stop_worker w2
        fi
        # a backup that fails (the leader fenced under load, say) is asked for again
        for try in 1 2 3; do
            "$BIN/br2k" --redis "$REDIS" backup now --wait 1800 >"$T/backup.out" 2>&1 && break
            [ "$try" -lt 3 ] || fail "backup failed 3 times: $(tail -2 "$T/backup.out")"
            echo "   (backup failed, asking again: $(tail -1 "$T/backup.out"))"
            sleep 2
        done
        fill "$TAIL" tail
        # (its digest at the end of the tail: the next digest of a 1M-identity
        # state may wait 20 times as long as the last took: worker/batch.c)
        wait_for 600 at $((m - 1)) w1 || fail "w1 did not apply the tail"
        obj=$(ls "$T"/backups/v*-state-* | sort | tail -1)
        size=$(stat -c %s "$obj")
        # (2) join from the backup, RUNS times (and as many with --compare),
        # alternating the two builds; each joiner is stopped before the next
        declare -A FAST=() ST=()
        builds="new"
        [ -z "$COMPARE" ] || builds="cmp new"
        k=0
        for ((r = 1; r <= RUNS; r++)); do
            for b in $builds; do
                k=$((k + 1)); id=j$k
                JOIN_BIN=
                [ "$b" = new ] || JOIN_BIN=$COMPARE/bin
                join "$id" --eth-rpc "$ETH_RPC" --registry "$REG" --service-key-file "$T/service.key" \
                    --log-level debug ||
                    fail "join from the backup failed ($b build)"
                JOIN_BIN=
                [ "$(metric "$id" applied)" = "$TAIL" ] || fail "$id applied $(metric "$id" applied) records, expected the tail of $TAIL"
                rss=$(proc_kb "${WPID[$id]}" VmRSS) hwm=$(proc_kb "${WPID[$id]}" VmHWM)
                FAST[$b]="${FAST[$b]:-} $JOIN_MS"
                s=$(stages "$id")
                ST[$b]="${ST[$b]:-}|$s joined=$(joined_ms "$id") wall=$JOIN_MS rss=$rss hwm=$hwm"
                stop_worker "$id"
                # the memory of the restored state, measured on its files
                rm -f "$T/mem.out"
                if [ "$app" = infodid ] && [ "$b" = new ] && [ "$r" = "$RUNS" ] &&
                    [ -x "$BIN/br2k-bench-infodid-mem" ]; then
                    "$BIN/br2k-bench-infodid-mem" "$T/$id/app" >"$T/mem.out" 2>&1 || true
                fi
                rm -rf "${T:?}/$id"
            done
        done
        plain=$(stage "$(stages "$id")" plain)
        echo
        echo "== $app, $m records ($((m - TAIL)) before the backup's cut, $TAIL after); fill ${fill_s} s;" \
            "backup object $size bytes sealed${plain:+, $plain plain}"
        echo "   w1 (applied everything, never restored): VmRSS $((rss1 / 1024)) MiB, VmHWM $((hwm1 / 1024)) MiB"
        printf '%-6s %12s %22s %10s\n' build "replay(s)" "from-backup(s) min/med/max" "ratio"
        for b in $builds; do
            # shellcheck disable=SC2086
            med=$(median ${FAST[$b]})
            # shellcheck disable=SC2086
            printf '%-6s %12s %22s %10s\n' "$b" "${full:+$(secs "$full")}" \
                "$(mmm ${FAST[$b]} | tr / '\n' | while read -r x; do secs "$x"; done | paste -sd/)" \
                "${full:+$(awk -v a="$full" -v b="$med" 'BEGIN {printf "%.1fx", a / b}')}"
        done
        echo "   stages of the join from the backup, ms (median over the runs; the worker's own"
        echo "   log lines; bench/README.md says what each column covers)"
        printf '%-6s' build
        for key in $STAGE_KEYS joined wall; do printf ' %9s' "$key"; done
        printf ' %9s %9s\n' "RSS(MiB)" "HWM(MiB)"
        for b in $builds; do
            printf '%-6s' "$b"
            for key in $STAGE_KEYS joined wall rss hwm; do
                vals=()
                IFS='|' read -ra runs <<<"${ST[$b]#|}"
                for line in "${runs[@]}"; do
                    v=$(stage "$line" "$key")
                    [ -z "$v" ] || [ "$v" = "?" ] || vals+=("$v")
                done
                if [ ${#vals[@]} -eq 0 ]; then
                    v="-"
                else
                    v=$(median "${vals[@]}")
                    case $key in rss | hwm) v=$((${v%.*} / 1024)) ;; esac
                fi
                printf ' %9s' "$v"
            done
            printf '\n'
        done
        [ ! -s "$T/mem.out" ] || { echo "   InfoDID's state in memory (br2k-bench-infodid-mem):"; sed 's/^/   /' "$T/mem.out"; }
        unset FAST ST
        stop_all
    done
done
# nothing of ours may be left: every PID started, and anything naming $T
stop_all
left=()
for p in "${ALL_PIDS[@]}"; do kill -0 "$p" 2>/dev/null && left+=("$p"); done
mapfile -t -O "${#left[@]}" left < <(pgrep -f -- "$T/" || true)
if [ ${#left[@]} -eq 0 ]; then
    echo "processes left behind: none (${#ALL_PIDS[@]} started, all stopped by PID)"
else
    echo "processes left behind: ${left[*]}" >&2
    exit 1
fi
