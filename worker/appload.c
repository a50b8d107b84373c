/* appload.c - see appload.h: --app SPEC, the dlopen of plug-ins, and the
 * adapter from br2k/app.h (public) to app.h (the runtime's).
 *
 * The runtime calls an operation with the application's state pointer
 * only, so each adapted table is bound to its plug-in by a slot: ADAPTER(s)
 * makes the functions of slot s, which call the plug-in of that slot.
 * Slot 0 is InfoDID, slot 1 no-op, the others are filled by
 * bk_app_adapt. */
#include "appload.h"

#include <dlfcn.h>
#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "redis/keys.h"
#ifdef BR2K_HAVE_PROTO
#include "proto.h"
#endif

/* The public error codes are the internal ones (err.h), so they pass
 * through unchanged. */
_Static_assert(BR2K_APP_OK == BK_OK && BR2K_APP_ERR == BK_ERR, "status values");
_Static_assert(BR2K_APP_E_INVAL == BK_E_INVAL && BR2K_APP_E_IO == BK_E_IO &&
                   BR2K_APP_E_NOMEM == BK_E_NOMEM && BR2K_APP_E_PROTO == BK_E_PROTO &&
                   BR2K_APP_E_REMOTE == BK_E_REMOTE &&
                   BR2K_APP_E_TIMEOUT == BK_E_TIMEOUT &&
                   BR2K_APP_E_FENCED == BK_E_FENCED &&
                   BR2K_APP_E_NOTFOUND == BK_E_NOTFOUND && BR2K_APP_E_STATE == BK_E_STATE,
               "error codes");

const char bk_app_spec_help[] =
    "the application: infodid (the reference, default) or noop (tests, benchmark), "
    "built in; /path/to/libapp.so, a plug-in built against br2k/app.h (pkg-config "
    "br2k-app); exec:COMMAND ARGS... (started by the worker) or unix:PATH (run by you), "
    "an application in any language over the application protocol "
    "(schemas/app-protocol.md)";

#define SLOTS 8
#define SLOT_INFODID 0
#define SLOT_NOOP 1

typedef struct slot {
    const br2k_app_plugin *p; /* NULL: free */
    br2k_app_ops ops;
} slot;

static slot slots[SLOTS]; /* filled by bk_app_adapt, before any call */

static const br2k_app_plugin *plugin_of(int s) {
    if (s == SLOT_INFODID)
        return br2k_infodid_entry();
    if (s == SLOT_NOOP)
        return br2k_noop_entry();
    return slots[s].p;
}

/* A cleared error for the plug-in (not the whole message: apply is hot). */
#define PE(pe)                                                                           \
    br2k_app_error pe;                                                                   \
    pe.code = 0;                                                                         \
    pe.msg[0] = '\0'

/* The plug-in's status and error into the runtime's. */
static int back(const br2k_app_plugin *p, const char *op, int rc,
                const br2k_app_error *pe, bk_err *e) {
    if (rc == BR2K_APP_OK)
        return BK_OK;
    if (pe->msg[0] == '\0')
        return bk_err_set(e, pe->code ? pe->code : BK_E_STATE,
                          "application '%s': %s failed (status %d, no message)", p->name,
                          op, rc);
    return bk_err_set(e, pe->code ? pe->code : BK_E_STATE, "%.255s", pe->msg);
}

/* ---- the host of the external effect ---- */

