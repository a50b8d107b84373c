/* extwrite_check.c - the host's external write (br2k/app.h ext_write,
 * common/redis bk_ext_write) against a real Redis, directly and through
 * the adapter of worker/appload.c: each op kind, fenced (I2), idempotent
 * per offset (I5), a bad op refused with nothing written; and the checks
 * of bk_app_adapt / bk_app_resolve.
 * Usage: app_extwrite_check HOST:PORT (run by app_ext_write.sh). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "appload.h"
#include "redis/keys.h"

#define SVC "xw"
#define K(name) "br2k:{" SVC "}:ext:" name

static int failures;
#define EXPECT(cond, ...)                                                                \
    do {                                                                                 \
        if (!(cond)) {                                                                   \
            failures++;                                                                  \
            fprintf(stderr, "FAIL line %d: %s: ", __LINE__, #cond);                      \
            fprintf(stderr, __VA_ARGS__);                                                \
            fputc('\n', stderr);                                                         \
        }                                                                                \
    } while (0)

static bk_redis *r;

/* GET or HGET as text into a static buffer ("(nil)" when absent). */
static const char *get(const char *key, const char *field) {
    static char out[256];
    bk_err e;
    redisReply *rep = field ? bk_redis_command(r, &e, "HGET %s %s", key, field)
                            : bk_redis_command(r, &e, "GET %s", key);
    snprintf(out, sizeof(out), "%s",
             rep && rep->type == REDIS_REPLY_STRING ? rep->str : "(nil)");
    freeReplyObject(rep);
    return out;
}

static int write1(int64_t epoch, const bk_ext_rec *recs, size_t n, int64_t *ran,
                  bk_err *e) {
    bk_err_clear(e);
    return bk_ext_write(r, SVC, epoch, recs, n, ran, e);
}

/* ---- an in-process plug-in whose external effect uses the host ---- */

struct br2k_app {
    int unused;
};
static br2k_app the_app;

static int p_open(const char *dir, br2k_app **app, int64_t *lpi, br2k_app_error *e) {
    (void)dir;
    (void)e;
    *app = &the_app;
    *lpi = -1;
    return BR2K_APP_OK;
}
static int p_apply(br2k_app *a, int64_t o, const void *rec, size_t len, char **res,
                   int *applied, br2k_app_error *e) {
    (void)a, (void)o, (void)rec, (void)len, (void)e;
    *res = strdup("{}");
    *applied = 1;
    return BR2K_APP_OK;
}
static int p_sync(br2k_app *a, br2k_app_error *e) {
    (void)a, (void)e;
    return BR2K_APP_OK;
}
static int p_external(br2k_app *a, const br2k_host *h, int64_t offset, const char *result,
                      br2k_app_error *e) {
    (void)a;
    if (h->abi_version != BR2K_APP_ABI_VERSION || strcmp(h->service, SVC) != 0)
        return br2k_app_error_set(e, BR2K_APP_E_STATE, "bad host");
    char ep[24];
    snprintf(ep, sizeof(ep), "%lld", (long long)h->epoch);
    br2k_ext_op ops[] = {{BR2K_EXT_SET, "via", NULL, result, 0},
                         {BR2K_EXT_HSET, "epochs", ep, result, 0}};
    br2k_ext_record rec = {offset, ops, 2};
    return h->ext_write(h, &rec, 1, e);
}
static int p_snapshot(br2k_app *a, void **b, size_t *n, int64_t *l, br2k_app_error *e) {
    (void)a, (void)e;
    *b = strdup("x");
    *n = 1;
    *l = -1;
    return BR2K_APP_OK;
}
static int p_restore(br2k_app *a, const void *b, size_t n, br2k_app_error *e) {
    (void)a, (void)b, (void)n, (void)e;
    return BR2K_APP_OK;
}
static int p_digest(br2k_app *a, char hex[65], br2k_app_error *e) {
    (void)a, (void)e;
    memset(hex, 'a', 64);
    hex[64] = '\0';
    return BR2K_APP_OK;
}

/* The whole view (ABI 2): `via` only, as of offset 30. */
static int p_republish(br2k_app *a, const br2k_host *h, br2k_app_error *e) {
    (void)a;
    if (h->ext_replace == NULL)
        return br2k_app_error_set(e, BR2K_APP_E_STATE, "no ext_replace");
    br2k_ext_op ops[] = {{BR2K_EXT_SET, "via", NULL, "whole", 0}};
    return h->ext_replace(h, 30, ops, 1, e);
}

static br2k_app_plugin plugin = {
    BR2K_APP_ABI_VERSION, "xwcheck", p_open,   p_apply, p_sync,     p_external, NULL,
    p_snapshot,           p_restore, p_digest, NULL,    p_republish};

