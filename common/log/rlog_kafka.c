/* rlog_kafka.c - the Kafka back end of the request log (rlog.h, behind the
 * ops table of rlog_int.h): partition 0 of one topic, an idempotent
 * producer (acks=all) for appends, and an assign()-only consumer (no group
 * offsets) for reads; both built by kafka_conf.c. librdkafka retries an
 * append itself, with the same producer id and sequence number (never a
 * duplicate), until delivery.timeout.ms (a property of the settings'
 * props; librdkafka's default 300000). */
#include <librdkafka/rdkafka.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/clock.h"
#include "base/log.h"
#include "log/kafka_conf.h"
#include "log/rlog_int.h"

typedef struct klog {
    struct bk_rlog base; /* first: the ops */
    char *bootstrap, *topic, *props;
    int timeout_ms;
    rd_kafka_t *prod; /* created on the first append */
    rd_kafka_t *cons; /* created on the first seek */
    atomic_llong cached_end;
    int pending; /* appends queued, callback not yet called */
} klog;

/* A record: priv_ is the librdkafka message. */
typedef struct krec {
    bk_rlog_irec base; /* first: the public record and the ops */
} krec;

typedef struct delivery {
    bk_rlog_delivery_cb cb;
    void *opaque;
} delivery;

static klog *K(bk_rlog *l) {
    return (klog *)l;
}

static int kafka_accepts(const char *bootstrap) {
    (void)bootstrap;
    return 1; /* "host:port,..." or "kafka://host:port,..." */
}

static void kafka_close(bk_rlog *l);

static bk_rlog *kafka_open(const bk_rlog_settings *s, bk_err *e) {
    klog *k = calloc(1, sizeof(*k));
    if (k == NULL) {
        bk_err_set(e, BK_E_NOMEM, "out of memory");
        return NULL;
    }
    k->base.ops = &bk_rlog_kafka_ops;
    const char *boot = s->bootstrap;
    if (strncmp(boot, "kafka://", 8) == 0)
        boot += 8;
    k->bootstrap = strdup(boot);
    k->topic = strdup(s->topic);
    k->props = strdup(s->props ? s->props : "");
    k->timeout_ms = s->timeout_ms;
    atomic_init(&k->cached_end, -1);
    if (k->bootstrap == NULL || k->topic == NULL || k->props == NULL) {
        kafka_close(&k->base);
        bk_err_set(e, BK_E_NOMEM, "out of memory");
        return NULL;
    }
    return &k->base;
}

static void kafka_close(bk_rlog *l) {
    klog *k = K(l);
    if (k->prod != NULL) {
        if (rd_kafka_flush(k->prod, k->timeout_ms) != RD_KAFKA_RESP_ERR_NO_ERROR)
            BK_WARN("log '%s': %d appends not delivered at close", k->topic,
                    rd_kafka_outq_len(k->prod));
        rd_kafka_destroy(k->prod);
    }
    if (k->cons != NULL) {
        rd_kafka_consumer_close(k->cons);
        rd_kafka_destroy(k->cons);
    }
    free(k->bootstrap);
    free(k->topic);
    free(k->props);
    free(k);
}

/* ---- appending ---- */

static void dr_cb(rd_kafka_t *rk, const rd_kafka_message_t *m, void *conf_opaque) {
    (void)rk;
    klog *k = conf_opaque;
    delivery *d = m->_private;
    k->pending--;
    if (d == NULL)
        return;
    if (d->cb != NULL) {
        if (m->err) {
            bk_err e;
            bk_err_set(&e, BK_E_IO, "cannot append to log '%s': %s", k->topic,
                       rd_kafka_err2str(m->err));
            d->cb(d->opaque, -1, &e);
        } else {
            d->cb(d->opaque, m->offset, NULL);
        }
    }
    free(d);
}

static int ensure_producer(klog *k, bk_err *e) {
    if (k->prod != NULL)
        return BK_OK;
    rd_kafka_conf_t *conf =
        bk_kafka_conf_new(BK_KAFKA_PRODUCER, k->bootstrap, k->props, e);
    if (conf == NULL)
        return BK_ERR;
    rd_kafka_conf_set_dr_msg_cb(conf, dr_cb);
    rd_kafka_conf_set_opaque(conf, k);
    k->prod = bk_kafka_new(BK_KAFKA_PRODUCER, conf, e); /* takes conf */
    return k->prod != NULL ? BK_OK : BK_ERR;
}

