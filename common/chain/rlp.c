/* rlp.c - RLP encoder and strict decoder. */
#include "chain/rlp.h"

#include <stdlib.h>
#include <string.h>

void bk_rlp_enc_init(bk_rlp_enc *r) {
    memset(r, 0, sizeof *r);
}

void bk_rlp_enc_release(bk_rlp_enc *r) {
    free(r->buf);
    r->buf = NULL;
    r->len = r->cap = 0;
    r->depth = 0;
}

/* Make room for n more bytes; on failure mark the encoder failed. */
static int reserve(bk_rlp_enc *r, size_t n) {
    if (r->failed)
        return 0;
    if (r->len + n <= r->cap)
        return 1;
    size_t cap = r->cap ? r->cap : 64;
    while (cap < r->len + n)
        cap *= 2;
    uint8_t *p = realloc(r->buf, cap);
    if (p == NULL) {
        r->failed = 1;
        return 0;
    }
    r->buf = p;
    r->cap = cap;
    return 1;
}

/* Big-endian bytes of n without leading zeros into be[8]; returns count. */
static size_t be_len(uint64_t n, uint8_t be[8]) {
    size_t k = 0;
    for (int i = 7; i >= 0; i--) {
        uint8_t b = (uint8_t)(n >> (8 * i));
        if (k > 0 || b != 0)
            be[k++] = b;
    }
    return k;
}

/* Write a header (offset 0x80 for strings, 0xc0 for lists) into h; returns
 * its length (1 to 9). */
static size_t header(uint8_t offset, size_t len, uint8_t h[9]) {
    if (len < 56) {
        h[0] = (uint8_t)(offset + len);
        return 1;
    }
    uint8_t be[8];
    size_t k = be_len(len, be);
    h[0] = (uint8_t)(offset + 55 + k);
    memcpy(h + 1, be, k);
    return 1 + k;
}

void bk_rlp_put_bytes(bk_rlp_enc *r, const void *data, size_t len) {
    const uint8_t *p = data;
    if (len == 1 && p[0] < 0x80) {
        if (reserve(r, 1))
            r->buf[r->len++] = p[0];
        return;
    }
    uint8_t h[9];
    size_t hl = header(0x80, len, h);
    if (!reserve(r, hl + len))
        return;
    memcpy(r->buf + r->len, h, hl);
    if (len > 0)
        memcpy(r->buf + r->len + hl, p, len);
    r->len += hl + len;
}

void bk_rlp_put_str(bk_rlp_enc *r, const char *s) {
    bk_rlp_put_bytes(r, s, strlen(s));
}

void bk_rlp_put_uint(bk_rlp_enc *r, uint64_t v) {
    uint8_t be[8];
    size_t k = be_len(v, be);
    bk_rlp_put_bytes(r, be, k);
}

void bk_rlp_put_uint_be(bk_rlp_enc *r, const uint8_t *be, size_t len) {
    while (len > 0 && be[0] == 0) {
        be++;
        len--;
    }
    bk_rlp_put_bytes(r, be, len);
}

void bk_rlp_put_raw(bk_rlp_enc *r, const void *rlp, size_t len) {
    if (len > 0 && reserve(r, len)) {
        memcpy(r->buf + r->len, rlp, len);
        r->len += len;
    }
}

void bk_rlp_list_begin(bk_rlp_enc *r) {
    if (r->depth >= BK_RLP_MAX_DEPTH) {
        r->failed = 1;
        return;
    }
    r->open[r->depth++] = r->len;
}

void bk_rlp_list_end(bk_rlp_enc *r) {
    if (r->depth <= 0) {
        r->failed = 1;
        return;
    }
    size_t start = r->open[--r->depth];
    if (r->failed)
        return;
    size_t plen = r->len - start;
    uint8_t h[9];
    size_t hl = header(0xc0, plen, h);
    if (!reserve(r, hl))
        return;
    memmove(r->buf + start + hl, r->buf + start, plen);
    memcpy(r->buf + start, h, hl);
    r->len += hl;
}

int bk_rlp_enc_finish(bk_rlp_enc *r, uint8_t **out, size_t *len, bk_err *e) {
    *out = NULL;
    *len = 0;
    if (r->failed || r->depth != 0) {
        int oom = r->failed && r->depth == 0;
        bk_rlp_enc_release(r);
        r->failed = 0;
        return oom ? bk_err_set(e, BK_E_NOMEM, "rlp: out of memory")
                   : bk_err_set(e, BK_E_INVAL, "rlp: unbalanced or too deep lists");
    }
    if (r->buf == NULL && !reserve(r, 1))
        return bk_err_set(e, BK_E_NOMEM, "rlp: out of memory");
    *out = r->buf;
    *len = r->len;
    r->buf = NULL;
    bk_rlp_enc_release(r);
    return BK_OK;
}

