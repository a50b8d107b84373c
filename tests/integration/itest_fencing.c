/* itest_fencing.c - common/keys against a real redis-server (I2, I3).
 *
 *   itest_fencing HOST:PORT
 * Uses service "fence" (the server is the test's own). Prints
 * "N passed, N failed"; exit status 1 on any failure. */
#include <hiredis/hiredis.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "../unit/check.h"
#include "base/err.h"
#include "redis/keys.h"
#include "redis/redis.h"

#define SVC "fence"

static const char *addr;

static void sleep_ms(int ms) {
    struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000};
    nanosleep(&ts, NULL);
}

static char *get(bk_redis *r, const char *key) {
    redisReply *rep = bk_redis_command(r, NULL, "GET %s", key);
    char *v = rep && rep->type == REDIS_REPLY_STRING ? strdup(rep->str) : NULL;
    if (rep)
        freeReplyObject(rep);
    return v;
}

/* The integer reply of command `cmd` on `key` (EXISTS, TTL, HLEN), or
 * `none` when the reply is not an integer. */
static long long int_of(bk_redis *r, const char *cmd, const char *key, long long none) {
    redisReply *rep = bk_redis_command(r, NULL, "%s %s", cmd, key);
    long long v = rep && rep->type == REDIS_REPLY_INTEGER ? rep->integer : none;
    if (rep)
        freeReplyObject(rep);
    return v;
}
static int exists(bk_redis *r, const char *key) {
    return (int)int_of(r, "EXISTS", key, -1);
}
static long long ttl(bk_redis *r, const char *key) {
    return int_of(r, "TTL", key, -3);
}
static long long hlen(bk_redis *r, const char *key) {
    return int_of(r, "HLEN", key, -1);
}

/* Where the result of request id "<client>:<seq>" is (worked out here, not
 * by keys.c): the hash "br2k:{fence}:results:<client>:<seq / 1024>", field
 * "<seq>". */
static void results_at(const char *id, char *key, size_t ksize, char *field,
                       size_t fsize) {
    const char *colon = strrchr(id, ':');
    uint64_t seq = strtoull(colon + 1, NULL, 10);
    snprintf(key, ksize, "br2k:{" SVC "}:results:%.*s:%" PRIu64, (int)(colon - id), id,
             seq / 1024);
    snprintf(field, fsize, "%" PRIu64, seq);
}

/* The result of request id `id` (HGET of its field); NULL if none. */
static char *hget_result(bk_redis *r, const char *id) {
    char k[BK_KEY_MAX], f[24];
    results_at(id, k, sizeof(k), f, sizeof(f));
    redisReply *rep = bk_redis_command(r, NULL, "HGET %s %s", k, f);
    char *v = rep && rep->type == REDIS_REPLY_STRING ? strdup(rep->str) : NULL;
    if (rep)
        freeReplyObject(rep);
    return v;
}

/* The string at `key` (EXPECT_GET) or the result of request id `id`
 * (EXPECT_RESULT) is `want`. */
#define EXPECT_GET(r, key, want)                                                         \
    do {                                                                                 \
        char *v_ = get(r, key);                                                          \
        CHECK_STR(v_, want);                                                             \
        free(v_);                                                                        \
    } while (0)
#define EXPECT_RESULT(r, id, want)                                                       \
    do {                                                                                 \
        char *v_ = hget_result(r, id);                                                   \
        CHECK_STR(v_, want);                                                             \
        free(v_);                                                                        \
    } while (0)

/* 1 if request id `id` has a result (HEXISTS of its field), else 0. */
static int has_result(bk_redis *r, const char *id) {
    char k[BK_KEY_MAX], f[24];
    results_at(id, k, sizeof(k), f, sizeof(f));
    redisReply *rep = bk_redis_command(r, NULL, "HEXISTS %s %s", k, f);
    int v = rep && rep->type == REDIS_REPLY_INTEGER ? (int)rep->integer : -1;
    if (rep)
        freeReplyObject(rep);
    return v;
}

/* The TTL of the hash holding request id `id`'s result. */
static long long ttl_result(bk_redis *r, const char *id) {
    char k[BK_KEY_MAX], f[24];
    results_at(id, k, sizeof(k), f, sizeof(f));
    return ttl(r, k);
}