static int kafka_append(bk_rlog *l, const void *key, size_t key_len, const void *value,
                        size_t len, const bk_rlog_header *headers, size_t nheaders,
                        bk_rlog_delivery_cb cb, void *opaque, bk_err *e) {
    klog *k = K(l);
    if (ensure_producer(k, e) != BK_OK)
        return BK_ERR;
    delivery *d = malloc(sizeof(*d));
    rd_kafka_headers_t *hdrs = nheaders ? rd_kafka_headers_new(nheaders) : NULL;
    if (d == NULL) {
        if (hdrs)
            rd_kafka_headers_destroy(hdrs);
        return bk_err_set(e, BK_E_NOMEM, "out of memory");
    }
    d->cb = cb;
    d->opaque = opaque;
    for (size_t i = 0; i < nheaders; i++)
        rd_kafka_header_add(hdrs, headers[i].name, -1, headers[i].value,
                            headers[i].value ? (ssize_t)headers[i].len : 0);
    rd_kafka_resp_err_t err = rd_kafka_producev(
        k->prod, RD_KAFKA_V_TOPIC(k->topic), RD_KAFKA_V_PARTITION(0),
        RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY), RD_KAFKA_V_KEY((void *)key, key_len),
        RD_KAFKA_V_VALUE((void *)value, len), RD_KAFKA_V_HEADERS(hdrs),
        RD_KAFKA_V_OPAQUE(d), RD_KAFKA_V_END);
    if (err) {
        if (hdrs)
            rd_kafka_headers_destroy(hdrs); /* not taken on failure */
        free(d);
        return bk_err_set(
            e, err == RD_KAFKA_RESP_ERR__QUEUE_FULL ? BK_E_TIMEOUT : BK_E_IO,
            "cannot append to log '%s': %s", k->topic, rd_kafka_err2str(err));
    }
    k->pending++;
    return BK_OK;
}

static int kafka_serve(bk_rlog *l, int timeout_ms) {
    klog *k = K(l);
    if (k->prod == NULL)
        return 0;
    return rd_kafka_poll(k->prod, timeout_ms);
}

static int kafka_flush(bk_rlog *l, int timeout_ms, bk_err *e) {
    klog *k = K(l);
    if (k->prod == NULL)
        return BK_OK;
    int64_t deadline = bk_mono_ms() + timeout_ms;
    while (k->pending > 0) {
        int64_t left = deadline - bk_mono_ms();
        if (left <= 0)
            return bk_err_set(e, BK_E_TIMEOUT, "%d appends to log '%s' not delivered",
                              k->pending, k->topic);
        rd_kafka_poll(k->prod, left > 100 ? 100 : (int)left);
    }
    return BK_OK;
}

static int kafka_pending(bk_rlog *l) {
    return K(l)->pending;
}

/* ---- reading ---- */

static int ensure_consumer(klog *k, bk_err *e) {
    if (k->cons != NULL)
        return BK_OK;
    rd_kafka_conf_t *conf =
        bk_kafka_conf_new(BK_KAFKA_CONSUMER, k->bootstrap, k->props, e);
    if (conf == NULL)
        return BK_ERR;
    k->cons = bk_kafka_new(BK_KAFKA_CONSUMER, conf, e); /* takes conf */
    if (k->cons == NULL)
        return BK_ERR;
    rd_kafka_poll_set_consumer(k->cons);
    return BK_OK;
}

static int kafka_seek(bk_rlog *l, int64_t offset, bk_err *e) {
    klog *k = K(l);
    if (ensure_consumer(k, e) != BK_OK)
        return BK_ERR;
    rd_kafka_topic_partition_list_t *parts = rd_kafka_topic_partition_list_new(1);
    rd_kafka_topic_partition_list_add(parts, k->topic, 0)->offset = offset;
    rd_kafka_resp_err_t err = rd_kafka_assign(k->cons, parts);
    rd_kafka_topic_partition_list_destroy(parts);
    if (err)
        return bk_err_set(e, BK_E_IO, "cannot read log '%s' from offset %lld: %s",
                          k->topic, (long long)offset, rd_kafka_err2str(err));
    return BK_OK;
}

static void update_end(klog *k) {
    int64_t low = -1, high = -1;
    if (rd_kafka_get_watermark_offsets(k->cons, k->topic, 0, &low, &high) ==
            RD_KAFKA_RESP_ERR_NO_ERROR &&
        high >= 0)
        atomic_store(&k->cached_end, high);
}

