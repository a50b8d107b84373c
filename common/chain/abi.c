/* abi.c - Solidity ABI codec for static types, bytes and string. */
#include "chain/abi.h"

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "chain/ethkey.h"
#include "base/hex.h"
#include "chain/keccak.h"

#define CANON_MAX 512

void bk_abi_selector(const char *signature, uint8_t sel[4]) {
    uint8_t h[32];
    bk_keccak256(signature, strlen(signature), h);
    memcpy(sel, h, 4);
}

/* ---- type parsing ---- */

/* Parse a decimal size suffix in s[len]; -1 if not all digits or empty. */
static int parse_size(const char *s, size_t len) {
    if (len == 0 || len > 3)
        return -1;
    int v = 0;
    for (size_t i = 0; i < len; i++) {
        if (!isdigit((unsigned char)s[i]))
            return -1;
        v = v * 10 + (s[i] - '0');
    }
    if (s[0] == '0')
        return -1;
    return v;
}

/* Parse one type name t[len] (no spaces). */
static int parse_one(const char *t, size_t len, bk_abi_type *ty, bk_err *e) {
    ty->size = 0;
    if (len == 4 && memcmp(t, "bool", 4) == 0) {
        ty->kind = BK_ABI_BOOL;
    } else if (len == 7 && memcmp(t, "address", 7) == 0) {
        ty->kind = BK_ABI_ADDRESS;
    } else if (len == 6 && memcmp(t, "string", 6) == 0) {
        ty->kind = BK_ABI_STRING;
    } else if (len == 5 && memcmp(t, "bytes", 5) == 0) {
        ty->kind = BK_ABI_BYTES;
    } else if (len > 5 && memcmp(t, "bytes", 5) == 0) {
        ty->kind = BK_ABI_FIXED_BYTES;
        ty->size = parse_size(t + 5, len - 5);
        if (ty->size < 1 || ty->size > 32)
            return bk_err_set(e, BK_E_INVAL, "abi: bad type '%.*s'", (int)len, t);
    } else if (len > 4 && memcmp(t, "uint", 4) == 0) {
        ty->kind = BK_ABI_UINT;
        ty->size = parse_size(t + 4, len - 4);
    } else if (len > 3 && memcmp(t, "int", 3) == 0) {
        ty->kind = BK_ABI_INT;
        ty->size = parse_size(t + 3, len - 3);
    } else {
        return bk_err_set(e, BK_E_INVAL, "abi: unsupported type '%.*s'", (int)len, t);
    }
    if ((ty->kind == BK_ABI_UINT || ty->kind == BK_ABI_INT) &&
        (ty->size < 8 || ty->size > 256 || ty->size % 8 != 0))
        return bk_err_set(e, BK_E_INVAL, "abi: bad type '%.*s'", (int)len, t);
    return BK_OK;
}

static const char *kind_name(const bk_abi_type *t, char *buf, size_t size) {
    switch (t->kind) {
    case BK_ABI_UINT:
        snprintf(buf, size, "uint%d", t->size);
        return buf;
    case BK_ABI_INT:
        snprintf(buf, size, "int%d", t->size);
        return buf;
    case BK_ABI_BOOL:
        return "bool";
    case BK_ABI_ADDRESS:
        return "address";
    case BK_ABI_FIXED_BYTES:
        snprintf(buf, size, "bytes%d", t->size);
        return buf;
    case BK_ABI_BYTES:
        return "bytes";
    case BK_ABI_STRING:
        return "string";
    }
    return "?";
}

