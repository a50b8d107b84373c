/* infodid.c - see infodid.h and INFODID.md.
 *
 * State: two hash tables in memory (DID -> record, request id -> first
 * result), a journal of redo entries (one per state change, CRC-framed,
 * written and fdatasync'ed by `sync`) and a checkpoint (the snapshot
 * encoding, written atomically). The journal is named after the checkpoint
 * generation it follows, so a restore or checkpoint never replays entries
 * of an older history. */
#include "infodid.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <jansson.h>
#include <openssl/evp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "chain/ethkey.h"
#include "base/fileio.h"
#include "base/hex.h"
#include "chain/keccak.h"
#include "base/log.h"
#include "chain/request.h"

const char *const bk_infodid_op_names[] = {"register", "update", "revoke", NULL};

#define SNAP_MAGIC "BR2KIDS1"
#define CKPT_MAGIC "BR2KIDC1"
#define ENTRY_MAX (64u * 1024 * 1024)
#define KIND_CHANGE 1
#define KIND_LPI 2
#define HAS_ID 1
#define HAS_DID 2

/* ---- byte buffers (little-endian encoding) ---- */

typedef struct buf {
    uint8_t *p;
    size_t len, cap;
    int oom;
} buf;

static void buf_need(buf *b, size_t n) {
    if (b->oom || b->len + n <= b->cap)
        return;
    size_t cap = b->cap ? b->cap : 256;
    while (cap < b->len + n)
        cap *= 2;
    uint8_t *p = realloc(b->p, cap);
    if (p == NULL) {
        b->oom = 1;
        return;
    }
    b->p = p;
    b->cap = cap;
}

static void put_bytes(buf *b, const void *d, size_t n) {
    buf_need(b, n);
    if (b->oom)
        return;
    if (n > 0)
        memcpy(b->p + b->len, d, n);
    b->len += n;
}

static void put_u64(buf *b, uint64_t v) {
    uint8_t x[8];
    for (int i = 0; i < 8; i++)
        x[i] = (uint8_t)(v >> (8 * i));
    put_bytes(b, x, 8);
}

static void put_u32(buf *b, uint32_t v) {
    uint8_t x[4];
    for (int i = 0; i < 4; i++)
        x[i] = (uint8_t)(v >> (8 * i));
    put_bytes(b, x, 4);
}

static void put_u8(buf *b, uint8_t v) {
    put_bytes(b, &v, 1);
}

static void put_str(buf *b, const char *s) {
    size_t n = strlen(s);
    put_u32(b, (uint32_t)n);
    put_bytes(b, s, n);
}

static void buf_free(buf *b) {
    free(b->p);
    memset(b, 0, sizeof(*b));
}

typedef struct rd {
    const uint8_t *p;
    size_t len, pos;
    int bad;
} rd;

static const uint8_t *get_bytes(rd *r, size_t n) {
    if (r->bad || r->len - r->pos < n) {
        r->bad = 1;
        return NULL;
    }
    const uint8_t *p = r->p + r->pos;
    r->pos += n;
    return p;
}

static uint64_t get_u64(rd *r) {
    const uint8_t *x = get_bytes(r, 8);
    uint64_t v = 0;
    for (int i = 0; x != NULL && i < 8; i++)
        v |= (uint64_t)x[i] << (8 * i);
    return v;
}

static uint32_t get_u32(rd *r) {
    const uint8_t *x = get_bytes(r, 4);
    uint32_t v = 0;
    for (int i = 0; x != NULL && i < 4; i++)
        v |= (uint32_t)x[i] << (8 * i);
    return v;
}

static uint8_t get_u8(rd *r) {
    const uint8_t *x = get_bytes(r, 1);
    return x ? x[0] : 0;
}

/* A malloc'd copy of a length-prefixed string with no NUL inside. */
static char *get_str(rd *r, size_t max) {
    uint32_t n = get_u32(r);
    if (n > max) {
        r->bad = 1;
        return NULL;
    }
    const uint8_t *s = get_bytes(r, n);
    if (s == NULL || memchr(s, 0, n) != NULL) {
        r->bad = 1;
        return NULL;
    }
    char *c = malloc((size_t)n + 1);
    if (c == NULL) {
        r->bad = 1;
        return NULL;
    }
    memcpy(c, s, n);
    c[n] = '\0';
    return c;
}

static uint32_t crc32_ieee(const uint8_t *p, size_t n) {
    static uint32_t table[256];
    static int ready;
    if (!ready) {
        for (uint32_t i = 0; i < 256; i++) {
            uint32_t c = i;
            for (int k = 0; k < 8; k++)
                c = (c & 1) ? 0xEDB88320u ^ (c >> 1) : c >> 1;
            table[i] = c;
        }
        ready = 1;
    }
    uint32_t c = 0xFFFFFFFFu;
    for (size_t i = 0; i < n; i++)
        c = table[(c ^ p[i]) & 0xFF] ^ (c >> 8);
    return c ^ 0xFFFFFFFFu;
}

static void sha256(const void *p, size_t n, uint8_t out[32]) {
    unsigned int olen = 32;
    EVP_Digest(p, n, out, &olen, EVP_sha256(), NULL);
}

/* ---- records and a string-keyed hash table ---- */

typedef struct attr {
    char *k, *v;
} attr;

typedef struct did_rec {
    char *key; /* the DID; first member: the table reads it */
    uint8_t ctrl[20];
    uint8_t revoked;
    int64_t created_ts, created_off, updated_ts, updated_off;
    uint32_t nattrs;
    attr *attrs; /* sorted by name */
} did_rec;

typedef struct id_rec {
    char *key;     /* "<client>:<seq>" */
    uint8_t h[32]; /* keccak256(canonical || sig): what was first seen */
    char *result;  /* the first result (repeat = false) */
} id_rec;

static int cmp_attr(const void *a, const void *b) {
    return strcmp(((const attr *)a)->k, ((const attr *)b)->k);
}

static void did_free(did_rec *d) {
    if (d == NULL)
        return;
    for (uint32_t i = 0; i < d->nattrs; i++) {
        free(d->attrs[i].k);
        free(d->attrs[i].v);
    }
    free(d->attrs);
    free(d->key);
    free(d);
}

static void id_free(id_rec *r) {
    if (r == NULL)
        return;
    free(r->key);
    free(r->result);
    free(r);
}

typedef struct slot {
    uint64_t h;
    void *v; /* NULL: empty */
} slot;

typedef struct smap {
    slot *s;
    size_t cap, n;
    uint64_t seed;
} smap;

static const char *key_of(const void *v) {
    return *(char *const *)v;
}

static uint64_t hash_str(uint64_t seed, const char *s) {
    uint64_t h = 0xcbf29ce484222325ULL ^ seed;
    for (; *s; s++)
        h = (h ^ (uint8_t)*s) * 0x100000001b3ULL;
    h ^= h >> 33;
    h *= 0xff51afd7ed558ccdULL;
    h ^= h >> 33;
    return h;
}

static void smap_init(smap *m) {
    memset(m, 0, sizeof(*m));
    if (getrandom(&m->seed, sizeof(m->seed), GRND_NONBLOCK) != (ssize_t)sizeof(m->seed))
        m->seed = (uint64_t)(uintptr_t)m ^ (uint64_t)time(NULL);
}

static void *smap_get(const smap *m, const char *k) {
    if (m->cap == 0)
        return NULL;
    uint64_t h = hash_str(m->seed, k);
    for (size_t i = h & (m->cap - 1);; i = (i + 1) & (m->cap - 1)) {
        if (m->s[i].v == NULL)
            return NULL;
        if (m->s[i].h == h && strcmp(key_of(m->s[i].v), k) == 0)
            return m->s[i].v;
    }
}

static int smap_grow(smap *m) {
    size_t cap = m->cap ? m->cap * 2 : 64;
    slot *s = calloc(cap, sizeof(*s));
    if (s == NULL)
        return BK_ERR;
    for (size_t j = 0; j < m->cap; j++) {
        if (m->s[j].v == NULL)
            continue;
        size_t i = m->s[j].h & (cap - 1);
        while (s[i].v != NULL)
            i = (i + 1) & (cap - 1);
        s[i] = m->s[j];
    }
    free(m->s);
    m->s = s;
    m->cap = cap;
    return BK_OK;
}

