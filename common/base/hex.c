/* hex.c - hexadecimal encoding and strict decoding. */
#include "base/hex.h"

#include <stdlib.h>
#include <string.h>

static const char hex_digits[] = "0123456789abcdef";

int bk_hex_digit(int c) {
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

size_t bk_hex_encode(const void *data, size_t len, int prefix0x, char *out) {
    const uint8_t *p = data;
    size_t o = 0;
    if (prefix0x) {
        out[o++] = '0';
        out[o++] = 'x';
    }
    for (size_t i = 0; i < len; i++) {
        out[o++] = hex_digits[p[i] >> 4];
        out[o++] = hex_digits[p[i] & 15];
    }
    out[o] = '\0';
    return o;
}

char *bk_hex_encode_alloc(const void *data, size_t len, int prefix0x) {
    char *s = malloc(2 * len + 3);
    if (s == NULL)
        return NULL;
    bk_hex_encode(data, len, prefix0x, s);
    return s;
}

/* Skip a 0x prefix; adjusts *len. */
static const char *skip_prefix(const char *hex, size_t *len) {
    if (*len >= 2 && hex[0] == '0' && (hex[1] == 'x' || hex[1] == 'X')) {
        *len -= 2;
        return hex + 2;
    }
    return hex;
}

int bk_hex_decode_n(const char *hex, size_t len, uint8_t *out, size_t cap, size_t *outlen,
                    bk_err *e) {
    if (hex == NULL)
        return bk_err_set(e, BK_E_INVAL, "hex: missing input");
    hex = skip_prefix(hex, &len);
    if (len % 2 != 0)
        return bk_err_set(e, BK_E_INVAL, "hex: odd number of digits (%zu)", len);
    if (len / 2 > cap)
        return bk_err_set(e, BK_E_INVAL, "hex: %zu bytes, more than %zu", len / 2, cap);
    for (size_t i = 0; i < len / 2; i++) {
        int hi = bk_hex_digit((unsigned char)hex[2 * i]);
        int lo = bk_hex_digit((unsigned char)hex[2 * i + 1]);
        if (hi < 0 || lo < 0)
            return bk_err_set(e, BK_E_INVAL, "hex: bad digit at position %zu",
                              hi < 0 ? 2 * i : 2 * i + 1);
        out[i] = (uint8_t)(hi << 4 | lo);
    }
    if (outlen != NULL)
        *outlen = len / 2;
    return BK_OK;
}

int bk_hex_decode_exact(const char *hex, uint8_t *out, size_t n, bk_err *e) {
    if (hex == NULL)
        return bk_err_set(e, BK_E_INVAL, "hex: missing input");
    size_t len = strlen(hex);
    const char *h = skip_prefix(hex, &len);
    if (len != 2 * n)
        return bk_err_set(e, BK_E_INVAL,
                          "hex: want %zu bytes (%zu digits), got %zu digits", n, 2 * n,
                          len);
    return bk_hex_decode_n(h, len, out, n, NULL, e);
}

int bk_hex_decode_alloc(const char *hex, uint8_t **out, size_t *outlen, bk_err *e) {
    *out = NULL;
    *outlen = 0;
    if (hex == NULL)
        return bk_err_set(e, BK_E_INVAL, "hex: missing input");
    size_t len = strlen(hex);
    uint8_t *buf = malloc(len / 2 + 1);
    if (buf == NULL)
        return bk_err_set(e, BK_E_NOMEM, "hex: out of memory");
    if (bk_hex_decode_n(hex, len, buf, len / 2 + 1, outlen, e) != BK_OK) {
        free(buf);
        return BK_ERR;
    }
    *out = buf;
    return BK_OK;
}
