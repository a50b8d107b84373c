/* worker.h - the BR2K worker runtime (worker/README in ../shared/DESIGN.md).
 *
 * One worker per node. It reads the service's log from its LPI + 1 and
 * applies every record to the application's local state; one worker, the
 * holder of the fenced Redis lease, is the leader: it runs the external
 * effects, publishes results and advances SSI; the others follow SSI.
 *
 * Files in the state directory:
 *   app/        the application's state (with its own LPI)
 *   worker.pos  "br2k-pos 1 <lpi> <sha256 of the record at lpi> <first> <last>":
 *               the digest of the last applied record, checked on start
 *               against the log (I1), and the in-flight mark (I6):
 *               first..last are the offsets being applied (-1 -1: none),
 *               then a check field "c<8 hex>" (optional when read: a hand-
 *               written line may omit it), padded with spaces to a fixed
 *               BK_POS_WIDTH bytes. Created atomically (write, fsync,
 *               rename, fsync dir), then overwritten in place (one pwrite
 *               of the first sector and an fdatasync per batch; the size
 *               never changes, so no metadata is written).
 *   worker.held the results of records this worker applied as leader and
 *               has not committed yet (bk_held_write): written by the
 *               leader after app->sync and BEFORE the position write that
 *               raises LPI over them, so that a leader that dies between
 *               that write and its Redis commit restarts holding them and
 *               may lead again from SSI (it re-runs their idempotent
 *               external effects, I5, and commits the results with SET
 *               NX). Only read when its `upto` equals the LPI of
 *               worker.pos; otherwise it is stale and ignored. */
#ifndef BK_WORKER_H
#define BK_WORKER_H

#include <stdint.h>

#include "app.h"
#include "base/err.h"
#include "base/fileio.h"

/* Exit codes of br2k-worker. */
#define BK_EXIT_OK 0
#define BK_EXIT_ERROR 1     /* a runtime failure (I/O, application) */
#define BK_EXIT_CONFIG 2    /* a bad option */
#define BK_EXIT_INTEGRITY 3 /* refused to continue: I1 or I6, and no backup restored */

typedef struct bk_worker_opts {
    const char *id;
    const char *service;
    const char *redis;       /* HOST:PORT */
    const char *kafka;       /* bootstrap servers */
    const char *kafka_props; /* extra "k=v,..." librdkafka properties */
    const char *state_dir;
    const br2k_app_ops *app;
    int lease_ms;     /* lease TTL; renewed every lease_ms / 3 */
    int batch_max;    /* records per batch (one SSI update, one sync) */
    int result_ttl_s; /* expiry of result keys, 0: never */
    /* get-the-latest-state (restore.h): enabled when eth_rpc and registry
     * are set; the service key from service_key_file, else the
     * environment (BR2K_SERVICE_KEY). */
    const char *eth_rpc;          /* Ethereum JSON-RPC URLs, comma-separated */
    const char *registry;         /* the registry contract, 0x... */
    const char *service_key_file; /* "" : BR2K_SERVICE_KEY */
} bk_worker_opts;

/* Run the worker until SIGTERM/SIGINT (bk_sig_stop) or a fatal error.
 * Returns an exit code above; on a non-zero one, `e` says why. */
int bk_worker_run(const bk_worker_opts *o, bk_err *e);

/* The no-op application: counts records and chains their SHA-256 (its
 * digest), results carry the request id when the record has one. */

/* ---- the position file (pure file I/O, unit-testable) ---- */

typedef struct bk_pos {
    int64_t lpi;                           /* -1: nothing applied */
    char digest[65];                       /* of the record at lpi, "" if none */
    int64_t inflight_first, inflight_last; /* -1 -1: no mark */
} bk_pos;

/* Read `path`: BK_OK with *exists = 0 when there is no file, 1 and *p
 * filled otherwise; BK_ERR on a damaged file or an I/O error. */
int bk_pos_read(const char *path, bk_pos *p, int *exists, bk_err *e);

#define BK_POS_WIDTH 192 /* bytes of worker.pos: one padded line */

/* Replace `path` atomically and durably with *p. */
int bk_pos_write(const char *path, const bk_pos *p, bk_err *e);

/* Overwrite `path` in place with *p and fdatasync it (see above); *fd is
 * the open file, -1 the first time (then opened, or replaced once when
 * its size is not BK_POS_WIDTH). The caller closes *fd. */
int bk_pos_store(int *fd, const char *path, const bk_pos *p, bk_err *e);

/* SHA-256 of a record as 64 lowercase hex: over the key length (8 bytes,
 * big endian), the key and the value. */
void bk_record_digest(const void *key, size_t key_len, const void *value, size_t len,
                      char hex[65]);

/* ---- the held-results file ---- */

typedef struct bk_held_rec {
    int64_t offset;
    const char *request_id; /* NULL: the result names no request */
    const char *json;
} bk_held_rec;

/* The file, open for writing. Frames: a header line of 128 bytes
 * "br2k-held 2 <generation, 16 hex> <frame number> <upto> <base> <n> <body
 * bytes> <body check> c<check>", then per result "<offset> <id length, -1:
 * none> <json length>\n<id><json>". The frames of a generation follow one
 * another from the start of the file, numbered from 0; a reader stops at
 * the first frame that is not the next one (torn, zeros, an older
 * generation). Each leader batch appends one frame with its own new
 * results only, and the LPI it is written for (`upto`) and the lowest
 * offset not committed then (`base`): each result is written once. A
 * batch with nothing in flight (all earlier frames committed), the first
 * write of a process, or a full file starts a new generation at the start
 * with every result not committed. Version 1 files (one frame, "br2k-held 1
 * <upto> <n> <body bytes> <body check>", an older worker's) are read too. */
typedef struct bk_held_file {
    int fd;       /* -1: not open yet */
    uint64_t gen; /* the generation being written */
    int64_t seq;  /* its last frame's number, -1: none written by this process */
    size_t end;   /* where the next frame goes */
} bk_held_file;

#define BK_HELD_SPACE ((size_t)4 << 20) /* bytes of zeros the file starts with */

/* Open `path` (creating it) and extend it with zeros to BK_HELD_SPACE
 * bytes, keeping what it holds. */
int bk_held_prepare(bk_held_file *f, const char *path, bk_err *e);

/* Make the n results r[] durable for LPI `upto` (one write, one
 * fdatasync). `restart` (forced on the first write): a new generation at
 * the start of the file, and r[] must be every result not committed;
 * else a frame after the last one with the results not written before.
 * `base`: the lowest offset of a result not committed. */
int bk_held_write(bk_held_file *f, const char *path, int restart, int64_t upto,
                  int64_t base, const bk_held_rec *r, size_t n, bk_err *e);

/* Read `path`: the results of the frames of the last generation from the
 * last frame's `base` up to its `upto` (*upto), oldest first.
 * BK_OK with *n = 0 and *upto = -1 when it does not exist or holds no
 * frame yet; otherwise *out (malloc'd, with malloc'd strings) and *n.
 * BK_ERR when its first frame is damaged (a torn write) or unreadable. */
int bk_held_read(const char *path, int64_t *upto, bk_held_rec **out, size_t *n,
                 bk_err *e);

#endif