/* Insert or replace; *old gets the replaced value (NULL if none). */
static int smap_put(smap *m, void *v, void **old) {
    *old = NULL;
    if ((m->n + 1) * 10 > m->cap * 7 && smap_grow(m) != BK_OK)
        return BK_ERR;
    const char *k = key_of(v);
    uint64_t h = hash_str(m->seed, k);
    size_t i = h & (m->cap - 1);
    while (m->s[i].v != NULL) {
        if (m->s[i].h == h && strcmp(key_of(m->s[i].v), k) == 0) {
            *old = m->s[i].v;
            m->s[i].v = v;
            return BK_OK;
        }
        i = (i + 1) & (m->cap - 1);
    }
    m->s[i].h = h;
    m->s[i].v = v;
    m->n++;
    return BK_OK;
}

static int cmp_key(const void *a, const void *b) {
    return strcmp(key_of(*(void *const *)a), key_of(*(void *const *)b));
}

/* The values sorted by key (malloc'd; NULL only when out of memory and
 * the table is not empty). */
static void **smap_sorted(const smap *m) {
    void **v = malloc((m->n ? m->n : 1) * sizeof(*v));
    if (v == NULL)
        return NULL;
    size_t j = 0;
    for (size_t i = 0; i < m->cap; i++)
        if (m->s[i].v != NULL)
            v[j++] = m->s[i].v;
    qsort(v, j, sizeof(*v), cmp_key);
    return v;
}

/* ---- the state ---- */

typedef struct state {
    smap dids, ids;
    int64_t active;
} state;

static void state_init(state *st) {
    smap_init(&st->dids);
    smap_init(&st->ids);
    st->active = 0;
}

static void state_release(state *st) {
    for (size_t i = 0; i < st->dids.cap; i++)
        did_free(st->dids.s[i].v);
    for (size_t i = 0; i < st->ids.cap; i++)
        id_free(st->ids.s[i].v);
    free(st->dids.s);
    free(st->ids.s);
    memset(st, 0, sizeof(*st));
}

/* Commit one change: takes ownership of `ir` and `dr` (either may be NULL),
 * also on failure. */
static int state_commit(state *st, id_rec *ir, did_rec *dr, bk_err *e) {
    void *old = NULL;
    if (dr != NULL) {
        if (smap_put(&st->dids, dr, &old) != BK_OK) {
            did_free(dr);
            id_free(ir);
            return bk_err_set(e, BK_E_NOMEM, "infodid: out of memory");
        }
        did_rec *od = old;
        if (od != NULL && !od->revoked)
            st->active--;
        if (!dr->revoked)
            st->active++;
        did_free(od);
    }
    if (ir != NULL) {
        if (smap_put(&st->ids, ir, &old) != BK_OK) {
            id_free(ir);
            return bk_err_set(e, BK_E_NOMEM, "infodid: out of memory");
        }
        id_free(old);
    }
    return BK_OK;
}

static void put_did(buf *b, const did_rec *d) {
    put_str(b, d->key);
    put_bytes(b, d->ctrl, 20);
    put_u8(b, d->revoked);
    put_u64(b, (uint64_t)d->created_ts);
    put_u64(b, (uint64_t)d->created_off);
    put_u64(b, (uint64_t)d->updated_ts);
    put_u64(b, (uint64_t)d->updated_off);
    put_u32(b, d->nattrs);
    for (uint32_t i = 0; i < d->nattrs; i++) {
        put_str(b, d->attrs[i].k);
        put_str(b, d->attrs[i].v);
    }
}

static void put_id(buf *b, const id_rec *r) {
    put_str(b, r->key);
    put_bytes(b, r->h, 32);
    put_str(b, r->result);
}

static did_rec *get_did(rd *r) {
    did_rec *d = calloc(1, sizeof(*d));
    if (d == NULL) {
        r->bad = 1;
        return NULL;
    }
    d->key = get_str(r, BK_INFODID_DID_MAX);
    const uint8_t *c = get_bytes(r, 20);
    if (c != NULL)
        memcpy(d->ctrl, c, 20);
    d->revoked = get_u8(r);
    d->created_ts = (int64_t)get_u64(r);
    d->created_off = (int64_t)get_u64(r);
    d->updated_ts = (int64_t)get_u64(r);
    d->updated_off = (int64_t)get_u64(r);
    uint32_t n = get_u32(r);
    if (r->bad || n > BK_INFODID_ATTRS_MAX || d->revoked > 1) {
        r->bad = 1;
        did_free(d);
        return NULL;
    }
    d->attrs = calloc(n ? n : 1, sizeof(*d->attrs));
    if (d->attrs == NULL) {
        r->bad = 1;
        did_free(d);
        return NULL;
    }
    for (uint32_t i = 0; i < n && !r->bad; i++) {
        d->attrs[i].k = get_str(r, BK_INFODID_KEY_MAX);
        d->attrs[i].v = get_str(r, BK_INFODID_VALUE_MAX);
        d->nattrs = i + 1;
    }
    if (r->bad) {
        did_free(d);
        return NULL;
    }
    return d;
}

static id_rec *get_id(rd *r) {
    id_rec *x = calloc(1, sizeof(*x));
    if (x == NULL) {
        r->bad = 1;
        return NULL;
    }
    x->key = get_str(r, BK_REQUEST_CLIENT_MAX + 24);
    const uint8_t *h = get_bytes(r, 32);
    if (h != NULL)
        memcpy(x->h, h, 32);
    x->result = get_str(r, 1u << 20);
    if (r->bad) {
        id_free(x);
        return NULL;
    }
    return x;
}

/* The canonical body: every DID record, then every request id, each sorted
 * by key. The digest hashes it; snapshots and checkpoints carry it. */
static int encode_body(const state *st, buf *b, bk_err *e) {
    void **d = smap_sorted(&st->dids);
    void **r = smap_sorted(&st->ids);
    if (d == NULL || r == NULL) {
        free(d);
        free(r);
        return bk_err_set(e, BK_E_NOMEM, "infodid: out of memory");
    }
    put_u64(b, st->dids.n);
    for (size_t i = 0; i < st->dids.n; i++)
        put_did(b, d[i]);
    put_u64(b, st->ids.n);
    for (size_t i = 0; i < st->ids.n; i++)
        put_id(b, r[i]);
    free(d);
    free(r);
    if (b->oom)
        return bk_err_set(e, BK_E_NOMEM, "infodid: out of memory");
    return BK_OK;
}

/* Decode a body into an empty `st` (strictly ascending keys). */
static int decode_body(rd *r, state *st, bk_err *e) {
    uint64_t n = get_u64(r);
    const char *prev = NULL; /* the last key, owned by the table */
    for (uint64_t i = 0; i < n && !r->bad; i++) {
        did_rec *d = get_did(r);
        if (d != NULL && prev != NULL && strcmp(prev, d->key) >= 0) {
            did_free(d);
            r->bad = 1;
        } else if (d != NULL) {
            prev = d->key;
            if (state_commit(st, NULL, d, e) != BK_OK)
                r->bad = 1;
        }
    }
    prev = NULL;
    n = r->bad ? 0 : get_u64(r);
    for (uint64_t i = 0; i < n && !r->bad; i++) {
        id_rec *x = get_id(r);
        if (x != NULL && prev != NULL && strcmp(prev, x->key) >= 0) {
            id_free(x);
            r->bad = 1;
        } else if (x != NULL) {
            prev = x->key;
            if (state_commit(st, x, NULL, e) != BK_OK)
                r->bad = 1;
        }
    }
    if (r->bad)
        return bk_err_set(e, BK_E_INVAL, "infodid: state encoding is corrupt");
    return BK_OK;
}

/* Snapshot: magic, LPI, body, SHA-256 of all that. */
static int encode_snapshot(const state *st, int64_t lpi, buf *b, bk_err *e) {
    put_bytes(b, SNAP_MAGIC, 8);
    put_u64(b, (uint64_t)lpi);
    if (encode_body(st, b, e) != BK_OK)
        return BK_ERR;
    uint8_t h[32];
    if (b->oom)
        return bk_err_set(e, BK_E_NOMEM, "infodid: out of memory");
    sha256(b->p, b->len, h);
    put_bytes(b, h, 32);
    return b->oom ? bk_err_set(e, BK_E_NOMEM, "infodid: out of memory") : BK_OK;
}

