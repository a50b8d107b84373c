# fencing.sh - the fenced Redis scripts of common/keys against a real
# redis-server: stale tokens refused atomically (I2), SSI, SV and SSV only
# increase (I3), one lease among contenders, a new epoch after expiry.
source "$(dirname "$0")/lib.sh"

start_redis
"$BUILD/tests/itest_fencing" "$REDIS" || fail "itest_fencing"
pass "fencing scripts"
