#!/usr/bin/env bash
# bench/backup_stall.sh - the backup figures (printed, not asserted): with a
# steady load running, the longest stall in SSI progress during a backup
# (target: at most 100 ms at 1,000,000 keys), and the backup's duration
# against the size of the state.
#
# Usage: bench/backup_stall.sh [--keys 10000,1000000] [--rate N] [--json]
#   --keys LIST        state sizes (InfoDID DIDs), comma-separated (default 10000,1000000)
#   --rate N           steady load during the measurement, requests/s (default 500)
#   --baseline S       seconds of steady load measured before the backup (default 5)
#   --backup-load N    requests of steady load sent after the backup is asked for
#                      (default 6000; see "the broker's limit" below)
#   --fill-rate N      pace of the fill, requests/s (default 20000: as fast as it goes)
#   --fill-max-s S     stop filling (at a 50,000 boundary) once the fill has taken S
#                      seconds, and measure at the size reached (default 0: no limit)
#   --dir DIR          where the stacks go (default: a new directory under /tmp)
#   --keep             keep DIR (logs, backups) afterwards
#   --json             print the figures as one JSON array on stdout instead of the table
# Binaries: $BR2K_BUILD_DIR/bin (default /work/main/build-bench; a Release build),
# including br2k-bench-changes (bench/backup_stall.c), the monitor.
#
# For each size N: a fresh `deploy/local/stack up --workers 3` (backupd does not
# back up by itself: BR2K_MAX_REPLICATED=100000000); N signed `register`
# requests through the log by the load generator (`br2k submit --clients`),
# checked (every worker's `changed` = N, `br2k verify` consistent); then the
# monitor subscribes to br2k:{default}:changes and time-stamps every message,
# a steady load starts (registrations and updates, --updates), its longest
# gap between SSI advances is measured over --baseline seconds, and
# `br2k backup now` runs. The stall is the longest gap between two SSI
# advances that overlaps the backup, from the "backup hold" message to
# "backup-clear" (or to the end of the load, if it ends first).
#
# The broker's limit: br2k-devkafka keeps only ~5 MiB per partition (~8,000
# InfoDID requests), and records that no backup covers yet are never deleted
# by backupd, so a long backup under a steady load would fill the broker's
# window; the load sends only --backup-load requests once the backup is
# asked for; when the backup
# outlasts it, the stall is measured up to the end of the load, and the
# table says so (column "load to clear": no).
set -euo pipefail
SRC=$(cd "$(dirname "$0")/.." && pwd)
export BR2K_BUILD_DIR=${BR2K_BUILD_DIR:-/work/main/build-bench}
BIN=$BR2K_BUILD_DIR/bin
STACK=$SRC/deploy/local/stack

KEYS=10000,1000000 RATE=500 BASELINE=5 BACKUP_LOAD=6000 FILL_RATE=20000 FILL_MAX_S=0
BASE_DIR="" KEEP=0 JSON=0
while [ $# -gt 0 ]; do
    case $1 in
    --keys) KEYS=${2:?}; shift 2 ;;
    --rate) RATE=${2:?}; shift 2 ;;
    --baseline) BASELINE=${2:?}; shift 2 ;;
    --backup-load) BACKUP_LOAD=${2:?}; shift 2 ;;
    --fill-rate) FILL_RATE=${2:?}; shift 2 ;;
    --fill-max-s) FILL_MAX_S=${2:?}; shift 2 ;;
    --dir) BASE_DIR=${2:?}; shift 2 ;;
    --keep) KEEP=1; shift ;;
    --json) JSON=1; shift ;;
    -h | --help) sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
    *) echo "backup_stall: unknown argument '$1' (see --help)" >&2; exit 2 ;;
    esac
done
for v in "$RATE" "$BASELINE" "$BACKUP_LOAD" "$FILL_RATE"; do
    [[ $v =~ ^[1-9][0-9]*$ ]] || { echo "backup_stall: '$v' is not a positive integer" >&2; exit 2; }
done
[[ $FILL_MAX_S =~ ^[0-9]+$ ]] || { echo "backup_stall: --fill-max-s: '$FILL_MAX_S' is not an integer" >&2; exit 2; }
[[ $KEYS =~ ^[1-9][0-9]*(,[1-9][0-9]*)*$ ]] ||
    { echo "backup_stall: --keys: expected sizes like 10000,1000000" >&2; exit 2; }