static int decode_snapshot(const uint8_t *p, size_t len, state *st, int64_t *lpi,
                           bk_err *e) {
    uint8_t h[32];
    if (len < 8 + 8 + 16 + 32 || memcmp(p, SNAP_MAGIC, 8) != 0)
        return bk_err_set(e, BK_E_INVAL, "infodid: not an infodid snapshot");
    sha256(p, len - 32, h);
    if (memcmp(h, p + len - 32, 32) != 0)
        return bk_err_set(e, BK_E_INVAL, "infodid: snapshot checksum mismatch");
    rd r = {p, len - 32, 8, 0};
    *lpi = (int64_t)get_u64(&r);
    if (*lpi < -1)
        return bk_err_set(e, BK_E_INVAL, "infodid: snapshot lpi %" PRId64 " is invalid",
                          *lpi);
    if (decode_body(&r, st, e) != BK_OK)
        return BK_ERR;
    if (r.pos != r.len)
        return bk_err_set(e, BK_E_INVAL, "infodid: snapshot has trailing bytes");
    return BK_OK;
}

/* ---- the application ---- */

struct br2k_app {
    char *dir;
    int lock_fd, jfd;
    uint64_t gen;   /* checkpoint generation; the journal is journal.<gen> */
    uint64_t jsize; /* bytes of the journal file written (valid entries) */
    buf pend;       /* entries not written yet */
    int64_t lpi;    /* last applied offset */
    int64_t jlpi;   /* last offset in the journal (file + pend) */
    state st;
    size_t limit;    /* request size limit */
    long hold_ms;    /* BR2K_TEST_HOLD_APPLY_MS */
    char *hold_file; /* BR2K_TEST_HOLD_APPLY_FILE (NULL: unset) */
    uint64_t ckpt_bytes;
    char lua_sha[41];
};

static char *path_of(const br2k_app *a, const char *name) {
    size_t n = strlen(a->dir) + strlen(name) + 2;
    char *p = malloc(n);
    if (p != NULL)
        snprintf(p, n, "%s/%s", a->dir, name);
    return p;
}

static char *journal_path(const br2k_app *a, uint64_t gen) {
    char name[40];
    snprintf(name, sizeof(name), "journal.%" PRIu64, gen);
    return path_of(a, name);
}

static int pwrite_all(int fd, const uint8_t *p, size_t n, uint64_t off) {
    while (n > 0) {
        ssize_t w = pwrite(fd, p, n, (off_t)off);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0)
            return BK_ERR;
        p += w;
        n -= (size_t)w;
        off += (uint64_t)w;
    }
    return BK_OK;
}

static int read_file(const char *path, uint8_t **out, size_t *len, bk_err *e) {
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return bk_err_set(e, errno == ENOENT ? BK_E_NOTFOUND : BK_E_IO,
                          "cannot open '%s': %s", path, strerror(errno));
    struct stat sb;
    if (fstat(fd, &sb) != 0) {
        close(fd);
        return bk_err_set(e, BK_E_IO, "cannot stat '%s': %s", path, strerror(errno));
    }
    size_t n = (size_t)sb.st_size, got = 0;
    uint8_t *p = malloc(n ? n : 1);
    if (p == NULL) {
        close(fd);
        return bk_err_set(e, BK_E_NOMEM, "cannot read '%s': out of memory", path);
    }
    while (got < n) {
        ssize_t r = read(fd, p + got, n - got);
        if (r < 0 && errno == EINTR)
            continue;
        if (r <= 0) {
            int err = r < 0 ? errno : EIO;
            free(p);
            close(fd);
            return bk_err_set(e, BK_E_IO, "cannot read '%s': %s", path, strerror(err));
        }
        got += (size_t)r;
    }
    close(fd);
    *out = p;
    *len = n;
    return BK_OK;
}

/* Write a file of the state directory atomically (common/base/fileio.h). */
static int write_atomic(br2k_app *a, const char *name, const uint8_t *p, size_t n,
                        bk_err *e) {
    char *dst = path_of(a, name);
    if (dst == NULL)
        return bk_err_set(e, BK_E_NOMEM, "infodid: out of memory");
    int rc = bk_file_replace(dst, p, n, e);
    free(dst);
    return rc;
}

/* Start journal.<gen> empty (replacing any), remove the previous one. */
static int journal_start(br2k_app *a, uint64_t gen, bk_err *e) {
    char *p = journal_path(a, gen);
    if (p == NULL)
        return bk_err_set(e, BK_E_NOMEM, "infodid: out of memory");
    int fd = open(p, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd < 0) {
        bk_err_set(e, BK_E_IO, "cannot create '%s': %s", p, strerror(errno));
        free(p);
        return BK_ERR;
    }
    free(p);
    if (bk_fsync_dir(a->dir, e) != BK_OK) {
        close(fd);
        return BK_ERR;
    }
    if (a->jfd >= 0)
        close(a->jfd);
    if (a->gen != gen) {
        char *old = journal_path(a, a->gen);
        if (old != NULL)
            unlink(old);
        free(old);
    }
    a->jfd = fd;
    a->gen = gen;
    a->jsize = 0;
    a->pend.len = 0;
    a->jlpi = a->lpi;
    return BK_OK;
}

/* Checkpoint file: magic, generation, snapshot length, snapshot, SHA-256. */
static int write_checkpoint(br2k_app *a, const uint8_t *snap, size_t slen, bk_err *e) {
    buf b = {0};
    put_bytes(&b, CKPT_MAGIC, 8);
    put_u64(&b, a->gen + 1);
    put_u64(&b, slen);
    put_bytes(&b, snap, slen);
    uint8_t h[32];
    if (!b.oom)
        sha256(b.p, b.len, h);
    put_bytes(&b, h, 32);
    if (b.oom) {
        buf_free(&b);
        return bk_err_set(e, BK_E_NOMEM, "infodid: out of memory");
    }
    int rc = write_atomic(a, "checkpoint", b.p, b.len, e);
    buf_free(&b);
    if (rc != BK_OK)
        return BK_ERR;
    return journal_start(a, a->gen + 1, e);
}

int bk_infodid_checkpoint(br2k_app *a, bk_err *e) {
    buf s = {0};
    if (encode_snapshot(&a->st, a->lpi, &s, e) != BK_OK) {
        buf_free(&s);
        return BK_ERR;
    }
    int rc = write_checkpoint(a, s.p, s.len, e);
    buf_free(&s);
    return rc;
}

int64_t bk_infodid_active(const br2k_app *a) {
    return a->st.active;
}

int bk_infodid_each(const br2k_app *a, int (*did_cb)(const bk_infodid_did *, void *),
                    int (*id_cb)(const bk_infodid_reqid *, void *), void *opaque,
                    bk_err *e) {
    void **v = smap_sorted(&a->st.dids);
    if (v == NULL)
        return bk_err_set(e, BK_E_NOMEM, "infodid: out of memory");
    int stop = 0;
    for (size_t i = 0; did_cb != NULL && !stop && i < a->st.dids.n; i++) {
        const did_rec *d = v[i];
        bk_infodid_did x = {d->key,         d->ctrl,   d->revoked, d->created_off,
                            d->updated_off, d->nattrs, {0},        {0}};
        for (uint32_t k = 0; k < d->nattrs && k < BK_INFODID_ATTRS_MAX; k++)
            x.names[k] = d->attrs[k].k, x.values[k] = d->attrs[k].v;
        stop = did_cb(&x, opaque);
    }
    free(v);
    if (!stop && id_cb != NULL) {
        if ((v = smap_sorted(&a->st.ids)) == NULL)
            return bk_err_set(e, BK_E_NOMEM, "infodid: out of memory");
        for (size_t i = 0; !stop && i < a->st.ids.n; i++) {
            const id_rec *r = v[i];
            bk_infodid_reqid x = {r->key, r->result};
            stop = id_cb(&x, opaque);
        }
        free(v);
    }
    return stop ? bk_err_set(e, BK_E_STATE, "infodid: the walk was stopped") : BK_OK;
}

/* Write the pending entries to the journal file (no fsync). On failure
 * the file is cut back to its last good size. */
static int flush_pending(br2k_app *a, bk_err *e) {
    if (a->pend.len == 0)
        return BK_OK;
    if (pwrite_all(a->jfd, a->pend.p, a->pend.len, a->jsize) != BK_OK) {
        int err = errno;
        if (ftruncate(a->jfd, (off_t)a->jsize) != 0)
            BK_WARN("infodid: cannot cut back journal: %s", strerror(errno));
        return bk_err_set(e, BK_E_IO, "cannot write journal.%" PRIu64 " in '%s': %s",
                          a->gen, a->dir, strerror(err));
    }
    a->jsize += a->pend.len;
    a->pend.len = 0;
    return BK_OK;
}

