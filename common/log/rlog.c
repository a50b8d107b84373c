/* rlog.c - see rlog.h. The Kafka back end: partition 0 of one topic, an
 * idempotent producer (acks=all) for appends, and an assign()-only consumer
 * (no group offsets) for reads; both built by kafka_conf.c. */
#include "log/rlog.h"

#include <librdkafka/rdkafka.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "log/kafka_conf.h"
#include "base/clock.h"
#include "base/log.h"
#include "log/rlog_int.h"

struct bk_rlog {
    char *bootstrap, *topic, *props;
    int timeout_ms;
    rd_kafka_t *prod; /* created on the first append */
    rd_kafka_t *cons; /* created on the first seek */
    atomic_llong cached_end;
    int pending;       /* appends queued, callback not yet called */
    bk_rlog_redis *rs; /* the Redis Streams back end when not NULL (rlog_redis.c) */
};

typedef struct delivery {
    bk_rlog_delivery_cb cb;
    void *opaque;
} delivery;

static char *dup_or_empty(const char *s) {
    return strdup(s ? s : "");
}

int bk_rlog_is_redis(const char *bootstrap) {
    return bk_rlog_redis_url(bootstrap);
}

bk_rlog *bk_rlog_open(const bk_rlog_settings *s, bk_err *e) {
    if (s == NULL || s->bootstrap == NULL || *s->bootstrap == '\0') {
        bk_err_set(e, BK_E_INVAL, "no log bootstrap servers: set --kafka or BR2K_KAFKA");
        return NULL;
    }
    if (s->topic == NULL || *s->topic == '\0') {
        bk_err_set(e, BK_E_INVAL, "no log topic given");
        return NULL;
    }
    bk_rlog *l = calloc(1, sizeof(*l));
    if (l == NULL) {
        bk_err_set(e, BK_E_NOMEM, "out of memory");
        return NULL;
    }
    const char *boot = s->bootstrap;
    if (strncmp(boot, "kafka://", 8) == 0)
        boot += 8;
    l->bootstrap = dup_or_empty(boot);
    l->topic = dup_or_empty(s->topic);
    l->props = dup_or_empty(s->props);
    l->timeout_ms = s->timeout_ms > 0 ? s->timeout_ms : 10000;
    atomic_init(&l->cached_end, -1);
    if (l->bootstrap == NULL || l->topic == NULL || l->props == NULL) {
        bk_rlog_close(l);
        bk_err_set(e, BK_E_NOMEM, "out of memory");
        return NULL;
    }
    if (bk_rlog_redis_url(l->bootstrap)) {
        l->rs = bk_rlog_redis_open(l->bootstrap, l->topic, l->timeout_ms, e);
        if (l->rs == NULL) {
            bk_rlog_close(l);
            return NULL;
        }
    }
    return l;
}

void bk_rlog_close(bk_rlog *l) {
    if (l == NULL)
        return;
    bk_rlog_redis_close(l->rs);
    if (l->prod != NULL) {
        if (rd_kafka_flush(l->prod, l->timeout_ms) != RD_KAFKA_RESP_ERR_NO_ERROR)
            BK_WARN("log '%s': %d appends not delivered at close", l->topic,
                    rd_kafka_outq_len(l->prod));
        rd_kafka_destroy(l->prod);
    }
    if (l->cons != NULL) {
        rd_kafka_consumer_close(l->cons);
        rd_kafka_destroy(l->cons);
    }
    free(l->bootstrap);
    free(l->topic);
    free(l->props);
    free(l);
}

/* ---- appending ---- */

static void dr_cb(rd_kafka_t *rk, const rd_kafka_message_t *m, void *conf_opaque) {
    (void)rk;
    bk_rlog *l = conf_opaque;
    delivery *d = m->_private;
    l->pending--;
    if (d == NULL)
        return;
    if (d->cb != NULL) {
        if (m->err) {
            bk_err e;
            bk_err_set(&e, BK_E_IO, "cannot append to log '%s': %s", l->topic,
                       rd_kafka_err2str(m->err));
            d->cb(d->opaque, -1, &e);
        } else {
            d->cb(d->opaque, m->offset, NULL);
        }
    }
    free(d);
}

