# redis_acl.sh - least privilege (deploy/redis/acl): Redis with one ACL user
# per component. The gateway (the only thing end users reach), a client
# and the operator's read-only user cannot write the epoch, SSI, results,
# versions or the backup phase, not even from inside a script; the worker
# cannot touch another service's keys or run admin commands. Then the real
# parts run under their own users (BR2K_REDIS_USER, BR2K_REDIS_PASSWORD_FILE):
# 3 InfoDID workers, a gateway that takes a registration, and `br2k status`
# as the operator.
source "$(dirname "$0")/lib.sh"
source "$(dirname "$0")/core_helpers.bash"
source "$(dirname "$0")/gateway_helpers.bash"
ACL=$T/acl
"$SRC/deploy/redis/acl" "$SVC" "$ACL" >/dev/null || fail "deploy/redis/acl"
for u in default worker backupd registryd gateway client operator; do
    [ "$(stat -c %a "$ACL/$u.pass")" = 600 ] || fail "$u.pass is not mode 600"
done
REDIS_PORT=$(free_port)
REDIS=127.0.0.1:$REDIS_PORT
mkdir -p "$T/redis"
redis-server --bind 127.0.0.1 --port "$REDIS_PORT" --dir "$T/redis" --appendonly yes \
    --appendfsync always --save "" --aclfile "$ACL/users.acl" >>"$T/redis.log" 2>&1 &
REDIS_PID=$!; PIDS+=("$REDIS_PID")
export REDISCLI_AUTH; REDISCLI_AUTH=$(cat "$ACL/default.pass") # rc_ and the helpers: the administrator
wait_for 20 redis_pong "$REDIS_PORT" || fail "redis-server with ACLs did not start"
as() { local u=$1; shift; redis-cli -p "$REDIS_PORT" --no-auth-warning --user "$u" --pass "$(cat "$ACL/$u.pass")" "$@" 2>&1; }
refused() { # USER CMD...: Redis answers NOPERM
    local out; out=$(as "$@")
    [[ $out == NOPERM* ]] || fail "$1 may: ${*:2} -> $out"
}
allowed() {
    local out; out=$(as "$@")
    [[ $out != NOPERM* && $out != *ERR* && $out != WRONGPASS* ]] || fail "$1 may not: ${*:2} -> $out"
}
K="br2k:{$SVC}"
rc_ SET "$K:epoch" 7 >/dev/null
for u in gateway client operator; do
    refused "$u" SET "$K:epoch" 9
    refused "$u" INCR "$K:epoch"
    refused "$u" SET "$K:SSI" 100
    refused "$u" SET "$K:result:alice:1" forged
    refused "$u" HSET "$K:results:alice:0" 1 forged
    refused "$u" SET "$K:Service-State" 9
    refused "$u" SET "$K:backup" snapshot
    refused "$u" EVAL "return redis.call('INCR', KEYS[1])" 1 "$K:epoch"
    refused "$u" CONFIG GET maxmemory
    refused "$u" GET "br2k:{other}:SSI"
done
[ "$(rc_ GET "$K:epoch")" = 7 ] || fail "the epoch changed: $(rc_ GET "$K:epoch")"
allowed gateway GET "$K:SSI"
allowed gateway HSET "$K:gateway-g9" role test
allowed operator GET "$K:epoch"
refused operator HSET "$K:gateway-g9" role test
allowed client GET "$K:result:alice:1"
allowed client HGET "$K:results:alice:0" 1
refused client GET "$K:epoch"
allowed worker SET "$K:SSI" -1
refused worker GET "br2k:{other}:SSI"
refused worker FLUSHALL
refused worker CONFIG SET appendonly no
refused registryd SET "$K:SSI" 5
allowed registryd LPUSH "$K:registry:queue" x
rc_ DEL "$K:SSI" "$K:registry:queue" "$K:gateway-g9" "$K:epoch" >/dev/null
pass "gateway, client and operator cannot write the epoch, SSI, results, SV or the backup phase (nor from a script); the worker is confined to its service, no admin commands"

