/* br2k-app-serve.c - any C plug-in (br2k/app.h) out of the worker's process:
 * it loads the plug-in through the public ABI, exactly as the worker does
 * (a built-in name, infodid or noop, linked in; or a .so with
 * br2k_app_entry, the same checks), and serves it over the application
 * protocol, version 1 (schemas/app-protocol.md):
 *
 *     br2k-worker --app 'exec:br2k-app-serve infodid'        (fd 3)
 *     br2k-app-serve --listen /run/app.sock ./libmine.so &   (a socket)
 *     br2k-worker --app unix:/run/app.sock
 *
 * So a plug-in runs isolated from the worker (its crash, leak or hang is an
 * application crash that the worker survives, I6), and the same state
 * directory, digests and snapshots serve both ways: a state written by the
 * plug-in in-process opens through the bridge and back, and a backup taken
 * by one restores into the other (the plug-in's name is the Open reply's).
 *
 * One request at a time, in order. Apply calls `apply` once per record
 * (offsets must increase), Sync `sync`, Digest `digest`, Snapshot
 * `snapshot` (its bytes sent in 1 MiB chunks), Restore `restore` of the
 * chunks gathered, then the plug-in is closed and opened again on the same
 * directory to read back the restored LPI (the ABI's restore does not
 * return it). A failed operation is an Error frame with the plug-in's
 * message, and the connection ends (the engine treats the application as
 * crashed). A plug-in with an external effect says so in its Open reply;
 * External calls its `external_many` (or `external` per record) with a
 * host whose `ext_write` gathers the ops into the External reply, which
 * the engine then writes, fenced and once per offset, exactly as the
 * worker's own host would (`ext_applied` is not available here: the
 * bridge has no Redis; the host's `service` is $BR2K_SERVICE, which the
 * worker sets). A plug-in with `republish` (ABI 2) says so too; Republish
 * calls it with a host whose `ext_replace` gathers the whole view into the
 * Republish reply, which the engine puts in place of the view in Redis
 * (fenced, atomic) as the worker's own host would.
 *
 * Signals: with fd 3 the worker owns the bridge's life (Close, the end of
 * the connection, or the worker's death), so SIGINT and SIGTERM sent to the
 * whole process group are ignored and the worker can still sync and close
 * it; with --listen they stop the server after the current request. */
#include <dlfcn.h>
#include <errno.h>
#include <inttypes.h>
#include <jansson.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "base/config.h"
#include "base/log.h"
#include "br2k/app_wire.h"
#include "base/sig.h"
#include "br2k/app.h"
#include "infodid_plugin.h"
#include "noop_plugin.h"

#define FRAME_MAX (256u << 20) /* the protocol's frame limit */
#define CHUNK (1u << 20)       /* snapshot chunks we send */
#define EXIT_CONFIG 2          /* a bad option, as br2k-worker */

extern char **environ;

/* ---- the plug-in ---- */

static const br2k_app_plugin *P; /* the plug-in served */
static char P_origin[4096];      /* "built-in" or its path */

typedef struct served {
    br2k_app *app; /* NULL: no state open */
    char dir[4096];
    char name[64]; /* the protocol name (Open reply) */
    int64_t lpi;   /* the LPI of the state: open, then each apply */
} served;

static int check_plugin(const br2k_app_plugin *p, const char *origin) {
    if (p == NULL) {
        fprintf(stderr, "br2k-app-serve: application '%s': %s() returned NULL\n", origin,
                BR2K_APP_ENTRY_SYMBOL);
        return -1;
    }
    /* version 1 lacks only `republish` (then never offered in Open) */
    if (p->abi_version != BR2K_APP_ABI_VERSION && p->abi_version != 1) {
        fprintf(stderr,
                "br2k-app-serve: application '%s': wrong ABI version %" PRIu32
                ", this bridge supports 1 to %u (rebuild it against this br2k/app.h)\n",
                origin, p->abi_version, BR2K_APP_ABI_VERSION);
        return -1;
    }
    if (p->name == NULL || p->name[0] == '\0' || strlen(p->name) > 64) {
        fprintf(stderr, "br2k-app-serve: application '%s': no name (1 to 64 bytes)\n",
                origin);
        return -1;
    }
    const char *missing = p->open == NULL       ? "open"
                          : p->apply == NULL    ? "apply"
                          : p->sync == NULL     ? "sync"
                          : p->snapshot == NULL ? "snapshot"
                          : p->restore == NULL  ? "restore"
                          : p->digest == NULL   ? "digest"
                                                : NULL;
    if (missing != NULL) {
        fprintf(stderr,
                "br2k-app-serve: application '%s' (%s): missing operation '%s' "
                "(required)\n",
                origin, p->name, missing);
        return -1;
    }
    return 0;
}

static int ends_with(const char *s, const char *tail) {
    size_t n = strlen(s), m = strlen(tail);
    return n >= m && strcmp(s + n - m, tail) == 0;
}

/* SPEC: infodid, noop, or a plug-in file (a path with '/', or NAME.so in
 * the current directory), as the worker's --app. */
