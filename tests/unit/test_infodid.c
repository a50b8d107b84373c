/* test_infodid.c - the InfoDID reference application: operations and
 * rejections, repeats (I5), determinism (I4), snapshot/restore, durability
 * across close/reopen, a torn journal tail, and a request signed by
 * `cast wallet sign` (fixtures/infodid/README.md); its byte buffers and
 * hash table (table.h), and the names of its external index's keys
 * (common/redis/keys.h). State lives in a mkdtemp directory under /tmp,
 * removed at the end. */
#include <dirent.h>
#include <ftw.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "check.h"
#include "chain/ethkey.h"
#include "infodid.h"
#include "chain/request.h"
#include "redis/keys.h"
#include "infodid_int.h"
#include "table.h"

#define KEY0 "0xac0974bec39a17e36ba4a6b4d238ff944bacb478cbed5efcae784d7bf4f2ff80"
#define ADDR0 "0xf39Fd6e51aad88F6F4ce6aB8827279cffFb92266"
#define DID0 "did:br2k:0xf39fd6e51aad88f6f4ce6ab8827279cfffb92266"
#define KEY1 "0x59c6995e998f97a5a0044966f0945389dc9e86dae88c7a8412f4603b6b78690d"
#define DID1 "did:br2k:0x70997970c51812dc3a010c7d01b50e0d17dc79c8"

static const br2k_app_ops *ops = &bk_infodid_ops;
static char root[] = "/tmp/br2k-infodid-test.XXXXXX";
static bk_eth_key k0, k1;

/* Every record applied to the main instance, in order, for replays. */
#define MAXREC 256
static char *recs[MAXREC];
static int64_t rec_off[MAXREC];
static int nrec;

static int rm_one(const char *p, const struct stat *sb, int flag, struct FTW *ftw) {
    (void)sb;
    (void)flag;
    (void)ftw;
    return remove(p);
}

static void dir_of(const char *name, char *out, size_t n) {
    snprintf(out, n, "%s/%s", root, name);
}

static int read_all(const char *path, uint8_t **out, size_t *n) {
    FILE *f = fopen(path, "rb");
    if (f == NULL)
        return -1;
    fseek(f, 0, SEEK_END);
    long size = ftell(f);
    fseek(f, 0, SEEK_SET);
    *out = size > 0 ? malloc((size_t)size) : NULL;
    int ok = *out != NULL && fread(*out, 1, (size_t)size, f) == (size_t)size;
    fclose(f);
    *n = ok ? (size_t)size : 0;
    return ok ? 0 : -1;
}

static int write_all(const char *path, const uint8_t *p, size_t n) {
    FILE *f = fopen(path, "wb");
    if (f == NULL)
        return -1;
    int ok = fwrite(p, 1, n, f) == n;
    return fclose(f) == 0 && ok ? 0 : -1;
}

static br2k_app *open_app(const char *name, int64_t *lpi) {
    char dir[256];
    dir_of(name, dir, sizeof(dir));
    br2k_app *a = NULL;
    bk_err e;
    bk_err_clear(&e);
    CHECK(ops->open(dir, &a, lpi, &e) == BK_OK, "open %s: %s", dir, e.msg);
    return a;
}

static char *digest(br2k_app *a) {
    static char hex[4][65];
    static int i;
    char *h = hex[i++ % 4];
    bk_err e;
    CHECK(ops->digest(a, h, &e) == BK_OK, "digest: %s", e.msg);
    CHECK_INT(strlen(h), 64);
    return h;
}

/* Apply raw bytes at `off`; returns the result as JSON (caller decrefs). */
static json_t *apply_raw(br2k_app *a, int64_t off, const char *text, size_t len,
                         int *applied) {
    char *res = NULL;
    int ap = -1;
    bk_err e;
    CHECK(ops->apply(a, off, text, len, &res, &ap, &e) == BK_OK, "apply %lld: %s",
          (long long)off, e.msg);
    json_t *j = res ? json_loads(res, 0, NULL) : NULL;
    CHECK(j != NULL, "result is json: %s", res ? res : "(null)");
    if (j != NULL) {
        CHECK_INT(json_integer_value(json_object_get(j, "v")), 1);
        CHECK(json_is_boolean(json_object_get(j, "repeat")), "repeat flag present");
    }
    free(res);
    if (applied != NULL)
        *applied = ap;
    return j;
}

/* Apply to the main instance and remember the record. */
static int64_t next_off = 0;
static json_t *apply_text(br2k_app *a, const char *text, int *applied) {
    if (nrec < MAXREC) {
        recs[nrec] = strdup(text);
        rec_off[nrec++] = next_off;
    }
    return apply_raw(a, next_off++, text, strlen(text), applied);
}

static char *build(const bk_eth_key *k, const char *client, int64_t seq, const char *op,
                   const char *payload, int64_t ts) {
    json_t *p = json_loads(payload, 0, NULL);
    char *text = NULL;
    bk_err e;
    CHECK(p != NULL && bk_request_build(k, client, seq, op, p, ts, &text, &e) == BK_OK,
          "build %s: %s", payload, e.msg);
    json_decref(p);
    return text;
}

static json_t *req(br2k_app *a, const bk_eth_key *k, const char *client, int64_t seq,
                   const char *op, const char *payload, int *applied) {
    char *text = build(k, client, seq, op, payload, 1700000000000LL + seq);
    json_t *r = apply_text(a, text ? text : "", applied);
    free(text);
    return r;
}

static const char *status(json_t *r) {
    return json_string_value(json_object_get(r, "status"));
}

static const char *code(json_t *r) {
    return json_string_value(json_object_get(json_object_get(r, "reason"), "code"));
}

static const char *data_str(json_t *r, const char *k) {
    return json_string_value(json_object_get(json_object_get(r, "data"), k));
}

static long long data_int(json_t *r, const char *k) {
    return json_integer_value(json_object_get(json_object_get(r, "data"), k));
}

#define EXPECT_REJECT(r, c)                                                              \
    do {                                                                                 \
        json_t *r_ = (r);                                                                \
        CHECK_STR(status(r_), "rejected");                                               \
        CHECK_STR(code(r_), (c));                                                        \
        json_decref(r_);                                                                 \
    } while (0)

