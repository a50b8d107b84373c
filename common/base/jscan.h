/* jscan.h - a fast path for reading a few top-level members of a JSON
 * object without building a tree (the hot path of every applied record).
 *
 * It accepts only a conservative subset of JSON: ASCII text without
 * backslash escapes, control characters or DEL in strings, numbers of at
 * most 15 digits, nesting up to 32 levels, no repeated member among the
 * ones asked for. Inside that subset it validates the whole document the
 * way jansson's json_loadb (flags 0) does; outside it, it answers "not
 * handled" and the caller falls back to jansson. So a caller gets the same
 * answer either way, only faster for ordinary requests and results. */
#ifndef BK_JSCAN_H
#define BK_JSCAN_H

#include <stddef.h>

typedef struct bk_jspan {
    const char *p; /* the value's text, NULL when the member is absent */
    size_t len;    /* strings: without the quotes */
    char type;     /* 's' string, 'o' object, 'a' array, 'i' integer, 'r' real,
                      't' true, 'f' false, 'n' null, 0 absent */
} bk_jspan;

/* Scan the object in s[0..len-1] for the members named keys[0..n-1]
 * (top level only). Returns 1 with out[i] set for each key (type 0 when
 * absent), 0 when the text is outside the subset or not valid JSON: the
 * caller must then parse with jansson. */
int bk_jscan(const char *s, size_t len, const char *const *keys, size_t n, bk_jspan *out);

#endif