int bk_abi_parse_types(const char *list, bk_abi_type *types, size_t max, size_t *n,
                       bk_err *e) {
    *n = 0;
    const char *p = list;
    while (isspace((unsigned char)*p))
        p++;
    if (*p == '\0')
        return BK_OK;
    for (;;) {
        while (isspace((unsigned char)*p))
            p++;
        const char *t = p;
        while (*p != '\0' && *p != ',' && !isspace((unsigned char)*p))
            p++;
        size_t tlen = (size_t)(p - t);
        if (tlen == 0)
            return bk_err_set(e, BK_E_INVAL, "abi: empty type in '%s'", list);
        if (*n >= max)
            return bk_err_set(e, BK_E_INVAL, "abi: more than %zu types in '%s'", max,
                              list);
        bk_abi_type *ty = &types[*n];
        if (parse_one(t, tlen, ty, e) != BK_OK)
            return BK_ERR;
        ty->indexed = 0;
        while (isspace((unsigned char)*p))
            p++;
        if (strncmp(p, "indexed", 7) == 0) {
            ty->indexed = 1;
            p += 7;
            /* an optional parameter name after "indexed" is not allowed */
            while (isspace((unsigned char)*p))
                p++;
        }
        (*n)++;
        if (*p == '\0')
            return BK_OK;
        if (*p != ',')
            return bk_err_set(e, BK_E_INVAL, "abi: unexpected '%c' in '%s'", *p, list);
        p++;
    }
}

int bk_abi_parse_signature(const char *sig, char name[BK_ABI_NAME_MAX],
                           bk_abi_type *types, size_t max, size_t *n, char *canon,
                           size_t canon_size, bk_err *e) {
    *n = 0;
    const char *open = strchr(sig, '(');
    size_t slen = strlen(sig);
    if (open == NULL || slen == 0 || sig[slen - 1] != ')')
        return bk_err_set(e, BK_E_INVAL, "abi: bad signature '%s'", sig);
    size_t nlen = (size_t)(open - sig);
    if (nlen == 0 || nlen >= BK_ABI_NAME_MAX)
        return bk_err_set(e, BK_E_INVAL, "abi: bad name in signature '%s'", sig);
    for (size_t i = 0; i < nlen; i++)
        if (!isalnum((unsigned char)sig[i]) && sig[i] != '_' && sig[i] != '$')
            return bk_err_set(e, BK_E_INVAL, "abi: bad name in signature '%s'", sig);
    memcpy(name, sig, nlen);
    name[nlen] = '\0';
    size_t ilen = slen - nlen - 2;
    char inner[CANON_MAX];
    if (ilen >= sizeof inner)
        return bk_err_set(e, BK_E_INVAL, "abi: signature too long");
    memcpy(inner, open + 1, ilen);
    inner[ilen] = '\0';
    if (bk_abi_parse_types(inner, types, max, n, e) != BK_OK)
        return bk_err_prefix(e, "signature '%s'", sig);
    if (canon == NULL)
        return BK_OK;
    size_t off = 0;
    int w = snprintf(canon, canon_size, "%s(", name);
    if (w < 0 || (size_t)w >= canon_size)
        return bk_err_set(e, BK_E_INVAL, "abi: signature too long");
    off = (size_t)w;
    for (size_t i = 0; i < *n; i++) {
        char tb[16];
        w = snprintf(canon + off, canon_size - off, "%s%s", i ? "," : "",
                     kind_name(&types[i], tb, sizeof tb));
        if (w < 0 || (size_t)w >= canon_size - off)
            return bk_err_set(e, BK_E_INVAL, "abi: signature too long");
        off += (size_t)w;
    }
    if (off + 2 > canon_size)
        return bk_err_set(e, BK_E_INVAL, "abi: signature too long");
    canon[off++] = ')';
    canon[off] = '\0';
    return BK_OK;
}

/* ---- encoding ---- */

void bk_abi_enc_init(bk_abi_enc *a, const char *signature) {
    memset(a, 0, sizeof *a);
    if (signature != NULL) {
        bk_abi_selector(signature, a->selector);
        a->has_selector = 1;
    }
}

void bk_abi_enc_release(bk_abi_enc *a) {
    for (size_t i = 0; i < a->n; i++) {
        free(a->slots[i].data);
        a->slots[i].data = NULL;
    }
    a->n = 0;
}

/* The next slot, zeroed; NULL (and failed set) when full. */
static bk_abi_slot *next_slot(bk_abi_enc *a) {
    if (a->failed || a->n >= BK_ABI_MAX_ARGS) {
        a->failed = 1;
        return NULL;
    }
    bk_abi_slot *s = &a->slots[a->n++];
    memset(s, 0, sizeof *s);
    return s;
}