static void test_operations(br2k_app *a) {
    int applied = -1;
    json_t *r =
        req(a, &k0, "alice", 1, "register",
            "{\"attrs\":{\"name\":\"Alice\",\"email\":\"a@example.org\"}}", &applied);
    CHECK_STR(status(r), "ok");
    CHECK_INT(applied, 1);
    CHECK_STR(json_string_value(json_object_get(r, "id")), "alice:1");
    CHECK_STR(json_string_value(json_object_get(r, "op")), "register");
    CHECK_STR(data_str(r, "did"), DID0);
    CHECK_STR(data_str(r, "controller"), ADDR0);
    CHECK_INT(data_int(r, "active"), 1);
    CHECK(json_is_false(json_object_get(r, "repeat")), "first is not a repeat");
    json_decref(r);

    r = req(a, &k0, "alice", 2, "update",
            "{\"attrs\":{\"city\":\"Seoul\",\"email\":null}}", &applied);
    CHECK_STR(status(r), "ok");
    CHECK_INT(applied, 1);
    CHECK_INT(data_int(r, "attrs"), 2); /* name, city */
    json_decref(r);
    r = req(a, &k0, "alice", 3, "update",
            "{\"did\":\"" DID0 "\",\"mode\":\"replace\",\"attrs\":{\"x\":\"1\"}}",
            &applied);
    CHECK_STR(status(r), "ok");
    CHECK_INT(data_int(r, "attrs"), 1);
    json_decref(r);

    /* a custom DID name, first come first served */
    r = req(a, &k1, "bob", 1, "register", "{\"did\":\"did:example:bob\",\"attrs\":{}}",
            &applied);
    CHECK_STR(status(r), "ok");
    CHECK_INT(data_int(r, "active"), 2);
    json_decref(r);

    /* rejections, each with its reason; nothing applied */
    EXPECT_REJECT(req(a, &k1, "bob", 2, "update",
                      "{\"did\":\"" DID0 "\",\"attrs\":{\"name\":\"Mallory\"}}",
                      &applied),
                  "not_controller");
    CHECK_INT(applied, 0);
    EXPECT_REJECT(req(a, &k1, "bob", 3, "revoke", "{\"did\":\"" DID0 "\"}", NULL),
                  "not_controller");
    EXPECT_REJECT(req(a, &k1, "bob", 4, "register", "{\"did\":\"" DID0 "\"}", NULL),
                  "not_controller"); /* a did:br2k name belongs to its address */
    EXPECT_REJECT(req(a, &k0, "alice", 4, "register", "{}", NULL), "already_registered");
    EXPECT_REJECT(
        req(a, &k0, "alice", 5, "register", "{\"did\":\"did:example:bob\"}", NULL),
        "already_registered");
    EXPECT_REJECT(req(a, &k1, "bob", 5, "update", "{\"attrs\":{\"a\":\"b\"}}", NULL),
                  "unknown_did"); /* bob's default DID is not registered */
    EXPECT_REJECT(req(a, &k1, "bob", 6, "register", "{\"attrs\":[1,2]}", NULL),
                  "bad_payload");
    EXPECT_REJECT(req(a, &k1, "bob", 7, "register", "{\"attrs\":{\"age\":42}}", NULL),
                  "bad_payload");
    EXPECT_REJECT(req(a, &k1, "bob", 8, "register", "{\"colour\":\"red\"}", NULL),
                  "bad_payload");
    EXPECT_REJECT(req(a, &k1, "bob", 9, "register", "{\"did\":\"not a did\"}", NULL),
                  "bad_payload");
    EXPECT_REJECT(
        req(a, &k0, "alice", 6, "update", "{\"mode\":\"append\",\"attrs\":{}}", NULL),
        "bad_payload");
    char big[2100];
    snprintf(big, sizeof(big), "{\"attrs\":{\"bio\":\"%01500d\"}}", 7);
    EXPECT_REJECT(req(a, &k1, "bob", 10, "register", big, NULL), "oversize");
    char many[2048];
    size_t n = (size_t)snprintf(many, sizeof(many), "{\"attrs\":{");
    for (int i = 0; i < BK_INFODID_ATTRS_MAX + 1; i++)
        n += (size_t)snprintf(many + n, sizeof(many) - n, "%s\"k%d\":\"v\"", i ? "," : "",
                              i);
    snprintf(many + n, sizeof(many) - n, "}}");
    EXPECT_REJECT(req(a, &k1, "bob", 11, "register", many, NULL), "oversize");
    EXPECT_REJECT(req(a, &k1, "bob", 12, "transfer", "{}", NULL), "unknown_op");

    /* a tampered request recovers another address than its signer */
    char *text = build(&k0, "alice", 7, "update",
                       "{\"did\":\"" DID0 "\",\"attrs\":{\"name\":\"Alice\"}}", 1);
    char *p = text ? strstr(text, "Alice") : NULL;
    if (p != NULL)
        p[4] = 'f';
    EXPECT_REJECT(apply_text(a, text ? text : "", &applied), "signer_mismatch");
    free(text);
    /* a request that names no signer, or another one than signed */
    text = build(&k0, "alice", 9, "update", "{\"attrs\":{\"name\":\"Alice\"}}", 1);
    json_t *o = text ? json_loads(text, 0, NULL) : NULL;
    char *s2 = NULL;
    if (o != NULL) {
        json_object_del(o, "signer");
        s2 = json_dumps(o, JSON_COMPACT);
        EXPECT_REJECT(apply_text(a, s2 ? s2 : "", &applied), "missing_field:signer");
        free(s2);
        json_object_set_new(o, "signer",
                            json_string("0x70997970c51812dc3a010c7d01b50e0d17dc79c8"));
        s2 = json_dumps(o, JSON_COMPACT);
        EXPECT_REJECT(apply_text(a, s2 ? s2 : "", &applied), "signer_mismatch");
        free(s2);
        json_object_set_new(o, "signer",
                            json_string("0xF39FD6E51AAD88F6F4CE6AB8827279CFFFB92266"));
        s2 = json_dumps(o, JSON_COMPACT);
        EXPECT_REJECT(apply_text(a, s2 ? s2 : "", &applied), "bad_field:signer");
        free(s2);
    }
    CHECK(o != NULL, "built request parses");
    json_decref(o);
    free(text);
    /* an unrecoverable signature: v = 5 */
    text = build(&k0, "alice", 8, "update", "{\"attrs\":{\"name\":\"Alice\"}}", 1);
    p = text ? strstr(text, "\"sig\":\"0x") : NULL;
    if (p != NULL) {
        p[9 + 128] = '0';
        p[9 + 129] = '5';
    }
    EXPECT_REJECT(apply_text(a, text ? text : "", NULL), "bad_signature");
    free(text);
    /* r = 0: no point on the curve */
    text = build(&k0, "alice", 9, "update", "{\"attrs\":{\"name\":\"Alice\"}}", 1);
    p = text ? strstr(text, "\"sig\":\"0x") : NULL;
    if (p != NULL)
        memset(p + 9, '0', 64);
    EXPECT_REJECT(apply_text(a, text ? text : "", NULL), "bad_signature");
    free(text);

    /* envelope rejections carry the id when they can */
    r = apply_text(a, "{\"v\":1,", NULL);
    CHECK_STR(code(r), "malformed_json");
    CHECK(json_is_null(json_object_get(r, "id")), "no id for malformed json");
    json_decref(r);

    /* revoke, then nothing more */
    r = req(a, &k1, "bob", 13, "revoke", "{\"did\":\"did:example:bob\"}", &applied);
    CHECK_STR(status(r), "ok");
    CHECK_INT(applied, 1);
    CHECK_INT(data_int(r, "active"), 1);
    json_decref(r);
    CHECK_INT(bk_infodid_active(a), 1);
    EXPECT_REJECT(req(a, &k1, "bob", 14, "update",
                      "{\"did\":\"did:example:bob\",\"attrs\":{\"a\":\"b\"}}", NULL),
                  "revoked");
    EXPECT_REJECT(req(a, &k1, "bob", 15, "revoke", "{\"did\":\"did:example:bob\"}", NULL),
                  "revoked");
    EXPECT_REJECT(
        req(a, &k1, "bob", 16, "register", "{\"did\":\"did:example:bob\"}", NULL),
        "already_registered");

    /* the worker never gives an offset twice */
    char *res = NULL;
    bk_err e;
    CHECK(ops->apply(a, 0, "{}", 2, &res, &applied, &e) == BK_ERR, "old offset refused");
    CHECK_INT(e.code, BK_E_STATE);
}

