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

# start_redis: sets REDIS_PORT, REDIS (HOST:PORT), REDIS_PID. With
# BR2K_TEST_REDIS=ha: start_redis_ha instead (REDIS is then a sentinel://
# address, REDIS_PORT and REDIS_PID the first primary's).
REDIS_MODE=${BR2K_TEST_REDIS:-single}
case $REDIS_MODE in single | ha) ;; *) echo "BR2K_TEST_REDIS: unknown mode '$REDIS_MODE' (single or ha)" >&2; exit 2 ;; esac
start_redis() {
    if [ "$REDIS_MODE" = ha ]; then
        start_redis_ha
        return
    fi
    REDIS_PORT=$(free_port)
    redis_server "$REDIS_PORT" redis
    REDIS_PID=$REDIS_SPAWNED
    REDIS=127.0.0.1:$REDIS_PORT
}

# ---- Redis with replicas and Sentinel (BR2K_TEST_REDIS=ha, chaos redis-*) ----
# The primary's name the Sentinels monitor.
HA_NAME=br2k
declare -A HA_PID # port -> PID of each redis-server of the set
HA_PORTS=() SENT_PORTS=() SENT_PIDS=()

# ha_node PORT NAME [PRIMARY-PORT]: a redis-server of the set (AOF,
# appendfsync always; a write needs one replica: min-replicas-to-write 1,
# replicas lagging > 2 s do not count), a replica of PRIMARY-PORT if given
ha_node() {
    local port=$1 name=$2 of=()
    [ -z "${3:-}" ] || of=(--replicaof 127.0.0.1 "$3")
    mkdir -p "$T/$name"
    redis-server --bind 127.0.0.1 --port "$port" --dir "$T/$name" --appendonly yes \
        --appendfsync always --save "" --daemonize no --min-replicas-to-write 1 \
        --min-replicas-max-lag 2 --repl-timeout 5 --repl-diskless-sync-delay 0 "${of[@]}" >>"$T/$name.log" 2>&1 &
    HA_PID[$port]=$!; PIDS+=("$!")
    wait_for 20 redis_pong "$port" || fail "redis-server '$name' did not start on port $port"
}

# start_redis_ha: one primary, two replicas, three Sentinels
# (down-after-milliseconds 1000); sets REDIS=sentinel://.../br2k,
# REDIS_PORT/REDIS_PID (the first primary), HA_PORTS, SENT_PORTS.
start_redis_ha() {
    local i p s
    for i in 0 1 2; do HA_PORTS+=("$(free_port)"); done
    ha_node "${HA_PORTS[0]}" redis0
    for i in 1 2; do ha_node "${HA_PORTS[i]}" "redis$i" "${HA_PORTS[0]}"; done
    synced() { [ "$(redis-cli -p "${HA_PORTS[0]}" INFO replication | tr -d '\r' | grep -c '^slave[0-9]*:.*state=online')" = 2 ]; }
    wait_for 30 synced || fail "the replicas did not sync with the primary"
    REDIS=sentinel://
    for i in 0 1 2; do
        s=$(free_port); SENT_PORTS+=("$s")
        mkdir -p "$T/sentinel$i"
        cat >"$T/sentinel$i/sentinel.conf" <<SENTINEL
port $s
bind 127.0.0.1
dir $T/sentinel$i
sentinel monitor $HA_NAME 127.0.0.1 ${HA_PORTS[0]} 2
sentinel down-after-milliseconds $HA_NAME 1000
sentinel failover-timeout $HA_NAME 10000
sentinel parallel-syncs $HA_NAME 2
SENTINEL
        redis-sentinel "$T/sentinel$i/sentinel.conf" >>"$T/sentinel$i.log" 2>&1 &
        SENT_PIDS+=("$!"); PIDS+=("$!")
        [ "$i" = 0 ] || REDIS+=,
        REDIS+=127.0.0.1:$s
    done
    REDIS+=/$HA_NAME
    for s in "${SENT_PORTS[@]}"; do
        # every Sentinel knows both replicas and the two other Sentinels
        knows() { redis-cli -p "$1" SENTINEL master "$HA_NAME" 2>/dev/null | tr -d '\r' |
            awk 'p == "num-slaves" && $0 == 2 {a = 1} p == "num-other-sentinels" && $0 == 2 {b = 1} {p = $0} END {exit !(a && b)}'; }
        wait_for 30 knows "$s" || fail "Sentinel on port $s did not discover the set"
    done
    REDIS_PORT=${HA_PORTS[0]}
    REDIS_PID=${HA_PID[$REDIS_PORT]}
    p=$(redis_port); [ "$p" = "$REDIS_PORT" ] || fail "the Sentinels name port $p as primary, not $REDIS_PORT"
}