void bk_abi_put_uint(bk_abi_enc *a, uint64_t v) {
    bk_abi_slot *s = next_slot(a);
    if (s == NULL)
        return;
    for (int i = 0; i < 8; i++)
        s->word[31 - i] = (uint8_t)(v >> (8 * i));
}

void bk_abi_put_uint256(bk_abi_enc *a, const uint8_t be[32]) {
    bk_abi_slot *s = next_slot(a);
    if (s != NULL)
        memcpy(s->word, be, 32);
}

void bk_abi_put_int(bk_abi_enc *a, int64_t v) {
    bk_abi_slot *s = next_slot(a);
    if (s == NULL)
        return;
    uint64_t u = (uint64_t)v;
    memset(s->word, v < 0 ? 0xff : 0, 24);
    for (int i = 0; i < 8; i++)
        s->word[31 - i] = (uint8_t)(u >> (8 * i));
}

void bk_abi_put_bool(bk_abi_enc *a, int v) {
    bk_abi_slot *s = next_slot(a);
    if (s != NULL)
        s->word[31] = v ? 1 : 0;
}

void bk_abi_put_address(bk_abi_enc *a, const uint8_t addr[20]) {
    bk_abi_slot *s = next_slot(a);
    if (s != NULL)
        memcpy(s->word + 12, addr, 20);
}

void bk_abi_put_bytes32(bk_abi_enc *a, const uint8_t b[32]) {
    bk_abi_put_fixed_bytes(a, b, 32);
}

void bk_abi_put_fixed_bytes(bk_abi_enc *a, const void *b, size_t len) {
    if (len == 0 || len > 32) {
        a->failed = 1;
        return;
    }
    bk_abi_slot *s = next_slot(a);
    if (s != NULL)
        memcpy(s->word, b, len);
}

void bk_abi_put_bytes(bk_abi_enc *a, const void *data, size_t len) {
    bk_abi_slot *s = next_slot(a);
    if (s == NULL)
        return;
    s->dynamic = 1;
    s->data = malloc(len ? len : 1);
    if (s->data == NULL) {
        a->failed = 1;
        return;
    }
    if (len > 0)
        memcpy(s->data, data, len);
    s->len = len;
}

void bk_abi_put_string(bk_abi_enc *a, const char *s) {
    bk_abi_put_bytes(a, s, strlen(s));
}

static void put_word_u64(uint8_t *w, uint64_t v) {
    memset(w, 0, 32);
    for (int i = 0; i < 8; i++)
        w[31 - i] = (uint8_t)(v >> (8 * i));
}

static size_t pad32(size_t n) {
    return (n + 31) / 32 * 32;
}

int bk_abi_enc_finish(bk_abi_enc *a, uint8_t **out, size_t *len, bk_err *e) {
    *out = NULL;
    *len = 0;
    if (a->failed) {
        bk_abi_enc_release(a);
        a->failed = 0;
        return bk_err_set(e, BK_E_INVAL,
                          "abi: encoding failed (more than %d arguments, a bad bytesN "
                          "or out of memory)",
                          BK_ABI_MAX_ARGS);
    }
    size_t head = 32 * a->n, total = head;
    for (size_t i = 0; i < a->n; i++)
        if (a->slots[i].dynamic)
            total += 32 + pad32(a->slots[i].len);
    size_t sel = a->has_selector ? 4 : 0;
    uint8_t *buf = calloc(1, sel + total + 1);
    if (buf == NULL) {
        bk_abi_enc_release(a);
        return bk_err_set(e, BK_E_NOMEM, "abi: out of memory");
    }
    memcpy(buf, a->selector, sel);
    uint8_t *p = buf + sel;
    size_t tail = head;
    for (size_t i = 0; i < a->n; i++) {
        bk_abi_slot *s = &a->slots[i];
        if (!s->dynamic) {
            memcpy(p + 32 * i, s->word, 32);
            continue;
        }
        put_word_u64(p + 32 * i, tail);
        put_word_u64(p + tail, s->len);
        if (s->len > 0)
            memcpy(p + tail + 32, s->data, s->len);
        tail += 32 + pad32(s->len);
    }
    bk_abi_enc_release(a);
    *out = buf;
    *len = sel + total;
    return BK_OK;
}