static void test_repeat(br2k_app *a) {
    /* recs[0] is alice:1's register */
    char before[65];
    snprintf(before, sizeof(before), "%s", digest(a));
    int applied = -1;
    json_t *r = apply_text(a, recs[0], &applied);
    CHECK_INT(applied, 0);
    CHECK_STR(status(r), "ok");
    CHECK(json_is_true(json_object_get(r, "repeat")), "marked as a repeat");
    CHECK_INT(json_integer_value(json_object_get(r, "offset")), 0);
    CHECK_INT(json_integer_value(json_object_get(r, "repeat_offset")), next_off - 1);
    CHECK_STR(data_str(r, "did"), DID0);
    CHECK_INT(data_int(r, "active"), 1 + 0); /* the first result, as it was */
    json_decref(r);
    CHECK_STR(digest(a), before);
    /* a repeated rejection returns the first rejection */
    r = apply_text(a, recs[4], &applied); /* bob:2, not_controller */
    CHECK_STR(code(r), "not_controller");
    CHECK(json_is_true(json_object_get(r, "repeat")), "rejection repeated");
    json_decref(r);
    CHECK_STR(digest(a), before);
    /* the same id with other content is refused, not applied */
    EXPECT_REJECT(
        req(a, &k0, "alice", 1, "update", "{\"attrs\":{\"z\":\"z\"}}", &applied),
        "duplicate_id");
    CHECK_INT(applied, 0);
    CHECK_STR(digest(a), before);
}

static void test_cast_fixture(br2k_app *a) {
    const char *names[] = {"fixtures/infodid/register.json",
                           "fixtures/infodid/update.json"};
    const char *ops_want[] = {"register", "update"};
    for (int i = 0; i < 2; i++) {
        FILE *f = fopen(names[i], "rb");
        char text[4096] = {0};
        size_t n = f ? fread(text, 1, sizeof(text) - 1, f) : 0;
        if (f != NULL)
            fclose(f);
        CHECK(n > 0, "fixture %s", names[i]);
        json_t *r = apply_raw(a, 0 + i, text, n, NULL);
        CHECK_STR(status(r), "ok");
        CHECK_STR(json_string_value(json_object_get(r, "op")), ops_want[i]);
        CHECK_STR(data_str(r, "did"), DID0);
        if (i == 0)
            CHECK_STR(data_str(r, "controller"), ADDR0);
        else
            CHECK_INT(data_int(r, "attrs"), 2); /* name, city */
        json_decref(r);
    }
}

/* Replay every recorded record into a fresh instance: same results, same
 * digest (I4). */
static void test_determinism(br2k_app *a) {
    int64_t lpi = 0;
    br2k_app *b = open_app("replica", &lpi);
    CHECK_INT(lpi, -1);
    if (b == NULL)
        return;
    for (int i = 0; i < nrec; i++) {
        json_t *r = apply_raw(b, rec_off[i], recs[i], strlen(recs[i]), NULL);
        json_decref(r);
    }
    CHECK_STR(digest(b), digest(a));
    ops->close(b);
}

static char *find_journal(const char *dir) {
    static char path[512];
    DIR *d = opendir(dir);
    path[0] = '\0';
    struct dirent *de;
    for (de = d ? readdir(d) : NULL; de != NULL; de = readdir(d))
        if (strncmp(de->d_name, "journal.", 8) == 0)
            snprintf(path, sizeof(path), "%s/%s", dir, de->d_name);
    if (d != NULL)
        closedir(d);
    return path;
}

static void test_durability(br2k_app **pa) {
    br2k_app *a = *pa;
    bk_err e;
    char want[65];
    int64_t lpi = 0;
    snprintf(want, sizeof(want), "%s", digest(a));
    int64_t want_lpi = next_off - 1;
    CHECK(ops->sync(a, &e) == BK_OK, "sync: %s", e.msg);
    ops->close(a);
    a = open_app("main", &lpi);
    *pa = a;
    if (a == NULL)
        return;
    CHECK_INT(lpi, want_lpi);
    CHECK_STR(digest(a), want);

    /* a second open of a directory in use is refused */
    br2k_app *twice = NULL;
    char dir[256];
    dir_of("main", dir, sizeof(dir));
    CHECK(ops->open(dir, &twice, &lpi, &e) == BK_ERR, "locked");

    /* checkpoint, more records, reopen: checkpoint + journal */
    CHECK(bk_infodid_checkpoint(a, &e) == BK_OK, "checkpoint: %s", e.msg);
    json_decref(req(a, &k1, "bob", 20, "register", "{\"attrs\":{\"n\":\"B\"}}", NULL));
    snprintf(want, sizeof(want), "%s", digest(a));
    CHECK(ops->sync(a, &e) == BK_OK, "sync: %s", e.msg);
    ops->close(a);
    a = open_app("main", &lpi);
    *pa = a;
    if (a == NULL)
        return;
    CHECK_INT(lpi, next_off - 1);
    CHECK_STR(digest(a), want);

    /* the checkpoint's own checksum covers its header: a generation
     * changed on disk is refused; a byte of the snapshot inside it is
     * refused by the snapshot's checksum; a format-1 checkpoint (its
     * checksum over every byte) is still read */
    CHECK(bk_infodid_checkpoint(a, &e) == BK_OK, "checkpoint: %s", e.msg);
    ops->close(a);
    *pa = NULL;
    char ck[300];
    snprintf(ck, sizeof(ck), "%s/checkpoint", dir);
    uint8_t *cb = NULL;
    size_t cn = 0;
    CHECK(read_all(ck, &cb, &cn) == 0 && cn > 100 && memcmp(cb, "BR2KIDC2", 8) == 0,
          "a format-2 checkpoint");
    if (cb == NULL)
        return;
    for (int k = 0; k < 2; k++) {
        size_t at = k == 0 ? 9 : cn / 2; /* the generation, the snapshot */
        cb[at] ^= 1;
        CHECK(write_all(ck, cb, cn) == 0, "write %s", ck);
        br2k_app *x = NULL;
        CHECK(ops->open(dir, &x, &lpi, &e) == BK_ERR &&
                  strstr(e.msg, k == 0 ? "is corrupt" : "checksum") != NULL,
              "a changed %s is refused: %s", k == 0 ? "generation" : "snapshot", e.msg);
        if (x != NULL)
            ops->close(x);
        cb[at] ^= 1;
    }
    memcpy(cb, "BR2KIDC1", 8);
    idd_sha256(cb, cn - 32, cb + cn - 32);
    CHECK(write_all(ck, cb, cn) == 0, "write %s", ck);
    free(cb);
    a = open_app("main", &lpi);
    *pa = a;
    if (a == NULL)
        return;
    CHECK_INT(lpi, next_off - 1);
    CHECK_STR(digest(a), want);

    /* rejections only: the LPI is still durable (an LPI entry) */
    EXPECT_REJECT(apply_text(a, "not json", NULL), "malformed_json");
    CHECK(ops->sync(a, &e) == BK_OK, "sync: %s", e.msg);
    ops->close(a);
    a = open_app("main", &lpi);
    *pa = a;
    if (a == NULL)
        return;
    CHECK_INT(lpi, next_off - 1);
    CHECK_STR(digest(a), want);

    /* a torn tail: the last entry cut short is ignored on open */
    int64_t good_lpi = next_off - 1;
    json_decref(req(a, &k1, "bob", 21, "update", "{\"attrs\":{\"n\":\"C\"}}", NULL));
    CHECK(ops->sync(a, &e) == BK_OK, "sync: %s", e.msg);
    ops->close(a);
    const char *j = find_journal(dir);
    FILE *f = fopen(j, "rb");
    long size = 0;
    if (f != NULL) {
        fseek(f, 0, SEEK_END);
        size = ftell(f);
        fclose(f);
    }
    CHECK(size > 10 && truncate(j, size - 5) == 0, "truncate %s", j);
    a = open_app("main", &lpi);
    *pa = a;
    if (a == NULL)
        return;
    CHECK_INT(lpi, good_lpi);
    CHECK_STR(digest(a), want);
    /* and new records go after the cut */
    next_off = good_lpi + 1;
    nrec--; /* the torn record is gone from this replica's history */
    free(recs[nrec]);
    json_decref(req(a, &k1, "bob", 22, "update", "{\"attrs\":{\"n\":\"D\"}}", NULL));
    snprintf(want, sizeof(want), "%s", digest(a));
    CHECK(ops->sync(a, &e) == BK_OK, "sync: %s", e.msg);
    ops->close(a);
    a = open_app("main", &lpi);
    *pa = a;
    if (a == NULL)
        return;
    CHECK_INT(lpi, next_off - 1);
    CHECK_STR(digest(a), want);
}

