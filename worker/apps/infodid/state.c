/* state.c - InfoDID's state in memory (infodid_int.h): the records, the
 * two tables, and their canonical encoding (the body the digest hashes,
 * and the snapshot that carries it). */
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include "chain/request.h"
#include "infodid_int.h"

#define SNAP_MAGIC "BR2KIDS1"

/* ---- records ---- */

int idd_cmp_attr(const void *a, const void *b) {
    return strcmp(((const did_attr *)a)->k, ((const did_attr *)b)->k);
}

void idd_did_free(did_rec *d) {
    if (d == NULL)
        return;
    for (uint32_t i = 0; i < d->nattrs; i++) {
        free(d->attrs[i].k);
        free(d->attrs[i].v);
    }
    if (!d->one_block) {
        free(d->attrs);
        free(d->key);
    }
    free(d);
}

void idd_id_free(id_rec *r) {
    if (r == NULL)
        return;
    if (!r->one_block) {
        free(r->key);
        free(r->result);
    }
    free(r);
}

/* ---- the state ---- */

void idd_state_init(idd_state *st) {
    idd_map_init(&st->dids);
    idd_map_init(&st->ids);
    st->active = 0;
    st->digest_ok = 0;
}

static void did_free_v(void *v) {
    idd_did_free(v);
}

static void id_free_v(void *v) {
    idd_id_free(v);
}

void idd_state_release(idd_state *st) {
    idd_map_free(&st->dids, did_free_v);
    idd_map_free(&st->ids, id_free_v);
    st->active = 0;
    st->digest_ok = 0;
}

/* Commit one change: takes ownership of `ir` and `dr` (either may be NULL),
 * also on failure. */
int idd_state_commit(idd_state *st, id_rec *ir, did_rec *dr, bk_err *e) {
    void *old = NULL;
    st->digest_ok = 0;
    if (dr != NULL) {
        if (idd_map_put(&st->dids, dr, &old) != BK_OK) {
            idd_did_free(dr);
            idd_id_free(ir);
            return bk_err_set(e, BK_E_NOMEM, "infodid: out of memory");
        }
        did_rec *od = old;
        if (od != NULL && !od->revoked)
            st->active--;
        if (!dr->revoked)
            st->active++;
        idd_did_free(od);
    }
    if (ir != NULL) {
        if (idd_map_put(&st->ids, ir, &old) != BK_OK) {
            idd_id_free(ir);
            return bk_err_set(e, BK_E_NOMEM, "infodid: out of memory");
        }
        idd_id_free(old);
    }
    return BK_OK;
}

void idd_put_did(idd_buf *b, const did_rec *d) {
    idd_put_str(b, d->key);
    idd_put_bytes(b, d->ctrl, 20);
    idd_put_u8(b, d->revoked);
    idd_put_u64(b, (uint64_t)d->created_ts);
    idd_put_u64(b, (uint64_t)d->created_off);
    idd_put_u64(b, (uint64_t)d->updated_ts);
    idd_put_u64(b, (uint64_t)d->updated_off);
    idd_put_u32(b, d->nattrs);
    for (uint32_t i = 0; i < d->nattrs; i++) {
        idd_put_str(b, d->attrs[i].k);
        idd_put_str(b, d->attrs[i].v);
    }
}

void idd_put_id(idd_buf *b, const id_rec *r) {
    idd_put_str(b, r->key);
    idd_put_bytes(b, r->h, 32);
    idd_put_str(b, r->result);
}

/* Decoded records take one allocation (the record, its key, and the
 * result or the attribute array; one_block), not three: a restore of a
 * million identities makes millions fewer calls to malloc. */
