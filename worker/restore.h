/* restore.h - reading a backup back (DESIGN.md, get-the-latest-state):
 * the log of a version from the registry (any of the RPC URLs), decrypted
 * with the service key, and the state object it names, fetched from the
 * storage it names and checked (SHA-256, then the AES-GCM tag). */
#ifndef BK_WORKER_RESTORE_H
#define BK_WORKER_RESTORE_H

#include <jansson.h>
#include <stddef.h>
#include <stdint.h>

#include "base/err.h"
#include "chain/ethkey.h"

typedef struct bk_rpc bk_rpc;

/* Where a restore spent its time, in ms (the worker's "restore stages"
 * line): the log read from the chain and decrypted, the object fetched
 * from the storage, its SHA-256 (verify), AES-GCM (decrypt), zlib
 * (decompress); the application's restore (write: the new state made
 * durable; parse: read into memory, when the application says), the
 * digest check. Stages that overlap (a streamed restore) each count their
 * own time; `pass` is the wall time of the streamed part. */
typedef struct bk_restore_stats {
    double log_ms, fetch_ms, verify_ms, decrypt_ms, decompress_ms, pass_ms;
    double restore_ms, check_ms;
    uint64_t sealed, plain; /* bytes */
} bk_restore_stats;

/* The backup of `version` (0: the latest on chain): *log (the decrypted
 * state-backup-log, checked; the caller decrefs) and *plain (malloc'd,
 * *len bytes: the application's snapshot at the log's cut_offset). *ver
 * (may be NULL) gets the version read. Errors name the version and the
 * reason: no backup yet (BK_E_NOTFOUND), the log cannot be decrypted, the
 * object is missing, its digest or tag does not match (BK_E_INVAL). */
int bk_restore_fetch(bk_rpc *rpc, const uint8_t reg[20], const bk_eth_key *svc_key,
                     uint64_t version, uint64_t *ver, json_t **log, void **plain,
                     size_t *len, bk_err *e);
/* The same, and its stages (log, fetch, verify, decrypt, decompress) in
 * *st (may be NULL). */
int bk_restore_fetch_ex(bk_rpc *rpc, const uint8_t reg[20], const bk_eth_key *svc_key,
                        uint64_t version, uint64_t *ver, json_t **log, void **plain,
                        size_t *len, bk_restore_stats *st, bk_err *e);

/* ---- get-the-latest-state for a worker ---- */

#include "app.h"
#include "log/rlog.h"

typedef struct bk_recover_args {
    const br2k_app_ops *ops;
    br2k_app *app;        /* open; its state is replaced */
    const char *eth_rpc;  /* URLs, comma-separated: the next one when one fails */
    const char *registry; /* 0x address */
    const bk_eth_key *key;
    bk_rlog *log; /* to check that the log still covers a backup's cut */
} bk_recover_args;

typedef struct bk_recovered {
    uint64_t version;
    int64_t cut;            /* the state's LPI now */
    char record_digest[65]; /* of the record at cut (worker.pos) */
    char state_digest[65];  /* of the restored state, checked against the log */
    uint64_t bytes;         /* the state object's size */
    int64_t log_first;      /* the log's first offset when checked */
    int64_t epoch;          /* the leader's fencing token the backup ran under */
    bk_restore_stats stats; /* of the version restored */
} bk_recovered;

/* Restore the latest backup whose log decrypts, whose object reads back
 * and verifies, whose restored digest equals the log's state digest, and
 * whose cut the log still covers (first offset <= cut + 1); a version
 * that fails is logged and the previous one is tried while the log covers
 * it. BK_E_NOTFOUND when the chain holds no backup; otherwise BK_ERR with
 * one line naming the version and the reason. Never a guess: the state
 * is only replaced by a backup that passed every check. */
int bk_recover_latest(const bk_recover_args *a, bk_recovered *out, bk_err *e);

#endif
