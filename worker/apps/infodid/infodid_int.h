/* infodid_int.h - what InfoDID's own files share (not an interface).
 *
 *   table.c     byte buffers and the hash table (table.h)
 *   state.c     the records, the state in memory, its canonical encoding
 *   infodid.c   the durable store (journal, checkpoint), open/close/sync,
 *               snapshot/restore/digest, and the plug-in table (br2k/app.h)
 *   apply.c     apply: the request's checks, the operations, the results
 *   external.c  the external effect (the host's ext_write, br2k/app.h)
 *
 * State: two hash tables in memory (DID -> record, request id -> first
 * result), a journal of redo entries (one per state change, CRC-framed,
 * written and fdatasync'ed by `sync`) and a checkpoint (the snapshot
 * encoding, written atomically). The journal is named after the checkpoint
 * generation it follows, so a restore or checkpoint never replays entries
 * of an older history. */
#ifndef IDD_INFODID_INT_H
#define IDD_INFODID_INT_H

#include <stddef.h>
#include <stdint.h>

#include "base/err.h"
#include "infodid_plugin.h"
#include "table.h"

typedef struct did_attr {
    char *k, *v;
} did_attr;

typedef struct did_rec {
    char *key; /* the DID; first member: the table reads it */
    uint8_t ctrl[20];
    uint8_t revoked;
    uint8_t one_block; /* key and attrs live in the record's own block */
    int64_t created_ts, created_off, updated_ts, updated_off;
    uint32_t nattrs;
    did_attr *attrs; /* sorted by name */
} did_rec;

typedef struct id_rec {
    char *key;     /* "<client>:<seq>"; first member: the table reads it */
    uint8_t h[32]; /* keccak256(canonical || sig): what was first seen */
    char *result;  /* the first result (repeat = false) */
    int one_block; /* key and result live in the record's own block (decoded) */
} id_rec;

typedef struct idd_state {
    idd_map dids, ids;
    int64_t active; /* DIDs not revoked */
    /* the digest (SHA-256 of the canonical body) while no change was made
     * since it was computed: set by a restore, which has the body's bytes,
     * or by a digest; cleared by every idd_state_commit */
    int digest_ok;
    uint8_t digest[32];
} idd_state;

struct br2k_app {
    char *dir;
    int lock_fd, jfd;
    uint64_t gen;   /* checkpoint generation; the journal is journal.<gen> */
    uint64_t jsize; /* bytes of the journal file written (valid entries) */
    idd_buf pend;   /* entries not written yet */
    int64_t lpi;    /* last applied offset */
    int64_t jlpi;   /* last offset in the journal (file + pend) */
    idd_state st;
    size_t limit;    /* request size limit */
    long hold_ms;    /* BR2K_TEST_HOLD_APPLY_MS */
    char *hold_file; /* BR2K_TEST_HOLD_APPLY_FILE (NULL: unset) */
    uint64_t ckpt_bytes;
};

/* ---- state.c ---- */

int idd_cmp_attr(const void *a, const void *b); /* qsort of did_attr by name */
void idd_did_free(did_rec *d);                  /* NULL is fine */
void idd_id_free(id_rec *r);                    /* NULL is fine */

void idd_state_init(idd_state *st);
void idd_state_release(idd_state *st);
/* Commit one change: takes ownership of `ir` and `dr` (either may be NULL),
 * also on failure. */
int idd_state_commit(idd_state *st, id_rec *ir, did_rec *dr, bk_err *e);

void idd_put_did(idd_buf *b, const did_rec *d);
void idd_put_id(idd_buf *b, const id_rec *r);
did_rec *idd_get_did(idd_rd *r); /* NULL and r->bad when malformed */
id_rec *idd_get_id(idd_rd *r);

/* The canonical body: every DID record, then every request id, each sorted
 * by key. The digest hashes it; snapshots and checkpoints carry it. */
int idd_encode_body(const idd_state *st, idd_buf *b, bk_err *e);
/* Snapshot: magic, LPI, body, SHA-256 of all that; decoded into an empty
 * `st`. */
int idd_encode_snapshot(const idd_state *st, int64_t lpi, idd_buf *b, bk_err *e);
int idd_decode_snapshot(const uint8_t *p, size_t len, idd_state *st, int64_t *lpi,
                        bk_err *e);
/* The same without checking the trailing SHA-256 (the caller checks it,
 * idd_snapshot_sums, in parallel) and without setting the digest. */
int idd_decode_snapshot_nosum(const uint8_t *p, size_t len, idd_state *st, int64_t *lpi,
                              bk_err *e);
/* Where the body of a snapshot of len bytes starts and ends (the digest is
 * the SHA-256 of p[*from..*to)); 0 when len is too short. */
int idd_snapshot_body(size_t len, size_t *from, size_t *to);

/* ---- infodid.c ---- */

/* Journal the change of the record at `offset`, then make it in memory.
 * Takes ownership of ir and dr. `is_register` arms the test hold
 * (BR2K_TEST_HOLD_APPLY_MS / _FILE). */
int idd_record_change(br2k_app *a, int64_t offset, id_rec *ir, did_rec *dr,
                      int is_register, bk_err *e);

/* ---- apply.c, external.c: the plug-in table's entries ---- */

int idd_apply(br2k_app *a, int64_t offset, const void *rec, size_t len, char **result,
              int *applied, bk_err *e);
int idd_external(br2k_app *a, const br2k_host *h, int64_t offset, const char *result,
                 br2k_app_error *e);
int idd_external_many(br2k_app *a, const br2k_host *h, const int64_t *offsets,
                      const char *const *results, size_t n, br2k_app_error *e);
int idd_republish(br2k_app *a, const br2k_host *h, br2k_app_error *e);

#endif
