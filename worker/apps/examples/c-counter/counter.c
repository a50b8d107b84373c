/* counter.c - an example BR2K plug-in in C, built outside the tree against
 * the installed br2k/app.h (see Makefile and README.md).
 *
 * A per-client request counter with nonces, the smallest useful service:
 * every request {"id":{"client":C,"seq":S},"op":...} counts once for its
 * client C, whose sequence numbers act as nonces (a request whose seq is
 * not above C's last one is a repeat: it changes nothing). The leader
 * mirrors the counts into Redis through the host's fenced ext_write:
 * br2k:{<svc>}:ext:counts (hash client -> count) and ext:total.
 *
 * State file <dir>/counter.state: "br2k-counter 1 <lpi> <total> <n>\n"
 * then "<client> <seq> <count>\n" per client, sorted by client; written
 * atomically (temporary file, fsync, rename, fsync of the directory) by
 * `sync`. Snapshots are the same text; the digest is its SHA-256. */
#include <br2k/app.h>

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <openssl/evp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define MAX_CLIENTS 4096
#define CLIENT_MAX 64

typedef struct client {
    char name[CLIENT_MAX + 1];
    int64_t seq, count;
} client;

struct br2k_app {
    char dir[3800];
    int64_t lpi, total;
    size_t n;
    client *c; /* sorted by name */
    int dirty;
};

/* ---- the state as text: the state file, the snapshot, the digest ---- */

static char *encode(const br2k_app *a, size_t *len) {
    size_t cap = 64 + a->n * (CLIENT_MAX + 48);
    char *buf = malloc(cap);
    if (buf == NULL)
        return NULL;
    size_t k = (size_t)snprintf(buf, cap, "br2k-counter 1 %" PRId64 " %" PRId64 " %zu\n",
                                a->lpi, a->total, a->n);
    for (size_t i = 0; i < a->n; i++)
        k += (size_t)snprintf(buf + k, cap - k, "%s %" PRId64 " %" PRId64 "\n",
                              a->c[i].name, a->c[i].seq, a->c[i].count);
    *len = k;
    return buf;
}

static int decode(br2k_app *a, const char *text, br2k_app_error *e) {
    long long lpi, total;
    size_t n;
    int used = 0;
    if (sscanf(text, "br2k-counter 1 %lld %lld %zu\n%n", &lpi, &total, &n, &used) != 3 ||
        n > MAX_CLIENTS)
        return br2k_app_error_set(e, BR2K_APP_E_STATE, "counter: damaged state header");
    client *c = calloc(n ? n : 1, sizeof(*c));
    if (c == NULL)
        return br2k_app_error_set(e, BR2K_APP_E_NOMEM, "counter: out of memory");
    const char *p = text + used;
    for (size_t i = 0; i < n; i++) {
        long long seq, count;
        int m = 0;
        if (sscanf(p, "%64s %lld %lld\n%n", c[i].name, &seq, &count, &m) != 3 || m == 0) {
            free(c);
            return br2k_app_error_set(e, BR2K_APP_E_STATE,
                                      "counter: damaged state line %zu", i + 2);
        }
        c[i].seq = seq;
        c[i].count = count;
        p += m;
    }
    free(a->c);
    a->c = c;
    a->n = n;
    a->lpi = lpi;
    a->total = total;
    return BR2K_APP_OK;
}

/* ---- durable files ---- */

static int write_atomic(const br2k_app *a, const char *buf, size_t len,
                        br2k_app_error *e) {
    char tmp[4096], dst[4096];
    snprintf(tmp, sizeof(tmp), "%s/counter.state.tmp", a->dir);
    snprintf(dst, sizeof(dst), "%s/counter.state", a->dir);
    int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd < 0)
        return br2k_app_error_set(e, BR2K_APP_E_IO, "cannot create '%s': %s", tmp,
                                  strerror(errno));
    size_t off = 0;
    while (off < len) {
        ssize_t w = write(fd, buf + off, len - off);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0) {
            close(fd);
            return br2k_app_error_set(e, BR2K_APP_E_IO, "cannot write '%s': %s", tmp,
                                      strerror(errno));
        }
        off += (size_t)w;
    }
    if (fsync(fd) != 0 || close(fd) != 0)
        return br2k_app_error_set(e, BR2K_APP_E_IO, "cannot sync '%s': %s", tmp,
                                  strerror(errno));
    if (rename(tmp, dst) != 0)
        return br2k_app_error_set(e, BR2K_APP_E_IO, "cannot rename '%s': %s", tmp,
                                  strerror(errno));
    int dfd = open(a->dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (dfd < 0 || fsync(dfd) != 0) {
        if (dfd >= 0)
            close(dfd);
        return br2k_app_error_set(e, BR2K_APP_E_IO, "cannot sync '%s': %s", a->dir,
                                  strerror(errno));
    }
    close(dfd);
    return BR2K_APP_OK;
}

