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
    uint8_t one_block; /* key, attrs and their strings live in the record's own block */
    int64_t created_ts, created_off, updated_ts, updated_off;
    uint32_t nattrs;
    did_attr *attrs; /* sorted by name */
} did_rec;

typedef struct id_rec {
    char *key;     /* "<client>:<seq>"; first member: the table reads it */
    uint8_t h[32]; /* keccak256(canonical || sig): what was first seen */
    char *result;  /* the first result (repeat = false) */
    int64_t off;   /* the offset of its first record (0: a state of format 1) */
    int one_block; /* key and result live in the record's own block (decoded) */
} id_rec;

/* A client's forgotten request ids: every id of it at or below `seq` that
 * is no longer in the table was dropped by the window (its retry is
 * `expired`, never applied again). */
typedef struct seq_rec {
    char *key; /* the client; first member: the table reads it */
    int64_t seq;
} seq_rec;

typedef struct idd_state {
    idd_map dids, ids;
    /* The request ids in the order they were first seen (ascending
     * (off, key)): a ring, oldest at `rhead`; the window drops from there. */
    id_rec **ring;
    size_t rhead, rlen, rcap;
    idd_map seqs;   /* client -> seq_rec: the highest seq the window dropped */
    int64_t window; /* request ids are kept for this many offsets (0: always) */
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
/* Commit the change of the record at `offset`: takes ownership of `ir` and
 * `dr` (either may be NULL), also on failure. `ir` is a request id not in
 * the table (BK_E_STATE otherwise); it counts as first seen at `offset`.
 * Then the window: every request id first seen at or below
 * offset - window is dropped (its client's seq_rec raised). The same
 * changes at the same offsets give the same state on every replica: the
 * window is a function of the log, like everything else in the state. */
int idd_state_commit(idd_state *st, int64_t offset, id_rec *ir, did_rec *dr, bk_err *e);
/* The highest seq of `client` the window dropped; -1: none. */
int64_t idd_state_dropped_seq(const idd_state *st, const char *client);

void idd_put_did(idd_buf *b, const did_rec *d);
void idd_put_id(idd_buf *b, const id_rec *r);
did_rec *idd_get_did(idd_rd *r); /* NULL and r->bad when malformed */
id_rec *idd_get_id(idd_rd *r);

/* The canonical body: every DID record sorted by key, then every request
 * id in the order first seen (ascending (offset, key)), then every client
 * with dropped ids sorted by name. The digest hashes it; snapshots and
 * checkpoints carry it. */
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
/* Is it a snapshot of the current format (its body is the canonical body
 * the digest hashes)? 0 for format 1 (read, not written: its request ids
 * carry no offset and count as first seen at offset 0). */
int idd_snapshot_current(const uint8_t *p, size_t len);

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