static void test_names(void) {
    char k[BK_KEY_MAX];
    bk_err e;
    CHECK_INT(bk_key_ssi(k, sizeof(k), "svc", &e), BK_OK);
    CHECK_STR(k, "br2k:{svc}:SSI");
    bk_key_sv(k, sizeof(k), "svc", &e);
    CHECK_STR(k, "br2k:{svc}:Service-State");
    bk_key_ssv(k, sizeof(k), "svc", "w1", &e);
    CHECK_STR(k, "br2k:{svc}:State-w1");
    bk_key_lpi(k, sizeof(k), "svc", "w1", &e);
    CHECK_STR(k, "br2k:{svc}:LPI-w1");
    bk_key_result(k, sizeof(k), "svc", "alice:7", &e);
    CHECK_STR(k, "br2k:{svc}:result:alice:7");
    bk_key_result(k, sizeof(k), "svc", "alice:007", &e);
    CHECK_STR(k, "br2k:{svc}:result:alice:007");
    bk_key_changes(k, sizeof(k), "svc", &e);
    CHECK_STR(k, "br2k:{svc}:changes");
    bk_key_alive(k, sizeof(k), "svc", "w.2", &e);
    CHECK_STR(k, "br2k:{svc}:alive-w.2");
    CHECK_INT(bk_key_ssi(k, sizeof(k), "a}b", &e), BK_ERR);
    CHECK_INT(e.code, BK_E_INVAL);
    CHECK_INT(bk_key_lpi(k, sizeof(k), "svc", "w 1", &e), BK_ERR);
    CHECK_INT(bk_key_result(k, sizeof(k), "svc", "a{b}:1", &e), BK_ERR);

    /* the results of "<client>:<seq>": hash results:<client>:<seq / 1024>,
     * field <seq>; any other id is not of this form (BK_E_INVAL) */
    char f[24];
    static const struct {
        const char *id, *key, *field;
    } good[] = {
        {"alice:7", "br2k:{svc}:results:alice:0", "7"},
        {"alice:1025", "br2k:{svc}:results:alice:1", "1025"},
        {"alice:1023", "br2k:{svc}:results:alice:0", "1023"},
        {"alice:1024", "br2k:{svc}:results:alice:1", "1024"},
        {"alice:0", "br2k:{svc}:results:alice:0", "0"},
        {"a:b:2048", "br2k:{svc}:results:a:b:2", "2048"},
        {"alice:18446744073709551615", "br2k:{svc}:results:alice:18014398509481983",
         "18446744073709551615"},
    };
    for (size_t i = 0; i < sizeof(good) / sizeof(good[0]); i++) {
        CHECK_INT(bk_key_results(k, sizeof(k), f, sizeof(f), "svc", good[i].id, &e),
                  BK_OK);
        CHECK_STR(k, good[i].key);
        CHECK_STR(f, good[i].field);
    }
    const char *odd[] = {"a{b}:1",
                         "a}:1",
                         "alice:007",
                         "alice:x",
                         "alice:",
                         ":7",
                         "alice",
                         "alice:-1",
                         "alice:+7",
                         "alice:7 ",
                         "alice:18446744073709551616",
                         "alice:100000000000000000000"};
    for (size_t i = 0; i < sizeof(odd) / sizeof(odd[0]); i++) {
        bk_err_clear(&e);
        CHECK(bk_key_results(k, sizeof(k), f, sizeof(f), "svc", odd[i], &e) == BK_ERR &&
                  e.code == BK_E_INVAL,
              "'%s' taken as <client>:<seq>", odd[i]);
    }
}