static int load(const char *spec) {
    if (strcmp(spec, "infodid") == 0 || strcmp(spec, "noop") == 0) {
        P = spec[0] == 'i' ? br2k_infodid_entry() : br2k_noop_entry();
        snprintf(P_origin, sizeof(P_origin), "built-in %s", spec);
        return check_plugin(P, P_origin);
    }
    if (strchr(spec, '/') == NULL && !ends_with(spec, ".so")) {
        fprintf(stderr,
                "br2k-app-serve: unknown application '%s': expected infodid, noop or a "
                "path to a plug-in (.so)\n",
                spec);
        return -1;
    }
    int n =
        snprintf(P_origin, sizeof(P_origin), "%s%s", strchr(spec, '/') ? "" : "./", spec);
    if (n < 0 || (size_t)n >= sizeof(P_origin)) {
        fprintf(stderr, "br2k-app-serve: application path is too long\n");
        return -1;
    }
    struct stat sb;
    if (stat(P_origin, &sb) != 0 || !S_ISREG(sb.st_mode)) {
        fprintf(stderr, "br2k-app-serve: cannot load application '%s': %s\n", P_origin,
                errno ? strerror(errno) : "not a file");
        return -1;
    }
    dlerror();
    void *h = dlopen(P_origin, RTLD_NOW | RTLD_LOCAL);
    if (h == NULL) {
        const char *why = dlerror();
        fprintf(stderr, "br2k-app-serve: cannot load application '%s': %s\n", P_origin,
                why ? why : "dlopen failed");
        return -1;
    }
    void *sym = dlsym(h, BR2K_APP_ENTRY_SYMBOL);
    if (sym == NULL) {
        fprintf(stderr,
                "br2k-app-serve: application '%s': missing symbol '%s' (not a BR2K "
                "plug-in? see br2k/app.h)\n",
                P_origin, BR2K_APP_ENTRY_SYMBOL);
        return -1;
    }
    const br2k_app_plugin *(*entry)(void);
    memcpy(&entry, &sym, sizeof(entry)); /* ISO C: no void * to function cast */
    P = entry();
    return check_plugin(P, P_origin); /* h stays open until exit */
}

/* The protocol's name: 1 to 63 of A-Z a-z 0-9 . _ -, others as '_'. */
static void proto_name(const char *n, char out[64]) {
    size_t i = 0;
    for (; n[i] != '\0' && i < 63; i++) {
        char c = n[i];
        out[i] = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
                         (c >= '0' && c <= '9') || c == '.' || c == '_' || c == '-'
                     ? c
                     : '_';
    }
    out[i] = '\0';
}

/* ---- frames ---- */

typedef struct conn {
    int fd;
    uint8_t *in; /* the payload of the last frame read */
    size_t incap, inlen;
    int type;
    uint8_t *out; /* the reply being built: 5 header bytes, then payload */
    size_t ocap, olen;
    char err[320]; /* why the connection ends, "" for a clean end */
} conn;

/* Read n bytes: 0, 1 at a clean EOF before the first byte, -1 on error. */
static int readn(conn *c, void *p, size_t n, int eof_ok) {
    size_t k = 0;
    while (k < n) {
        ssize_t r = read(c->fd, (char *)p + k, n - k);
        if (r > 0) {
            k += (size_t)r;
            continue;
        }
        if (r == 0) {
            if (k == 0 && eof_ok)
                return 1;
            snprintf(c->err, sizeof(c->err), "the connection ended in a frame");
            return -1;
        }
        if (errno == EINTR) {
            if (bk_sig_stop && k == 0 && eof_ok)
                return 1; /* --listen: stop between requests */
            continue;
        }
        snprintf(c->err, sizeof(c->err), "read: %s", strerror(errno));
        return -1;
    }
    return 0;
}

static int writen(conn *c, const void *p, size_t n) {
    size_t k = 0;
    while (k < n) {
        ssize_t r = write(c->fd, (const char *)p + k, n - k);
        if (r > 0) {
            k += (size_t)r;
            continue;
        }
        if (r < 0 && errno == EINTR)
            continue;
        snprintf(c->err, sizeof(c->err), "write: %s",
                 r < 0 ? strerror(errno) : "0 bytes");
        return -1;
    }
    return 0;
}

/* Read one frame: 0, 1 at EOF between frames, -1 on error. */
static int read_frame(conn *c) {
    uint8_t h[5];
    int r = readn(c, h, 5, 1);
    if (r != 0)
        return r;
    uint32_t n = br2k_wire_get32(h);
    if (n < 1 || n > FRAME_MAX) {
        snprintf(c->err, sizeof(c->err), "malformed frame: length %" PRIu32, n);
        return -1;
    }
    if (c->incap < n) { /* n - 1 bytes and a NUL */
        uint8_t *b = realloc(c->in, n);
        if (b == NULL) {
            snprintf(c->err, sizeof(c->err), "out of memory for a frame of %" PRIu32, n);
            return -1;
        }
        c->in = b;
        c->incap = n;
    }
    c->inlen = n - 1;
    c->type = h[4];
    if (readn(c, c->in, c->inlen, 0) != 0)
        return -1;
    c->in[c->inlen] = '\0';
    return 0;
}

