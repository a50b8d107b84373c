#!/usr/bin/env node
// ethcrypto_log.js - a state-backup-log, or a data key, through the npm
// package eth-crypto (4.1.0, node_modules/eth-crypto): what any tool of the
// Ethereum ecosystem holding the service key does with BR2K's on-chain log.
//
//   node ethcrypto_log.js decrypt PRIVKEY_HEX CIPHER_HEX_FILE
//       decrypt (cipher.parse + decryptWithPrivateKey) and print the
//       plaintext: the log's JSON text
//   node ethcrypto_log.js encrypt PUBKEY_HEX JSON_FILE
//       parse the JSON, write it compact with sorted keys (as BR2K does),
//       encrypt (encryptWithPublicKey + cipher.stringify), print the hex
//   node ethcrypto_log.js wrap PUBKEY_HEX DATA_KEY_HEX
//       a data key wrapped as BR2K wraps it: the ECIES of its 64 lowercase
//       hex digits, as text; prints the hex
//   node ethcrypto_log.js unwrap PRIVKEY_HEX CIPHER_HEX_FILE
//       the reverse: print the 64 hex digits of the data key
//
// PRIVKEY_HEX: 64 hex digits, optional 0x. PUBKEY_HEX: the uncompressed key
// as `br2k keygen` prints it (0x04 + 128 hex digits; 04 and 0x optional).
// CIPHER_HEX_FILE: the hex (optional 0x, surrounding whitespace ignored), or
// "-" for stdin. Exit 1 with the error on stderr (eth-crypto's "Bad MAC" for
// a wrong key or a tampered ciphertext).
"use strict";

const fs = require("fs");
const path = require("path");

const MOD =
    process.env.EC_MOD || path.join(__dirname, "..", "..", "node_modules", "eth-crypto");
const EC = require(MOD);

function usage() {
    console.error(
        "usage: node ethcrypto_log.js decrypt|unwrap PRIVKEY_HEX CIPHER_HEX_FILE\n" +
            "       node ethcrypto_log.js encrypt PUBKEY_HEX JSON_FILE\n" +
            "       node ethcrypto_log.js wrap PUBKEY_HEX DATA_KEY_HEX");
    process.exit(2);
}

function readText(file) {
    return fs.readFileSync(file === "-" ? 0 : file, "utf8");
}

// eth-crypto wants the public key without 0x and without the 04 byte.
function pubForEthCrypto(pub) {
    let p = pub.trim().replace(/^0x/i, "");
    if (p.length === 130 && p.startsWith("04")) p = p.slice(2);
    if (!/^[0-9a-fA-F]{128}$/.test(p))
        throw new Error("public key: expected 0x04 and 128 hex digits");
    return p.toLowerCase();
}

function privForEthCrypto(priv) {
    const p = priv.trim().replace(/^0x/i, "");
    if (!/^[0-9a-fA-F]{64}$/.test(p)) throw new Error("private key: expected 64 hex digits");
    return "0x" + p.toLowerCase();
}

// JSON text with keys sorted at every depth, no whitespace: jansson's
// JSON_COMPACT | JSON_SORT_KEYS for the data of a log.
function canonical(v) {
    if (Array.isArray(v)) return "[" + v.map(canonical).join(",") + "]";
    if (v !== null && typeof v === "object")
        return (
            "{" +
            Object.keys(v)
                .sort()
                .map((k) => JSON.stringify(k) + ":" + canonical(v[k]))
                .join(",") +
            "}"
        );
    return JSON.stringify(v);
}

async function decrypt(priv, file) {
    const hex = readText(file).trim().replace(/^0x/i, "");
    const cipher = EC.cipher.parse(hex);
    return EC.decryptWithPrivateKey(privForEthCrypto(priv), cipher);
}

async function encrypt(pub, text) {
    const c = await EC.encryptWithPublicKey(pubForEthCrypto(pub), text);
    return EC.cipher.stringify(c);
}

(async () => {
    const [op, key, arg] = process.argv.slice(2);
    if (arg === undefined) usage();
    switch (op) {
        case "decrypt":
            process.stdout.write((await decrypt(key, arg)) + "\n");
            break;
        case "unwrap": {
            const k = await decrypt(key, arg);
            if (!/^[0-9a-f]{64}$/.test(k)) throw new Error("data key: not 64 hex digits");
            process.stdout.write(k + "\n");
            break;
        }
        case "encrypt":
            process.stdout.write(
                (await encrypt(key, canonical(JSON.parse(readText(arg))))) + "\n");
            break;
        case "wrap": {
            const k = arg.trim().replace(/^0x/i, "").toLowerCase();
            if (!/^[0-9a-f]{64}$/.test(k)) throw new Error("data key: expected 64 hex digits");
            process.stdout.write((await encrypt(key, k)) + "\n");
            break;
        }
        default:
            usage();
    }
})().catch((e) => {
    console.error(String(e && e.message ? e.message : e));
    process.exit(1);
});
