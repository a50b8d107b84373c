/* kafka_conf.c - see kafka_conf.h. */
#include "log/kafka_conf.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/log.h"

int bk_kafka_topic_name(const char *svc, char *buf, size_t size, bk_err *e) {
    size_t n = strlen(svc);
    if (n == 0 || n > 200)
        return bk_err_set(e, BK_E_INVAL,
                          "invalid service name '%s': expected 1 to 200 "
                          "characters",
                          svc);
    for (const char *p = svc; *p; p++)
        if (!((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') ||
              (*p >= '0' && *p <= '9') || *p == '-' || *p == '_'))
            return bk_err_set(e, BK_E_INVAL,
                              "invalid service name '%s': expected letters, digits, '-' "
                              "or '_'",
                              svc);
    if ((size_t)snprintf(buf, size, "br2k.%s.requests", svc) >= size)
        return bk_err_set(e, BK_E_INVAL, "service name '%s' is too long", svc);
    return BK_OK;
}

static int set1(rd_kafka_conf_t *conf, const char *k, const char *v, bk_err *e) {
    char errstr[512];
    if (rd_kafka_conf_set(conf, k, v, errstr, sizeof(errstr)) != RD_KAFKA_CONF_OK)
        return bk_err_set(e, BK_E_INVAL, "invalid Kafka property '%s=%s': %s", k, v,
                          errstr);
    return BK_OK;
}

int bk_kafka_conf_apply(rd_kafka_conf_t *conf, const char *props, bk_err *e) {
    if (props == NULL || *props == '\0')
        return BK_OK;
    char *copy = strdup(props), *save = NULL;
    if (copy == NULL)
        return bk_err_set(e, BK_E_NOMEM, "out of memory");
    int rc = BK_OK;
    for (char *item = strtok_r(copy, ",", &save); item != NULL;
         item = strtok_r(NULL, ",", &save)) {
        char *eq = strchr(item, '=');
        if (eq == NULL || eq == item) {
            rc = bk_err_set(e, BK_E_INVAL,
                            "invalid Kafka property '%s': expected key=value", item);
            break;
        }
        *eq = '\0';
        if (set1(conf, item, eq + 1, e) != BK_OK) {
            rc = BK_ERR;
            break;
        }
    }
    free(copy);
    return rc;
}

static void log_cb(const rd_kafka_t *rk, int level, const char *fac, const char *buf) {
    (void)rk;
    /* syslog levels: 0-3 error, 4 warning, 5-6 info, 7 debug */
    int lvl = level <= 3   ? BK_LOG_ERROR
              : level == 4 ? BK_LOG_WARN
              : level <= 6 ? BK_LOG_INFO
                           : BK_LOG_DEBUG;
    bk_log(lvl, "kafka %s: %s", fac, buf);
}

rd_kafka_conf_t *bk_kafka_conf_new(bk_kafka_role role, const char *bootstrap,
                                   const char *props, bk_err *e) {
    rd_kafka_conf_t *conf = rd_kafka_conf_new();
    static const char *producer[][2] = {{"enable.idempotence", "true"},
                                        {"acks", "all"},
                                        {"linger.ms", "2"},
                                        {"message.send.max.retries", "2147483647"}};
    /* librdkafka's consumer_poll() needs a group.id even with assign();
     * offsets are never committed (each worker keeps its own LPI). */
    static const char *consumer[][2] = {{"group.id", "br2k.assign-only"},
                                        {"enable.auto.commit", "false"},
                                        {"enable.auto.offset.store", "false"},
                                        {"auto.offset.reset", "error"},
                                        {"fetch.wait.max.ms", "10"}};
    if (bootstrap == NULL || *bootstrap == '\0') {
        bk_err_set(e, BK_E_INVAL,
                   "no Kafka bootstrap servers: set --kafka or BR2K_KAFKA");
        goto fail;
    }
    if (set1(conf, "bootstrap.servers", bootstrap, e) != BK_OK)
        goto fail;
    const char *(*defs)[2] = role == BK_KAFKA_PRODUCER ? producer : consumer;
    for (size_t i = 0; i < (role == BK_KAFKA_PRODUCER ? 4u : 5u); i++)
        if (set1(conf, defs[i][0], defs[i][1], e) != BK_OK)
            goto fail;
    if (bk_kafka_conf_apply(conf, props, e) != BK_OK)
        goto fail;
    rd_kafka_conf_set_log_cb(conf, log_cb);
    return conf;
fail:
    rd_kafka_conf_destroy(conf);
    return NULL;
}

rd_kafka_t *bk_kafka_new(bk_kafka_role role, rd_kafka_conf_t *conf, bk_err *e) {
    char errstr[512];
    rd_kafka_t *rk =
        rd_kafka_new(role == BK_KAFKA_PRODUCER ? RD_KAFKA_PRODUCER : RD_KAFKA_CONSUMER,
                     conf, errstr, sizeof(errstr));
    if (rk == NULL) {
        rd_kafka_conf_destroy(conf);
        bk_err_set(e, BK_E_INVAL, "cannot create Kafka client: %s", errstr);
    }
    return rk;
}
