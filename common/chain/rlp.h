/* rlp.h - Recursive Length Prefix encoding (Ethereum yellow paper, app. B).
 *
 * Encoder: a growable buffer; put byte strings and integers, open and close
 * lists (nested up to BK_RLP_MAX_DEPTH), then take the bytes. An allocation
 * failure is remembered and reported once, by bk_rlp_enc_finish.
 *
 * Decoder: pure functions over a caller's buffer; items point into it (no
 * copies, no allocation). It is strict: truncated input, trailing bytes,
 * and every non-canonical form (a single byte below 0x80 given a length
 * prefix, a long form for a length below 56, a length with leading zeros,
 * an integer with leading zeros) are errors (BK_E_PROTO). */
#ifndef BK_RLP_H
#define BK_RLP_H

#include <stddef.h>
#include <stdint.h>

#include "base/err.h"

#define BK_RLP_MAX_DEPTH 16

typedef struct bk_rlp_enc {
    uint8_t *buf;
    size_t len, cap;
    size_t open[BK_RLP_MAX_DEPTH]; /* payload start of each open list */
    int depth;
    int failed; /* an allocation failed or lists were unbalanced */
} bk_rlp_enc;

/* Start an empty encoder (no allocation yet). */
void bk_rlp_enc_init(bk_rlp_enc *r);

/* Free the encoder's buffer (safe to call twice). */
void bk_rlp_enc_release(bk_rlp_enc *r);

/* Append a byte string. */
void bk_rlp_put_bytes(bk_rlp_enc *r, const void *data, size_t len);

/* Append a NUL-terminated string as a byte string. */
void bk_rlp_put_str(bk_rlp_enc *r, const char *s);

/* Append an unsigned integer: minimal big-endian, 0 is the empty string. */
void bk_rlp_put_uint(bk_rlp_enc *r, uint64_t v);

/* Append a big-endian unsigned integer of any width (e.g. a uint256):
 * leading zero bytes are dropped. */
void bk_rlp_put_uint_be(bk_rlp_enc *r, const uint8_t *be, size_t len);

/* Append already-encoded RLP bytes as they are (one or more items). */
void bk_rlp_put_raw(bk_rlp_enc *r, const void *rlp, size_t len);

/* Open a list; items appended until the matching bk_rlp_list_end are its
 * elements. */
void bk_rlp_list_begin(bk_rlp_enc *r);

/* Close the innermost open list. */
void bk_rlp_list_end(bk_rlp_enc *r);

/* Hand over the encoding: *out (malloc'd, the caller frees; non-NULL even
 * when empty) and *len. Returns BK_OK, or BK_ERR when an allocation failed
 * or a list is still open or was closed twice. The encoder is released
 * either way. */
int bk_rlp_enc_finish(bk_rlp_enc *r, uint8_t **out, size_t *len, bk_err *e);

/* A decoded item: a byte string or a list, pointing into the input. */
typedef struct bk_rlp_item {
    int is_list;
    const uint8_t *payload; /* the string's bytes, or the list's encoded items */
    size_t len;             /* payload length */
} bk_rlp_item;

/* Decode the first item of in[inlen]; *used (if not NULL) gets the bytes it
 * takes, header included. Returns BK_OK or BK_ERR (truncated, non-canonical). */
int bk_rlp_decode(const uint8_t *in, size_t inlen, bk_rlp_item *it, size_t *used,
                  bk_err *e);

/* Decode in[inlen] as exactly one item (trailing bytes are an error). */
int bk_rlp_decode_all(const uint8_t *in, size_t inlen, bk_rlp_item *it, bk_err *e);

/* Split a list item into its elements: up to max items into items[], count
 * in *n. Returns BK_OK, or BK_ERR when it is not a list, an element is bad,
 * or it has more than max elements. */
int bk_rlp_list(const bk_rlp_item *list, bk_rlp_item *items, size_t max, size_t *n,
                bk_err *e);

/* A string item as an unsigned integer of at most 8 bytes, canonical (no
 * leading zero byte). Returns BK_OK or BK_ERR. */
int bk_rlp_uint64(const bk_rlp_item *it, uint64_t *v, bk_err *e);

/* A string item as an unsigned integer of at most 32 bytes, canonical, into
 * a 32-byte big-endian buffer. Returns BK_OK or BK_ERR. */
int bk_rlp_uint256(const bk_rlp_item *it, uint8_t out[32], bk_err *e);

#endif
