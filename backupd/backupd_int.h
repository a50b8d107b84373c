/* backupd_int.h - what the files of br2k-backupd share (not for other
 * components): the daemon's handles, one backup in progress, and the
 * backup's objects (objects.c).
 *
 *   backupd.c   the steps (backupd.h), backup-run, the triggers, the loop
 *   objects.c   the store snapshot and the external state, read at the cut;
 *               sealing, storing and reading back an object */
#ifndef BK_BACKUPD_INT_H
#define BK_BACKUPD_INT_H

#include <jansson.h>
#include <stdint.h>

#include "backup/storage.h"
#include "backupd.h"
#include "base/err.h"
#include "chain/jsonrpc.h"
#include "log/rlog.h"
#include "redis/keys.h"
#include "redis/redis.h"

typedef struct bd {
    const bk_backupd_opts *o;
    bk_redis *r;
    bk_rpc *rpc;
    uint8_t reg[20];
    bk_storage *st;
    bk_rlog *log;
    uint8_t pub[65];
    char pubhex[131];
    int delete_warned; /* the log back end cannot delete: not asked again */
    char topic[256];   /* the log's topic (history.c opens a reader of its own) */
    /* backup-run of a version on chain whose finish failed (backupd.c): if
     * a Redis failover loses backup-run, or puts an older one in its place
     * (a promoted replica's), it is saved again from here and finished
     * before any new backup starts; unfinished_sha is its snapshot digest */
    char *unfinished;
    int64_t unfinished_version;
    char unfinished_sha[65];
    /* the last version this backupd finished, its cut and state digest: if
     * a Redis failover loses its finish (SV, backup-last), it is put back
     * before the next backup, which archives from that cut */
    int64_t done_version, done_cut;
    char done_sd[65];
} bd;

/* How the external state was read (objects.c): the key names under
 * prefix found before the hold (sorted), and what <prefix>applied said
 * then and at the cut ("" and has_* 0 when absent). Not saved. */
typedef struct bd_ext {
    char prefix[BK_KEY_MAX];
    char **names;
    size_t n;
    int has_found, has_cut;
    char applied_found[32], applied_cut[32];
    /* what bd_external_read read at the cut, until bd_external_build: the
     * script's reply, and the pieces its large hashes were read in */
    redisReply *rep, **keep;
    size_t nkeep;
    double ms_script, ms_pieces; /* how long each took */
    long long fields;            /* hash fields (a key of another kind: 1), counted at
                                    discover up to more than --view-fields */
} bd_ext;

/* One backup in progress (also saved as backup-run). store holds the
 * store snapshot read at the cut (step 2) until step 4 stores it, then its
 * meta in the log; ext_data the same for the external state, but it is
 * never saved in backup-run (it may be large): external, its meta, is. */
typedef struct bd_run {
    int64_t version, epoch, cut, prev_cut, start_ms, first_offset, held_ms;
    int ext_view; /* the external state comes from the leader's view (step 2) */
    char leader[BK_ID_MAX + 1], step[16], reason[32];
    json_t *members, *alive, *report, *store; /* owned */
    json_t *ext_data, *external;              /* owned */
    json_t *archive;                          /* owned: the history archive's meta */
    bd_ext ext;                               /* owned */
} bd_run;

/* ---- objects.c ---- */

/* The store snapshot: the service's Redis keys (versions, LPIs, members,
 * epoch, SSI, leader), read while the leader holds at the cut. NULL with e
 * set on failure. */
json_t *bd_store_snapshot(bd *d, const bd_run *u, bk_err *e);

/* The external state (backuplog.h, format BK_EXTERNAL_FORMAT): every key
 * under br2k:{svc}:ext:, in three calls, so that the keyspace is never
 * scanned while the leader holds (SCAN walks every key of Redis, results
 * included: about 1 s per million):
 *   bd_external_discover, before the hold: <prefix>applied, then the key
 *     names (SCAN) into u->ext;
 *   bd_external_read, at the cut: one script reads the epoch, the
 *     phase, <prefix>applied and those keys; the phase must still say the
 *     leader of u->epoch holds at u->cut ("held E C"), so that nothing was
 *     written since it committed everything up to C (only the leader of
 *     the current epoch writes there: I2); hashes of more than 1000 fields
 *     are read in pieces, then the head again (unchanged). The replies stay
 *     in u->ext; BK_ERR with e set (BK_E_STATE when the leader no longer
 *     holds);
 *   bd_external_build, after the leader resumed: the content built from
 *     those replies (freed), or NULL with e set. Building a million-field
 *     JSON object takes seconds, the leader need not hold for it;
 *   bd_external_confirm, after the hold: no key was missed. Either
 *     <prefix>applied did not change between the first two calls (every
 *     external write records its offset there in the same atomic step: I5,
 *     so nothing was written or created), or a new SCAN finds no key
 *     outside those read; else BK_E_STATE (the backup is given up; the next
 *     one finds the new key before its hold). A key created and deleted
 *     again between the listing and this check, while the offsets moved,
 *     goes unseen: InfoDID never deletes one. */
int bd_external_discover(bd *d, bd_run *u, bk_err *e);
int bd_external_read(bd *d, bd_run *u, bk_err *e);
json_t *bd_external_build(bd *d, bd_run *u, bk_err *e);
int bd_external_confirm(bd *d, bd_run *u, bk_err *e);
void bd_ext_free(bd_ext *x);

/* Seal content (compact JSON, sorted keys), store it as
 * v<version>-<kind>-<sha256>, read it back and check its size and
 * SHA-256 (bd_read_back): *meta gets the object's part of the log, with
 * type, owner and form. what names the object in messages. */
int bd_put_object(bd *d, const bd_run *u, const char *kind, const char *what,
                  const char *type, const json_t *content, json_t **meta, bk_err *e);

/* Read obj back whole: BK_OK when it is size bytes with SHA-256 sha;
 * else "cannot read the <what> back: storage: ..." or "<what> object 'o'
 * reads back as N bytes with sha256 X, expected ..." (BK_E_STATE). */
int bd_read_back(bd *d, const char *what, const char *obj, const char *sha, int64_t size,
                 bk_err *e);

/* ---- history.c ---- */

/* Step 4b: read the records prev_cut + 1 .. cut from the log (a gap is
 * recorded and warned about), seal and store them with the chain link
 * (archive.h), read back: u->archive gets the meta for the log. */
int bd_archive_build(bd *d, bd_run *u, bk_err *e);

/* BK_OK when the chain holds u->archive's digest for u->version (then the
 * state digest is noted for the next archive); else why not. */
int bd_archive_on_chain(bd *d, const bd_run *u, bk_err *e);
/* Record in Redis the state digest of `version` (sd; NULL or "": nothing),
 * which the next archive names. */
void bd_history_note(bd *d, int64_t version, const char *sd);

/* --archive-keep: record pruneArchives on chain, then delete the archives
 * of the versions it covers. Warns, never fails a backup. */
void bd_archive_prune(bd *d, int64_t latest, int64_t epoch);

#endif