static int ensure_producer(bk_rlog *l, bk_err *e) {
    if (l->prod != NULL)
        return BK_OK;
    rd_kafka_conf_t *conf =
        bk_kafka_conf_new(BK_KAFKA_PRODUCER, l->bootstrap, l->props, e);
    if (conf == NULL)
        return BK_ERR;
    rd_kafka_conf_set_dr_msg_cb(conf, dr_cb);
    rd_kafka_conf_set_opaque(conf, l);
    l->prod = bk_kafka_new(BK_KAFKA_PRODUCER, conf, e); /* takes conf */
    return l->prod != NULL ? BK_OK : BK_ERR;
}

int bk_rlog_append(bk_rlog *l, const void *key, size_t key_len, const void *value,
                   size_t len, const bk_rlog_header *headers, size_t nheaders,
                   bk_rlog_delivery_cb cb, void *opaque, bk_err *e) {
    if (l->rs != NULL)
        return bk_rlog_redis_append(l->rs, key, key_len, value, len, headers, nheaders,
                                    cb, opaque, e);
    if (ensure_producer(l, e) != BK_OK)
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
        l->prod, RD_KAFKA_V_TOPIC(l->topic), RD_KAFKA_V_PARTITION(0),
        RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY), RD_KAFKA_V_KEY((void *)key, key_len),
        RD_KAFKA_V_VALUE((void *)value, len), RD_KAFKA_V_HEADERS(hdrs),
        RD_KAFKA_V_OPAQUE(d), RD_KAFKA_V_END);
    if (err) {
        if (hdrs)
            rd_kafka_headers_destroy(hdrs); /* not taken on failure */
        free(d);
        return bk_err_set(
            e, err == RD_KAFKA_RESP_ERR__QUEUE_FULL ? BK_E_TIMEOUT : BK_E_IO,
            "cannot append to log '%s': %s", l->topic, rd_kafka_err2str(err));
    }
    l->pending++;
    return BK_OK;
}

typedef struct sync_wait {
    int done;
    int64_t offset;
    bk_err err;
} sync_wait;

static void sync_cb(void *opaque, int64_t offset, const bk_err *e) {
    sync_wait *w = opaque;
    w->done = 1;
    w->offset = offset;
    if (e != NULL)
        w->err = *e;
}

int bk_rlog_append_sync(bk_rlog *l, const void *key, size_t key_len, const void *value,
                        size_t len, const bk_rlog_header *headers, size_t nheaders,
                        int64_t *offset, bk_err *e) {
    if (l->rs != NULL)
        return bk_rlog_redis_append_sync(l->rs, key, key_len, value, len, headers,
                                         nheaders, offset, e);
    sync_wait w = {0, -1, {0, ""}};
    if (bk_rlog_append(l, key, key_len, value, len, headers, nheaders, sync_cb, &w, e) !=
        BK_OK)
        return BK_ERR;
    int64_t deadline = bk_mono_ms() + l->timeout_ms;
    while (!w.done) {
        rd_kafka_poll(l->prod, 50);
        if (!w.done && bk_mono_ms() > deadline) {
            /* the callback still refers to w: wait for it, however long */
            BK_WARN("log '%s': append not delivered within %d ms; still waiting",
                    l->topic, l->timeout_ms);
            deadline = bk_mono_ms() + l->timeout_ms;
        }
    }
    if (w.offset < 0) {
        if (e != NULL)
            *e = w.err;
        return BK_ERR;
    }
    if (offset != NULL)
        *offset = w.offset;
    return BK_OK;
}

int bk_rlog_serve(bk_rlog *l, int timeout_ms) {
    if (l->rs != NULL)
        return bk_rlog_redis_serve(l->rs, timeout_ms);
    if (l->prod == NULL)
        return 0;
    return rd_kafka_poll(l->prod, timeout_ms);
}

int bk_rlog_flush(bk_rlog *l, int timeout_ms, bk_err *e) {
    if (l->rs != NULL)
        return bk_rlog_redis_flush(l->rs, timeout_ms, e);
    if (l->prod == NULL)
        return BK_OK;
    int64_t deadline = bk_mono_ms() + timeout_ms;
    while (l->pending > 0) {
        int64_t left = deadline - bk_mono_ms();
        if (left <= 0)
            return bk_err_set(e, BK_E_TIMEOUT, "%d appends to log '%s' not delivered",
                              l->pending, l->topic);
        rd_kafka_poll(l->prod, left > 100 ? 100 : (int)left);
    }
    return BK_OK;
}

int bk_rlog_pending(bk_rlog *l) {
    if (l->rs != NULL)
        return bk_rlog_redis_pending(l->rs);
    return l->pending;
}

/* ---- reading ---- */

