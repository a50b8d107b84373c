/* app.h - the application interface the worker's runtime calls (internal).
 *
 * Applications are NOT written against this header: they use the public,
 * versioned one, worker/include/br2k/app.h (installed as <br2k/app.h>,
 * worker/apps/GUIDE.md), and worker/appload.c adapts a plug-in to the
 * table below (the state pointer passes through unchanged; the external
 * effect gets a br2k_host over the bk_redis connection). worker/proto.c
 * implements the same table for applications over the protocol. The
 * contract below is the public header's.
 *
 * The worker owns the log, the in-flight mark (I6), leadership and results;
 * the application owns its local state and stores it durably TOGETHER with
 * the offset of the last record it applied (its LPI), so that after any
 * crash the pair (state, LPI) read back by `open` is consistent.
 *
 * Determinism (I4): `apply` depends only on the current state and the
 * record (time comes from the request, never the clock). Exactly once
 * (I5): a request id seen before returns the first result again and
 * changes nothing. A bad request (malformed, bad signature, ...) is a
 * rejected result with a reason, deterministic on every replica.
 *
 * Every function returns BK_OK or BK_ERR with `e` filled; BK_ERR from
 * apply means the worker cannot continue (I/O failure), NOT a rejected
 * request. Results are JSON text (schemas/result.schema.json) that the
 * caller frees with free(). */
#ifndef BR2K_APP_H
#define BR2K_APP_H

#include <stddef.h>
#include <stdint.h>

#include "base/err.h"
#include "redis/keys.h"
#include "redis/redis.h"

typedef struct br2k_app br2k_app; /* the application's own state */

typedef struct br2k_app_ops {
    const char *name; /* "infodid" */

    /* Open (or create) the local state in directory `dir`. *lpi gets the
     * offset of the last applied record, -1 for a new state. */
    int (*open)(const char *dir, br2k_app **app, int64_t *lpi, bk_err *e);

    /* Apply the record at `offset` (the Kafka value bytes). Sets *result
     * (malloc'd JSON) and *applied: 1 if the state changed, 0 for a
     * rejection or a repeated request id. The new LPI is `offset` once
     * this returns, durable after the next `sync` (or at once). */
    int (*apply)(br2k_app *app, int64_t offset, const void *rec, size_t len,
                 char **result, int *applied, bk_err *e);

    /* Make every applied record durable (state and LPI together); the
     * worker calls it before publishing an LPI beyond what is durable. */
    int (*sync)(br2k_app *app, bk_err *e);

    /* Optional (NULL: none): the leader-only external effect of the record
     * at `offset` whose result is `result`. Must be idempotent per offset
     * (I5): record the offset in the same atomic step, and refuse a stale
     * fencing token `epoch` (I2). */
    int (*external)(br2k_app *app, bk_redis *r, const char *svc, int64_t epoch,
                    int64_t offset, const char *result, bk_err *e);

    /* A consistent copy of the whole state as of its LPI (malloc'd bytes),
     * and its inverse, which replaces the state and its LPI durably. */
    int (*snapshot)(br2k_app *app, void **buf, size_t *len, int64_t *lpi, bk_err *e);
    int (*restore)(br2k_app *app, const void *buf, size_t len, bk_err *e);

    /* SHA-256 of a canonical form of the state, as 64 lowercase hex. */
    int (*digest)(br2k_app *app, char hex[65], bk_err *e);

    void (*close)(br2k_app *app); /* NULL is fine */

    /* Optional (NULL: the worker calls `external` for each record): the
     * external effects of n records at once, offsets[] increasing, with
     * their results[]. Must leave exactly the state that calling
     * `external` for each in turn would, with the same idempotence per
     * offset (I5) and fencing (I2); meant to cost one round trip (and one
     * Redis fsync) per batch instead of one per record. On BK_ERR the
     * worker retries the whole call (the per-offset idempotence makes a
     * partly done call harmless). Added for speed; leave it NULL if in
     * doubt. It is called from the worker's commit thread while the main
     * thread applies the next records: it must not read or change the
     * application's local state (`app`), only Redis and its arguments.
     * An application with `external` and no `external_many` is committed
     * from the main thread (no overlap). */
    int (*external_many)(br2k_app *app, bk_redis *r, const char *svc, int64_t epoch,
                         const int64_t *offsets, const char *const *results, size_t n,
                         bk_err *e);

    /* Optional (NULL: none): replace the whole external view in Redis by
     * the one the state gives as of its LPI (bk_ext_replace: fenced with
     * `epoch`, atomic, ext:applied = that LPI). Called on a new leader
     * whose claim counts, from the main thread, when Redis lost external
     * writes of committed records in a failover (a stale promotion: the
     * marker br2k:{svc}:ext-lost, claim.c, I9); their results are gone,
     * the state is not. Must leave what `external` of every record up to
     * the LPI would have left; running it again changes nothing. */
    int (*republish)(br2k_app *app, bk_redis *r, const char *svc, int64_t epoch,
                     bk_err *e);

    /* Optional (NULL: none): the whole external view the state gives as of
     * its LPI, the ops `republish` would write (every key under ext: but
     * ext:applied), handed to `cb` with that LPI; nothing is written. For
     * a backup's external state, in the leader's snapshot process (a fork
     * holding the state at the cut): so only an application that lives in
     * the worker's process (a plug-in with `republish`), never one over
     * the application protocol (its connection is the parent's). */
    int (*view)(br2k_app *app,
                int (*cb)(void *opaque, int64_t lpi, const bk_ext_op *ops, size_t n,
                          bk_err *e),
                void *opaque, bk_err *e);
} br2k_app_ops;

#endif