int bk_rlp_decode(const uint8_t *in, size_t inlen, bk_rlp_item *it, size_t *used,
                  bk_err *e) {
    if (inlen == 0)
        return bk_err_set(e, BK_E_PROTO, "rlp: empty input");
    uint8_t b = in[0];
    size_t hl, plen;
    if (b < 0x80) {
        it->is_list = 0;
        it->payload = in;
        it->len = 1;
        if (used != NULL)
            *used = 1;
        return BK_OK;
    }
    it->is_list = b >= 0xc0;
    uint8_t base = it->is_list ? 0xc0 : 0x80;
    if (b - base < 56) {
        hl = 1;
        plen = (size_t)(b - base);
    } else {
        size_t k = (size_t)(b - base - 55);
        if (inlen < 1 + k)
            return bk_err_set(e, BK_E_PROTO, "rlp: truncated length");
        if (in[1] == 0)
            return bk_err_set(e, BK_E_PROTO, "rlp: length with leading zero");
        if (k > sizeof(size_t))
            return bk_err_set(e, BK_E_PROTO, "rlp: length too large");
        plen = 0;
        for (size_t i = 0; i < k; i++)
            plen = plen << 8 | in[1 + i];
        if (plen < 56)
            return bk_err_set(e, BK_E_PROTO, "rlp: long form for a short length (%zu)",
                              plen);
        hl = 1 + k;
    }
    if (plen > inlen - hl)
        return bk_err_set(e, BK_E_PROTO, "rlp: truncated: need %zu bytes, have %zu", plen,
                          inlen - hl);
    if (!it->is_list && plen == 1 && in[hl] < 0x80)
        return bk_err_set(e, BK_E_PROTO, "rlp: single byte 0x%02x given a length prefix",
                          in[hl]);
    it->payload = in + hl;
    it->len = plen;
    if (used != NULL)
        *used = hl + plen;
    return BK_OK;
}

int bk_rlp_decode_all(const uint8_t *in, size_t inlen, bk_rlp_item *it, bk_err *e) {
    size_t used = 0;
    if (bk_rlp_decode(in, inlen, it, &used, e) != BK_OK)
        return BK_ERR;
    if (used != inlen)
        return bk_err_set(e, BK_E_PROTO, "rlp: %zu trailing bytes", inlen - used);
    return BK_OK;
}

int bk_rlp_list(const bk_rlp_item *list, bk_rlp_item *items, size_t max, size_t *n,
                bk_err *e) {
    *n = 0;
    if (!list->is_list)
        return bk_err_set(e, BK_E_PROTO, "rlp: expected a list, got a string");
    size_t off = 0;
    while (off < list->len) {
        if (*n >= max)
            return bk_err_set(e, BK_E_PROTO, "rlp: list has more than %zu items", max);
        size_t used = 0;
        if (bk_rlp_decode(list->payload + off, list->len - off, &items[*n], &used, e) !=
            BK_OK)
            return bk_err_prefix(e, "item %zu", *n);
        off += used;
        (*n)++;
    }
    return BK_OK;
}

static int check_uint(const bk_rlp_item *it, size_t maxlen, bk_err *e) {
    if (it->is_list)
        return bk_err_set(e, BK_E_PROTO, "rlp: expected an integer, got a list");
    if (it->len > maxlen)
        return bk_err_set(e, BK_E_PROTO, "rlp: integer of %zu bytes, more than %zu",
                          it->len, maxlen);
    if (it->len > 0 && it->payload[0] == 0)
        return bk_err_set(e, BK_E_PROTO, "rlp: integer with leading zero");
    return BK_OK;
}

int bk_rlp_uint64(const bk_rlp_item *it, uint64_t *v, bk_err *e) {
    if (check_uint(it, 8, e) != BK_OK)
        return BK_ERR;
    *v = 0;
    for (size_t i = 0; i < it->len; i++)
        *v = *v << 8 | it->payload[i];
    return BK_OK;
}

int bk_rlp_uint256(const bk_rlp_item *it, uint8_t out[32], bk_err *e) {
    if (check_uint(it, 32, e) != BK_OK)
        return BK_ERR;
    memset(out, 0, 32);
    if (it->len > 0)
        memcpy(out + 32 - it->len, it->payload, it->len);
    return BK_OK;
}