static void adapter_checks(void) {
    bk_err e;
    const br2k_app_ops *ops = NULL;
    EXPECT(bk_app_adapt(&plugin, "in-process", &ops, &e) == BK_OK, "%s", e.msg);
    if (ops == NULL)
        return;
    EXPECT(strcmp(ops->name, "xwcheck") == 0, "name %s", ops->name);
    EXPECT(ops->external != NULL && ops->external_many == NULL, "optional ops");
    br2k_app *a = NULL;
    int64_t lpi = 0;
    EXPECT(ops->open("/nonexistent", &a, &lpi, &e) == BK_OK && a == &the_app && lpi == -1,
           "open");
    bk_err_clear(&e);
    EXPECT(ops->external(a, r, SVC, 3, 20, "r20", &e) == BK_OK, "%s", e.msg);
    EXPECT(strcmp(get(K("via"), NULL), "r20") == 0, "via %s", get(K("via"), NULL));
    EXPECT(strcmp(get(K("epochs"), "3"), "r20") == 0, "epochs");
    EXPECT(strcmp(get(K("applied"), NULL), "20") == 0, "applied %s",
           get(K("applied"), NULL));
    bk_err_clear(&e);
    EXPECT(ops->external(a, r, SVC, 2, 21, "r21", &e) == BK_ERR, "stale epoch");
    EXPECT(e.code == BK_E_FENCED, "code %d: %s", e.code, e.msg);
    EXPECT(strcmp(get(K("via"), NULL), "r20") == 0, "nothing written when fenced");
    char hex[65];
    EXPECT(ops->digest(a, hex, &e) == BK_OK && strlen(hex) == 64, "digest");
    /* republish (ABI 2): every ext: key replaced, ext:applied = 30; fenced */
    EXPECT(ops->republish != NULL, "republish adapted");
    bk_err_clear(&e);
    EXPECT(ops->republish(a, r, SVC, 2, &e) == BK_ERR && e.code == BK_E_FENCED,
           "republish with a stale epoch: %d %s", e.code, e.msg);
    EXPECT(strcmp(get(K("via"), NULL), "r20") == 0, "nothing replaced when fenced");
    EXPECT(ops->republish(a, r, SVC, 3, &e) == BK_OK, "%s", e.msg);
    EXPECT(strcmp(get(K("via"), NULL), "whole") == 0, "via %s", get(K("via"), NULL));
    EXPECT(strcmp(get(K("applied"), NULL), "30") == 0, "applied %s",
           get(K("applied"), NULL));
    EXPECT(strcmp(get(K("epochs"), "3"), "(nil)") == 0, "the old hash is gone: '%s'",
           get(K("epochs"), "3"));
    /* a plug-in built against ABI 1 still loads, without republish (its
     * table ends before the member: not read) */
    br2k_app_plugin old = plugin;
    old.abi_version = 1;
    const br2k_app_ops *oops = NULL;
    EXPECT(bk_app_adapt(&old, "abi1", &oops, &e) == BK_OK && oops != NULL &&
               oops->republish == NULL && oops->external != NULL,
           "ABI 1: %s", e.msg);

    /* refused tables */
    br2k_app_plugin bad = plugin;
    bad.abi_version = 7;
    EXPECT(bk_app_adapt(&bad, "abi7", &ops, &e) == BK_ERR &&
               strstr(e.msg, "wrong ABI version 7") != NULL,
           "%s", e.msg);
    bad = plugin;
    bad.digest = NULL;
    EXPECT(bk_app_adapt(&bad, "nodigest", &ops, &e) == BK_ERR &&
               strstr(e.msg, "missing operation 'digest'") != NULL,
           "%s", e.msg);
    bad = plugin;
    bad.name = "";
    EXPECT(bk_app_adapt(&bad, "noname", &ops, &e) == BK_ERR, "no name");
    EXPECT(bk_app_resolve("infodid", &ops, &e) == BK_OK && ops == &bk_infodid_ops, "%s",
           e.msg);
    EXPECT(bk_app_resolve("noop", &ops, &e) == BK_OK && ops == &bk_noop_ops, "%s", e.msg);
    EXPECT(bk_app_resolve("bogus", &ops, &e) == BK_ERR &&
               strstr(e.msg, "unknown application 'bogus'") != NULL,
           "%s", e.msg);
    EXPECT(bk_app_resolve("/nonexistent/lib.so", &ops, &e) == BK_ERR &&
               strstr(e.msg, "No such file") != NULL,
           "%s", e.msg);
}