static int kafka_poll(bk_rlog *l, int timeout_ms, bk_rlog_rec **rec, bk_err *e) {
    klog *k = K(l);
    if (k->cons == NULL)
        return bk_err_set(e, BK_E_STATE, "log '%s' is read before a seek", k->topic);
    rd_kafka_message_t *m = rd_kafka_consumer_poll(k->cons, timeout_ms);
    update_end(k);
    if (m == NULL)
        return 0;
    if (m->err) {
        rd_kafka_resp_err_t err = m->err;
        int64_t off = m->offset;
        char msg[200];
        snprintf(msg, sizeof(msg), "%s", rd_kafka_message_errstr(m));
        rd_kafka_message_destroy(m);
        if (err == RD_KAFKA_RESP_ERR__PARTITION_EOF)
            return 0;
        if (err == RD_KAFKA_RESP_ERR_OFFSET_OUT_OF_RANGE ||
            err == RD_KAFKA_RESP_ERR__AUTO_OFFSET_RESET)
            return bk_err_set(e, BK_E_RLOG_RANGE,
                              "log '%s': offset %lld out of range: %s", k->topic,
                              (long long)off, msg);
        if (err == RD_KAFKA_RESP_ERR__FATAL ||
            err == RD_KAFKA_RESP_ERR_UNKNOWN_TOPIC_OR_PART)
            return bk_err_set(e, BK_E_IO, "log '%s': %s", k->topic, msg);
        BK_WARN("log '%s': %s (retrying)", k->topic, msg);
        return 0;
    }
    krec *x = malloc(sizeof(*x));
    if (x == NULL) {
        rd_kafka_message_destroy(m);
        return bk_err_set(e, BK_E_NOMEM, "out of memory");
    }
    bk_rlog_rec *r = &x->base.pub;
    rd_kafka_timestamp_type_t tstype;
    x->base.ops = &bk_rlog_kafka_ops;
    r->offset = m->offset;
    r->key = m->key;
    r->key_len = m->key ? m->key_len : 0;
    r->value = m->payload;
    r->len = m->payload ? m->len : 0;
    r->ts_ms = rd_kafka_message_timestamp(m, &tstype);
    r->priv_ = m;
    *rec = r;
    return 1;
}

static void kafka_rec_free(bk_rlog_rec *rec) {
    rd_kafka_message_destroy(rec->priv_);
    free(rec); /* the krec: pub is its first member */
}

static int kafka_rec_header_at(const bk_rlog_rec *rec, size_t i, bk_rlog_header *h) {
    rd_kafka_headers_t *hdrs = NULL;
    if (rd_kafka_message_headers(rec->priv_, &hdrs) != RD_KAFKA_RESP_ERR_NO_ERROR ||
        rd_kafka_header_get_all(hdrs, i, &h->name, &h->value, &h->len) !=
            RD_KAFKA_RESP_ERR_NO_ERROR)
        return 0;
    return 1;
}

static int kafka_rec_header(const bk_rlog_rec *rec, const char *name, const void **value,
                            size_t *len, bk_err *e) {
    rd_kafka_headers_t *hdrs = NULL;
    if (rd_kafka_message_headers(rec->priv_, &hdrs) != RD_KAFKA_RESP_ERR_NO_ERROR ||
        rd_kafka_header_get_last(hdrs, name, value, len) != RD_KAFKA_RESP_ERR_NO_ERROR)
        return bk_err_set(e, BK_E_NOTFOUND, "record %lld has no header '%s'",
                          (long long)rec->offset, name);
    return BK_OK;
}

/* ---- offsets and deletion ---- */

static rd_kafka_t *any_handle(klog *k, bk_err *e) {
    if (k->cons == NULL && k->prod == NULL && ensure_consumer(k, e) != BK_OK)
        return NULL;
    return k->cons ? k->cons : k->prod;
}

static int kafka_offsets(bk_rlog *l, int64_t *first, int64_t *end, bk_err *e) {
    klog *k = K(l);
    rd_kafka_t *rk = any_handle(k, e);
    if (rk == NULL)
        return BK_ERR;
    int64_t low = -1, high = -1;
    rd_kafka_resp_err_t err =
        rd_kafka_query_watermark_offsets(rk, k->topic, 0, &low, &high, k->timeout_ms);
    if (err)
        return bk_err_set(e, err == RD_KAFKA_RESP_ERR__TIMED_OUT ? BK_E_TIMEOUT : BK_E_IO,
                          "cannot read the offsets of log '%s': %s", k->topic,
                          rd_kafka_err2str(err));
    *first = low;
    *end = high;
    atomic_store(&k->cached_end, high);
    return BK_OK;
}

