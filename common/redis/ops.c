/* ops.c - the operations on the keys of keys.h: the lease, the fenced
 * leader writes, the backup phase, the plain writes and the reads. Key
 * names and scripts come from keys.c; scripts run through script.h. */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>
#include <time.h>

#include "redis/keys.h"
#include "redis/script.h"

void bk_keys_after_fork(void) {
    bk_script_after_fork();
}

/* A backup phase word: letters, digits, '-', '_', '.', 1 to 64 bytes. */
static int phase_ok(const char *s) {
    size_t n = strlen(s);
    if (n == 0 || n > 64)
        return 0;
    for (const char *p = s; *p; p++)
        if (!((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') ||
              (*p >= '0' && *p <= '9') || *p == '-' || *p == '_' || *p == '.'))
            return 0;
    return 1;
}

/* EVALSHA script s with keys and string args (script.h loads it). */
static redisReply *run(bk_redis *r, bk_script *s, int nkeys, const char *const *keys,
                       int nargs, const char *const *args, bk_err *e) {
    int argc = nkeys + nargs;
    const char **argv = malloc(sizeof(*argv) * (size_t)(argc ? argc : 1));
    if (argv == NULL) {
        bk_err_set(e, BK_E_NOMEM, "out of memory");
        return NULL;
    }
    for (int i = 0; i < nkeys; i++)
        argv[i] = keys[i];
    for (int i = 0; i < nargs; i++)
        argv[nkeys + i] = args[i];
    redisReply *rep = bk_script_eval(r, s, nkeys, argc, argv, NULL, e);
    free(argv);
    return rep;
}

static int reply_i64(redisReply *rep, int64_t *v, bk_err *e) {
    int rc = BK_OK;
    if (rep->type == REDIS_REPLY_INTEGER)
        *v = rep->integer;
    else
        rc = bk_err_set(e, BK_E_PROTO, "unexpected Redis reply type %d", rep->type);
    freeReplyObject(rep);
    return rc;
}

#define KEYBUF(name) char name[BK_KEY_MAX]

/* ---- lease ---- */

int bk_lease_take(bk_redis *r, const char *svc, const char *id, int64_t min_ssi,
                  int64_t max_ssi, int lease_ms, int64_t *epoch, bk_err *e) {
    return bk_lease_take_above(r, svc, id, min_ssi, max_ssi, 0, lease_ms, epoch, e);
}

int bk_lease_take_above(bk_redis *r, const char *svc, const char *id, int64_t min_ssi,
                        int64_t max_ssi, int64_t min_epoch, int lease_ms, int64_t *epoch,
                        bk_err *e) {
    int64_t held_ms;
    return bk_lease_take_wait(r, svc, id, min_ssi, max_ssi, min_epoch, lease_ms, epoch,
                              &held_ms, e);
}

int bk_lease_take_wait(bk_redis *r, const char *svc, const char *id, int64_t min_ssi,
                       int64_t max_ssi, int64_t min_epoch, int lease_ms, int64_t *epoch,
                       int64_t *held_ms, bk_err *e) {
    *held_ms = -1;
    KEYBUF(kl);
    KEYBUF(ke);
    KEYBUF(ks);
    *epoch = 0;
    if (bk_key_leader(kl, sizeof(kl), svc, e) || bk_key_epoch(ke, sizeof(ke), svc, e) ||
        bk_key_ssi(ks, sizeof(ks), svc, e) || bk_keys_check_id(id, e))
        return BK_ERR;
    char a_max[24], a_min[24], a_ms[24], a_ep[24];
    snprintf(a_max, sizeof(a_max), "%" PRId64, max_ssi);
    snprintf(a_min, sizeof(a_min), "%" PRId64, min_ssi);
    snprintf(a_ms, sizeof(a_ms), "%d", lease_ms);
    snprintf(a_ep, sizeof(a_ep), "%" PRId64, min_epoch > 0 ? min_epoch : 0);
    const char *keys[] = {kl, ke, ks}, *args[] = {id, a_max, a_ms, a_min, a_ep};
    redisReply *rep = run(r, &bk_lua_lease_take, 3, keys, 5, args, e);
    if (rep == NULL)
        return bk_err_prefix(e, "cannot take the lease '%s'", kl);
    if (reply_i64(rep, epoch, e) != BK_OK)
        return BK_ERR;
    if (*epoch < 0) { /* held: -1 - its PTTL */
        *held_ms = -1 - *epoch;
        *epoch = 0;
    }
    if (*epoch == 0)
        return BK_OK;
    /* I9: the new epoch must be on a replica before its token is used, so
     * that a failover promoting that replica cannot hand it out again. Not
     * acknowledged: refuse the token (the lease taken with it expires
     * unused; the next take increments past it). */
    if (bk_redis_wait(r, lease_ms / 2 > 0 ? lease_ms / 2 : 1, e) != BK_OK) {
        int64_t ep = *epoch;
        *epoch = 0;
        return bk_err_prefix(e, "lease epoch %" PRId64 " refused", ep);
    }
    return BK_OK;
}

int bk_lease_renew(bk_redis *r, const char *svc, const char *id, int64_t epoch,
                   int lease_ms, bk_err *e) {
    KEYBUF(kl);
    KEYBUF(ke);
    if (bk_key_leader(kl, sizeof(kl), svc, e) || bk_key_epoch(ke, sizeof(ke), svc, e))
        return BK_ERR;
    char a_ep[24], a_ms[24];
    snprintf(a_ep, sizeof(a_ep), "%" PRId64, epoch);
    snprintf(a_ms, sizeof(a_ms), "%d", lease_ms);
    const char *keys[] = {ke, kl}, *args[] = {a_ep, id, a_ms};
    redisReply *rep = run(r, &bk_lua_lease_renew, 2, keys, 3, args, e);
    if (rep == NULL)
        return bk_err_prefix(e, "cannot renew the lease '%s'", kl);
    freeReplyObject(rep);
    return BK_OK;
}

int bk_lease_release(bk_redis *r, const char *svc, const char *id, int64_t epoch,
                     bk_err *e) {
    KEYBUF(kl);
    if (bk_key_leader(kl, sizeof(kl), svc, e))
        return BK_ERR;
    char val[BK_ID_MAX + 32];
    snprintf(val, sizeof(val), "%s %" PRId64, id, epoch);
    const char *keys[] = {kl}, *args[] = {val};
    redisReply *rep = run(r, &bk_lua_lease_release, 1, keys, 1, args, e);
    if (rep == NULL)
        return bk_err_prefix(e, "cannot release the lease '%s'", kl);
    freeReplyObject(rep);
    return BK_OK;
}

int bk_lease_get(bk_redis *r, const char *svc, char *id, int64_t *epoch, bk_err *e) {
    KEYBUF(kl);
    id[0] = '\0';
    *epoch = 0;
    if (bk_key_leader(kl, sizeof(kl), svc, e))
        return BK_ERR;
    redisReply *rep = bk_redis_command(r, e, "GET %s", kl);
    if (rep == NULL)
        return bk_err_prefix(e, "cannot read '%s'", kl);
    int rc = BK_OK;
    if (rep->type == REDIS_REPLY_STRING) {
        const char *sp = memchr(rep->str, ' ', rep->len);
        size_t idlen = sp ? (size_t)(sp - rep->str) : 0;
        char *end = NULL;
        long long v = sp ? strtoll(sp + 1, &end, 10) : 0;
        if (sp == NULL || idlen == 0 || idlen > BK_ID_MAX || end == sp + 1 ||
            *end != '\0')
            rc =
                bk_err_set(e, BK_E_PROTO, "unexpected value of '%s': '%s'", kl, rep->str);
        else {
            memcpy(id, rep->str, idlen);
            id[idlen] = '\0';
            *epoch = v;
        }
    }
    freeReplyObject(rep);
    return rc;
}

/* ---- fenced writes ---- */

/* Results per transaction: one AOF fsync each, and Redis busy with it
 * (other clients wait) a few ms: a result costs Redis about 1.2 us as a
 * field of a multi-field HSET (4.4 us as SET NX EX of its own key). */
#define COMMIT_CHUNK 4000

/* Fewer results than this go in bk_lua_commit alone: one round trip and
 * one AOF fsync, where the transaction below takes three and two (an fsync
 * about 0.3-0.7 ms on the development machine: about what the transaction
 * saves on 256 results). */
#define COMMIT_TX_MIN 256

/* Where one result goes (keys.h): mode 'h' (hash `key`, field `field`),
 * 'p' (string key `key`, SET NX) or 's' (only its key at its offset,
 * `key`). */
typedef struct rslot {
    char key[BK_KEY_MAX];
    char field[24];
    char mode;
} rslot;

static int result_slot(const char *svc, const bk_result_item *it, rslot *s, bk_err *e) {
    s->field[0] = '\0';
    if (it->secondary) {
        s->mode = 's';
        return bk_key_result_at(s->key, sizeof(s->key), svc, it->request_id, it->offset,
                                e);
    }
    bk_err ignored;
    if (bk_key_results(s->key, sizeof(s->key), s->field, sizeof(s->field), svc,
                       it->request_id, &ignored) == BK_OK) {
        s->mode = 'h';
        return BK_OK;
    }
    s->mode = 'p';
    return bk_key_result(s->key, sizeof(s->key), svc, it->request_id, e);
}

/* The results items[0..n-1] not stored yet and SSI with bk_lua_commit (one
 * fenced script): *ssi_now gets SSI after it. */
static int commit_script(bk_redis *r, const char *svc, const char *ke, const char *ks,
                         const char *chan, const char *token,
                         const bk_result_item *const *items, size_t n, const char *ttl,
                         int64_t ssi, int64_t *ssi_now, bk_err *e) {
    const char **keys = calloc(2 * n + 2, sizeof(*keys));
    const char **args = calloc(3 * n + 4, sizeof(*args));
    rslot *sl = n ? malloc(n * sizeof(*sl)) : NULL;
    char(*at)[BK_KEY_MAX] = n ? malloc(n * BK_KEY_MAX) : NULL;
    int rc = BK_ERR;
    if (keys == NULL || args == NULL || (n && (sl == NULL || at == NULL))) {
        bk_err_set(e, BK_E_NOMEM, "out of memory");
        goto out;
    }
    char a_ssi[24];
    snprintf(a_ssi, sizeof(a_ssi), "%" PRId64, ssi);
    keys[0] = ke;
    keys[1] = ks;
    args[0] = token;
    args[1] = a_ssi;
    args[2] = ttl;
    args[3] = chan;
    for (size_t i = 0; i < n; i++) {
        if (result_slot(svc, items[i], &sl[i], e) != BK_OK ||
            (sl[i].mode != 's' &&
             bk_key_result_at(at[i], BK_KEY_MAX, svc, items[i]->request_id,
                              items[i]->offset, e) != BK_OK))
            goto out;
        keys[2 + 2 * i] = sl[i].key;
        keys[3 + 2 * i] = sl[i].mode == 's' ? sl[i].key : at[i]; /* 's': the same */
        args[4 + 3 * i] = items[i]->json;
        args[5 + 3 * i] = sl[i].mode == 'h' ? "h" : sl[i].mode == 'p' ? "p" : "s";
        args[6 + 3 * i] = sl[i].field;
    }
    redisReply *rep =
        run(r, &bk_lua_commit, 2 * (int)n + 2, keys, 3 * (int)n + 4, args, e);
    if (rep == NULL) {
        bk_err_prefix(e, "cannot commit results and SSI");
        goto out;
    }
    int64_t now = -1;
    rc = reply_i64(rep, &now, e);
    if (rc == BK_OK && ssi_now != NULL)
        *ssi_now = now;
out:
    free(keys);
    free(args);
    free(sl);
    free(at);
    return rc;
}

/* Forget a WATCH left by a transaction that did not reach EXEC, on the
 * connection it was made on (none: nothing to forget). */
static void unwatch(bk_redis *r) {
    bk_err ignored;
    bk_err_clear(&ignored);
    const char *argv[] = {"UNWATCH"};
    bk_redis_cmd c = {1, argv, NULL};
    redisReply *rep = NULL;
    if (bk_redis_pipeline(r, 0, 1, &c, &rep, &ignored) == BK_OK)
        freeReplyObject(rep);
}

static uint64_t fnv(uint64_t h, const char *p) {
    for (; *p; p++)
        h = (h ^ (unsigned char)*p) * 1099511628211ULL;
    return h;
}
#define FNV_BASIS 1469598103934665603ULL

/* The results of one chunk by hash: group g holds the 'h' results of one
 * hash, first[g], then nxt[] (in offset order), count[g] of them. The
 * fields a chunk writes are a set (field_new), so that a request id twice
 * in one chunk is written once (the second is a repeat). Both tables: open
 * addressing over indexes + 1 (0: empty), `mask` + 1 slots >= 2n. */
typedef struct groups {
    const rslot *sl;
    size_t *gmap, *fset, mask, ng;
    size_t *first, *last, *count, *nxt;
} groups;

static int groups_init(groups *G, const rslot *sl, size_t n) {
    size_t size = 1;
    while (size < 2 * n)
        size <<= 1;
    *G = (groups){sl,
                  calloc(size, sizeof(size_t)),
                  calloc(size, sizeof(size_t)),
                  size - 1,
                  0,
                  malloc(n * sizeof(size_t)),
                  malloc(n * sizeof(size_t)),
                  malloc(n * sizeof(size_t)),
                  malloc(n * sizeof(size_t))};
    return G->gmap && G->fset && G->first && G->last && G->count && G->nxt;
}

static void groups_free(groups *G) {
    free(G->gmap);
    free(G->fset);
    free(G->first);
    free(G->last);
    free(G->count);
    free(G->nxt);
}

/* Put result i (an 'h' slot) in the group of its hash. */
static void groups_add(groups *G, size_t i) {
    const char *key = G->sl[i].key;
    size_t k = fnv(FNV_BASIS, key) & G->mask;
    while (G->gmap[k] != 0 && strcmp(G->sl[G->first[G->gmap[k] - 1]].key, key) != 0)
        k = (k + 1) & G->mask;
    G->nxt[i] = (size_t)-1;
    if (G->gmap[k] == 0) {
        size_t g = G->ng++;
        G->gmap[k] = g + 1;
        G->first[g] = G->last[g] = i;
        G->count[g] = 1;
        return;
    }
    size_t g = G->gmap[k] - 1;
    G->nxt[G->last[g]] = i;
    G->last[g] = i;
    G->count[g]++;
}

/* Add result i's (hash, field) to the set; 0 if the chunk writes it already. */
static int field_new(groups *G, size_t i) {
    const rslot *s = &G->sl[i];
    size_t k = fnv(fnv(FNV_BASIS, s->key), s->field) & G->mask;
    for (;; k = (k + 1) & G->mask) {
        if (G->fset[k] == 0) {
            G->fset[k] = i + 1;
            return 1;
        }
        const rslot *o = &G->sl[G->fset[k] - 1];
        if (strcmp(o->field, s->field) == 0 && strcmp(o->key, s->key) == 0)
            return 0;
    }
}

/* What the transaction does with a result (commit_chunk). */
enum { W_HSET, W_SETNX, W_AT };

/* One chunk of bk_fenced_commit. The results go in a MULTI/EXEC that the
 * epoch key fences. First round trip: WATCH the epoch and GET it (the token
 * checked here, as FENCE_CHECK does) and HMGET the fields of the results of
 * each hash (one HMGET per hash), so that a field already there (a repeat,
 * or the same result committed again) is not overwritten: that result goes
 * to its key at its offset, as the script's HSETNX does. Only a leader of
 * this epoch writes results, so what HMGET saw stays true until EXEC (an
 * expiry in between loses nothing the TTL had not taken). Second round
 * trip, on the same connection (bk_redis_pipeline never reconnects between
 * the two; a lost connection fails the chunk, which the caller's retry runs
 * whole again): MULTI, per hash one HSET of its new fields and one EXPIRE,
 * SET NX for the ids not of the hash form, SET of the keys at an offset,
 * GET SSI, EXEC. The epoch taken after the check makes EXEC refuse (nil):
 * FENCED, nothing of the chunk written. Then bk_lua_commit (fenced too)
 * does again the SET NX that found its key taken, writing the key at its
 * offset, and raises SSI (ssi >= 0): after every result of the chunk is
 * stored, as I3 needs. Small chunks (COMMIT_TX_MIN) use the script alone. */
static int commit_chunk(bk_redis *r, const char *svc, const char *ke, const char *ks,
                        const char *chan, const char *token, const bk_result_item *items,
                        size_t n, const char *ttl, int64_t ssi, int64_t *ssi_now,
                        bk_err *e) {
    if (n < COMMIT_TX_MIN) {
        const bk_result_item *all[COMMIT_TX_MIN];
        for (size_t i = 0; i < n; i++)
            all[i] = &items[i];
        return commit_script(r, svc, ke, ks, chan, token, all, n, ttl, ssi, ssi_now, e);
    }
    const int has_ttl = strcmp(ttl, "0") != 0;
    rslot *sl = malloc(n * sizeof(*sl));
    groups G;
    int gok = groups_init(&G, sl, n);
    unsigned char *what = malloc(n);
    char **atk = calloc(n, sizeof(*atk));
    /* commands: WATCH GET + one HMGET per hash; MULTI + per hash HSET and
     * EXPIRE + per result at most one SET + GET EXEC */
    const size_t ncmd = 4 * n + 8, nargv = 8 * n + 16;
    bk_redis_cmd *cmds = calloc(ncmd, sizeof(*cmds));
    const char **argv = calloc(nargv, sizeof(*argv));
    redisReply **reps = calloc(ncmd, sizeof(*reps));
    int *cmd_item = calloc(ncmd, sizeof(*cmd_item)); /* a SET NX's item, else -1 */
    const bk_result_item **again = calloc(n, sizeof(*again));
    int rc = BK_ERR, watching = 0;
    size_t k = 0, nrep = 0;
    if (sl == NULL || !gok || what == NULL || atk == NULL || cmds == NULL ||
        argv == NULL || reps == NULL || cmd_item == NULL || again == NULL) {
        bk_err_set(e, BK_E_NOMEM, "out of memory");
        goto out;
    }
    for (size_t i = 0; i < n; i++) {
        if (result_slot(svc, &items[i], &sl[i], e) != BK_OK)
            goto out;
        what[i] = sl[i].mode == 'h' ? W_HSET : sl[i].mode == 'p' ? W_SETNX : W_AT;
        if (sl[i].mode == 'h')
            groups_add(&G, i);
    }
    /* WATCH epoch; GET epoch; HMGET hash field... per hash */
    const char **a = argv;
    a[0] = "WATCH";
    a[1] = ke;
    a[2] = "GET";
    a[3] = ke;
    cmds[k++] = (bk_redis_cmd){2, a, NULL};
    cmds[k++] = (bk_redis_cmd){2, a + 2, NULL};
    a += 4;
    for (size_t g = 0; g < G.ng; g++) {
        const char **c0 = a;
        *a++ = "HMGET";
        *a++ = sl[G.first[g]].key;
        for (size_t i = G.first[g]; i != (size_t)-1; i = G.nxt[i])
            *a++ = sl[i].field;
        cmds[k++] = (bk_redis_cmd){(int)(a - c0), c0, NULL};
    }
    if (bk_redis_pipeline(r, 1, k, cmds, reps, e) != BK_OK) {
        bk_err_prefix(e, "cannot commit results and SSI");
        goto out;
    }
    nrep = k;
    watching = 1;
    int fresh = reps[1]->type == REDIS_REPLY_STRING && strcmp(reps[1]->str, token) == 0;
    if (!fresh) {
        bk_err_set(e, BK_E_FENCED, "FENCED stale token %s, epoch is %s", token,
                   reps[1]->type == REDIS_REPLY_STRING ? reps[1]->str : "nil");
        goto out;
    }
    /* a field there already (or twice in the chunk): its key at its offset */
    for (size_t g = 0; g < G.ng; g++) {
        const redisReply *h = reps[2 + g];
        if (h->type != REDIS_REPLY_ARRAY || h->elements != G.count[g]) {
            bk_err_set(e, BK_E_REMOTE, "Redis: HMGET of results: %s",
                       h->type == REDIS_REPLY_ERROR ? h->str : "unexpected reply");
            goto out;
        }
        size_t j = 0;
        for (size_t i = G.first[g]; i != (size_t)-1; i = G.nxt[i], j++)
            if (h->element[j]->type != REDIS_REPLY_NIL || !field_new(&G, i))
                what[i] = W_AT;
    }
    for (size_t i = 0; i < nrep; i++) {
        freeReplyObject(reps[i]);
        reps[i] = NULL;
    }
    nrep = 0;
    for (size_t i = 0; i < n; i++) {
        if (what[i] != W_AT || sl[i].mode == 's')
            continue;
        char at[BK_KEY_MAX];
        if (bk_key_result_at(at, sizeof(at), svc, items[i].request_id, items[i].offset,
                             e) != BK_OK)
            goto out;
        if ((atk[i] = strdup(at)) == NULL) {
            bk_err_set(e, BK_E_NOMEM, "out of memory");
            goto out;
        }
    }
    /* MULTI; per hash HSET + EXPIRE; SET NX [EX] / SET at [EX]; GET ssi; EXEC */
    k = 0;
    a = argv;
    static const char *const multi[] = {"MULTI"}, *const exec[] = {"EXEC"};
    cmd_item[k] = -1;
    cmds[k++] = (bk_redis_cmd){1, (const char **)multi, NULL};
    for (size_t g = 0; g < G.ng; g++) {
        const char **c0 = a;
        *a++ = "HSET";
        *a++ = sl[G.first[g]].key;
        for (size_t i = G.first[g]; i != (size_t)-1; i = G.nxt[i])
            if (what[i] == W_HSET) {
                *a++ = sl[i].field;
                *a++ = items[i].json;
            }
        if (a - c0 == 2) { /* every one a repeat */
            a = c0;
            continue;
        }
        cmd_item[k] = -1;
        cmds[k++] = (bk_redis_cmd){(int)(a - c0), c0, NULL};
        if (has_ttl) {
            const char **c1 = a;
            *a++ = "EXPIRE";
            *a++ = sl[G.first[g]].key;
            *a++ = ttl;
            cmd_item[k] = -1;
            cmds[k++] = (bk_redis_cmd){3, c1, NULL};
        }
    }
    for (size_t i = 0; i < n; i++) {
        if (what[i] == W_HSET)
            continue;
        const char **c0 = a;
        *a++ = "SET";
        *a++ = atk[i] != NULL ? atk[i] : sl[i].key; /* 's': its key is the one at */
        *a++ = items[i].json;
        if (what[i] == W_SETNX)
            *a++ = "NX";
        if (has_ttl) {
            *a++ = "EX";
            *a++ = ttl;
        }
        cmd_item[k] = what[i] == W_SETNX ? (int)i : -1;
        cmds[k++] = (bk_redis_cmd){(int)(a - c0), c0, NULL};
    }
    a[0] = "GET";
    a[1] = ks;
    cmd_item[k] = -1;
    cmds[k++] = (bk_redis_cmd){2, a, NULL};
    cmds[k++] = (bk_redis_cmd){1, (const char **)exec, NULL};
    if (bk_redis_pipeline(r, 0, k, cmds, reps, e) != BK_OK) {
        bk_err_prefix(e, "cannot commit results and SSI");
        goto out;
    }
    nrep = k;
    watching = 0; /* EXEC ends the WATCH, run or refused */
    redisReply *x = reps[k - 1];
    if (x->type == REDIS_REPLY_NIL) {
        bk_err_set(e, BK_E_FENCED, "FENCED epoch moved from %s during the commit", token);
        goto out;
    }
    if (x->type != REDIS_REPLY_ARRAY || x->elements != k - 2) {
        bk_err_set(e, BK_E_PROTO, "unexpected reply to EXEC (type %d)", x->type);
        goto out;
    }
    size_t nagain = 0;
    for (size_t j = 0; j + 1 < x->elements; j++) {
        const redisReply *s = x->element[j];
        int item = cmd_item[j + 1];
        if (s->type == REDIS_REPLY_STATUS || s->type == REDIS_REPLY_INTEGER)
            continue;
        if (s->type == REDIS_REPLY_NIL && item >= 0) {
            again[nagain++] = &items[item]; /* a repeat: its key at its offset */
            continue;
        }
        bk_err_set(e, BK_E_REMOTE, "Redis: storing a result: %s",
                   s->type == REDIS_REPLY_ERROR ? s->str : "unexpected reply");
        goto out;
    }
    if (nagain > 0 || ssi >= 0) {
        rc = commit_script(r, svc, ke, ks, chan, token, again, nagain, ttl, ssi, ssi_now,
                           e);
        goto out;
    }
    const redisReply *gs = x->element[x->elements - 1];
    int64_t now = -1;
    if (gs->type == REDIS_REPLY_STRING)
        now = strtoll(gs->str, NULL, 10);
    if (ssi_now != NULL)
        *ssi_now = now;
    rc = BK_OK;
out:
    if (watching)
        unwatch(r);
    if (reps != NULL)
        for (size_t i = 0; i < nrep; i++)
            if (reps[i] != NULL)
                freeReplyObject(reps[i]);
    if (atk != NULL)
        for (size_t i = 0; i < n; i++)
            free(atk[i]);
    free(sl);
    groups_free(&G);
    free(what);
    free(atk);
    free(cmds);
    free(argv);
    free(reps);
    free(cmd_item);
    free(again);
    return rc;
}

int bk_fenced_commit(bk_redis *r, const char *svc, int64_t epoch,
                     const bk_result_item *items, size_t n, int ttl_s, int64_t ssi,
                     int64_t *ssi_now, bk_err *e) {
    KEYBUF(ke);
    KEYBUF(ks);
    KEYBUF(kc);
    if (bk_key_epoch(ke, sizeof(ke), svc, e) || bk_key_ssi(ks, sizeof(ks), svc, e) ||
        bk_key_changes(kc, sizeof(kc), svc, e))
        return BK_ERR;
    char token[24], ttl[24];
    snprintf(token, sizeof(token), "%" PRId64, epoch);
    snprintf(ttl, sizeof(ttl), "%d", ttl_s > 0 ? ttl_s : 0);
    size_t done = 0;
    do {
        size_t k = n - done > COMMIT_CHUNK ? COMMIT_CHUNK : n - done;
        int last = done + k == n;
        if (commit_chunk(r, svc, ke, ks, kc, token, items + done, k, ttl, last ? ssi : -1,
                         ssi_now, e) != BK_OK)
            return BK_ERR;
        done += k;
    } while (done < n);
    return BK_OK;
}

int bk_fenced_ssi_commit(bk_redis *r, const char *svc, int64_t epoch, int64_t ssi,
                         int64_t floor, int64_t *ssi_now, bk_err *e) {
    KEYBUF(ke);
    KEYBUF(ks);
    KEYBUF(kl);
    KEYBUF(kc);
    if (bk_key_epoch(ke, sizeof(ke), svc, e) || bk_key_ssi(ks, sizeof(ks), svc, e) ||
        bk_key_ext_lost(kl, sizeof(kl), svc, e) || bk_key_changes(kc, sizeof(kc), svc, e))
        return BK_ERR;
    char token[24], a_ssi[24], a_floor[24];
    snprintf(token, sizeof(token), "%" PRId64, epoch);
    snprintf(a_ssi, sizeof(a_ssi), "%" PRId64, ssi);
    snprintf(a_floor, sizeof(a_floor), "%" PRId64, floor);
    const char *keys[] = {ke, ks, kl}, *args[] = {token, a_ssi, a_floor, kc};
    redisReply *rep = run(r, &bk_lua_ssi_commit, 3, keys, 4, args, e);
    if (rep == NULL)
        return bk_err_prefix(e, "cannot raise SSI to %" PRId64, ssi);
    int64_t now = -1;
    if (reply_i64(rep, &now, e) != BK_OK)
        return BK_ERR;
    if (ssi_now != NULL)
        *ssi_now = now;
    return BK_OK;
}

static int fenced_raise(bk_redis *r, const char *svc, int64_t epoch, const char *target,
                        int64_t v, int64_t *now, bk_err *e) {
    KEYBUF(ke);
    if (bk_key_epoch(ke, sizeof(ke), svc, e))
        return BK_ERR;
    char token[24], a_v[24];
    snprintf(token, sizeof(token), "%" PRId64, epoch);
    snprintf(a_v, sizeof(a_v), "%" PRId64, v);
    const char *keys[] = {ke, target}, *args[] = {token, a_v};
    redisReply *rep = run(r, &bk_lua_fenced_raise, 2, keys, 2, args, e);
    if (rep == NULL)
        return bk_err_prefix(e, "cannot raise '%s'", target);
    int64_t x = 0;
    if (reply_i64(rep, &x, e) != BK_OK)
        return BK_ERR;
    if (now != NULL)
        *now = x;
    return BK_OK;
}

int bk_fenced_sv_raise(bk_redis *r, const char *svc, int64_t epoch, int64_t v,
                       int64_t *now, bk_err *e) {
    KEYBUF(k);
    if (bk_key_sv(k, sizeof(k), svc, e))
        return BK_ERR;
    return fenced_raise(r, svc, epoch, k, v, now, e);
}

int bk_fenced_ssv_raise(bk_redis *r, const char *svc, int64_t epoch, const char *id,
                        int64_t v, int64_t *now, bk_err *e) {
    KEYBUF(k);
    if (bk_key_ssv(k, sizeof(k), svc, id, e))
        return BK_ERR;
    return fenced_raise(r, svc, epoch, k, v, now, e);
}

int bk_fenced_backup(bk_redis *r, const char *svc, int64_t epoch, const char *phase,
                     bk_err *e) {
    if (phase != NULL && !phase_ok(phase))
        return bk_err_set(e, BK_E_INVAL, "invalid backup phase '%s'", phase);
    return bk_fenced_backup_step(r, svc, epoch, BK_PHASE_ANY, phase, 0, NULL, NULL, NULL,
                                 e);
}

int bk_fenced_backup_step(bk_redis *r, const char *svc, int64_t epoch, const char *expect,
                          const char *to, int ttl_ms, const char *aux_name,
                          const char *aux_val, int *done, bk_err *e) {
    KEYBUF(ke);
    KEYBUF(kb);
    KEYBUF(kc);
    KEYBUF(ka);
    if (done != NULL)
        *done = 0;
    if (bk_key_epoch(ke, sizeof(ke), svc, e) || bk_key_backup(kb, sizeof(kb), svc, e) ||
        bk_key_changes(kc, sizeof(kc), svc, e))
        return BK_ERR;
    if (aux_name != NULL && bk_key_backup_aux(ka, sizeof(ka), svc, aux_name, e))
        return BK_ERR;
    if (aux_name == NULL)
        memcpy(ka, kb, sizeof(ka));
    if (to != NULL && (to[0] == '\0' || strchr(to, '\n') != NULL))
        return bk_err_set(e, BK_E_INVAL, "invalid backup phase value '%s'", to);
    const char *mode = expect == NULL ? "*" : expect[0] == '\0' ? "-" : "=";
    char token[24], ttl[24];
    snprintf(token, sizeof(token), "%" PRId64, epoch);
    snprintf(ttl, sizeof(ttl), "%d", ttl_ms > 0 ? ttl_ms : ttl_ms < 0 ? -1 : 0);
    const char *keys[] = {ke, kb, ka};
    const char *args[] = {token,
                          mode,
                          expect ? expect : "",
                          to ? to : "",
                          ttl,
                          kc,
                          aux_name && aux_val ? aux_val : ""};
    redisReply *rep = run(r, &bk_lua_backup_step, 3, keys, 7, args, e);
    if (rep == NULL)
        return bk_err_prefix(e, "cannot set the backup phase '%s'", kb);
    int64_t x = 0;
    if (reply_i64(rep, &x, e) != BK_OK)
        return BK_ERR;
    if (done != NULL)
        *done = x == 1;
    return BK_OK;
}

int bk_fenced_backup_finish(bk_redis *r, const char *svc, int64_t epoch,
                            const char *leader_id, int64_t version, int64_t cut,
                            int64_t *sv_now, bk_err *e) {
    KEYBUF(ke);
    KEYBUF(ksv);
    KEYBUF(kssv);
    KEYBUF(kl);
    KEYBUF(kb);
    KEYBUF(kc);
    if (bk_key_epoch(ke, sizeof(ke), svc, e) || bk_key_sv(ksv, sizeof(ksv), svc, e) ||
        bk_key_ssv(kssv, sizeof(kssv), svc, leader_id, e) ||
        bk_key_backup_aux(kl, sizeof(kl), svc, "backup-last", e) ||
        bk_key_backup(kb, sizeof(kb), svc, e) || bk_key_changes(kc, sizeof(kc), svc, e))
        return BK_ERR;
    char token[24], a_v[24], a_c[24];
    snprintf(token, sizeof(token), "%" PRId64, epoch);
    snprintf(a_v, sizeof(a_v), "%" PRId64, version);
    snprintf(a_c, sizeof(a_c), "%" PRId64, cut);
    const char *keys[] = {ke, ksv, kssv, kl, kb}, *args[] = {token, a_v, a_c, kc};
    redisReply *rep = run(r, &bk_lua_backup_finish, 5, keys, 4, args, e);
    if (rep == NULL)
        return bk_err_prefix(e, "cannot finish backup version %" PRId64, version);
    int64_t x = 0;
    if (reply_i64(rep, &x, e) != BK_OK)
        return BK_ERR;
    if (sv_now != NULL)
        *sv_now = x;
    return BK_OK;
}

/* ---- InfoDID's external index ---- */

static const char *ext_kind_word(int kind) {
    switch (kind) {
    case BK_EXT_SET:
        return "SET";
    case BK_EXT_DEL:
        return "DEL";
    case BK_EXT_HSET:
        return "HSET";
    case BK_EXT_HDEL:
        return "HDEL";
    case BK_EXT_INCRBY:
        return "INCRBY";
    }
    return NULL;
}

/* An op's 3 script arguments (kind, then value or field and value) at
 * argv[*a]; a number made here goes into nums[*m]. */
static void put_op(const bk_ext_op *op, const char **argv, size_t *a, char (*nums)[24],
                   size_t *m) {
    argv[(*a)++] = ext_kind_word(op->kind);
    if (op->kind == BK_EXT_INCRBY) {
        snprintf(nums[*m], 24, "%" PRId64, op->by);
        argv[(*a)++] = nums[(*m)++];
        argv[(*a)++] = "";
    } else if (op->kind == BK_EXT_SET) {
        argv[(*a)++] = op->value;
        argv[(*a)++] = "";
    } else {
        argv[(*a)++] = op->field ? op->field : "";
        argv[(*a)++] = op->value ? op->value : "";
    }
}

/* Check one op of the record at `offset` (nothing is written when any is
 * bad: a script stopped halfway would keep its first writes). */
static int ext_op_check(const bk_ext_op *op, int64_t offset, bk_err *e) {
    const char *w = ext_kind_word(op->kind);
    if (w == NULL)
        return bk_err_set(e, BK_E_INVAL,
                          "external write of offset %" PRId64 ": unknown op kind %d",
                          offset, op->kind);
    if (!bk_ext_name_ok(op->name))
        return bk_err_set(e, BK_E_INVAL,
                          "external write of offset %" PRId64
                          ": invalid key name '%.140s' "
                          "(1 to %d bytes of A-Z a-z 0-9 . _ - :, not 'applied')",
                          offset, op->name ? op->name : "", BK_EXT_NAME_MAX);
    int need_field = op->kind == BK_EXT_HSET || op->kind == BK_EXT_HDEL;
    int need_value = op->kind == BK_EXT_SET || op->kind == BK_EXT_HSET;
    if ((need_field && op->field == NULL) || (need_value && op->value == NULL))
        return bk_err_set(
            e, BK_E_INVAL, "external write of offset %" PRId64 ": %s '%s' without its %s",
            offset, w, op->name, need_field && !op->field ? "field" : "value");
    return BK_OK;
}

int bk_ext_write(bk_redis *r, const char *svc, int64_t epoch, const bk_ext_rec *recs,
                 size_t n, int64_t *ran, bk_err *e) {
    if (ran != NULL)
        *ran = 0;
    if (n == 0)
        return BK_OK;
    size_t nops = 0;
    for (size_t i = 0; i < n; i++) {
        if (i > 0 && recs[i].offset <= recs[i - 1].offset)
            return bk_err_set(e, BK_E_INVAL,
                              "external write: offset %" PRId64 " after %" PRId64
                              " (offsets must increase)",
                              recs[i].offset, recs[i - 1].offset);
        if (recs[i].n > 0 && recs[i].ops == NULL)
            return bk_err_set(e, BK_E_INVAL,
                              "external write of offset %" PRId64 ": no ops array",
                              recs[i].offset);
        for (size_t j = 0; j < recs[i].n; j++)
            if (ext_op_check(&recs[i].ops[j], recs[i].offset, e) != BK_OK)
                return BK_ERR;
        nops += recs[i].n;
    }
    /* argv: epoch, ext:applied, a key per op, then the token, 2 per record
     * and 3 per op; the strings made here live in `nums` and `keys` */
    size_t nkeys = 2 + nops, argc = nkeys + 1 + 2 * n + 3 * nops;
    const char **argv = calloc(argc, sizeof(*argv));
    char(*nums)[24] = calloc(1 + 2 * n + nops, 24);
    char(*keys)[BK_KEY_MAX] = calloc(nkeys, BK_KEY_MAX);
    int rc = BK_ERR;
    if (argv == NULL || nums == NULL || keys == NULL) {
        bk_err_set(e, BK_E_NOMEM, "out of memory");
        goto out;
    }
    if (bk_key_epoch(keys[0], BK_KEY_MAX, svc, e) ||
        bk_key_ext_applied(keys[1], BK_KEY_MAX, svc, e))
        goto out;
    size_t k = 2, a = nkeys, m = 0;
    argv[0] = keys[0];
    argv[1] = keys[1];
    snprintf(nums[m], 24, "%" PRId64, epoch);
    argv[a++] = nums[m++];
    for (size_t i = 0; i < n; i++) {
        snprintf(nums[m], 24, "%" PRId64, recs[i].offset);
        argv[a++] = nums[m++];
        snprintf(nums[m], 24, "%zu", recs[i].n);
        argv[a++] = nums[m++];
        for (size_t j = 0; j < recs[i].n; j++) {
            const bk_ext_op *op = &recs[i].ops[j];
            if (bk_key_ext(keys[k], BK_KEY_MAX, svc, op->name, e) != BK_OK)
                goto out;
            argv[k] = keys[k];
            k++;
            put_op(op, argv, &a, nums, &m);
        }
    }
    redisReply *rep =
        bk_script_eval(r, &bk_lua_ext_write, (int)nkeys, (int)argc, argv, NULL, e);
    if (rep != NULL) {
        if (ran != NULL && rep->type == REDIS_REPLY_INTEGER)
            *ran = rep->integer;
        freeReplyObject(rep);
        rc = BK_OK;
    }
out:
    free(argv);
    free(nums);
    free(keys);
    return rc;
}

int bk_ext_replace(bk_redis *r, const char *svc, int64_t epoch, int64_t offset,
                   const bk_ext_op *ops, size_t n, bk_err *e) {
    if (n > 0 && ops == NULL)
        return bk_err_set(e, BK_E_INVAL, "external view of offset %" PRId64 ": no ops",
                          offset);
    for (size_t j = 0; j < n; j++)
        if (ext_op_check(&ops[j], offset, e) != BK_OK)
            return BK_ERR;
    /* argv: epoch, ext:applied, ext-lost, a key per op, then the token,
     * the offset, the pattern and 3 per op */
    size_t nkeys = 3 + n, argc = nkeys + 3 + 3 * n;
    const char **argv = calloc(argc, sizeof(*argv));
    char(*nums)[24] = calloc(2 + n, 24);
    char(*keys)[BK_KEY_MAX] = calloc(nkeys, BK_KEY_MAX);
    char prefix[BK_KEY_MAX], pat[2 * BK_KEY_MAX + 2];
    int rc = BK_ERR;
    if (argv == NULL || nums == NULL || keys == NULL) {
        bk_err_set(e, BK_E_NOMEM, "out of memory");
        goto out;
    }
    if (bk_key_epoch(keys[0], BK_KEY_MAX, svc, e) ||
        bk_key_ext_applied(keys[1], BK_KEY_MAX, svc, e) ||
        bk_key_ext_lost(keys[2], BK_KEY_MAX, svc, e) ||
        bk_key_ext_prefix(prefix, sizeof(prefix), svc, e))
        goto out;
    size_t q = 0; /* the prefix as a glob: its * ? [ ] \ escaped, then * */
    for (const char *c = prefix; *c; c++) {
        if (strchr("*?[]\\", *c) != NULL)
            pat[q++] = '\\';
        pat[q++] = *c;
    }
    pat[q++] = '*';
    pat[q] = '\0';
    size_t a = nkeys, m = 0;
    for (size_t i = 0; i < 3; i++)
        argv[i] = keys[i];
    snprintf(nums[m], 24, "%" PRId64, epoch);
    argv[a++] = nums[m++];
    snprintf(nums[m], 24, "%" PRId64, offset);
    argv[a++] = nums[m++];
    argv[a++] = pat;
    for (size_t j = 0; j < n; j++) {
        const bk_ext_op *op = &ops[j];
        if (bk_key_ext(keys[3 + j], BK_KEY_MAX, svc, op->name, e) != BK_OK)
            goto out;
        argv[3 + j] = keys[3 + j];
        put_op(op, argv, &a, nums, &m);
    }
    redisReply *rep =
        bk_script_eval(r, &bk_lua_ext_replace, (int)nkeys, (int)argc, argv, NULL, e);
    if (rep != NULL) {
        freeReplyObject(rep);
        rc = BK_OK;
    } else
        bk_err_prefix(e, "cannot replace the external view");
out:
    free(argv);
    free(nums);
    free(keys);
    return rc;
}

int bk_ext_applied_get(bk_redis *r, const char *svc, int64_t *offset, bk_err *e) {
    KEYBUF(k);
    if (bk_key_ext_applied(k, sizeof(k), svc, e))
        return BK_ERR;
    return bk_keys_get_i64(r, k, -1, offset, e);
}

int bk_backup_phase_parse(const char *s, bk_backup_phase *p) {
    memset(p, 0, sizeof(*p));
    p->cut = -1;
    if (s == NULL)
        return BK_OK;
    char word[sizeof(p->phase)];
    long long ep = 0, cut = -1;
    int n = 0;
    if (sscanf(s, "%15s %lld %lld%n", word, &ep, &cut, &n) != 3 || s[n] != '\0')
        return BK_ERR;
    memcpy(p->phase, word, sizeof(word));
    p->epoch = ep;
    p->cut = cut;
    p->set = 1;
    return BK_OK;
}

void bk_backup_phase_format(char *buf, size_t size, const char *phase, int64_t epoch,
                            int64_t cut) {
    snprintf(buf, size, "%s %" PRId64 " %" PRId64, phase, epoch, cut);
}

int bk_backup_phase_get(bk_redis *r, const char *svc, bk_backup_phase *p, char *raw,
                        size_t raw_size, bk_err *e) {
    KEYBUF(kb);
    bk_backup_phase_parse(NULL, p);
    if (raw != NULL && raw_size > 0)
        raw[0] = '\0';
    if (bk_key_backup(kb, sizeof(kb), svc, e))
        return BK_ERR;
    redisReply *rep = bk_redis_command(r, e, "GET %s", kb);
    if (rep == NULL)
        return bk_err_prefix(e, "cannot read '%s'", kb);
    int rc = BK_OK;
    if (rep->type == REDIS_REPLY_STRING) {
        if (raw != NULL && raw_size > 0)
            snprintf(raw, raw_size, "%s", rep->str);
        if (bk_backup_phase_parse(rep->str, p) != BK_OK) {
            /* an older or hand-written value: a phase word only */
            snprintf(p->phase, sizeof(p->phase), "%.15s", rep->str);
            p->set = 1;
            p->epoch = 0;
        }
    } else if (rep->type != REDIS_REPLY_NIL) {
        rc =
            bk_err_set(e, BK_E_PROTO, "unexpected reply type %d for '%s'", rep->type, kb);
    }
    freeReplyObject(rep);
    return rc;
}

int bk_backup_last_get(bk_redis *r, const char *svc, int64_t *version, int64_t *cut,
                       bk_err *e) {
    KEYBUF(k);
    *version = 1;
    *cut = -1;
    if (bk_key_backup_aux(k, sizeof(k), svc, "backup-last", e))
        return BK_ERR;
    redisReply *rep = bk_redis_command(r, e, "GET %s", k);
    if (rep == NULL)
        return bk_err_prefix(e, "cannot read '%s'", k);
    int rc = BK_OK;
    long long v = 0, c = 0;
    if (rep->type == REDIS_REPLY_STRING) {
        if (sscanf(rep->str, "%lld %lld", &v, &c) == 2) {
            *version = v;
            *cut = c;
        } else {
            rc = bk_err_set(e, BK_E_PROTO, "'%s' is not '<version> <cut>': '%s'", k,
                            rep->str);
        }
    } else if (rep->type != REDIS_REPLY_NIL) {
        rc = bk_err_set(e, BK_E_PROTO, "unexpected reply type %d for '%s'", rep->type, k);
    }
    freeReplyObject(rep);
    return rc;
}

int bk_backup_now_request(bk_redis *r, const char *svc, bk_err *e) {
    KEYBUF(k);
    KEYBUF(kc);
    if (bk_key_backup_aux(k, sizeof(k), svc, "backup-now", e) ||
        bk_key_changes(kc, sizeof(kc), svc, e))
        return BK_ERR;
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    long long ms = (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
    redisReply *rep = bk_redis_command(r, e, "SET %s %lld", k, ms);
    if (rep == NULL)
        return bk_err_prefix(e, "cannot request a backup ('%s')", k);
    freeReplyObject(rep);
    rep = bk_redis_command(r, e, "PUBLISH %s backup-now", kc);
    if (rep == NULL)
        return bk_err_prefix(e, "cannot announce the backup request");
    freeReplyObject(rep);
    return BK_OK;
}

/* ---- non-fenced writes ---- */

/* Raise `target` to v if higher, not fenced (bk_lua_raise); *now (may be
 * NULL) gets its value after; `what` names the action in an error. */
static int raise_to(bk_redis *r, const char *target, int64_t v, int64_t *now,
                    const char *what, bk_err *e) {
    char a_v[24];
    snprintf(a_v, sizeof(a_v), "%" PRId64, v);
    const char *keys[] = {target}, *args[] = {a_v};
    redisReply *rep = run(r, &bk_lua_raise, 1, keys, 1, args, e);
    if (rep == NULL)
        return bk_err_prefix(e, "cannot %s '%s'", what, target);
    int64_t x = 0;
    if (reply_i64(rep, &x, e) != BK_OK)
        return BK_ERR;
    if (now != NULL)
        *now = x;
    return BK_OK;
}

int bk_ext_lost_check(bk_redis *r, const char *svc, int64_t seen, int64_t *ssi,
                      int64_t *lost, bk_err *e) {
    KEYBUF(k);
    KEYBUF(kl);
    if (bk_key_ssi(k, sizeof(k), svc, e) || bk_key_ext_lost(kl, sizeof(kl), svc, e))
        return BK_ERR;
    char a_v[24];
    snprintf(a_v, sizeof(a_v), "%" PRId64, seen);
    const char *keys[] = {k, kl}, *args[] = {a_v};
    redisReply *rep = run(r, &bk_lua_ssi_restore, 2, keys, 1, args, e);
    if (rep == NULL)
        return bk_err_prefix(e, "cannot restore '%s'", k);
    int rc = BK_OK;
    if (rep->type != REDIS_REPLY_ARRAY || rep->elements != 2 ||
        rep->element[0]->type != REDIS_REPLY_INTEGER ||
        rep->element[1]->type != REDIS_REPLY_INTEGER)
        rc = bk_err_set(e, BK_E_PROTO, "unexpected Redis reply to the SSI restore");
    else {
        if (ssi != NULL)
            *ssi = rep->element[0]->integer;
        if (lost != NULL)
            *lost = rep->element[1]->integer;
    }
    freeReplyObject(rep);
    return rc;
}

int bk_ssi_restore(bk_redis *r, const char *svc, int64_t v, int64_t *now, bk_err *e) {
    return bk_ext_lost_check(r, svc, v, now, NULL, e);
}

int bk_ssv_raise(bk_redis *r, const char *svc, const char *id, int64_t v, int64_t *now,
                 bk_err *e) {
    KEYBUF(k);
    if (bk_key_ssv(k, sizeof(k), svc, id, e))
        return BK_ERR;
    return raise_to(r, k, v, now, "raise", e);
}

static int setnx1(bk_redis *r, const char *k, bk_err *e) {
    redisReply *rep = bk_redis_command(r, e, "SET %s 1 NX", k);
    if (rep == NULL)
        return bk_err_prefix(e, "cannot initialise '%s'", k);
    freeReplyObject(rep);
    return BK_OK;
}

int bk_versions_init(bk_redis *r, const char *svc, const char *id, bk_err *e) {
    KEYBUF(ksv);
    KEYBUF(kssv);
    if (bk_key_sv(ksv, sizeof(ksv), svc, e) || bk_key_ssv(kssv, sizeof(kssv), svc, id, e))
        return BK_ERR;
    if (setnx1(r, ksv, e) != BK_OK || setnx1(r, kssv, e) != BK_OK)
        return BK_ERR;
    return BK_OK;
}

int bk_heartbeat(bk_redis *r, const char *svc, const char *id, int ttl_ms, bk_err *e) {
    KEYBUF(km);
    KEYBUF(ka);
    if (bk_key_members(km, sizeof(km), svc, e) ||
        bk_key_alive(ka, sizeof(ka), svc, id, e))
        return BK_ERR;
    struct timeval tv;
    gettimeofday(&tv, NULL);
    char now[24], ttl[24];
    snprintf(now, sizeof(now), "%lld", (long long)tv.tv_sec * 1000 + tv.tv_usec / 1000);
    snprintf(ttl, sizeof(ttl), "%d", ttl_ms > 0 ? ttl_ms : 1);
    const char *keys[] = {km, ka}, *args[] = {id, now, ttl};
    redisReply *rep = run(r, &bk_lua_heartbeat, 2, keys, 3, args, e);
    if (rep == NULL)
        return bk_err_prefix(e, "cannot write the heartbeat '%s'", ka);
    freeReplyObject(rep);
    return BK_OK;
}

int bk_leave(bk_redis *r, const char *svc, const char *id, bk_err *e) {
    KEYBUF(km);
    KEYBUF(ka);
    if (bk_key_members(km, sizeof(km), svc, e) ||
        bk_key_alive(ka, sizeof(ka), svc, id, e))
        return BK_ERR;
    redisReply *rep = bk_redis_command(r, e, "SREM %s %s", km, id);
    if (rep == NULL)
        return bk_err_prefix(e, "cannot leave '%s'", km);
    freeReplyObject(rep);
    rep = bk_redis_command(r, e, "DEL %s", ka);
    if (rep == NULL)
        return bk_err_prefix(e, "cannot delete '%s'", ka);
    freeReplyObject(rep);
    return BK_OK;
}

int bk_lpi_mirror(bk_redis *r, const char *svc, const char *id, int64_t lpi, bk_err *e) {
    KEYBUF(k);
    if (bk_key_lpi(k, sizeof(k), svc, id, e))
        return BK_ERR;
    redisReply *rep = bk_redis_command(r, e, "SET %s %lld", k, (long long)lpi);
    if (rep == NULL)
        return bk_err_prefix(e, "cannot write '%s'", k);
    freeReplyObject(rep);
    return BK_OK;
}

int bk_metrics_write(bk_redis *r, const char *svc, const char *id,
                     const char *const *fields, const char *const *values, size_t n,
                     bk_err *e) {
    KEYBUF(k);
    if (bk_key_metrics(k, sizeof(k), svc, id, e))
        return BK_ERR;
    if (n == 0)
        return BK_OK;
    size_t argc = 2 + 2 * n;
    const char **argv = malloc(argc * sizeof(*argv));
    size_t *lens = malloc(argc * sizeof(*lens));
    int rc = BK_ERR;
    if (argv == NULL || lens == NULL) {
        bk_err_set(e, BK_E_NOMEM, "out of memory");
        goto out;
    }
    argv[0] = "HSET";
    argv[1] = k;
    for (size_t i = 0; i < n; i++) {
        argv[2 + 2 * i] = fields[i];
        argv[3 + 2 * i] = values[i];
    }
    for (size_t i = 0; i < argc; i++)
        lens[i] = strlen(argv[i]);
    redisReply *rep = bk_redis_commandv(r, e, (int)argc, argv, lens);
    if (rep == NULL) {
        bk_err_prefix(e, "cannot write '%s'", k);
        goto out;
    }
    freeReplyObject(rep);
    rc = BK_OK;
out:
    free(argv);
    free(lens);
    return rc;
}

/* ---- reads ---- */

int bk_keys_get_i64(bk_redis *r, const char *k, int64_t def, int64_t *v, bk_err *e) {
    redisReply *rep = bk_redis_command(r, e, "GET %s", k);
    if (rep == NULL)
        return bk_err_prefix(e, "cannot read '%s'", k);
    int rc = BK_OK;
    if (rep->type == REDIS_REPLY_NIL) {
        *v = def;
    } else if (rep->type == REDIS_REPLY_STRING) {
        char *end = NULL;
        long long x = strtoll(rep->str, &end, 10);
        if (end == rep->str || *end != '\0')
            rc = bk_err_set(e, BK_E_PROTO, "'%s' is not an integer: '%s'", k, rep->str);
        else
            *v = x;
    } else {
        rc = bk_err_set(e, BK_E_PROTO, "unexpected reply type %d for '%s'", rep->type, k);
    }
    freeReplyObject(rep);
    return rc;
}

int bk_ssi_get(bk_redis *r, const char *svc, int64_t *ssi, bk_err *e) {
    KEYBUF(k);
    if (bk_key_ssi(k, sizeof(k), svc, e))
        return BK_ERR;
    return bk_keys_get_i64(r, k, -1, ssi, e);
}

int bk_sv_get(bk_redis *r, const char *svc, int64_t *sv, bk_err *e) {
    KEYBUF(k);
    if (bk_key_sv(k, sizeof(k), svc, e))
        return BK_ERR;
    return bk_keys_get_i64(r, k, 1, sv, e);
}

int bk_ssv_get(bk_redis *r, const char *svc, const char *id, int64_t *ssv, bk_err *e) {
    KEYBUF(k);
    if (bk_key_ssv(k, sizeof(k), svc, id, e))
        return BK_ERR;
    return bk_keys_get_i64(r, k, 1, ssv, e);
}

int bk_epoch_get(bk_redis *r, const char *svc, int64_t *epoch, bk_err *e) {
    KEYBUF(k);
    if (bk_key_epoch(k, sizeof(k), svc, e))
        return BK_ERR;
    return bk_keys_get_i64(r, k, 0, epoch, e);
}