static int host_ext_write(const br2k_host *h, const br2k_ext_record *recs, size_t n,
                          br2k_app_error *pe) {
    size_t nops = 0;
    for (size_t i = 0; i < n; i++)
        nops += recs[i].n;
    bk_ext_rec *r = calloc(n ? n : 1, sizeof(*r));
    bk_ext_op *o = calloc(nops ? nops : 1, sizeof(*o));
    bk_err e;
    bk_err_clear(&e);
    int rc = BK_ERR;
    if (r == NULL || o == NULL) {
        bk_err_set(&e, BK_E_NOMEM, "external write: out of memory");
        goto out;
    }
    size_t k = 0;
    for (size_t i = 0; i < n; i++) {
        r[i].offset = recs[i].offset;
        r[i].ops = o + k;
        r[i].n = recs[i].n;
        for (size_t j = 0; j < recs[i].n && recs[i].ops != NULL; j++, k++) {
            const br2k_ext_op *x = &recs[i].ops[j];
            o[k] = (bk_ext_op){x->kind, x->name, x->field, x->value, x->by};
        }
        if (recs[i].n > 0 && recs[i].ops == NULL)
            r[i].ops = NULL; /* bk_ext_write refuses it */
    }
    rc = bk_ext_write((bk_redis *)h->priv, h->service, h->epoch, r, n, NULL, &e);
out:
    free(r);
    free(o);
    if (rc != BK_OK)
        br2k_app_error_set(pe, e.code, "%s", e.msg);
    return rc;
}

static int host_ext_applied(const br2k_host *h, int64_t *offset, br2k_app_error *pe) {
    bk_err e;
    if (bk_ext_applied_get((bk_redis *)h->priv, h->service, offset, &e) != BK_OK)
        return br2k_app_error_set(pe, e.code, "%s", e.msg);
    return BR2K_APP_OK;
}

/* The plug-in's ops of a whole view at `offset`, as the runtime's, handed
 * to `to`: Redis (republish) or the caller of a view. */
static int replace_to(const br2k_host *h, int64_t offset, const br2k_ext_op *ops,
                      size_t n, br2k_app_error *pe,
                      int (*to)(const br2k_host *, int64_t, const bk_ext_op *, size_t,
                                bk_err *)) {
    bk_ext_op *o = calloc(n ? n : 1, sizeof(*o));
    bk_err e;
    bk_err_clear(&e);
    int rc = BK_ERR;
    if (o == NULL)
        bk_err_set(&e, BK_E_NOMEM, "external view: out of memory");
    else if (n > 0 && ops == NULL)
        bk_err_set(&e, BK_E_INVAL, "external view of offset %" PRId64 ": no ops array",
                   offset);
    else {
        for (size_t j = 0; j < n; j++)
            o[j] = (bk_ext_op){ops[j].kind, ops[j].name, ops[j].field, ops[j].value,
                               ops[j].by};
        rc = to(h, offset, o, n, &e);
    }
    free(o);
    if (rc != BK_OK)
        br2k_app_error_set(pe, e.code, "%s", e.msg);
    return rc;
}

static int to_redis(const br2k_host *h, int64_t offset, const bk_ext_op *o, size_t n,
                    bk_err *e) {
    return bk_ext_replace((bk_redis *)h->priv, h->service, h->epoch, offset, o, n, e);
}

/* For `republish` only (host_of gives NULL in `external`). */
static int host_ext_replace(const br2k_host *h, int64_t offset, const br2k_ext_op *ops,
                            size_t n, br2k_app_error *pe) {
    return replace_to(h, offset, ops, n, pe, to_redis);
}

/* For `view`: ext_replace hands the ops to the caller's callback. */
typedef struct view_ctx {
    int (*cb)(void *opaque, int64_t lpi, const bk_ext_op *ops, size_t n, bk_err *e);
    void *opaque;
} view_ctx;

static int to_view(const br2k_host *h, int64_t offset, const bk_ext_op *o, size_t n,
                   bk_err *e) {
    const view_ctx *v = h->priv;
    return v->cb(v->opaque, offset, o, n, e);
}

static int host_view(const br2k_host *h, int64_t offset, const br2k_ext_op *ops, size_t n,
                     br2k_app_error *pe) {
    return replace_to(h, offset, ops, n, pe, to_view);
}

/* In a view nothing is written and nothing read from Redis. */
static int host_view_write(const br2k_host *h, const br2k_ext_record *recs, size_t n,
                           br2k_app_error *pe) {
    (void)h;
    (void)recs;
    (void)n;
    return br2k_app_error_set(pe, BK_E_STATE,
                              "ext_write in a view of the external state (republish may "
                              "only call ext_replace)");
}

