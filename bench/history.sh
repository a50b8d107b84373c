#!/usr/bin/env bash
# bench/history.sh - the history of service actions (issue 19), figures
# printed, not asserted: what archiving the records costs a backup (bytes
# sealed and plain, milliseconds), and how fast `br2k history verify`
# replays them (records/s).
#
# Usage: bench/history.sh [--records N] [--backups B] [--clients K] [--json]
#   --records N   signed InfoDID registrations in all (default 100000)
#   --backups B   backups they are spread over (default 1: one archive of N records)
#   --clients K   load generator clients (default 4)
#   --json        one JSON object on stdout instead of the table
# Binaries: $BR2K_BUILD_DIR/bin (default <repo>/build; a Release build gives
# the figures that mean something).
#
# One InfoDID worker, Redis, anvil with the registry, registryd and
# br2k-backupd (file storage), through the integration tests' helpers
# (tests/integration/lib.sh: every server on a free port, stopped at the
# end). The log is Redis Streams: the development broker keeps only ~5 MiB
# (~8,000 requests), so N records of one backup would not all be there to
# archive (a gap, which the archive would record). Each backup's line
# "archived N records ... X bytes sealed from Y, in Z ms" of br2k-backupd
# gives the archive's cost (reading the records from the log, building the
# JSON lines, zlib, AES-GCM, storing, reading back); then `br2k history
# verify --json` replays every record from genesis through br2k-replay.
set -euo pipefail
RECORDS=100000 BACKUPS=1 CLIENTS=4 JSON=0
while [ $# -gt 0 ]; do
    case $1 in
    --records) RECORDS=${2:?}; shift 2 ;;
    --backups) BACKUPS=${2:?}; shift 2 ;;
    --clients) CLIENTS=${2:?}; shift 2 ;;
    --json) JSON=1; shift ;;
    -h | --help) sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
    *) echo "history: unknown argument '$1' (see --help)" >&2; exit 2 ;;
    esac
done
export BR2K_TEST_LOG=redis
SRCDIR=$(cd "$(dirname "$0")/.." && pwd)
export BR2K_SOURCE_DIR=$SRCDIR
source "$SRCDIR/tests/integration/lib.sh"
source "$SRCDIR/tests/integration/core_helpers.bash"
source "$SRCDIR/tests/integration/backup_helpers.bash"
APP=infodid

start_redis
start_devkafka
start_chain
start_worker w1
wait_for 15 has_leader || fail "no leader"
start_backupd --max-replicated 100000000 --snapshot-timeout-ms 600000
per=$((RECORDS / BACKUPS / CLIENTS))
[ "$per" -gt 0 ] || fail "--records must be at least --backups x --clients"
for b in $(seq 1 "$BACKUPS"); do
    "$BIN/br2k" --redis "$REDIS" --kafka "$KAFKA" submit --clients "$CLIENTS" --count "$per" \
        --prefix "b$b" >"$T/load$b.out" 2>&1 || fail "load $b: $(tail -3 "$T/load$b.out")"
    "$BIN/br2k" --redis "$REDIS" backup now --wait 600 >"$T/now$b.out" 2>&1 ||
        fail "backup $b: $(cat "$T/now$b.out"); $(tail -3 "$T/backupd.log")"
done
t0=$(date +%s.%N)
BR2K_SERVICE_KEY_FILE="$T/service.key" "$BIN/br2k" --eth-rpc "$ETH_RPC" --registry "$REG" \
    history verify --json >"$T/verify.json" 2>"$T/verify.err" || fail "history verify: $(cat "$T/verify.json" "$T/verify.err")"
t1=$(date +%s.%N)
# "backup version V: archived N records (a..b) as 'NAME', S bytes sealed from P, in M ms"
grep -o "archived [0-9]* records .* bytes sealed from [0-9]*, in [0-9]* ms" "$T/backupd.log" |
    sed -E 's/archived ([0-9]+) records .*, ([0-9]+) bytes sealed from ([0-9]+), in ([0-9]+) ms/\1 \2 \3 \4/' >"$T/archives.txt"
[ -s "$T/archives.txt" ] || fail "no archive line in backupd.log"
if [ "$JSON" = 1 ]; then
    jq -n --slurpfile v "$T/verify.json" --rawfile a "$T/archives.txt" --arg wall "$(echo "$t1 - $t0" | bc)" '{
        archives: [$a | split("\n")[] | select(length > 0) | split(" ") | map(tonumber) |
                   {records: .[0], sealed_bytes: .[1], plain_bytes: .[2], ms: .[3]}],
        verify: {records: $v[0].records, seconds: $v[0].seconds, records_per_s: ($v[0].records_per_s | floor),
                 wall_s: ($wall | tonumber)}}'
else
    printf '%-10s %14s %14s %8s %12s\n' RECORDS SEALED_BYTES PLAIN_BYTES MS BYTES/RECORD
    while read -r n s p ms; do
        printf '%-10s %14s %14s %8s %12s\n' "$n" "$s" "$p" "$ms" "$([ "$n" -gt 0 ] && echo $((s / n)) || echo -)"
    done <"$T/archives.txt"
    echo "history verify: $(jq .records "$T/verify.json") records from genesis in $(jq '.seconds * 100 | floor / 100' "$T/verify.json") s: $(jq '.records_per_s | floor' "$T/verify.json") records/s"
fi
