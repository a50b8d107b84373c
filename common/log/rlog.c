/* rlog.c - see rlog.h. The interface only: it picks the back end from the
 * settings' bootstrap and dispatches every call through its ops table
 * (rlog_int.h). The back ends: rlog_kafka.c, rlog_redis.c. */
#include "log/rlog.h"

#include <stdlib.h>
#include <string.h>

#include "base/clock.h"
#include "base/log.h"
#include "log/rlog_int.h"

/* In order: the first that accepts the bootstrap serves it; Kafka takes
 * any other (a plain "host:port,..." list or "kafka://..."). */
static const bk_rlog_ops *const backends[] = {&bk_rlog_redis_ops, &bk_rlog_kafka_ops};

int bk_rlog_is_redis(const char *bootstrap) {
    return bootstrap != NULL && bk_rlog_redis_ops.accepts(bootstrap);
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
    bk_rlog_settings set = *s;
    if (set.timeout_ms <= 0)
        set.timeout_ms = 10000;
    for (size_t i = 0; i < sizeof(backends) / sizeof(backends[0]); i++)
        if (backends[i]->accepts(set.bootstrap)) {
            bk_rlog *l = backends[i]->open(&set, e);
            if (l != NULL)
                l->timeout_ms = set.timeout_ms;
            return l;
        }
    bk_err_set(e, BK_E_INVAL, "no log back end for '%s'", set.bootstrap);
    return NULL;
}

void bk_rlog_close(bk_rlog *l) {
    if (l != NULL)
        l->ops->close(l);
}

int bk_rlog_append(bk_rlog *l, const void *key, size_t key_len, const void *value,
                   size_t len, const bk_rlog_header *headers, size_t nheaders,
                   bk_rlog_delivery_cb cb, void *opaque, bk_err *e) {
    return l->ops->append(l, key, key_len, value, len, headers, nheaders, cb, opaque, e);
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

/* One append, then serve until its callback ran: queued behind earlier
 * appends and delivered after them, on every back end. The callback
 * refers to w, so the wait goes on however long (each back end fails an
 * append by its own delivery deadline), warned once per timeout. */
int bk_rlog_append_sync(bk_rlog *l, const void *key, size_t key_len, const void *value,
                        size_t len, const bk_rlog_header *headers, size_t nheaders,
                        int64_t *offset, bk_err *e) {
    sync_wait w = {0, -1, {0, ""}};
    if (l->ops->append(l, key, key_len, value, len, headers, nheaders, sync_cb, &w, e) !=
        BK_OK)
        return BK_ERR;
    int64_t deadline = bk_mono_ms() + l->timeout_ms;
    while (!w.done) {
        l->ops->serve(l, 50);
        if (!w.done && bk_mono_ms() > deadline) {
            BK_WARN("log %s: append not delivered within %d ms; still waiting",
                    l->ops->name, l->timeout_ms);
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
    return l->ops->serve(l, timeout_ms);
}

int bk_rlog_flush(bk_rlog *l, int timeout_ms, bk_err *e) {
    return l->ops->flush(l, timeout_ms, e);
}

int bk_rlog_pending(bk_rlog *l) {
    return l->ops->pending(l);
}

int bk_rlog_seek(bk_rlog *l, int64_t offset, bk_err *e) {
    if (offset < 0)
        return bk_err_set(e, BK_E_INVAL, "invalid log offset %lld", (long long)offset);
    return l->ops->seek(l, offset, e);
}

int bk_rlog_poll(bk_rlog *l, int timeout_ms, bk_rlog_rec **rec, bk_err *e) {
    *rec = NULL;
    return l->ops->poll(l, timeout_ms, rec, e);
}

void bk_rlog_rec_free(bk_rlog_rec *rec) {
    if (rec != NULL)
        ((bk_rlog_irec *)rec)->ops->rec_free(rec);
}

int bk_rlog_rec_header_at(const bk_rlog_rec *rec, size_t i, bk_rlog_header *h) {
    return ((const bk_rlog_irec *)rec)->ops->rec_header_at(rec, i, h);
}

int bk_rlog_rec_header(const bk_rlog_rec *rec, const char *name, const void **value,
                       size_t *len, bk_err *e) {
    return ((const bk_rlog_irec *)rec)->ops->rec_header(rec, name, value, len, e);
}

int bk_rlog_offsets(bk_rlog *l, int64_t *first, int64_t *end, bk_err *e) {
    return l->ops->offsets(l, first, end, e);
}

int64_t bk_rlog_cached_end(bk_rlog *l) {
    return l->ops->cached_end(l);
}

int bk_rlog_delete_below(bk_rlog *l, int64_t offset, bk_err *e) {
    return l->ops->delete_below(l, offset, e);
}

int bk_rlog_read_ahead(bk_rlog *l, bk_err *e) {
    return l->ops->read_ahead != NULL ? l->ops->read_ahead(l, e) : BK_OK;
}

int bk_rlog_prop_int(const char *props, const char *name, int *out, bk_err *e) {
    size_t nl = strlen(name);
    const char *p = props;
    int rc = BK_OK;
    while (p != NULL && *p != '\0') {
        const char *end = strchr(p, ',');
        size_t il = end ? (size_t)(end - p) : strlen(p);
        if (il > nl && strncmp(p, name, nl) == 0 && p[nl] == '=') {
            char buf[32];
            size_t vl = il - nl - 1;
            char *stop = NULL;
            long v = 0;
            if (vl > 0 && vl < sizeof(buf)) {
                memcpy(buf, p + nl + 1, vl);
                buf[vl] = '\0';
                v = strtol(buf, &stop, 10);
            }
            if (vl == 0 || vl >= sizeof(buf) || *stop != '\0' || v <= 0 || v > 1 << 30)
                rc =
                    bk_err_set(e, BK_E_INVAL,
                               "invalid log property '%.*s': expected a positive integer",
                               (int)il, p);
            else
                *out = (int)v;
        }
        p = end ? end + 1 : NULL;
    }
    return rc;
}
