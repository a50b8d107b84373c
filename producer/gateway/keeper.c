/* keeper.c - the gateway's readiness and its metrics hash, once a second.
 *
 * Ready means: Redis answers PING, the request log answers (its offsets
 * are read through log/rlog.h, Kafka or Redis Streams), and the lease names
 * a leader. The metrics hash br2k:{svc}:gateway-<id> (schemas/redis-keys.md)
 * is written with HSET and given a TTL of GW_METRICS_TTL_S, so a gateway
 * that is gone disappears from `br2k status`; its id is added to the set
 * br2k:{svc}:gateways. */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/clock.h"
#include "base/log.h"
#include "gateway.h"
#include "log/kafka_conf.h"
#include "log/rlog.h"
#include "redis/keys.h"

#define GW_PERIOD_MS 1000
#define GW_METRICS_TTL_S 10

static int cmp_double(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

/* p50 and p99 of the latency ring (0 when empty). */
static void percentiles(gw *g, double *p50, double *p99) {
    static double tmp[2048];
    pthread_mutex_lock(&g->mu);
    size_t n = g->nlat;
    memcpy(tmp, g->lat, n * sizeof(double));
    pthread_mutex_unlock(&g->mu);
    *p50 = *p99 = 0;
    if (n == 0)
        return;
    qsort(tmp, n, sizeof(double), cmp_double);
    *p50 = tmp[(n - 1) / 2];
    *p99 = tmp[(size_t)((double)(n - 1) * 0.99)];
}

static void check(gw *g, bk_redis **r, bk_rlog **log) {
    bk_err e;
    bk_err_clear(&e);
    char detail[512] = "";
    int redis_ok = 0, log_ok = 0, leader_ok = 0;
    if (*r == NULL)
        *r = bk_redis_new(g->cfg.redis, g->cfg.redis_timeout_ms, &e);
    redisReply *rep = *r != NULL ? bk_redis_command(*r, &e, "PING") : NULL;
    redis_ok = rep != NULL;
    if (rep != NULL)
        freeReplyObject(rep);
    if (!redis_ok)
        snprintf(detail, sizeof(detail), "redis %s: %.300s", g->cfg.redis, e.msg);
    char key[BK_KEY_MAX];
    if (redis_ok && bk_key_leader(key, sizeof(key), g->cfg.service, &e) == BK_OK) {
        rep = bk_redis_command(*r, &e, "GET %s", key);
        leader_ok = rep != NULL && rep->type == REDIS_REPLY_STRING && rep->len > 0;
        if (rep != NULL)
            freeReplyObject(rep);
        if (!leader_ok)
            snprintf(detail, sizeof(detail), "no leader holds the lease %.300s", key);
    }
    if (*log == NULL) {
        char topic[256];
        if (bk_kafka_topic_name(g->cfg.service, topic, sizeof(topic), &e) == BK_OK) {
            bk_rlog_settings s = {g->cfg.kafka, topic,
                                  g->cfg.kafka_props[0] ? g->cfg.kafka_props : NULL,
                                  g->cfg.redis_timeout_ms};
            *log = bk_rlog_open(&s, &e);
        }
    }
    int64_t first = -1, end = -1;
    log_ok = *log != NULL && bk_rlog_offsets(*log, &first, &end, &e) == BK_OK;
    if (!log_ok) {
        if (detail[0] == '\0')
            snprintf(detail, sizeof(detail), "log %s: %.300s", g->cfg.kafka, e.msg);
        bk_rlog_close(*log); /* opened again next time */
        *log = NULL;
    }
    int ready = redis_ok && log_ok && leader_ok;
    if (ready)
        snprintf(detail, sizeof(detail),
                 "redis, log (next offset %" PRId64 ") and leader ok", end);
    atomic_store(&g->redis_ok, redis_ok);
    atomic_store(&g->log_ok, log_ok);
    atomic_store(&g->leader_ok, leader_ok);
    if (ready != atomic_load(&g->ready))
        BK_INFO("%s: %s", ready ? "ready" : "not ready", detail);
    atomic_store(&g->ready, ready);
    pthread_mutex_lock(&g->mu);
    snprintf(g->ready_detail, sizeof(g->ready_detail), "%s", detail);
    pthread_mutex_unlock(&g->mu);
}

static void write_metrics(gw *g, bk_redis *r) {
    bk_err e;
    bk_err_clear(&e);
    char key[BK_KEY_MAX], set[BK_KEY_MAX];
    if (r == NULL ||
        bk_key_gateway(key, sizeof(key), g->cfg.service, g->cfg.id, &e) != BK_OK ||
        bk_key_gateways(set, sizeof(set), g->cfg.service, &e) != BK_OK)
        return;
    double p50, p99;
    percentiles(g, &p50, &p99);
    const char *argv[80];
    char vals[40][48];
    int n = 0, v = 0;
    argv[n++] = "HSET";
    argv[n++] = key;
#define FIELD_I(name, val)                                                               \
    do {                                                                                 \
        argv[n++] = name;                                                                \
        snprintf(vals[v], sizeof(vals[v]), "%lld", (long long)(val));                    \
        argv[n++] = vals[v++];                                                           \
    } while (0)
#define FIELD_F(name, val)                                                               \
    do {                                                                                 \
        argv[n++] = name;                                                                \
        snprintf(vals[v], sizeof(vals[v]), "%.3f", (double)(val));                       \
        argv[n++] = vals[v++];                                                           \
    } while (0)
    FIELD_I("requests", atomic_load(&g->requests));
    FIELD_I("accepted", atomic_load(&g->accepted));
    FIELD_I("answered_result", atomic_load(&g->answered_result));
    FIELD_I("answered_pending", atomic_load(&g->answered_pending));
    long rej = 0;
    static char names[GW_R_COUNT][48];
    for (int i = 0; i < GW_R_COUNT; i++) {
        long x = atomic_load(&g->rejected[i]);
        rej += x;
        snprintf(names[i], sizeof(names[i]), "rejected_%s", gw_reason_names[i]);
        FIELD_I(names[i], x);
    }
    FIELD_I("rejected", rej);
    FIELD_I("inflight", atomic_load(&g->waiting));
    FIELD_F("p50_ms", p50);
    FIELD_F("p99_ms", p99);
    FIELD_I("ready", atomic_load(&g->ready));
    FIELD_I("updated_ms", bk_wall_ms());
    argv[n++] = "url"; /* "" when not advertised: registryd skips it */
    argv[n++] = g->cfg.advertise;
    argv[n++] = "listen";
    argv[n++] = g->cfg.listen;
    redisReply *rep = bk_redis_commandv(r, &e, n, argv, NULL);
    if (rep != NULL)
        freeReplyObject(rep);
    rep = bk_redis_command(r, &e, "EXPIRE %s %d", key, GW_METRICS_TTL_S);
    if (rep != NULL)
        freeReplyObject(rep);
    rep = bk_redis_command(r, &e, "SADD %s %s", set, g->cfg.id);
    if (rep != NULL)
        freeReplyObject(rep);
}

static void *run(void *arg) {
    gw *g = arg;
    bk_redis *r = NULL;
    bk_rlog *log = NULL;
    while (!atomic_load(&g->stop)) {
        int64_t t0 = bk_mono_ms();
        check(g, &r, &log);
        if (atomic_load(&g->redis_ok))
            write_metrics(g, r);
        while (!atomic_load(&g->stop) && bk_mono_ms() - t0 < GW_PERIOD_MS)
            bk_sleep_ms(20);
    }
    if (r != NULL) { /* gone: let the status stop listing it at once */
        bk_err e;
        char key[BK_KEY_MAX];
        if (bk_key_gateway(key, sizeof(key), g->cfg.service, g->cfg.id, &e) == BK_OK) {
            redisReply *rep = bk_redis_command(r, &e, "DEL %s", key);
            if (rep != NULL)
                freeReplyObject(rep);
        }
    }
    bk_rlog_close(log);
    bk_redis_free(r);
    return NULL;
}

int gw_keeper_start(gw *g, pthread_t *th) {
    return pthread_create(th, NULL, run, g);
}