static void test_lease(bk_redis *r) {
    bk_err e;
    bk_err_clear(&e);
    int64_t ep = -1, ep2 = -1;
    char id[BK_ID_MAX + 1];
    CHECK_INT(bk_lease_take(r, SVC, "a", INT64_MIN, INT64_MAX, 300, &ep, &e), BK_OK);
    CHECK_INT(ep, 1);
    CHECK_INT(bk_lease_get(r, SVC, id, &ep2, &e), BK_OK);
    CHECK_STR(id, "a");
    CHECK_INT(ep2, 1);
    /* a second contender does not get it, and the epoch does not move */
    CHECK_INT(bk_lease_take(r, SVC, "b", INT64_MIN, INT64_MAX, 300, &ep2, &e), BK_OK);
    CHECK_INT(ep2, 0);
    CHECK_INT(bk_epoch_get(r, SVC, &ep2, &e), BK_OK);
    CHECK_INT(ep2, 1);
    /* renew: the holder yes, another id with the same epoch no */
    CHECK_INT(bk_lease_renew(r, SVC, "a", 1, 300, &e), BK_OK);
    CHECK_INT(bk_lease_renew(r, SVC, "b", 1, 300, &e), BK_ERR);
    CHECK_INT(e.code, BK_E_FENCED);
    CHECK(strstr(e.msg, "FENCED") != NULL, "message '%s'", e.msg);

    /* fenced commit with the current token: results and SSI */
    bk_result_item items[] = {{"c1:1", "{\"r\":1}", 1, 0}, {"c1:2", "{\"r\":2}", 2, 0}};
    int64_t now = -1;
    CHECK_INT(bk_fenced_commit(r, SVC, 1, items, 2, 0, 5, &now, &e), BK_OK);
    CHECK_INT(now, 5);
    EXPECT_RESULT(r, "c1:1", "{\"r\":1}");
    EXPECT_RESULT(r, "c1:2", "{\"r\":2}");
    CHECK_INT(exists(r, "br2k:{" SVC "}:result:c1:1"), 0); /* not the string of old */
    CHECK_INT(exists(r, "br2k:{" SVC "}:result:c1:1@1"), 0);
    /* SSI only increases; a repeated request id keeps the first result,
     * the repeat's own goes under its offset; a record that did not name
     * itself (its header did) only under its offset: it cannot take the
     * request id's first key (squatting) */
    bk_result_item again[] = {{"c1:1", "{\"r\":\"second\"}", 4, 0},
                              {"c3:1", "{\"r\":\"unparseable\"}", 5, 1}};
    CHECK_INT(bk_fenced_commit(r, SVC, 1, again, 2, 0, 3, &now, &e), BK_OK);
    CHECK_INT(now, 5);
    EXPECT_RESULT(r, "c1:1", "{\"r\":1}");
    EXPECT_GET(r, "br2k:{" SVC "}:result:c1:1@4", "{\"r\":\"second\"}");
    CHECK_INT(has_result(r, "c3:1"), 0);
    CHECK_INT(exists(r, "br2k:{" SVC "}:results:c3:0"), 0);
    CHECK_INT(exists(r, "br2k:{" SVC "}:result:c3:1"), 0);
    EXPECT_GET(r, "br2k:{" SVC "}:result:c3:1@5", "{\"r\":\"unparseable\"}");
    int64_t ssi = 0;
    CHECK_INT(bk_ssi_get(r, SVC, &ssi, &e), BK_OK);
    CHECK_INT(ssi, 5);

    /* the lease expires: a newcomer that is behind SSI may not take it,
     * one that caught up gets epoch 2 */
    sleep_ms(400);
    CHECK_INT(bk_lease_take(r, SVC, "b", 4, 4, 300, &ep2, &e), BK_OK);
    CHECK_INT(ep2, 0);
    CHECK_INT(bk_lease_take(r, SVC, "b", 6, 9, 300, &ep2, &e), BK_OK);
    CHECK_INT(ep2, 0); /* claims results from 7 on: SSI 5 is below */
    CHECK_INT(bk_lease_take(r, SVC, "b", 5, 5, 5000, &ep2, &e), BK_OK);
    CHECK_INT(ep2, 2);

    /* the old leader wakes up: every fenced write is refused, nothing written */
    bk_result_item stale[] = {{"c9:1", "{\"stale\":true}", 9, 0}};
    CHECK_INT(bk_fenced_commit(r, SVC, 1, stale, 1, 0, 9, &now, &e), BK_ERR);
    CHECK_INT(e.code, BK_E_FENCED);
    CHECK_INT(has_result(r, "c9:1"), 0);
    CHECK_INT(exists(r, "br2k:{" SVC "}:results:c9:0"), 0);
    CHECK_INT(exists(r, "br2k:{" SVC "}:result:c9:1"), 0);
    CHECK_INT(bk_ssi_get(r, SVC, &ssi, &e), BK_OK);
    CHECK_INT(ssi, 5);
    CHECK_INT(bk_lease_renew(r, SVC, "a", 1, 300, &e), BK_ERR);
    CHECK_INT(e.code, BK_E_FENCED);
    CHECK_INT(bk_fenced_sv_raise(r, SVC, 1, 7, NULL, &e), BK_ERR);
    CHECK_INT(e.code, BK_E_FENCED);
    CHECK_INT(bk_fenced_backup(r, SVC, 1, "snapshot", &e), BK_ERR);
    CHECK_INT(e.code, BK_E_FENCED);
    /* its release does not touch the new lease */
    CHECK_INT(bk_lease_release(r, SVC, "a", 1, &e), BK_OK);
    CHECK_INT(bk_lease_get(r, SVC, id, &ep2, &e), BK_OK);
    CHECK_STR(id, "b");
    CHECK_INT(ep2, 2);
    /* a lease that expired without a newcomer is renewed by its holder */
    CHECK_INT(bk_lease_renew(r, SVC, "b", 2, 100, &e), BK_OK);
    sleep_ms(200);
    CHECK_INT(exists(r, "br2k:{" SVC "}:leader"), 0);
    CHECK_INT(bk_lease_renew(r, SVC, "b", 2, 5000, &e), BK_OK);
    CHECK_INT(exists(r, "br2k:{" SVC "}:leader"), 1);
    /* release by the holder frees it */
    CHECK_INT(bk_lease_release(r, SVC, "b", 2, &e), BK_OK);
    CHECK_INT(exists(r, "br2k:{" SVC "}:leader"), 0);
}