static int host_view_applied(const br2k_host *h, int64_t *offset, br2k_app_error *pe) {
    (void)h;
    *offset = -1;
    return br2k_app_error_set(pe, BK_E_STATE,
                              "ext_applied in a view of the external state (republish "
                              "may only call ext_replace)");
}

static br2k_host host_of(bk_redis *r, const char *svc, int64_t epoch, int replace) {
    return (br2k_host){BR2K_APP_ABI_VERSION,
                       svc,
                       epoch,
                       host_ext_write,
                       host_ext_applied,
                       r,
                       replace ? host_ext_replace : NULL};
}

/* ---- the operations, for the plug-in of slot s ---- */

static int ad_open(int s, const char *dir, br2k_app **app, int64_t *lpi, bk_err *e) {
    const br2k_app_plugin *p = plugin_of(s);
    PE(pe);
    *app = NULL;
    *lpi = -1;
    int rc = p->open(dir, app, lpi, &pe);
    if (rc == BR2K_APP_OK && *app == NULL)
        return bk_err_set(e, BK_E_STATE, "application '%s': open gave no state", p->name);
    return back(p, "open", rc, &pe, e);
}

static int ad_apply(int s, br2k_app *app, int64_t offset, const void *rec, size_t len,
                    char **result, int *applied, bk_err *e) {
    const br2k_app_plugin *p = plugin_of(s);
    PE(pe);
    *result = NULL;
    *applied = 0;
    int rc = p->apply(app, offset, rec, len, result, applied, &pe);
    if (rc == BR2K_APP_OK && *result == NULL)
        return bk_err_set(e, BK_E_STATE,
                          "application '%s': apply of offset %" PRId64 " gave no result",
                          p->name, offset);
    if (rc != BR2K_APP_OK) {
        free(*result);
        *result = NULL;
    }
    return back(p, "apply", rc, &pe, e);
}

static int ad_sync(int s, br2k_app *app, bk_err *e) {
    const br2k_app_plugin *p = plugin_of(s);
    PE(pe);
    return back(p, "sync", p->sync(app, &pe), &pe, e);
}

static int ad_external(int s, br2k_app *app, bk_redis *r, const char *svc, int64_t epoch,
                       int64_t offset, const char *result, bk_err *e) {
    const br2k_app_plugin *p = plugin_of(s);
    PE(pe);
    br2k_host h = host_of(r, svc, epoch, 0);
    return back(p, "external", p->external(app, &h, offset, result, &pe), &pe, e);
}

static int ad_external_many(int s, br2k_app *app, bk_redis *r, const char *svc,
                            int64_t epoch, const int64_t *offsets,
                            const char *const *results, size_t n, bk_err *e) {
    const br2k_app_plugin *p = plugin_of(s);
    PE(pe);
    br2k_host h = host_of(r, svc, epoch, 0);
    return back(p, "external_many", p->external_many(app, &h, offsets, results, n, &pe),
                &pe, e);
}

static int ad_republish(int s, br2k_app *app, bk_redis *r, const char *svc, int64_t epoch,
                        bk_err *e) {
    const br2k_app_plugin *p = plugin_of(s);
    PE(pe);
    br2k_host h = host_of(r, svc, epoch, 1);
    return back(p, "republish", p->republish(app, &h, &pe), &pe, e);
}

static int ad_view(int s, br2k_app *app,
                   int (*cb)(void *, int64_t, const bk_ext_op *, size_t, bk_err *),
                   void *opaque, bk_err *e) {
    const br2k_app_plugin *p = plugin_of(s);
    PE(pe);
    view_ctx v = {cb, opaque};
    br2k_host h = {BR2K_APP_ABI_VERSION, "", 0,        host_view_write,
                   host_view_applied,    &v, host_view};
    return back(p, "republish (view)", p->republish(app, &h, &pe), &pe, e);
}

