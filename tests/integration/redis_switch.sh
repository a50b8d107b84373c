#!/usr/bin/env bash
# redis_switch.sh - a sentinel:// connection follows a failover through the
# Sentinels' +switch-master (common/redis/redis.c), with no error and no
# command timeout: the primary of a set of three (lib.sh's start_redis_ha)
# is SIGSTOPped, and the first command after Sentinel promoted a replica
# runs on it at once (itest_switch_master.c).
source "$(dirname "$0")/lib.sh"

start_redis_ha
"$BUILD/tests/itest_switch_master" "$REDIS" "${SENT_PORTS[0]}" "$HA_NAME" "$REDIS_PID" >"$T/itest.log" 2>&1 ||
    { cat "$T/itest.log" >&2; fail "itest_switch_master"; }
cat "$T/itest.log"
pass "a sentinel:// connection follows +switch-master"
