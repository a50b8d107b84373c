/* br2k/app.h - the public, versioned C interface of a BR2K application.
 *
 * A BR2K worker hosts one application: it reads the service's ordered
 * request log, and calls the application to apply each record to its
 * local state. Build your application as a shared library that exports
 *
 *     const br2k_app_plugin *br2k_app_entry(void);
 *
 * returning a table that starts with BR2K_APP_ABI_VERSION and a name, and
 * run it with `br2k-worker --app /path/libyourapp.so`. This header is all
 * you need (`pkg-config --cflags br2k-app`); there is no library to link:
 * the worker passes what the application may call (br2k_host) as an
 * argument. worker/apps/GUIDE.md in the source tree says how to put a
 * service on BR2K; this header is the contract.
 *
 * Contract (every replica runs the same application on the same log):
 *   - Determinism (I4): `apply` depends only on the state and the record
 *     (time comes from the request, never the clock; no randomness, no
 *     I/O but the application's own state files), so every replica that
 *     applied the same prefix has the same state and the same `digest`.
 *   - The state and the offset of the last applied record (its LPI) are
 *     stored durably TOGETHER: `open` reads back a consistent pair.
 *   - Exactly once (I5): a request id seen before returns its first
 *     result and changes nothing; the external effect is idempotent per
 *     offset. A bad request is a rejected result, not an error.
 *   - An operation returns BR2K_APP_OK, or BR2K_APP_ERR with `e` filled (one
 *     lowercase line naming what failed). BR2K_APP_ERR from `apply` means the
 *     worker cannot continue (an I/O failure), NOT a rejected request:
 *     the worker stops, and recovers like a crashed worker (I6).
 *   - Memory: results and snapshots are allocated with malloc() by the
 *     application and freed with free() by the worker.
 *   - Threads: the worker calls every operation from one thread, except
 *     `external_many`, which may run on another thread while `apply`
 *     runs: it must not read or change the state, only its arguments and
 *     the host.
 *
 * Names: everything here starts with br2k_app_, br2k_ext_, br2k_host or
 * BR2K_APP_, so that this header and the producer API (br2k.h) can be
 * included together.
 *
 * ABI: the worker refuses a plug-in whose abi_version is not the one it
 * was built with. A change to any struct or signature below increments
 * BR2K_APP_ABI_VERSION. Version 2 appended `republish` to the plug-in
 * table and `ext_replace` to the host; the worker still loads a plug-in
 * built against version 1 (it has no `republish`). */
#ifndef BR2K_PUBLIC_APP_H
#define BR2K_PUBLIC_APP_H