static void test_snapshot_restore(br2k_app *a) {
    void *snap = NULL;
    size_t len = 0;
    int64_t lpi = 0, lpi2 = 0;
    bk_err e;
    CHECK(ops->snapshot(a, &snap, &len, &lpi, &e) == BK_OK, "snapshot: %s", e.msg);
    CHECK_INT(lpi, next_off - 1);
    /* deterministic: twice the same bytes */
    void *snap2 = NULL;
    size_t len2 = 0;
    CHECK(ops->snapshot(a, &snap2, &len2, &lpi2, &e) == BK_OK, "snapshot again");
    CHECK(len == len2 && memcmp(snap, snap2, len) == 0, "snapshot is deterministic");
    free(snap2);

    /* into a fresh instance that already holds another state */
    br2k_app *b = open_app("restored", &lpi2);
    if (b == NULL) {
        free(snap);
        return;
    }
    json_decref(apply_raw(b, 0, recs[3], strlen(recs[3]), NULL));
    CHECK(ops->restore(b, snap, len, &e) == BK_OK, "restore: %s", e.msg);
    CHECK_STR(digest(b), digest(a));
    ops->close(b);
    b = open_app("restored", &lpi2);
    if (b != NULL) {
        CHECK_INT(lpi2, lpi);
        CHECK_STR(digest(b), digest(a));
        /* both continue identically */
        char *text = build(&k0, "carol", 1, "update", "{\"attrs\":{\"q\":\"r\"}}", 5);
        json_t *ra = apply_raw(a, lpi + 1, text, strlen(text), NULL);
        json_t *rb = apply_raw(b, lpi + 1, text, strlen(text), NULL);
        CHECK(json_equal(ra, rb), "same result after restore");
        CHECK_STR(digest(b), digest(a));
        json_decref(ra);
        json_decref(rb);
        free(text);
        next_off = lpi + 2;
        ops->close(b);
    }

    /* corrupt snapshots are refused and change nothing */
    b = open_app("restored", &lpi2);
    if (b != NULL) {
        char before[65];
        snprintf(before, sizeof(before), "%s", digest(b));
        ((uint8_t *)snap)[len / 2] ^= 1;
        CHECK(ops->restore(b, snap, len, &e) == BK_ERR, "corrupt snapshot refused");
        CHECK(ops->restore(b, "xyz", 3, &e) == BK_ERR, "garbage refused");
        CHECK_STR(digest(b), before);
        ops->close(b);
    }
    free(snap);
}

/* bk_infodid_each: what the state holds, in key order, without its encoding */
typedef struct walk {
    int ndid, nid, stop_at;
    char dids[4][64], ids[4][32], names[4][8];
    uint8_t ctrl[4][20];
    int revoked[4];
    int64_t created[4];
    uint32_t nattrs[4];
    int64_t id_off[4];
} walk;

static int walk_did(const bk_infodid_did *d, void *opaque) {
    walk *w = opaque;
    if (w->ndid < 4) {
        snprintf(w->dids[w->ndid], sizeof(w->dids[0]), "%s", d->did);
        memcpy(w->ctrl[w->ndid], d->controller, 20);
        w->revoked[w->ndid] = d->revoked;
        w->created[w->ndid] = d->created_off;
        w->nattrs[w->ndid] = d->nattrs;
        snprintf(w->names[w->ndid], sizeof(w->names[0]), "%s",
                 d->nattrs ? d->names[0] : "");
    }
    return ++w->ndid == w->stop_at;
}

static int walk_id(const bk_infodid_reqid *x, void *opaque) {
    walk *w = opaque;
    if (w->nid < 4) {
        snprintf(w->ids[w->nid], sizeof(w->ids[0]), "%s", x->id);
        json_t *j = json_loads(x->result, 0, NULL);
        w->id_off[w->nid] = json_integer_value(json_object_get(j, "offset"));
        json_decref(j);
    }
    w->nid++;
    return 0;
}

static void test_each(void) {
    int64_t lpi = 0;
    br2k_app *a = open_app("each", &lpi);
    if (a == NULL)
        return;
    int64_t first = next_off;
    json_decref(req(a, &k1, "zed", 1, "register",
                    "{\"did\":\"did:example:zed\",\"attrs\":{\"b\":\"2\",\"a\":\"1\"}}",
                    NULL));
    json_decref(req(a, &k0, "amy", 1, "register", "{\"did\":\"did:example:amy\"}", NULL));
    json_decref(req(a, &k1, "zed", 2, "revoke", "{\"did\":\"did:example:zed\"}", NULL));
    walk w = {0};
    bk_err e;
    CHECK_INT(bk_infodid_each(a, walk_did, walk_id, &w, &e), BK_OK);
    CHECK_INT(w.ndid, 2);
    CHECK_STR(w.dids[0], "did:example:amy");
    CHECK_STR(w.dids[1], "did:example:zed");
    CHECK(memcmp(w.ctrl[0], k0.addr, 20) == 0 && memcmp(w.ctrl[1], k1.addr, 20) == 0,
          "controllers");
    CHECK(!w.revoked[0] && w.revoked[1], "zed revoked, amy not");
    CHECK_INT(w.created[0], first + 1);
    CHECK_INT(w.created[1], first);
    CHECK_INT(w.nattrs[0], 0);
    CHECK_INT(w.nattrs[1], 2);
    CHECK_STR(w.names[1], "a"); /* attributes by name */
    CHECK_INT(w.nid, 3);
    CHECK_STR(w.ids[0], "amy:1");
    CHECK_STR(w.ids[1], "zed:1");
    CHECK_STR(w.ids[2], "zed:2");
    CHECK_INT(w.id_off[0], first + 1);
    CHECK_INT(w.id_off[2], first + 2);
    /* a callback that stops the walk: an error, nothing more called */
    walk s = {.stop_at = 1};
    CHECK_INT(bk_infodid_each(a, walk_did, walk_id, &s, &e), BK_ERR);
    CHECK_INT(s.ndid, 1);
    CHECK_INT(s.nid, 0);
    ops->close(a);
}

