/* hex.h - hexadecimal encoding and strict decoding of byte strings.
 *
 * Decoders accept an optional "0x"/"0X" prefix, upper- or lowercase digits,
 * and nothing else: an odd number of digits, a non-hex character or a
 * length that does not match is an error (BK_E_INVAL). */
#ifndef BK_HEX_H
#define BK_HEX_H

#include <stddef.h>
#include <stdint.h>

#include "base/err.h"

/* Write 2*len lowercase hex digits and a NUL into out (size >= 2*len + 1
 * without prefix, 2*len + 3 with prefix0x != 0). Returns the number of
 * characters written (without the NUL). */
size_t bk_hex_encode(const void *data, size_t len, int prefix0x, char *out);

/* Like bk_hex_encode into a malloc'd string the caller frees; NULL when out
 * of memory. */
char *bk_hex_encode_alloc(const void *data, size_t len, int prefix0x);

/* Decode hex text (optional 0x) of exactly 2*n digits into out[n]. Returns
 * BK_OK, or BK_ERR when the text is not exactly n bytes of hex. */
int bk_hex_decode_exact(const char *hex, uint8_t *out, size_t n, bk_err *e);

/* Decode hex text (optional 0x) into a malloc'd buffer: *out (freed by the
 * caller; non-NULL even for empty input) and *outlen. Returns BK_OK or
 * BK_ERR (bad hex, out of memory); on error *out is NULL. */
int bk_hex_decode_alloc(const char *hex, uint8_t **out, size_t *outlen, bk_err *e);

/* Decode the first `len` characters of hex (optional 0x) into out (capacity
 * cap bytes). Sets *outlen. Returns BK_OK or BK_ERR (bad hex, too long). */
int bk_hex_decode_n(const char *hex, size_t len, uint8_t *out, size_t cap, size_t *outlen,
                    bk_err *e);

/* Value of one hex digit, or -1. */
int bk_hex_digit(int c);

#endif