static void test_versions(bk_redis *r) {
    bk_err e;
    bk_err_clear(&e);
    int64_t v = 0, ep = 0;
    CHECK_INT(bk_versions_init(r, SVC, "w1", &e), BK_OK);
    CHECK_INT(bk_sv_get(r, SVC, &v, &e), BK_OK);
    CHECK_INT(v, 1);
    CHECK_INT(bk_ssv_get(r, SVC, "w1", &v, &e), BK_OK);
    CHECK_INT(v, 1);
    CHECK_INT(bk_epoch_get(r, SVC, &ep, &e), BK_OK);
    CHECK_INT(ep, 2);
    CHECK_INT(bk_fenced_sv_raise(r, SVC, ep, 3, &v, &e), BK_OK);
    CHECK_INT(v, 3);
    CHECK_INT(bk_fenced_sv_raise(r, SVC, ep, 2, &v, &e), BK_OK);
    CHECK_INT(v, 3);
    CHECK_INT(bk_versions_init(r, SVC, "w1", &e), BK_OK); /* does not reset */
    CHECK_INT(bk_sv_get(r, SVC, &v, &e), BK_OK);
    CHECK_INT(v, 3);
    CHECK_INT(bk_fenced_ssv_raise(r, SVC, ep, "w1", 4, &v, &e), BK_OK);
    CHECK_INT(v, 4);
    CHECK_INT(bk_fenced_ssv_raise(r, SVC, ep - 1, "w1", 9, &v, &e), BK_ERR);
    CHECK_INT(e.code, BK_E_FENCED);
    CHECK_INT(bk_ssv_raise(r, SVC, "w1", 2, &v, &e), BK_OK);
    CHECK_INT(v, 4);
    CHECK_INT(bk_ssv_raise(r, SVC, "w1", 5, &v, &e), BK_OK);
    CHECK_INT(v, 5);
    CHECK_INT(bk_fenced_backup(r, SVC, ep, "snapshot", &e), BK_OK);
    char *b = get(r, "br2k:{" SVC "}:backup");
    CHECK_STR(b, "snapshot");
    free(b);
    CHECK_INT(bk_fenced_backup(r, SVC, ep, NULL, &e), BK_OK);
    CHECK_INT(exists(r, "br2k:{" SVC "}:backup"), 0);
}

static void test_membership(bk_redis *r) {
    bk_err e;
    bk_err_clear(&e);
    CHECK_INT(bk_heartbeat(r, SVC, "w1", 200, &e), BK_OK);
    CHECK_INT(exists(r, "br2k:{" SVC "}:alive-w1"), 1);
    redisReply *rep = bk_redis_command(r, NULL, "SISMEMBER br2k:{" SVC "}:members w1");
    CHECK(rep && rep->integer == 1, "w1 not a member");
    if (rep)
        freeReplyObject(rep);
    sleep_ms(300);
    CHECK_INT(exists(r, "br2k:{" SVC "}:alive-w1"), 0); /* TTL */
    CHECK_INT(bk_heartbeat(r, SVC, "w1", 5000, &e), BK_OK);
    CHECK_INT(bk_leave(r, SVC, "w1", &e), BK_OK);
    CHECK_INT(exists(r, "br2k:{" SVC "}:alive-w1"), 0);
    rep = bk_redis_command(r, NULL, "SISMEMBER br2k:{" SVC "}:members w1");
    CHECK(rep && rep->integer == 0, "w1 still a member");
    if (rep)
        freeReplyObject(rep);
    CHECK_INT(bk_lpi_mirror(r, SVC, "w1", 42, &e), BK_OK);
    EXPECT_GET(r, "br2k:{" SVC "}:LPI-w1", "42");
    const char *f[] = {"role", "lpi"}, *vals[] = {"leader", "42"};
    CHECK_INT(bk_metrics_write(r, SVC, "w1", f, vals, 2, &e), BK_OK);
    rep = bk_redis_command(r, NULL, "HGET br2k:{" SVC "}:metrics-w1 role");
    CHECK(rep && rep->type == REDIS_REPLY_STRING && strcmp(rep->str, "leader") == 0,
          "metrics role");
    if (rep)
        freeReplyObject(rep);
}

/* SCRIPT FLUSH: the next call loads the script again (NOSCRIPT). */
static void test_noscript(bk_redis *r) {
    bk_err e;
    bk_err_clear(&e);
    redisReply *rep = bk_redis_command(r, NULL, "SCRIPT FLUSH");
    if (rep)
        freeReplyObject(rep);
    int64_t ep = 0, now = -1;
    bk_epoch_get(r, SVC, &ep, &e);
    CHECK_INT(bk_fenced_commit(r, SVC, ep, NULL, 0, 0, 6, &now, &e), BK_OK);
    CHECK_INT(now, 6);
}

/* Commits announce SSI on the changes channel. */
static void test_publish(bk_redis *r) {
    char host[256];
    int port;
    bk_redis_parse_addr(addr, host, sizeof(host), &port, NULL);
    redisContext *sub = redisConnect(host, port);
    redisReply *rep = redisCommand(sub, "SUBSCRIBE br2k:{" SVC "}:changes");
    if (rep)
        freeReplyObject(rep);
    bk_err e;
    bk_err_clear(&e);
    int64_t ep = 0, now = -1;
    bk_epoch_get(r, SVC, &ep, &e);
    CHECK_INT(bk_fenced_commit(r, SVC, ep, NULL, 0, 0, 17, &now, &e), BK_OK);
    void *got = NULL;
    CHECK_INT(redisGetReply(sub, &got), REDIS_OK);
    rep = got;
    CHECK(rep && rep->type == REDIS_REPLY_ARRAY && rep->elements == 3 &&
              strcmp(rep->element[2]->str, "17") == 0,
          "SSI not published");
    if (rep)
        freeReplyObject(rep);
    redisFree(sub);
}

/* Many contenders at once: exactly one lease, one epoch increment. */
#define NCONT 8
static pthread_barrier_t bar;
static int64_t got_epoch[NCONT];

