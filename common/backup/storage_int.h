/* storage_int.h - internals of the storage module (storage.h), shared by
 * storage.c (the dispatcher and the helpers below), the back ends
 * storage_file.c (file://) and storage_s3.c + storage_s3_pure.c (s3://),
 * and the unit tests of the pure parts of the S3 back end. Not for other
 * modules. A back end includes only this header (and storage.h); storage.c
 * knows a back end only by its open function, declared here. */
#ifndef BK_STORAGE_INT_H
#define BK_STORAGE_INT_H

#include <stddef.h>
#include <stdint.h>

#include "base/err.h"
#include "backup/storage.h"

typedef struct storage_ops {
    int (*put)(bk_storage *s, const char *name, const void *data, size_t len, bk_err *e);
    int (*get)(bk_storage *s, const char *name, void **data, size_t *len, bk_err *e);
    int (*head)(bk_storage *s, const char *name, int *exists, uint64_t *size, bk_err *e);
    int (*list)(bk_storage *s, const char *prefix, char ***names, size_t *count,
                bk_err *e);
    int (*del)(bk_storage *s, const char *name, bk_err *e);
    void (*close)(bk_storage *s);
    /* optional (NULL: get, then one piece): storage.h's bk_storage_read */
    int (*read)(bk_storage *s, const char *name, bk_storage_piece_cb cb, void *opaque,
                bk_err *e);
} storage_ops;

struct bk_storage {
    const storage_ops *ops; /* set by the back end's open */
    char *url;
    /* how messages name the storage: the URL for file://, "s3://BUCKET/PREFIX"
     * (no query) for s3:// */
    char *label;
    void *be; /* the back end's own state, freed by ops->close */
};

/* ---- the back ends ---- */

/* Set up s (url and label already set; a back end may replace label) as
 * a storage of its kind: on success s->ops and s->be are set. On failure
 * e is set; whatever was set in s is released by bk_storage_close. */
int bk_storage_open_file(bk_storage *s, const char *url, bk_err *e);
int bk_storage_open_s3(bk_storage *s, const char *url, bk_err *e);

/* ---- helpers shared by the back ends (storage.c) ---- */

/* End of a back end's list: with rc BK_OK, sort v[0..n) and hand it over
 * in *names / *count (NULL when empty); otherwise free it. Returns rc. */
int bk_storage_list_done(char **v, size_t n, int rc, char ***names, size_t *count);

/* Whether name is a valid object name (storage.h). */
int bk_storage_valid_name(const char *name);

/* "storage: object 'n' already exists in 'label' with different content"
 * (BK_E_STATE); returns BK_ERR. */
int bk_storage_exists_different(const bk_storage *s, const char *name, bk_err *e);

/* ---- pure parts of the S3 back end (storage_s3_pure.c, unit-tested) ---- */

#define BK_S3_BUCKET_MAX 63
#define BK_S3_PREFIX_MAX 256
#define BK_S3_ENDPOINT_MAX 200
#define BK_S3_REGION_MAX 40

typedef struct bk_s3_cfg {
    char bucket[BK_S3_BUCKET_MAX + 1];
    char prefix[BK_S3_PREFIX_MAX + 1];     /* no leading or trailing '/'; may be "" */
    char endpoint[BK_S3_ENDPOINT_MAX + 1]; /* scheme://host[:port], no trailing '/' */
    char region[BK_S3_REGION_MAX + 1];
    int path_style; /* 1: ENDPOINT/BUCKET/KEY, 0: BUCKET.HOST/KEY */
} bk_s3_cfg;

/* Parse "s3://BUCKET[/PREFIX][?endpoint=URL&region=R&path_style=0|1]" into
 * cfg, with the defaults of storage.h. BK_E_INVAL with a one-line message
 * "storage: bad url '...': ..." otherwise. */
int bk_s3_parse_url(const char *url, bk_s3_cfg *cfg, bk_err *e);

/* Percent-encode s as SigV4 wants it: everything but [A-Za-z0-9-._~] as
 * %XX (upper case), '/' kept when keep_slash. Returns a malloc'd string or
 * NULL (out of memory). */
char *bk_s3_uri_encode(const char *s, int keep_slash);

/* Sort an already-encoded query string "k=v&k=v" by name, then value (the
 * canonical order of SigV4). Returns a malloc'd string or NULL. */
char *bk_s3_sort_query(const char *query);

/* The text of the first <tag>...</tag> in xml[0..len), XML entities
 * decoded, as a malloc'd string; NULL when absent (or out of memory). */
char *bk_s3_xml_text(const char *xml, size_t len, const char *tag);

/* Parse a ListObjectsV2 answer: the <Key> of every <Contents> (decoded, in
 * order) into *keys (*n of them; free with bk_storage_names_free),
 * *truncated from <IsTruncated>, and *next_token (malloc'd, or NULL) from
 * <NextContinuationToken>. BK_E_PROTO for an answer that is not a
 * ListBucketResult, BK_E_NOMEM. */
int bk_s3_parse_list(const char *xml, size_t len, char ***keys, size_t *n, int *truncated,
                     char **next_token, bk_err *e);

#endif
