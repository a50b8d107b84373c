/* itest_devkafka.c - librdkafka clients against br2k-devkafka.
 *
 *   itest_devkafka roundtrip BOOTSTRAP TOPIC
 *       100 records with keys and headers produced by BR2K's idempotent
 *       producer settings, read back with assign() from their offsets.
 *   itest_devkafka fault BOOTSTRAP TOPIC DEVKAFKA SOCKET
 *       brokers down: a record is not delivered and the client sees the
 *       brokers go away; brokers up: it is delivered; injected Produce
 *       errors are retried without duplicates.
 * Prints "N passed, N failed"; exit status 1 on any failure. */
#include <librdkafka/rdkafka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "../unit/check.h"
#include "base/err.h"
#include "log/kafka_conf.h"

static int64_t last_offset = -1;
static int delivered, delivery_errors, transport_errors;

static void dr_cb(rd_kafka_t *rk, const rd_kafka_message_t *m, void *opaque) {
    (void)rk, (void)opaque;
    if (m->err) {
        delivery_errors++;
        return;
    }
    delivered++;
    last_offset = m->offset;
}

static void error_cb(rd_kafka_t *rk, int err, const char *reason, void *opaque) {
    (void)rk, (void)opaque, (void)reason;
    if (err == RD_KAFKA_RESP_ERR__ALL_BROKERS_DOWN || err == RD_KAFKA_RESP_ERR__TRANSPORT)
        transport_errors++;
}

static rd_kafka_t *producer(const char *bootstrap) {
    bk_err e;
    rd_kafka_conf_t *conf = bk_kafka_conf_new(BK_KAFKA_PRODUCER, bootstrap, "", &e);
    if (conf == NULL) {
        fprintf(stderr, "%s\n", e.msg);
        exit(2);
    }
    rd_kafka_conf_set_dr_msg_cb(conf, dr_cb);
    rd_kafka_conf_set_error_cb(conf, error_cb);
    rd_kafka_t *rk = bk_kafka_new(BK_KAFKA_PRODUCER, conf, &e);
    if (rk == NULL) {
        fprintf(stderr, "%s\n", e.msg);
        exit(2);
    }
    return rk;
}

static void produce(rd_kafka_t *rk, const char *topic, int i) {
    char key[32], val[64], rid[32];
    snprintf(key, sizeof(key), "client-%d", i % 5);
    snprintf(val, sizeof(val), "{\"n\":%d}", i);
    snprintf(rid, sizeof(rid), "client-%d:%d", i % 5, i);
    rd_kafka_resp_err_t err = rd_kafka_producev(
        rk, RD_KAFKA_V_TOPIC(topic), RD_KAFKA_V_PARTITION(0),
        RD_KAFKA_V_KEY(key, strlen(key)), RD_KAFKA_V_VALUE(val, strlen(val)),
        RD_KAFKA_V_HEADER("br2k-request-id", rid, -1),
        RD_KAFKA_V_HEADER("br2k-schema", "1", 1),
        RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY), RD_KAFKA_V_END);
    CHECK(err == 0, "produce %d: %s", i, rd_kafka_err2str(err));
}

/* Read `count` records from `from`; check keys, values, headers and that
 * record i carries n = first_n + i. */
static void consume_check(const char *bootstrap, const char *topic, int64_t from,
                          int count, int first_n) {
    bk_err e;
    rd_kafka_conf_t *conf = bk_kafka_conf_new(BK_KAFKA_CONSUMER, bootstrap, "", &e);
    rd_kafka_t *rk = bk_kafka_new(BK_KAFKA_CONSUMER, conf, &e);
    conf = NULL;
    if (rk == NULL) {
        fprintf(stderr, "%s\n", e.msg);
        exit(2);
    }
    rd_kafka_topic_partition_list_t *tp = rd_kafka_topic_partition_list_new(1);
    rd_kafka_topic_partition_list_add(tp, topic, 0)->offset = from;
    CHECK(rd_kafka_assign(rk, tp) == 0, "assign");
    rd_kafka_topic_partition_list_destroy(tp);
    int got = 0;
    time_t end = time(NULL) + 20;
    while (got < count && time(NULL) < end) {
        rd_kafka_message_t *m = rd_kafka_consumer_poll(rk, 200);
        if (m == NULL)
            continue;
        if (m->err) {
            CHECK(m->err == RD_KAFKA_RESP_ERR__PARTITION_EOF, "consume: %s",
                  rd_kafka_message_errstr(m));
            rd_kafka_message_destroy(m);
            continue;
        }
        int n = first_n + got;
        char key[32], val[64], rid[32];
        snprintf(key, sizeof(key), "client-%d", n % 5);
        snprintf(val, sizeof(val), "{\"n\":%d}", n);
        snprintf(rid, sizeof(rid), "client-%d:%d", n % 5, n);
        CHECK_INT(m->offset, from + got);
        CHECK(m->key_len == strlen(key) && memcmp(m->key, key, m->key_len) == 0,
              "key at %lld", (long long)m->offset);
        CHECK(m->len == strlen(val) && memcmp(m->payload, val, m->len) == 0,
              "value at %lld: '%.*s'", (long long)m->offset, (int)m->len,
              (char *)m->payload);
        rd_kafka_headers_t *hdrs = NULL;
        const void *hv = NULL;
        size_t hlen = 0;
        CHECK(rd_kafka_message_headers(m, &hdrs) == 0, "headers at %lld",
              (long long)m->offset);
        CHECK(hdrs &&
                  rd_kafka_header_get_last(hdrs, "br2k-request-id", &hv, &hlen) == 0 &&
                  hlen == strlen(rid) && memcmp(hv, rid, hlen) == 0,
              "request id header at %lld", (long long)m->offset);
        CHECK(hdrs && rd_kafka_header_get_last(hdrs, "br2k-schema", &hv, &hlen) == 0 &&
                  hlen == 1 && memcmp(hv, "1", 1) == 0,
              "schema header");
        got++;
        rd_kafka_message_destroy(m);
    }
    CHECK_INT(got, count);
    /* nothing more than expected: no duplicate was appended */
    int64_t lo = -1, hi = -1;
    CHECK(rd_kafka_query_watermark_offsets(rk, topic, 0, &lo, &hi, 5000) == 0,
          "watermarks");
    CHECK_INT(hi, from + count);
    rd_kafka_consumer_close(rk);
    rd_kafka_destroy(rk);
}

