# core_helpers.bash - helpers of the core_* worker tests (sourced after lib.sh).
SVC=default
TOPIC=br2k.$SVC.requests
declare -A WPID

rc_() { redis-cli -p "$(redis_port)" "$@"; } # the primary (Sentinel: the current one)
metric() { rc_ HGET "br2k:{$SVC}:metrics-$1" "$2"; }
leader_id() { rc_ GET "br2k:{$SVC}:leader" | cut -d' ' -f1; }
leader_epoch() { rc_ GET "br2k:{$SVC}:leader" | cut -d' ' -f2; }
# a request's result: result_get ID, result_count PREFIX, result_all PREFIX
# (lib.sh, service $SVC)

# start_worker ID [ARGS]: a no-op worker with state in $T/ID, log $T/ID.log
start_worker() {
    local id=$1; shift
    "$BIN/br2k-worker" --id "$id" --service "$SVC" --redis "$REDIS" --kafka "$KAFKA" \
        --state-dir "$T/$id" --app "${APP:-noop}" --lease-ms "${LEASE_MS:-1000}" "$@" \
        >>"$T/$id.log" 2>&1 &
    WPID[$id]=$!; PIDS+=("${WPID[$id]}")
}

# stop_worker ID: SIGTERM, wait, assert exit 0
stop_worker() {
    local id=$1 rc=0
    kill -TERM "${WPID[$id]}"
    wait "${WPID[$id]}" || rc=$?
    [ "$rc" -eq 0 ] || fail "worker $id exited $rc on SIGTERM"
}

produce() { "$BUILD/tests/itest_core" produce "$KAFKA" "$TOPIC" "$@"; }

# at LAST ID...: every worker has applied up to LAST and published the
# digest of that state, and all digests are equal
at() {
    local last=$1; shift
    local d0="" id
    for id in "$@"; do
        [ "$(metric "$id" lpi)" = "$last" ] || return 1
        [ "$(metric "$id" digest_lpi)" = "$last" ] || return 1
        local d; d=$(metric "$id" digest)
        [ -n "$d" ] || return 1
        [ -z "$d0" ] || [ "$d" = "$d0" ] || return 1
        d0=$d
    done
}

show() {
    local id
    for id in "$@"; do
        echo "$id: role=$(metric "$id" role) epoch=$(metric "$id" epoch) lpi=$(metric "$id" lpi)" \
            "digest_lpi=$(metric "$id" digest_lpi) digest=$(metric "$id" digest | cut -c1-12)" \
            "applied=$(metric "$id" applied) fenced=$(metric "$id" fenced)" >&2
    done
    echo "SSI=$(rc_ GET "br2k:{$SVC}:SSI") leader=$(rc_ GET "br2k:{$SVC}:leader")" >&2
}

# noop_count ID: records counted by the no-op state of a stopped worker
noop_count() { cut -d' ' -f4 "$T/$1/app/noop.state"; }

# predicates for wait_for (evaluated on every try)
has_leader() { [ -n "$(leader_id)" ]; }
epoch_is() { [ "$(leader_epoch)" = "$1" ]; }
role_is() { [ "$(metric "$1" role)" = "$2" ]; }