for b in br2k br2k-worker br2k-backupd br2k-bench-changes; do
    [ -x "$BIN/$b" ] || { echo "backup_stall: no $BIN/$b: build first" \
        "(cmake -S $SRC -B $BR2K_BUILD_DIR -DCMAKE_BUILD_TYPE=Release && make -C $BR2K_BUILD_DIR)" >&2; exit 2; }
done
if [ -z "$BASE_DIR" ]; then BASE_DIR=$(mktemp -d /tmp/br2k-backup-stall.XXXXXX); fi
mkdir -p "$BASE_DIR"
BASE_DIR=$(cd "$BASE_DIR" && pwd)

say() { echo "backup_stall: $*" >&2; }
now_ms() { date +%s%3N; }
iso_ms() { date -d "$1" +%s%3N; } # 2026-01-02T03:04:05.678Z -> unix ms

DIR="" MON_PID="" LOAD_PID=""
stop_pid() { # PID: one we started
    [ -n "$1" ] || return 0
    kill -TERM "$1" 2>/dev/null || return 0
    for _ in $(seq 50); do kill -0 "$1" 2>/dev/null || break; sleep 0.1; done
    kill -KILL "$1" 2>/dev/null || true
    wait "$1" 2>/dev/null || true
}
teardown() {
    stop_pid "$LOAD_PID"; LOAD_PID=""
    stop_pid "$MON_PID"; MON_PID=""
    if [ -n "$DIR" ] && [ -f "$DIR/stack.json" ]; then
        "$STACK" down --dir "$DIR" >&2 || say "stack down failed in $DIR"
    fi
}
on_exit() {
    local rc=$?
    teardown
    if [ "$rc" -ne 0 ]; then
        say "failed (rc=$rc); logs kept in $BASE_DIR"
    elif [ "$KEEP" -eq 0 ]; then
        rm -rf "$BASE_DIR"
    else
        say "logs and backups kept in $BASE_DIR"
    fi
    exit "$rc"
}
trap on_exit EXIT
trap 'exit 130' INT TERM
die() { say "$*"; exit 1; }

status_json() { "$BIN/br2k" status --json; }

# wait until every member's LPI equals SSI and the replicas agree
wait_caught_up() { # SECONDS
    local end=$((SECONDS + $1)) s
    while :; do
        s=$(status_json) || s='{}'
        if jq -e '.ssi != null and (.members | length) == 3 and
                  all(.members[]; .lpi == $s.ssi)' --argjson s "$s" <<<"$s" >/dev/null 2>&1; then
            return 0
        fi
        [ "$SECONDS" -lt "$end" ] || return 1
        sleep 0.5
    done
}

