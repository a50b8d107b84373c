/* archive.c - the history archive's plaintext (archive.h). */
#include "backup/archive.h"

#include <stdlib.h>
#include <string.h>

#include "base/hex.h"

static int buf_put(bk_archive_buf *b, const char *s, size_t n, bk_err *e) {
    if (b->len + n + 1 > b->cap) {
        size_t cap = b->cap ? b->cap : 65536;
        while (cap < b->len + n + 1)
            cap *= 2;
        char *d = realloc(b->data, cap);
        if (d == NULL)
            return bk_err_set(e, BK_E_NOMEM, "out of memory");
        b->data = d;
        b->cap = cap;
    }
    memcpy(b->data + b->len, s, n);
    b->len += n;
    b->data[b->len] = '\0';
    return BK_OK;
}

/* bytes as a JSON string: text (NULL when not UTF-8) or hex. */
static json_t *bytes_json(const void *p, size_t n, int hex) {
    if (!hex)
        return json_stringn(p ? p : "", n);
    char *h = bk_hex_encode_alloc(p ? p : "", n, 0);
    json_t *j = h ? json_string(h) : NULL;
    free(h);
    return j;
}

static json_t *rec_json(int64_t offset, const void *key, size_t klen,
                        const bk_archive_hdr *h, size_t nh, const void *value,
                        size_t vlen, int64_t ts_ms, int hex) {
    json_t *hs = json_array();
    json_t *k = bytes_json(key, klen, hex), *v = bytes_json(value, vlen, hex);
    int ok = hs != NULL && k != NULL && v != NULL;
    for (size_t i = 0; ok && i < nh; i++) {
        json_t *hv = bytes_json(h[i].value, h[i].len, hex);
        json_t *hn = json_string(h[i].name ? h[i].name : "");
        if (hv == NULL || hn == NULL) {
            json_decref(hv);
            json_decref(hn);
            ok = 0;
            break;
        }
        json_array_append_new(hs, json_pack("[oo]", hn, hv));
    }
    if (!ok) {
        json_decref(hs);
        json_decref(k);
        json_decref(v);
        return NULL;
    }
    return json_pack("{sI so so so sI ss}", "offset", (json_int_t)offset, "key", k,
                     "headers", hs, "value", v, "ts_ms", (json_int_t)ts_ms, "encoding",
                     hex ? "hex" : "utf-8");
}

int bk_archive_add(bk_archive_buf *b, int64_t offset, const void *key, size_t klen,
                   const bk_archive_hdr *h, size_t nh, const void *value, size_t vlen,
                   int64_t ts_ms, bk_err *e) {
    json_t *j = rec_json(offset, key, klen, h, nh, value, vlen, ts_ms, 0);
    if (j == NULL) /* not UTF-8: every field in hex */
        j = rec_json(offset, key, klen, h, nh, value, vlen, ts_ms, 1);
    if (j == NULL)
        return bk_err_set(e, BK_E_NOMEM, "out of memory");
    char *text = json_dumps(j, JSON_COMPACT | JSON_SORT_KEYS);
    json_decref(j);
    if (text == NULL)
        return bk_err_set(e, BK_E_NOMEM, "out of memory");
    int rc = buf_put(b, text, strlen(text), e);
    free(text);
    if (rc == BK_OK)
        rc = buf_put(b, "\n", 1, e);
    if (rc == BK_OK)
        b->count++;
    return rc;
}

int bk_archive_finish(bk_archive_buf *b, const json_t *header, char **out, size_t *len,
                      bk_err *e) {
    *out = NULL;
    *len = 0;
    char *h = json_dumps(header, JSON_COMPACT | JSON_SORT_KEYS);
    if (h == NULL)
        return bk_err_set(e, BK_E_NOMEM, "out of memory");
    size_t hl = strlen(h);
    char *p = malloc(hl + 1 + b->len + 1);
    if (p == NULL) {
        free(h);
        return bk_err_set(e, BK_E_NOMEM, "out of memory");
    }
    memcpy(p, h, hl);
    p[hl] = '\n';
    if (b->len)
        memcpy(p + hl + 1, b->data, b->len);
    p[hl + 1 + b->len] = '\0';
    *out = p;
    *len = hl + 1 + b->len;
    free(h);
    bk_archive_buf_free(b);
    return BK_OK;
}

void bk_archive_buf_free(bk_archive_buf *b) {
    free(b->data);
    memset(b, 0, sizeof(*b));
}

int bk_archive_next(const char *plain, size_t len, size_t *pos, const char **line,
                    size_t *llen) {
    if (*pos >= len)
        return 0;
    const char *s = plain + *pos;
    const char *nl = memchr(s, '\n', len - *pos);
    size_t n = nl ? (size_t)(nl - s) : len - *pos;
    *line = s;
    *llen = n;
    *pos += n + (nl ? 1 : 0);
    return 1;
}

int bk_archive_header(const char *plain, size_t len, json_t **header, size_t *pos,
                      bk_err *e) {
    const char *line;
    size_t llen;
    *header = NULL;
    *pos = 0;
    if (!bk_archive_next(plain, len, pos, &line, &llen))
        return bk_err_set(e, BK_E_INVAL, "archive: empty");
    json_error_t je;
    json_t *j = json_loadb(line, llen, 0, &je);
    const char *f = json_string_value(json_object_get(j, "format"));
    if (j == NULL || f == NULL || strcmp(f, BK_ARCHIVE_FORMAT) != 0) {
        json_decref(j);
        return bk_err_set(e, BK_E_INVAL, "archive: the first line is not a %s header",
                          BK_ARCHIVE_FORMAT);
    }
    *header = j;
    return BK_OK;
}

int bk_archive_decode(const char *line, size_t llen, int64_t *offset, void **value,
                      size_t *vlen, bk_err *e) {
    json_error_t je;
    *value = NULL;
    *vlen = 0;
    json_t *j = json_loadb(line, llen, JSON_ALLOW_NUL, &je);
    json_t *o = json_object_get(j, "offset"), *v = json_object_get(j, "value");
    const char *enc = json_string_value(json_object_get(j, "encoding"));
    if (j == NULL || !json_is_integer(o) || !json_is_string(v) || enc == NULL) {
        json_decref(j);
        return bk_err_set(e, BK_E_INVAL, "archive: a record line is not a record: %.60s",
                          line);
    }
    *offset = json_integer_value(o);
    int rc = BK_OK;
    if (strcmp(enc, "hex") == 0) {
        uint8_t *b = NULL;
        rc = bk_hex_decode_alloc(json_string_value(v), &b, vlen, e);
        *value = b;
        if (rc != BK_OK)
            bk_err_prefix(e, "archive: record %lld", (long long)*offset);
    } else {
        size_t n = json_string_length(v);
        *value = malloc(n + 1);
        if (*value == NULL) {
            rc = bk_err_set(e, BK_E_NOMEM, "out of memory");
        } else {
            memcpy(*value, json_string_value(v), n);
            ((char *)*value)[n] = '\0';
            *vlen = n;
        }
    }
    json_decref(j);
    return rc;
}