/* ---- decoding ---- */

/* A word as a size_t offset/length; BK_ERR when above the data length. */
static int word_size(const uint8_t *w, size_t limit, size_t *v, const char *what,
                     size_t i, bk_err *e) {
    for (int k = 0; k < 24; k++)
        if (w[k] != 0)
            return bk_err_set(e, BK_E_PROTO, "abi: argument %zu: %s too large", i, what);
    uint64_t x = 0;
    for (int k = 24; k < 32; k++)
        x = x << 8 | w[k];
    if (x > limit)
        return bk_err_set(e, BK_E_PROTO,
                          "abi: argument %zu: %s %llu beyond the data (%zu)", i, what,
                          (unsigned long long)x, limit);
    *v = (size_t)x;
    return BK_OK;
}

/* Check a static word against its type. */
static int check_static(const bk_abi_type *t, const uint8_t *w, size_t i, bk_err *e) {
    int zero_hi = 0; /* number of high bytes that must be zero (or sign) */
    switch (t->kind) {
    case BK_ABI_UINT:
        zero_hi = 32 - t->size / 8;
        break;
    case BK_ABI_ADDRESS:
        zero_hi = 12;
        break;
    case BK_ABI_BOOL:
        zero_hi = 31;
        if (w[31] > 1)
            return bk_err_set(e, BK_E_PROTO, "abi: argument %zu: bool is not 0 or 1", i);
        break;
    case BK_ABI_INT: {
        int nb = t->size / 8;
        uint8_t sign = (w[32 - nb] & 0x80) ? 0xff : 0x00;
        for (int k = 0; k < 32 - nb; k++)
            if (w[k] != sign)
                return bk_err_set(e, BK_E_PROTO, "abi: argument %zu: int%d out of range",
                                  i, t->size);
        return BK_OK;
    }
    case BK_ABI_FIXED_BYTES:
        for (int k = t->size; k < 32; k++)
            if (w[k] != 0)
                return bk_err_set(e, BK_E_PROTO,
                                  "abi: argument %zu: bytes%d with non-zero padding", i,
                                  t->size);
        return BK_OK;
    default:
        return BK_OK;
    }
    for (int k = 0; k < zero_hi; k++)
        if (w[k] != 0)
            return bk_err_set(e, BK_E_PROTO, "abi: argument %zu: value out of range", i);
    return BK_OK;
}

int bk_abi_decode_types(const uint8_t *data, size_t len, const bk_abi_type *types,
                        size_t n, bk_abi_val *vals, bk_err *e) {
    if (len < 32 * n)
        return bk_err_set(e, BK_E_PROTO, "abi: %zu bytes, too short for %zu arguments",
                          len, n);
    for (size_t i = 0; i < n; i++) {
        bk_abi_val *v = &vals[i];
        memset(v, 0, sizeof *v);
        v->type = types[i];
        const uint8_t *w = data + 32 * i;
        memcpy(v->word, w, 32);
        if (types[i].kind != BK_ABI_BYTES && types[i].kind != BK_ABI_STRING) {
            if (check_static(&types[i], w, i, e) != BK_OK)
                return BK_ERR;
            continue;
        }
        size_t off = 0, dlen = 0;
        if (word_size(w, len - 32, &off, "offset", i, e) != BK_OK)
            return BK_ERR;
        if (word_size(data + off, len - off - 32, &dlen, "length", i, e) != BK_OK)
            return BK_ERR;
        v->data = data + off + 32;
        v->len = dlen;
    }
    return BK_OK;
}

int bk_abi_decode(const uint8_t *data, size_t len, const char *types, bk_abi_val *vals,
                  size_t max, size_t *n, bk_err *e) {
    bk_abi_type t[BK_ABI_MAX_ARGS];
    if (bk_abi_parse_types(types, t, max < BK_ABI_MAX_ARGS ? max : BK_ABI_MAX_ARGS, n,
                           e) != BK_OK)
        return BK_ERR;
    return bk_abi_decode_types(data, len, t, *n, vals, e);
}