# the figures of one size, as a JSON object in $BASE_DIR/figures-N.json (run in
# this shell, not a subshell, so that a failure's EXIT trap stops its stack)
run_size() {
    local n=$1 asked=$1
    DIR=$BASE_DIR/keys-$n
    rm -rf "$DIR"; mkdir -p "$DIR"
    say "== $n keys: stack in $DIR"
    # the previous size's `stack env` must not leak into this stack (`stack up`
    # hands BR2K_ETH_RPC etc. to its own commands, which prefer it)
    unset BR2K_STACK_DIR BR2K_SERVICE BR2K_REDIS BR2K_KAFKA BR2K_KAFKA_CONTROL \
        BR2K_ETH_RPC BR2K_REGISTRY BR2K_SERVICE_KEY_FILE
    if ! BR2K_MAX_REPLICATED=100000000 "$STACK" up --dir "$DIR" --workers 3 >&2; then
        say "  stack up failed (it stopped what it started); trying once more"
        sleep 2
        BR2K_MAX_REPLICATED=100000000 "$STACK" up --dir "$DIR" --workers 3 >&2
    fi
    eval "$("$STACK" env --dir "$DIR")"
    local i
    for i in $(seq 100); do grep -q 'max-replicated' "$DIR/logs/backupd.log" && break; sleep 0.1; done
    grep -q 'max-replicated 100000000' "$DIR/logs/backupd.log" ||
        die "backupd did not take BR2K_MAX_REPLICATED: $(grep -m1 max-replicated "$DIR/logs/backupd.log" || echo 'no line')"
    for i in $(seq 300); do
        status_json 2>/dev/null | jq -e '.leader != null and (.members | length) == 3 and
            all(.members[]; .alive)' >/dev/null && break
        sleep 0.1
    done
    status_json | jq -e '.leader != null' >/dev/null || die "no leader 30 s after stack up"

    # --- fill: N registrations, in chunks of at most 50,000 (10 clients each)
    local left=$n chunk k c=0 out fill_t0 fill_ms
    fill_t0=$(now_ms)
    while [ "$left" -gt 0 ]; do
        if [ "$FILL_MAX_S" -gt 0 ] && [ $(( $(now_ms) - fill_t0 )) -ge $((FILL_MAX_S * 1000)) ]; then
            n=$((n - left))
            say "  fill stopped by --fill-max-s $FILL_MAX_S after $n of $asked registrations"
            break
        fi
        chunk=$((left < 50000 ? left : 50000))
        k=1; [ $((chunk % 10)) -ne 0 ] || k=10
        out=$("$BIN/br2k" submit --clients "$k" --count $((chunk / k)) --rate "$FILL_RATE" \
            --window 1000 --wait-ms 600000 --prefix "fill$c" --json) || true
        [ "$(jq -r '.succeeded // 0' <<<"$out")" -eq "$chunk" ] ||
            die "fill chunk $c: not every registration succeeded: $out"
        left=$((left - chunk)); c=$((c + 1))
        say "  filled $((n - left)) of $n ($(( (n - left) * 1000 / ($(now_ms) - fill_t0 + 1) )) requests/s)"
    done
    wait_caught_up 300 || die "workers did not all reach SSI after the fill: $(status_json | jq -c .)"
    fill_ms=$(( $(now_ms) - fill_t0 ))
    local changed # the metrics hash is written every 500 ms
    for i in $(seq 50); do
        changed=$(status_json | jq -c '[.members[] | .metrics.changed | tonumber]')
        jq -e --argjson n "$n" 'all(.[]; . == $n)' <<<"$changed" >/dev/null && break
        sleep 0.2
    done
    jq -e --argjson n "$n" 'all(.[]; . == $n)' <<<"$changed" >/dev/null ||
        die "after the fill the workers' 'changed' counts are $changed, not $n each"
    "$BIN/br2k" verify --timeout-ms 300000 >&2 || die "br2k verify: replicas differ after the fill"
    say "  fill: $n registrations in $((fill_ms / 1000)).$((fill_ms % 1000 / 100)) s; changed $changed; verify consistent"

    # --- monitor and steady load
    local leader
    leader=$(status_json | jq -r .leader.id)
    "$BIN/br2k-bench-changes" --lpi w1,w2,w3 >"$DIR/changes.txt" 2>"$DIR/changes.err" &
    MON_PID=$!
    for i in $(seq 50); do grep -q subscribed "$DIR/changes.txt" && break; sleep 0.1; done
    grep -q subscribed "$DIR/changes.txt" || die "the monitor did not subscribe: $(cat "$DIR/changes.err")"
    local warm=2 clients=4 total count
    total=$((RATE * (warm + BASELINE) + BACKUP_LOAD))
    count=$(( (total + clients - 1) / clients ))
    local load_t0; load_t0=$(now_ms)
    "$BIN/br2k" submit --clients "$clients" --count "$count" --rate "$RATE" --updates \
        --window 20000 --prefix steady --json >"$DIR/load.json" 2>"$DIR/load.err" &
    LOAD_PID=$!
    sleep "$warm"
    local b0 b1; b0=$(now_ms)
    sleep "$BASELINE"
    b1=$(now_ms)

    # --- the backup
    local t_ask t_done bout
    t_ask=$(now_ms)
    bout=$("$BIN/br2k" backup now --wait 600 2>&1) || die "br2k backup now failed: $bout"
    t_done=$(now_ms)
    say "  $bout"
    wait "$LOAD_PID" || true; LOAD_PID=""
    sleep 1
    stop_pid "$MON_PID"; MON_PID=""
    local send_s load_end
    send_s=$(jq -r '.send_s' "$DIR/load.json")
    load_end=$(awk -v a="$load_t0" -v s="$send_s" 'BEGIN { printf "%.0f", a + s * 1000 }')
    say "  steady load: $(jq -c '{sent, succeeded, failed, rejected, send_s, latency_ms}' "$DIR/load.json")"

    # figures from the logs
    local done_line resume_line hold_ms took_ms object resumed_ms resume_t
    done_line=$(grep -m1 'backup version .* done' "$DIR/logs/backupd.log") || die "no 'done' line in backupd.log"
    hold_ms=$(sed -n 's/.* held \([0-9]*\) ms.*/\1/p' <<<"$done_line")
    took_ms=$(sed -n 's/.* took \([0-9]*\) ms.*/\1/p' <<<"$done_line")
    object=$(sed -n "s/.* stored '\([^']*\)'.*/\1/p" <<<"$done_line")
    resume_line=$(grep -h -m1 'resuming after holding' "$DIR"/logs/worker-w*.log) || die "no worker 'resuming' line"
    resumed_ms=$(sed -n 's/.*resuming after holding \([0-9]*\) ms.*/\1/p' <<<"$resume_line")
    resume_t=$(iso_ms "$(awk '{print $1}' <<<"$resume_line")")
    local bk plain stored
    bk=$("$BIN/br2k" --json backups | jq -c 'map(select(.log != null)) | last | .log.state_data')
    plain=$(jq -r .plain_size <<<"$bk")
    stored=$(stat -c %s "$DIR/backups/$object")
    [ "$stored" -eq "$(jq -r .size <<<"$bk")" ] || say "  note: the stored object's size differs from the log's"

    wait_caught_up 120 || die "workers did not all reach SSI after the backup: $(status_json | jq -c .)"
    "$BIN/br2k" verify --timeout-ms 300000 >&2 || die "br2k verify: replicas differ after the backup"

    # the SSI advances and the gaps
    awk -v n="$n" -v asked="$asked" -v b0="$b0" -v b1="$b1" -v ask="$t_ask" -v tdone="$t_done" \
        -v lend="$load_end" -v fill="$fill_ms" -v hold="$hold_ms" -v took="$took_ms" \
        -v resumed="$resumed_ms" -v rt="$resume_t" -v plain="$plain" -v stored="$stored" \
        -v object="$object" -v leader="$leader" '
    function lgap(id, lo, hi,   i, g, m) { # the same for the LPI mirror of worker id
        m = 0
        for (i = 2; i <= nl[id]; i++)
            if (lt[id, i - 1] < hi && lt[id, i] > lo) { g = lt[id, i] - lt[id, i - 1]; if (g > m) m = g }
        return m
    }
    function gapmax(lo, hi,   i, g, m) { # longest gap between advances overlapping [lo, hi]
        m = 0; gat = 0
        for (i = 2; i <= na; i++)
            if (t[i - 1] < hi && t[i] > lo) { g = t[i] - t[i - 1]; if (g > m) { m = g; gat = t[i - 1] } }
        return m
    }
    $2 == "lpi" { if (!($3 in lv) || $4 + 0 > lv[$3]) { lt[$3, ++nl[$3]] = $1; lv[$3] = $4 + 0 }; next }
    $2 ~ /^[0-9]+$/ { if (na == 0 || $2 + 0 > last) { t[++na] = $1; last = $2 + 0 }; next }
    $1 >= ask && $2 == "backup" && $3 == "hold" && !th { th = $1 }
    $1 >= ask && $2 == "backup" && $3 == "held" && !theld { theld = $1 }
    $1 >= ask && $2 == "backup" && $3 == "snapshot" && !tsnap { tsnap = $1 }
    $1 >= ask && $2 == "backup-clear" && th && !tc { tc = $1 }
    END {
        if (!th || !tc) { print "no hold/clear messages" > "/dev/stderr"; exit 1 }
        base = gapmax(b0, b1)
        wend = tc < lend ? tc : lend
        stall = gapmax(th, wend); stall_at = gat
        printf "{\"keys\":%d,\"keys_asked\":%d,\"fill_ms\":%d,\"plain_size\":%d,\"stored_size\":%d,", n, asked, fill, plain, stored
        printf "\"object\":\"%s\",", object
        printf "\"backup_ms\":%d,\"backup_hold_to_clear_ms\":%.1f,\"backup_cli_ms\":%d,", took, tc - th, tdone - ask
        printf "\"hold_ms_backupd\":%d,\"hold_ms_worker\":%d,", hold, resumed
        printf "\"phases_ms\":{\"hold_to_held\":%.1f,\"held_to_snapshot\":%.1f,\"snapshot_to_resume\":%.1f},",
            theld - th, tsnap - theld, rt - tsnap
        printf "\"stall_ms\":%.1f,\"stall_starts_after_hold_ms\":%.1f,", stall, stall_at - th
        printf "\"baseline_gap_ms\":%.1f,\"baseline_s\":%.1f,", base, (b1 - b0) / 1000
        printf "\"load_to_clear\":%s,\"load_end_before_clear_ms\":%.0f,", (lend >= tc ? "true" : "false"), (lend >= tc ? 0 : tc - lend)
        fp = "{"; fb = "{"; fmax = 0; sep = ""
        for (k in nl) if (k != leader) {
            g = lgap(k, th, wend); gb = lgap(k, b0, b1); if (g > fmax) fmax = g
            fp = fp sep sprintf("\"%s\":%.1f", k, g); fb = fb sep sprintf("\"%s\":%.1f", k, gb); sep = ","
        }
        printf "\"follower_pause_ms\":%s},\"follower_base_gap_ms\":%s},\"follower_pause_max_ms\":%.1f,", fp, fb, fmax
        printf "\"ssi_advances\":%d,\"target_100ms_met\":%s}\n", na, (stall <= 100 && fmax <= 100 ? "true" : "false")
    }' "$DIR/changes.txt" >"$BASE_DIR/figures-$n.json"
    teardown
    DIR=""
}