/* Room for `more` bytes of payload after c->olen. */
static int room(conn *c, size_t more) {
    size_t need = c->olen + more;
    if (need <= c->ocap)
        return 0;
    size_t cap = c->ocap ? c->ocap : 1 << 16;
    while (cap < need)
        cap *= 2;
    uint8_t *b = realloc(c->out, cap);
    if (b == NULL) {
        snprintf(c->err, sizeof(c->err), "out of memory for a reply of %zu bytes", need);
        return -1;
    }
    c->out = b;
    c->ocap = cap;
    return 0;
}

static void begin(conn *c) {
    c->olen = 5;
}

static int append(conn *c, const void *p, size_t n) {
    if (n == 0)
        return 0;
    if (room(c, n) != 0)
        return -1;
    memcpy(c->out + c->olen, p, n);
    c->olen += n;
    return 0;
}

static int send_reply(conn *c, int type) {
    size_t n = c->olen - 5;
    if (n + 1 > FRAME_MAX) {
        snprintf(c->err, sizeof(c->err), "a reply of %zu bytes is too large", n);
        return -1;
    }
    br2k_wire_put32(c->out, (uint32_t)(n + 1));
    c->out[4] = (uint8_t)type;
    return writen(c, c->out, c->olen);
}

/* An Error frame with the message (one line), and the end: -1. */
static int refuse(conn *c, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static int refuse(conn *c, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(c->err, sizeof(c->err), fmt, ap);
    va_end(ap);
    for (char *p = c->err; *p; p++)
        if (*p == '\n' || *p == '\r')
            *p = ' ';
    begin(c);
    if (append(c, c->err, strlen(c->err)) == 0) {
        char keep[sizeof(c->err)];
        memcpy(keep, c->err, sizeof(keep));
        send_reply(c, BR2K_WIRE_ERROR); /* the engine may be gone already */
        memcpy(c->err, keep, sizeof(keep));
    }
    return -1;
}

#define PE(pe)                                                                           \
    br2k_app_error pe;                                                                   \
    pe.code = 0;                                                                         \
    pe.msg[0] = '\0'

static const char *why(const br2k_app_error *pe) {
    return pe->msg[0] ? pe->msg : "no message";
}

/* ---- the methods ---- */

static void close_state(served *s) {
    if (s->app != NULL && P->close != NULL)
        P->close(s->app);
    s->app = NULL;
}

static int open_state(served *s, conn *c) {
    PE(pe);
    br2k_app *app = NULL;
    int64_t lpi = -1;
    if (P->open(s->dir, &app, &lpi, &pe) != BR2K_APP_OK)
        return refuse(c, "%s", why(&pe));
    if (app == NULL)
        return refuse(c, "application '%s': open gave no state", P->name);
    if (lpi < -1)
        return refuse(c, "application '%s': open gave LPI %" PRId64, P->name, lpi);
    s->app = app;
    s->lpi = lpi;
    return 0;
}

/* `republish` is appended in ABI 2: a version 1 table has no such member */
static int can_republish(void) {
    return P->abi_version >= 2 && P->republish != NULL;
}

static int m_open(served *s, conn *c) {
    json_error_t je;
    json_t *req = json_loadb((const char *)c->in, c->inlen, 0, &je);
    const char *dir = json_string_value(json_object_get(req, "dir"));
    json_int_t pv = json_integer_value(json_object_get(req, "protocol"));
    int rc = 0;
    if (dir == NULL || dir[0] == '\0' || strlen(dir) >= sizeof(s->dir))
        rc = refuse(c, "open: not {\"protocol\":1,\"dir\":\"...\"}");
    else if (pv != BR2K_WIRE_VERSION)
        rc = refuse(c, "open: protocol %" JSON_INTEGER_FORMAT ", this bridge speaks %d",
                    pv, BR2K_WIRE_VERSION);
    if (rc == 0) {
        close_state(s); /* a new Open on the same connection */
        snprintf(s->dir, sizeof(s->dir), "%s", dir);
        rc = open_state(s, c);
    }
    json_decref(req);
    if (rc != 0)
        return rc;
    char text[160];
    int ext = P->external != NULL || P->external_many != NULL;
    int n = snprintf(text, sizeof(text),
                     "{\"protocol\":%d,\"name\":\"%s\",\"lpi\":%" PRId64 "%s%s}",
                     BR2K_WIRE_VERSION, s->name, s->lpi, ext ? ",\"external\":true" : "",
                     ext && can_republish() ? ",\"republish\":true" : "");
    BK_INFO("application '%s' (%s) open in '%s': LPI %" PRId64, P->name, P_origin, s->dir,
            s->lpi);
    begin(c);
    return append(c, text, (size_t)n) != 0
               ? -1
               : send_reply(c, BR2K_WIRE_OPEN | BR2K_WIRE_REPLY);
}

static int m_apply(served *s, conn *c) {
    const uint8_t *p = c->in, *end = c->in + c->inlen;
    if (c->inlen < 4)
        return refuse(c, "apply: no record count");
    uint32_t n = br2k_wire_get32(p);
    p += 4;
    begin(c);
    uint8_t cnt[4];
    br2k_wire_put32(cnt, n);
    if (append(c, cnt, 4) != 0)
        return -1;
    for (uint32_t i = 0; i < n; i++) {
        if (end - p < 12 || (size_t)(end - p - 12) < br2k_wire_get32(p + 8))
            return refuse(c, "apply: record %" PRIu32 " of %" PRIu32 " is truncated",
                          i + 1, n);
        int64_t off = (int64_t)br2k_wire_get64(p);
        uint32_t len = br2k_wire_get32(p + 8);
        if (off <= s->lpi)
            return refuse(c,
                          "apply: offset %" PRId64 " after LPI %" PRId64
                          " (offsets only increase)",
                          off, s->lpi);
        PE(pe);
        char *res = NULL;
        int applied = 0;
        int rc = P->apply(s->app, off, p + 12, len, &res, &applied, &pe);
        if (rc != BR2K_APP_OK) {
            free(res);
            return refuse(c, "apply of offset %" PRId64 ": %s", off, why(&pe));
        }
        if (res == NULL)
            return refuse(c,
                          "application '%s': apply of offset %" PRId64 " gave no result",
                          P->name, off);
        s->lpi = off;
        size_t rl = strlen(res);
        uint8_t h[5];
        h[0] = applied ? 1 : 0;
        br2k_wire_put32(h + 1, (uint32_t)rl);
        int bad = append(c, h, 5) != 0 || append(c, res, rl) != 0;
        free(res);
        if (bad)
            return -1;
        p += 12 + len;
    }
    if (p != end)
        return refuse(c, "apply: %zu bytes after the last of %" PRIu32 " records",
                      (size_t)(end - p), n);
    return send_reply(c, BR2K_WIRE_APPLY | BR2K_WIRE_REPLY);
}

static int m_sync(served *s, conn *c) {
    PE(pe);
    if (P->sync(s->app, &pe) != BR2K_APP_OK)
        return refuse(c, "sync: %s", why(&pe));
    begin(c);
    return send_reply(c, BR2K_WIRE_SYNC | BR2K_WIRE_REPLY);
}

static int m_digest(served *s, conn *c) {
    PE(pe);
    char hex[65] = "";
    if (P->digest(s->app, hex, &pe) != BR2K_APP_OK)
        return refuse(c, "digest: %s", why(&pe));
    size_t i = 0;
    while (i < 64 &&
           ((hex[i] >= '0' && hex[i] <= '9') || (hex[i] >= 'a' && hex[i] <= 'f')))
        i++;
    if (i != 64 || hex[64] != '\0')
        return refuse(c, "application '%s': digest is not 64 lowercase hex", P->name);
    begin(c);
    return append(c, hex, 64) != 0 ? -1
                                   : send_reply(c, BR2K_WIRE_DIGEST | BR2K_WIRE_REPLY);
}

static int m_snapshot(served *s, conn *c) {
    PE(pe);
    void *buf = NULL;
    size_t len = 0;
    int64_t lpi = -1;
    if (P->snapshot(s->app, &buf, &len, &lpi, &pe) != BR2K_APP_OK) {
        free(buf);
        return refuse(c, "snapshot: %s", why(&pe));
    }
    if (buf == NULL)
        return refuse(c, "application '%s': snapshot gave no bytes", P->name);
    uint8_t l8[8];
    br2k_wire_put64(l8, (uint64_t)lpi);
    begin(c);
    int rc =
        append(c, l8, 8) != 0 || send_reply(c, BR2K_WIRE_SNAPSHOT | BR2K_WIRE_REPLY) != 0
            ? -1
            : 0;
    for (size_t off = 0; rc == 0 && off < len;) {
        size_t k = len - off < CHUNK ? len - off : CHUNK;
        uint8_t h[5];
        br2k_wire_put32(h, (uint32_t)(k + 1));
        h[4] = BR2K_WIRE_CHUNK;
        if (writen(c, h, 5) != 0 || writen(c, (const uint8_t *)buf + off, k) != 0)
            rc = -1;
        off += k;
    }
    free(buf);
    if (rc != 0)
        return -1;
    begin(c);
    if (send_reply(c, BR2K_WIRE_END) != 0)
        return -1;
    BK_INFO("snapshot of %zu bytes at LPI %" PRId64 " sent", len, lpi);
    return 0;
}

static int m_restore(served *s, conn *c) {
    if (c->inlen != 8)
        return refuse(c, "restore: the header is not an 8-byte size");
    uint64_t size = br2k_wire_get64(c->in);
    /* the declared size, as the engine promises; the chunks are checked
     * against it */
    if (size > (uint64_t)SIZE_MAX / 2)
        return refuse(c, "restore: a snapshot of %" PRIu64 " bytes is too large", size);
    uint8_t *buf = malloc(size ? (size_t)size : 1);
    if (buf == NULL)
        return refuse(c, "restore: out of memory for a snapshot of %" PRIu64 " bytes",
                      size);
    size_t got = 0;
    int rc = 0;
    for (;;) {
        if (read_frame(c) != 0) {
            if (c->err[0] == '\0')
                snprintf(c->err, sizeof(c->err), "the connection ended in a restore");
            rc = -1;
            break;
        }
        if (c->type == BR2K_WIRE_END)
            break;
        if (c->type != BR2K_WIRE_CHUNK) {
            rc = refuse(c, "restore: frame type 0x%02x in the stream (CHUNK or END)",
                        c->type);
            break;
        }
        if (c->inlen > size - got) {
            rc = refuse(c, "restore: more than the %" PRIu64 " bytes announced", size);
            break;
        }
        memcpy(buf + got, c->in, c->inlen);
        got += c->inlen;
    }
    if (rc == 0 && got != size)
        rc = refuse(c, "restore: %zu bytes of the %" PRIu64 " announced", got, size);
    if (rc == 0) {
        PE(pe);
        if (P->restore(s->app, buf, got, &pe) != BR2K_APP_OK)
            rc = refuse(c, "restore: %s", why(&pe));
    }
    free(buf);
    if (rc != 0)
        return rc;
    /* its LPI: the restored state is durable, so open reads it back */
    close_state(s);
    if (open_state(s, c) != 0)
        return -1;
    BK_INFO("restored %zu bytes: LPI %" PRId64, got, s->lpi);
    uint8_t l8[8];
    br2k_wire_put64(l8, (uint64_t)s->lpi);
    begin(c);
    return append(c, l8, 8) != 0 ? -1
                                 : send_reply(c, BR2K_WIRE_RESTORE | BR2K_WIRE_REPLY);
}

/* ---- External: the host's ext_write gathers the ops of each record ---- */

typedef struct gathered {
    uint8_t *b; /* the record's ops, encoded as in the External reply */
    size_t len, cap;
    uint32_t nops;
} gathered;

typedef struct gather {
    const int64_t *offsets; /* the External request's, increasing */
    size_t n;
    gathered *g; /* one per offset */
} gather;

static int g_put(gathered *g, const void *p, size_t n) {
    if (n == 0)
        return 0;
    if (g->len + n > g->cap) {
        size_t cap = g->cap ? g->cap : 256;
        while (cap < g->len + n)
            cap *= 2;
        uint8_t *b = realloc(g->b, cap);
        if (b == NULL)
            return -1;
        g->b = b;
        g->cap = cap;
    }
    memcpy(g->b + g->len, p, n);
    g->len += n;
    return 0;
}

static int g_str(gathered *g, const char *s) {
    size_t n = s != NULL ? strlen(s) : 0;
    uint8_t l[4];
    br2k_wire_put32(l, (uint32_t)n);
    return g_put(g, l, 4) != 0 || g_put(g, s, n) != 0 ? -1 : 0;
}

/* One op, encoded as in the External and Republish replies. */
static int g_op(gathered *g, const br2k_ext_op *op) {
    uint8_t kind = (uint8_t)op->kind, by[8];
    br2k_wire_put64(by, (uint64_t)op->by);
    if (g_put(g, &kind, 1) != 0 || g_str(g, op->name) != 0 || g_str(g, op->field) != 0 ||
        g_str(g, op->value) != 0 || g_put(g, by, 8) != 0)
        return -1;
    g->nops++;
    return 0;
}

static int host_ext_write(const br2k_host *h, const br2k_ext_record *recs, size_t n,
                          br2k_app_error *pe) {
    gather *ga = h->priv;
    for (size_t i = 0; i < n; i++) {
        size_t lo = 0, hi = ga->n; /* the record's index among the request's */
        while (lo < hi) {
            size_t mid = (lo + hi) / 2;
            if (ga->offsets[mid] < recs[i].offset)
                lo = mid + 1;
            else
                hi = mid;
        }
        if (lo == ga->n || ga->offsets[lo] != recs[i].offset)
            return br2k_app_error_set(pe, BR2K_APP_E_INVAL,
                                      "ext_write of offset %" PRId64
                                      ", which this External call does not carry",
                                      recs[i].offset);
        gathered *g = &ga->g[lo];
        for (size_t j = 0; j < recs[i].n; j++)
            if (g_op(g, &recs[i].ops[j]) != 0)
                return br2k_app_error_set(pe, BR2K_APP_E_NOMEM, "out of memory");
    }
    return BR2K_APP_OK;
}

static int host_ext_applied(const br2k_host *h, int64_t *offset, br2k_app_error *pe) {
    (void)h;
    *offset = -1;
    return br2k_app_error_set(pe, BR2K_APP_E_STATE,
                              "ext_applied is not available through br2k-app-serve");
}

static int m_external(served *s, conn *c) {
    if (P->external == NULL && P->external_many == NULL)
        return refuse(c, "external: application '%s' has no external effect", P->name);
    const uint8_t *p = c->in, *end = c->in + c->inlen;
    if (c->inlen < 12)
        return refuse(c, "external: no epoch and record count");
    int64_t epoch = (int64_t)br2k_wire_get64(p);
    uint32_t n = br2k_wire_get32(p + 8);
    p += 12;
    if (n > c->inlen / 12)
        return refuse(c, "external: %" PRIu32 " records in %zu bytes", n, c->inlen);
    int64_t *offs = calloc(n ? n : 1, sizeof(*offs));
    char **res = calloc(n ? n : 1, sizeof(*res));
    gathered *g = calloc(n ? n : 1, sizeof(*g));
    int rc = offs && res && g ? 0 : refuse(c, "external: out of memory");
    for (uint32_t i = 0; rc == 0 && i < n; i++) {
        if (end - p < 12 || (size_t)(end - p - 12) < br2k_wire_get32(p + 8)) {
            rc = refuse(c, "external: record %" PRIu32 " of %" PRIu32 " is truncated",
                        i + 1, n);
            break;
        }
        offs[i] = (int64_t)br2k_wire_get64(p);
        uint32_t len = br2k_wire_get32(p + 8);
        if (i > 0 && offs[i] <= offs[i - 1])
            rc = refuse(c, "external: offset %" PRId64 " after %" PRId64, offs[i],
                        offs[i - 1]);
        else if ((res[i] = malloc(len + 1)) == NULL)
            rc = refuse(c, "external: out of memory");
        else {
            memcpy(res[i], p + 12, len);
            res[i][len] = '\0';
        }
        p += 12 + len;
    }
    if (rc == 0 && p != end)
        rc = refuse(c, "external: %zu bytes after the last record", (size_t)(end - p));
    if (rc == 0) {
        const char *svc = getenv("BR2K_SERVICE");
        gather ga = {offs, n, g};
        br2k_host h = {BR2K_APP_ABI_VERSION,
                       svc ? svc : "",
                       epoch,
                       host_ext_write,
                       host_ext_applied,
                       &ga,
                       NULL};
        PE(pe);
        if (P->external_many != NULL) {
            if (P->external_many(s->app, &h, offs, (const char *const *)res, n, &pe) !=
                BR2K_APP_OK)
                rc = refuse(c, "external: %s", why(&pe));
        } else {
            for (uint32_t i = 0; rc == 0 && i < n; i++)
                if (P->external(s->app, &h, offs[i], res[i], &pe) != BR2K_APP_OK)
                    rc = refuse(c, "external of offset %" PRId64 ": %s", offs[i],
                                why(&pe));
        }
    }
    if (rc == 0) {
        uint8_t w[4];
        begin(c);
        br2k_wire_put32(w, n);
        rc = append(c, w, 4);
        for (uint32_t i = 0; rc == 0 && i < n; i++) {
            br2k_wire_put32(w, g[i].nops);
            rc = append(c, w, 4) != 0 || append(c, g[i].b, g[i].len) != 0 ? -1 : 0;
        }
        if (rc == 0)
            rc = send_reply(c, BR2K_WIRE_EXTERNAL | BR2K_WIRE_REPLY);
    }
    for (uint32_t i = 0; i < n && res && g; i++) {
        free(res[i]);
        free(g[i].b);
    }
    free(offs);
    free(res);
    free(g);
    return rc;
}

/* ---- Republish: the host's ext_replace gathers the whole view ---- */

typedef struct gather_view {
    gathered g;     /* the ops, encoded as in the Republish reply */
    int64_t offset; /* the LPI the plug-in gave */
    int calls;      /* ext_replace calls (one is allowed) */
} gather_view;

static int host_ext_replace(const br2k_host *h, int64_t offset, const br2k_ext_op *ops,
                            size_t n, br2k_app_error *pe) {
    gather_view *v = h->priv;
    if (v->calls++ > 0)
        return br2k_app_error_set(pe, BR2K_APP_E_STATE,
                                  "ext_replace called twice in one republish");
    if (n > 0 && ops == NULL)
        return br2k_app_error_set(pe, BR2K_APP_E_INVAL, "ext_replace: no ops array");
    v->offset = offset;
    for (size_t j = 0; j < n; j++)
        if (g_op(&v->g, &ops[j]) != 0)
            return br2k_app_error_set(pe, BR2K_APP_E_NOMEM, "out of memory");
    return BR2K_APP_OK;
}

static int host_ext_write_none(const br2k_host *h, const br2k_ext_record *recs, size_t n,
                               br2k_app_error *pe) {
    (void)h;
    (void)recs;
    (void)n;
    return br2k_app_error_set(pe, BR2K_APP_E_STATE,
                              "ext_write in republish (use ext_replace)");
}

static int m_republish(served *s, conn *c) {
    if (!can_republish())
        return refuse(c, "republish: application '%s' has no republish", P->name);
    if (c->inlen != 8)
        return refuse(c, "republish: %zu bytes, not an 8-byte epoch", c->inlen);
    const char *svc = getenv("BR2K_SERVICE");
    gather_view v;
    memset(&v, 0, sizeof(v));
    v.offset = -2;
    br2k_host h = {
        BR2K_APP_ABI_VERSION, svc ? svc : "",   (int64_t)br2k_wire_get64(c->in),
        host_ext_write_none,  host_ext_applied, &v,
        host_ext_replace};
    PE(pe);
    int rc = 0;
    if (P->republish(s->app, &h, &pe) != BR2K_APP_OK)
        rc = refuse(c, "republish: %s", why(&pe));
    else if (v.calls == 0)
        rc = refuse(c, "republish: application '%s' gave no view (no ext_replace)",
                    P->name);
    if (rc == 0) {
        uint8_t w[12];
        br2k_wire_put64(w, (uint64_t)v.offset);
        br2k_wire_put32(w + 8, v.g.nops);
        begin(c);
        rc = append(c, w, 12) != 0 || append(c, v.g.b, v.g.len) != 0
                 ? -1
                 : send_reply(c, BR2K_WIRE_REPUBLISH | BR2K_WIRE_REPLY);
    }
    free(v.g.b);
    return rc;
}

/* Serve one connection until Close, its end or a failure: 0 after Close
 * or a clean end, -1 after a failure (c->err says why). */
static int serve(int fd) {
    conn c;
    memset(&c, 0, sizeof(c));
    c.fd = fd;
    served s;
    memset(&s, 0, sizeof(s));
    proto_name(P->name, s.name);
    int rc = 0;
    for (;;) {
        int r = read_frame(&c);
        if (r != 0) {
            rc = r < 0 ? -1 : 0;
            break;
        }
        if (c.type != BR2K_WIRE_OPEN && c.type != BR2K_WIRE_CLOSE && s.app == NULL) {
            rc = refuse(&c, "request type 0x%02x before open", c.type);
            break;
        }
        switch (c.type) {
        case BR2K_WIRE_OPEN:
            rc = m_open(&s, &c);
            break;
        case BR2K_WIRE_APPLY:
            rc = m_apply(&s, &c);
            break;
        case BR2K_WIRE_SYNC:
            rc = m_sync(&s, &c);
            break;
        case BR2K_WIRE_DIGEST:
            rc = m_digest(&s, &c);
            break;
        case BR2K_WIRE_SNAPSHOT:
            rc = m_snapshot(&s, &c);
            break;
        case BR2K_WIRE_RESTORE:
            rc = m_restore(&s, &c);
            break;
        case BR2K_WIRE_EXTERNAL:
            rc = m_external(&s, &c);
            break;
        case BR2K_WIRE_REPUBLISH:
            rc = m_republish(&s, &c);
            break;
        case BR2K_WIRE_CLOSE:
            close_state(&s);
            begin(&c);
            send_reply(&c, BR2K_WIRE_CLOSE | BR2K_WIRE_REPLY);
            goto done;
        default:
            rc = refuse(&c, "unknown request type 0x%02x", c.type);
        }
        if (rc != 0)
            break;
    }
done:
    close_state(&s); /* not synced: the engine syncs before it relies on it */
    if (rc != 0)
        BK_ERROR("%s", c.err);
    free(c.in);
    free(c.out);
    return rc;
}

/* ---- --listen ---- */

static int listen_on(const char *path) {
    struct sockaddr_un sa;
    memset(&sa, 0, sizeof(sa));
    sa.sun_family = AF_UNIX;
    if (strlen(path) >= sizeof(sa.sun_path)) {
        fprintf(stderr, "br2k-app-serve: socket path '%s' is too long\n", path);
        return -1;
    }
    memcpy(sa.sun_path, path, strlen(path));
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0) {
        fprintf(stderr, "br2k-app-serve: socket: %s\n", strerror(errno));
        return -1;
    }
    struct stat sb;
    if (lstat(path, &sb) == 0) {
        /* a socket left by a server that is gone is replaced; a live one
         * or another kind of file is not */
        int probe = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
        int live = probe >= 0 && connect(probe, (struct sockaddr *)&sa, sizeof(sa)) == 0;
        if (probe >= 0)
            close(probe);
        if (live || !S_ISSOCK(sb.st_mode)) {
            fprintf(stderr, "br2k-app-serve: '%s' exists%s\n", path,
                    live ? " and a server answers on it" : " and is not a socket");
            close(fd);
            return -1;
        }
        unlink(path);
    }
    if (bind(fd, (struct sockaddr *)&sa, sizeof(sa)) != 0 || listen(fd, 4) != 0) {
        fprintf(stderr, "br2k-app-serve: cannot listen on '%s': %s\n", path,
                strerror(errno));
        close(fd);
        return -1;
    }
    return fd;
}