int bk_abi_val_u64(const bk_abi_val *v, uint64_t *out, bk_err *e) {
    if (v->type.kind != BK_ABI_UINT && v->type.kind != BK_ABI_INT)
        return bk_err_set(e, BK_E_INVAL, "abi: value is not an integer");
    for (int k = 0; k < 24; k++)
        if (v->word[k] != 0)
            return bk_err_set(e, BK_E_INVAL, "abi: integer does not fit in 64 bits");
    uint64_t x = 0;
    for (int k = 24; k < 32; k++)
        x = x << 8 | v->word[k];
    *out = x;
    return BK_OK;
}

int bk_abi_val_i64(const bk_abi_val *v, int64_t *out, bk_err *e) {
    if (v->type.kind != BK_ABI_UINT && v->type.kind != BK_ABI_INT)
        return bk_err_set(e, BK_E_INVAL, "abi: value is not an integer");
    uint8_t sign = (v->type.kind == BK_ABI_INT && (v->word[0] & 0x80)) ? 0xff : 0;
    for (int k = 0; k < 24; k++)
        if (v->word[k] != sign)
            return bk_err_set(e, BK_E_INVAL, "abi: integer does not fit in 64 bits");
    uint64_t x = 0;
    for (int k = 24; k < 32; k++)
        x = x << 8 | v->word[k];
    if ((sign != 0) != ((x >> 63) != 0))
        return bk_err_set(e, BK_E_INVAL, "abi: integer does not fit in 64 bits");
    memcpy(out, &x, sizeof x);
    return BK_OK;
}

char *bk_abi_val_strdup(const bk_abi_val *v) {
    if (v->type.kind != BK_ABI_BYTES && v->type.kind != BK_ABI_STRING)
        return NULL;
    char *s = malloc(v->len + 1);
    if (s == NULL)
        return NULL;
    if (v->len > 0)
        memcpy(s, v->data, v->len);
    s[v->len] = '\0';
    return s;
}

/* Decimal of a 32-byte big-endian unsigned number into buf[size >= 80]. */
static void u256_dec(const uint8_t w[32], char *buf, size_t size) {
    uint8_t n[32];
    memcpy(n, w, 32);
    char tmp[80];
    size_t k = 0;
    for (;;) {
        int rem = 0, nonzero = 0;
        for (int i = 0; i < 32; i++) {
            int cur = rem * 256 + n[i];
            n[i] = (uint8_t)(cur / 10);
            rem = cur % 10;
            nonzero |= n[i];
        }
        tmp[k++] = (char)('0' + rem);
        if (!nonzero)
            break;
    }
    size_t o = 0;
    while (k > 0 && o + 1 < size)
        buf[o++] = tmp[--k];
    buf[o] = '\0';
}

void bk_abi_val_format(const bk_abi_val *v, char *buf, size_t size) {
    if (size == 0)
        return;
    char tmp[80];
    switch (v->type.kind) {
    case BK_ABI_UINT:
        u256_dec(v->word, tmp, sizeof tmp);
        snprintf(buf, size, "%s", tmp);
        return;
    case BK_ABI_INT:
        if (v->word[0] & 0x80) {
            uint8_t neg[32];
            int carry = 1;
            for (int i = 31; i >= 0; i--) {
                int x = (uint8_t)~v->word[i] + carry;
                neg[i] = (uint8_t)x;
                carry = x >> 8;
            }
            u256_dec(neg, tmp, sizeof tmp);
            snprintf(buf, size, "-%s", tmp);
        } else {
            u256_dec(v->word, tmp, sizeof tmp);
            snprintf(buf, size, "%s", tmp);
        }
        return;
    case BK_ABI_BOOL:
        snprintf(buf, size, "%s", v->word[31] ? "true" : "false");
        return;
    case BK_ABI_ADDRESS: {
        char a[43];
        bk_eth_addr_hex(v->word + 12, a);
        snprintf(buf, size, "%s", a);
        return;
    }
    case BK_ABI_FIXED_BYTES:
    case BK_ABI_BYTES: {
        const uint8_t *p = v->type.kind == BK_ABI_BYTES ? v->data : v->word;
        size_t n = v->type.kind == BK_ABI_BYTES ? v->len : (size_t)v->type.size;
        if (size < 3) {
            buf[0] = '\0';
            return;
        }
        size_t fit = (size - 3) / 2;
        if (n > fit) {
            size_t k = fit > 2 ? fit - 2 : 0;
            bk_hex_encode(p, k, 1, buf);
            snprintf(buf + 2 + 2 * k, size - 2 - 2 * k, "...");
            return;
        }
        bk_hex_encode(p, n, 1, buf);
        return;
    }
    case BK_ABI_STRING:
        if (v->len + 3 <= size)
            snprintf(buf, size, "\"%.*s\"", (int)v->len, (const char *)v->data);
        else
            snprintf(buf, size, "\"%.*s...\"", (int)(size > 6 ? size - 6 : 0),
                     (const char *)v->data);
        return;
    }
    buf[0] = '\0';
}

