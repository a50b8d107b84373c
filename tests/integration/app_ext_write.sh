#!/usr/bin/env bash
# app_ext_write.sh - the host's fenced, idempotent-per-offset external
# write (br2k/app.h ext_write) and the plug-in adapter against a real
# redis-server (tests/apps/extwrite_check.c).
source "$(dirname "$0")/lib.sh"
start_redis
"$BUILD/tests/app_extwrite_check" "$REDIS" || fail "app_extwrite_check"
pass "external write: each op kind, fenced, once per offset, bad ops refused"