/* Frame one entry body into `pend`: length, CRC-32, body. */
static int append_entry(br2k_app *a, const buf *body, int64_t offset, bk_err *e) {
    put_u32(&a->pend, (uint32_t)body->len);
    put_u32(&a->pend, crc32_ieee(body->p, body->len));
    put_bytes(&a->pend, body->p, body->len);
    if (a->pend.oom)
        return bk_err_set(e, BK_E_NOMEM, "infodid: out of memory");
    a->jlpi = offset;
    return BK_OK;
}

static int app_sync(br2k_app *a, bk_err *e) {
    if (a->lpi > a->jlpi) {
        buf body = {0};
        put_u64(&body, (uint64_t)a->lpi);
        put_u8(&body, KIND_LPI);
        int rc = body.oom ? bk_err_set(e, BK_E_NOMEM, "infodid: out of memory")
                          : append_entry(a, &body, a->lpi, e);
        buf_free(&body);
        if (rc != BK_OK)
            return BK_ERR;
    }
    if (a->pend.len == 0)
        return BK_OK;
    if (flush_pending(a, e) != BK_OK)
        return BK_ERR;
    if (fdatasync(a->jfd) != 0)
        return bk_err_set(e, BK_E_IO, "cannot fsync journal.%" PRIu64 " in '%s': %s",
                          a->gen, a->dir, strerror(errno));
    if (a->jsize >= a->ckpt_bytes)
        return bk_infodid_checkpoint(a, e);
    return BK_OK;
}

/* Replay one entry body. Returns BK_ERR with `e` on a corrupt body. */
static int replay_entry(br2k_app *a, const uint8_t *p, size_t n, bk_err *e) {
    rd r = {p, n, 0, 0};
    int64_t off = (int64_t)get_u64(&r);
    uint8_t kind = get_u8(&r);
    id_rec *ir = NULL;
    did_rec *dr = NULL;
    if (kind == KIND_CHANGE) {
        uint8_t has = get_u8(&r);
        if (has & HAS_ID)
            ir = get_id(&r);
        if (has & HAS_DID)
            dr = get_did(&r);
    } else if (kind != KIND_LPI) {
        r.bad = 1;
    }
    if (r.bad || r.pos != r.len) {
        id_free(ir);
        did_free(dr);
        return bk_err_set(e, BK_E_INVAL, "corrupt entry");
    }
    if (off <= a->lpi) { /* covered by the checkpoint already */
        id_free(ir);
        did_free(dr);
        return BK_OK;
    }
    if (state_commit(&a->st, ir, dr, e) != BK_OK)
        return BK_ERR;
    a->lpi = off;
    return BK_OK;
}

/* Replay journal.<gen>; cut a torn tail (a crash mid-write) away. */
static int replay_journal(br2k_app *a, bk_err *e) {
    char *p = journal_path(a, a->gen);
    if (p == NULL)
        return bk_err_set(e, BK_E_NOMEM, "infodid: out of memory");
    uint8_t *data = NULL;
    size_t len = 0;
    bk_err sub;
    if (read_file(p, &data, &len, &sub) != BK_OK) {
        free(p);
        if (sub.code != BK_E_NOTFOUND) {
            *e = sub;
            return BK_ERR;
        }
        return journal_start(a, a->gen, e);
    }
    size_t pos = 0;
    int rc = BK_OK;
    while (len - pos >= 8) {
        rd r = {data + pos, 8, 0, 0};
        uint32_t n = get_u32(&r), crc = get_u32(&r);
        if (n > ENTRY_MAX || len - pos - 8 < n || crc32_ieee(data + pos + 8, n) != crc)
            break;
        if (replay_entry(a, data + pos + 8, n, &sub) != BK_OK) {
            rc = bk_err_set(e, BK_E_STATE, "cannot replay '%s' at byte %zu: %s", p, pos,
                            sub.msg);
            break;
        }
        pos += 8 + (size_t)n;
    }
    free(data);
    int fd = rc == BK_OK ? open(p, O_RDWR | O_CLOEXEC) : -1;
    if (rc == BK_OK && fd < 0)
        rc = bk_err_set(e, BK_E_IO, "cannot open '%s': %s", p, strerror(errno));
    if (rc == BK_OK && pos < len) {
        BK_WARN("infodid: ignoring a torn tail of %zu bytes in '%s'", len - pos, p);
        if (ftruncate(fd, (off_t)pos) != 0 || fsync(fd) != 0)
            rc = bk_err_set(e, BK_E_IO, "cannot cut the torn tail of '%s': %s", p,
                            strerror(errno));
    }
    free(p);
    if (rc != BK_OK) {
        if (fd >= 0)
            close(fd);
        return BK_ERR;
    }
    a->jfd = fd;
    a->jsize = pos;
    a->jlpi = a->lpi;
    return BK_OK;
}

static int load_checkpoint(br2k_app *a, bk_err *e) {
    char *p = path_of(a, "checkpoint");
    if (p == NULL)
        return bk_err_set(e, BK_E_NOMEM, "infodid: out of memory");
    uint8_t *data = NULL;
    size_t len = 0;
    bk_err sub;
    if (read_file(p, &data, &len, &sub) != BK_OK) {
        free(p);
        if (sub.code == BK_E_NOTFOUND)
            return BK_OK; /* a new state */
        *e = sub;
        return BK_ERR;
    }
    int rc = BK_OK;
    uint8_t h[32];
    rd r = {data, len, 8, 0};
    if (len < 8 + 8 + 8 + 32 || memcmp(data, CKPT_MAGIC, 8) != 0) {
        rc = bk_err_set(e, BK_E_INVAL, "'%s' is not an infodid checkpoint", p);
    } else {
        sha256(data, len - 32, h);
        a->gen = get_u64(&r);
        uint64_t slen = get_u64(&r);
        if (memcmp(h, data + len - 32, 32) != 0 || slen != len - 8 - 8 - 8 - 32)
            rc = bk_err_set(e, BK_E_INVAL, "checkpoint '%s' is corrupt", p);
        else if (decode_snapshot(data + 24, (size_t)slen, &a->st, &a->lpi, &sub) != BK_OK)
            rc = bk_err_set(e, BK_E_INVAL, "checkpoint '%s': %s", p, sub.msg);
    }
    free(data);
    free(p);
    return rc;
}

/* Remove leftovers: journals of other generations, temporary files. */
static void remove_stale(br2k_app *a) {
    DIR *d = opendir(a->dir);
    if (d == NULL)
        return;
    char keep[40];
    snprintf(keep, sizeof(keep), "journal.%" PRIu64, a->gen);
    struct dirent *de;
    for (de = readdir(d); de != NULL; de = readdir(d)) {
        int stale =
            (strncmp(de->d_name, "journal.", 8) == 0 && strcmp(de->d_name, keep)) ||
            strcmp(de->d_name, "checkpoint.tmp") == 0;
        if (!stale)
            continue;
        char *p = path_of(a, de->d_name);
        if (p != NULL && unlink(p) == 0)
            BK_INFO("infodid: removed stale '%s'", p);
        free(p);
    }
    closedir(d);
}

static long env_long(const char *name, long dflt) {
    const char *s = getenv(name);
    if (s == NULL || *s == '\0')
        return dflt;
    char *end = NULL;
    errno = 0;
    long v = strtol(s, &end, 10);
    if (errno != 0 || *end != '\0' || v < 0) {
        BK_WARN("infodid: ignoring %s='%s': not a non-negative integer", name, s);
        return dflt;
    }
    return v;
}

static void app_close(br2k_app *a);

static void sha1_of(const char *src, char out[41]) {
    uint8_t h[20];
    unsigned int n = 20;
    EVP_Digest(src, strlen(src), h, &n, EVP_sha1(), NULL);
    bk_hex_encode(h, sizeof(h), 0, out);
}

static void lua_sha1(char out[41]) {
    sha1_of(bk_infodid_external_lua, out);
}

