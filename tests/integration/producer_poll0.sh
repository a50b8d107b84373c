#!/usr/bin/env bash
# producer_poll0.sh - br2k_poll(c, 0) finds a result announced on the
# changes channel at once, not by the 50 ms fallback look (issue 20 (c);
# tests/integration/itest_poll0.c, no workers: it plays the leader).
source "$(dirname "$0")/lib.sh"

start_redis
start_devkafka
export BR2K_KAFKA=$KAFKA BR2K_REDIS=$REDIS BR2K_SERVICE=default
"$BUILD/tests/itest_poll0" >"$T/poll0.out" 2>&1 || fail "$(cat "$T/poll0.out")"
pass "$(cat "$T/poll0.out")"
