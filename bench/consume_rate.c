/* consume_rate.c - br2k-bench-consume: how fast a plain reader reads the
 * service topic, the yardstick of bench (a).
 *
 * The log is --kafka (BR2K_KAFKA): a Kafka bootstrap list (a plain
 * librdkafka consumer: partition 0 with assign()) or redis://H:P[/STREAM]
 * (the Redis Streams log: a plain hiredis reader, XREAD COUNT --xread-count
 * in a loop, as the worker's log reader does, without parsing the entries
 * into records). It reads from --from (default: the first offset) until it
 * has read --count records (default: up to the end as it was at start),
 * each ONCE, and prints one JSON line:
 * {"records":N,"bytes":B,"seconds":S,"rate":R,"first_batch":F,
 *  "rate_after_first":R1,"seconds_after_first":S1}.
 * seconds/rate: from the first record (Redis: the first XREAD sent) to the
 * last; rate_after_first:
 * the records after the first batch (F records: the first XREAD reply, or
 * the first message on Kafka) over the time from that batch to the last
 * record, timed as bench/run.sh times the worker (from the end of its
 * first batch to its last commit). Exit 2 on an error.
 *
 * --min-records M (Kafka only, not used by bench/run.sh any more): read
 * the same --count records again (a new assign() from --from) until at
 * least M were read in all. */
#include <hiredis/hiredis.h>
#include <inttypes.h>
#include <librdkafka/rdkafka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "base/config.h"
#include "base/err.h"
#include "log/kafka_conf.h"

static bk_cfg_opt opts[] = {
    {"kafka", BK_CFG_STR, "", 0, 0, NULL, "Kafka bootstrap servers", NULL, 0, 0},
    {"kafka-props", BK_CFG_STR, "", 0, 0, NULL, "extra librdkafka properties", NULL, 0,
     0},
    {"service", BK_CFG_STR, "default", 0, 0, NULL, "service name", NULL, 0, 0},
    {"from", BK_CFG_INT, "-1", -1, INT64_MAX, NULL, "first offset (-1: the first kept)",
     NULL, 0, 0},
    {"count", BK_CFG_INT, "0", 0, INT64_MAX, NULL,
     "records to read (0: up to the high watermark at start)", NULL, 0, 0},
    {"min-records", BK_CFG_INT, "0", 0, INT64_MAX, NULL,
     "read the records again until this many were read in all", NULL, 0, 0},
    {"xread-count", BK_CFG_INT, "500", 1, 1000000, NULL,
     "Redis Streams: entries per XREAD (the worker's reader: 500)", NULL, 0, 0},
    {"timeout-ms", BK_CFG_INT, "60000", 1, 3600000, NULL, "give up after this long", NULL,
     0, 0},
    BK_CFG_COMMON_OPTS};

static bk_cfg cfg = {
    "br2k-bench-consume",
    "Measure the read rate of a plain librdkafka consumer on the service "
    "topic.",
    "[OPTIONS]",
    opts,
    NULL,
    0,
    0};

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* The Redis Streams log: XREAD COUNT k from --from until --count entries
 * were read, once. */