static int app_open(const char *dir, br2k_app **out, int64_t *lpi, bk_err *e) {
    *out = NULL;
    br2k_app *a = calloc(1, sizeof(*a));
    if (a != NULL)
        a->dir = strdup(dir);
    if (a == NULL || a->dir == NULL) {
        free(a);
        return bk_err_set(e, BK_E_NOMEM, "infodid: out of memory");
    }
    a->lock_fd = -1;
    a->jfd = -1;
    a->lpi = -1;
    a->jlpi = -1;
    state_init(&a->st);
    a->limit = (size_t)env_long("BR2K_MAX_REQUEST_BYTES", BK_REQUEST_DEFAULT_LIMIT);
    a->hold_ms = env_long("BR2K_TEST_HOLD_APPLY_MS", 0);
    const char *hf = getenv("BR2K_TEST_HOLD_APPLY_FILE");
    if (hf != NULL && *hf != '\0') {
        if ((a->hold_file = strdup(hf)) == NULL) {
            bk_err_set(e, BK_E_NOMEM, "infodid: out of memory");
            goto fail;
        }
        if (a->hold_ms == 0)
            a->hold_ms = 30000;
    }
    a->ckpt_bytes =
        (uint64_t)env_long("BR2K_INFODID_CHECKPOINT_BYTES", BK_INFODID_CHECKPOINT_BYTES);
    lua_sha1(a->lua_sha);

    if (mkdir(dir, 0755) != 0 && errno != EEXIST) {
        bk_err_set(e, BK_E_IO, "cannot create state directory '%s': %s", dir,
                   strerror(errno));
        goto fail;
    }
    char *lock = path_of(a, "LOCK");
    if (lock == NULL) {
        bk_err_set(e, BK_E_NOMEM, "infodid: out of memory");
        goto fail;
    }
    a->lock_fd = open(lock, O_RDWR | O_CREAT | O_CLOEXEC, 0644);
    free(lock);
    if (a->lock_fd < 0) {
        bk_err_set(e, BK_E_IO, "cannot open the lock of '%s': %s", dir, strerror(errno));
        goto fail;
    }
    if (flock(a->lock_fd, LOCK_EX | LOCK_NB) != 0) {
        bk_err_set(e, BK_E_STATE, "state directory '%s' is in use by another process",
                   dir);
        goto fail;
    }
    if (load_checkpoint(a, e) != BK_OK || replay_journal(a, e) != BK_OK)
        goto fail;
    remove_stale(a);
    if (a->hold_file != NULL)
        BK_WARN("infodid: BR2K_TEST_HOLD_APPLY_FILE=%s: register holds mid-change, up to "
                "%ld ms, while that file exists (tests only)",
                a->hold_file, a->hold_ms);
    else if (a->hold_ms > 0)
        BK_WARN("infodid: BR2K_TEST_HOLD_APPLY_MS=%ld: register holds mid-change (tests "
                "only)",
                a->hold_ms);
    *out = a;
    *lpi = a->lpi;
    return BK_OK;
fail:
    app_close(a);
    return BK_ERR;
}

static void app_close(br2k_app *a) {
    if (a == NULL)
        return;
    if (a->jfd >= 0) {
        bk_err e;
        if (app_sync(a, &e) != BK_OK)
            BK_WARN("infodid: sync at close failed: %s", e.msg);
        close(a->jfd);
    }
    if (a->lock_fd >= 0)
        close(a->lock_fd); /* releases the flock */
    state_release(&a->st);
    buf_free(&a->pend);
    free(a->hold_file);
    free(a->dir);
    free(a);
}

/* ---- results ---- */

static char *dump_result(json_t *o) {
    char *s = o ? json_dumps(o, JSON_SORT_KEYS | JSON_COMPACT) : NULL;
    json_decref(o);
    return s;
}

static char *result_rejected(const char *id, const char *op, int64_t offset,
                             const bk_reason *why) {
    json_t *o =
        json_pack("{s:i,s:o,s:I,s:o,s:s,s:b,s:{s:s,s:s}}", "v", 1, "id",
                  id && *id ? json_string(id) : json_null(), "offset", (json_int_t)offset,
                  "op", op ? json_string(op) : json_null(), "status", "rejected",
                  "repeat", 0, "reason", "code", why->code, "text", why->text);
    return dump_result(o);
}

static char *result_ok(const bk_request *req, int64_t offset, json_t *data) {
    json_t *o = json_pack("{s:i,s:s,s:I,s:s,s:s,s:b,s:o}", "v", 1, "id", req->id,
                          "offset", (json_int_t)offset, "op", req->op, "status", "ok",
                          "repeat", 0, "data", data);
    return dump_result(o);
}

static char *result_repeat(const char *first, int64_t offset) {
    json_t *o = json_loads(first, 0, NULL);
    if (o == NULL)
        return NULL;
    if (json_object_set_new(o, "repeat", json_true()) != 0 ||
        json_object_set_new(o, "repeat_offset", json_integer(offset)) != 0) {
        json_decref(o);
        return NULL;
    }
    return dump_result(o);
}

/* ---- the operations ---- */

static void did_default(const uint8_t addr[20], char out[BK_INFODID_DID_MAX + 1]) {
    char hex[41];
    bk_hex_encode(addr, 20, 0, hex);
    snprintf(out, BK_INFODID_DID_MAX + 1, "did:br2k:0x%s", hex);
}

static int valid_did(const char *s, size_t n) {
    if (n < 7 || n > BK_INFODID_DID_MAX || strncmp(s, "did:", 4) != 0)
        return 0;
    size_t i = 4;
    while (i < n && ((s[i] >= 'a' && s[i] <= 'z') || (s[i] >= '0' && s[i] <= '9')))
        i++;
    if (i == 4 || i >= n - 1 || s[i] != ':')
        return 0;
    for (i++; i < n; i++) {
        char c = s[i];
        int ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
                 (c >= '0' && c <= '9') || c == '.' || c == '_' || c == ':' || c == '%' ||
                 c == '-';
        if (!ok)
            return 0;
    }
    return s[n - 1] != ':';
}

static int valid_key(const char *s, size_t n) {
    if (n == 0 || n > BK_INFODID_KEY_MAX)
        return 0;
    for (size_t i = 0; i < n; i++) {
        char c = s[i];
        int ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
                 (c >= '0' && c <= '9') || c == '.' || c == '_' || c == '-';
        if (!ok)
            return 0;
    }
    return 1;
}

/* Check the payload's keys against `allowed` (NULL-terminated). */
static int only_keys(const json_t *payload, const char *const *allowed, bk_reason *why) {
    const char *k;
    json_t *x;
    json_object_foreach((json_t *)payload, k, x) {
        size_t i = 0;
        while (allowed[i] != NULL && strcmp(allowed[i], k) != 0)
            i++;
        if (allowed[i] == NULL)
            return bk_reason_set(why, "bad_payload", "unknown payload field '%.64s'", k);
    }
    return BK_OK;
}

/* The DID the request names: payload "did", or the signer's default. */
static int target_did(const bk_request *req, const uint8_t signer[20],
                      char did[BK_INFODID_DID_MAX + 1], bk_reason *why) {
    json_t *d = json_object_get(req->payload, "did");
    if (d == NULL) {
        did_default(signer, did);
        return BK_OK;
    }
    if (!json_is_string(d))
        return bk_reason_set(why, "bad_payload", "payload field 'did' must be a string");
    if (json_string_length(d) > BK_INFODID_DID_MAX)
        return bk_reason_set(why, "oversize", "did is longer than %d bytes",
                             BK_INFODID_DID_MAX);
    if (!valid_did(json_string_value(d), json_string_length(d)))
        return bk_reason_set(why, "bad_payload", "'%.128s' is not a valid did",
                             json_string_value(d));
    snprintf(did, BK_INFODID_DID_MAX + 1, "%s", json_string_value(d));
    return BK_OK;
}

/* Validate an attribute object; nulls allowed only when `allow_null`. */
static int check_attrs(const json_t *attrs, int allow_null, bk_reason *why) {
    if (!json_is_object(attrs))
        return bk_reason_set(why, "bad_payload",
                             "payload field 'attrs' must be an object");
    if (json_object_size(attrs) > BK_INFODID_ATTRS_MAX)
        return bk_reason_set(why, "oversize", "more than %d attributes",
                             BK_INFODID_ATTRS_MAX);
    const char *k;
    json_t *v;
    json_object_foreach((json_t *)attrs, k, v) {
        if (!valid_key(k, strlen(k)))
            return bk_reason_set(
                why, strlen(k) > BK_INFODID_KEY_MAX ? "oversize" : "bad_payload",
                "attribute name '%.64s' must be 1 to %d characters of "
                "A-Z a-z 0-9 . _ -",
                k, BK_INFODID_KEY_MAX);
        if (json_is_null(v) && allow_null)
            continue;
        if (!json_is_string(v))
            return bk_reason_set(why, "bad_payload", "attribute '%s' must be a string",
                                 k);
        if (json_string_length(v) > BK_INFODID_VALUE_MAX ||
            memchr(json_string_value(v), 0, json_string_length(v)) != NULL)
            return bk_reason_set(why, "oversize",
                                 "attribute '%s' is longer than %d bytes", k,
                                 BK_INFODID_VALUE_MAX);
    }
    return BK_OK;
}

