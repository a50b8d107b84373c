/* rlog.h - the request log: THE one place BR2K reads and writes its log.
 *
 * One ordered log per service. Records have an offset (0, 1, 2, ... in log
 * order), a key (the client id), a value (the JSON request) and headers.
 * Callers never see librdkafka or hiredis. The back end is chosen by the
 * settings' `bootstrap` (common/log/README.md; rlog_int.h is the interface
 * every back end implements):
 *
 * Kafka (rlog_kafka.c): "host:port,..." or "kafka://host:port,...":
 *   partition 0 of the topic br2k.<svc>.requests; idempotent producer,
 *   assign() reader.
 *
 * Redis Streams (rlog_redis.c): "redis://HOST:PORT" or
 *   "redis://HOST:PORT/STREAM" (the stream defaults to the topic name).
 *   Offset N is the entry id "1-N"; the counter {<stream>}:next holds the
 *   next offset and the hash {<stream>}:ids the offset of each request id
 *   (a repeated request id is not appended again: its first offset is
 *   returned). An entry that BR2K did not append (a foreign XADD) becomes,
 *   before anything after it is read or appended, an empty record with the
 *   header br2k-foreign at the next offset (README.md: foreign entries).
 *   Reads that find an offset deleted, or not yet appended, say
 *   BK_E_RLOG_RANGE as Kafka says out of range; a Redis that is down or
 *   loading gives BK_E_IO (never RANGE); messages name the stream and URL.
 *
 * Appends that may not have reached the log are sent again by the back end
 * until delivery.timeout.ms (a property in the settings' props, as
 * librdkafka names it; default 300000): librdkafka with its idempotent
 * producer, the Redis back end with the record's request id (a record
 * without one is sent again only when it surely did not run). The delivery
 * callback then reports the offset, or the last error.
 *
 * A handle is used by one thread at a time, except bk_rlog_cached_end()
 * which any thread may call. Errors follow err.h, with two codes of this
 * module that callers must tell apart:
 *   BK_E_RLOG_RANGE        the offset asked for is no longer (or not yet)
 *                          in the log: never skip ahead (I1);
 *   BK_E_RLOG_UNSUPPORTED  the back end cannot do this (the development
 *                          broker has no DeleteRecords): log it once. */
#ifndef BK_RLOG_H
#define BK_RLOG_H

#include <stddef.h>
#include <stdint.h>

#include "base/err.h"

/* Standard header names of a BR2K request record. */
#define BK_RLOG_H_REQUEST_ID "br2k-request-id" /* "<client>:<seq>" */
#define BK_RLOG_H_SCHEMA "br2k-schema"         /* schema version, "1" */
/* Set by the Redis back end on a record made from an entry BR2K did not
 * append: its value is the foreign entry's id; key and value are empty. */
#define BK_RLOG_H_FOREIGN "br2k-foreign"
/* A leader's claim of its fencing token (I9, worker/claim.c): "<id>
 * <epoch>"; key and value are empty, so an application sees an empty
 * record, like a foreign one. */
#define BK_RLOG_H_CLAIM "br2k-claim"

typedef struct bk_rlog bk_rlog;

typedef struct bk_rlog_settings {
    const char
        *bootstrap; /* "host:port,...", "kafka://..." or "redis://H:P[/S]" (BR2K_KAFKA) */
    const char *topic; /* e.g. from bk_kafka_topic_name(); required */
    const char *props; /* extra "k=v,k=v" client properties; may be NULL
                          (Redis: delivery.timeout.ms, alias message.timeout.ms) */
    int timeout_ms;    /* bound of synchronous calls; <= 0: 10000 */
} bk_rlog_settings;

typedef struct bk_rlog_header {
    const char *name;
    const void *value; /* may be NULL */
    size_t len;
} bk_rlog_header;

/* A record read from the log; valid until bk_rlog_rec_free(). */
typedef struct bk_rlog_rec {
    int64_t offset;
    const void *key;
    size_t key_len;
    const void *value;
    size_t len;
    int64_t ts_ms; /* the log's timestamp, -1 if none (never used by apply, I4) */
    void *priv_;   /* the back end's (Kafka: its message) */
} bk_rlog_rec;

/* 1 when `bootstrap` names the Redis Streams back end ("redis://..."). */
int bk_rlog_is_redis(const char *bootstrap);

