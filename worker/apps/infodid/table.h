/* table.h - InfoDID's byte buffers and its hash table.
 *
 * idd_buf: a growing byte buffer written in little-endian (put_*); a
 * failed allocation sets `oom` and makes every later put a no-op, so the
 * caller checks once at the end. idd_rd: the matching reader (get_*); a
 * read past the end sets `bad` and returns zeros. idd_map: an
 * open-addressing hash table of values whose FIRST member is their key,
 * a `char *` (NUL-terminated), with a random seed per table. */
#ifndef IDD_TABLE_H
#define IDD_TABLE_H

#include <stddef.h>
#include <stdint.h>

typedef struct idd_buf {
    uint8_t *p;
    size_t len, cap;
    int oom;
} idd_buf;

void idd_put_bytes(idd_buf *b, const void *d, size_t n);
void idd_put_u64(idd_buf *b, uint64_t v);
void idd_put_u32(idd_buf *b, uint32_t v);
void idd_put_u8(idd_buf *b, uint8_t v);
void idd_put_str(idd_buf *b, const char *s); /* u32 length, then the bytes */
void idd_buf_free(idd_buf *b);               /* and zero it */

typedef struct idd_rd {
    const uint8_t *p;
    size_t len, pos;
    int bad;
} idd_rd;

const uint8_t *idd_get_bytes(idd_rd *r, size_t n); /* NULL when short */
uint64_t idd_get_u64(idd_rd *r);
uint32_t idd_get_u32(idd_rd *r);
uint8_t idd_get_u8(idd_rd *r);
/* A malloc'd copy of a length-prefixed string of at most `max` bytes with
 * no NUL inside (NULL and `bad` otherwise). */
char *idd_get_str(idd_rd *r, size_t max);

/* The same string in place (not copied, not NUL-terminated): *n bytes. */
const char *idd_get_span(idd_rd *r, size_t max, size_t *n);

uint32_t idd_crc32(const uint8_t *p, size_t n); /* CRC-32 (IEEE) */
void idd_sha256(const void *p, size_t n, uint8_t out[32]);

typedef struct idd_slot {
    uint64_t h;
    void *v; /* NULL: empty */
} idd_slot;

typedef struct idd_map {
    idd_slot *s;
    size_t cap, n; /* n values in cap slots (a power of two, or 0) */
    uint64_t seed;
} idd_map;

void idd_map_init(idd_map *m);
void *idd_map_get(const idd_map *m, const char *k); /* NULL: absent */
/* Insert or replace; *old gets the replaced value (NULL if none). BK_ERR
 * when out of memory (nothing changed). */
int idd_map_put(idd_map *m, void *v, void **old);
/* The table's hash of key k (for idd_map_put_new). */
uint64_t idd_map_hash(const idd_map *m, const char *k);
/* Insert the n values v[0..n-1] of keys not in the table, h[j] the hash of
 * v[j]'s key (idd_map_hash), each slot fetched ahead: a restore inserts
 * millions. v[0..*stop-1] are in the table after it, the rest not: BK_OK
 * with *stop = n; BK_ERR with *stop = 0 when out of memory, or with *stop = j
 * when v[j]'s key is in the table already (or was earlier in v). */
int idd_map_put_new(idd_map *m, void *const *v, const uint64_t *h, size_t n,
                    size_t *stop);
/* Remove the value of key k and return it (NULL: absent; the caller frees
 * it). Never allocates. */
void *idd_map_del(idd_map *m, const char *k);
/* Room for n values without growing (a restore that knows the count).
 * BK_ERR when out of memory (nothing changed). */
int idd_map_reserve(idd_map *m, size_t n);
/* The values sorted by key (malloc'd; NULL only when out of memory). */
void **idd_map_sorted(const idd_map *m);
/* Call free_value on every value, free the slots and zero the table. */
void idd_map_free(idd_map *m, void (*free_value)(void *));

#endif