int main(int argc, char **argv) {
    if (argc != 2) {
        fprintf(stderr, "usage: app_extwrite_check HOST:PORT\n");
        return 2;
    }
    bk_err e;
    r = bk_redis_new(argv[1], 2000, &e);
    if (r == NULL) {
        fprintf(stderr, "setup: %s\n", e.msg);
        return 1;
    }
    redisReply *rep = bk_redis_command(r, &e, "SET br2k:{" SVC "}:epoch 3");
    freeReplyObject(rep);
    int64_t ran = -1;

    /* every kind, in order, records 10..12 */
    bk_ext_op o10[] = {{BK_EXT_SET, "a", NULL, "x", 0},
                       {BK_EXT_HSET, "h", "f1", "v1", 0},
                       {BK_EXT_INCRBY, "n", NULL, NULL, 5}};
    bk_ext_op o11[] = {{BK_EXT_HSET, "h", "f2", "v 2", 0},
                       {BK_EXT_HDEL, "h", "f1", NULL, 0},
                       {BK_EXT_INCRBY, "n", NULL, NULL, -2}};
    bk_ext_op o12[] = {{BK_EXT_DEL, "a", NULL, NULL, 0}};
    bk_ext_rec b1[] = {{10, o10, 3}, {11, o11, 3}, {12, o12, 1}};
    EXPECT(write1(3, b1, 3, &ran, &e) == BK_OK, "%s", e.msg);
    EXPECT(ran == 3, "ran %lld", (long long)ran);
    EXPECT(strcmp(get(K("a"), NULL), "(nil)") == 0, "a deleted");
    EXPECT(strcmp(get(K("h"), "f1"), "(nil)") == 0, "f1 deleted");
    EXPECT(strcmp(get(K("h"), "f2"), "v 2") == 0, "f2 %s", get(K("h"), "f2"));
    EXPECT(strcmp(get(K("n"), NULL), "3") == 0, "n %s", get(K("n"), NULL));
    EXPECT(strcmp(get(K("applied"), NULL), "12") == 0, "applied");

    /* the same batch again (a new leader re-running it): nothing */
    EXPECT(write1(3, b1, 3, &ran, &e) == BK_OK && ran == 0, "re-run ran %lld",
           (long long)ran);
    EXPECT(strcmp(get(K("n"), NULL), "3") == 0, "n after a re-run %s", get(K("n"), NULL));
    /* a batch half done before: only the new record runs */
    bk_ext_op o13[] = {{BK_EXT_SET, "b", NULL, "y", 0}};
    bk_ext_rec b2[] = {{12, o10, 3}, {13, o13, 1}, {14, NULL, 0}};
    EXPECT(write1(3, b2, 3, &ran, &e) == BK_OK && ran == 2, "ran %lld", (long long)ran);
    EXPECT(strcmp(get(K("a"), NULL), "(nil)") == 0, "offset 12 skipped");
    EXPECT(strcmp(get(K("b"), NULL), "y") == 0, "b");
    EXPECT(strcmp(get(K("applied"), NULL), "14") == 0, "a record without ops recorded");

    /* fenced: nothing */
    bk_ext_op o15[] = {{BK_EXT_SET, "c", NULL, "z", 0}};
    bk_ext_rec b3[] = {{15, o15, 1}};
    EXPECT(write1(2, b3, 1, &ran, &e) == BK_ERR && e.code == BK_E_FENCED, "code %d: %s",
           e.code, e.msg);
    EXPECT(strcmp(get(K("c"), NULL), "(nil)") == 0, "nothing written when fenced");

    /* bad ops: refused before anything is written */
    bk_ext_op bad[][2] = {
        {{BK_EXT_SET, "c", NULL, "z", 0}, {BK_EXT_SET, "applied", NULL, "99", 0}},
        {{BK_EXT_SET, "c", NULL, "z", 0}, {BK_EXT_SET, "x{y}", NULL, "1", 0}},
        {{BK_EXT_SET, "c", NULL, "z", 0}, {99, "c", NULL, "1", 0}},
        {{BK_EXT_SET, "c", NULL, "z", 0}, {BK_EXT_HSET, "h", NULL, "1", 0}},
        {{BK_EXT_SET, "c", NULL, "z", 0}, {BK_EXT_SET, "c", NULL, NULL, 0}},
        {{BK_EXT_SET, "c", NULL, "z", 0}, {BK_EXT_SET, "", NULL, "1", 0}},
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        bk_ext_rec b[] = {{15, bad[i], 2}};
        EXPECT(write1(3, b, 1, &ran, &e) == BK_ERR && e.code == BK_E_INVAL,
               "bad op %zu: code %d %s", i, e.code, e.msg);
    }
    bk_ext_rec down[] = {{16, o15, 1}, {15, o15, 1}};
    EXPECT(write1(3, down, 2, &ran, &e) == BK_ERR && strstr(e.msg, "must increase"),
           "decreasing offsets: %s", e.msg);
    EXPECT(strcmp(get(K("c"), NULL), "(nil)") == 0, "nothing written by bad ops");
    EXPECT(strcmp(get(K("applied"), NULL), "14") == 0, "applied unchanged");
    int64_t ap = 0;
    EXPECT(bk_ext_applied_get(r, SVC, &ap, &e) == BK_OK && ap == 14, "applied %lld",
           (long long)ap);

    /* SCRIPT FLUSH (a Redis restart): loaded again */
    rep = bk_redis_command(r, &e, "SCRIPT FLUSH");
    freeReplyObject(rep);
    EXPECT(write1(3, b3, 1, &ran, &e) == BK_OK && ran == 1, "%s", e.msg);
    EXPECT(strcmp(get(K("c"), NULL), "z") == 0, "c after SCRIPT FLUSH");

    adapter_checks();
    bk_redis_free(r);
    printf("%s\n", failures ? "FAIL" : "ok: external write (host ext_write, adapter)");
    return failures ? 1 : 0;
}
