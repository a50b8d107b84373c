/* ecies.h - ECIES on secp256k1, in the format of the npm package eth-crypto.
 *
 * Byte for byte what eth-crypto 4.x `encryptWithPublicKey` computes and
 * `cipher.stringify` serialises, so that any tool of that ecosystem holding
 * the private key reads our ciphertexts, and we read theirs
 * (`decryptWithPrivateKey` of a `cipher.parse`d string):
 *
 *   ephemeral key pair (r, R = rG), R uncompressed (65 bytes, 0x04 || X || Y)
 *   S        = x coordinate of r * PUB (32 bytes, no hashing: raw ECDH x)
 *   H        = SHA-512(S); enc_key = H[0..32), mac_key = H[32..64)
 *   iv       = 16 random bytes
 *   ct       = AES-256-CBC(enc_key, iv, msg) with PKCS#7 padding
 *   mac      = HMAC-SHA256(mac_key, iv || R (65 bytes, uncompressed) || ct)
 *   output   = lowercase hex of iv (16) || R compressed (33) || mac (32) || ct
 *
 * No "0x" prefix is written; one is accepted when decrypting. eth-crypto
 * takes and returns text (UTF-8): our API takes bytes, so a message that is
 * meant for eth-crypto should be UTF-8 text (JSON, say). */
#ifndef BK_ECIES_H
#define BK_ECIES_H

#include <stddef.h>
#include <stdint.h>

#include "base/err.h"
#include "chain/ethkey.h"

/* The smallest ciphertext: iv, compressed key, mac and one AES block. */
#define BK_ECIES_MIN_BYTES (16 + 33 + 32 + 16)

/* Encrypt len bytes of msg (len may be 0) to the uncompressed public key pub
 * (0x04 || X || Y). On success *hex_out is a malloc'd, NUL-terminated,
 * lowercase hex string as eth-crypto's cipher.stringify gives it; the
 * caller frees it. Returns BK_OK, or BK_ERR: BK_E_INVAL (pub is not a point
 * of the curve), BK_E_NOMEM, BK_E_IO (randomness or OpenSSL failed); then
 * *hex_out is NULL. */
int bk_ecies_encrypt(const uint8_t pub[65], const void *msg, size_t len, char **hex_out,
                     bk_err *e);

/* Decrypt a ciphertext in cipher.stringify's hex form (optional "0x") with
 * the private key k. On success *msg is a malloc'd buffer of *len bytes,
 * followed by an extra NUL byte that *len does not count (so text can be
 * used as a C string); the caller frees it. Returns BK_OK, or BK_ERR:
 * BK_E_INVAL for text that is not hex, too short, not whole AES blocks, or
 * whose ephemeral key is not a point; "ecies: bad mac" (BK_E_INVAL) when
 * the authentication code does not match: a wrong key or tampered bytes;
 * BK_E_NOMEM. Then *msg is NULL and *len 0. */
int bk_ecies_decrypt(const bk_eth_key *k, const char *hex, void **msg, size_t *len,
                     bk_err *e);

#endif