did_rec *idd_get_did(idd_rd *r) {
    size_t kn = 0;
    const char *k = idd_get_span(r, BK_INFODID_DID_MAX, &kn);
    const uint8_t *c = idd_get_bytes(r, 20);
    uint8_t revoked = idd_get_u8(r);
    int64_t cts = (int64_t)idd_get_u64(r), coff = (int64_t)idd_get_u64(r);
    int64_t uts = (int64_t)idd_get_u64(r), uoff = (int64_t)idd_get_u64(r);
    uint32_t n = idd_get_u32(r);
    if (r->bad || n > BK_INFODID_ATTRS_MAX || revoked > 1) {
        r->bad = 1;
        return NULL;
    }
    size_t na = n ? n : 1;
    did_rec *d = calloc(1, sizeof(*d) + na * sizeof(did_attr) + kn + 1);
    if (d == NULL) {
        r->bad = 1;
        return NULL;
    }
    d->one_block = 1;
    d->attrs = (did_attr *)(d + 1);
    d->key = (char *)(d->attrs + na);
    memcpy(d->key, k, kn);
    d->key[kn] = '\0';
    memcpy(d->ctrl, c, 20);
    d->revoked = revoked;
    d->created_ts = cts;
    d->created_off = coff;
    d->updated_ts = uts;
    d->updated_off = uoff;
    for (uint32_t i = 0; i < n && !r->bad; i++) {
        d->attrs[i].k = idd_get_str(r, BK_INFODID_KEY_MAX);
        d->attrs[i].v = idd_get_str(r, BK_INFODID_VALUE_MAX);
        d->nattrs = i + 1;
    }
    if (r->bad) {
        idd_did_free(d);
        return NULL;
    }
    return d;
}

id_rec *idd_get_id(idd_rd *r) {
    size_t kn = 0, rn = 0;
    const char *k = idd_get_span(r, BK_REQUEST_CLIENT_MAX + 24, &kn);
    const uint8_t *h = idd_get_bytes(r, 32);
    const char *res = idd_get_span(r, 1u << 20, &rn);
    if (r->bad)
        return NULL;
    id_rec *x = malloc(sizeof(*x) + kn + 1 + rn + 1);
    if (x == NULL) {
        r->bad = 1;
        return NULL;
    }
    x->one_block = 1;
    x->key = (char *)(x + 1);
    memcpy(x->key, k, kn);
    x->key[kn] = '\0';
    x->result = x->key + kn + 1;
    memcpy(x->result, res, rn);
    x->result[rn] = '\0';
    memcpy(x->h, h, 32);
    return x;
}

/* The canonical body: every DID record, then every request id, each sorted
 * by key. The digest hashes it; snapshots and checkpoints carry it. */
int idd_encode_body(const idd_state *st, idd_buf *b, bk_err *e) {
    void **d = idd_map_sorted(&st->dids);
    void **r = idd_map_sorted(&st->ids);
    if (d == NULL || r == NULL) {
        free(d);
        free(r);
        return bk_err_set(e, BK_E_NOMEM, "infodid: out of memory");
    }
    idd_put_u64(b, st->dids.n);
    for (size_t i = 0; i < st->dids.n; i++)
        idd_put_did(b, d[i]);
    idd_put_u64(b, st->ids.n);
    for (size_t i = 0; i < st->ids.n; i++)
        idd_put_id(b, r[i]);
    free(d);
    free(r);
    if (b->oom)
        return bk_err_set(e, BK_E_NOMEM, "infodid: out of memory");
    return BK_OK;
}

/* The smallest encodings (empty strings, no attributes): a bound on the
 * count a body of a given size can hold, for reserving the tables. */
#define DID_MIN (4 + 20 + 1 + 4 * 8 + 4)
#define ID_MIN (4 + 32 + 4)

static void reserve(idd_map *m, uint64_t n, const idd_rd *r, size_t min) {
    uint64_t most = (uint64_t)(r->len - r->pos) / min;
    /* a failure only means the table grows as it goes */
    (void)idd_map_reserve(m, (size_t)(n < most ? n : most));
}