# the real parts under their own users
start_devkafka
for w in w1 w2 w3; do
    BR2K_REDIS_USER=worker BR2K_REDIS_PASSWORD_FILE=$ACL/worker.pass APP=infodid start_worker "$w"
done
BR2K_REDIS_USER=gateway BR2K_REDIS_PASSWORD_FILE=$ACL/gateway.pass start_gateway g1
op() { BR2K_REDIS_USER=operator BR2K_REDIS_PASSWORD_FILE=$ACL/operator.pass "$BIN/br2k" --redis "$REDIS" --service "$SVC" "$@"; }
three() { op status --json | jq -e '.leader != null and (.members | length) == 3' >/dev/null; }
wait_for 30 three || fail "no leader with 3 members: $(op status 2>&1 | tail -3)"
got=$(post "${GWURL[g1]}" "$(signed acl 1 register '{"attrs":{"name":"Least"}}')" --url-query wait_ms=20000)
[ "$got" = 200 ] && jq -e '.status == "ok"' "$T/body" >/dev/null || fail "register through the gateway: HTTP $got $(cat "$T/body")"
op verify --json --timeout-ms 20000 >"$T/verify.json" || fail "verify as operator: $(cat "$T/verify.json")"
jq -e '.consistent and .lpi == 0' "$T/verify.json" >/dev/null || fail "verify: $(cat "$T/verify.json")"
grep -l "NOPERM" "$T"/w*.log "$T"/gateway-g1.log 2>/dev/null && fail "a part was refused: $(grep -h NOPERM "$T"/*.log | head -3)"
pass "workers, gateway and operator run under their own users: a registration through the gateway, replicas consistent"

# the local stack with ACLs (deploy/local/stack up --acl): every part under
# its own user; `stack env` gives the operator's read-only user
STACK=$SRC/deploy/local/stack
export BR2K_BUILD_DIR=$BUILD
trap 'rc=$?; set +e; "$STACK" down --dir "$T/s" >/dev/null 2>&1 || true; (exit $rc); cleanup' EXIT
"$STACK" up --dir "$T/s" --acl --service aclstack >"$T/up.log" 2>&1 || fail "stack up --acl: $(tail -3 "$T/up.log")"
(
    eval "$("$STACK" env --dir "$T/s")"
    [ "$BR2K_REDIS_USER" = operator ] || fail "stack env: user '$BR2K_REDIS_USER'"
    KEY=$(cat "$T/s/keys/owner.key")
    wait_for 30 "$BIN/br2k" status || fail "status as operator"
    got=$(post "$BR2K_GATEWAY" "$(signed acl 2 register '{"attrs":{"name":"Stack"}}')" --url-query wait_ms=20000)
    [ "$got" = 200 ] && jq -e '.status == "ok"' "$T/body" >/dev/null || fail "stack gateway: HTTP $got $(cat "$T/body")"
    "$BIN/br2k" verify >/dev/null || fail "verify as operator"
    rc=0; "$BIN/br2k" backup now --wait 30 >"$T/bn.out" 2>&1 || rc=$?
    [ "$rc" = 2 ] && grep -q NOPERM "$T/bn.out" || fail "the operator could request a backup: rc $rc $(cat "$T/bn.out")"
    BR2K_REDIS_USER=backupd BR2K_REDIS_PASSWORD_FILE=$T/s/acl/backupd.pass "$BIN/br2k" backup now --wait 60 >"$T/bn.out" 2>&1 ||
        fail "backup now as backupd: $(cat "$T/bn.out")"
)
grep -l NOPERM "$T"/s/logs/*.log 2>/dev/null && fail "a part of the stack was refused: $(grep -h NOPERM "$T"/s/logs/*.log | head -3)"
pass "stack up --acl: every part under its own user; a registration through the gateway, verify as the read-only operator (who may not request a backup), a backup requested as backupd and taken"
