/* replay_main.c - br2k-replay: the application replaying archived records
 * for `br2k history verify` (producer/history.c), which may not link the
 * worker's code: it runs this program and talks to it over a pipe.
 *
 *   br2k-replay --app SPEC [--service SVC]
 *
 * Opens a fresh state of the application (appload.h: infodid, noop, a
 * plug-in .so, exec:, unix:) in a new temporary directory, removed at exit,
 * then reads commands on stdin, answering on stdout:
 *   "A <offset> <len>\n" and len bytes   apply the record; no answer unless
 *                                        it fails ("err <message>\n", exit 1)
 *   "D\n"                                "<lpi> <state digest>\n"
 *   "R <len>\n" and len bytes            restore that snapshot (a backup's
 *                                        state): "ok <lpi>\n" or "err ...\n"
 *   "E\n"                                the external state the records made:
 *                                        "<keys JSON>\n" (the "keys" of
 *                                        br2k.external-state.v1), "none\n"
 *                                        when the application has no effect,
 *                                        "unsupported\n" for one over the
 *                                        protocol (its effect is not replayed)
 *   "X <len>\n" and len bytes            start the external state from those
 *                                        keys (a backup's): "ok\n"
 * and exits 0 at the end of its input. Nothing in Redis or the log is
 * touched: the leader-only external effect of each record runs against a
 * host of this program that keeps the keys in memory, with the semantics
 * of the worker's ext_write (skips an offset <= applied, records the last
 * one in <prefix>applied). */
#define _XOPEN_SOURCE 700
#include <ftw.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <jansson.h>

#include "app.h"
#include "appload.h"
#include "base/err.h"
#include "redis/keys.h"

/* ---- the external state, in memory ---- */

typedef struct model {
    json_t *keys; /* full key name -> {type, encoding, value} */
    char prefix[BK_KEY_MAX];
    int64_t applied;
} model;

static json_t *key_of(model *m, const char *name, const char *type, int create) {
    char full[BK_KEY_MAX + 160];
    snprintf(full, sizeof(full), "%s%s", m->prefix, name);
    json_t *k = json_object_get(m->keys, full);
    if (k == NULL && create) {
        k = json_pack("{ss ss so}", "type", type, "encoding", "utf-8", "value",
                      strcmp(type, "hash") == 0 ? json_object() : json_string(""));
        json_object_set_new(m->keys, full, k);
    }
    return k;
}

static void del_key(model *m, const char *name) {
    char full[BK_KEY_MAX + 160];
    snprintf(full, sizeof(full), "%s%s", m->prefix, name);
    json_object_del(m->keys, full);
}

static int host_write(const br2k_host *h, const br2k_ext_record *recs, size_t n,
                      br2k_app_error *e) {
    model *m = h->priv;
    for (size_t i = 0; i < n; i++) {
        if (recs[i].offset <= m->applied)
            continue;
        for (size_t j = 0; j < recs[i].n; j++) {
            const br2k_ext_op *op = &recs[i].ops[j];
            json_t *k;
            char num[32];
            switch (op->kind) {
            case BR2K_EXT_SET:
                k = key_of(m, op->name, "string", 1);
                json_object_set_new(k, "value", json_string(op->value ? op->value : ""));
                break;
            case BR2K_EXT_DEL:
                del_key(m, op->name);
                break;
            case BR2K_EXT_HSET:
                k = key_of(m, op->name, "hash", 1);
                json_object_set_new(json_object_get(k, "value"), op->field,
                                    json_string(op->value ? op->value : ""));
                break;
            case BR2K_EXT_HDEL:
                k = key_of(m, op->name, "hash", 0);
                json_object_del(json_object_get(k, "value"), op->field);
                if (k != NULL && json_object_size(json_object_get(k, "value")) == 0)
                    del_key(m, op->name);
                break;
            case BR2K_EXT_INCRBY:
                k = key_of(m, op->name, "string", 1);
                snprintf(num, sizeof(num), "%lld",
                         strtoll(json_string_value(json_object_get(k, "value")) ?: "0",
                                 NULL, 10) +
                             (long long)op->by);
                json_object_set_new(k, "value", json_string(num));
                break;
            default:
                return br2k_app_error_set(e, BR2K_APP_E_INVAL, "ext_write: op kind %d",
                                          op->kind);
            }
        }
        m->applied = recs[i].offset;
        char num[32];
        snprintf(num, sizeof(num), "%" PRId64, m->applied);
        json_object_set_new(key_of(m, "applied", "string", 1), "value", json_string(num));
    }
    return BR2K_APP_OK;
}

static int host_applied(const br2k_host *h, int64_t *offset, br2k_app_error *e) {
    (void)e;
    *offset = ((model *)h->priv)->applied;
    return BR2K_APP_OK;
}

static int rm_one(const char *p, const struct stat *st, int flag, struct FTW *f) {
    (void)st;
    (void)flag;
    (void)f;
    return remove(p);
}

static int reply_err(const bk_err *e) {
    printf("err %s\n", e->msg);
    fflush(stdout);
    return 1;
}

static void *read_n(size_t n) {
    char *b = malloc(n + 1);
    if (b == NULL || fread(b, 1, n, stdin) != n) {
        free(b);
        return NULL;
    }
    b[n] = '\0';
    return b;
}

