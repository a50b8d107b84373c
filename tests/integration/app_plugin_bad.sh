#!/usr/bin/env bash
# app_plugin_bad.sh - plug-ins that must be refused, and one that must be
# caught (tests/apps/testapp.c builds them):
#   - a missing file, a file that is not a shared library, a library
#     without br2k_app_entry, one of another ABI version, one without an
#     apply operation: one line naming the problem, exit 2, nothing in
#     Redis;
#   - a plug-in whose open fails: one error line with its message, exit 1,
#     no membership, no lease;
#   - a well-behaved test plug-in on 2 workers: `br2k verify` consistent;
#   - a non-deterministic one (the clock in apply) on 3 workers: `br2k
#     verify` reports the divergence and names the replicas, exit 1.
source "$(dirname "$0")/lib.sh"
source "$(dirname "$0")/core_helpers.bash"

LIB=$BUILD/lib
start_redis
start_devkafka

# refused PLUGIN RC PATTERN: the worker exits RC with one stderr line
# matching PATTERN
refused() {
    local app=$1 want=$2 pat=$3 rc=0
    "$BIN/br2k-worker" --id bad --service "$SVC" --redis "$REDIS" --kafka "$KAFKA" \
        --state-dir "$T/bad" --app "$app" >"$T/bad.out" 2>"$T/bad.err" || rc=$?
    [ "$rc" -eq "$want" ] || fail "--app $app: exit $rc, expected $want: $(cat "$T/bad.err")"
    grep -Eq -- "$pat" "$T/bad.err" || fail "--app $app: no '$pat' in: $(cat "$T/bad.err")"
    echo "    $(grep -E -- "$pat" "$T/bad.err" | head -1)"
}

refused "$T/nonexistent.so" 2 "cannot load application '$T/nonexistent.so': No such file"
[ "$(wc -l <"$T/bad.err")" -eq 1 ] || fail "more than one line: $(cat "$T/bad.err")"
echo "not a library" >"$T/text.so"
refused "$T/text.so" 2 "cannot load application '$T/text.so': .*(too short|invalid ELF)"
[ "$(wc -l <"$T/bad.err")" -eq 1 ] || fail "more than one line: $(cat "$T/bad.err")"
refused "$LIB/libbr2k_testapp_nosym.so" 2 "missing symbol 'br2k_app_entry'"
[ "$(wc -l <"$T/bad.err")" -eq 1 ] || fail "more than one line: $(cat "$T/bad.err")"
refused "$LIB/libbr2k_testapp_badabi.so" 2 "wrong ABI version 999, this worker supports 1"
[ "$(wc -l <"$T/bad.err")" -eq 1 ] || fail "more than one line: $(cat "$T/bad.err")"
refused "$LIB/libbr2k_testapp_noapply.so" 2 "missing operation 'apply'"
[ "$(wc -l <"$T/bad.err")" -eq 1 ] || fail "more than one line: $(cat "$T/bad.err")"
refused "nosuchapp" 2 "unknown application 'nosuchapp'"
[ -z "$(rc_ --scan --pattern "br2k:{$SVC}:*")" ] || fail "keys written: $(rc_ --scan)"
pass "missing file, not a library, no entry symbol, ABI 999, no apply, unknown name: exit 2, one line each, nothing written"

refused "$LIB/libbr2k_testapp_openfail.so" 1 \
    "error: cannot open application 'testapp': openfail: cannot open the ledger"
[ "$(grep -c ' error: ' "$T/bad.err")" -eq 1 ] || fail "not one error line: $(cat "$T/bad.err")"
[ "$(rc_ EXISTS "br2k:{$SVC}:leader")" = 0 ] || fail "a worker whose open failed took the lease"
[ "$(rc_ SISMEMBER "br2k:{$SVC}:members" bad)" = 0 ] || fail "a worker whose open failed is a member"
pass "open fails: exit 1, one error line with the plug-in's message, no lease, no membership"

# a well-behaved test plug-in: consistent
APP=$LIB/libbr2k_testapp_good.so
for w in g1 g2; do start_worker "$w"; done
last=$(produce 100 0 good)
wait_for 60 at "$last" g1 g2 || { show g1 g2; fail "good plug-in: replicas did not converge"; }
export BR2K_REDIS=$REDIS BR2K_KAFKA=$KAFKA BR2K_SERVICE=$SVC
"$BIN/br2k" verify --json --timeout-ms 20000 >"$T/verify.json" ||
    fail "verify of the good plug-in: $(cat "$T/verify.json")"
pass "good test plug-in on 2 workers: verify consistent at LPI $(jq .lpi "$T/verify.json")"
for w in g1 g2; do stop_worker "$w"; done

# a non-deterministic plug-in on a service of its own: caught by verify
SVC=nondet
TOPIC=br2k.$SVC.requests
export BR2K_SERVICE=$SVC
APP=$LIB/libbr2k_testapp_nondet.so
for w in n1 n2 n3; do start_worker "$w"; done
last=$(produce 50 0 nd)
reported() { # every worker published a digest at LPI $last
    local w
    for w in n1 n2 n3; do
        [ "$(metric $w lpi)" = "$last" ] && [ "$(metric $w digest_lpi)" = "$last" ] || return 1
    done
}
wait_for 60 reported || { show n1 n2 n3; fail "the nondet workers did not reach $last"; }
rc=0
"$BIN/br2k" verify --timeout-ms 5000 >"$T/verify.txt" 2>&1 || rc=$?
[ "$rc" -eq 1 ] || fail "verify of diverged replicas: exit $rc: $(cat "$T/verify.txt")"
grep -Eq "NOT consistent: 'n[123]' and 'n[123]' differ at LPI $last" "$T/verify.txt" ||
    fail "verify did not name the diverged replicas: $(cat "$T/verify.txt")"
"$BIN/br2k" verify --json --timeout-ms 5000 >"$T/verify.json" || true
jq -e '.consistent == false and (.reason | test("differ at LPI"))' "$T/verify.json" >/dev/null ||
    fail "verify --json: $(cat "$T/verify.json")"
pass "non-deterministic plug-in caught: $(grep 'NOT consistent' "$T/verify.txt")"
for w in n1 n2 n3; do stop_worker "$w"; done