/* Decode a body into an empty `st` (strictly ascending keys). */
static int decode_body(idd_rd *r, idd_state *st, bk_err *e) {
    uint64_t n = idd_get_u64(r);
    reserve(&st->dids, n, r, DID_MIN);
    const char *prev = NULL; /* the last key, owned by the table */
    for (uint64_t i = 0; i < n && !r->bad; i++) {
        did_rec *d = idd_get_did(r);
        if (d != NULL && prev != NULL && strcmp(prev, d->key) >= 0) {
            idd_did_free(d);
            r->bad = 1;
        } else if (d != NULL) {
            prev = d->key;
            if (idd_state_commit(st, NULL, d, e) != BK_OK)
                r->bad = 1;
        }
    }
    prev = NULL;
    n = r->bad ? 0 : idd_get_u64(r);
    if (!r->bad)
        reserve(&st->ids, n, r, ID_MIN);
    for (uint64_t i = 0; i < n && !r->bad; i++) {
        id_rec *x = idd_get_id(r);
        if (x != NULL && prev != NULL && strcmp(prev, x->key) >= 0) {
            idd_id_free(x);
            r->bad = 1;
        } else if (x != NULL) {
            prev = x->key;
            if (idd_state_commit(st, x, NULL, e) != BK_OK)
                r->bad = 1;
        }
    }
    if (r->bad)
        return bk_err_set(e, BK_E_INVAL, "infodid: state encoding is corrupt");
    return BK_OK;
}

/* Snapshot: magic, LPI, body, SHA-256 of all that. */
int idd_encode_snapshot(const idd_state *st, int64_t lpi, idd_buf *b, bk_err *e) {
    idd_put_bytes(b, SNAP_MAGIC, 8);
    idd_put_u64(b, (uint64_t)lpi);
    if (idd_encode_body(st, b, e) != BK_OK)
        return BK_ERR;
    uint8_t h[32];
    if (b->oom)
        return bk_err_set(e, BK_E_NOMEM, "infodid: out of memory");
    idd_sha256(b->p, b->len, h);
    idd_put_bytes(b, h, 32);
    return b->oom ? bk_err_set(e, BK_E_NOMEM, "infodid: out of memory") : BK_OK;
}

int idd_snapshot_body(size_t len, size_t *from, size_t *to) {
    if (len < 8 + 8 + 16 + 32)
        return 0;
    *from = 16;
    *to = len - 32;
    return 1;
}

int idd_decode_snapshot_nosum(const uint8_t *p, size_t len, idd_state *st, int64_t *lpi,
                              bk_err *e) {
    if (len < 8 + 8 + 16 + 32 || memcmp(p, SNAP_MAGIC, 8) != 0)
        return bk_err_set(e, BK_E_INVAL, "infodid: not an infodid snapshot");
    idd_rd r = {p, len - 32, 8, 0};
    *lpi = (int64_t)idd_get_u64(&r);
    if (*lpi < -1)
        return bk_err_set(e, BK_E_INVAL, "infodid: snapshot lpi %" PRId64 " is invalid",
                          *lpi);
    if (decode_body(&r, st, e) != BK_OK)
        return BK_ERR;
    if (r.pos != r.len)
        return bk_err_set(e, BK_E_INVAL, "infodid: snapshot has trailing bytes");
    return BK_OK;
}

int idd_decode_snapshot(const uint8_t *p, size_t len, idd_state *st, int64_t *lpi,
                        bk_err *e) {
    uint8_t h[32];
    if (len < 8 + 8 + 16 + 32 || memcmp(p, SNAP_MAGIC, 8) != 0)
        return bk_err_set(e, BK_E_INVAL, "infodid: not an infodid snapshot");
    idd_sha256(p, len - 32, h);
    if (memcmp(h, p + len - 32, 32) != 0)
        return bk_err_set(e, BK_E_INVAL, "infodid: snapshot checksum mismatch");
    return idd_decode_snapshot_nosum(p, len, st, lpi, e);
}