static int serve(const br2k_app_ops *ops, br2k_app *app, int64_t lpi,
                 const br2k_app_plugin *p, br2k_host *host, model *m) {
    char line[128];
    bk_err e;
    int ext = p != NULL && (p->external != NULL || p->external_many != NULL);
    while (fgets(line, sizeof(line), stdin) != NULL) {
        bk_err_clear(&e);
        long long off = 0;
        size_t n = 0;
        if (sscanf(line, "A %lld %zu", &off, &n) == 2) {
            void *b = read_n(n);
            char *result = NULL;
            int applied = 0;
            if (b == NULL) {
                bk_err_set(&e, BK_E_PROTO, "record %lld: short input", off);
                return reply_err(&e);
            }
            int rc = ops->apply(app, (int64_t)off, b, n, &result, &applied, &e);
            free(b);
            if (rc == BK_OK && ext) { /* as the leader would, after apply */
                br2k_app_error pe;
                memset(&pe, 0, sizeof(pe));
                int64_t o = (int64_t)off;
                const char *res = result;
                rc = p->external ? p->external(app, host, o, result, &pe)
                                 : p->external_many(app, host, &o, &res, 1, &pe);
                if (rc != BR2K_APP_OK)
                    bk_err_set(&e, BK_E_STATE, "external effect of %lld: %s", off,
                               pe.msg);
            }
            free(result);
            if (rc != BK_OK)
                return reply_err(&e);
            lpi = (int64_t)off;
        } else if (strcmp(line, "D\n") == 0) {
            char hex[65];
            if (ops->digest(app, hex, &e) != BK_OK)
                return reply_err(&e);
            printf("%" PRId64 " %s\n", lpi, hex);
            fflush(stdout);
        } else if (sscanf(line, "R %zu", &n) == 1) {
            void *b = read_n(n);
            if (b == NULL) {
                bk_err_set(&e, BK_E_PROTO, "snapshot: short input");
                return reply_err(&e);
            }
            int rc = ops->restore(app, b, n, &e);
            free(b);
            if (rc != BK_OK)
                return reply_err(&e);
            void *s = NULL;
            size_t sl = 0;
            if (ops->snapshot(app, &s, &sl, &lpi, &e) != BK_OK)
                return reply_err(&e);
            free(s);
            printf("ok %" PRId64 "\n", lpi);
            fflush(stdout);
        } else if (strcmp(line, "E\n") == 0) {
            if (!ext) {
                printf(p == NULL ? "unsupported\n" : "none\n");
            } else {
                char *t = json_dumps(m->keys, JSON_COMPACT | JSON_SORT_KEYS);
                printf("%s\n", t ? t : "{}");
                free(t);
            }
            fflush(stdout);
        } else if (sscanf(line, "X %zu", &n) == 1) {
            char *b = read_n(n);
            json_t *k = b ? json_loads(b, 0, NULL) : NULL;
            free(b);
            if (!json_is_object(k)) {
                json_decref(k);
                bk_err_set(&e, BK_E_PROTO, "external state: not a JSON object");
                return reply_err(&e);
            }
            json_decref(m->keys);
            m->keys = k;
            char full[BK_KEY_MAX + 16];
            snprintf(full, sizeof(full), "%sapplied", m->prefix);
            const char *a =
                json_string_value(json_object_get(json_object_get(k, full), "value"));
            m->applied = a ? strtoll(a, NULL, 10) : -1;
            printf("ok\n");
            fflush(stdout);
        } else {
            bk_err_set(&e, BK_E_PROTO, "unknown command '%.40s'", line);
            return reply_err(&e);
        }
    }
    return 0;
}

int main(int argc, char **argv) {
    const char *spec = NULL, *svc = "default";
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--app") == 0 && i + 1 < argc)
            spec = argv[++i];
        else if (strcmp(argv[i], "--service") == 0 && i + 1 < argc)
            svc = argv[++i];
        else if (strncmp(argv[i], "--app=", 6) == 0)
            spec = argv[i] + 6;
        else {
            fprintf(stderr,
                    "br2k-replay: unexpected argument '%s' (usage: br2k-replay "
                    "--app SPEC [--service SVC])\n",
                    argv[i]);
            return 2;
        }
    }
    if (spec == NULL) {
        fprintf(stderr, "br2k-replay: --app SPEC is required\n");
        return 2;
    }
    bk_err e;
    bk_err_clear(&e);
    const br2k_app_ops *ops = NULL;
    if (bk_app_resolve(spec, &ops, &e) != BK_OK) {
        fprintf(stderr, "br2k-replay: %s\n", e.msg);
        return 2;
    }
    model m = {json_object(), "", -1};
    if (bk_key_ext_prefix(m.prefix, sizeof(m.prefix), svc, &e) != BK_OK) {
        fprintf(stderr, "br2k-replay: %s\n", e.msg);
        json_decref(m.keys);
        return 2;
    }
    br2k_host host = {BR2K_APP_ABI_VERSION, svc, 0, host_write, host_applied, &m, NULL};
    const char *tmp = getenv("TMPDIR");
    char dir[4096];
    snprintf(dir, sizeof(dir), "%s/br2k-replay-XXXXXX", tmp && tmp[0] ? tmp : "/tmp");
    if (mkdtemp(dir) == NULL) {
        fprintf(stderr, "br2k-replay: cannot make a directory in '%s'\n",
                tmp && tmp[0] ? tmp : "/tmp");
        json_decref(m.keys);
        return 2;
    }
    br2k_app *app = NULL;
    int64_t lpi = -1;
    int rc = 2;
    if (ops->open(dir, &app, &lpi, &e) != BK_OK) {
        fprintf(stderr, "br2k-replay: cannot open the application '%s': %s\n", spec,
                e.msg);
    } else {
        rc = serve(ops, app, lpi, bk_app_plugin(ops), &host, &m);
        if (ops->close)
            ops->close(app);
    }
    nftw(dir, rm_one, 16, FTW_DEPTH | FTW_PHYS);
    json_decref(m.keys);
    return rc;
}