static int64_t high_watermark(rd_kafka_t *rk, const char *topic) {
    int64_t lo = -1, hi = -1;
    rd_kafka_resp_err_t err =
        rd_kafka_query_watermark_offsets(rk, topic, 0, &lo, &hi, 5000);
    CHECK(err == 0, "watermarks: %s", rd_kafka_err2str(err));
    return hi;
}

static void ctl(const char *devkafka, const char *sock, const char *cmd) {
    char line[1024];
    snprintf(line, sizeof(line), "'%s' ctl '%s' %s >/dev/null", devkafka, sock, cmd);
    CHECK(system(line) == 0, "control command '%s' failed", cmd);
}

static void roundtrip(const char *bootstrap, const char *topic) {
    rd_kafka_t *rk = producer(bootstrap);
    int64_t from = high_watermark(rk, topic);
    for (int i = 0; i < 100; i++)
        produce(rk, topic, i);
    CHECK(rd_kafka_flush(rk, 20000) == 0, "flush");
    CHECK_INT(delivered, 100);
    CHECK_INT(last_offset, from + 99);
    rd_kafka_destroy(rk);
    consume_check(bootstrap, topic, from, 100, 0);
}

static void fault(const char *bootstrap, const char *topic, const char *dk,
                  const char *sock) {
    rd_kafka_t *rk = producer(bootstrap);
    int64_t from = high_watermark(rk, topic);
    produce(rk, topic, 0);
    CHECK(rd_kafka_flush(rk, 10000) == 0, "flush before the fault");
    CHECK_INT(delivered, 1);

    for (int b = 1; b <= 3; b++) {
        char cmd[32];
        snprintf(cmd, sizeof(cmd), "broker down %d", b);
        ctl(dk, sock, cmd);
    }
    produce(rk, topic, 1);
    rd_kafka_flush(rk, 3000); /* must time out: nobody to deliver to */
    CHECK_INT(delivered, 1);
    CHECK(transport_errors > 0, "the client did not see the brokers go down");

    for (int b = 1; b <= 3; b++) {
        char cmd[32];
        snprintf(cmd, sizeof(cmd), "broker up %d", b);
        ctl(dk, sock, cmd);
    }
    CHECK(rd_kafka_flush(rk, 30000) == 0, "not delivered after the brokers came back");
    CHECK_INT(delivered, 2);
    CHECK_INT(last_offset, from + 1);

    /* injected errors: the idempotent producer retries, no duplicate */
    ctl(dk, sock, "error Produce 3 NOT_LEADER_FOR_PARTITION");
    produce(rk, topic, 2);
    CHECK(rd_kafka_flush(rk, 30000) == 0, "not delivered after injected errors");
    CHECK_INT(delivered, 3);
    CHECK_INT(last_offset, from + 2);
    CHECK_INT(delivery_errors, 0);
    rd_kafka_destroy(rk);
    consume_check(bootstrap, topic, from, 3, 0);
}

int main(int argc, char **argv) {
    if (argc == 4 && strcmp(argv[1], "roundtrip") == 0)
        roundtrip(argv[2], argv[3]);
    else if (argc == 6 && strcmp(argv[1], "fault") == 0)
        fault(argv[2], argv[3], argv[4], argv[5]);
    else {
        fprintf(
            stderr,
            "usage: itest_devkafka roundtrip|fault BOOTSTRAP TOPIC [DEVKAFKA SOCK]\n");
        return 2;
    }
    return check_done();
}
