/* storage.h - off-chain object storage behind one small interface, chosen
 * by URL (DESIGN.md, state-version-up step 4; I7).
 *
 *   file://DIR            objects are files in DIR (created if missing;
 *                         absolute, or relative to the working directory)
 *   s3://BUCKET[/PREFIX][?endpoint=URL&region=R&path_style=0|1]
 *                         objects are S3 objects PREFIX/NAME (NAME when no
 *                         PREFIX) in BUCKET, through the S3 REST API signed
 *                         with AWS Signature Version 4 (libcurl)
 *
 * s3:// settings. The URL holds only non-secret settings (it is written
 * into the on-chain backup log):
 *   BUCKET       3 to 63 characters of [a-z0-9.-]
 *   PREFIX       segments of [A-Za-z0-9._-] separated by '/' (up to 256
 *                characters; a trailing '/' is ignored)
 *   endpoint     http://HOST[:PORT] or https://HOST[:PORT] (no path; values
 *                may be percent-encoded); default https://s3.REGION.amazonaws.com
 *   region       the SigV4 signing region; default us-east-1
 *   path_style   1: ENDPOINT/BUCKET/KEY, 0: virtual-hosted BUCKET.HOST/KEY;
 *                default 1 when endpoint is given (MinIO, Ceph radosgw,
 *                s3rver), else 0 (AWS)
 * Credentials come from the environment only, read at open:
 * BR2K_S3_ACCESS_KEY_ID and BR2K_S3_SECRET_ACCESS_KEY (and the optional
 * BR2K_S3_SESSION_TOKEN), or else AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY
 * (and AWS_SESSION_TOKEN). A URL carrying anything like a credential
 * (user:secret@, a "key", "secret" or "token" parameter) is refused.
 * BR2K_S3_MAX_KEYS (1 to 1000, default 1000) sets the page size of list,
 * for tests of pagination.
 *
 * s3:// put: HEAD the key; when it exists, the same size and an ETag equal
 * to the MD5 of the bytes (or, for an ETag that is not an MD5, the bytes
 * read back by GET) make the put succeed, anything else is "different
 * content". Otherwise PUT with Content-MD5 and If-None-Match: * (so a
 * server with conditional writes never replaces an object; the HEAD
 * covers the others), then HEAD again: the put counts once the size and
 * ETag (or the bytes) match. Timeouts: 5 s to connect, and a server that
 * sends nothing for 20 s fails the call. A busy server (HTTP 500, 502,
 * 503, 504) is retried twice. Errors: "storage: s3://BUCKET/PREFIX: put
 * 'n': cannot reach endpoint URL: Couldn't connect to server", "...:
 * access denied by the server (SignatureDoesNotMatch): check
 * BR2K_S3_ACCESS_KEY_ID / BR2K_S3_SECRET_ACCESS_KEY", "...: bucket 'b'
 * does not exist at URL (NoSuchBucket)" (all BK_E_IO). Messages name an
 * s3:// storage as s3://BUCKET/PREFIX, without the query. A HEAD of a name
 * in a bucket that does not exist answers "absent" (S3 sends no reason).
 *
 * Objects are immutable: put never overwrites an object. Putting the same
 * bytes again succeeds (so a retried backup is harmless); putting other
 * bytes under an existing name is refused. A put counts only once the
 * object is durable and read back equal.
 *
 * Names: 1 to BK_STORAGE_NAME_MAX bytes of [A-Za-z0-9._-], not starting
 * with '.' (names starting with '.' are the back end's own, for example
 * the temporary files of file://, which list and get never return).
 *
 * file:// put: write to a temporary ".tmp-..." name in DIR, fsync it, move
 * it to its name without replacing anything (renameat2 RENAME_NOREPLACE,
 * or link + unlink where that is not supported), fsync DIR, read back. A
 * process killed mid-put leaves at most a temporary file, never a partial
 * object.
 *
 * A handle is used by one thread at a time. Error messages are one line and
 * name the URL and the object. */
#ifndef BK_STORAGE_H
#define BK_STORAGE_H

#include <stddef.h>
#include <stdint.h>

#include "base/err.h"

#define BK_STORAGE_NAME_MAX 200

typedef struct bk_storage bk_storage;

/* Open the storage named by url. Returns BK_OK with *out (closed by the
 * caller with bk_storage_close), or BK_ERR: BK_E_INVAL for a URL that is
 * not file://DIR or a valid s3:// URL (the message names the URL:
 * "storage: bad url 'x': ..."), and for s3:// without credentials in the
 * environment ("storage: s3://b/p: no credentials: set ..."); BK_E_IO when
 * DIR cannot be created or opened; BK_E_NOMEM. Opening s3:// makes no
 * request: a wrong endpoint or secret shows at the first call. */
int bk_storage_open(const char *url, bk_storage **out, bk_err *e);

/* Close a handle (safe on NULL). */
void bk_storage_close(bk_storage *s);

/* The URL the handle was opened with (owned by the handle; never holds a
 * secret). */
const char *bk_storage_url(const bk_storage *s);

/* Store len bytes under name. Returns BK_OK once the object is durable and
 * read back equal, also when it already held exactly these bytes; or
 * BK_ERR: BK_E_INVAL (bad name), BK_E_STATE (the object exists with
 * different content: "storage: object 'n' already exists in 'url' with
 * different content"), BK_E_IO (write, sync or read-back failed; nothing
 * is left under name by us in that case), BK_E_NOMEM. */
int bk_storage_put(bk_storage *s, const char *name, const void *data, size_t len,
                   bk_err *e);

/* Read the object name. Returns BK_OK with *data, a malloc'd buffer of *len
 * bytes plus an extra NUL byte not counted in *len (caller frees), or
 * BK_ERR: BK_E_NOTFOUND, BK_E_INVAL (bad name), BK_E_IO, BK_E_NOMEM; then
 * *data is NULL and *len 0. */
int bk_storage_get(bk_storage *s, const char *name, void **data, size_t *len, bk_err *e);

/* Read the object name in pieces, in order, without a copy of the whole:
 * cb(opaque, piece, n, e) for each (a piece is only valid during the
 * call; a cb that returns BK_ERR, with e set, stops the read and its
 * error is returned). A back end that cannot stream hands the whole
 * object in one piece. Errors as bk_storage_get. */
typedef int (*bk_storage_piece_cb)(void *opaque, const void *piece, size_t n, bk_err *e);
int bk_storage_read(bk_storage *s, const char *name, bk_storage_piece_cb cb, void *opaque,
                    bk_err *e);

/* Whether name exists, and its size. Returns BK_OK with *exists (0 or 1)
 * and *size (0 when absent; size may be NULL), or BK_ERR: BK_E_INVAL (bad
 * name), BK_E_IO. */
int bk_storage_head(bk_storage *s, const char *name, int *exists, uint64_t *size,
                    bk_err *e);

/* The names of the objects that start with prefix ("" or NULL: all),
 * sorted by strcmp. Returns BK_OK with *names, an array of *count
 * malloc'd strings (free it with bk_storage_names_free; NULL when count is
 * 0), or BK_ERR: BK_E_IO, BK_E_NOMEM. Temporary files are never listed. */
int bk_storage_list(bk_storage *s, const char *prefix, char ***names, size_t *count,
                    bk_err *e);

/* Free what bk_storage_list returned (safe on NULL). */
void bk_storage_names_free(char **names, size_t count);

/* Delete name; deleting an absent object succeeds (as S3 does). Returns
 * BK_OK or BK_ERR: BK_E_INVAL (bad name), BK_E_IO. */
int bk_storage_delete(bk_storage *s, const char *name, bk_err *e);

#endif