#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#ifdef __cplusplus
extern "C" {
#endif

#define BR2K_APP_ABI_VERSION 2u

/* The name of the entry point the worker looks up with dlsym(). */
#define BR2K_APP_ENTRY_SYMBOL "br2k_app_entry"

#define BR2K_APP_OK 0
#define BR2K_APP_ERR (-1)

/* Error codes (br2k_app_error.code). */
#define BR2K_APP_E_NONE 0
#define BR2K_APP_E_INVAL 1   /* bad input */
#define BR2K_APP_E_IO 2      /* file system or socket */
#define BR2K_APP_E_NOMEM 3   /* out of memory */
#define BR2K_APP_E_PROTO 4   /* the external system answered something unreadable */
#define BR2K_APP_E_REMOTE 5  /* the external system answered with an error */
#define BR2K_APP_E_TIMEOUT 6 /* a deadline passed */
#define BR2K_APP_E_FENCED                                                                \
    7                         /* a stale fencing token was refused: this worker no       \
                             longer leads; return it as is (the worker steps down) */
#define BR2K_APP_E_NOTFOUND 8 /* something looked up is not there */
#define BR2K_APP_E_STATE 9    /* not allowed in the current state (a damaged state) */

typedef struct br2k_app_error {
    int code;      /* BR2K_APP_E_* */
    char msg[256]; /* one line: "cannot open 'x': No such file or directory" */
} br2k_app_error;

/* Fill `e` (if not NULL) and return BR2K_APP_ERR:
 *     return br2k_app_error_set(e, BR2K_APP_E_IO, "cannot open '%s'", path); */
static inline int br2k_app_error_set(br2k_app_error *e, int code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static inline int br2k_app_error_set(br2k_app_error *e, int code, const char *fmt, ...) {
    if (e != NULL) {
        va_list ap;
        va_start(ap, fmt);
        e->code = code;
        vsnprintf(e->msg, sizeof(e->msg), fmt, ap);
        va_end(ap);
    }
    return BR2K_APP_ERR;
}

/* The application's own state: define `struct br2k_app` in your code. */
typedef struct br2k_app br2k_app;

/* ---- the host: what the worker offers the leader-only external effect ----
 *
 * The external effect of a record runs on the leader only, after `apply`,
 * possibly more than once for the same record (a new leader re-runs the
 * records the old one may not have finished). It stays exactly once when
 * it is idempotent per offset and fenced:
 *   - either through `ext_write`: writes to Redis keys under the service's
 *     own namespace br2k:{<service>}:ext:<name>, applied by ONE atomic
 *     script that refuses a stale `epoch` (BR2K_APP_E_FENCED) and skips every
 *     record whose offset is <= the last offset it recorded
 *     (br2k:{<service>}:ext:applied), recording the new one in the same
 *     step;
 *   - or with the application's own external system, using (`epoch`,
 *     offset) as the idempotency key: refuse an epoch lower than the
 *     highest seen, skip an offset already done. */

/* What ext_write can do with a key ("name" below: 1 to 128 bytes of
 * A-Z a-z 0-9 . _ - :, not "applied"; the key is br2k:{<svc>}:ext:<name>). */
typedef enum br2k_ext_kind {
    BR2K_EXT_SET = 1,    /* SET key value */
    BR2K_EXT_DEL = 2,    /* DEL key */
    BR2K_EXT_HSET = 3,   /* HSET key field value */
    BR2K_EXT_HDEL = 4,   /* HDEL key field */
    BR2K_EXT_INCRBY = 5, /* INCRBY key by */
} br2k_ext_kind;

typedef struct br2k_ext_op {
    int kind;          /* br2k_ext_kind */
    const char *name;  /* the key under ext: */
    const char *field; /* HSET, HDEL; else NULL */
    const char *value; /* SET, HSET (any bytes but NUL); else NULL */
    int64_t by;        /* INCRBY */
} br2k_ext_op;

/* The external writes of the record at `offset`. */
typedef struct br2k_ext_record {
    int64_t offset;
    const br2k_ext_op *ops;
    size_t n;
} br2k_ext_record;

typedef struct br2k_host br2k_host;
struct br2k_host {
    uint32_t abi_version; /* BR2K_APP_ABI_VERSION */
    const char *service;  /* the service name */
    int64_t epoch;        /* this leader's fencing token */

    /* Apply n records (offsets strictly increasing) atomically in one
     * round trip: with a stale epoch nothing (BR2K_APP_E_FENCED); a record
     * whose offset is <= ext:applied is skipped; then ext:applied = the
     * last offset run. A record with no ops still records its offset.
     * BR2K_APP_ERR with `e` on a bad op (nothing written) or a Redis error. */
    int (*ext_write)(const br2k_host *h, const br2k_ext_record *recs, size_t n,
                     br2k_app_error *e);

    /* The last offset ext_write recorded (-1: none). */
    int (*ext_applied)(const br2k_host *h, int64_t *offset, br2k_app_error *e);

    void *priv; /* the worker's */

    /* ABI 2, for `republish` only (NULL in `external`): replace the whole
     * external view in one atomic, fenced step: every key under ext: but
     * ext:applied is deleted, the ops run in order, and ext:applied =
     * `offset`, the LPI of the state the view was computed from (so the
     * records up to it are not run again). Stale `epoch`: nothing
     * (BR2K_APP_E_FENCED). */
    int (*ext_replace)(const br2k_host *h, int64_t offset, const br2k_ext_op *ops,
                       size_t n, br2k_app_error *e);
};

/* ---- the application ---- */

typedef struct br2k_app_plugin {
    uint32_t abi_version; /* BR2K_APP_ABI_VERSION */
    const char *name;     /* short, for logs: "infodid" */

    /* Open (or create) the local state in directory `dir`. *lpi gets the
     * offset of the last applied record, -1 for a new state. A failure
     * stops the worker (exit 1) with e->msg. */
    int (*open)(const char *dir, br2k_app **app, int64_t *lpi, br2k_app_error *e);

    /* Apply the record at `offset` (the request's bytes; offsets only
     * increase). Sets *result (malloc'd JSON text, schemas/result.schema
     * .json: v, id, offset, op, status "ok"|"rejected", repeat, data or
     * reason) and *applied: 1 if the state changed, 0 for a rejection or
     * a repeated request id. The new LPI is `offset` once this returns,
     * durable after the next `sync` (or at once). */
    int (*apply)(br2k_app *app, int64_t offset, const void *rec, size_t len,
                 char **result, int *applied, br2k_app_error *e);

    /* Make every applied record durable, state and LPI together (fsync):
     * after it returns, a crash and `open` give back this LPI. The worker
     * calls it before publishing an LPI beyond what is durable. */
    int (*sync)(br2k_app *app, br2k_app_error *e);

    /* Optional (NULL: none): the leader-only external effect of the
     * record at `offset` whose result is `result` (see the host above). */
    int (*external)(br2k_app *app, const br2k_host *host, int64_t offset,
                    const char *result, br2k_app_error *e);

    /* Optional (NULL: the worker calls `external` for each record): the
     * external effects of n records at once, offsets[] increasing. Must
     * leave exactly the state that `external` for each in turn would; on
     * BR2K_APP_ERR the worker retries the whole call. Runs beside `apply` on
     * another thread: it must not touch the state, only its arguments. */
    int (*external_many)(br2k_app *app, const br2k_host *host, const int64_t *offsets,
                         const char *const *results, size_t n, br2k_app_error *e);

    /* A consistent copy of the whole state as of its LPI (malloc'd bytes,
     * *lpi its LPI), and its inverse, which replaces the state and its LPI
     * durably (a crash in the middle leaves the old state or the new). */
    int (*snapshot)(br2k_app *app, void **buf, size_t *len, int64_t *lpi,
                    br2k_app_error *e);
    int (*restore)(br2k_app *app, const void *buf, size_t len, br2k_app_error *e);

    /* SHA-256 of a canonical form of the state, as 64 lowercase hex:
     * equal on replicas that applied the same records. */
    int (*digest)(br2k_app *app, char hex[65], br2k_app_error *e);

    void (*close)(br2k_app *app); /* optional; frees the state */

    /* Optional (NULL: none; ABI 2): write the whole external view from the
     * state, as `external` of every record up to the state's LPI would
     * have left it, through host->ext_replace(host, <LPI>, ops, n). The
     * worker calls it on a new leader (main thread, no `apply` beside it)
     * when a Redis failover promoted a replica that missed external
     * writes of committed records: they are not in the results any more,
     * only in the state (I9). Like the external effect, fenced by the
     * host's epoch and harmless to run again.
     * The worker also calls it in the leader's snapshot process (a fork
     * holding the state at a backup's cut) to write the backup's external
     * state from the view (br2k-backupd --view-fields): there ext_replace
     * records the ops and writes nothing to Redis, and ext_write and
     * ext_applied fail; so call only ext_replace, once. */
    int (*republish)(br2k_app *app, const br2k_host *host, br2k_app_error *e);
} br2k_app_plugin;

/* The entry point every plug-in exports (BR2K_APP_ENTRY_SYMBOL). */
#define BR2K_APP_EXPORT __attribute__((visibility("default")))
BR2K_APP_EXPORT const br2k_app_plugin *br2k_app_entry(void);

#ifdef __cplusplus
}
#endif

#endif