static int ensure_consumer(bk_rlog *l, bk_err *e) {
    if (l->cons != NULL)
        return BK_OK;
    rd_kafka_conf_t *conf =
        bk_kafka_conf_new(BK_KAFKA_CONSUMER, l->bootstrap, l->props, e);
    if (conf == NULL)
        return BK_ERR;
    l->cons = bk_kafka_new(BK_KAFKA_CONSUMER, conf, e); /* takes conf */
    if (l->cons == NULL)
        return BK_ERR;
    rd_kafka_poll_set_consumer(l->cons);
    return BK_OK;
}

int bk_rlog_seek(bk_rlog *l, int64_t offset, bk_err *e) {
    if (l->rs != NULL)
        return bk_rlog_redis_seek(l->rs, offset, e);
    if (offset < 0)
        return bk_err_set(e, BK_E_INVAL, "invalid log offset %lld", (long long)offset);
    if (ensure_consumer(l, e) != BK_OK)
        return BK_ERR;
    rd_kafka_topic_partition_list_t *parts = rd_kafka_topic_partition_list_new(1);
    rd_kafka_topic_partition_list_add(parts, l->topic, 0)->offset = offset;
    rd_kafka_resp_err_t err = rd_kafka_assign(l->cons, parts);
    rd_kafka_topic_partition_list_destroy(parts);
    if (err)
        return bk_err_set(e, BK_E_IO, "cannot read log '%s' from offset %lld: %s",
                          l->topic, (long long)offset, rd_kafka_err2str(err));
    return BK_OK;
}

static void update_end(bk_rlog *l) {
    int64_t low = -1, high = -1;
    if (rd_kafka_get_watermark_offsets(l->cons, l->topic, 0, &low, &high) ==
            RD_KAFKA_RESP_ERR_NO_ERROR &&
        high >= 0)
        atomic_store(&l->cached_end, high);
}

int bk_rlog_poll(bk_rlog *l, int timeout_ms, bk_rlog_rec **rec, bk_err *e) {
    if (l->rs != NULL)
        return bk_rlog_redis_poll(l->rs, timeout_ms, rec, e);
    *rec = NULL;
    if (l->cons == NULL)
        return bk_err_set(e, BK_E_STATE, "log '%s' is read before a seek", l->topic);
    rd_kafka_message_t *m = rd_kafka_consumer_poll(l->cons, timeout_ms);
    update_end(l);
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
                              "log '%s': offset %lld out of range: %s", l->topic,
                              (long long)off, msg);
        if (err == RD_KAFKA_RESP_ERR__FATAL ||
            err == RD_KAFKA_RESP_ERR_UNKNOWN_TOPIC_OR_PART)
            return bk_err_set(e, BK_E_IO, "log '%s': %s", l->topic, msg);
        BK_WARN("log '%s': %s (retrying)", l->topic, msg);
        return 0;
    }
    bk_rlog_rec *r = malloc(sizeof(*r));
    if (r == NULL) {
        rd_kafka_message_destroy(m);
        return bk_err_set(e, BK_E_NOMEM, "out of memory");
    }
    rd_kafka_timestamp_type_t tstype;
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

void bk_rlog_rec_free(bk_rlog_rec *rec) {
    if (rec == NULL)
        return;
    if (bk_rlog_redis_is_rec(rec)) {
        bk_rlog_redis_rec_free(rec);
        return;
    }
    rd_kafka_message_destroy(rec->priv_);
    free(rec);
}

int bk_rlog_rec_header(const bk_rlog_rec *rec, const char *name, const void **value,
                       size_t *len, bk_err *e) {
    if (bk_rlog_redis_is_rec(rec))
        return bk_rlog_redis_rec_header(rec, name, value, len, e);
    rd_kafka_headers_t *hdrs = NULL;
    if (rd_kafka_message_headers(rec->priv_, &hdrs) != RD_KAFKA_RESP_ERR_NO_ERROR ||
        rd_kafka_header_get_last(hdrs, name, value, len) != RD_KAFKA_RESP_ERR_NO_ERROR)
        return bk_err_set(e, BK_E_NOTFOUND, "record %lld has no header '%s'",
                          (long long)rec->offset, name);
    return BK_OK;
}

/* ---- offsets and deletion ---- */

static rd_kafka_t *any_handle(bk_rlog *l, bk_err *e) {
    if (l->cons == NULL && l->prod == NULL && ensure_consumer(l, e) != BK_OK)
        return NULL;
    return l->cons ? l->cons : l->prod;
}

