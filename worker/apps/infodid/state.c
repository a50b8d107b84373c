/* state.c - InfoDID's state in memory (infodid_int.h): the records, the
 * two tables, and their canonical encoding (the body the digest hashes,
 * and the snapshot that carries it). */
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include "chain/request.h"
#include "infodid_int.h"

#define SNAP_MAGIC "BR2KIDS2"
#define SNAP_MAGIC_1 "BR2KIDS1" /* read, never written: ids without offsets */

/* ---- records ---- */

int idd_cmp_attr(const void *a, const void *b) {
    return strcmp(((const did_attr *)a)->k, ((const did_attr *)b)->k);
}

void idd_did_free(did_rec *d) {
    if (d == NULL)
        return;
    if (!d->one_block) {
        for (uint32_t i = 0; i < d->nattrs; i++) {
            free(d->attrs[i].k);
            free(d->attrs[i].v);
        }
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
    idd_map_init(&st->seqs);
    st->ring = NULL;
    st->rhead = st->rlen = st->rcap = 0;
    st->window = 0;
    st->active = 0;
    st->digest_ok = 0;
}

static void did_free_v(void *v) {
    idd_did_free(v);
}

static void id_free_v(void *v) {
    idd_id_free(v);
}

static void seq_free_v(void *v) {
    seq_rec *q = v;
    free(q->key);
    free(q);
}

void idd_state_release(idd_state *st) {
    idd_map_free(&st->dids, did_free_v);
    idd_map_free(&st->ids, id_free_v);
    idd_map_free(&st->seqs, seq_free_v);
    free(st->ring);
    st->ring = NULL;
    st->rhead = st->rlen = st->rcap = 0;
    st->active = 0;
    st->digest_ok = 0;
}

static id_rec *ring_at(const idd_state *st, size_t i) {
    return st->ring[(st->rhead + i) & (st->rcap - 1)];
}

/* Room for k more ids in the ring (a power of two; grows, never moves
 * the order). */
static int ring_room_for(idd_state *st, size_t k) {
    if (st->rlen + k <= st->rcap)
        return BK_OK;
    size_t cap = st->rcap ? st->rcap * 2 : 1024;
    while (cap < st->rlen + k)
        cap *= 2;
    id_rec **r = malloc(cap * sizeof(*r));
    if (r == NULL)
        return BK_ERR;
    for (size_t i = 0; i < st->rlen; i++)
        r[i] = ring_at(st, i);
    free(st->ring);
    st->ring = r;
    st->rcap = cap;
    st->rhead = 0;
    return BK_OK;
}

/* Add a request id not in the table, the newest in the ring. */
static int insert_id(idd_state *st, id_rec *ir, bk_err *e) {
    void *old = NULL;
    if (ring_room_for(st, 1) != BK_OK || idd_map_put(&st->ids, ir, &old) != BK_OK) {
        idd_id_free(ir);
        return bk_err_set(e, BK_E_NOMEM, "infodid: out of memory");
    }
    if (old != NULL) { /* put the one in the ring back (same key: no growth) */
        void *again = NULL;
        (void)idd_map_put(&st->ids, old, &again);
        bk_err_set(e, BK_E_STATE, "infodid: request id '%s' is already in the state",
                   ir->key);
        idd_id_free(ir);
        return BK_ERR;
    }
    st->ring[(st->rhead + st->rlen) & (st->rcap - 1)] = ir;
    st->rlen++;
    return BK_OK;
}

/* The client of a request id "<client>:<seq>" (up to its last ':') and
 * its seq; 0 when the key is not of that form. */
static int split_id(const char *key, char *client, size_t cap, int64_t *seq) {
    const char *c = strrchr(key, ':');
    if (c == NULL || (size_t)(c - key) >= cap || c[1] == '\0')
        return 0;
    char *end = NULL;
    long long v = strtoll(c + 1, &end, 10);
    if (*end != '\0' || v < 0)
        return 0;
    memcpy(client, key, (size_t)(c - key));
    client[c - key] = '\0';
    *seq = v;
    return 1;
}

/* Raise the client's dropped seq to `seq`. */
static int raise_seq(idd_map *m, const char *client, int64_t seq) {
    seq_rec *q = idd_map_get(m, client);
    if (q != NULL) {
        if (seq > q->seq)
            q->seq = seq;
        return BK_OK;
    }
    q = malloc(sizeof(*q));
    if (q != NULL)
        q->key = strdup(client);
    void *old = NULL;
    if (q == NULL || q->key == NULL || idd_map_put(m, q, &old) != BK_OK) {
        if (q != NULL)
            free(q->key);
        free(q);
        return BK_ERR;
    }
    q->seq = seq;
    return BK_OK;
}

/* Drop every request id first seen at or below `upto`, oldest first. */
static int drop_upto(idd_state *st, int64_t upto, bk_err *e) {
    while (st->rlen > 0 && ring_at(st, 0)->off <= upto) {
        id_rec *r = ring_at(st, 0);
        char client[BK_REQUEST_CLIENT_MAX + 24];
        int64_t seq = 0;
        /* the watermark first: out of memory leaves the id in place */
        if (split_id(r->key, client, sizeof(client), &seq) &&
            raise_seq(&st->seqs, client, seq) != BK_OK)
            return bk_err_set(e, BK_E_NOMEM, "infodid: out of memory");
        idd_map_del(&st->ids, r->key);
        idd_id_free(r);
        st->rhead = (st->rhead + 1) & (st->rcap - 1);
        st->rlen--;
    }
    return BK_OK;
}

int64_t idd_state_dropped_seq(const idd_state *st, const char *client) {
    const seq_rec *q = idd_map_get(&st->seqs, client);
    return q != NULL ? q->seq : -1;
}

int idd_state_commit(idd_state *st, int64_t offset, id_rec *ir, did_rec *dr, bk_err *e) {
    void *old = NULL;
    st->digest_ok = 0;
    if (ir != NULL && idd_map_get(&st->ids, ir->key) != NULL) {
        /* before the DID changes: a change is made whole or not at all */
        bk_err_set(e, BK_E_STATE, "infodid: request id '%s' is already in the state",
                   ir->key);
        idd_id_free(ir);
        idd_did_free(dr);
        return BK_ERR;
    }
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
        ir->off = offset;
        if (insert_id(st, ir, e) != BK_OK)
            return BK_ERR;
    }
    if (st->window > 0 && offset - st->window >= 0)
        return drop_upto(st, offset - st->window, e);
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
 * result, or the attribute array and the attributes' strings; one_block),
 * not several: a restore of a million identities makes millions fewer
 * calls to malloc. */
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
    /* the attributes' strings, checked and measured, then copied */
    idd_rd at = *r;
    size_t bytes = 0;
    for (uint32_t i = 0; i < 2 * n && !at.bad; i++) {
        size_t sn = 0;
        (void)idd_get_span(&at, i % 2 ? BK_INFODID_VALUE_MAX : BK_INFODID_KEY_MAX, &sn);
        bytes += sn + 1;
    }
    if (at.bad) {
        r->bad = 1;
        return NULL;
    }
    size_t na = n ? n : 1;
    did_rec *d = malloc(sizeof(*d) + na * sizeof(did_attr) + kn + 1 + bytes);
    if (d == NULL) {
        r->bad = 1;
        return NULL;
    }
    memset(d, 0, sizeof(*d));
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
    char *p = d->key + kn + 1;
    for (uint32_t i = 0; i < 2 * n; i++) {
        /* checked above */
        uint32_t sn = idd_get_u32(r);
        memcpy(p, idd_get_bytes(r, sn), sn);
        p[sn] = '\0';
        if (i % 2)
            d->attrs[i / 2].v = p;
        else
            d->attrs[i / 2].k = p;
        p += sn + 1;
    }
    d->nattrs = n;
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
    x->off = 0;
    return x;
}