/* Fill d->attrs from a JSON object of strings, sorted by name. */
static int set_attrs(did_rec *d, const json_t *attrs) {
    size_t n = json_object_size(attrs);
    d->attrs = calloc(n ? n : 1, sizeof(*d->attrs));
    if (d->attrs == NULL)
        return BK_ERR;
    const char *k;
    json_t *v;
    json_object_foreach((json_t *)attrs, k, v) {
        if (json_is_null(v))
            continue;
        attr *t = &d->attrs[d->nattrs];
        t->k = strdup(k);
        t->v = strdup(json_string_value(v));
        d->nattrs++;
        if (t->k == NULL || t->v == NULL)
            return BK_ERR;
    }
    qsort(d->attrs, d->nattrs, sizeof(*d->attrs), cmp_attr);
    return BK_OK;
}

static did_rec *did_new(const char *did) {
    did_rec *d = calloc(1, sizeof(*d));
    if (d != NULL)
        d->key = strdup(did);
    if (d != NULL && d->key == NULL) {
        free(d);
        d = NULL;
    }
    return d;
}

/* Each operation returns BK_OK with *nd (the DID's new record) and *data
 * (the result data) set, a rejection (BK_ERR, `why` set, nothing set), or
 * sets *oom when out of memory. */
typedef struct opctx {
    br2k_app *a;
    const bk_request *req;
    int64_t offset;
    const uint8_t *signer;
    did_rec *nd;
    json_t *data;
    int oom;
} opctx;

static json_t *ctrl_data(const did_rec *d, int64_t active) {
    char addr[43];
    bk_eth_addr_hex(d->ctrl, addr);
    return json_pack("{s:s,s:s,s:I}", "did", d->key, "controller", addr, "active",
                     (json_int_t)active);
}

static int op_register(opctx *c, bk_reason *why) {
    static const char *const keys[] = {"did", "attrs", NULL};
    char did[BK_INFODID_DID_MAX + 1];
    if (only_keys(c->req->payload, keys, why) != BK_OK ||
        target_did(c->req, c->signer, did, why) != BK_OK)
        return BK_ERR;
    if (strncmp(did, "did:br2k:", 9) == 0) {
        char own[BK_INFODID_DID_MAX + 1];
        did_default(c->signer, own);
        size_t n = strlen(own);
        if (strncmp(did, own, n) != 0 || (did[n] != '\0' && did[n] != ':'))
            return bk_reason_set(why, "not_controller",
                                 "'%s' belongs to another controller than the signer",
                                 did);
    }
    json_t *attrs = json_object_get(c->req->payload, "attrs");
    json_t *empty = json_object();
    if (attrs == NULL)
        attrs = empty;
    int rc = check_attrs(attrs, 0, why);
    if (rc == BK_OK && smap_get(&c->a->st.dids, did) != NULL)
        rc = bk_reason_set(why, "already_registered", "'%s' is already registered", did);
    if (rc == BK_OK) {
        did_rec *d = did_new(did);
        if (d == NULL || set_attrs(d, attrs) != BK_OK) {
            did_free(d);
            c->oom = 1;
        } else {
            memcpy(d->ctrl, c->signer, 20);
            d->created_ts = d->updated_ts = c->req->ts;
            d->created_off = d->updated_off = c->offset;
            c->nd = d;
            c->data = ctrl_data(d, c->a->st.active + 1);
            c->oom = c->data == NULL;
        }
    }
    json_decref(empty);
    return rc;
}

/* The DID a request may change: exists, signed by its controller, active. */
static const did_rec *owned_did(opctx *c, char did[BK_INFODID_DID_MAX + 1],
                                bk_reason *why) {
    if (target_did(c->req, c->signer, did, why) != BK_OK)
        return NULL;
    const did_rec *d = smap_get(&c->a->st.dids, did);
    if (d == NULL) {
        bk_reason_set(why, "unknown_did", "'%s' is not registered", did);
        return NULL;
    }
    if (memcmp(d->ctrl, c->signer, 20) != 0) {
        bk_reason_set(why, "not_controller",
                      "'%s' is not signed by the controller of '%s'", c->req->id, did);
        return NULL;
    }
    if (d->revoked) {
        bk_reason_set(why, "revoked", "'%s' is revoked", did);
        return NULL;
    }
    return d;
}

/* A copy of `d` without its attributes, updated at this request. */
static did_rec *did_touch(const opctx *c, const did_rec *d) {
    did_rec *n = did_new(d->key);
    if (n == NULL)
        return NULL;
    memcpy(n->ctrl, d->ctrl, 20);
    n->revoked = d->revoked;
    n->created_ts = d->created_ts;
    n->created_off = d->created_off;
    n->updated_ts = c->req->ts;
    n->updated_off = c->offset;
    return n;
}

static int op_update(opctx *c, bk_reason *why) {
    static const char *const keys[] = {"did", "attrs", "mode", NULL};
    if (only_keys(c->req->payload, keys, why) != BK_OK)
        return BK_ERR;
    json_t *mode = json_object_get(c->req->payload, "mode");
    int replace = 0;
    if (mode != NULL) {
        const char *m = json_string_value(mode);
        if (m == NULL || (strcmp(m, "merge") != 0 && strcmp(m, "replace") != 0))
            return bk_reason_set(why, "bad_payload",
                                 "payload field 'mode' must be \"merge\" or \"replace\"");
        replace = strcmp(m, "replace") == 0;
    }
    json_t *attrs = json_object_get(c->req->payload, "attrs");
    if (attrs == NULL)
        return bk_reason_set(why, "bad_payload", "missing payload field 'attrs'");
    if (check_attrs(attrs, !replace, why) != BK_OK)
        return BK_ERR;
    char did[BK_INFODID_DID_MAX + 1];
    const did_rec *d = owned_did(c, did, why);
    if (d == NULL)
        return BK_ERR;
    json_t *merged = json_object();
    if (merged == NULL) {
        c->oom = 1;
        return BK_ERR;
    }
    for (uint32_t i = 0; !replace && i < d->nattrs; i++)
        json_object_set_new(merged, d->attrs[i].k, json_string(d->attrs[i].v));
    const char *k;
    json_t *v;
    json_object_foreach(attrs, k, v) {
        if (json_is_null(v))
            json_object_del(merged, k);
        else
            json_object_set(merged, k, v);
    }
    int rc = BK_OK;
    if (json_object_size(merged) > BK_INFODID_ATTRS_MAX) {
        rc = bk_reason_set(why, "oversize", "'%s' would have more than %d attributes",
                           did, BK_INFODID_ATTRS_MAX);
    } else {
        did_rec *n = did_touch(c, d);
        if (n == NULL || set_attrs(n, merged) != BK_OK) {
            did_free(n);
            c->oom = 1;
        } else {
            c->nd = n;
            c->data = json_pack("{s:s,s:i}", "did", did, "attrs", (int)n->nattrs);
            c->oom = c->data == NULL;
        }
    }
    json_decref(merged);
    return rc;
}

static int op_revoke(opctx *c, bk_reason *why) {
    static const char *const keys[] = {"did", NULL};
    if (only_keys(c->req->payload, keys, why) != BK_OK)
        return BK_ERR;
    char did[BK_INFODID_DID_MAX + 1];
    const did_rec *d = owned_did(c, did, why);
    if (d == NULL)
        return BK_ERR;
    did_rec *n = did_touch(c, d);
    if (n != NULL)
        n->attrs = calloc(d->nattrs ? d->nattrs : 1, sizeof(attr));
    if (n == NULL || n->attrs == NULL) {
        did_free(n);
        c->oom = 1;
        return BK_OK;
    }
    for (uint32_t i = 0; i < d->nattrs; i++) {
        n->attrs[i].k = strdup(d->attrs[i].k);
        n->attrs[i].v = strdup(d->attrs[i].v);
        n->nattrs = i + 1;
        if (n->attrs[i].k == NULL || n->attrs[i].v == NULL) {
            did_free(n);
            c->oom = 1;
            return BK_OK;
        }
    }
    n->revoked = 1;
    c->nd = n;
    c->data = ctrl_data(n, c->a->st.active - 1);
    c->oom = c->data == NULL;
    return BK_OK;
}

static void hold(long ms) {
    struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
    while (nanosleep(&ts, &ts) != 0 && errno == EINTR)
        ;
}

