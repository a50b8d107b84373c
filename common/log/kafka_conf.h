/* kafka_conf.h - librdkafka configuration helpers.
 *
 * Every BR2K Kafka client is built from these, so that the settings of
 * ../shared/DESIGN.md (idempotent producer, acks=all, no consumer-group
 * offsets) live in one place. Extra librdkafka properties can be passed as
 * "key=value,key=value" (the BR2K_KAFKA_PROPS setting), for TLS, SASL and
 * the like on a real cluster. */
#ifndef BK_KAFKA_CONF_H
#define BK_KAFKA_CONF_H

#include <librdkafka/rdkafka.h>

#include "base/err.h"

typedef enum bk_kafka_role { BK_KAFKA_PRODUCER, BK_KAFKA_CONSUMER } bk_kafka_role;

/* The service's topic: "br2k.<svc>.requests". */
int bk_kafka_topic_name(const char *svc, char *buf, size_t size, bk_err *e);

/* Apply "k=v,k=v" to conf. Pure apart from the conf. An empty or NULL
 * string is fine. An error names the property and librdkafka's reason. */
int bk_kafka_conf_apply(rd_kafka_conf_t *conf, const char *props, bk_err *e);

/* A new conf for `role` against `bootstrap`, with BR2K's defaults, then
 * `props`. Logs from librdkafka go through our log. Returns NULL on error;
 * the caller owns the conf until rd_kafka_new() takes it. */
rd_kafka_conf_t *bk_kafka_conf_new(bk_kafka_role role, const char *bootstrap,
                                   const char *props, bk_err *e);

/* rd_kafka_new() from a conf made above; takes the conf on success and
 * on failure (it is destroyed), so the caller sets its pointer to NULL. */
rd_kafka_t *bk_kafka_new(bk_kafka_role role, rd_kafka_conf_t *conf, bk_err *e);

#endif
