/* seal.h - the snapshot envelope (DESIGN.md I8): compressed, encrypted
 * under a fresh data key, addressed by the SHA-256 of the sealed bytes.
 *
 * bk_seal compresses the plaintext with zlib (deflate in the zlib format,
 * RFC 1950, level BK_SEAL_ZLEVEL) and encrypts the result with AES-256-GCM
 * under a fresh random 32-byte data key and a random 12-byte nonce. The
 * sealed object is a 64-byte header followed by the ciphertext:
 *
 *   off len  field
 *    0   8   magic "BR2KSEAL"
 *    8   1   format version, 1
 *    9   1   compression, 1 = zlib
 *   10   2   reserved, zero
 *   12   8   plaintext length, unsigned big-endian (before compression)
 *   20  12   AES-256-GCM nonce
 *   32  16   key check: HMAC-SHA256(data key, "BR2KSEAL key check v1"),
 *            first 16 bytes (tells a wrong key from a tampered object, and
 *            commits the object to one key)
 *   48  16   AES-256-GCM tag
 *   64   -   ciphertext (the zlib stream, encrypted)
 *
 * Bytes 0..48 (everything before the tag) are the GCM additional data, so
 * the header cannot be changed either. The object's address is the SHA-256
 * of all the sealed bytes, in lowercase hex: what `sha256sum` prints.
 *
 * The data key is secret (it goes, encrypted, into the state-backup-log);
 * never log it. */
#ifndef BK_SEAL_H
#define BK_SEAL_H

#include <stddef.h>
#include <stdint.h>

#include "base/err.h"

#define BK_SEAL_MAGIC "BR2KSEAL"
#define BK_SEAL_VERSION 1
#define BK_SEAL_HEADER_LEN 64
#define BK_SEAL_KEY_LEN 32
/* zlib level: 1 (fastest); state snapshots are large and taken often. */
#define BK_SEAL_ZLEVEL 1

/* Seal len bytes of plain (len may be 0; plain may then be NULL). On
 * success: key_out holds the fresh data key, *sealed a malloc'd buffer of
 * *sealed_len bytes that the caller frees, and sha256_hex the 64 lowercase
 * hex digits of SHA-256(sealed) and a NUL. Returns BK_OK, or BK_ERR:
 * BK_E_NOMEM, BK_E_IO (randomness, zlib or OpenSSL failed); then *sealed is
 * NULL, *sealed_len 0, and key_out wiped. */
int bk_seal(const void *plain, size_t len, uint8_t key_out[32], void **sealed,
            size_t *sealed_len, char sha256_hex[65], bk_err *e);

/* Check and open a sealed object. When expect_sha256_hex is not NULL, the
 * SHA-256 of the len bytes at sealed must equal it (64 hex digits, any
 * case) before anything else is looked at; pass NULL only when the digest
 * was checked already. On success *plain is a malloc'd buffer of
 * *plain_len bytes, followed by an extra NUL byte that *plain_len does not
 * count; the caller frees it. Returns BK_OK, or BK_ERR with BK_E_INVAL and
 * one of these messages (then *plain is NULL and *plain_len 0):
 *   "seal: expected digest '...' is not 64 hex digits"
 *   "seal: digest mismatch: object has sha256 <hex>, expected <hex>"
 *   "seal: truncated header (N bytes, need 64)"
 *   "seal: not a sealed object (bad magic)"
 *   "seal: unsupported format version N" / "...compression N" / reserved
 *   "seal: wrong key (key check does not match)"
 *   "seal: authentication tag mismatch (object corrupted or tampered)"
 *   "seal: cannot decompress: ..." (only with a valid tag: a bug or a
 *   sealed object from a broken sealer)
 * or BK_E_NOMEM, BK_E_IO (OpenSSL failed). */
int bk_unseal(const uint8_t key[32], const void *sealed, size_t len,
              const char *expect_sha256_hex, void **plain, size_t *plain_len, bk_err *e);

/* bk_unseal, and the time it spent in each step (stats may be NULL). */
typedef struct bk_unseal_stats {
    double verify_ms;     /* SHA-256 of the sealed bytes */
    double decrypt_ms;    /* AES-256-GCM, with its tag check */
    double decompress_ms; /* zlib */
} bk_unseal_stats;
int bk_unseal_ex(const uint8_t key[32], const void *sealed, size_t len,
                 const char *expect_sha256_hex, void **plain, size_t *plain_len,
                 bk_unseal_stats *stats, bk_err *e);

/* The same check and open, streamed: the sealed bytes are fed in pieces
 * of any size as they are read (bk_unsealer_feed), each piece hashed,
 * decrypted and inflated at once into the one output buffer (the
 * header's plaintext length), with no whole copy of the sealed or the
 * compressed bytes. Nothing comes out before bk_unsealer_finish has
 * checked, in bk_unseal's order, the SHA-256 of all the bytes against
 * expect_sha256_hex (NULL: the caller checked it), the header, the key
 * check, the AES-GCM tag over everything decrypted, and then the zlib
 * stream (complete, of exactly the header's length, no trailing data);
 * it returns the same errors as bk_unseal for the same object. A problem
 * seen while streaming (a bad header, a broken zlib stream) is held back
 * until those checks that come before it have been made.
 *   bk_unsealer_new: BK_E_INVAL (a malformed expected digest), BK_E_NOMEM.
 *   bk_unsealer_feed: BK_ERR only when OpenSSL fails (BK_E_IO).
 *   bk_unsealer_finish: *plain (malloc'd, *plain_len bytes and a NUL),
 *   stats (may be NULL) the time in each step so far. Then free it. */
typedef struct bk_unsealer bk_unsealer;
int bk_unsealer_new(const uint8_t key[32], const char *expect_sha256_hex, bk_unsealer **u,
                    bk_err *e);
int bk_unsealer_feed(bk_unsealer *u, const void *data, size_t n, bk_err *e);
int bk_unsealer_finish(bk_unsealer *u, void **plain, size_t *plain_len,
                       bk_unseal_stats *stats, bk_err *e);
void bk_unsealer_free(bk_unsealer *u); /* NULL is fine; wipes the key and plaintext */

/* SHA-256 of len bytes as 64 lowercase hex digits and a NUL (the object
 * address). Returns BK_OK or BK_ERR (BK_E_IO: OpenSSL failed). */
int bk_sha256_hex(const void *data, size_t len, char out[65], bk_err *e);

#endif
