/* limits.c - token buckets keyed by a string (gateway.h).
 *
 * A fixed table of `slots` buckets, open addressing with a short probe. When
 * every probed slot holds another key, the one idle longest is given to the
 * new key: a bucket idle that long has refilled anyway (rate * idle >=
 * burst in all but a flood from more keys than slots, where forgetting the
 * oldest is the least harm). */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "gateway.h"

#define PROBE 8
#define KEY_MAX 96

typedef struct bucket {
    char key[KEY_MAX];
    double tokens;
    int64_t last_ms;
} bucket;

struct gw_limiter {
    double rate, burst;
    size_t n;
    bucket *b;
};

gw_limiter *gw_limiter_new(double rate, double burst, size_t slots) {
    gw_limiter *l = calloc(1, sizeof(*l));
    if (l == NULL)
        return NULL;
    l->rate = rate;
    l->burst = burst < 1 ? 1 : burst;
    l->n = slots < PROBE ? PROBE : slots;
    l->b = calloc(l->n, sizeof(bucket));
    if (l->b == NULL) {
        free(l);
        return NULL;
    }
    return l;
}

void gw_limiter_free(gw_limiter *l) {
    if (l == NULL)
        return;
    free(l->b);
    free(l);
}

static uint64_t hash(const char *s) {
    uint64_t h = 1469598103934665603ULL; /* FNV-1a */
    for (; *s; s++)
        h = (h ^ (unsigned char)*s) * 1099511628211ULL;
    return h;
}

int gw_limiter_take(gw_limiter *l, const char *key, int64_t now_ms, int *retry_after_s) {
    if (l->rate <= 0)
        return 1;
    size_t h = (size_t)(hash(key) % l->n);
    bucket *found = NULL, *oldest = NULL;
    for (size_t i = 0; i < PROBE && found == NULL; i++) {
        bucket *b = &l->b[(h + i) % l->n];
        if (b->key[0] == '\0' || strncmp(b->key, key, KEY_MAX - 1) == 0)
            found = b;
        else if (oldest == NULL || b->last_ms < oldest->last_ms)
            oldest = b;
    }
    if (found == NULL)
        found = oldest;
    if (found->key[0] == '\0' || strncmp(found->key, key, KEY_MAX - 1) != 0) {
        snprintf(found->key, KEY_MAX, "%s", key);
        found->tokens = l->burst;
        found->last_ms = now_ms;
    }
    double add = (double)(now_ms - found->last_ms) / 1000.0 * l->rate;
    if (add > 0) {
        found->tokens = fmin(l->burst, found->tokens + add);
        found->last_ms = now_ms;
    }
    if (found->tokens >= 1) {
        found->tokens -= 1;
        return 1;
    }
    if (retry_after_s != NULL) {
        int s = (int)ceil((1 - found->tokens) / l->rate);
        *retry_after_s = s < 1 ? 1 : s;
    }
    return 0;
}
