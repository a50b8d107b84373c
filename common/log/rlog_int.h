/* rlog_int.h - the back ends of rlog.h behind its dispatch (rlog.c). Not
 * for callers outside common/rlog*.c. */
#ifndef BK_RLOG_INT_H
#define BK_RLOG_INT_H

#include "log/rlog.h"

/* ---- the Redis Streams back end (rlog_redis.c) ---- */
typedef struct bk_rlog_redis bk_rlog_redis;

/* 1 when `bootstrap` names a Redis Streams log ("redis://..."). */
int bk_rlog_redis_url(const char *bootstrap);

/* "redis://HOST:PORT[/STREAM]"; the stream defaults to `topic`. Does not
 * connect (the first call does). */
bk_rlog_redis *bk_rlog_redis_open(const char *url, const char *topic, int timeout_ms,
                                  bk_err *e);
void bk_rlog_redis_close(bk_rlog_redis *r);
int bk_rlog_redis_append(bk_rlog_redis *r, const void *key, size_t key_len,
                         const void *value, size_t len, const bk_rlog_header *headers,
                         size_t nheaders, bk_rlog_delivery_cb cb, void *opaque,
                         bk_err *e);
int bk_rlog_redis_append_sync(bk_rlog_redis *r, const void *key, size_t key_len,
                              const void *value, size_t len,
                              const bk_rlog_header *headers, size_t nheaders,
                              int64_t *offset, bk_err *e);
int bk_rlog_redis_serve(bk_rlog_redis *r, int timeout_ms);
int bk_rlog_redis_flush(bk_rlog_redis *r, int timeout_ms, bk_err *e);
int bk_rlog_redis_pending(bk_rlog_redis *r);
int bk_rlog_redis_seek(bk_rlog_redis *r, int64_t offset, bk_err *e);
int bk_rlog_redis_poll(bk_rlog_redis *r, int timeout_ms, bk_rlog_rec **rec, bk_err *e);
/* 1 when `rec` came from this back end. */
int bk_rlog_redis_is_rec(const bk_rlog_rec *rec);
void bk_rlog_redis_rec_free(bk_rlog_rec *rec);
int bk_rlog_redis_rec_header(const bk_rlog_rec *rec, const char *name, const void **value,
                             size_t *len, bk_err *e);
int bk_rlog_redis_offsets(bk_rlog_redis *r, int64_t *first, int64_t *end, bk_err *e);
int64_t bk_rlog_redis_cached_end(bk_rlog_redis *r);
int bk_rlog_redis_delete_below(bk_rlog_redis *r, int64_t offset, bk_err *e);

#endif
