#!/usr/bin/env bash
# backuplog_ethcrypto.sh - the state-backup-log (common/backup/backuplog.h) and the
# npm package eth-crypto, live and both ways (ethcrypto_log.js):
#  - a service key pair from `br2k keygen` (file mode 0600, no overwrite);
#  - a full valid log encrypted by our C code decrypts with eth-crypto to
#    the same bytes (compact, sorted JSON), and its data key unwraps there;
#  - a log and a data key encrypted by eth-crypto decrypt with ours and the
#    log passes bk_blog_check;
#  - a wrong key or a tampered ciphertext is refused by both;
#  - on anvil: logs appended to the registry contract (ours, eth-crypto's,
#    and one to another key) are listed by `br2k backups` (the third as an
#    error, exit 1), and the on-chain bytes (`br2k registry log`) decrypt
#    with eth-crypto;
#  - `br2k backup now` against Redis alone: the request is set, a timeout
#    exits 1, and a rising SV (redis-cli playing backupd) ends it.
source "$(dirname "$0")/lib.sh"

[ -d "$SRC/node_modules/eth-crypto" ] || fail "node_modules/eth-crypto is missing (npm ci)"
ITEST=$BUILD/tests/itest_backuplog
[ -x "$ITEST" ] || fail "$ITEST is not built"
JS=$SRC/tests/integration/ethcrypto_log.js
BR2K=$BIN/br2k
unset BR2K_SERVICE_KEY BR2K_REGISTRY BR2K_ETH_RPC BR2K_JSON BR2K_OUT

# ---- keys ----
"$BR2K" keygen --out "$T/svc.key" >"$T/keygen.out" 2>"$T/keygen.log" ||
    fail "br2k keygen: $(cat "$T/keygen.log")"
PUB=$(awk '$1 == "public-key" {print $2}' "$T/keygen.out")
[[ "$PUB" =~ ^0x04[0-9a-f]{128}$ ]] || fail "keygen printed public key '$PUB'"
[ "$(stat -c %a "$T/svc.key")" = 600 ] || fail "key file mode $(stat -c %a "$T/svc.key")"
PRIV=$(tr -d ' \n' <"$T/svc.key")
[[ "$PRIV" =~ ^0x[0-9a-f]{64}$ ]] || fail "the key file does not hold 0x + 64 hex digits"
[ "$(node -e 'const EC=require(process.argv[1]);console.log("0x04"+EC.publicKeyByPrivateKey(process.argv[2]))' \
    "$SRC/node_modules/eth-crypto" "$PRIV")" = "$PUB" ] || fail "eth-crypto derives another public key"
if "$BR2K" keygen --out "$T/svc.key" >/dev/null 2>"$T/keygen2.log"; then
    fail "keygen overwrote an existing key file"
fi
grep -q "exists: refusing to overwrite it" "$T/keygen2.log" || fail "keygen: $(cat "$T/keygen2.log")"
[ "$(tr -d ' \n' <"$T/svc.key")" = "$PRIV" ] || fail "the key file changed"
"$BR2K" --json keygen --out "$T/other.key" >"$T/other.json" 2>/dev/null || fail "keygen 2"
OTHER_PUB=$(jq -r .public_key "$T/other.json")
pass "br2k keygen: $PUB (file mode 0600, not overwritten)"

# ---- ours -> eth-crypto ----
K1=00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff
"$ITEST" sample "$PUB" 2 "$K1" >"$T/log2.json" 2>"$T/sample.log" || fail "sample: $(cat "$T/sample.log")"
"$ITEST" check <"$T/log2.json" >/dev/null || fail "the sample log does not pass the check"
"$ITEST" encrypt "$PUB" <"$T/log2.json" >"$T/log2.ours.hex" || fail "our encrypt"
node "$JS" decrypt "$PRIV" "$T/log2.ours.hex" >"$T/log2.node.json" 2>"$T/node.log" ||
    fail "eth-crypto cannot decrypt our log: $(cat "$T/node.log")"
cmp -s "$T/log2.json" "$T/log2.node.json" || fail "eth-crypto decrypted other bytes"
[ "$(jq -S . "$T/log2.json")" = "$(jq -S . "$T/log2.node.json")" ] || fail "JSON differs"
pass "our log ($(wc -c <"$T/log2.json") bytes of JSON) -> eth-crypto: same text"
jq -r .state_data.data_key "$T/log2.node.json" >"$T/k1.ours.hex"
[ "$(node "$JS" unwrap "$PRIV" "$T/k1.ours.hex")" = "$K1" ] || fail "eth-crypto unwraps another data key"
pass "our wrapped data key -> eth-crypto: same key"

