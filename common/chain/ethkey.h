/* ethkey.h - Ethereum keys on secp256k1 (libsecp256k1, recoverable ECDSA).
 *
 * A key is a 32-byte private scalar plus its 20-byte address (the last 20
 * bytes of keccak256 of the uncompressed public key without its 0x04 byte).
 * Signatures are 65 bytes r || s || v, low-s, v in {0, 1}; deterministic
 * (RFC 6979), so signing the same hash twice gives the same bytes, and the
 * same bytes as other Ethereum tools (cast, ethers).
 *
 * A private key never appears in a log line or an error message. */
#ifndef BK_ETHKEY_H
#define BK_ETHKEY_H

#include <stddef.h>
#include <stdint.h>

#include "base/err.h"

typedef struct bk_eth_key {
    uint8_t priv[32];
    uint8_t addr[20];
} bk_eth_key;

/* Parse a private key from 64 hex digits (optional 0x) and derive its
 * address. Returns BK_OK, or BK_ERR (BK_E_INVAL) when the text is not 32
 * bytes of hex or the scalar is zero or not below the curve order. */
int bk_eth_key_from_hex(const char *hex, bk_eth_key *k, bk_err *e);

/* Load a private key from the file path_or_empty (hex, surrounding
 * whitespace ignored) when it is a non-empty string, else from the
 * environment variable env_name. Returns BK_OK, or BK_ERR: BK_E_IO (file
 * unreadable), BK_E_NOTFOUND (neither a file nor the variable is set),
 * BK_E_INVAL (not a valid key). Messages name the file or variable, never
 * the key. */
int bk_eth_key_load(const char *path_or_empty, const char *env_name, bk_eth_key *k,
                    bk_err *e);

/* Wipe a key from memory (safe on NULL). */
void bk_eth_key_clear(bk_eth_key *k);

/* Sign a 32-byte hash: sig = r || s || v, v in {0, 1}, low-s. Returns BK_OK
 * or BK_ERR (invalid key). */
int bk_eth_sign_hash(const bk_eth_key *k, const uint8_t hash[32], uint8_t sig[65],
                     bk_err *e);

/* Recover the signer's address of sig (r || s || v, v in {0, 1, 27, 28})
 * over hash. Returns BK_OK, or BK_ERR (BK_E_INVAL) for a bad v, a high s, an
 * invalid r or s, or a signature that recovers no key. */
int bk_eth_recover(const uint8_t hash[32], const uint8_t sig[65], uint8_t addr[20],
                   bk_err *e);

/* EIP-191 personal-message hash: keccak256("\x19Ethereum Signed Message:\n"
 * + decimal len + msg). */
void bk_eth_personal_hash(const void *msg, size_t len, uint8_t hash[32]);

/* Sign msg as a personal message (EIP-191); v in {27, 28} as wallets and
 * `cast wallet sign` give it. Returns BK_OK or BK_ERR. */
int bk_eth_personal_sign(const bk_eth_key *k, const void *msg, size_t len,
                         uint8_t sig[65], bk_err *e);

/* Recover the address that signed msg as a personal message, from the
 * signature in hex (130 digits, optional 0x; as `cast wallet sign` prints
 * it, v = 27/28, or v = 0/1). Returns BK_OK or BK_ERR (BK_E_INVAL). */
int bk_eth_personal_recover(const void *msg, size_t len, const char *sig_hex,
                            uint8_t addr[20], bk_err *e);

/* Write the EIP-55 checksummed address "0x..." and a NUL into out[43]. */
void bk_eth_addr_hex(const uint8_t addr[20], char out[43]);

/* Parse an address: "0x" + 40 hex digits (the prefix is optional). All
 * lowercase or all uppercase digits are accepted as is; mixed case must be a
 * valid EIP-55 checksum. Returns BK_OK or BK_ERR (BK_E_INVAL). */
int bk_eth_addr_parse(const char *s, uint8_t addr[20], bk_err *e);

/* The uncompressed public key (0x04 || X || Y) of k. Returns BK_OK or
 * BK_ERR (invalid key). */
int bk_eth_pubkey(const bk_eth_key *k, uint8_t pub[65], bk_err *e);

/* The address of an uncompressed public key (0x04 || X || Y). */
void bk_eth_addr_from_pubkey(const uint8_t pub[65], uint8_t addr[20]);

#endif
