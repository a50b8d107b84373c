/* noop.c - the no-op application: its state is the number of records
 * applied and a SHA-256 chain over them (chain = SHA-256(chain || offset ||
 * value)), so replicas that applied the same prefix have the same digest.
 * It rejects nothing and has no external effect. Used by the worker tests
 * and the benchmark (a). State file: <dir>/noop.state, one line
 * "br2k-noop 1 <lpi> <count> <chain hex> c<check>" padded to a fixed
 * NOOP_WIDTH bytes: created atomically, then overwritten in place with one
 * fdatasync by each sync (bk_file_overwrite; the check field, optional
 * when read, refuses a damaged line). A plug-in like any other, built
 * against the public interface only (br2k/app.h; common/ for its files):
 * the small file helpers below are its own. */
#include "noop_plugin.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <jansson.h>
#include <openssl/evp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "base/fileio.h"
#include "base/jscan.h"

#define NOOP_WIDTH 192

/* The fixed-size state line: the same format as the worker's own
 * fixed-size files (base/fileio.h: bk_fixed_line, bk_text_check), written
 * in place by bk_file_overwrite. */

struct br2k_app {
    char path[4096];
    int64_t lpi, count;
    unsigned char chain[32];
    int dirty;
    int fd;         /* noop.state, open for overwrites; -1 until the first */
    EVP_MD_CTX *md; /* reused by apply */
    EVP_MD *sha256; /* fetched once: EVP_sha256() in each init fetches it again */
};

static void hex32(const unsigned char *b, char hex[65]) {
    static const char digits[] = "0123456789abcdef";
    for (int i = 0; i < 32; i++) {
        hex[2 * i] = digits[b[i] >> 4];
        hex[2 * i + 1] = digits[b[i] & 15];
    }
    hex[64] = '\0';
}

static int unhex32(const char *hex, unsigned char *b) {
    if (strlen(hex) != 64)
        return -1;
    for (int i = 0; i < 64; i++) {
        char c = hex[i];
        int v = c >= '0' && c <= '9' ? c - '0' : c >= 'a' && c <= 'f' ? c - 'a' + 10 : -1;
        if (v < 0)
            return -1;
        if (i % 2 == 0)
            b[i / 2] = (unsigned char)(v << 4);
        else
            b[i / 2] |= (unsigned char)v;
    }
    return 0;
}

static int state_text(const br2k_app *a, char *buf, size_t size) {
    char hex[65];
    hex32(a->chain, hex);
    int n = snprintf(buf, size, "br2k-noop 1 %" PRId64 " %" PRId64 " %s", a->lpi,
                     a->count, hex);
    return bk_fixed_line(buf, size, NOOP_WIDTH, n);
}

static int parse_state(br2k_app *a, const char *text, bk_err *e) {
    long long lpi, count;
    char hex[65];
    int end = 0;
    if (sscanf(text, "br2k-noop 1 %lld %lld %64s%n", &lpi, &count, hex, &end) != 3 ||
        unhex32(hex, a->chain) != 0)
        return bk_err_set(e, BK_E_INVAL, "damaged no-op state '%s'", a->path);
    const char *rest = text + end;
    if (rest[0] == ' ' && rest[1] == 'c') { /* the check field (fixed_line) */
        char want[16];
        snprintf(want, sizeof(want), "c%08x", bk_text_check(text, (size_t)end));
        if (strncmp(rest + 1, want, 9) != 0)
            return bk_err_set(e, BK_E_INVAL, "damaged no-op state '%s': bad check",
                              a->path);
    }
    a->lpi = lpi;
    a->count = count;
    return BK_OK;
}

static void noop_close(br2k_app *a);

static int noop_open(const char *dir, br2k_app **out, int64_t *lpi, bk_err *e) {
    if (mkdir(dir, 0755) != 0 && errno != EEXIST)
        return bk_err_set(e, BK_E_IO, "cannot create '%s': %s", dir, strerror(errno));
    br2k_app *a = calloc(1, sizeof(*a));
    if (a == NULL)
        return bk_err_set(e, BK_E_NOMEM, "out of memory");
    if ((size_t)snprintf(a->path, sizeof(a->path), "%s/noop.state", dir) >=
        sizeof(a->path)) {
        free(a);
        return bk_err_set(e, BK_E_INVAL, "path '%s' is too long", dir);
    }
    a->lpi = -1;
    a->fd = -1;
    a->md = EVP_MD_CTX_new();
    a->sha256 = EVP_MD_fetch(NULL, "SHA256", NULL);
    if (a->md == NULL || a->sha256 == NULL) {
        noop_close(a);
        return bk_err_set(e, BK_E_NOMEM, "cannot set up SHA-256 (out of memory)");
    }
    FILE *f = fopen(a->path, "r");
    if (f != NULL) {
        char line[256] = "";
        char *got = fgets(line, sizeof(line), f);
        fclose(f);
        if (got == NULL || parse_state(a, line, e) != BK_OK) {
            noop_close(a);
            return got ? BK_ERR
                       : bk_err_set(e, BK_E_INVAL, "empty no-op state '%s'", dir);
        }
    } else if (errno != ENOENT) {
        int err = errno;
        noop_close(a);
        return bk_err_set(e, BK_E_IO, "cannot open '%s': %s", dir, strerror(err));
    }
    *out = a;
    *lpi = a->lpi;
    return BK_OK;
}