# ---- eth-crypto -> ours ----
node "$JS" encrypt "$PUB" "$T/log2.json" >"$T/log2.node.hex" || fail "eth-crypto encrypt"
"$ITEST" decrypt "$T/svc.key" <"$T/log2.node.hex" >"$T/log2.back.json" 2>"$T/ours.log" ||
    fail "we cannot decrypt eth-crypto's log: $(cat "$T/ours.log")"
cmp -s "$T/log2.json" "$T/log2.back.json" || fail "we decrypted another log"
BR2K_SERVICE_KEY=$PRIV "$ITEST" decrypt "" <"$T/log2.node.hex" >/dev/null ||
    fail "decrypt with BR2K_SERVICE_KEY"
pass "eth-crypto's log -> ours: decrypts and passes bk_blog_check"
K2=ffeeddccbbaa99887766554433221100ffeeddccbbaa99887766554433221100
node "$JS" wrap "$PUB" "$K2" >"$T/k2.node.hex" || fail "eth-crypto wrap"
[ "$("$ITEST" unwrap "$T/svc.key" <"$T/k2.node.hex")" = "$K2" ] || fail "we unwrap another key"
"$ITEST" wrap "$PUB" "$K2" >"$T/k2.ours.hex" || fail "our wrap"
[ "$(node "$JS" unwrap "$PRIV" "$T/k2.ours.hex")" = "$K2" ] || fail "eth-crypto unwraps another key"
pass "data keys: eth-crypto's unwrap with ours, ours with eth-crypto"

# ---- refusals ----
if "$ITEST" decrypt "$T/other.key" <"$T/log2.ours.hex" >/dev/null 2>"$T/wrong.log"; then
    fail "we decrypted with the wrong key"
fi
grep -q "backup log: cannot decrypt: bad mac (wrong service key or tampered log)" "$T/wrong.log" ||
    fail "wrong key: $(cat "$T/wrong.log")"