/* The canonical body (infodid_int.h). Format 2 adds each request id's
 * offset and the clients' dropped seqs; the ids follow their ring. */
int idd_encode_body(const idd_state *st, idd_buf *b, bk_err *e) {
    void **d = idd_map_sorted(&st->dids);
    void **q = idd_map_sorted(&st->seqs);
    if (d == NULL || q == NULL) {
        free(d);
        free(q);
        return bk_err_set(e, BK_E_NOMEM, "infodid: out of memory");
    }
    idd_put_u64(b, st->dids.n);
    for (size_t i = 0; i < st->dids.n; i++)
        idd_put_did(b, d[i]);
    idd_put_u64(b, st->rlen);
    for (size_t i = 0; i < st->rlen; i++) {
        const id_rec *r = ring_at(st, i);
        idd_put_id(b, r);
        idd_put_u64(b, (uint64_t)r->off);
    }
    idd_put_u64(b, st->seqs.n);
    for (size_t i = 0; i < st->seqs.n; i++) {
        const seq_rec *x = q[i];
        idd_put_str(b, x->key);
        idd_put_u64(b, (uint64_t)x->seq);
    }
    free(d);
    free(q);
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

/* Is (off, key) of b after that of a? */
static int id_after(const id_rec *a, const id_rec *b) {
    return b->off > a->off || (b->off == a->off && strcmp(b->key, a->key) > 0);
}

/* Decode a body of format `fmt` (1 or 2) into an empty `st`: DIDs in
 * strictly ascending keys, ids in strictly ascending (offset, key) (format
 * 1: keys, all at offset 0), clients in strictly ascending names: a body
 * that decodes is the canonical encoding of its state. */
static int decode_body(idd_rd *r, idd_state *st, int fmt, bk_err *e) {
    /* records are decoded DECODE_AHEAD at a time, then put in their tables
     * together (idd_map_put_new fetches the slots ahead) */
    enum { DECODE_AHEAD = 1024 };
    void *v[DECODE_AHEAD];
    uint64_t h[DECODE_AHEAD];
    size_t nv = 0, stop = 0;
    uint64_t n = idd_get_u64(r);
    reserve(&st->dids, n, r, DID_MIN);
    const char *prev = NULL; /* the last key */
    for (uint64_t i = 0; i < n && !r->bad;) {
        did_rec *d = idd_get_did(r);
        i++;
        if (d != NULL && prev != NULL && strcmp(prev, d->key) >= 0) {
            idd_did_free(d);
            r->bad = 1;
        } else if (d != NULL) {
            prev = d->key;
            h[nv] = idd_map_hash(&st->dids, d->key);
            v[nv++] = d;
            if (!d->revoked)
                st->active++;
        }
        if (nv == DECODE_AHEAD || (nv > 0 && (i == n || r->bad))) {
            /* ascending keys: none is in the table */
            if (idd_map_put_new(&st->dids, v, h, nv, &stop) != BK_OK) {
                for (size_t j = stop; j < nv; j++)
                    idd_did_free(v[j]);
                r->bad = 1;
            }
            nv = 0;
        }
    }
    n = r->bad ? 0 : idd_get_u64(r);
    if (!r->bad)
        reserve(&st->ids, n, r, ID_MIN + (fmt == 2 ? 8 : 0));
    const id_rec *last = NULL;
    for (uint64_t i = 0; i < n && !r->bad;) {
        id_rec *x = idd_get_id(r);
        i++;
        if (x != NULL && fmt == 2) {
            uint64_t off = idd_get_u64(r);
            x->off = (int64_t)off;
            if (r->bad || off > (uint64_t)INT64_MAX)
                r->bad = 1;
        }
        if (x != NULL && (r->bad || (last != NULL && !id_after(last, x)))) {
            idd_id_free(x);
            r->bad = 1;
        } else if (x != NULL) {
            last = x;
            h[nv] = idd_map_hash(&st->ids, x->key);
            v[nv++] = x;
        }
        if (nv == DECODE_AHEAD || (nv > 0 && (i == n || r->bad))) {
            /* a key twice: corrupt (the ids before it are in) */
            stop = 0;
            if (ring_room_for(st, nv) != BK_OK ||
                idd_map_put_new(&st->ids, v, h, nv, &stop) != BK_OK) {
                for (size_t j = stop; j < nv; j++)
                    idd_id_free(v[j]);
                r->bad = 1;
            }
            for (size_t j = 0; j < stop; j++)
                st->ring[(st->rhead + st->rlen++) & (st->rcap - 1)] = v[j];
            nv = 0;
        }
    }
    n = r->bad || fmt == 1 ? 0 : idd_get_u64(r);
    prev = NULL;
    for (uint64_t i = 0; i < n && !r->bad; i++) {
        char *c = idd_get_str(r, BK_REQUEST_CLIENT_MAX + 24);
        uint64_t seq = idd_get_u64(r);
        if (c == NULL || r->bad || seq > (uint64_t)INT64_MAX ||
            (prev != NULL && strcmp(prev, c) >= 0) ||
            raise_seq(&st->seqs, c, (int64_t)seq) != BK_OK) {
            free(c);
            r->bad = 1;
            break;
        }
        prev = ((seq_rec *)idd_map_get(&st->seqs, c))->key;
        free(c);
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

int idd_snapshot_current(const uint8_t *p, size_t len) {
    return len >= 8 && memcmp(p, SNAP_MAGIC, 8) == 0;
}

/* The snapshot's format: 2, 1, or 0 (not an infodid snapshot). */
static int snap_format(const uint8_t *p, size_t len) {
    if (len < 8 + 8 + 16 + 32)
        return 0;
    return memcmp(p, SNAP_MAGIC, 8) == 0 ? 2 : memcmp(p, SNAP_MAGIC_1, 8) == 0 ? 1 : 0;
}

int idd_decode_snapshot_nosum(const uint8_t *p, size_t len, idd_state *st, int64_t *lpi,
                              bk_err *e) {
    int fmt = snap_format(p, len);
    if (fmt == 0)
        return bk_err_set(e, BK_E_INVAL, "infodid: not an infodid snapshot");
    idd_rd r = {p, len - 32, 8, 0};
    *lpi = (int64_t)idd_get_u64(&r);
    if (*lpi < -1)
        return bk_err_set(e, BK_E_INVAL, "infodid: snapshot lpi %" PRId64 " is invalid",
                          *lpi);
    if (decode_body(&r, st, fmt, e) != BK_OK)
        return BK_ERR;
    if (r.pos != r.len)
        return bk_err_set(e, BK_E_INVAL, "infodid: snapshot has trailing bytes");
    return BK_OK;
}

int idd_decode_snapshot(const uint8_t *p, size_t len, idd_state *st, int64_t *lpi,
                        bk_err *e) {
    uint8_t h[32];
    if (snap_format(p, len) == 0)
        return bk_err_set(e, BK_E_INVAL, "infodid: not an infodid snapshot");
    idd_sha256(p, len - 32, h);
    if (memcmp(h, p + len - 32, 32) != 0)
        return bk_err_set(e, BK_E_INVAL, "infodid: snapshot checksum mismatch");
    return idd_decode_snapshot_nosum(p, len, st, lpi, e);
}