/* ---- the operations ---- */

static void counter_close(br2k_app *a) {
    if (a != NULL)
        free(a->c);
    free(a);
}

static int counter_open(const char *dir, br2k_app **out, int64_t *lpi,
                        br2k_app_error *e) {
    if (mkdir(dir, 0755) != 0 && errno != EEXIST)
        return br2k_app_error_set(e, BR2K_APP_E_IO, "cannot create '%s': %s", dir,
                                  strerror(errno));
    br2k_app *a = calloc(1, sizeof(*a));
    if (a == NULL)
        return br2k_app_error_set(e, BR2K_APP_E_NOMEM, "counter: out of memory");
    if ((size_t)snprintf(a->dir, sizeof(a->dir), "%s", dir) >= sizeof(a->dir)) {
        free(a);
        return br2k_app_error_set(e, BR2K_APP_E_INVAL, "counter: path too long");
    }
    a->lpi = -1;
    char path[4096];
    snprintf(path, sizeof(path), "%s/counter.state", dir);
    FILE *f = fopen(path, "r");
    if (f != NULL) {
        static char text[MAX_CLIENTS * (CLIENT_MAX + 48) + 64];
        size_t n = fread(text, 1, sizeof(text) - 1, f);
        fclose(f);
        text[n] = '\0';
        if (decode(a, text, e) != BR2K_APP_OK) {
            counter_close(a);
            return BR2K_APP_ERR;
        }
    } else if (errno != ENOENT) {
        counter_close(a);
        return br2k_app_error_set(e, BR2K_APP_E_IO, "cannot open '%s': %s", path,
                                  strerror(errno));
    }
    *out = a;
    *lpi = a->lpi;
    return BR2K_APP_OK;
}

/* The string value of "key" in rec (no escapes), or the integer value
 * (str NULL); 0 when not found. A tiny scanner: this example takes the
 * request id only; a real service parses its requests with a JSON
 * library. */
static int find(const char *rec, size_t len, const char *key, char *str, size_t size,
                long long *num) {
    size_t k = strlen(key);
    for (size_t i = 0; i + k + 2 < len; i++) {
        if (rec[i] != '"' || memcmp(rec + i + 1, key, k) != 0 || rec[i + 1 + k] != '"')
            continue;
        size_t j = i + k + 2;
        while (j < len && (rec[j] == ' ' || rec[j] == ':'))
            j++;
        if (str != NULL) {
            if (j >= len || rec[j] != '"')
                return 0;
            size_t s = ++j;
            while (j < len && rec[j] != '"' && rec[j] != '\\')
                j++;
            if (j >= len || rec[j] != '"' || j - s == 0 || j - s >= size)
                return 0;
            memcpy(str, rec + s, j - s);
            str[j - s] = '\0';
            return 1;
        }
        char tmp[24];
        size_t s = j;
        while (j < len && j - s < sizeof(tmp) - 1 &&
               ((rec[j] >= '0' && rec[j] <= '9') || (j == s && rec[j] == '-')))
            j++;
        if (j == s)
            return 0;
        memcpy(tmp, rec + s, j - s);
        tmp[j - s] = '\0';
        *num = strtoll(tmp, NULL, 10);
        return 1;
    }
    return 0;
}

static int valid_name(const char *s) {
    for (; *s; s++)
        if (!((*s >= 'a' && *s <= 'z') || (*s >= 'A' && *s <= 'Z') ||
              (*s >= '0' && *s <= '9') || *s == '-' || *s == '_' || *s == '.'))
            return 0;
    return 1;
}

