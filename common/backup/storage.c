/* storage.c - off-chain object storage; see storage.h.
 *
 * The dispatcher: bk_storage_open picks a back end by URL scheme from the
 * table below (its open function, declared in storage_int.h, sets the
 * handle's operations); every other call goes through those operations.
 * Also the helpers the back ends share (storage_int.h). The back ends,
 * storage_file.c and storage_s3.c, know nothing of each other. */
#include "backup/storage.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "backup/storage_int.h"

static int bad_name(const bk_storage *s, const char *name, bk_err *e) {
    return bk_err_set(e, BK_E_INVAL,
                      "storage: bad object name '%.*s' for '%s': want 1 to %d characters "
                      "of [A-Za-z0-9._-], not starting with '.'",
                      64, name != NULL ? name : "(null)", s->label, BK_STORAGE_NAME_MAX);
}

/* ---- shared by the back ends (storage_int.h) ---- */

int bk_storage_valid_name(const char *name) {
    if (name == NULL || name[0] == '\0' || name[0] == '.')
        return 0;
    size_t i = 0;
    for (; name[i] != '\0'; i++) {
        char c = name[i];
        int ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
                 (c >= '0' && c <= '9') || c == '.' || c == '_' || c == '-';
        if (!ok || i >= BK_STORAGE_NAME_MAX)
            return 0;
    }
    return 1;
}

int bk_storage_exists_different(const bk_storage *s, const char *name, bk_err *e) {
    return bk_err_set(
        e, BK_E_STATE,
        "storage: object '%s' already exists in '%s' with different content", name,
        s->label);
}

static int cmp_names(const void *a, const void *b) {
    return strcmp(*(char *const *)a, *(char *const *)b);
}

int bk_storage_list_done(char **v, size_t n, int rc, char ***names, size_t *count) {
    if (rc != BK_OK) {
        bk_storage_names_free(v, n);
        return rc;
    }
    if (n > 1)
        qsort(v, n, sizeof *v, cmp_names);
    if (n == 0) {
        free(v);
        v = NULL;
    }
    *names = v;
    *count = n;
    return BK_OK;
}

/* ---- the interface ---- */

/* The back ends, by URL scheme. */
static const struct {
    const char *scheme;
    int (*open)(bk_storage *s, const char *url, bk_err *e);
} backends[] = {
    {"file://", bk_storage_open_file},
    {"s3://", bk_storage_open_s3},
};

int bk_storage_open(const char *url, bk_storage **out, bk_err *e) {
    *out = NULL;
    if (url == NULL || url[0] == '\0')
        return bk_err_set(e, BK_E_INVAL,
                          "storage: bad url '': want file://DIR or s3://BUCKET/PREFIX");
    for (const char *c = url; *c; c++)
        if ((unsigned char)*c < 0x20 || *c == 0x7f)
            return bk_err_set(e, BK_E_INVAL,
                              "storage: bad url '%.100s': control character", url);
    size_t b = 0, nb = sizeof(backends) / sizeof(backends[0]);
    while (b < nb && strncmp(url, backends[b].scheme, strlen(backends[b].scheme)) != 0)
        b++;
    if (b == nb)
        return bk_err_set(
            e, BK_E_INVAL,
            "storage: bad url '%.100s': want file://DIR or s3://BUCKET/PREFIX", url);
    bk_storage *s = calloc(1, sizeof *s);
    if (s == NULL)
        return bk_err_set(e, BK_E_NOMEM, "storage: out of memory");
    s->url = strdup(url);
    s->label = s->url != NULL ? strdup(url) : NULL;
    int rc = BK_ERR;
    if (s->url == NULL || s->label == NULL)
        bk_err_set(e, BK_E_NOMEM, "storage: out of memory");
    else
        rc = backends[b].open(s, url, e);
    if (rc != BK_OK) {
        bk_storage_close(s);
        return BK_ERR;
    }
    *out = s;
    return BK_OK;
}

void bk_storage_close(bk_storage *s) {
    if (s == NULL)
        return;
    if (s->ops != NULL)
        s->ops->close(s);
    free(s->label);
    free(s->url);
    free(s);
}

const char *bk_storage_url(const bk_storage *s) {
    return s->url;
}

int bk_storage_put(bk_storage *s, const char *name, const void *data, size_t len,
                   bk_err *e) {
    if (!bk_storage_valid_name(name))
        return bad_name(s, name, e);
    static const uint8_t empty = 0;
    return s->ops->put(s, name, data != NULL ? data : &empty, len, e);
}

int bk_storage_read(bk_storage *s, const char *name, bk_storage_piece_cb cb, void *opaque,
                    bk_err *e) {
    if (!bk_storage_valid_name(name))
        return bad_name(s, name, e);
    if (s->ops->read != NULL)
        return s->ops->read(s, name, cb, opaque, e);
    void *data = NULL;
    size_t len = 0;
    if (s->ops->get(s, name, &data, &len, e) != BK_OK)
        return BK_ERR;
    int rc = cb(opaque, data, len, e);
    free(data);
    return rc;
}

int bk_storage_get(bk_storage *s, const char *name, void **data, size_t *len, bk_err *e) {
    *data = NULL;
    *len = 0;
    if (!bk_storage_valid_name(name))
        return bad_name(s, name, e);
    return s->ops->get(s, name, data, len, e);
}

int bk_storage_head(bk_storage *s, const char *name, int *exists, uint64_t *size,
                    bk_err *e) {
    *exists = 0;
    if (size != NULL)
        *size = 0;
    if (!bk_storage_valid_name(name))
        return bad_name(s, name, e);
    return s->ops->head(s, name, exists, size, e);
}

int bk_storage_list(bk_storage *s, const char *prefix, char ***names, size_t *count,
                    bk_err *e) {
    *names = NULL;
    *count = 0;
    return s->ops->list(s, prefix != NULL ? prefix : "", names, count, e);
}

void bk_storage_names_free(char **names, size_t count) {
    if (names == NULL)
        return;
    for (size_t i = 0; i < count; i++)
        free(names[i]);
    free(names);
}

int bk_storage_delete(bk_storage *s, const char *name, bk_err *e) {
    if (!bk_storage_valid_name(name))
        return bad_name(s, name, e);
    return s->ops->del(s, name, e);
}