/* Journal the change, then make it in memory. Takes ownership of ir, dr. */
static int record_change(br2k_app *a, int64_t offset, id_rec *ir, did_rec *dr,
                         int is_register, bk_err *e) {
    buf body = {0};
    put_u64(&body, (uint64_t)offset);
    put_u8(&body, KIND_CHANGE);
    put_u8(&body, (uint8_t)((ir ? HAS_ID : 0) | (dr ? HAS_DID : 0)));
    if (ir != NULL)
        put_id(&body, ir);
    if (dr != NULL)
        put_did(&body, dr);
    int rc = body.oom ? bk_err_set(e, BK_E_NOMEM, "infodid: out of memory")
                      : append_entry(a, &body, offset, e);
    buf_free(&body);
    if (rc != BK_OK) {
        id_free(ir);
        did_free(dr);
        return BK_ERR;
    }
    if (is_register && a->hold_ms > 0 &&
        (a->hold_file == NULL || access(a->hold_file, F_OK) == 0)) {
        /* Test hook: the entry is in the file (not fsync'ed), memory and
         * LPI are not changed yet; a kill now lands mid-request. With a
         * hold file, only while that file exists (checked every 10 ms). */
        if (flush_pending(a, e) != BK_OK) {
            id_free(ir);
            did_free(dr);
            return BK_ERR;
        }
        if (a->hold_file == NULL)
            hold(a->hold_ms);
        else
            for (long waited = 0; waited < a->hold_ms && access(a->hold_file, F_OK) == 0;
                 waited += 10)
                hold(10);
    }
    return state_commit(&a->st, ir, dr, e);
}

static int finish(br2k_app *a, int64_t offset, char *res, char **result, bk_err *e) {
    if (res == NULL)
        return bk_err_set(e, BK_E_NOMEM,
                          "infodid: cannot build the result: out of memory");
    a->lpi = offset;
    *result = res;
    return BK_OK;
}

static int app_apply(br2k_app *a, int64_t offset, const void *rec, size_t len,
                     char **result, int *applied, bk_err *e) {
    *result = NULL;
    *applied = 0;
    if (offset <= a->lpi)
        return bk_err_set(e, BK_E_STATE,
                          "infodid: offset %" PRId64 " is not after the lpi %" PRId64,
                          offset, a->lpi);
    bk_request req;
    bk_reason why;
    if (bk_request_parse(rec, len, a->limit, bk_infodid_op_names, &req, &why) != BK_OK)
        return finish(a, offset, result_rejected(req.id, NULL, offset, &why), result, e);

    /* A request id seen before: the same signed request is a repeat. */
    char *canon = NULL;
    size_t clen = 0;
    if (bk_request_canonical(&req, &canon, &clen, e) != BK_OK) {
        bk_request_release(&req);
        return BK_ERR;
    }
    uint8_t *hin = malloc(clen + 65);
    if (hin == NULL) {
        free(canon);
        bk_request_release(&req);
        return bk_err_set(e, BK_E_NOMEM, "infodid: out of memory");
    }
    memcpy(hin, canon, clen);
    memcpy(hin + clen, req.sig, 65);
    uint8_t h[32];
    bk_keccak256(hin, clen + 65, h);
    free(hin);
    const id_rec *seen = smap_get(&a->st.ids, req.id);
    if (seen != NULL) {
        char *res;
        if (memcmp(seen->h, h, 32) == 0) {
            res = result_repeat(seen->result, offset);
        } else {
            bk_reason_set(&why, "duplicate_id",
                          "request id '%s' was already used by another request", req.id);
            res = result_rejected(req.id, req.op, offset, &why);
        }
        free(canon);
        bk_request_release(&req);
        return finish(a, offset, res, result, e);
    }

    uint8_t signer[20];
    bk_err sub;
    bk_err_clear(&sub);
    int sig_ok = bk_request_recover(&req, canon, clen, signer, &sub);
    free(canon);
    if (sig_ok != BK_OK) {
        if (sub.code == BK_E_NOMEM) {
            bk_request_release(&req);
            *e = sub;
            return BK_ERR;
        }
        bk_reason_set(&why, "bad_signature", "%s", sub.msg);
        char *res = result_rejected(req.id, req.op, offset, &why);
        bk_request_release(&req);
        return finish(a, offset, res, result, e);
    }

    opctx c = {a, &req, offset, signer, NULL, NULL, 0};
    int rc;
    if (strcmp(req.op, "register") == 0)
        rc = op_register(&c, &why);
    else if (strcmp(req.op, "update") == 0)
        rc = op_update(&c, &why);
    else
        rc = op_revoke(&c, &why);
    char *res = NULL;
    if (!c.oom)
        res = rc == BK_OK ? result_ok(&req, offset, c.data)
                          : result_rejected(req.id, req.op, offset, &why);
    else
        json_decref(c.data);
    c.data = NULL;
    id_rec *ir = calloc(1, sizeof(*ir));
    if (ir != NULL && res != NULL) {
        ir->key = strdup(req.id);
        ir->result = strdup(res);
    }
    if (res == NULL || ir == NULL || ir->key == NULL || ir->result == NULL) {
        free(res);
        id_free(ir);
        did_free(c.nd);
        bk_request_release(&req);
        return bk_err_set(e, BK_E_NOMEM, "infodid: out of memory");
    }
    memcpy(ir->h, h, 32);
    int is_register = strcmp(req.op, "register") == 0;
    bk_request_release(&req);
    *applied = c.nd != NULL;
    if (record_change(a, offset, ir, c.nd, is_register, e) != BK_OK) {
        free(res);
        *applied = 0;
        return BK_ERR;
    }
    return finish(a, offset, res, result, e);
}

/* ---- snapshot, restore, digest ---- */

static int app_snapshot(br2k_app *a, void **out, size_t *len, int64_t *lpi, bk_err *e) {
    buf b = {0};
    if (encode_snapshot(&a->st, a->lpi, &b, e) != BK_OK) {
        buf_free(&b);
        return BK_ERR;
    }
    *out = b.p;
    *len = b.len;
    *lpi = a->lpi;
    return BK_OK;
}

static int app_restore(br2k_app *a, const void *snap, size_t len, bk_err *e) {
    state st;
    state_init(&st);
    int64_t lpi = -1;
    if (decode_snapshot(snap, len, &st, &lpi, e) != BK_OK) {
        state_release(&st);
        return bk_err_prefix(e, "cannot restore");
    }
    /* Durable first: the new checkpoint and an empty journal. */
    int64_t old_lpi = a->lpi;
    a->lpi = lpi;
    if (write_checkpoint(a, snap, len, e) != BK_OK) {
        a->lpi = old_lpi;
        state_release(&st);
        return BK_ERR;
    }
    state_release(&a->st);
    a->st = st;
    a->jlpi = lpi;
    return BK_OK;
}

static int app_digest(br2k_app *a, char hex[65], bk_err *e) {
    buf b = {0};
    if (encode_body(&a->st, &b, e) != BK_OK) {
        buf_free(&b);
        return BK_ERR;
    }
    uint8_t h[32];
    sha256(b.p, b.len, h);
    buf_free(&b);
    bk_hex_encode(h, sizeof(h), 0, hex);
    return BK_OK;
}

/* ---- the external effect: a shared index in Redis ---- */

const char bk_infodid_external_lua[] =
    "-- infodid external index; KEYS: epoch, ext:applied, ext:active, ext:did\n"
    "-- ARGV: epoch, offset, action (register|revoke), did, controller\n"
    "local cur = redis.call('GET', KEYS[1])\n"
    "if cur ~= ARGV[1] then\n"
    "  return redis.error_reply('FENCED epoch ' .. ARGV[1] .. ' is not the current epoch "
    "'"
    " .. tostring(cur))\n"
    "end\n"
    "local applied = tonumber(redis.call('GET', KEYS[2]) or '-1')\n"
    "if tonumber(ARGV[2]) <= applied then return 0 end\n"
    "if ARGV[3] == 'register' then\n"
    "  if redis.call('HSETNX', KEYS[4], ARGV[4], ARGV[5]) == 1 then\n"
    "    redis.call('INCR', KEYS[3])\n"
    "  end\n"
    "elseif ARGV[3] == 'revoke' then\n"
    "  if redis.call('HEXISTS', KEYS[4], ARGV[4]) == 1 then\n"
    "    redis.call('DECR', KEYS[3])\n"
    "  end\n"
    "end\n"
    "redis.call('SET', KEYS[2], ARGV[2])\n"
    "return 1\n";