/* table.h: the encoding round-trips, a short read is refused, and the
 * hash table finds, replaces and sorts across growth. */
typedef struct tval {
    char *key; /* first member: the table reads it */
    int n;
} tval;

static void tval_free(void *v) {
    tval *t = v;
    free(t->key);
    free(t);
}

static void test_table(void) {
    idd_buf b = {0};
    idd_put_u64(&b, 0x0102030405060708ULL);
    idd_put_u32(&b, 0xa0b0c0d0u);
    idd_put_u8(&b, 7);
    idd_put_str(&b, "hello");
    CHECK(!b.oom, "no oom");
    CHECK_INT(b.len, 8 + 4 + 1 + 4 + 5);
    CHECK_INT(b.p[0], 0x08); /* little-endian */
    idd_rd r = {b.p, b.len, 0, 0};
    CHECK(idd_get_u64(&r) == 0x0102030405060708ULL, "u64");
    CHECK(idd_get_u32(&r) == 0xa0b0c0d0u, "u32");
    CHECK_INT(idd_get_u8(&r), 7);
    char *str = idd_get_str(&r, 16);
    CHECK_STR(str, "hello");
    free(str);
    CHECK(!r.bad && r.pos == r.len, "read to the end");
    CHECK_INT(idd_get_u8(&r), 0);
    CHECK(r.bad, "a read past the end is bad");
    idd_rd r2 = {b.p + 13, b.len - 13, 0, 0};
    CHECK(idd_get_str(&r2, 4) == NULL && r2.bad, "a string over its limit is refused");
    CHECK(idd_crc32((const uint8_t *)"123456789", 9) == 0xCBF43926u, "crc32 check value");
    idd_buf_free(&b);
    CHECK(b.p == NULL && b.len == 0, "freed");

    idd_map m;
    idd_map_init(&m);
    CHECK(idd_map_get(&m, "x") == NULL, "empty");
    enum { N = 500 };
    for (int i = N - 1; i >= 0; i--) {
        tval *t = malloc(sizeof(*t));
        char k[16];
        snprintf(k, sizeof(k), "k%04d", i);
        t->key = strdup(k);
        t->n = i;
        void *old = (void *)1;
        CHECK(idd_map_put(&m, t, &old) == BK_OK && old == NULL, "put %d", i);
    }
    CHECK_INT(m.n, N);
    tval *t = idd_map_get(&m, "k0123");
    CHECK(t != NULL && t->n == 123, "get");
    tval *t2 = malloc(sizeof(*t2));
    t2->key = strdup("k0123");
    t2->n = -1;
    void *old = NULL;
    CHECK(idd_map_put(&m, t2, &old) == BK_OK && old == t, "replace returns the old");
    tval_free(old);
    CHECK_INT(m.n, N);
    CHECK_INT(((tval *)idd_map_get(&m, "k0123"))->n, -1);
    void **v = idd_map_sorted(&m);
    int sorted = v != NULL;
    for (int i = 0; sorted && i < N; i++)
        sorted = ((tval *)v[i])->n == (i == 123 ? -1 : i);
    CHECK(sorted, "sorted by key");
    free(v);
    /* removal: every third key goes, the rest stay findable (runs of
     * colliding keys are moved back, not broken) */
    CHECK(idd_map_del(&m, "absent") == NULL, "removing an absent key");
    for (int i = 0; i < N; i += 3) {
        char k[16];
        snprintf(k, sizeof(k), "k%04d", i);
        tval *d = idd_map_del(&m, k);
        CHECK(d != NULL && strcmp(d->key, k) == 0, "del %s", k);
        if (d != NULL)
            tval_free(d);
    }
    CHECK_INT(m.n, N - (N + 2) / 3);
    int found = 1;
    for (int i = 0; i < N; i++) {
        char k[16];
        snprintf(k, sizeof(k), "k%04d", i);
        found = found && ((idd_map_get(&m, k) != NULL) == (i % 3 != 0));
    }
    CHECK(found, "after removals: removed keys absent, the others found");
    idd_map_free(&m, tval_free);
    CHECK(m.n == 0 && m.cap == 0 && m.s == NULL, "freed");
}

/* idd_map_put_new: the batch insert of a restore (hashes first, slots
 * fetched ahead); keys of every length around the hash's 8-byte words */