static int read_redis(const char *url, const char *topic, bk_err *e) {
    const char *p = url + 8, *slash = strchr(p, '/'), *colon = strchr(p, ':');
    char host[256], stream[256];
    if (colon == NULL || (slash != NULL && colon > slash) ||
        (size_t)(colon - p) >= sizeof(host))
        return bk_err_set(e, BK_E_INVAL, "invalid log URL '%s'", url);
    snprintf(host, sizeof(host), "%.*s", (int)(colon - p), p);
    snprintf(stream, sizeof(stream), "%s", slash != NULL && slash[1] ? slash + 1 : topic);
    redisContext *rc = redisConnect(host, atoi(colon + 1));
    if (rc == NULL || rc->err) {
        bk_err_set(e, BK_E_REMOTE, "cannot connect to %s", url);
        if (rc != NULL)
            redisFree(rc);
        return BK_ERR;
    }
    redisReply *rep = redisCommand(rc, "GET {%s}:next", stream);
    int64_t end = rep != NULL && rep->type == REDIS_REPLY_STRING ? atoll(rep->str) : -1;
    if (rep != NULL)
        freeReplyObject(rep);
    int64_t from = bk_cfg_int(&cfg, "from") >= 0 ? bk_cfg_int(&cfg, "from") : 0;
    int64_t want = bk_cfg_int(&cfg, "count") > 0 ? bk_cfg_int(&cfg, "count") : end - from;
    if (want <= 0) {
        redisFree(rc);
        return bk_err_set(e, BK_E_INVAL, "no records to read in %s (end %" PRId64 ")",
                          url, end);
    }
    char last[64], cnt[16];
    if (from == 0)
        snprintf(last, sizeof(last), "0-0");
    else
        snprintf(last, sizeof(last), "1-%" PRId64, from - 1);
    snprintf(cnt, sizeof(cnt), "%lld", (long long)bk_cfg_int(&cfg, "xread-count"));
    int64_t got = 0, first_batch = 0;
    size_t bytes = 0;
    double t0 = now_s(), t1 = 0;
    double deadline = t0 + (double)bk_cfg_int(&cfg, "timeout-ms") / 1e3;
    while (got < want && now_s() < deadline) {
        rep = redisCommand(rc, "XREAD COUNT %s STREAMS %s %s", cnt, stream, last);
        if (rep == NULL || rep->type == REDIS_REPLY_ERROR) {
            bk_err_set(e, BK_E_REMOTE, "XREAD on %s: %s", url,
                       rep != NULL ? rep->str : rc->errstr);
            if (rep != NULL)
                freeReplyObject(rep);
            redisFree(rc);
            return BK_ERR;
        }
        const redisReply *ents = rep->type == REDIS_REPLY_ARRAY && rep->elements == 1 &&
                                         rep->element[0]->elements == 2
                                     ? rep->element[0]->element[1]
                                     : NULL;
        size_t k = ents != NULL ? ents->elements : 0;
        for (size_t i = 0; i < k && got < want; i++) {
            const redisReply *ent = ents->element[i];
            for (size_t j = 0; j < ent->element[1]->elements; j++)
                bytes += ent->element[1]->element[j]->len;
            got++;
        }
        if (k > 0)
            snprintf(last, sizeof(last), "%s", ents->element[k - 1]->element[0]->str);
        freeReplyObject(rep);
        if (k > 0 && first_batch == 0) {
            t1 = now_s(); /* the first batch is read (and parsed) */
            first_batch = got;
        }
    }
    double end_t = now_s();
    redisFree(rc);
    double s0 = end_t - t0, s1 = end_t - t1;
    printf("{\"records\":%" PRId64 ",\"bytes\":%zu,\"seconds\":%.6f,\"rate\":%.1f,"
           "\"first_batch\":%" PRId64 ",\"seconds_after_first\":%.6f,"
           "\"rate_after_first\":%.1f}\n",
           got, bytes, s0, s0 > 0 ? (double)got / s0 : 0.0, first_batch, s1,
           s1 > 0 ? (double)(got - first_batch) / s1 : 0.0);
    if (got < want)
        return bk_err_set(e, BK_E_TIMEOUT,
                          "read %" PRId64 " of %" PRId64 " records of %s", got, want,
                          url);
    return BK_OK;
}