static bk_cfg_opt opts[] = {
    {"listen", BK_CFG_STR, "", 0, 0, NULL,
     "serve on a Unix socket at this path, one connection at a time (the worker's "
     "--app unix:PATH); empty: the connection on fd $BR2K_APP_FD (--app exec:...)",
     NULL, 0, 0},
    BK_CFG_COMMON_OPTS};

static const char summary[] =
    "Serves a C plug-in of the application interface (br2k/app.h) over the BR2K\n"
    "application protocol (schemas/app-protocol.md), so that it runs in a process\n"
    "of its own: br2k-worker --app 'exec:br2k-app-serve APP'. APP is infodid or\n"
    "noop (built in) or the path of a plug-in .so exporting br2k_app_entry.";

static const char epilog[] =
    "The plug-in's state, digests and snapshots are the same in-process and through\n"
    "the bridge. A plug-in's leader-only external effect runs here on External: the\n"
    "ops its ext_write gives go back to the worker, which writes them fenced and once\n"
    "per offset (ext_applied is not available here).\n"
    "With fd 3 (exec:), SIGINT and SIGTERM are ignored: the bridge ends with Close,\n"
    "the end of its connection or the worker's death. With --listen they stop it.\n"
    "Exit status: 0 after Close or the connection's end; 1 a failure (an Error\n"
    "frame was sent); 2 bad option or a plug-in that cannot be loaded.";

