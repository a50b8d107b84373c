#!/usr/bin/env bash
# selfcheck_i9.sh - the redis-stale-promotion check can fail: the same
# scenario with the leaders' claims off (BR2K_TEST_NO_CLAIMS=1, tests only)
# must hand out the last leader's token again after the stale replica is
# promoted, and chaos.sh must report it and exit 1.
set -euo pipefail
out=$(mktemp)
trap 'rm -f "$out"' EXIT
rc=0
BR2K_TEST_NO_CLAIMS=1 bash "$(dirname "$0")/chaos.sh" --scenario redis-stale-promotion \
    --app python --app-kills 0 --count 400 --rate 20 --max-replicated 500 >"$out" 2>&1 || rc=$?
grep -E "stale-promotion|fencing token" "$out" || true
[ "$rc" = 1 ] || { tail -20 "$out"; echo "FAIL: chaos.sh without claims exited $rc, expected 1" >&2; exit 1; }
grep -Eq "^FAIL: a fencing token was used by two workers \(I9\): epoch [0-9]+:" "$out" ||
    { tail -20 "$out"; echo "FAIL: the reused token was not reported" >&2; exit 1; }
echo "selfcheck: without the claims (I9) a stale promotion hands a token out twice, and the check says so"
