# lib.sh - shared helpers for integration tests (sourced, not run).
#
# Every server a test starts binds 127.0.0.1 on a free port, is recorded by
# PID, and is stopped by the EXIT trap, also when the test fails.
set -euo pipefail

SRC=${BR2K_SOURCE_DIR:-$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)}
# a leak inside librdkafka (tests/lsan.supp says which) is not ours
export LSAN_OPTIONS=${LSAN_OPTIONS:-suppressions=$SRC/tests/lsan.supp:print_suppressions=0}
BUILD=${BR2K_BUILD_DIR:-$SRC/build}
BIN=$BUILD/bin
ANVIL=$SRC/node_modules/@foundry-rs/anvil-linux-amd64/bin/anvil
CAST=$SRC/node_modules/@foundry-rs/cast-linux-amd64/bin/cast
T=$(mktemp -d "${TMPDIR:-/tmp}/br2k-itest.XXXXXX")
PIDS=()

cleanup() {
    local rc=$? i pid
    # stop in reverse start order, each before the next: clients before the
    # servers they use
    for ((i = ${#PIDS[@]} - 1; i >= 0; i--)); do
        pid=${PIDS[i]}
        kill -CONT "$pid" 2>/dev/null || true
        kill -TERM "$pid" 2>/dev/null || continue
        for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
        kill -KILL "$pid" 2>/dev/null || true
    done
    if [ "$rc" -ne 0 ]; then
        echo "--- test failed (rc=$rc); logs in $T:" >&2
        for f in "$T"/*.log; do [ -f "$f" ] && { echo "== $f" >&2; tail -n 30 "$f" >&2; }; done
    else
        rm -rf "$T"
    fi
    exit "$rc"
}
trap cleanup EXIT

fail() { echo "FAIL: $*" >&2; exit 1; }
pass() { echo "ok: $*"; }

# wait_for SECONDS CMD...: retry CMD every 0.1 s until it succeeds.
wait_for() {
    local secs=$1; shift
    local end=$((SECONDS + secs))
    until "$@" >/dev/null 2>&1; do
        [ "$SECONDS" -lt "$end" ] || return 1
        sleep 0.1
    done
}

free_port() { "$BIN/br2k" util free-port; }

# redis_pong PORT: the Redis on PORT answers PING with PONG (it has loaded)
redis_pong() { [ "$(redis-cli -p "$1" ping 2>/dev/null)" = PONG ]; }

# redis_server PORT NAME: a redis-server on 127.0.0.1:PORT with AOF
# (appendfsync always), data in $T/NAME, log appended to $T/NAME.log (so a
# restart on the same PORT and NAME finds its data); sets REDIS_SPAWNED
# (its PID, also in PIDS) once it answers PING.
redis_server() {
    mkdir -p "$T/$2"
    redis-server --bind 127.0.0.1 --port "$1" --dir "$T/$2" --appendonly yes \
        --appendfsync always --save "" --daemonize no >>"$T/$2.log" 2>&1 &
    REDIS_SPAWNED=$!; PIDS+=("$REDIS_SPAWNED")
    # PONG, not only exit 0: redis-cli exits 0 on a LOADING error too
    wait_for 20 redis_pong "$1" || fail "redis-server '$2' did not start on port $1"
}

# start_redis: sets REDIS_PORT, REDIS (HOST:PORT), REDIS_PID.
start_redis() {
    REDIS_PORT=$(free_port)
    redis_server "$REDIS_PORT" redis
    REDIS_PID=$REDIS_SPAWNED
    REDIS=127.0.0.1:$REDIS_PORT
}

# The request log's back end: BR2K_TEST_LOG=kafka (default: br2k-devkafka) or
# redis (Redis Streams on a redis-server of its own). ctest runs the core,
# backup and recovery tests once on each (tests/CMakeLists.txt).
LOG_BACKEND=${BR2K_TEST_LOG:-kafka}
case $LOG_BACKEND in kafka | redis) ;; *) echo "BR2K_TEST_LOG: unknown log back end '$LOG_BACKEND' (kafka or redis)" >&2; exit 2 ;; esac

# start_devkafka [ARGS]: the request log. Sets KAFKA (what --kafka takes) and
# KAFKA_PID; with br2k-devkafka also KAFKA_CTL (its control socket), on
# Redis Streams LOG_PORT (ARGS are devkafka's and ignored there).
start_devkafka() {
    if [ "$LOG_BACKEND" = redis ]; then
        LOG_PORT=$(free_port)
        redis_server "$LOG_PORT" logredis
        KAFKA_PID=$REDIS_SPAWNED
        KAFKA_CTL=
        KAFKA=redis://127.0.0.1:$LOG_PORT
        return
    fi
    KAFKA_CTL=$T/devkafka.sock
    rm -f "$T/devkafka.boot"
    "$BIN/br2k-devkafka" --bootstrap-file "$T/devkafka.boot" --control "$KAFKA_CTL" "$@" \
        >"$T/devkafka.out" 2>"$T/devkafka.log" &
    KAFKA_PID=$!; PIDS+=("$KAFKA_PID")
    wait_for 10 test -s "$T/devkafka.boot" || fail "br2k-devkafka did not start"
    KAFKA=$(cat "$T/devkafka.boot")
}

# log_lose_data: the log server loses every record (devkafka restarted empty,
# or the log's Redis flushed): offsets start from 0 again
log_lose_data() {
    if [ "$LOG_BACKEND" = redis ]; then
        redis-cli -p "$LOG_PORT" FLUSHALL >/dev/null
    else
        kill -TERM "$KAFKA_PID"; wait "$KAFKA_PID" || true
        start_devkafka
    fi
}

# log_offsets TOPIC: prints "FIRST END" of the log (END = next offset)
log_offsets() { "$BUILD/tests/itest_rlog" offsets "$KAFKA" "$1"; }
# log_dump TOPIC: every record from the first, one line each:
# "OFFSET KEY HEADERS VALUE" (headers "name=value,..."): kcat itself on Kafka
# (a tool of its own reading our records), the same format on Redis Streams
log_dump() {
    if [ "$LOG_BACKEND" = redis ]; then
        "$BUILD/tests/itest_rlog" dump "$KAFKA" "$1"
    else
        kcat -C -b "$KAFKA" -t "$1" -o beginning -e -q -f '%o %k %h %s\n'
    fi
}

# start_anvil [ARGS]: sets ETH_RPC, ANVIL_PID.
start_anvil() {
    local port; port=$(free_port)
    "$ANVIL" --host 127.0.0.1 --port "$port" "$@" >"$T/anvil.log" 2>&1 &
    ANVIL_PID=$!; PIDS+=("$ANVIL_PID")
    ETH_RPC=http://127.0.0.1:$port
    wait_for 20 curl -sf -H 'Content-Type: application/json' \
        -d '{"jsonrpc":"2.0","id":1,"method":"eth_chainId","params":[]}' "$ETH_RPC" ||
        fail "anvil did not start"
}