static void *contender(void *arg) {
    int i = (int)(intptr_t)arg;
    char id[16];
    snprintf(id, sizeof(id), "c%d", i);
    bk_redis *r = bk_redis_new(addr, 2000, NULL);
    pthread_barrier_wait(&bar);
    if (r != NULL)
        bk_lease_take(r, SVC, id, INT64_MIN, INT64_MAX, 5000, &got_epoch[i], NULL);
    bk_redis_free(r);
    return NULL;
}

static void test_contenders(bk_redis *r) {
    bk_err e;
    int64_t before = 0, after = 0;
    bk_epoch_get(r, SVC, &before, &e);
    pthread_t t[NCONT];
    pthread_barrier_init(&bar, NULL, NCONT);
    for (int i = 0; i < NCONT; i++)
        pthread_create(&t[i], NULL, contender, (void *)(intptr_t)i);
    for (int i = 0; i < NCONT; i++)
        pthread_join(t[i], NULL);
    pthread_barrier_destroy(&bar);
    int winners = 0;
    for (int i = 0; i < NCONT; i++)
        winners += got_epoch[i] > 0;
    CHECK_INT(winners, 1);
    bk_epoch_get(r, SVC, &after, &e);
    CHECK_INT(after, before + 1);
}

/* How many of the request ids "<pfx><i>:1" for i < n have a result: the
 * field "1" of hash "br2k:{fence}:results:<pfx><i>:0" (one EVAL of
 * HEXISTS over them). */
static long count_results(bk_redis *r, const char *pfx, int n) {
    const char **argv = calloc(2 * (size_t)n + 3, sizeof(*argv));
    char(*k)[96] = calloc((size_t)n, sizeof(*k));
    char nk[16];
    snprintf(nk, sizeof(nk), "%d", n);
    argv[0] = "EVAL";
    argv[1] =
        "local c = 0\n"
        "for i, k in ipairs(KEYS) do c = c + redis.call('HEXISTS', k, ARGV[i]) end\n"
        "return c\n";
    argv[2] = nk;
    for (int i = 0; i < n; i++) {
        char id[64], f[24];
        snprintf(id, sizeof(id), "%s%d:1", pfx, i);
        results_at(id, k[i], sizeof(k[i]), f, sizeof(f));
        argv[3 + i] = k[i];
        argv[3 + n + i] = "1";
    }
    redisReply *rep = bk_redis_commandv(r, NULL, 2 * n + 3, argv, NULL);
    long v = rep && rep->type == REDIS_REPLY_INTEGER ? (long)rep->integer : -1;
    if (rep)
        freeReplyObject(rep);
    free(argv);
    free(k);
    return v;
}

/* n results "<pfx><i>:1" at offsets off0 + i; JSON of `pad` bytes or more. */
static bk_result_item *make_items(const char *pfx, int n, int64_t off0, size_t pad) {
    bk_result_item *it = calloc((size_t)n, sizeof(*it));
    for (int i = 0; i < n; i++) {
        char *id = malloc(32), *js = malloc(pad + 64);
        snprintf(id, 32, "%s%d:1", pfx, i);
        int m = snprintf(js, pad + 64, "{\"id\":\"%s\",\"i\":%d,\"p\":\"", id, i);
        memset(js + m, 'x', pad);
        memcpy(js + m + pad, "\"}", 3);
        it[i] = (bk_result_item){id, js, off0 + i, 0};
    }
    return it;
}

static void free_items(bk_result_item *it, int n) {
    for (int i = 0; i < n; i++) {
        free((char *)it[i].request_id);
        free((char *)it[i].json);
    }
    free(it);
}

static void set_id(bk_result_item *it, const char *id) {
    free((char *)it->request_id);
    it->request_id = strdup(id);
}

/* A batch large enough for the MULTI/EXEC path (ops.c: COMMIT_TX_MIN and
 * up, two chunks): firsts, repeats (in the batch and of a stored result),
 * records that did not name themselves, the TTL, SSI with the last chunk
 * only, and a stale token that writes nothing. */