/* The request id "<client>:<seq>" and op of a BR2K request, if any. */
static json_t *result_slow(int64_t offset, const void *rec, size_t len) {
    json_t *req = json_loadb(rec, len, 0, NULL);
    json_t *id = json_null(), *op = json_null();
    if (req != NULL) {
        json_t *jid = json_object_get(req, "id");
        const char *client = json_string_value(json_object_get(jid, "client"));
        json_t *seq = json_object_get(jid, "seq");
        if (client != NULL && json_is_integer(seq)) {
            char buf[256];
            snprintf(buf, sizeof(buf), "%s:%" JSON_INTEGER_FORMAT, client,
                     json_integer_value(seq));
            id = json_string(buf);
        }
        const char *o = json_string_value(json_object_get(req, "op"));
        if (o != NULL)
            op = json_string(o);
        json_decref(req);
    }
    return json_pack("{s:i,s:o,s:I,s:o,s:s,s:{},s:b}", "v", 1, "id", id, "offset",
                     (json_int_t)offset, "op", op, "status", "ok", "data", "repeat", 0);
}

/* The same result as result_slow() in its JSON text (compact, sorted keys),
 * built without jansson when the request is in bk_jscan's subset (every
 * string then needs no escaping); NULL: use result_slow(). */
static char *result_fast(int64_t offset, const void *rec, size_t len) {
    static const char *const top[] = {"id", "op"}, *const idk[] = {"client", "seq"};
    bk_jspan v[2], iv[2];
    if (!bk_jscan(rec, len, top, 2, v))
        return NULL;
    char id[300] = "null", op[300] = "null";
    if (v[0].type == 'o' && bk_jscan(v[0].p, v[0].len, idk, 2, iv) && iv[0].type == 's' &&
        iv[1].type == 'i') {
        if (iv[1].len == 2 && iv[1].p[0] == '-' && iv[1].p[1] == '0')
            return NULL; /* jansson prints -0 as 0 */
        if (iv[0].len + iv[1].len + 4 > sizeof(id))
            return NULL;
        snprintf(id, sizeof(id), "\"%.*s:%.*s\"", (int)iv[0].len, iv[0].p, (int)iv[1].len,
                 iv[1].p);
    } else if (v[0].type == 'o' && !bk_jscan(v[0].p, v[0].len, idk, 2, iv)) {
        return NULL;
    }
    if (v[1].type == 's') {
        if (v[1].len + 3 > sizeof(op))
            return NULL;
        snprintf(op, sizeof(op), "\"%.*s\"", (int)v[1].len, v[1].p);
    }
    char *out = malloc(strlen(id) + strlen(op) + 120);
    if (out != NULL)
        sprintf(out,
                "{\"data\":{},\"id\":%s,\"offset\":%" PRId64
                ",\"op\":%s,\"repeat\":false,\"status\":\"ok\",\"v\":1}",
                id, offset, op);
    return out;
}

static int noop_apply(br2k_app *a, int64_t offset, const void *rec, size_t len,
                      char **result, int *applied, bk_err *e) {
    unsigned char off[8], md[EVP_MAX_MD_SIZE];
    unsigned int mdlen = 0;
    for (int i = 0; i < 8; i++)
        off[i] = (unsigned char)((uint64_t)offset >> (56 - 8 * i));
    EVP_MD_CTX *c = a->md;
    int ok = EVP_DigestInit_ex2(c, a->sha256, NULL) == 1 &&
             EVP_DigestUpdate(c, a->chain, 32) == 1 && EVP_DigestUpdate(c, off, 8) == 1 &&
             (len == 0 || EVP_DigestUpdate(c, rec, len) == 1) &&
             EVP_DigestFinal_ex(c, md, &mdlen) == 1;
    if (!ok)
        return bk_err_set(e, BK_E_NOMEM, "cannot hash record %" PRId64, offset);
    *result = result_fast(offset, rec, len);
    if (*result == NULL) {
        json_t *res = result_slow(offset, rec, len);
        *result = res ? json_dumps(res, JSON_COMPACT | JSON_SORT_KEYS) : NULL;
        json_decref(res);
    }
    if (*result == NULL)
        return bk_err_set(e, BK_E_NOMEM, "out of memory");
    memcpy(a->chain, md, 32);
    a->lpi = offset;
    a->count++;
    a->dirty = 1;
    *applied = 1;
    return BK_OK;
}