static int ad_snapshot(int s, br2k_app *app, void **buf, size_t *len, int64_t *lpi,
                       bk_err *e) {
    const br2k_app_plugin *p = plugin_of(s);
    PE(pe);
    *buf = NULL;
    *len = 0;
    int rc = p->snapshot(app, buf, len, lpi, &pe);
    if (rc == BR2K_APP_OK && *buf == NULL)
        return bk_err_set(e, BK_E_STATE, "application '%s': snapshot gave no bytes",
                          p->name);
    return back(p, "snapshot", rc, &pe, e);
}

static int ad_restore(int s, br2k_app *app, const void *buf, size_t len, bk_err *e) {
    const br2k_app_plugin *p = plugin_of(s);
    PE(pe);
    return back(p, "restore", p->restore(app, buf, len, &pe), &pe, e);
}

static int ad_digest(int s, br2k_app *app, char hex[65], bk_err *e) {
    const br2k_app_plugin *p = plugin_of(s);
    PE(pe);
    hex[0] = '\0';
    int rc = p->digest(app, hex, &pe);
    if (rc == BR2K_APP_OK) {
        size_t i = 0;
        while (i < 64 &&
               ((hex[i] >= '0' && hex[i] <= '9') || (hex[i] >= 'a' && hex[i] <= 'f')))
            i++;
        if (i != 64 || hex[64] != '\0')
            return bk_err_set(e, BK_E_STATE,
                              "application '%s': digest is not 64 lowercase hex",
                              p->name);
    }
    return back(p, "digest", rc, &pe, e);
}

static void ad_close(int s, br2k_app *app) {
    const br2k_app_plugin *p = plugin_of(s);
    if (app != NULL && p->close != NULL)
        p->close(app);
}

#define ADAPTER(S)                                                                       \
    static int open_##S(const char *d, br2k_app **a, int64_t *l, bk_err *e) {            \
        return ad_open(S, d, a, l, e);                                                   \
    }                                                                                    \
    static int apply_##S(br2k_app *a, int64_t o, const void *r, size_t n, char **res,    \
                         int *ap, bk_err *e) {                                           \
        return ad_apply(S, a, o, r, n, res, ap, e);                                      \
    }                                                                                    \
    static int sync_##S(br2k_app *a, bk_err *e) {                                        \
        return ad_sync(S, a, e);                                                         \
    }                                                                                    \
    static int external_##S(br2k_app *a, bk_redis *r, const char *svc, int64_t ep,       \
                            int64_t o, const char *res, bk_err *e) {                     \
        return ad_external(S, a, r, svc, ep, o, res, e);                                 \
    }                                                                                    \
    static int snapshot_##S(br2k_app *a, void **b, size_t *n, int64_t *l, bk_err *e) {   \
        return ad_snapshot(S, a, b, n, l, e);                                            \
    }                                                                                    \
    static int restore_##S(br2k_app *a, const void *b, size_t n, bk_err *e) {            \
        return ad_restore(S, a, b, n, e);                                                \
    }                                                                                    \
    static int digest_##S(br2k_app *a, char hex[65], bk_err *e) {                        \
        return ad_digest(S, a, hex, e);                                                  \
    }                                                                                    \
    static void close_##S(br2k_app *a) {                                                 \
        ad_close(S, a);                                                                  \
    }                                                                                    \
    static int external_many_##S(br2k_app *a, bk_redis *r, const char *svc, int64_t ep,  \
                                 const int64_t *o, const char *const *res, size_t n,     \
                                 bk_err *e) {                                            \
        return ad_external_many(S, a, r, svc, ep, o, res, n, e);                         \
    }                                                                                    \
    static int republish_##S(br2k_app *a, bk_redis *r, const char *svc, int64_t ep,      \
                             bk_err *e) {                                                \
        return ad_republish(S, a, r, svc, ep, e);                                        \
    }                                                                                    \
    static int view_##S(br2k_app *a,                                                     \
                        int (*cb)(void *, int64_t, const bk_ext_op *, size_t, bk_err *), \
                        void *o, bk_err *e) {                                            \
        return ad_view(S, a, cb, o, e);                                                  \
    }

