#!/usr/bin/env bash
# infodid_external.sh - InfoDID's external index in a real redis-server:
# once per offset, FENCED for a stale epoch, count and hash match.
source "$(dirname "$0")/lib.sh"

start_redis
"$BUILD/tests/itest_infodid_external" "$REDIS" >"$T/itest.log" 2>&1 ||
    { cat "$T/itest.log" >&2; fail "itest_infodid_external"; }
cat "$T/itest.log"
pass "infodid external index"
