#!/usr/bin/env bash
# app_c_plugin.sh - an application of one's own, in C, outside the tree:
#   - `cmake --install` into a temporary prefix gives the programs, the
#     header br2k/app.h and br2k-app.pc;
#   - the example worker/apps/examples/c-counter, copied out of the tree,
#     builds against them with pkg-config (nothing of the tree on its path);
#   - 3 workers run it (--app $T/libexample.so) on redis-server and
#     br2k-devkafka; requests before and after the leader is killed
#     (SIGKILL) and restarted; `br2k verify` finds the 3 replicas at the
#     same digest, a result reaches its client through `br2k submit`, and
#     the external effect (the host's fenced ext_write) counted every
#     request exactly once.
source "$(dirname "$0")/lib.sh"
source "$(dirname "$0")/core_helpers.bash"

# 1. install, build outside the tree
cmake --install "$BUILD" --prefix "$T/prefix" >"$T/install.out" 2>&1 ||
    fail "cmake --install: $(tail -5 "$T/install.out")"
for f in bin/br2k-worker bin/br2k include/br2k/app.h; do
    [ -e "$T/prefix/$f" ] || fail "cmake --install did not install $f"
done
export PKG_CONFIG_PATH=$T/prefix/lib/pkgconfig:$T/prefix/share/pkgconfig
pkg-config --exists br2k-app || fail "no br2k-app.pc under $T/prefix"
[ "$(pkg-config --variable=abi_version br2k-app)" = 2 ] || fail "br2k-app.pc abi_version"
pass "installed: $(cd "$T/prefix" && find . -type f | sort | tr '\n' ' ')"
mkdir -p "$T/src"
cp "$SRC/worker/apps/examples/c-counter/counter.c" "$SRC/worker/apps/examples/c-counter/Makefile" \
    "$T/src/"
# no sanitizer flags: a plain build, as a user makes it
env -u CFLAGS make -C "$T/src" >"$T/make.log" 2>&1 || fail "example build: $(tail -20 "$T/make.log")"
grep -q -- "-I$T/prefix" "$T/make.log" || fail "the example did not use the installed header"
cp "$T/src/libcounter.so" "$T/libexample.so"
pass "example built out of the tree: $(pkg-config --cflags --libs br2k-app)"

# 2. three workers on the plug-in
start_redis
start_devkafka
export APP=$T/libexample.so
for w in w1 w2 w3; do start_worker "$w"; done
wait_for 30 has_leader || { show w1 w2 w3; fail "no leader"; }
grep -q "counter" "$T/w1.log" || true
last=$(produce 300 0 alice)
wait_for 60 at "$last" w1 w2 w3 || { show w1 w2 w3; fail "replicas did not converge at $last"; }
pass "3 replicas of the plug-in at LPI $last"

# 3. the leader killed, records while it is down, then back
old=$(leader_id)
kill -KILL "${WPID[$old]}"
wait "${WPID[$old]}" 2>/dev/null || true
others=()
for w in w1 w2 w3; do [ "$w" = "$old" ] || others+=("$w"); done
last=$(produce 200 0 bob)
wait_for 60 at "$last" "${others[@]}" || { show w1 w2 w3; fail "survivors did not go on"; }
start_worker "$old"
wait_for 60 at "$last" w1 w2 w3 || { show w1 w2 w3; fail "$old did not catch up"; }
pass "leader $old killed and back: all at LPI $last, leader now $(leader_id)"

# 4. a request through the client API, its result
export BR2K_KAFKA=$KAFKA BR2K_REDIS=$REDIS BR2K_SERVICE=$SVC
export BR2K_CLIENT_KEY=0x59c6995e998f97a5a0044966f0945389dc9e86dae88c7a8412f4603b6b78690d
res=$("$BIN/br2k" submit --op count --payload '{}' --client carol --seq 7 --wait-ms 20000 2>&1) ||
    fail "submit: $res"
echo "$res" | jq -e '.status == "ok" and .data.client == "carol" and .data.count == 1 and
    .data.total == 501' >/dev/null || fail "result: $res"
pass "result for carol:7: $res"
last=$((last + 1))

# 5. verify: same digest on every replica
verify_ok() {
    "$BIN/br2k" verify --json --timeout-ms 20000 >"$T/verify.json" &&
        jq -e ".consistent == true and (.replicas | length) == 3 and .lpi >= $last" \
            "$T/verify.json" >/dev/null
}
wait_for 60 verify_ok || fail "verify: $(cat "$T/verify.json")"
pass "br2k verify: consistent at LPI $(jq .lpi "$T/verify.json")"

# 6. the external effect: exactly once per counted request, fenced writes
# under ext:, ext:applied at the last offset
ext() { rc_ "$@"; }
[ "$(ext GET "br2k:{$SVC}:ext:total")" = 501 ] || fail "ext:total $(ext GET "br2k:{$SVC}:ext:total")"
[ "$(ext HGET "br2k:{$SVC}:ext:counts" alice)" = 300 ] || fail "ext:counts alice"
[ "$(ext HGET "br2k:{$SVC}:ext:counts" bob)" = 200 ] || fail "ext:counts bob"
[ "$(ext HGET "br2k:{$SVC}:ext:counts" carol)" = 1 ] || fail "ext:counts carol"
[ "$(ext GET "br2k:{$SVC}:ext:applied")" = "$last" ] || fail "ext:applied $(ext GET "br2k:{$SVC}:ext:applied")"
pass "external state: total 501, counts alice 300 bob 200 carol 1, ext:applied $last"

for w in w1 w2 w3; do stop_worker "$w"; done
pass "SIGTERM: every worker exits 0"