h=$(cat "$T/log2.ours.hex")
mid=$((${#h} / 2))
if [ "${h:mid:1}" = 0 ]; then new=1; else new=0; fi
printf '%s%s%s\n' "${h:0:mid}" "$new" "${h:mid+1}" >"$T/bad.hex"
if "$ITEST" decrypt "$T/svc.key" <"$T/bad.hex" >/dev/null 2>"$T/bad.log"; then
    fail "we decrypted a tampered log"
fi
grep -q "bad mac (wrong service key or tampered log)" "$T/bad.log" || fail "tampered: $(cat "$T/bad.log")"
if node "$JS" decrypt "$PRIV" "$T/bad.hex" >/dev/null 2>"$T/bad.node.log"; then
    fail "eth-crypto decrypted a tampered log"
fi
grep -q "Bad MAC" "$T/bad.node.log" || fail "eth-crypto: $(cat "$T/bad.node.log")"
pass "a wrong key and a tampered log are refused by both"

# ---- on chain: br2k backups ----
start_anvil
OWNER_KEY=0xac0974bec39a17e36ba4a6b4d238ff944bacb478cbed5efcae784d7bf4f2ff80
REG=$(BR2K_ETH_KEY=$OWNER_KEY "$BR2K" --eth-rpc "$ETH_RPC" registry deploy 2>"$T/deploy.log") ||
    fail "br2k registry deploy: $(cat "$T/deploy.log")"
append() { # VERSION HEXFILE LOGJSON
    "$CAST" send --rpc-url "$ETH_RPC" --private-key "$OWNER_KEY" --json "$REG" \
        'appendBackupLog(uint64,bytes32,bytes)' "$1" "0x$(jq -r .state_data.sha256 "$3")" \
        "0x$(tr -d '\n' <"$2")" >"$T/receipt.json" 2>"$T/cast.log" || fail "cast send: $(cat "$T/cast.log")"
    [ "$(jq -r .status "$T/receipt.json")" = "0x1" ] || fail "appendBackupLog $1: status is not 1"
}
# before any backup
"$BR2K" --eth-rpc "$ETH_RPC" --registry "$REG" backups --service-key "$T/svc.key" >"$T/b0.out" ||
    fail "backups with none: $(cat "$T/b0.out")"
grep -q "no backup yet" "$T/b0.out" || fail "backups with none: $(cat "$T/b0.out")"
# v2: ours; v3: eth-crypto's; v4: ours, to another key
append 2 "$T/log2.ours.hex" "$T/log2.json"
"$ITEST" sample "$PUB" 3 "$K2" >"$T/log3.json"
node "$JS" encrypt "$PUB" "$T/log3.json" >"$T/log3.node.hex" || fail "eth-crypto encrypt v3"
append 3 "$T/log3.node.hex" "$T/log3.json"
"$ITEST" sample "$OTHER_PUB" 4 "$K1" >"$T/log4.json"
"$ITEST" encrypt "$OTHER_PUB" <"$T/log4.json" >"$T/log4.hex"
append 4 "$T/log4.hex" "$T/log4.json"

set +e
BR2K_SERVICE_KEY=$PRIV "$BR2K" --eth-rpc "$ETH_RPC" --registry "$REG" backups --json \
    >"$T/backups.json" 2>"$T/backups.log"
rc=$?
"$BR2K" --eth-rpc "$ETH_RPC" --registry "$REG" backups --service-key "$T/svc.key" \
    >"$T/backups.txt" 2>>"$T/backups.log"
rc2=$?
set -e
[ "$rc" = 1 ] && [ "$rc2" = 1 ] || fail "backups: exit $rc/$rc2 (want 1: v4 does not decrypt): $(cat "$T/backups.log")"
[ "$(jq length "$T/backups.json")" = 3 ] || fail "backups --json: $(cat "$T/backups.json")"
[ "$(jq -S '.[0].log' "$T/backups.json")" = "$(jq -S . "$T/log2.json")" ] || fail "v2's log differs"
[ "$(jq -S '.[1].log' "$T/backups.json")" = "$(jq -S . "$T/log3.json")" ] || fail "v3's log differs"
[ "$(jq -r '.[1].digest' "$T/backups.json")" = "0x$(jq -r .state_data.sha256 "$T/log3.json")" ] ||
    fail "v3's digest"
[ "$(jq -r '.[1].block | type' "$T/backups.json")" = number ] || fail "v3's block"
jq -r '.[2].error' "$T/backups.json" |
    grep -q "^backup log of version 4: cannot decrypt: bad mac (wrong service key or tampered log)$" ||
    fail "v4: $(jq -c '.[2]' "$T/backups.json")"
grep -q "^2 .*2026-11-24T13:22:01.123Z .* w1 .* 3 .* 1999 .*2/3 .*v00000002-state-" "$T/backups.txt" ||
    fail "backups table: $(cat "$T/backups.txt")"
grep -q "^4 .*ERROR: backup log of version 4: cannot decrypt: bad mac" "$T/backups.txt" ||
    fail "backups table, v4: $(cat "$T/backups.txt")"
pass "br2k backups: v2 (ours) and v3 (eth-crypto's) decrypted, v4 shown with its error, exit 1"
cat "$T/backups.txt"

# the on-chain bytes, as any Ethereum tool reads them, decrypt with eth-crypto
"$BR2K" --eth-rpc "$ETH_RPC" registry log --registry "$REG" --backup-version 2 --json \
    >"$T/onchain.json" || fail "br2k registry log"
jq -r .log "$T/onchain.json" >"$T/onchain.hex"
node "$JS" decrypt "$PRIV" "$T/onchain.hex" >"$T/onchain.log.json" || fail "eth-crypto: on-chain log"
cmp -s "$T/onchain.log.json" "$T/log2.json" || fail "the on-chain log decrypts to another text"
pass "the on-chain log of v2 decrypts with eth-crypto"

# ---- br2k backup now (Redis only; redis-cli plays br2k-backupd) ----
start_redis
rcli() { redis-cli -p "$REDIS_PORT" "$@"; }
requested() { [ -n "$(rcli GET 'br2k:{default}:backup-now')" ]; }
rcli SET 'br2k:{default}:Service-State' 4 >/dev/null
set +e
"$BR2K" --redis "$REDIS" backup now --wait 1 >"$T/now1.out" 2>"$T/now1.log"
rc=$?
set -e
[ "$rc" = 1 ] || fail "backup now without backupd: exit $rc"
grep -q "no backup finished within 1 s (is br2k-backupd running? see its log)" "$T/now1.log" ||
    fail "backup now: $(cat "$T/now1.log")"
requested || fail "backup now did not set backup-now"
pass "br2k backup now without backupd: request set, timeout after 1 s, exit 1"
rcli DEL 'br2k:{default}:backup-now' >/dev/null
"$BR2K" --redis "$REDIS" backup now --wait 20 >"$T/now2.out" 2>"$T/now2.log" &
NOW_PID=$!
PIDS+=("$NOW_PID")
wait_for 10 requested || fail "no backup-now request"
rcli MSET 'br2k:{default}:backup-last' '5 4999' 'br2k:{default}:Service-State' 5 >/dev/null
wait "$NOW_PID" || fail "backup now: exit $?: $(cat "$T/now2.log")"
[ "$(cat "$T/now2.out")" = "backup done: version 5 (cut offset 4999)" ] ||
    fail "backup now printed '$(cat "$T/now2.out")'"
"$BR2K" --redis "$REDIS" backup now --force --wait 0 >"$T/now3.out" || fail "backup now --force --wait 0"
grep -q "backup requested (state version now 5)" "$T/now3.out" || fail "$(cat "$T/now3.out")"
pass "br2k backup now: done when SV rises (version 5, cut 4999); --wait 0 only asks"