/* The external action of a result: 1 with *op, *did, *ctrl (pointing
 * into *o, which the caller releases) when it registers or revokes. */
static int ext_action(const char *result, json_t **o, const char **op, const char **did,
                      const char **ctrl) {
    *o = json_loads(result, 0, NULL);
    if (*o == NULL)
        return -1;
    const char *status = json_string_value(json_object_get(*o, "status"));
    *op = json_string_value(json_object_get(*o, "op"));
    json_t *data = json_object_get(*o, "data");
    *did = json_string_value(json_object_get(data, "did"));
    *ctrl = json_string_value(json_object_get(data, "controller"));
    return status != NULL && strcmp(status, "ok") == 0 &&
           !json_is_true(json_object_get(*o, "repeat")) && *op != NULL && *did != NULL &&
           *ctrl != NULL && (strcmp(*op, "register") == 0 || strcmp(*op, "revoke") == 0);
}

static int app_external(br2k_app *a, bk_redis *r, const char *svc, int64_t epoch,
                        int64_t offset, const char *result, bk_err *e) {
    json_t *o = NULL;
    const char *op = NULL, *did = NULL, *ctrl = NULL;
    int act = ext_action(result, &o, &op, &did, &ctrl);
    if (act < 0)
        return bk_err_set(e, BK_E_INVAL,
                          "infodid: result of offset %" PRId64 " is not json", offset);
    if (!act) {
        json_decref(o);
        return BK_OK; /* nothing external to do */
    }
    char k_epoch[200], k_applied[200], k_active[200], k_did[200], s_epoch[24], s_off[24];
    snprintf(k_epoch, sizeof(k_epoch), "br2k:{%s}:epoch", svc);
    snprintf(k_applied, sizeof(k_applied), "br2k:{%s}:ext:applied", svc);
    snprintf(k_active, sizeof(k_active), "br2k:{%s}:ext:active", svc);
    snprintf(k_did, sizeof(k_did), "br2k:{%s}:ext:did", svc);
    snprintf(s_epoch, sizeof(s_epoch), "%" PRId64, epoch);
    snprintf(s_off, sizeof(s_off), "%" PRId64, offset);
    const char *argv[] = {"EVALSHA", a->lua_sha, "4",   k_epoch, k_applied, k_active,
                          k_did,     s_epoch,    s_off, op,      did,       ctrl};
    int argc = (int)(sizeof(argv) / sizeof(argv[0]));
    bk_err sub;
    bk_err_clear(&sub);
    redisReply *rep = bk_redis_commandv(r, &sub, argc, argv, NULL);
    if (rep == NULL && sub.code == BK_E_REMOTE && strstr(sub.msg, "NOSCRIPT") != NULL) {
        argv[0] = "EVAL"; /* loaded once; EVALSHA from then on */
        argv[1] = bk_infodid_external_lua;
        rep = bk_redis_commandv(r, &sub, argc, argv, NULL);
    }
    json_decref(o);
    if (rep == NULL) {
        if (e != NULL)
            *e = sub;
        return bk_err_prefix(e, "infodid: external effect of offset %" PRId64, offset);
    }
    freeReplyObject(rep);
    return BK_OK;
}

/* The same effect as app_external for each record in turn, in one script
 * call: one round trip and one Redis fsync per batch. The state it leaves
 * is the same (ext:applied ends at the last acting offset above it). */
const char bk_infodid_external_many_lua[] =
    "-- infodid external index, many records; KEYS: epoch, ext:applied, ext:active,\n"
    "-- ext:did; ARGV: epoch, then (offset, action, did, controller) per record\n"
    "local cur = redis.call('GET', KEYS[1])\n"
    "if cur ~= ARGV[1] then\n"
    "  return redis.error_reply('FENCED epoch ' .. ARGV[1] .. ' is not the current epoch "
    "'"
    " .. tostring(cur))\n"
    "end\n"
    "local applied = tonumber(redis.call('GET', KEYS[2]) or '-1')\n"
    "local last = nil\n"
    "local done = 0\n"
    "for i = 2, #ARGV, 4 do\n"
    "  if tonumber(ARGV[i]) > applied then\n"
    "    if ARGV[i + 1] == 'register' then\n"
    "      if redis.call('HSETNX', KEYS[4], ARGV[i + 2], ARGV[i + 3]) == 1 then\n"
    "        redis.call('INCR', KEYS[3])\n"
    "      end\n"
    "    elseif ARGV[i + 1] == 'revoke' then\n"
    "      if redis.call('HEXISTS', KEYS[4], ARGV[i + 2]) == 1 then\n"
    "        redis.call('DECR', KEYS[3])\n"
    "      end\n"
    "    end\n"
    "    applied = tonumber(ARGV[i])\n"
    "    last = ARGV[i]\n"
    "    done = done + 1\n"
    "  end\n"
    "end\n"
    "if last then redis.call('SET', KEYS[2], last) end\n"
    "return done\n";

static int app_external_many(br2k_app *a, bk_redis *r, const char *svc, int64_t epoch,
                             const int64_t *offsets, const char *const *results, size_t n,
                             bk_err *e) {
    (void)a;
    static char sha[41];
    if (sha[0] == '\0')
        sha1_of(bk_infodid_external_many_lua, sha);
    size_t cap = 8 + 4 * n;
    const char **argv = calloc(cap, sizeof(*argv));
    json_t **objs = calloc(n ? n : 1, sizeof(*objs));
    char(*offs)[24] = calloc(n ? n : 1, 24);
    char k_epoch[200], k_applied[200], k_active[200], k_did[200], s_epoch[24];
    int rc = BK_OK;
    if (argv == NULL || objs == NULL || offs == NULL) {
        rc = bk_err_set(e, BK_E_NOMEM, "out of memory");
        goto out;
    }
    snprintf(k_epoch, sizeof(k_epoch), "br2k:{%s}:epoch", svc);
    snprintf(k_applied, sizeof(k_applied), "br2k:{%s}:ext:applied", svc);
    snprintf(k_active, sizeof(k_active), "br2k:{%s}:ext:active", svc);
    snprintf(k_did, sizeof(k_did), "br2k:{%s}:ext:did", svc);
    snprintf(s_epoch, sizeof(s_epoch), "%" PRId64, epoch);
    int argc = 0;
    argv[argc++] = "EVALSHA";
    argv[argc++] = sha;
    argv[argc++] = "4";
    argv[argc++] = k_epoch;
    argv[argc++] = k_applied;
    argv[argc++] = k_active;
    argv[argc++] = k_did;
    argv[argc++] = s_epoch;
    for (size_t i = 0; i < n; i++) {
        const char *op = NULL, *did = NULL, *ctrl = NULL;
        int act = ext_action(results[i], &objs[i], &op, &did, &ctrl);
        if (act < 0) {
            rc = bk_err_set(e, BK_E_INVAL,
                            "infodid: result of offset %" PRId64 " is not json",
                            offsets[i]);
            goto out;
        }
        if (!act)
            continue;
        snprintf(offs[i], 24, "%" PRId64, offsets[i]);
        argv[argc++] = offs[i];
        argv[argc++] = op;
        argv[argc++] = did;
        argv[argc++] = ctrl;
    }
    if (argc == 8)
        goto out; /* nothing external to do */
    bk_err sub;
    bk_err_clear(&sub);
    redisReply *rep = bk_redis_commandv(r, &sub, argc, argv, NULL);
    if (rep == NULL && sub.code == BK_E_REMOTE && strstr(sub.msg, "NOSCRIPT") != NULL) {
        argv[0] = "EVAL"; /* loaded once; EVALSHA from then on */
        argv[1] = bk_infodid_external_many_lua;
        rep = bk_redis_commandv(r, &sub, argc, argv, NULL);
    }
    if (rep == NULL) {
        if (e != NULL)
            *e = sub;
        rc =
            bk_err_prefix(e, "infodid: external effects of offsets %" PRId64 "..%" PRId64,
                          offsets[0], offsets[n - 1]);
        goto out;
    }
    freeReplyObject(rep);
out:
    for (size_t i = 0; objs != NULL && i < n; i++)
        json_decref(objs[i]);
    free(objs);
    free(offs);
    free(argv);
    return rc;
}

const br2k_app_ops bk_infodid_ops = {
    .name = "infodid",
    .open = app_open,
    .apply = app_apply,
    .sync = app_sync,
    .external = app_external,
    .snapshot = app_snapshot,
    .restore = app_restore,
    .digest = app_digest,
    .close = app_close,
    .external_many = app_external_many,
};
