/* keccak.h - Keccak-256 as Ethereum uses it (original Keccak padding 0x01,
 * not the FIPS-202 SHA3-256 padding 0x06). OpenSSL 3.0 has no Keccak-256.
 *
 * One-shot: bk_keccak256(data, len, out). Incremental: init, update any
 * number of times, final. The context holds no heap memory. */
#ifndef BK_KECCAK_H
#define BK_KECCAK_H

#include <stddef.h>
#include <stdint.h>

#define BK_KECCAK256_RATE 136 /* bytes absorbed per permutation */

typedef struct bk_keccak_ctx {
    uint64_t st[25];
    size_t pos; /* bytes absorbed into the current block */
} bk_keccak_ctx;

/* Start a Keccak-256 computation. */
void bk_keccak_init(bk_keccak_ctx *c);

/* Absorb len bytes (data may be NULL when len is 0). */
void bk_keccak_update(bk_keccak_ctx *c, const void *data, size_t len);

/* Finish and write the 32-byte digest; the context must be re-initialised
 * before reuse. */
void bk_keccak_final(bk_keccak_ctx *c, uint8_t out[32]);

/* Keccak-256 of data[len] into out[32]. */
void bk_keccak256(const void *data, size_t len, uint8_t out[32]);

#endif