int main(int argc, char **argv) {
    int argi, rc;
    if (bk_cfg_main(&cfg, argc, argv, &argi, &rc))
        return rc;
    bk_err e;
    bk_err_clear(&e);
    char topic[256];
    rd_kafka_t *rk = NULL;
    rd_kafka_conf_t *conf = NULL;
    rc = 2;
    if (bk_kafka_topic_name(bk_cfg_str(&cfg, "service"), topic, sizeof(topic), &e) !=
        BK_OK)
        goto out;
    if (strncmp(bk_cfg_str(&cfg, "kafka"), "redis://", 8) == 0) {
        rc = read_redis(bk_cfg_str(&cfg, "kafka"), topic, &e) == BK_OK ? 0 : 2;
        goto out;
    }
    conf = bk_kafka_conf_new(BK_KAFKA_CONSUMER, bk_cfg_str(&cfg, "kafka"),
                             bk_cfg_str(&cfg, "kafka-props"), &e);
    rk = conf != NULL ? bk_kafka_new(BK_KAFKA_CONSUMER, conf, &e) : NULL;
    conf = NULL; /* owned by rk, or destroyed */
    if (rk == NULL)
        goto out;
    int64_t lo = 0, hi = 0;
    rd_kafka_resp_err_t ke =
        rd_kafka_query_watermark_offsets(rk, topic, 0, &lo, &hi, 10000);
    if (ke) {
        bk_err_set(&e, BK_E_REMOTE, "cannot read the offsets of '%s': %s", topic,
                   rd_kafka_err2str(ke));
        goto out;
    }
    int64_t from = bk_cfg_int(&cfg, "from") >= 0 ? bk_cfg_int(&cfg, "from") : lo;
    int64_t want = bk_cfg_int(&cfg, "count") > 0 ? bk_cfg_int(&cfg, "count") : hi - from;
    int64_t total = want, min = bk_cfg_int(&cfg, "min-records");
    if (want > 0 && min > want)
        total = (min + want - 1) / want * want; /* whole passes */
    int64_t got = 0, pass_got = want;
    size_t bytes = 0;
    double t0 = 0, t_last = 0,
           deadline = now_s() + (double)bk_cfg_int(&cfg, "timeout-ms") / 1e3;
    while (got < total && now_s() < deadline) {
        if (pass_got == want) { /* (re)start a pass at `from` */
            rd_kafka_topic_partition_list_t *parts = rd_kafka_topic_partition_list_new(1);
            rd_kafka_topic_partition_list_add(parts, topic, 0)->offset = from;
            ke = rd_kafka_assign(rk, parts);
            rd_kafka_topic_partition_list_destroy(parts);
            if (ke) {
                bk_err_set(&e, BK_E_REMOTE, "cannot assign '%s': %s", topic,
                           rd_kafka_err2str(ke));
                goto out;
            }
            pass_got = 0;
        }
        rd_kafka_message_t *m = rd_kafka_consumer_poll(rk, 100);
        if (m == NULL)
            continue;
        if (m->err == 0 && m->offset == from + pass_got) {
            if (got == 0)
                t0 = now_s();
            got++;
            pass_got++;
            bytes += m->len;
            t_last = now_s();
        } else if (m->err != 0 && m->err != RD_KAFKA_RESP_ERR__PARTITION_EOF) {
            bk_err_set(&e, BK_E_REMOTE, "cannot read '%s': %s", topic,
                       rd_kafka_message_errstr(m));
            rd_kafka_message_destroy(m);
            goto out;
        }
        rd_kafka_message_destroy(m);
    }
    double secs = got > 0 ? t_last - t0 : 0;
    printf("{\"records\":%" PRId64 ",\"bytes\":%zu,\"seconds\":%.6f,\"rate\":%.1f,"
           "\"first_batch\":1,\"seconds_after_first\":%.6f,\"rate_after_first\":%.1f}\n",
           got, bytes, secs, secs > 0 ? (double)got / secs : 0.0, secs,
           secs > 0 ? (double)(got - 1) / secs : 0.0);
    rc = got >= total ? 0 : 2;
    if (rc != 0)
        bk_err_set(&e, BK_E_TIMEOUT, "read %" PRId64 " of %" PRId64 " records of '%s'",
                   got, total, topic);
out:
    if (rc != 0)
        fprintf(stderr, "br2k-bench-consume: %s\n", e.msg);
    if (rk != NULL) {
        rd_kafka_consumer_close(rk);
        rd_kafka_destroy(rk);
    }
    bk_cfg_release(&cfg);
    return rc;
}