/* ---- revert data ---- */

static const char *panic_reason(uint64_t code) {
    switch (code) {
    case 0x00:
        return "generic panic";
    case 0x01:
        return "assertion failed";
    case 0x11:
        return "arithmetic overflow";
    case 0x12:
        return "division by zero";
    case 0x21:
        return "invalid enum value";
    case 0x22:
        return "bad storage byte array";
    case 0x31:
        return "pop on empty array";
    case 0x32:
        return "array index out of bounds";
    case 0x41:
        return "out of memory";
    case 0x51:
        return "call to zero-initialized function";
    default:
        return "unknown panic";
    }
}

int bk_abi_decode_revert(const uint8_t *data, size_t len, const char *const *error_sigs,
                         size_t nsigs, bk_abi_revert *r, bk_err *e) {
    memset(r, 0, sizeof *r);
    if (len == 0) {
        r->kind = BK_REVERT_EMPTY;
        return BK_OK;
    }
    if (len < 4)
        return bk_err_set(e, BK_E_PROTO,
                          "revert data of %zu bytes, shorter than a selector", len);
    memcpy(r->selector, data, 4);
    uint8_t sel[4];
    bk_abi_type t[BK_ABI_MAX_ARGS];
    size_t n = 0;
    bk_abi_selector("Error(string)", sel);
    if (memcmp(sel, data, 4) == 0) {
        r->kind = BK_REVERT_ERROR;
        snprintf(r->name, sizeof r->name, "Error");
        r->signature = "Error(string)";
        t[0].kind = BK_ABI_STRING;
        t[0].size = t[0].indexed = 0;
        n = 1;
    } else {
        bk_abi_selector("Panic(uint256)", sel);
        if (memcmp(sel, data, 4) == 0) {
            r->kind = BK_REVERT_PANIC;
            snprintf(r->name, sizeof r->name, "Panic");
            r->signature = "Panic(uint256)";
            t[0].kind = BK_ABI_UINT;
            t[0].size = 256;
            t[0].indexed = 0;
            n = 1;
        }
    }
    for (size_t i = 0; r->kind == BK_REVERT_EMPTY && i < nsigs; i++) {
        bk_abi_selector(error_sigs[i], sel);
        if (memcmp(sel, data, 4) != 0)
            continue;
        if (bk_abi_parse_signature(error_sigs[i], r->name, t, BK_ABI_MAX_ARGS, &n, NULL,
                                   0, e) != BK_OK)
            return BK_ERR;
        r->kind = BK_REVERT_CUSTOM;
        r->signature = error_sigs[i];
    }
    if (r->kind == BK_REVERT_EMPTY) {
        r->kind = BK_REVERT_UNKNOWN;
        return BK_OK;
    }
    if (bk_abi_decode_types(data + 4, len - 4, t, n, r->args, e) != BK_OK)
        return bk_err_prefix(e, "revert %s", r->name);
    r->nargs = n;
    return BK_OK;
}