static void test_put_new(void) {
    idd_map m;
    idd_map_init(&m);
    enum { N = 3000 };
    void *v[N];
    uint64_t h[N];
    for (int i = 0; i < N; i++) {
        tval *t = malloc(sizeof(*t));
        char k[64];
        /* lengths 1..40: "x", "xy", ..., then the number */
        int len = 1 + i % 40;
        snprintf(k, sizeof(k), "%d-%s", i, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOP");
        k[len > (int)strlen(k) ? (int)strlen(k) : len] = '\0';
        if (len < 6) /* short keys stay distinct */
            snprintf(k, sizeof(k), "%d", i);
        t->key = strdup(k);
        t->n = i;
        v[i] = t;
        h[i] = idd_map_hash(&m, t->key);
    }
    size_t stop = 99;
    CHECK(idd_map_put_new(&m, v, h, 1000, &stop) == BK_OK && stop == 1000, "batch 1");
    CHECK(idd_map_put_new(&m, v + 1000, h + 1000, N - 1000, &stop) == BK_OK &&
              stop == N - 1000,
          "batch 2");
    CHECK_INT(m.n, N);
    int found = 1;
    for (int i = 0; i < N; i++) {
        tval *t = idd_map_get(&m, ((tval *)v[i])->key);
        found = found && t == v[i];
    }
    CHECK(found, "every key of the batches found by idd_map_get");
    /* a key already in the table: the values before it are in, it and the
     * rest are not */
    tval *x[3];
    void *xv[3];
    uint64_t xh[3];
    const char *xk[3] = {"new-1", ((tval *)v[1234])->key, "new-2"};
    for (int i = 0; i < 3; i++) {
        x[i] = malloc(sizeof(*x[i]));
        x[i]->key = strdup(xk[i]);
        x[i]->n = -1;
        xv[i] = x[i];
        xh[i] = idd_map_hash(&m, xk[i]);
    }
    CHECK(idd_map_put_new(&m, xv, xh, 3, &stop) == BK_ERR && stop == 1, "a key twice");
    CHECK(idd_map_get(&m, "new-1") == x[0], "the value before it is in");
    CHECK(idd_map_get(&m, "new-2") == NULL, "the value after it is not");
    CHECK(idd_map_get(&m, xk[1]) == v[1234], "the old value stays");
    tval_free(x[1]);
    /* twice in one batch */
    void *yv[2] = {x[2], NULL};
    tval *y = malloc(sizeof(*y));
    y->key = strdup("new-2");
    y->n = -2;
    yv[1] = y;
    uint64_t yh[2] = {xh[2], idd_map_hash(&m, "new-2")};
    CHECK(idd_map_put_new(&m, yv, yh, 2, &stop) == BK_ERR && stop == 1,
          "a key twice in one batch");
    CHECK(idd_map_get(&m, "new-2") == x[2], "the first of the two is in");
    tval_free(y);
    CHECK_INT(m.n, N + 2);
    idd_map_free(&m, tval_free);
}

/* A snapshot whose request ids hold one id twice (at two offsets: the
 * order (offset, key) holds) is corrupt: refused, nothing leaked, whether
 * the two are decoded in one batch or in two. DIDs with attributes decode
 * into one block each and keep them. */
static void test_decode_twice(void) {
    for (int far = 0; far <= 1; far++) {
        idd_state st;
        idd_state_init(&st);
        bk_err e;
        int n = far ? 1500 : 10, dup = far ? 1400 : 5;
        for (int i = 0; i < n; i++) {
            id_rec *r = calloc(1, sizeof(*r));
            char k[32];
            /* the dup-th id's key is the 3rd's but for one byte */
            snprintf(k, sizeof(k), "c:%06d", i == dup ? 3 : i);
            if (i == dup)
                k[0] = 'd';
            r->key = strdup(k);
            r->result = strdup("{}");
            did_rec *d = NULL;
            if (i < 3) {
                d = calloc(1, sizeof(*d));
                snprintf(k, sizeof(k), "did:br2k:%d", i);
                d->key = strdup(k);
                d->nattrs = 2;
                d->attrs = calloc(2, sizeof(did_attr));
                d->attrs[0].k = strdup("a");
                d->attrs[0].v = strdup("");
                d->attrs[1].k = strdup("name");
                d->attrs[1].v = strdup(k);
            }
            CHECK(idd_state_commit(&st, i, r, d, &e) == BK_OK, "commit %d", i);
        }
        idd_buf b = {0};
        CHECK(idd_encode_snapshot(&st, n - 1, &b, &e) == BK_OK, "encode");
        idd_state_release(&st);
        /* it decodes as it is */
        idd_state ok;
        idd_state_init(&ok);
        int64_t lpi = 0;
        CHECK(idd_decode_snapshot(b.p, b.len, &ok, &lpi, &e) == BK_OK, "decode: %s",
              e.msg);
        CHECK_INT(ok.dids.n, 3);
        CHECK_INT(ok.ids.n, n);
        did_rec *d1 = idd_map_get(&ok.dids, "did:br2k:1");
        CHECK(d1 != NULL && d1->nattrs == 2 && strcmp(d1->attrs[0].k, "a") == 0 &&
                  strcmp(d1->attrs[0].v, "") == 0 &&
                  strcmp(d1->attrs[1].v, "did:br2k:1") == 0,
              "attributes decoded");
        idd_state_release(&ok);
        /* make the dup-th key the 3rd's, then the checksum right again */
        uint8_t *p = memmem(b.p, b.len, "d:000003", 8);
        CHECK(p != NULL, "the key in the encoding");
        if (p != NULL) {
            p[0] = 'c';
            idd_sha256(b.p, b.len - 32, b.p + b.len - 32);
            idd_state bad;
            idd_state_init(&bad);
            CHECK(idd_decode_snapshot(b.p, b.len, &bad, &lpi, &e) == BK_ERR &&
                      strstr(e.msg, "corrupt") != NULL,
                  "an id twice (%s) is corrupt: %s", far ? "two batches" : "one batch",
                  e.msg);
            idd_state_release(&bad);
        }
        idd_buf_free(&b);
    }
}

static int ids_of(br2k_app *a);

/* A restore of a snapshot of several of the checkpoint writer's 4 MiB
 * pieces, into a directory whose file system takes O_DIRECT (under /tmp)
 * and, where there is one, into tmpfs (/dev/shm: O_DIRECT taken since
 * Linux 6.6, refused before, then the writes are buffered): the
 * checkpoint it leaves opens to the same state. */
static void test_restore_big(void) {
    idd_state st;
    idd_state_init(&st);
    bk_err e;
    enum { N = 30011 }; /* ~9.6 MB: two whole pieces and a tail */
    char res[320];
    memset(res, 'r', sizeof(res) - 1);
    res[sizeof(res) - 1] = '\0';
    for (int i = 0; i < N; i++) {
        id_rec *r = calloc(1, sizeof(*r));
        char k[32];
        snprintf(k, sizeof(k), "c:%d", i + 1);
        r->key = strdup(k);
        r->result = strdup(res);
        CHECK(idd_state_commit(&st, i, r, NULL, &e) == BK_OK, "commit %d", i);
    }
    idd_buf b = {0};
    CHECK(idd_encode_snapshot(&st, N - 1, &b, &e) == BK_OK && b.len > (size_t)9 << 20,
          "encode: %zu bytes", b.len);
    idd_state_release(&st);
    char shm[] = "/dev/shm/br2k-infodid-test.XXXXXX";
    const char *dirs[2] = {root, mkdtemp(shm)};
    for (int k = 0; k < 2 && dirs[k] != NULL; k++) {
        char dir[300];
        snprintf(dir, sizeof(dir), "%s/big", dirs[k]);
        br2k_app *a = NULL;
        int64_t lpi = 0;
        CHECK(ops->open(dir, &a, &lpi, &e) == BK_OK, "open %s: %s", dir, e.msg);
        if (a == NULL)
            continue;
        CHECK(ops->restore(a, b.p, b.len, &e) == BK_OK, "restore in %s: %s", dir, e.msg);
        char want[65];
        snprintf(want, sizeof(want), "%s", digest(a));
        ops->close(a);
        char ck[320];
        snprintf(ck, sizeof(ck), "%s/checkpoint", dir);
        struct stat sb;
        CHECK(stat(ck, &sb) == 0 && (size_t)sb.st_size == 24 + b.len + 32,
              "the checkpoint in %s is %zu bytes, not padded", dir, b.len + 56);
        a = NULL;
        CHECK(ops->open(dir, &a, &lpi, &e) == BK_OK, "reopen %s: %s", dir, e.msg);
        if (a == NULL)
            continue;
        CHECK_INT(lpi, N - 1);
        CHECK_INT(ids_of(a), N);
        CHECK_STR(digest(a), want);
        ops->close(a);
    }
    if (dirs[1] != NULL)
        nftw(dirs[1], rm_one, 16, FTW_DEPTH | FTW_PHYS);
    idd_buf_free(&b);
}

/* ---- the request-id window ---- */

static int count_id(const bk_infodid_reqid *x, void *opaque) {
    (void)x;
    (*(int *)opaque)++;
    return 0;
}

static int ids_of(br2k_app *a) {
    int n = 0;
    bk_err e;
    CHECK_INT(bk_infodid_each(a, NULL, count_id, &n, &e), BK_OK);
    return n;
}

static br2k_app *open_window(const char *name, const char *window) {
    setenv("BR2K_INFODID_ID_WINDOW", window, 1);
    int64_t lpi = 0;
    br2k_app *a = open_app(name, &lpi);
    unsetenv("BR2K_INFODID_ID_WINDOW");
    return a;
}

/* Apply text at off to each of n instances; the first's result. */
static json_t *apply_all(br2k_app **as, int n, int64_t off, const char *text,
                         int *applied) {
    json_t *first = NULL;
    for (int i = 0; i < n; i++) {
        json_t *r = apply_raw(as[i], off, text, strlen(text), i == 0 ? applied : NULL);
        if (i == 0)
            first = r;
        else
            json_decref(r);
    }
    return first;
}

/* A window of 4 records: ids first seen 4 or more records before the last
 * change are dropped, the same way on every replica (log-driven), across a
 * reopen (journal replay) and a snapshot; a retry of a dropped id is
 * `expired` (never applied twice), other clients and later ids are not
 * touched; window 0 keeps everything; a bad value stops open. */
static void test_window(void) {
    br2k_app *w[2] = {open_window("win-a", "4"), open_window("win-b", "4")};
    br2k_app *all = open_window("win-all", "0");
    if (w[0] == NULL || w[1] == NULL || all == NULL)
        return;
    char *texts[12] = {0};
    texts[0] = build(&k0, "carol", 1, "register", "{\"attrs\":{\"n\":\"0\"}}", 1);
    for (int i = 1; i < 10; i++) {
        char pl[64];
        snprintf(pl, sizeof(pl), "{\"attrs\":{\"n\":\"%d\"}}", i);
        texts[i] = build(&k0, "carol", i + 1, "update", pl, 1 + i);
    }
    for (int i = 0; i < 10; i++) {
        int applied = -1;
        json_t *r = apply_all(w, 2, i, texts[i], &applied);
        CHECK_STR(status(r), "ok");
        CHECK_INT(applied, 1);
        json_decref(r);
        json_decref(apply_raw(all, i, texts[i], strlen(texts[i]), NULL));
    }
    /* after the change at offset 9: ids first seen at 0..5 are gone */
    CHECK_INT(ids_of(w[0]), 4);
    CHECK_INT(ids_of(all), 10);
    CHECK_STR(digest(w[1]), digest(w[0]));
    char before[65];
    snprintf(before, sizeof(before), "%s", digest(w[0]));
    /* a retry of carol:3 (first at offset 2): expired, nothing changes */
    int applied = -1;
    json_t *r = apply_all(w, 2, 10, texts[2], &applied);
    CHECK_STR(status(r), "rejected");
    CHECK_STR(code(r), "expired");
    CHECK(strstr(json_string_value(json_object_get(json_object_get(r, "reason"), "text")),
                 "up to seq 6") != NULL,
          "the text names the highest dropped seq");
    CHECK_INT(applied, 0);
    json_decref(r);
    CHECK_STR(digest(w[0]), before);
    /* without the window the same retry is a repeat */
    r = apply_raw(all, 10, texts[2], strlen(texts[2]), &applied);
    CHECK(json_is_true(json_object_get(r, "repeat")), "window 0: a repeat");
    json_decref(r);
    /* carol:9 (offset 8) is still kept: a repeat with its first result */
    r = apply_all(w, 2, 11, texts[8], &applied);
    CHECK_STR(status(r), "ok");
    CHECK(json_is_true(json_object_get(r, "repeat")), "kept id: a repeat");
    CHECK_INT(json_integer_value(json_object_get(r, "repeat_offset")), 11);
    CHECK_INT(applied, 0);
    json_decref(r);
    /* a later id of carol, and another client, are taken */
    texts[10] = build(&k0, "carol", 11, "update", "{\"attrs\":{\"n\":\"x\"}}", 20);
    texts[11] = build(&k1, "dave", 1, "register", "{}", 21);
    r = apply_all(w, 2, 12, texts[10], &applied);
    CHECK_STR(status(r), "ok");
    CHECK_INT(applied, 1);
    json_decref(r);
    r = apply_all(w, 2, 13, texts[11], &applied);
    CHECK_STR(status(r), "ok");
    json_decref(r);
    CHECK_INT(ids_of(w[0]), 2); /* carol:11, dave:1; carol:10 (offset 9) went at 13 */
    CHECK_STR(digest(w[1]), digest(w[0]));
    snprintf(before, sizeof(before), "%s", digest(w[0]));

    /* a reopen replays the journal through the same window */
    bk_err e;
    CHECK(ops->sync(w[0], &e) == BK_OK, "sync: %s", e.msg);
    ops->close(w[0]);
    w[0] = open_window("win-a", "4");
    if (w[0] == NULL)
        return;
    CHECK_STR(digest(w[0]), before);
    CHECK_INT(ids_of(w[0]), 2);
    r = apply_raw(w[0], 14, texts[3], strlen(texts[3]), &applied);
    CHECK_STR(code(r), "expired");
    json_decref(r);

    /* a snapshot carries the window's state: dropped seqs included */
    void *snap = NULL;
    size_t len = 0;
    int64_t lpi = 0;
    CHECK(ops->snapshot(w[1], &snap, &len, &lpi, &e) == BK_OK, "snapshot: %s", e.msg);
    CHECK(len > 8 && memcmp(snap, "BR2KIDS2", 8) == 0, "format 2");
    br2k_app *c = open_window("win-c", "4");
    if (c != NULL) {
        CHECK(ops->restore(c, snap, len, &e) == BK_OK, "restore: %s", e.msg);
        CHECK_STR(digest(c), digest(w[1]));
        r = apply_raw(c, 14, texts[4], strlen(texts[4]), &applied);
        CHECK_STR(code(r), "expired");
        json_decref(r);
        ops->close(c);
    }
    free(snap);

    /* format 1 (no offsets, no dropped seqs): read, its ids at offset 0 */
    idd_buf b = {0};
    idd_put_bytes(&b, "BR2KIDS1", 8);
    idd_put_u64(&b, 5);
    idd_put_u64(&b, 0); /* DIDs */
    idd_put_u64(&b, 2);
    const char *keys[2] = {"zed:1", "zed:2"};
    for (int i = 0; i < 2; i++) {
        uint8_t h[32] = {(uint8_t)i};
        idd_put_str(&b, keys[i]);
        idd_put_bytes(&b, h, 32);
        idd_put_str(&b, "{\"v\":1}");
    }
    uint8_t sum[32];
    idd_sha256(b.p, b.len, sum);
    idd_put_bytes(&b, sum, 32);
    c = open_window("win-old", "4");
    if (c != NULL) {
        CHECK(ops->restore(c, b.p, b.len, &e) == BK_OK, "restore format 1: %s", e.msg);
        CHECK_INT(ids_of(c), 2);
        /* its digest is that of the state, not of the old bytes */
        CHECK(ops->snapshot(c, &snap, &len, &lpi, &e) == BK_OK, "%s", e.msg);
        br2k_app *d = open_window("win-old2", "4");
        if (d != NULL) {
            CHECK(ops->restore(d, snap, len, &e) == BK_OK, "%s", e.msg);
            CHECK_STR(digest(d), digest(c));
            ops->close(d);
        }
        free(snap);
        char *zed = build(&k1, "zed", 3, "register", "{}", 30);
        r = apply_raw(c, 6, zed, strlen(zed), &applied); /* drops offset <= 2 */
        CHECK_STR(status(r), "ok");
        json_decref(r);
        free(zed);
        CHECK_INT(ids_of(c), 1);
        zed = build(&k1, "zed", 2, "register", "{}", 31);
        r = apply_raw(c, 7, zed, strlen(zed), &applied);
        CHECK_STR(code(r), "expired");
        json_decref(r);
        free(zed);
        ops->close(c);
    }
    idd_buf_free(&b);

    /* a window that is not a number stops open with a line that names it */
    setenv("BR2K_INFODID_ID_WINDOW", "1e6", 1);
    br2k_app *bad = NULL;
    char dir[256];
    dir_of("win-bad", dir, sizeof(dir));
    CHECK(ops->open(dir, &bad, &lpi, &e) == BK_ERR, "a bad window refused");
    CHECK(strstr(e.msg, "BR2K_INFODID_ID_WINDOW='1e6'") != NULL, "%s", e.msg);
    unsetenv("BR2K_INFODID_ID_WINDOW");

    for (int i = 0; i < 12; i++)
        free(texts[i]);
    ops->close(w[0]);
    ops->close(w[1]);
    ops->close(all);
}

/* keys.h: the names of the external index (what INFODID.md documents). */
static void test_ext_keys(void) {
    char k[BK_KEY_MAX];
    bk_err e;
    CHECK(bk_key_ext_applied(k, sizeof(k), "svc", &e) == BK_OK, "%s", e.msg);
    CHECK_STR(k, "br2k:{svc}:ext:applied");
    CHECK(bk_key_ext_active(k, sizeof(k), "svc", &e) == BK_OK, "%s", e.msg);
    CHECK_STR(k, "br2k:{svc}:ext:active");
    CHECK(bk_key_ext_did(k, sizeof(k), "svc", &e) == BK_OK, "%s", e.msg);
    CHECK_STR(k, "br2k:{svc}:ext:did");
    CHECK(bk_key_ext_did(k, sizeof(k), "bad{svc}", &e) == BK_ERR, "bad service refused");
    /* the applications' ext: namespace (the host's ext_write) */
    CHECK(bk_key_ext_prefix(k, sizeof(k), "svc", &e) == BK_OK, "%s", e.msg);
    CHECK_STR(k, "br2k:{svc}:ext:");
    CHECK(bk_key_ext(k, sizeof(k), "svc", "counts:by-client.v1", &e) == BK_OK, "%s",
          e.msg);
    CHECK_STR(k, "br2k:{svc}:ext:counts:by-client.v1");
    static const char *const bad[] = {"applied", "", "a b", "x{y}", "a/b", "\xc3\xa9"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        CHECK(!bk_ext_name_ok(bad[i]), "'%s' refused", bad[i]);
        CHECK(bk_key_ext(k, sizeof(k), "svc", bad[i], &e) == BK_ERR &&
                  e.code == BK_E_INVAL,
              "'%s' refused by bk_key_ext", bad[i]);
    }
    char longname[BK_EXT_NAME_MAX + 2];
    memset(longname, 'n', sizeof(longname) - 1);
    longname[sizeof(longname) - 1] = '\0';
    CHECK(!bk_ext_name_ok(longname), "a name of %d bytes refused", BK_EXT_NAME_MAX + 1);
    longname[BK_EXT_NAME_MAX] = '\0';
    CHECK(bk_ext_name_ok(longname), "a name of %d bytes taken", BK_EXT_NAME_MAX);
    CHECK(bk_ext_write(NULL, "svc", 1, NULL, 0, NULL, &e) == BK_OK,
          "an empty write is nothing");
}

/* InfoDID is a plug-in (br2k/app.h) like any other: its entry table, and
 * the runtime's adapted table (appload.h) that the tests call. */
static void test_plugin(void) {
    const br2k_app_plugin *p = br2k_infodid_entry();
    CHECK(p != NULL, "entry");
    if (p == NULL)
        return;
    CHECK_INT(p->abi_version, BR2K_APP_ABI_VERSION);
    CHECK_STR(p->name, "infodid");
    CHECK(p->open && p->apply && p->sync && p->external && p->external_many &&
              p->snapshot && p->restore && p->digest && p->close,
          "every operation");
    const br2k_app_ops *o = NULL;
    bk_err e;
    CHECK(bk_app_resolve("infodid", &o, &e) == BK_OK && o == &bk_infodid_ops, "%s",
          e.msg);
    CHECK(bk_app_resolve("", &o, &e) == BK_OK && o == &bk_infodid_ops, "the default");
    CHECK(bk_app_resolve("noop", &o, &e) == BK_OK && o == &bk_noop_ops, "%s", e.msg);
    CHECK(bk_app_resolve("infodidx", &o, &e) == BK_ERR &&
              strstr(e.msg, "unknown application 'infodidx'") != NULL,
          "%s", e.msg);
    CHECK(bk_app_resolve("./missing.so", &o, &e) == BK_ERR &&
              strstr(e.msg, "cannot load application './missing.so'") != NULL,
          "%s", e.msg);
    br2k_app *a = NULL;
    int64_t lpi = 0;
    char dir[4200];
    snprintf(dir, sizeof(dir), "%s/plugin", root);
    br2k_app_error pe = {0, ""};
    CHECK(p->open(dir, &a, &lpi, &pe) == BR2K_APP_OK, "%s", pe.msg);
    if (a != NULL) {
        /* an error of the plug-in keeps its code and its line */
        void *buf = NULL;
        size_t len = 0;
        CHECK(p->restore(a, "garbage", 7, &pe) == BR2K_APP_ERR, "restore of garbage");
        CHECK(pe.code != 0 && pe.msg[0] != '\0', "code %d msg '%s'", pe.code, pe.msg);
        bk_err be;
        CHECK(bk_infodid_ops.restore(a, "garbage", 7, &be) == BK_ERR, "adapted restore");
        CHECK_INT(be.code, pe.code);
        CHECK_STR(be.msg, pe.msg);
        CHECK(p->snapshot(a, &buf, &len, &lpi, &pe) == BR2K_APP_OK, "%s", pe.msg);
        free(buf);
        p->close(a);
    }
}

int main(void) {
    bk_err e;
    if (mkdtemp(root) == NULL) {
        perror("mkdtemp");
        return 1;
    }
    CHECK(bk_eth_key_from_hex(KEY0, &k0, &e) == BK_OK, "key0: %s", e.msg);
    CHECK(bk_eth_key_from_hex(KEY1, &k1, &e) == BK_OK, "key1: %s", e.msg);
    CHECK_STR(ops->name, "infodid");

    int64_t lpi = 0;
    br2k_app *a = open_app("main", &lpi);
    CHECK_INT(lpi, -1);
    if (a != NULL) {
        test_operations(a);
        test_repeat(a);
        test_determinism(a);
        test_durability(&a);
        if (a != NULL)
            test_snapshot_restore(a);
        ops->close(a);
    }
    test_each();
    br2k_app *c = open_app("cast", &lpi);
    if (c != NULL) {
        test_cast_fixture(c);
        ops->close(c);
    }
    ops->close(NULL);
    test_table();
    test_put_new();
    test_decode_twice();
    test_restore_big();
    test_window();
    test_ext_keys();
    test_plugin();
    for (int i = 0; i < nrec; i++)
        free(recs[i]);
    nftw(root, rm_one, 16, FTW_DEPTH | FTW_PHYS);
    return check_done();
}