# redis_port: the port of the Redis to use now: the single server, or the
# primary the Sentinels name (asked in turn): the first one named that says
# it is a master (ROLE), as the programs' sentinel:// connections check; a
# Sentinel still in the middle of a failover names the replica it promoted,
# which may be dead already (a second failover right after the first: the
# test waited 30 s on a dead port while the workers ran on the new
# primary). None a master yet: the first one named.
redis_port() {
    if [ "$REDIS_MODE" != ha ] && [ "${#SENT_PORTS[@]}" = 0 ]; then echo "$REDIS_PORT"; return; fi
    local s a first=
    for s in "${SENT_PORTS[@]}"; do
        a=$(redis-cli -p "$s" SENTINEL get-master-addr-by-name "$HA_NAME" 2>/dev/null | tail -1)
        [[ $a =~ ^[0-9]+$ ]] || continue
        [ -n "$first" ] || first=$a
        [ "$(redis-cli -p "$a" ROLE 2>/dev/null | head -1)" = master ] && { echo "$a"; return; }
    done
    echo "${first:-$REDIS_PORT}"
}

# ---- the leader's results (common/redis/keys.h) ----
# The result of request id CLIENT:SEQ (SEQ decimal 0 to 2^64-1 without a
# leading zero, CLIENT not empty and without braces) is field SEQ of the hash
# br2k:{SVC}:results:CLIENT:BUCKET, BUCKET = SEQ / 1024; that of any other id
# the string br2k:{SVC}:result:ID; a repeat's own (and that of a record named
# by its header) the string br2k:{SVC}:result:ID@OFFSET (read it with GET).
# The functions below read service $SVC ("default" if unset) on the current
# primary (redis_port).

# result_where ID: sets RKEY and RFIELD to the hash and field of ID's
# result, or RKEY to its string key and RFIELD empty (an id of another form)
result_where() {
    local id=$1 client=${1%:*} seq=${1##*:} q='' r=0 i
    RKEY="br2k:{${SVC:-default}}:result:$id" RFIELD=
    [[ $id == *:* && -n $client && $client != *[{}]* && $seq =~ ^(0|[1-9][0-9]{0,19})$ ]] || return 0
    # SEQ / 1024 digit by digit (SEQ may not fit bash's signed 64 bits); SEQ
    # is at most 2^64-1 = 18014398509481983 * 1024 + 1023 when the quotient
    # is at most 18014398509481983
    for ((i = 0; i < ${#seq}; i++)); do
        r=$((r * 10 + ${seq:i:1})); q+=$((r / 1024)); r=$((r % 1024))
    done
    q=$((10#$q))
    [ "$q" -le 18014398509481983 ] || return 0
    RKEY="br2k:{${SVC:-default}}:results:$client:$q" RFIELD=$seq
}

# result_get ID: the JSON result of request id ID; nothing when it has none
result_get() {
    result_where "$1"
    if [ -n "$RFIELD" ]; then
        redis-cli -p "$(redis_port)" HGET "$RKEY" "$RFIELD"
    else
        redis-cli -p "$(redis_port)" GET "$RKEY"
    fi
}

# result_set ID JSON: stores JSON as ID's result, where the leader puts it
# (a result written by hand)
result_set() {
    result_where "$1"
    if [ -n "$RFIELD" ]; then
        redis-cli -p "$(redis_port)" HSET "$RKEY" "$RFIELD" "$2"
    else
        redis-cli -p "$(redis_port)" SET "$RKEY" "$2"
    fi
}

# result_keys PREFIX: the keys holding the results of the request ids that
# start with PREFIX, a prefix of the client's name ("" for all; "load:" for
# client load alone): the hashes, then the strings of ids of another form
# (the repeats' ...@OFFSET not among them)
result_keys() {
    local p k svc=${SVC:-default}
    p=$(redis_port)
    redis-cli -p "$p" --scan --pattern "br2k:{$svc}:results:$1*"
    redis-cli -p "$p" --scan --pattern "br2k:{$svc}:result:$1*" | while read -r k; do
        [[ $k != *@* ]] || continue
        result_where "${k#"br2k:{$svc}:result:"}"
        [ -n "$RFIELD" ] || echo "$k"
    done
}

# result_count PREFIX: how many request ids starting with PREFIX (as in
# result_keys) have a result
result_count() {
    local p k n=0
    p=$(redis_port)
    while read -r k; do
        if [[ $k == "br2k:{${SVC:-default}}:results:"* ]]; then
            n=$((n + $(redis-cli -p "$p" HLEN "$k")))
        else
            n=$((n + 1))
        fi
    done < <(result_keys "$1")
    echo "$n"
}

# result_all PREFIX: the JSON results of the request ids starting with
# PREFIX (as in result_keys), one a line
result_all() {
    local p k
    p=$(redis_port)
    result_keys "$1" | while read -r k; do
        if [[ $k == "br2k:{${SVC:-default}}:results:"* ]]; then
            redis-cli -p "$p" HVALS "$k"
        else
            redis-cli -p "$p" GET "$k"
        fi
    done
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