ADAPTER(0)
ADAPTER(1)
ADAPTER(2)
ADAPTER(3)
ADAPTER(4)
ADAPTER(5)
ADAPTER(6)
ADAPTER(7)

#define OPS(S, NAME)                                                                     \
    {                                                                                    \
        NAME, open_##S, apply_##S, sync_##S, external_##S, snapshot_##S, restore_##S,    \
            digest_##S, close_##S, external_many_##S, republish_##S, view_##S            \
    }

static const br2k_app_ops templates[SLOTS] = {OPS(0, NULL), OPS(1, NULL), OPS(2, NULL),
                                              OPS(3, NULL), OPS(4, NULL), OPS(5, NULL),
                                              OPS(6, NULL), OPS(7, NULL)};

/* InfoDID has both external operations, no-op neither: bk_app_resolve
 * checks that the plug-ins still say so. */
const br2k_app_ops bk_infodid_ops = OPS(0, "infodid");
const br2k_app_ops bk_noop_ops = {"noop",    open_1,   apply_1, sync_1, NULL, snapshot_1,
                                  restore_1, digest_1, close_1, NULL,   NULL, NULL};

/* ---- checking and loading ---- */

static int check_plugin(const br2k_app_plugin *p, const char *origin, bk_err *e) {
    if (p == NULL)
        return bk_err_set(e, BK_E_INVAL, "application '%s': %s() returned NULL", origin,
                          BR2K_APP_ENTRY_SYMBOL);
    /* version 1 is version 2 without `republish` (appended): still loaded */
    if (p->abi_version != BR2K_APP_ABI_VERSION && p->abi_version != 1)
        return bk_err_set(
            e, BK_E_INVAL,
            "application '%s': wrong ABI version %" PRIu32
            ", this worker supports 1 to %u (rebuild it against this br2k/app.h)",
            origin, p->abi_version, BR2K_APP_ABI_VERSION);
    if (p->name == NULL || p->name[0] == '\0' || strlen(p->name) > 64)
        return bk_err_set(e, BK_E_INVAL, "application '%s': no name (1 to 64 bytes)",
                          origin);
    const char *missing = p->open == NULL       ? "open"
                          : p->apply == NULL    ? "apply"
                          : p->sync == NULL     ? "sync"
                          : p->snapshot == NULL ? "snapshot"
                          : p->restore == NULL  ? "restore"
                          : p->digest == NULL   ? "digest"
                                                : NULL;
    if (missing != NULL)
        return bk_err_set(e, BK_E_INVAL,
                          "application '%s' (%s): missing operation '%s' (required)",
                          origin, p->name, missing);
    return BK_OK;
}

int bk_app_adapt(const br2k_app_plugin *p, const char *origin, const br2k_app_ops **ops,
                 bk_err *e) {
    if (check_plugin(p, origin, e) != BK_OK)
        return BK_ERR;
    for (int s = SLOT_NOOP + 1; s < SLOTS; s++) {
        if (slots[s].p == p) {
            *ops = &slots[s].ops;
            return BK_OK;
        }
        if (slots[s].p != NULL)
            continue;
        slot *sl = &slots[s];
        sl->ops = templates[s];
        sl->ops.name = p->name;
        if (p->external == NULL)
            sl->ops.external = NULL;
        if (p->external_many == NULL)
            sl->ops.external_many = NULL;
        if (p->abi_version < 2 || p->republish == NULL) { /* v1: no such member */
            sl->ops.republish = NULL;
            sl->ops.view = NULL;
        }
        sl->p = p;
        *ops = &sl->ops;
        return BK_OK;
    }
    return bk_err_set(e, BK_E_STATE, "application '%s': no free slot (at most %d)",
                      origin, SLOTS - 2);
}

