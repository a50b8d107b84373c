/* consume_rate.c - br2k-bench-consume: how fast a plain librdkafka consumer
 * reads the service topic, the yardstick of bench (a).
 *
 * Reads partition 0 of the topic with assign() from --from (default: the
 * first offset) until it has read --count records (default: up to the high
 * watermark as it was at start), and prints one JSON line:
 * {"records":N,"seconds":S,"rate":R}. Exit 2 on an error.
 *
 * --min-records M: read the same --count records again (a new assign()
 * from --from) until at least M were read in all, so that the rate is
 * timed over enough records to be stable (the development broker keeps
 * only ~5 MiB, so the worker's own run cannot be made that long). The
 * clock starts at the first record, as the worker's starts at its first
 * commit. */
#include <inttypes.h>
#include <librdkafka/rdkafka.h>
#include <stdio.h>
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
    double t0 = 0, deadline = now_s() + (double)bk_cfg_int(&cfg, "timeout-ms") / 1e3;
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
        } else if (m->err != 0 && m->err != RD_KAFKA_RESP_ERR__PARTITION_EOF) {
            bk_err_set(&e, BK_E_REMOTE, "cannot read '%s': %s", topic,
                       rd_kafka_message_errstr(m));
            rd_kafka_message_destroy(m);
            goto out;
        }
        rd_kafka_message_destroy(m);
    }
    double secs = got > 0 ? now_s() - t0 : 0;
    printf("{\"records\":%" PRId64 ",\"bytes\":%zu,\"seconds\":%.6f,\"rate\":%.1f}\n",
           got, bytes, secs, secs > 0 ? (double)got / secs : 0.0);
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