static int counter_apply(br2k_app *a, int64_t offset, const void *rec, size_t len,
                         char **result, int *applied, br2k_app_error *e) {
    char name[CLIENT_MAX + 1], op[32] = "count";
    long long seq = 0;
    char buf[512];
    *applied = 0;
    find(rec, len, "op", op, sizeof(op), NULL);
    if (!valid_name(op))
        snprintf(op, sizeof(op), "count");
    if (!find(rec, len, "client", name, sizeof(name), NULL) ||
        !find(rec, len, "seq", NULL, 0, &seq) || !valid_name(name) || seq < 0) {
        snprintf(buf, sizeof(buf),
                 "{\"data\":null,\"id\":null,\"offset\":%" PRId64
                 ",\"op\":\"%s\",\"reason\":{\"code\":\"bad_request\",\"text\":\"no "
                 "request id (id.client, id.seq)\"},\"repeat\":false,\"status\":"
                 "\"rejected\",\"v\":1}",
                 offset, op);
    } else {
        /* find or insert the client, keeping the array sorted */
        size_t lo = 0, hi = a->n;
        while (lo < hi) {
            size_t mid = (lo + hi) / 2;
            if (strcmp(a->c[mid].name, name) < 0)
                lo = mid + 1;
            else
                hi = mid;
        }
        client *c = lo < a->n && strcmp(a->c[lo].name, name) == 0 ? &a->c[lo] : NULL;
        if (c == NULL && a->n >= MAX_CLIENTS) {
            snprintf(buf, sizeof(buf),
                     "{\"data\":null,\"id\":\"%s:%lld\",\"offset\":%" PRId64
                     ",\"op\":\"%s\",\"reason\":{\"code\":\"full\",\"text\":\"too many "
                     "clients\"},\"repeat\":false,\"status\":\"rejected\",\"v\":1}",
                     name, seq, offset, op);
        } else {
            int repeat = c != NULL && seq <= c->seq;
            if (c == NULL) {
                client *nc = realloc(a->c, (a->n + 1) * sizeof(*nc));
                if (nc == NULL)
                    return br2k_app_error_set(e, BR2K_APP_E_NOMEM,
                                              "counter: out of memory");
                a->c = nc;
                memmove(a->c + lo + 1, a->c + lo, (a->n - lo) * sizeof(*nc));
                c = &a->c[lo];
                memset(c, 0, sizeof(*c));
                snprintf(c->name, sizeof(c->name), "%s", name);
                c->seq = -1;
                a->n++;
            }
            if (!repeat) {
                c->seq = seq;
                c->count++;
                a->total++;
                *applied = 1;
            }
            snprintf(buf, sizeof(buf),
                     "{\"data\":{\"client\":\"%s\",\"count\":%" PRId64
                     ",\"total\":%" PRId64 "},\"id\":\"%s:%lld\",\"offset\":%" PRId64
                     ",\"op\":\"%s\",\"repeat\":%s,\"status\":\"ok\",\"v\":1}",
                     name, c->count, a->total, name, seq, offset, op,
                     repeat ? "true" : "false");
        }
    }
    *result = strdup(buf);
    if (*result == NULL)
        return br2k_app_error_set(e, BR2K_APP_E_NOMEM, "counter: out of memory");
    a->lpi = offset;
    a->dirty = 1;
    return BR2K_APP_OK;
}

static int counter_sync(br2k_app *a, br2k_app_error *e) {
    if (!a->dirty)
        return BR2K_APP_OK;
    size_t len;
    char *buf = encode(a, &len);
    if (buf == NULL)
        return br2k_app_error_set(e, BR2K_APP_E_NOMEM, "counter: out of memory");
    int rc = write_atomic(a, buf, len, e);
    free(buf);
    if (rc == BR2K_APP_OK)
        a->dirty = 0;
    return rc;
}

/* The external effect: from the results only (it may run beside apply),
 * HSET ext:counts <client> <count> and SET ext:total <total> for each
 * counted request, all in one fenced, idempotent-per-offset ext_write. */