int bk_rlog_offsets(bk_rlog *l, int64_t *first, int64_t *end, bk_err *e) {
    if (l->rs != NULL)
        return bk_rlog_redis_offsets(l->rs, first, end, e);
    rd_kafka_t *rk = any_handle(l, e);
    if (rk == NULL)
        return BK_ERR;
    int64_t low = -1, high = -1;
    rd_kafka_resp_err_t err =
        rd_kafka_query_watermark_offsets(rk, l->topic, 0, &low, &high, l->timeout_ms);
    if (err)
        return bk_err_set(e, err == RD_KAFKA_RESP_ERR__TIMED_OUT ? BK_E_TIMEOUT : BK_E_IO,
                          "cannot read the offsets of log '%s': %s", l->topic,
                          rd_kafka_err2str(err));
    *first = low;
    *end = high;
    atomic_store(&l->cached_end, high);
    return BK_OK;
}

int64_t bk_rlog_cached_end(bk_rlog *l) {
    if (l->rs != NULL)
        return bk_rlog_redis_cached_end(l->rs);
    return atomic_load(&l->cached_end);
}

static int unsupported(rd_kafka_resp_err_t err) {
    return err == RD_KAFKA_RESP_ERR_UNSUPPORTED_VERSION ||
           err == RD_KAFKA_RESP_ERR__UNSUPPORTED_FEATURE ||
           err == RD_KAFKA_RESP_ERR_UNSUPPORTED_FOR_MESSAGE_FORMAT ||
           err == RD_KAFKA_RESP_ERR_INVALID_REQUEST;
}

int bk_rlog_delete_below(bk_rlog *l, int64_t offset, bk_err *e) {
    if (l->rs != NULL)
        return bk_rlog_redis_delete_below(l->rs, offset, e);
    rd_kafka_t *rk = any_handle(l, e);
    if (rk == NULL)
        return BK_ERR;
    rd_kafka_topic_partition_list_t *parts = rd_kafka_topic_partition_list_new(1);
    rd_kafka_topic_partition_list_add(parts, l->topic, 0)->offset = offset;
    rd_kafka_DeleteRecords_t *del = rd_kafka_DeleteRecords_new(parts);
    rd_kafka_topic_partition_list_destroy(parts);
    rd_kafka_queue_t *q = rd_kafka_queue_new(rk);
    rd_kafka_AdminOptions_t *opts =
        rd_kafka_AdminOptions_new(rk, RD_KAFKA_ADMIN_OP_DELETERECORDS);
    char errstr[256];
    rd_kafka_AdminOptions_set_request_timeout(opts, l->timeout_ms, errstr,
                                              sizeof(errstr));
    rd_kafka_AdminOptions_set_operation_timeout(opts, l->timeout_ms, errstr,
                                                sizeof(errstr));
    rd_kafka_DeleteRecords(rk, &del, 1, opts, q);
    rd_kafka_event_t *ev = rd_kafka_queue_poll(q, l->timeout_ms + 2000);
    int rc = BK_OK;
    if (ev == NULL) {
        rc = bk_err_set(e, BK_E_TIMEOUT, "cannot delete log '%s' below %lld: timed out",
                        l->topic, (long long)offset);
    } else if (rd_kafka_event_error(ev)) {
        rd_kafka_resp_err_t err = rd_kafka_event_error(ev);
        rc = bk_err_set(e, unsupported(err) ? BK_E_RLOG_UNSUPPORTED : BK_E_IO,
                        "cannot delete log '%s' below %lld: %s", l->topic,
                        (long long)offset, rd_kafka_event_error_string(ev));
    } else {
        const rd_kafka_DeleteRecords_result_t *res =
            rd_kafka_event_DeleteRecords_result(ev);
        const rd_kafka_topic_partition_list_t *out =
            res ? rd_kafka_DeleteRecords_result_offsets(res) : NULL;
        if (out == NULL || out->cnt < 1)
            rc = bk_err_set(e, BK_E_PROTO, "cannot delete log '%s' below %lld: no result",
                            l->topic, (long long)offset);
        else if (out->elems[0].err)
            rc = bk_err_set(
                e, unsupported(out->elems[0].err) ? BK_E_RLOG_UNSUPPORTED : BK_E_IO,
                "cannot delete log '%s' below %lld: %s", l->topic, (long long)offset,
                rd_kafka_err2str(out->elems[0].err));
    }
    if (ev)
        rd_kafka_event_destroy(ev);
    rd_kafka_AdminOptions_destroy(opts);
    rd_kafka_DeleteRecords_destroy(del);
    rd_kafka_queue_destroy(q);
    return rc;
}