static bk_cfg cfg = {"br2k-app-serve", summary, "[OPTIONS] APP", opts, epilog, 0, 0};

int main(int argc, char **argv) {
    /* started by a worker: its config file is the worker's, not ours */
    char **envp = environ;
    size_t ne = 0;
    while (environ[ne] != NULL)
        ne++;
    char **env = calloc(ne + 1, sizeof(char *));
    if (env != NULL && getenv("BR2K_APP_FD") != NULL) {
        size_t k = 0;
        for (size_t i = 0; i < ne; i++)
            if (strncmp(environ[i], "BR2K_CONFIG=", 12) != 0)
                env[k++] = environ[i];
        envp = env;
    }
    int argi, rc;
    bk_err e;
    bk_err_clear(&e);
    if (bk_cfg_load(&cfg, argc, argv, envp, &argi, &e) != BK_OK) {
        fprintf(stderr, "br2k-app-serve: %s\n", e.msg);
        free(env);
        bk_cfg_release(&cfg);
        return EXIT_CONFIG;
    }
    free(env);
    if (cfg.want_help || cfg.want_version) {
        if (cfg.want_help)
            bk_cfg_help(&cfg, stdout);
        else
            bk_cfg_version(&cfg, stdout);
        bk_cfg_release(&cfg);
        return 0;
    }
    if (argi + 1 != argc) {
        fprintf(stderr, "br2k-app-serve: %s (see --help)\n",
                argi >= argc ? "name the application: infodid, noop or a plug-in .so"
                             : "one application only");
        bk_cfg_release(&cfg);
        return EXIT_CONFIG;
    }
    if (load(argv[argi]) != 0) {
        bk_cfg_release(&cfg);
        return EXIT_CONFIG;
    }
    char listen_path[4096];
    snprintf(listen_path, sizeof(listen_path), "%s", bk_cfg_str(&cfg, "listen"));
    bk_cfg_release(&cfg);

    if (listen_path[0] == '\0') {
        const char *f = getenv("BR2K_APP_FD");
        char *end = NULL;
        long fd = f != NULL ? strtol(f, &end, 10) : 3;
        if (f != NULL && (end == f || *end != '\0' || fd < 0 || fd > 65535)) {
            fprintf(stderr, "br2k-app-serve: BR2K_APP_FD '%s' is not a descriptor\n", f);
            return EXIT_CONFIG;
        }
        struct stat sb;
        if (fstat((int)fd, &sb) != 0) {
            fprintf(stderr,
                    "br2k-app-serve: no connection on fd %ld (run me with br2k-worker "
                    "--app 'exec:br2k-app-serve APP', or use --listen PATH)\n",
                    fd);
            return EXIT_CONFIG;
        }
        signal(SIGINT, SIG_IGN);
        signal(SIGTERM, SIG_IGN);
        signal(SIGPIPE, SIG_IGN);
        rc = serve((int)fd) == 0 ? 0 : 1;
        close((int)fd);
        return rc;
    }

    int lfd = listen_on(listen_path);
    if (lfd < 0)
        return EXIT_CONFIG;
    bk_sig_install(); /* no SA_RESTART: a blocked accept or read sees EINTR */
    BK_INFO("serving application '%s' (%s) on '%s'", P->name, P_origin, listen_path);
    rc = 0;
    while (!bk_sig_stop) {
        int fd = accept4(lfd, NULL, NULL, SOCK_CLOEXEC);
        if (fd < 0) {
            if (errno == EINTR || errno == ECONNABORTED)
                continue;
            BK_ERROR("accept: %s", strerror(errno));
            rc = 1;
            break;
        }
        BK_INFO("a connection");
        serve(fd);
        close(fd);
    }
    close(lfd);
    unlink(listen_path);
    BK_INFO("stopped");
    return rc;
}
