/* rlog_int.h - the back-end interface of the request log (rlog.h): an ops
 * table per back end, and the first members every back end's handle and
 * records share. rlog.c picks the back end and dispatches through the
 * table; rlog_kafka.c and rlog_redis.c each define one. Not for callers
 * outside common/log/ (see common/log/README.md: adding a back end). */
#ifndef BK_RLOG_INT_H
#define BK_RLOG_INT_H

#include <stddef.h>
#include <stdint.h>

#include "base/err.h"
#include "log/rlog.h"

/* One back end. Every function has the meaning of the public function of
 * the same name in rlog.h; settings were checked by rlog.c (bootstrap and
 * topic set, timeout_ms > 0). */
typedef struct bk_rlog_ops {
    const char *name; /* "kafka", "redis": for messages */
    /* 1 when this back end serves `bootstrap` (the last one serves any) */
    int (*accepts)(const char *bootstrap);
    /* a handle whose first member is a struct bk_rlog with ops set */
    bk_rlog *(*open)(const bk_rlog_settings *s, bk_err *e);
    void (*close)(bk_rlog *l);
    int (*append)(bk_rlog *l, const void *key, size_t key_len, const void *value,
                  size_t len, const bk_rlog_header *headers, size_t nheaders,
                  bk_rlog_delivery_cb cb, void *opaque, bk_err *e);
    int (*serve)(bk_rlog *l, int timeout_ms);
    int (*flush)(bk_rlog *l, int timeout_ms, bk_err *e);
    int (*pending)(bk_rlog *l);
    int (*seek)(bk_rlog *l, int64_t offset, bk_err *e);
    int (*poll)(bk_rlog *l, int timeout_ms, bk_rlog_rec **rec, bk_err *e);
    void (*rec_free)(bk_rlog_rec *rec);
    int (*rec_header)(const bk_rlog_rec *rec, const char *name, const void **value,
                      size_t *len, bk_err *e);
    int (*rec_header_at)(const bk_rlog_rec *rec, size_t i, bk_rlog_header *h);
    int (*offsets)(bk_rlog *l, int64_t *first, int64_t *end, bk_err *e);
    int64_t (*cached_end)(bk_rlog *l);
    int (*delete_below)(bk_rlog *l, int64_t offset, bk_err *e);
    int (*read_ahead)(bk_rlog *l, bk_err *e); /* NULL: the client does by itself */
} bk_rlog_ops;

/* The first member of every back end's handle (rlog.c sets timeout_ms
 * after open). bk_rlog_append_sync is append + serve for every back end,
 * in rlog.c: a back end implements only the asynchronous append. */
struct bk_rlog {
    const bk_rlog_ops *ops;
    int timeout_ms;
};

/* The first member of every back end's record: rec_free and rec_header
 * find the back end from the record alone. */
typedef struct bk_rlog_irec {
    bk_rlog_rec pub;
    const bk_rlog_ops *ops;
} bk_rlog_irec;

/* The back ends (rlog_kafka.c, rlog_redis.c). */
extern const bk_rlog_ops bk_rlog_kafka_ops;
extern const bk_rlog_ops bk_rlog_redis_ops;

/* ---- helpers shared by the back ends (rlog.c) ---- */

/* The value of property `name` in "k=v,k=v" (the last one given), as a
 * positive int: BK_OK with *out set, or BK_OK with *out unchanged when
 * absent; BK_E_INVAL when present and not a positive integer. */
int bk_rlog_prop_int(const char *props, const char *name, int *out, bk_err *e);

#endif