static int counter_external_many(br2k_app *a, const br2k_host *h, const int64_t *offsets,
                                 const char *const *results, size_t n,
                                 br2k_app_error *e) {
    (void)a;
    br2k_ext_record *recs = calloc(n ? n : 1, sizeof(*recs));
    br2k_ext_op *ops = calloc(n ? 2 * n : 1, sizeof(*ops));
    char(*vals)[3][CLIENT_MAX + 1] = calloc(n ? n : 1, sizeof(*vals));
    int rc = BR2K_APP_OK;
    size_t k = 0;
    if (recs == NULL || ops == NULL || vals == NULL) {
        rc = br2k_app_error_set(e, BR2K_APP_E_NOMEM, "counter: out of memory");
        goto out;
    }
    for (size_t i = 0; i < n; i++) {
        const char *r = results[i];
        size_t len = strlen(r);
        long long count, total;
        if (strstr(r, "\"status\":\"ok\"") == NULL ||
            strstr(r, "\"repeat\":false") == NULL ||
            !find(r, len, "client", vals[k][0], sizeof(vals[k][0]), NULL) ||
            !find(r, len, "count", NULL, 0, &count) ||
            !find(r, len, "total", NULL, 0, &total))
            continue; /* a rejection or a repeat: nothing to mirror */
        snprintf(vals[k][1], sizeof(vals[k][1]), "%lld", count);
        snprintf(vals[k][2], sizeof(vals[k][2]), "%lld", total);
        ops[2 * k] = (br2k_ext_op){BR2K_EXT_HSET, "counts", vals[k][0], vals[k][1], 0};
        ops[2 * k + 1] = (br2k_ext_op){BR2K_EXT_SET, "total", NULL, vals[k][2], 0};
        recs[k] = (br2k_ext_record){offsets[i], &ops[2 * k], 2};
        k++;
    }
    if (k > 0)
        rc = h->ext_write(h, recs, k, e);
out:
    free(recs);
    free(ops);
    free(vals);
    return rc;
}

static int counter_external(br2k_app *a, const br2k_host *h, int64_t offset,
                            const char *result, br2k_app_error *e) {
    return counter_external_many(a, h, &offset, &result, 1, e);
}

static int counter_snapshot(br2k_app *a, void **buf, size_t *len, int64_t *lpi,
                            br2k_app_error *e) {
    char *s = encode(a, len);
    if (s == NULL)
        return br2k_app_error_set(e, BR2K_APP_E_NOMEM, "counter: out of memory");
    *buf = s;
    *lpi = a->lpi;
    return BR2K_APP_OK;
}

static int counter_restore(br2k_app *a, const void *buf, size_t len, br2k_app_error *e) {
    char *text = malloc(len + 1);
    if (text == NULL)
        return br2k_app_error_set(e, BR2K_APP_E_NOMEM, "counter: out of memory");
    memcpy(text, buf, len);
    text[len] = '\0';
    int rc = decode(a, text, e);
    free(text);
    if (rc != BR2K_APP_OK)
        return rc;
    a->dirty = 1;
    return counter_sync(a, e); /* durable before it returns */
}

/* SHA-256 of the clients and their counts (the state text without its
 * header line, so not the LPI), lowercase hex. */
static int counter_digest(br2k_app *a, char hex[65], br2k_app_error *e) {
    size_t len;
    char *text = encode(a, &len);
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned int mdlen = 0;
    if (text == NULL)
        return br2k_app_error_set(e, BR2K_APP_E_NOMEM, "counter: out of memory");
    const char *body = strchr(text, '\n') + 1;
    int ok = EVP_Digest(body, len - (size_t)(body - text), md, &mdlen, EVP_sha256(),
                        NULL) == 1;
    free(text);
    if (!ok || mdlen != 32)
        return br2k_app_error_set(e, BR2K_APP_E_STATE, "counter: cannot hash the state");
    for (int i = 0; i < 32; i++)
        snprintf(hex + 2 * i, 3, "%02x", md[i]);
    return BR2K_APP_OK;
}

static const br2k_app_plugin plugin = {
    .abi_version = BR2K_APP_ABI_VERSION,
    .name = "counter",
    .open = counter_open,
    .apply = counter_apply,
    .sync = counter_sync,
    .external = counter_external,
    .external_many = counter_external_many,
    .snapshot = counter_snapshot,
    .restore = counter_restore,
    .digest = counter_digest,
    .close = counter_close,
};

const br2k_app_plugin *br2k_app_entry(void) {
    return &plugin;
}