static void test_commit_tx(bk_redis *r) {
    bk_err e;
    bk_err_clear(&e);
    int64_t ep = 0, now = -1, ssi = -1;
    CHECK_INT(bk_epoch_get(r, SVC, &ep, &e), BK_OK);
    const int n = 4500;
    bk_result_item *it = make_items("t", n, 1000, 10);
    it[7].secondary = 1;
    free((char *)it[10].request_id);
    it[10].request_id = strdup("t3:1"); /* a repeat of item 3, in the batch */
    redisReply *rep =
        bk_redis_command(r, NULL, "HSET br2k:{" SVC "}:results:t20:0 1 before");
    if (rep)
        freeReplyObject(rep);
    int64_t upto = 1000 + n - 1;
    CHECK_INT(bk_fenced_commit(r, SVC, ep, it, (size_t)n, 60, upto, &now, &e), BK_OK);
    CHECK_INT(now, upto);
    CHECK_INT(bk_ssi_get(r, SVC, &ssi, &e), BK_OK);
    CHECK_INT(ssi, upto);
    EXPECT_RESULT(r, "t0:1", it[0].json);
    EXPECT_RESULT(r, "t4499:1", it[4499].json);
    CHECK_INT(exists(r, "br2k:{" SVC "}:result:t0:1"), 0); /* not the string of old */
    CHECK_INT(exists(r, "br2k:{" SVC "}:result:t0:1@1000"), 0);
    CHECK_INT(has_result(r, "t7:1"), 0);
    CHECK_INT(exists(r, "br2k:{" SVC "}:result:t7:1"), 0);
    EXPECT_GET(r, "br2k:{" SVC "}:result:t7:1@1007", it[7].json);
    EXPECT_RESULT(r, "t3:1", it[3].json);
    EXPECT_GET(r, "br2k:{" SVC "}:result:t3:1@1010", it[10].json);
    EXPECT_RESULT(r, "t20:1", "before");
    EXPECT_GET(r, "br2k:{" SVC "}:result:t20:1@1020", it[20].json);
    /* every first result but the secondary's and the repeat's (t10 named t3) */
    CHECK_INT(count_results(r, "t", n), n - 2);
    long long t = ttl_result(r, "t1500:1");
    CHECK(t > 0 && t <= 60, "TTL of a result's hash: %lld", t);
    rep = bk_redis_command(r, NULL, "TTL br2k:{" SVC "}:result:t3:1@1010");
    CHECK(rep && rep->type == REDIS_REPLY_INTEGER && rep->integer > 0 &&
              rep->integer <= 60,
          "TTL of a repeat's result");
    if (rep)
        freeReplyObject(rep);
    free_items(it, n);

    /* results alone (ssi -1): SSI untouched, and reported */
    it = make_items("u", 300, 5600, 10);
    now = -7;
    CHECK_INT(bk_fenced_commit(r, SVC, ep, it, 300, 0, -1, &now, &e), BK_OK);
    CHECK_INT(now, upto);
    CHECK_INT(count_results(r, "u", 300), 300);
    CHECK_INT(ttl_result(r, "u5:1"), -1); /* no TTL */
    free_items(it, 300);

    /* a stale token writes nothing */
    it = make_items("s", 300, 6000, 10);
    CHECK_INT(bk_fenced_commit(r, SVC, ep - 1, it, 300, 0, 6299, &now, &e), BK_ERR);
    CHECK_INT(e.code, BK_E_FENCED);
    CHECK(strstr(e.msg, "FENCED") != NULL, "message '%s'", e.msg);
    CHECK_INT(count_results(r, "s", 300), 0);
    CHECK_INT(bk_ssi_get(r, SVC, &ssi, &e), BK_OK);
    CHECK_INT(ssi, upto);
    /* the connection is usable after it (no WATCH left behind) */
    CHECK_INT(bk_fenced_commit(r, SVC, ep, it, 300, 0, 6299, &now, &e), BK_OK);
    CHECK_INT(now, 6299);
    CHECK_INT(count_results(r, "s", 300), 300);
    free_items(it, 300);

    /* ids not of the hash form in a large chunk: one there already and one
     * twice in the chunk go to their keys at their offsets, the first
     * stays, SSI is raised; then the server forgets its scripts (SCRIPT
     * FLUSH) and a large commit still raises SSI */
    it = make_items("v", 300, 7000, 10);
    set_id(&it[0], "app-x");
    set_id(&it[1], "app-y");
    set_id(&it[2], "app-y");
    rep = bk_redis_command(r, NULL, "SET br2k:{" SVC "}:result:app-x first");
    if (rep)
        freeReplyObject(rep);
    CHECK_INT(bk_fenced_commit(r, SVC, ep, it, 300, 0, 7299, &now, &e), BK_OK);
    CHECK_INT(now, 7299);
    CHECK_INT(bk_ssi_get(r, SVC, &ssi, &e), BK_OK);
    CHECK_INT(ssi, 7299);
    EXPECT_GET(r, "br2k:{" SVC "}:result:app-x", "first");
    EXPECT_GET(r, "br2k:{" SVC "}:result:app-x@7000", it[0].json);
    EXPECT_GET(r, "br2k:{" SVC "}:result:app-y", it[1].json);
    CHECK_INT(exists(r, "br2k:{" SVC "}:result:app-y@7001"), 0);
    EXPECT_GET(r, "br2k:{" SVC "}:result:app-y@7002", it[2].json);
    CHECK_INT(count_results(r, "v", 300), 297);
    free_items(it, 300);
    rep = bk_redis_command(r, NULL, "SCRIPT FLUSH");
    if (rep)
        freeReplyObject(rep);
    it = make_items("w", 300, 7300, 10);
    CHECK_INT(bk_fenced_commit(r, SVC, ep, it, 300, 0, 7599, &now, &e), BK_OK);
    CHECK_INT(now, 7599);
    CHECK_INT(bk_ssi_get(r, SVC, &ssi, &e), BK_OK);
    CHECK_INT(ssi, 7599);
    CHECK_INT(count_results(r, "w", 300), 300);
    free_items(it, 300);
}