/* Open the log with settings `s` (copied). Clients are created lazily: a
 * writer on the first append, a reader on the first bk_rlog_seek(). NULL
 * with `e` on a bad setting. */
bk_rlog *bk_rlog_open(const bk_rlog_settings *s, bk_err *e);

/* Flush pending appends (up to the timeout) and free. NULL is fine. */
void bk_rlog_close(bk_rlog *l);

/* ---- appending ---- */

/* Called from bk_rlog_serve()/bk_rlog_flush() when an append is durable
 * (offset >= 0, e NULL) or failed for good (offset -1, e set). */
typedef void (*bk_rlog_delivery_cb)(void *opaque, int64_t offset, const bk_err *e);

/* Queue a record (copies key, value and headers). `cb` (may be NULL) is
 * called later with `opaque`. BK_ERR when the queue is full or on a bad
 * argument; the callback is then not called. */
int bk_rlog_append(bk_rlog *l, const void *key, size_t key_len, const void *value,
                   size_t len, const bk_rlog_header *headers, size_t nheaders,
                   bk_rlog_delivery_cb cb, void *opaque, bk_err *e);

/* Append and wait until durable; *offset (may be NULL) gets its offset. */
int bk_rlog_append_sync(bk_rlog *l, const void *key, size_t key_len, const void *value,
                        size_t len, const bk_rlog_header *headers, size_t nheaders,
                        int64_t *offset, bk_err *e);

/* Serve delivery callbacks, waiting up to timeout_ms for the first one.
 * Returns how many were served. */
int bk_rlog_serve(bk_rlog *l, int timeout_ms);

/* Wait until every queued append is delivered (or failed); BK_ERR with
 * BK_E_TIMEOUT if some are still pending after timeout_ms. */
int bk_rlog_flush(bk_rlog *l, int timeout_ms, bk_err *e);

/* Number of appends queued and not yet delivered. */
int bk_rlog_pending(bk_rlog *l);

/* ---- reading ---- */

/* Read from `offset` on (the next bk_rlog_poll returns that record first).
 * May be called again to move. */
int bk_rlog_seek(bk_rlog *l, int64_t offset, bk_err *e);

/* The next record: 1 with *rec set (free it with bk_rlog_rec_free), 0 when
 * none came within timeout_ms, BK_ERR on an error: BK_E_RLOG_RANGE when
 * the offset read is out of range (I1). */
int bk_rlog_poll(bk_rlog *l, int timeout_ms, bk_rlog_rec **rec, bk_err *e);

/* Free a record from bk_rlog_poll (NULL is fine). */
void bk_rlog_rec_free(bk_rlog_rec *rec);

/* A header's value (the last one of that name): BK_OK with *value and *len set, or
 * BK_ERR (BK_E_NOTFOUND) when absent. */
int bk_rlog_rec_header(const bk_rlog_rec *rec, const char *name, const void **value,
                       size_t *len, bk_err *e);

/* The i-th header of a record, in the order the log holds them (i from
 * 0): 1 with *h set (pointing into the record), 0 when there are fewer. */
int bk_rlog_rec_header_at(const bk_rlog_rec *rec, size_t i, bk_rlog_header *h);

/* ---- offsets and deletion ---- */

/* Ask the log: *first is the offset of the first record still present,
 * *end the offset the next appended record will get (last + 1); equal
 * when the log is empty. */
int bk_rlog_offsets(bk_rlog *l, int64_t *first, int64_t *end, bk_err *e);

/* The last *end known to the reader without asking (-1 when unknown);
 * cheap and safe from any thread. */
int64_t bk_rlog_cached_end(bk_rlog *l);

/* Delete every record below `offset`. BK_E_RLOG_UNSUPPORTED when the back
 * end cannot (the development broker). */
int bk_rlog_delete_below(bk_rlog *l, int64_t offset, bk_err *e);

/* Read ahead on a thread of the handle's own while the caller works on
 * what bk_rlog_poll returned (the worker). Kafka's client always does (a
 * no-op); on Redis Streams a thread with its own connection reads the
 * records that follow one another ahead of poll, up to a few thousand.
 * Call once, before the first seek. BK_ERR when the thread cannot start. */
int bk_rlog_read_ahead(bk_rlog *l, bk_err *e);

#endif