void bk_abi_revert_format(const bk_abi_revert *r, char *buf, size_t size) {
    switch (r->kind) {
    case BK_REVERT_EMPTY:
        snprintf(buf, size, "empty revert");
        return;
    case BK_REVERT_UNKNOWN:
        snprintf(buf, size, "unknown error 0x%02x%02x%02x%02x", r->selector[0],
                 r->selector[1], r->selector[2], r->selector[3]);
        return;
    case BK_REVERT_PANIC: {
        uint64_t code = 0;
        if (bk_abi_val_u64(&r->args[0], &code, NULL) != BK_OK)
            code = 0xffffffff;
        snprintf(buf, size, "Panic(0x%llx: %s)", (unsigned long long)code,
                 panic_reason(code));
        return;
    }
    default:
        break;
    }
    size_t off = 0;
    int w = snprintf(buf, size, "%s(", r->name);
    if (w < 0 || (size_t)w >= size)
        return;
    off = (size_t)w;
    for (size_t i = 0; i < r->nargs && off + 1 < size; i++) {
        char vb[256];
        bk_abi_val_format(&r->args[i], vb, sizeof vb);
        w = snprintf(buf + off, size - off, "%s%s", i ? ", " : "", vb);
        if (w < 0 || (size_t)w >= size - off)
            return;
        off += (size_t)w;
    }
    if (off + 1 < size) {
        buf[off++] = ')';
        buf[off] = '\0';
    }
}

/* ---- event logs ---- */

int bk_abi_event_topic(const char *event_desc, uint8_t topic[32], bk_err *e) {
    char name[BK_ABI_NAME_MAX], canon[CANON_MAX];
    bk_abi_type t[BK_ABI_MAX_ARGS];
    size_t n;
    if (bk_abi_parse_signature(event_desc, name, t, BK_ABI_MAX_ARGS, &n, canon,
                               sizeof canon, e) != BK_OK)
        return BK_ERR;
    bk_keccak256(canon, strlen(canon), topic);
    return BK_OK;
}

int bk_abi_decode_log(const char *event_desc, const uint8_t (*topics)[32], size_t ntopics,
                      const uint8_t *data, size_t len, bk_abi_val *vals, size_t max,
                      size_t *n, bk_err *e) {
    char name[BK_ABI_NAME_MAX], canon[CANON_MAX];
    bk_abi_type t[BK_ABI_MAX_ARGS];
    *n = 0;
    size_t nt;
    if (bk_abi_parse_signature(event_desc, name, t, BK_ABI_MAX_ARGS, &nt, canon,
                               sizeof canon, e) != BK_OK)
        return BK_ERR;
    if (nt > max)
        return bk_err_set(e, BK_E_INVAL, "event %s: %zu parameters, room for %zu", name,
                          nt, max);
    uint8_t topic0[32];
    bk_keccak256(canon, strlen(canon), topic0);
    if (ntopics == 0 || memcmp(topics[0], topic0, 32) != 0)
        return bk_err_set(e, BK_E_PROTO, "log is not event %s", canon);
    size_t nidx = 0, ndata = 0;
    bk_abi_type dt[BK_ABI_MAX_ARGS];
    for (size_t i = 0; i < nt; i++) {
        if (t[i].indexed)
            nidx++;
        else
            dt[ndata++] = t[i];
    }
    if (ntopics != 1 + nidx)
        return bk_err_set(e, BK_E_PROTO, "event %s: %zu topics, want %zu", name, ntopics,
                          1 + nidx);
    bk_abi_val dv[BK_ABI_MAX_ARGS];
    if (bk_abi_decode_types(data, len, dt, ndata, dv, e) != BK_OK)
        return bk_err_prefix(e, "event %s", name);
    size_t ti = 1, di = 0;
    for (size_t i = 0; i < nt; i++) {
        if (!t[i].indexed) {
            vals[i] = dv[di++];
            continue;
        }
        bk_abi_val *v = &vals[i];
        memset(v, 0, sizeof *v);
        v->type = t[i];
        memcpy(v->word, topics[ti++], 32);
        if (t[i].kind == BK_ABI_BYTES || t[i].kind == BK_ABI_STRING) {
            v->type.kind = BK_ABI_FIXED_BYTES; /* only the hash is in the topic */
            v->type.size = 32;
        } else if (check_static(&t[i], v->word, i, e) != BK_OK) {
            return bk_err_prefix(e, "event %s", name);
        }
    }
    *n = nt;
    return BK_OK;
}