RESULTS=()
IFS=, read -ra SIZES <<<"$KEYS"
for n in "${SIZES[@]}"; do
    run_size "$n"
    r=$(cat "$BASE_DIR/figures-$n.json")
    say "  figures: $r"
    RESULTS+=("$r")
done

if [ "$JSON" -eq 1 ]; then
    printf '%s\n' "${RESULTS[@]}" | jq -s --argjson rate "$RATE" '{rate: $rate, runs: .}'
    exit 0
fi
echo
echo "backup stall under a steady load of $RATE requests/s (3 InfoDID workers, local stack)"
printf '%-9s %9s %12s %12s %10s %9s %9s %10s %9s %9s %10s %6s\n' keys "fill s" "plain B" "stored B" \
    "backup ms" "hold ms" "stall ms" "base gap" "fol. max" "fol. base" "load2clr" "<=100"
for r in "${RESULTS[@]}"; do
    jq -r '[.keys, (.fill_ms / 1000 | . * 10 | round / 10), .plain_size, .stored_size, .backup_ms,
            .hold_ms_backupd, .stall_ms, .baseline_gap_ms, .follower_pause_max_ms,
            ([.follower_base_gap_ms[]] | max // 0),
            (if .load_to_clear then "yes" else "no" end),
            (if .target_100ms_met then "yes" else "NO" end)] | @tsv' <<<"$r" |
        awk -F'\t' '{ printf "%-9s %9s %12s %12s %10s %9s %9.1f %10.1f %9.1f %9.1f %10s %6s\n", $1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12 }'
done
echo "(hold ms: the leader's hold reported by backupd; stall: the longest gap between SSI advances"
echo " overlapping the backup, hold message to backup-clear; base gap: the same without a backup;"
echo " fol. max: the longest a follower's LPI stood still over the same span (its mirror is written"
echo " at most every 50 ms while busy), fol. base: the same without a backup; <=100: both stalls)"
echo " phases and the worker's own hold figure: --json, or the 'figures:' lines on stderr)"
for r in "${RESULTS[@]}"; do
    if [ "$(jq -r .keys_asked <<<"$r")" -ge 1000000 ]; then
        jq -r 'if .keys < .keys_asked then "target at \(.keys_asked) keys: NOT measured (the fill reached \(.keys) keys within --fill-max-s); at \(.keys) keys the stall is \(.stall_ms) ms (\(if .target_100ms_met then "within" else "above" end) 100 ms)"
               else "target at \(.keys) keys (stall <= 100 ms, no follower paused > 100 ms): \(if .target_100ms_met then "met" else "NOT met" end) (stall \(.stall_ms) ms, followers \(.follower_pause_max_ms) ms)" end' <<<"$r"
    fi
done
