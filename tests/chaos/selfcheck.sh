#!/usr/bin/env bash
# selfcheck.sh - the chaos checks can fail: a short run whose checker drops
# one acknowledged DID record from the last replica (--drop-record) must
# report it lost and the replicas inconsistent, and exit 1.
set -euo pipefail
out=$(mktemp)
trap 'rm -f "$out"' EXIT
rc=0
bash "$(dirname "$0")/chaos.sh" --count 100 --rate 20 --kills 0 --pauses 1 --interval 1-2 \
    --max-replicated 200 --drop-record >"$out" 2>&1 || rc=$?
grep -E "acknowledged but lost|replicas consistent|result  " "$out" || true
[ "$rc" = 1 ] || { tail -20 "$out"; echo "FAIL: chaos.sh --drop-record exited $rc, expected 1" >&2; exit 1; }
grep -Eq "acknowledged but lost \(must be 0\) +1$" "$out" || { echo "FAIL: the dropped record was not reported lost" >&2; exit 1; }
grep -Eq "replicas consistent \(SR\) +NO " "$out" || { echo "FAIL: the replicas were not reported inconsistent" >&2; exit 1; }
grep -Eq "result +FAIL$" "$out" || { echo "FAIL: no FAIL verdict" >&2; exit 1; }
echo "selfcheck: a dropped record is reported lost and inconsistent, exit 1"