static int64_t kafka_cached_end(bk_rlog *l) {
    return atomic_load(&K(l)->cached_end);
}

static int unsupported(rd_kafka_resp_err_t err) {
    return err == RD_KAFKA_RESP_ERR_UNSUPPORTED_VERSION ||
           err == RD_KAFKA_RESP_ERR__UNSUPPORTED_FEATURE ||
           err == RD_KAFKA_RESP_ERR_UNSUPPORTED_FOR_MESSAGE_FORMAT ||
           err == RD_KAFKA_RESP_ERR_INVALID_REQUEST;
}

static int kafka_delete_below(bk_rlog *l, int64_t offset, bk_err *e) {
    klog *k = K(l);
    rd_kafka_t *rk = any_handle(k, e);
    if (rk == NULL)
        return BK_ERR;
    rd_kafka_topic_partition_list_t *parts = rd_kafka_topic_partition_list_new(1);
    rd_kafka_topic_partition_list_add(parts, k->topic, 0)->offset = offset;
    rd_kafka_DeleteRecords_t *del = rd_kafka_DeleteRecords_new(parts);
    rd_kafka_topic_partition_list_destroy(parts);
    rd_kafka_queue_t *q = rd_kafka_queue_new(rk);
    rd_kafka_AdminOptions_t *opts =
        rd_kafka_AdminOptions_new(rk, RD_KAFKA_ADMIN_OP_DELETERECORDS);
    char errstr[256];
    rd_kafka_AdminOptions_set_request_timeout(opts, k->timeout_ms, errstr,
                                              sizeof(errstr));
    rd_kafka_AdminOptions_set_operation_timeout(opts, k->timeout_ms, errstr,
                                                sizeof(errstr));
    rd_kafka_DeleteRecords(rk, &del, 1, opts, q);
    rd_kafka_event_t *ev = rd_kafka_queue_poll(q, k->timeout_ms + 2000);
    int rc = BK_OK;
    if (ev == NULL) {
        rc = bk_err_set(e, BK_E_TIMEOUT, "cannot delete log '%s' below %lld: timed out",
                        k->topic, (long long)offset);
    } else if (rd_kafka_event_error(ev)) {
        rd_kafka_resp_err_t err = rd_kafka_event_error(ev);
        rc = bk_err_set(e, unsupported(err) ? BK_E_RLOG_UNSUPPORTED : BK_E_IO,
                        "cannot delete log '%s' below %lld: %s", k->topic,
                        (long long)offset, rd_kafka_event_error_string(ev));
    } else {
        const rd_kafka_DeleteRecords_result_t *res =
            rd_kafka_event_DeleteRecords_result(ev);
        const rd_kafka_topic_partition_list_t *out =
            res ? rd_kafka_DeleteRecords_result_offsets(res) : NULL;
        if (out == NULL || out->cnt < 1)
            rc = bk_err_set(e, BK_E_PROTO, "cannot delete log '%s' below %lld: no result",
                            k->topic, (long long)offset);
        else if (out->elems[0].err)
            rc = bk_err_set(
                e, unsupported(out->elems[0].err) ? BK_E_RLOG_UNSUPPORTED : BK_E_IO,
                "cannot delete log '%s' below %lld: %s", k->topic, (long long)offset,
                rd_kafka_err2str(out->elems[0].err));
    }
    if (ev)
        rd_kafka_event_destroy(ev);
    rd_kafka_AdminOptions_destroy(opts);
    rd_kafka_DeleteRecords_destroy(del);
    rd_kafka_queue_destroy(q);
    return rc;
}

const bk_rlog_ops bk_rlog_kafka_ops = {
    .name = "kafka",
    .accepts = kafka_accepts,
    .open = kafka_open,
    .close = kafka_close,
    .append = kafka_append,
    .serve = kafka_serve,
    .flush = kafka_flush,
    .pending = kafka_pending,
    .seek = kafka_seek,
    .poll = kafka_poll,
    .rec_free = kafka_rec_free,
    .rec_header = kafka_rec_header,
    .rec_header_at = kafka_rec_header_at,
    .offsets = kafka_offsets,
    .cached_end = kafka_cached_end,
    .delete_below = kafka_delete_below,
};