/* n items as make_items, request ids "<client>:<i>" */
static bk_result_item *make_seq_items(const char *client, int n, int64_t off0) {
    bk_result_item *it = make_items(client, n, off0, 10);
    for (int i = 0; i < n; i++) {
        char id[32];
        snprintf(id, sizeof(id), "%s:%d", client, i);
        set_id(&it[i], id);
    }
    return it;
}

/* The hashes of one client's results, 1024 sequence numbers a hash, on
 * both paths of a commit (the script for a small batch, MULTI/EXEC for a
 * large one): a repeat and a record that did not name itself keep out of
 * the hash (the key at their offset), ids of another form keep a string key
 * of their own, the TTL is on the hash and renewed by a later commit into
 * it. SSI is left alone (ssi -1). */
static void test_result_hashes(bk_redis *r) {
    bk_err e;
    bk_err_clear(&e);
    int64_t ep = 0, now = -1;
    CHECK_INT(bk_epoch_get(r, SVC, &ep, &e), BK_OK);

    /* large: h:0 .. h:2999, then h:5 again, h:007 and app-id */
    const int n = 3003;
    bk_result_item *it = make_seq_items("h", n, 20000);
    it[1500].secondary = 1;
    set_id(&it[3000], "h:5");
    set_id(&it[3001], "h:007");
    set_id(&it[3002], "app-id");
    CHECK_INT(bk_fenced_commit(r, SVC, ep, it, (size_t)n, 60, -1, &now, &e), BK_OK);
    CHECK_INT(hlen(r, "br2k:{" SVC "}:results:h:0"), 1024);
    CHECK_INT(hlen(r, "br2k:{" SVC "}:results:h:1"), 1023); /* not h:1500 */
    CHECK_INT(hlen(r, "br2k:{" SVC "}:results:h:2"), 952);
    CHECK_INT(exists(r, "br2k:{" SVC "}:results:h:3"), 0);
    const int at[] = {0, 5, 1023, 1024, 2047, 2048, 2999};
    for (size_t i = 0; i < sizeof(at) / sizeof(at[0]); i++) {
        char *v = hget_result(r, it[at[i]].request_id);
        CHECK(v != NULL && strcmp(v, it[at[i]].json) == 0, "result of %s: %s",
              it[at[i]].request_id, v ? v : "(none)");
        free(v);
    }
    EXPECT_GET(r, "br2k:{" SVC "}:result:h:5@23000", it[3000].json);
    CHECK_INT(has_result(r, "h:1500"), 0);
    EXPECT_GET(r, "br2k:{" SVC "}:result:h:1500@21500", it[1500].json);
    EXPECT_GET(r, "br2k:{" SVC "}:result:h:007", it[3001].json);
    CHECK_INT(has_result(r, "h:7"), 1);
    EXPECT_RESULT(r, "h:7", it[7].json);
    EXPECT_GET(r, "br2k:{" SVC "}:result:app-id", it[3002].json);
    CHECK_INT(exists(r, "br2k:{" SVC "}:result:h:5"), 0);
    CHECK_INT(exists(r, "br2k:{" SVC "}:result:h:2999"), 0);
    for (int b = 0; b < 3; b++) {
        char k[64];
        snprintf(k, sizeof(k), "br2k:{" SVC "}:results:h:%d", b);
        long long t = ttl(r, k);
        CHECK(t > 0 && t <= 60, "TTL of %s: %lld", k, t);
    }
    long long t = ttl(r, "br2k:{" SVC "}:result:h:007");
    CHECK(t > 0 && t <= 60, "TTL of an id of another form: %lld", t);
    free_items(it, n);

    /* small: g:1, g:1024, g:1 again, g:01 (another form), the largest seq */
    it = make_items("g", 5, 30000, 10);
    set_id(&it[0], "g:1");
    set_id(&it[1], "g:1024");
    set_id(&it[2], "g:1");
    set_id(&it[3], "g:01");
    set_id(&it[4], "g:18446744073709551615");
    CHECK_INT(bk_fenced_commit(r, SVC, ep, it, 5, 30, -1, &now, &e), BK_OK);
    CHECK_INT(hlen(r, "br2k:{" SVC "}:results:g:0"), 1);
    CHECK_INT(hlen(r, "br2k:{" SVC "}:results:g:1"), 1);
    EXPECT_RESULT(r, "g:1", it[0].json);
    EXPECT_RESULT(r, "g:1024", it[1].json);
    EXPECT_GET(r, "br2k:{" SVC "}:result:g:1@30002", it[2].json);
    EXPECT_GET(r, "br2k:{" SVC "}:result:g:01", it[3].json);
    EXPECT_RESULT(r, "g:18446744073709551615", it[4].json);
    CHECK_INT(hlen(r, "br2k:{" SVC "}:results:g:18014398509481983"), 1);
    t = ttl(r, "br2k:{" SVC "}:results:g:0");
    CHECK(t > 0 && t <= 30, "TTL of g's first hash: %lld", t);
    free_items(it, 5);

    /* a later commit into the hash renews its TTL */
    it = make_items("g", 1, 30010, 10);
    set_id(&it[0], "g:2");
    CHECK_INT(bk_fenced_commit(r, SVC, ep, it, 1, 1000, -1, &now, &e), BK_OK);
    t = ttl(r, "br2k:{" SVC "}:results:g:0");
    CHECK(t > 30 && t <= 1000, "TTL of g's first hash after a later commit: %lld", t);
    CHECK_INT(hlen(r, "br2k:{" SVC "}:results:g:0"), 2);
    EXPECT_RESULT(r, "g:1", "{\"id\":\"g0:1\",\"i\":0,\"p\":\"xxxxxxxxxx\"}");
    free_items(it, 1);
}

