#!/usr/bin/env bash
# ecies_ethcrypto.sh - ECIES interoperability with the npm package
# eth-crypto, live and both ways: our ciphertext (common/backup/ecies.c through
# itest_ecies) decrypts with EthCrypto.decryptWithPrivateKey, and
# eth-crypto's (encryptWithPublicKey + cipher.stringify) decrypts with ours.
# A tampered ciphertext is refused by both.
source "$(dirname "$0")/lib.sh"

[ -d "$SRC/node_modules/eth-crypto" ] || fail "node_modules/eth-crypto is missing (npm ci)"
ITEST=$BUILD/tests/itest_ecies
[ -x "$ITEST" ] || fail "$ITEST is not built"
export ITEST_ECIES_KEY=59c6995e998f97a5a0044966f0945389dc9e86dae88c7a8412f4603b6b78690d
export EC_MOD=$SRC/node_modules/eth-crypto

# node helpers: encrypt / decrypt a file with eth-crypto
ec() {
    node -e '
const EC = require(process.env.EC_MOD);
const fs = require("fs");
const [op, inf, outf] = process.argv.slice(1);
const priv = process.env.ITEST_ECIES_KEY;
(async () => {
  if (op === "encrypt") {
    const c = await EC.encryptWithPublicKey(EC.publicKeyByPrivateKey("0x" + priv),
                                            fs.readFileSync(inf, "utf8"));
    fs.writeFileSync(outf, EC.cipher.stringify(c) + "\n");
  } else {
    const c = EC.cipher.parse(fs.readFileSync(inf, "utf8").trim());
    fs.writeFileSync(outf, await EC.decryptWithPrivateKey(priv, c));
  }
})().catch(e => { console.error(String(e)); process.exit(1); });
' "$@"
}

# messages: a state-backup-log-like JSON, UTF-8, an empty one, one of 16
# bytes (a whole block: one block of padding follows) and a long one
printf '{"version":2,"cut":12345,"subject":"w1","note":"ünïcode ✓"}' >"$T/m1"
: >"$T/m2"
printf '0123456789abcdef' >"$T/m3"
for i in $(seq 2000); do printf '{"k":%d,"v":"value-%d"},' "$i" "$i"; done >"$T/m4"

for m in m1 m2 m3 m4; do
    # ours -> eth-crypto
    "$ITEST" encrypt <"$T/$m" >"$T/$m.ours.hex" || fail "$m: our encrypt"
    ec decrypt "$T/$m.ours.hex" "$T/$m.ours.out" 2>"$T/$m.node.log" ||
        fail "$m: eth-crypto cannot decrypt our ciphertext: $(cat "$T/$m.node.log")"
    cmp -s "$T/$m" "$T/$m.ours.out" || fail "$m: eth-crypto decrypted other bytes"
    pass "$m ($(wc -c <"$T/$m") bytes): ours -> eth-crypto"
    # eth-crypto -> ours
    ec encrypt "$T/$m" "$T/$m.ec.hex" || fail "$m: eth-crypto encrypt"
    "$ITEST" decrypt <"$T/$m.ec.hex" >"$T/$m.ec.out" 2>"$T/$m.ours.log" ||
        fail "$m: we cannot decrypt eth-crypto's ciphertext: $(cat "$T/$m.ours.log")"
    cmp -s "$T/$m" "$T/$m.ec.out" || fail "$m: we decrypted other bytes"
    pass "$m: eth-crypto -> ours"
    # same length for the same plaintext: same format
    [ "$(wc -c <"$T/$m.ours.hex")" = "$(wc -c <"$T/$m.ec.hex")" ] ||
        fail "$m: ciphertext lengths differ"
done

# a tampered ciphertext (last hex digit of ours flipped): both refuse
h=$(cat "$T/m1.ours.hex")
last=${h: -1}
if [ "$last" = 0 ]; then new=1; else new=0; fi
printf '%s%s\n' "${h%?}" "$new" >"$T/bad.hex"
if ec decrypt "$T/bad.hex" "$T/bad.out" 2>"$T/bad.node.log"; then
    fail "eth-crypto accepted a tampered ciphertext"
fi
grep -q "Bad MAC" "$T/bad.node.log" || fail "eth-crypto: $(cat "$T/bad.node.log")"
pass "eth-crypto refuses our tampered ciphertext (Bad MAC)"
if "$ITEST" decrypt <"$T/bad.hex" >/dev/null 2>"$T/bad.ours.log"; then
    fail "we accepted a tampered ciphertext"
fi
grep -q "ecies: bad mac" "$T/bad.ours.log" || fail "ours: $(cat "$T/bad.ours.log")"
pass "we refuse it too: $(sed 's/^FAIL: decrypt: //' "$T/bad.ours.log")"