static int noop_sync(br2k_app *a, bk_err *e) {
    if (!a->dirty)
        return BK_OK;
    char buf[256];
    int n = state_text(a, buf, sizeof(buf));
    if (n < 0)
        return bk_err_set(e, BK_E_INVAL, "no-op state too long");
    if (bk_file_overwrite(&a->fd, a->path, buf, (size_t)n, e) != BK_OK)
        return BK_ERR;
    a->dirty = 0;
    return BK_OK;
}

static int noop_snapshot(br2k_app *a, void **buf, size_t *len, int64_t *lpi, bk_err *e) {
    char tmp[256];
    int n = state_text(a, tmp, sizeof(tmp));
    *buf = malloc((size_t)n);
    if (*buf == NULL)
        return bk_err_set(e, BK_E_NOMEM, "out of memory");
    memcpy(*buf, tmp, (size_t)n);
    *len = (size_t)n;
    *lpi = a->lpi;
    return BK_OK;
}

static int noop_restore(br2k_app *a, const void *buf, size_t len, bk_err *e) {
    char tmp[256];
    if (len >= sizeof(tmp))
        return bk_err_set(e, BK_E_INVAL, "no-op snapshot too long");
    memcpy(tmp, buf, len);
    tmp[len] = '\0';
    br2k_app copy = *a;
    if (parse_state(&copy, tmp, e) != BK_OK)
        return BK_ERR;
    copy.dirty = 1;
    *a = copy;
    return noop_sync(a, e);
}

static int noop_digest(br2k_app *a, char hex[65], bk_err *e) {
    (void)e;
    hex32(a->chain, hex);
    return BK_OK;
}

static void noop_close(br2k_app *a) {
    if (a->fd >= 0)
        close(a->fd);
    EVP_MD_CTX_free(a->md);
    EVP_MD_free(a->sha256);
    free(a);
}

/* ---- the plug-in (br2k/app.h): the functions above, their bk_err
 * (common/base/err.h, same codes) turned into the public br2k_app_error ---- */

static int pub(int rc, const bk_err *be, br2k_app_error *e) {
    if (rc == BK_OK)
        return BR2K_APP_OK;
    return br2k_app_error_set(e, be->code, "%s", be->msg);
}

static int p_open(const char *dir, br2k_app **app, int64_t *lpi, br2k_app_error *e) {
    bk_err be;
    return pub(noop_open(dir, app, lpi, &be), &be, e);
}

static int p_apply(br2k_app *a, int64_t offset, const void *rec, size_t len,
                   char **result, int *applied, br2k_app_error *e) {
    bk_err be;
    return pub(noop_apply(a, offset, rec, len, result, applied, &be), &be, e);
}

static int p_sync(br2k_app *a, br2k_app_error *e) {
    bk_err be;
    return pub(noop_sync(a, &be), &be, e);
}

static int p_snapshot(br2k_app *a, void **buf, size_t *len, int64_t *lpi,
                      br2k_app_error *e) {
    bk_err be;
    return pub(noop_snapshot(a, buf, len, lpi, &be), &be, e);
}

static int p_restore(br2k_app *a, const void *buf, size_t len, br2k_app_error *e) {
    bk_err be;
    return pub(noop_restore(a, buf, len, &be), &be, e);
}

static int p_digest(br2k_app *a, char hex[65], br2k_app_error *e) {
    bk_err be;
    return pub(noop_digest(a, hex, &be), &be, e);
}

static const br2k_app_plugin plugin = {
    .abi_version = BR2K_APP_ABI_VERSION,
    .name = "noop",
    .open = p_open,
    .apply = p_apply,
    .sync = p_sync,
    .external = NULL,
    .external_many = NULL,
    .snapshot = p_snapshot,
    .restore = p_restore,
    .digest = p_digest,
    .close = noop_close,
};

const br2k_app_plugin *br2k_noop_entry(void) {
    return &plugin;
}