/* The epoch moves between the token's check (WATCH, GET) and EXEC: a
 * MONITOR sees the commit's WATCH and another connection takes the epoch
 * at once, while the commit sends its large transaction. EXEC is refused:
 * FENCED, nothing of the chunk written, SSI unchanged. The other order
 * (the epoch moved only after EXEC) is possible on a loaded machine: then
 * the commit stands whole; a few attempts see the refusal. */
typedef struct {
    pthread_barrier_t ready;
    int64_t to;
} bumper;

static void *bump_on_watch(void *arg) {
    bumper *b = arg;
    char host[256];
    int port;
    bk_redis_parse_addr(addr, host, sizeof(host), &port, NULL);
    redisContext *mon = redisConnect(host, port), *w = redisConnect(host, port);
    struct timeval tv = {10, 0}; /* no WATCH seen in 10 s: give up (the test fails) */
    redisSetTimeout(mon, tv);
    redisReply *rep = redisCommand(mon, "MONITOR");
    if (rep)
        freeReplyObject(rep);
    pthread_barrier_wait(&b->ready);
    for (;;) {
        void *m = NULL;
        if (redisGetReply(mon, &m) != REDIS_OK || m == NULL)
            break;
        rep = m;
        int seen = rep->type == REDIS_REPLY_STATUS && strstr(rep->str, "\"WATCH\"");
        freeReplyObject(rep);
        if (seen) {
            rep = redisCommand(w, "SET br2k:{" SVC "}:epoch %" PRId64, b->to);
            if (rep)
                freeReplyObject(rep);
            break;
        }
    }
    redisFree(mon);
    redisFree(w);
    return NULL;
}

static void test_commit_tx_fenced(bk_redis *r) {
    bk_err e;
    int fenced = 0;
    for (int attempt = 0; attempt < 10 && !fenced; attempt++) {
        bk_err_clear(&e);
        int64_t ep = 0, ssi0 = -1, ssi = -1, now = -1;
        CHECK_INT(bk_epoch_get(r, SVC, &ep, &e), BK_OK);
        CHECK_INT(bk_ssi_get(r, SVC, &ssi0, &e), BK_OK);
        char pfx[16];
        snprintf(pfx, sizeof(pfx), "m%d-", attempt);
        bk_result_item *it = make_items(pfx, 2000, 10000, 2000);
        bumper b = {.to = ep + 1};
        pthread_barrier_init(&b.ready, NULL, 2);
        pthread_t t;
        pthread_create(&t, NULL, bump_on_watch, &b);
        pthread_barrier_wait(&b.ready);
        int rc = bk_fenced_commit(r, SVC, ep, it, 2000, 0, 11999, &now, &e);
        pthread_join(t, NULL);
        pthread_barrier_destroy(&b.ready);
        CHECK_INT(bk_ssi_get(r, SVC, &ssi, &e), BK_OK);
        long stored = count_results(r, pfx, 2000);
        if (rc == BK_OK) { /* the epoch moved after EXEC: all of it */
            CHECK_INT(stored, 2000);
            CHECK_INT(ssi, 11999);
        } else {
            fenced = 1;
            printf("the epoch moved before EXEC at attempt %d: refused\n", attempt + 1);
            CHECK_INT(e.code, BK_E_FENCED);
            CHECK_INT(stored, 0);
            CHECK_INT(ssi, ssi0);
        }
        /* the connection still works, with the new token */
        CHECK_INT(bk_fenced_commit(r, SVC, ep + 1, NULL, 0, 0, -1, &now, &e), BK_OK);
        free_items(it, 2000);
    }
    CHECK(fenced, "no attempt saw the epoch move before EXEC");
}

int main(int argc, char **argv) {
    if (argc != 2) {
        fprintf(stderr, "usage: itest_fencing HOST:PORT\n");
        return 2;
    }
    addr = argv[1];
    bk_err e;
    bk_redis *r = bk_redis_new(addr, 2000, &e);
    if (r == NULL) {
        fprintf(stderr, "%s\n", e.msg);
        return 1;
    }
    test_names();
    test_lease(r);
    test_versions(r);
    test_membership(r);
    test_noscript(r);
    test_publish(r);
    test_contenders(r);
    test_commit_tx(r);
    test_result_hashes(r);
    test_commit_tx_fenced(r);
    bk_redis_free(r);
    return check_done();
}
