/* table.c - see table.h. */
#include "table.h"

#include <openssl/evp.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>

#include "base/err.h"

/* ---- byte buffers (little-endian encoding) ---- */

static void buf_need(idd_buf *b, size_t n) {
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

void idd_put_bytes(idd_buf *b, const void *d, size_t n) {
    buf_need(b, n);
    if (b->oom)
        return;
    if (n > 0)
        memcpy(b->p + b->len, d, n);
    b->len += n;
}

void idd_put_u64(idd_buf *b, uint64_t v) {
    uint8_t x[8];
    for (int i = 0; i < 8; i++)
        x[i] = (uint8_t)(v >> (8 * i));
    idd_put_bytes(b, x, 8);
}

void idd_put_u32(idd_buf *b, uint32_t v) {
    uint8_t x[4];
    for (int i = 0; i < 4; i++)
        x[i] = (uint8_t)(v >> (8 * i));
    idd_put_bytes(b, x, 4);
}

void idd_put_u8(idd_buf *b, uint8_t v) {
    idd_put_bytes(b, &v, 1);
}

void idd_put_str(idd_buf *b, const char *s) {
    size_t n = strlen(s);
    idd_put_u32(b, (uint32_t)n);
    idd_put_bytes(b, s, n);
}

void idd_buf_free(idd_buf *b) {
    free(b->p);
    memset(b, 0, sizeof(*b));
}

const uint8_t *idd_get_bytes(idd_rd *r, size_t n) {
    if (r->bad || r->len - r->pos < n) {
        r->bad = 1;
        return NULL;
    }
    const uint8_t *p = r->p + r->pos;
    r->pos += n;
    return p;
}

uint64_t idd_get_u64(idd_rd *r) {
    const uint8_t *x = idd_get_bytes(r, 8);
    uint64_t v = 0;
    for (int i = 0; x != NULL && i < 8; i++)
        v |= (uint64_t)x[i] << (8 * i);
    return v;
}

uint32_t idd_get_u32(idd_rd *r) {
    const uint8_t *x = idd_get_bytes(r, 4);
    uint32_t v = 0;
    for (int i = 0; x != NULL && i < 4; i++)
        v |= (uint32_t)x[i] << (8 * i);
    return v;
}

uint8_t idd_get_u8(idd_rd *r) {
    const uint8_t *x = idd_get_bytes(r, 1);
    return x ? x[0] : 0;
}

/* A malloc'd copy of a length-prefixed string with no NUL inside. */
char *idd_get_str(idd_rd *r, size_t max) {
    uint32_t n = idd_get_u32(r);
    if (n > max) {
        r->bad = 1;
        return NULL;
    }
    const uint8_t *s = idd_get_bytes(r, n);
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

const char *idd_get_span(idd_rd *r, size_t max, size_t *n) {
    uint32_t len = idd_get_u32(r);
    *n = 0;
    if (len > max) {
        r->bad = 1;
        return NULL;
    }
    const uint8_t *s = idd_get_bytes(r, len);
    if (s == NULL || memchr(s, 0, len) != NULL) {
        r->bad = 1;
        return NULL;
    }
    *n = len;
    return (const char *)s;
}

uint32_t idd_crc32(const uint8_t *p, size_t n) {
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

void idd_sha256(const void *p, size_t n, uint8_t out[32]) {
    unsigned int olen = 32;
    EVP_Digest(p, n, out, &olen, EVP_sha256(), NULL);
}

/* ---- a string-keyed hash table ---- */

static const char *key_of(const void *v) {
    return *(char *const *)v;
}

static uint64_t rotl64(uint64_t x, int r) {
    return (x << r) | (x >> (64 - r));
}

/* A keyed hash of the string, eight bytes at a time (MurmurHash3's mixing
 * of a block and its 64-bit finalizer): a restore hashes millions of keys. */
static uint64_t hash_str(uint64_t seed, const char *s) {
    const uint64_t c1 = 0x87c37b91114253d5ULL, c2 = 0x4cf5ad432745937fULL;
    size_t n = strlen(s);
    uint64_t h = seed ^ ((uint64_t)n * 0x9e3779b97f4a7c15ULL);
    for (; n >= 8; n -= 8, s += 8) {
        uint64_t w;
        memcpy(&w, s, 8);
        h ^= rotl64(w * c1, 31) * c2;
        h = rotl64(h, 27) * 5 + 0x52dce729;
    }
    uint64_t w = 0;
    memcpy(&w, s, n); /* the last 0-7 bytes (host order: the hash is not stored) */
    h ^= rotl64(w * c1, 31) * c2;
    h ^= h >> 33;
    h *= 0xff51afd7ed558ccdULL;
    h ^= h >> 33;
    h *= 0xc4ceb9fe1a85ec53ULL;
    h ^= h >> 33;
    return h;
}

uint64_t idd_map_hash(const idd_map *m, const char *k) {
    return hash_str(m->seed, k);
}

void idd_map_init(idd_map *m) {
    memset(m, 0, sizeof(*m));
    if (getrandom(&m->seed, sizeof(m->seed), GRND_NONBLOCK) != (ssize_t)sizeof(m->seed))
        m->seed = (uint64_t)(uintptr_t)m ^ (uint64_t)time(NULL);
}

void *idd_map_get(const idd_map *m, const char *k) {
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

static int map_resize(idd_map *m, size_t cap) {
    idd_slot *s = calloc(cap, sizeof(*s));
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

static int map_grow(idd_map *m) {
    return map_resize(m, m->cap ? m->cap * 2 : 64);
}

int idd_map_reserve(idd_map *m, size_t n) {
    size_t cap = m->cap ? m->cap : 64;
    while ((n + 1) * 10 > cap * 7 && cap < ((size_t)1 << 40))
        cap *= 2;
    return cap == m->cap ? BK_OK : map_resize(m, cap);
}

/* Insert or replace; *old gets the replaced value (NULL if none). */
int idd_map_put(idd_map *m, void *v, void **old) {
    *old = NULL;
    if ((m->n + 1) * 10 > m->cap * 7 && map_grow(m) != BK_OK)
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

/* How far ahead idd_map_put_new fetches a slot: enough misses in flight
 * to hide the memory's latency, few enough to stay in the cache. */
#define PUT_AHEAD 8

int idd_map_put_new(idd_map *m, void *const *v, const uint64_t *h, size_t n,
                    size_t *stop) {
    *stop = 0;
    if (idd_map_reserve(m, m->n + n) != BK_OK)
        return BK_ERR;
    const size_t mask = m->cap - 1;
    for (size_t j = 0; j < n; j++) {
        if (j + PUT_AHEAD < n)
            __builtin_prefetch(&m->s[h[j + PUT_AHEAD] & mask], 1);
        const char *k = key_of(v[j]);
        size_t i = h[j] & mask;
        for (; m->s[i].v != NULL; i = (i + 1) & mask)
            if (m->s[i].h == h[j] && strcmp(key_of(m->s[i].v), k) == 0) {
                *stop = j;
                return BK_ERR;
            }
        m->s[i].h = h[j];
        m->s[i].v = v[j];
        m->n++;
        *stop = j + 1;
    }
    return BK_OK;
}

/* Linear probing without tombstones: after the removed slot, every value
 * of the run that could not sit where it hashes to (its home is not
 * cyclically in (hole, j]) moves back into the hole. */
void *idd_map_del(idd_map *m, const char *k) {
    if (m->cap == 0)
        return NULL;
    size_t mask = m->cap - 1;
    uint64_t h = hash_str(m->seed, k);
    size_t i = h & mask;
    while (m->s[i].v != NULL && !(m->s[i].h == h && strcmp(key_of(m->s[i].v), k) == 0))
        i = (i + 1) & mask;
    void *v = m->s[i].v;
    if (v == NULL)
        return NULL;
    size_t hole = i;
    for (size_t j = (i + 1) & mask; m->s[j].v != NULL; j = (j + 1) & mask) {
        size_t home = m->s[j].h & mask;
        /* does home lie cyclically in (hole, j]? then it stays */
        int stays = hole <= j ? (home > hole && home <= j) : (home > hole || home <= j);
        if (!stays) {
            m->s[hole] = m->s[j];
            hole = j;
        }
    }
    m->s[hole].v = NULL;
    m->s[hole].h = 0;
    m->n--;
    return v;
}

static int cmp_key(const void *a, const void *b) {
    return strcmp(key_of(*(void *const *)a), key_of(*(void *const *)b));
}

/* The values sorted by key (malloc'd; NULL only when out of memory and
 * the table is not empty). */
void **idd_map_sorted(const idd_map *m) {
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

void idd_map_free(idd_map *m, void (*free_value)(void *)) {
    for (size_t i = 0; i < m->cap; i++)
        if (m->s[i].v != NULL)
            free_value(m->s[i].v);
    free(m->s);
    memset(m, 0, sizeof(*m));
}