static int load_so(const char *spec, const br2k_app_ops **ops, bk_err *e) {
    char path[4096];
    /* dlopen searches the library path for a name without '/' */
    int n = snprintf(path, sizeof(path), "%s%s", strchr(spec, '/') ? "" : "./", spec);
    if (n < 0 || (size_t)n >= sizeof(path))
        return bk_err_set(e, BK_E_INVAL, "application path '%.64s...' is too long", spec);
    struct stat sb;
    if (stat(path, &sb) != 0)
        return bk_err_set(e, BK_E_NOTFOUND, "cannot load application '%s': %s", path,
                          strerror(errno));
    if (!S_ISREG(sb.st_mode))
        return bk_err_set(e, BK_E_INVAL, "cannot load application '%s': not a file",
                          path);
    dlerror();
    void *h = dlopen(path, RTLD_NOW | RTLD_LOCAL);
    if (h == NULL) {
        const char *why = dlerror();
        return bk_err_set(e, BK_E_INVAL, "cannot load application '%s': %s", path,
                          why ? why : "dlopen failed");
    }
    /* ISO C does not convert a void * to a function pointer: copy it */
    void *sym = dlsym(h, BR2K_APP_ENTRY_SYMBOL);
    if (sym == NULL) {
        bk_err_set(e, BK_E_INVAL,
                   "application '%s': missing symbol '%s' (not a BR2K plug-in? see "
                   "br2k/app.h)",
                   path, BR2K_APP_ENTRY_SYMBOL);
        dlclose(h);
        return BK_ERR;
    }
    const br2k_app_plugin *(*entry)(void);
    memcpy(&entry, &sym, sizeof(entry));
    if (bk_app_adapt(entry(), path, ops, e) != BK_OK) {
        dlclose(h);
        return BK_ERR;
    }
    return BK_OK; /* h stays open: the operations live in it until exit */
}

static int builtin(const br2k_app_plugin *p, const br2k_app_ops *ops, int external,
                   const br2k_app_ops **out, bk_err *e) {
    if (check_plugin(p, "built-in", e) != BK_OK)
        return BK_ERR;
    if ((p->external != NULL) != external || (p->external_many != NULL) != external ||
        (p->republish != NULL) != external || strcmp(p->name, ops->name) != 0)
        return bk_err_set(e, BK_E_STATE,
                          "built-in application '%s' does not match its adapter table",
                          p->name);
    *out = ops;
    return BK_OK;
}

const br2k_app_plugin *bk_app_plugin(const br2k_app_ops *ops) {
    if (ops == &bk_infodid_ops)
        return br2k_infodid_entry();
    if (ops == &bk_noop_ops)
        return br2k_noop_entry();
    for (int s = 0; s < SLOTS; s++)
        if (slots[s].p != NULL && ops == &slots[s].ops)
            return slots[s].p;
    return NULL;
}

static int ends_with(const char *s, const char *tail) {
    size_t n = strlen(s), m = strlen(tail);
    return n >= m && strcmp(s + n - m, tail) == 0;
}

int bk_app_resolve(const char *spec, const br2k_app_ops **ops, bk_err *e) {
    *ops = NULL;
    if (spec == NULL || *spec == '\0' || strcmp(spec, "infodid") == 0)
        return builtin(br2k_infodid_entry(), &bk_infodid_ops, 1, ops, e);
    if (strcmp(spec, "noop") == 0)
        return builtin(br2k_noop_entry(), &bk_noop_ops, 0, ops, e);
    if (strncmp(spec, "exec:", 5) == 0 || strncmp(spec, "unix:", 5) == 0) {
#ifdef BR2K_HAVE_PROTO
        return bk_proto_app_ops(spec, ops, e);
#else
        return bk_err_set(e, BK_E_INVAL,
                          "application '%s': this worker was built without the "
                          "application protocol",
                          spec);
#endif
    }
    if (strchr(spec, '/') != NULL || ends_with(spec, ".so"))
        return load_so(spec, ops, e);
    return bk_err_set(e, BK_E_INVAL,
                      "unknown application '%s': expected infodid, noop, a path to a "
                      "plug-in (.so), exec:COMMAND or unix:PATH",
                      spec);
}
