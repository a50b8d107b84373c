/* objects.c - the objects a backup stores besides the leader's state: the
 * store snapshot and the external state, both read at the cut; sealing,
 * storing and reading an object back (backupd_int.h). */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "backup/backuplog.h"
#include "backup/seal.h"
#include "backupd_int.h"
#include "base/clock.h"
#include "base/hex.h"
#include "base/log.h"

/* The application's external state lives under br2k:{svc}:ext: (InfoDID:
 * ext:applied, ext:active, ext:did; worker/apps/infodid/INFODID.md); the
 * names come from redis/keys.h (bk_key_ext_prefix, bk_key_ext_applied). */

/* ---- the store snapshot ---- */

/* GET key into obj[key] (JSON null when absent). */
static int snap_key(bd *d, json_t *obj, const char *k, bk_err *e) {
    redisReply *rep = bk_redis_command(d->r, e, "GET %s", k);
    if (rep == NULL)
        return bk_err_prefix(e, "cannot read '%s'", k);
    json_object_set_new(
        obj, k, rep->type == REDIS_REPLY_STRING ? json_string(rep->str) : json_null());
    freeReplyObject(rep);
    return BK_OK;
}

json_t *bd_store_snapshot(bd *d, const bd_run *u, bk_err *e) {
    const char *svc = d->o->service;
    json_t *keys = json_object();
    char k[BK_KEY_MAX], km[BK_KEY_MAX], when[32];
    int rc = BK_OK;
    rc |= bk_key_sv(k, sizeof(k), svc, e) || snap_key(d, keys, k, e);
    rc |= bk_key_ssi(k, sizeof(k), svc, e) || snap_key(d, keys, k, e);
    rc |= bk_key_epoch(k, sizeof(k), svc, e) || snap_key(d, keys, k, e);
    rc |= bk_key_leader(k, sizeof(k), svc, e) || snap_key(d, keys, k, e);
    rc |=
        bk_key_backup_aux(k, sizeof(k), svc, "backup-last", e) || snap_key(d, keys, k, e);
    size_t i;
    json_t *v;
    json_array_foreach(u->members, i, v) {
        const char *id = json_string_value(v);
        rc |= bk_key_ssv(k, sizeof(k), svc, id, e) || snap_key(d, keys, k, e);
        rc |= bk_key_lpi(k, sizeof(k), svc, id, e) || snap_key(d, keys, k, e);
        rc |= bk_key_alive(k, sizeof(k), svc, id, e) || snap_key(d, keys, k, e);
    }
    if (rc != BK_OK || bk_key_members(km, sizeof(km), svc, e) != BK_OK) {
        json_decref(keys);
        return NULL;
    }
    json_object_set(keys, km, u->members);
    bk_blog_time(bk_wall_ms(), when);
    return json_pack("{ss ss ss sI so}", "format", "br2k.store-snapshot.v1", "service",
                     svc, "taken", when, "cut_offset", (json_int_t)u->cut, "keys", keys);
}

/* ---- the external state ---- */

/* The reply of bk_lua_external_read (redis/keys.h): these, then a type and
 * a value per key. */
#define EXT_HEAD 4 /* elements of the reply before the keys */

static int cmp_str(const void *a, const void *b) {
    return strcmp(*(char *const *)a, *(char *const *)b);
}

static void names_free(char **v, size_t n) {
    for (size_t i = 0; i < n; i++)
        free(v[i]);
    free(v);
}

/* The names of the keys under prefix (SCAN): sorted, each once. */
static int scan_keys(bd *d, const char *prefix, char ***out, size_t *nout, bk_err *e) {
    char cursor[32] = "0", pattern[BK_KEY_MAX + 2];
    char **v = NULL;
    size_t n = 0, cap = 0;
    snprintf(pattern, sizeof(pattern), "%s*", prefix);
    *out = NULL;
    *nout = 0;
    do {
        redisReply *rep =
            bk_redis_command(d->r, e, "SCAN %s MATCH %s COUNT 10000", cursor, pattern);
        if (rep == NULL) {
            names_free(v, n);
            return bk_err_prefix(e, "cannot list the keys '%s'", pattern);
        }
        const redisReply *ks = rep->type == REDIS_REPLY_ARRAY && rep->elements == 2 &&
                                       rep->element[0]->type == REDIS_REPLY_STRING
                                   ? rep->element[1]
                                   : NULL;
        if (ks == NULL || ks->type != REDIS_REPLY_ARRAY) {
            freeReplyObject(rep);
            names_free(v, n);
            return bk_err_set(e, BK_E_PROTO, "SCAN of '%s': unexpected reply", pattern);
        }
        snprintf(cursor, sizeof(cursor), "%s", rep->element[0]->str);
        for (size_t i = 0; i < ks->elements; i++) {
            if (ks->element[i]->type != REDIS_REPLY_STRING)
                continue;
            if (n == cap) {
                cap = cap ? 2 * cap : 16;
                char **nv = realloc(v, cap * sizeof(*v));
                if (nv == NULL) {
                    freeReplyObject(rep);
                    names_free(v, n);
                    return bk_err_set(e, BK_E_NOMEM, "out of memory");
                }
                v = nv;
            }
            v[n] = strdup(ks->element[i]->str);
            if (v[n] == NULL) {
                freeReplyObject(rep);
                names_free(v, n);
                return bk_err_set(e, BK_E_NOMEM, "out of memory");
            }
            n++;
        }
        freeReplyObject(rep);
    } while (strcmp(cursor, "0") != 0);
    if (n > 1)
        qsort(v, n, sizeof(*v), cmp_str);
    size_t m = 0; /* SCAN may return a key twice */
    for (size_t i = 0; i < n; i++) {
        if (m > 0 && strcmp(v[m - 1], v[i]) == 0)
            free(v[i]);
        else
            v[m++] = v[i];
    }
    *out = v;
    *nout = m;
    return BK_OK;
}

/* One name or value as JSON text: UTF-8 as it is, or lowercase hex.
 * NULL when it is not UTF-8 (or out of memory). */
static json_t *text_of(const redisReply *x, int hex) {
    if (!hex)
        return json_stringn(x->str, x->len);
    char *h = bk_hex_encode_alloc((const uint8_t *)x->str, x->len, 0);
    json_t *j = h ? json_string(h) : NULL;
    free(h);
    return j;
}

/* Byte order of two string replies (the order of a set's members). */
static int cmp_reply(const void *a, const void *b) {
    const redisReply *x = *(redisReply *const *)a, *y = *(redisReply *const *)b;
    size_t n = x->len < y->len ? x->len : y->len;
    int c = memcmp(x->str, y->str, n);
    return c != 0 ? c : (x->len > y->len) - (x->len < y->len);
}

/* The content v of a key of type t as JSON (backuplog.h); NULL when a
 * name or value is not UTF-8 (and hex is 0), or out of memory. */
static json_t *key_value(const char *t, redisReply *v, int hex) {
    int pairs = strcmp(t, "hash") == 0 || strcmp(t, "zset") == 0;
    if (strcmp(t, "string") == 0)
        return v->elements == 1 ? text_of(v->element[0], hex) : NULL;
    if (strcmp(t, "set") == 0 && v->elements > 1)
        qsort(v->element, v->elements, sizeof(*v->element), cmp_reply);
    if (pairs && v->elements % 2 != 0)
        return NULL;
    json_t *out = pairs ? json_object() : json_array();
    for (size_t i = 0; out != NULL && i < v->elements; i += pairs ? 2 : 1) {
        json_t *a = text_of(v->element[i], hex);
        if (a == NULL)
            goto fail;
        if (pairs) {
            json_t *b = text_of(v->element[i + 1], hex); /* stolen below */
            int r = b == NULL ? -1
                              : json_object_setn_new(out, json_string_value(a),
                                                     json_string_length(a), b);
            json_decref(a);
            if (r != 0)
                goto fail;
        } else if (json_array_append_new(out, a) != 0) {
            goto fail;
        }
    }
    return out;
fail:
    json_decref(out);
    return NULL;
}

/* Check that the phase read with the keys still says the leader of
 * u->epoch holds at u->cut. */
static int still_held(const bd_run *u, const redisReply *ep, const redisReply *ph,
                      bk_err *e) {
    bk_backup_phase p;
    memset(&p, 0, sizeof(p));
    char want[32];
    snprintf(want, sizeof(want), "%" PRId64, u->epoch);
    int ok = ep->type == REDIS_REPLY_STRING && strcmp(ep->str, want) == 0 &&
             ph->type == REDIS_REPLY_STRING &&
             bk_backup_phase_parse(ph->str, &p) == BK_OK && p.set &&
             strcmp(p.phase, "held") == 0 && p.epoch == u->epoch && p.cut == u->cut;
    if (ok)
        return BK_OK;
    return bk_err_set(e, BK_E_STATE,
                      "the external state cannot be read at the cut %" PRId64
                      ": the leader '%s' of epoch %" PRId64
                      " no longer holds there (epoch now '%.24s', phase '%.64s')",
                      u->cut, u->leader, u->epoch,
                      ep->type == REDIS_REPLY_STRING ? ep->str : "",
                      ph->type == REDIS_REPLY_STRING ? ph->str : "");
}

/* Build the external state from the script's reply. */
static json_t *ext_build(bd *d, const bd_run *u, redisReply *rep, bk_err *e) {
    const bd_ext *x = &u->ext;
    json_t *kv = json_object();
    int64_t applied = -1;
    for (size_t i = 0; kv != NULL && i < x->n; i++) {
        const char *name = x->names[i];
        const redisReply *t = rep->element[EXT_HEAD + 2 * i];
        redisReply *v = rep->element[EXT_HEAD + 1 + 2 * i];
        const char *type =
            t->type == REDIS_REPLY_STRING || t->type == REDIS_REPLY_STATUS ? t->str : "?";
        if (strcmp(type, "none") == 0) /* deleted since it was found */
            continue;
        if (v->type != REDIS_REPLY_ARRAY ||
            (strcmp(type, "string") != 0 && strcmp(type, "hash") != 0 &&
             strcmp(type, "set") != 0 && strcmp(type, "list") != 0 &&
             strcmp(type, "zset") != 0)) {
            bk_err_set(e, BK_E_STATE,
                       "the external key '%s' is a %.16s: backupd stores strings, "
                       "hashes, sets, lists and sorted sets",
                       name, type);
            json_decref(kv);
            return NULL;
        }
        int hex = 0;
        json_t *val = key_value(type, v, 0);
        if (val == NULL) {
            hex = 1;
            val = key_value(type, v, 1);
        }
        if (val == NULL) {
            json_decref(kv);
            kv = NULL;
            break;
        }
        if (json_object_set_new(kv, name,
                                json_pack("{ss ss so}", "type", type, "encoding",
                                          hex ? "hex" : "utf-8", "value", val)) != 0) {
            bk_err_set(e, BK_E_STATE, "the external key '%.120s' is not UTF-8 text",
                       name);
            json_decref(kv);
            return NULL;
        }
    }
    if (kv == NULL) {
        bk_err_set(e, BK_E_NOMEM, "out of memory");
        return NULL;
    }
    if (x->has_cut) {
        char *end = NULL;
        long long a = strtoll(x->applied_cut, &end, 10);
        if (end != NULL && *end == '\0' && end != x->applied_cut && a >= -1)
            applied = a;
    }
    if (applied > u->cut)
        BK_WARN("the external state records offset %" PRId64 " as applied, beyond the "
                "cut %" PRId64 " (effects made by an earlier leader before it was "
                "fenced; replaying those records changes nothing)",
                applied, u->cut);
    char when[32];
    bk_blog_time(bk_wall_ms(), when);
    json_t *j =
        json_pack("{ss ss ss sI sI sI ss so}", "format", BK_EXTERNAL_FORMAT, "service",
                  d->o->service, "taken", when, "epoch", (json_int_t)u->epoch,
                  "cut_offset", (json_int_t)u->cut, "applied_offset", (json_int_t)applied,
                  "prefix", x->prefix, "keys", kv);
    if (j == NULL)
        bk_err_set(e, BK_E_NOMEM, "out of memory");
    return j;
}

/* GET key into val[size] (*has 0 and "" when absent). */
static int get_raw(bd *d, const char *k, int *has, char *val, size_t size, bk_err *e) {
    redisReply *rep = bk_redis_command(d->r, e, "GET %s", k);
    if (rep == NULL)
        return bk_err_prefix(e, "cannot read '%s'", k);
    *has = rep->type == REDIS_REPLY_STRING;
    snprintf(val, size, "%s", *has ? rep->str : "");
    freeReplyObject(rep);
    return BK_OK;
}

static void ext_raw_free(bd_ext *x);

void bd_ext_free(bd_ext *x) {
    ext_raw_free(x);
    names_free(x->names, x->n);
    memset(x, 0, sizeof(*x));
}

int bd_external_discover(bd *d, bd_run *u, bk_err *e) {
    bd_ext *x = &u->ext;
    char ka[BK_KEY_MAX + 16];
    bd_ext_free(x);
    if (bk_key_ext_prefix(x->prefix, sizeof(x->prefix), d->o->service, e) != BK_OK ||
        bk_key_ext_applied(ka, sizeof(ka), d->o->service, e) != BK_OK)
        return BK_ERR;
    /* applied first: unchanged at the cut, nothing was written meanwhile */
    if (get_raw(d, ka, &x->has_found, x->applied_found, sizeof(x->applied_found), e) !=
        BK_OK)
        return BK_ERR;
    if (scan_keys(d, x->prefix, &x->names, &x->n, e) != BK_OK)
        return BK_ERR;
    /* how large it is (--view-fields): the fields of each hash until the
     * sum passes the limit; a key of another kind counts 1 */
    long long lim = d->o->view_fields;
    x->fields = (long long)x->n;
    if (lim < 0 || x->fields > lim)
        return BK_OK;
    x->fields = 0;
    for (size_t i = 0; i < x->n && x->fields <= lim; i++) {
        redisReply *rep = bk_redis_command(d->r, e, "TYPE %s", x->names[i]);
        if (rep == NULL)
            return bk_err_prefix(e, "cannot read the type of '%s'", x->names[i]);
        int hash = rep->type == REDIS_REPLY_STATUS && strcmp(rep->str, "hash") == 0;
        freeReplyObject(rep);
        if (!hash) {
            x->fields++;
            continue;
        }
        /* (a key retyped in between: an error, the backup is tried again) */
        rep = bk_redis_command(d->r, e, "HLEN %s", x->names[i]);
        if (rep == NULL)
            return bk_err_prefix(e, "cannot count the fields of '%s'", x->names[i]);
        x->fields += rep->type == REDIS_REPLY_INTEGER ? rep->integer : 1;
        freeReplyObject(rep);
    }
    return BK_OK;
}

/* A hash read with HSCAN in pieces of about 1000 fields into *agg: an
 * array reply whose elements point into the pieces' replies (kept in
 * *pieces, *npieces; agg_free releases both). */
static int hscan_all(bd *d, const char *key, redisReply **agg, redisReply ***pieces,
                     size_t *npieces, bk_err *e) {
    char cursor[32] = "0";
    redisReply **pv = NULL, *a = calloc(1, sizeof(*a));
    size_t np = 0, total = 0;
    if (a == NULL)
        return bk_err_set(e, BK_E_NOMEM, "out of memory");
    a->type = REDIS_REPLY_ARRAY;
    do {
        redisReply *rep =
            bk_redis_command(d->r, e, "HSCAN %s %s COUNT 10000", key, cursor);
        if (rep == NULL)
            goto fail;
        if (rep->type != REDIS_REPLY_ARRAY || rep->elements != 2 ||
            rep->element[0]->type != REDIS_REPLY_STRING ||
            rep->element[1]->type != REDIS_REPLY_ARRAY ||
            rep->element[1]->elements % 2 != 0) {
            freeReplyObject(rep);
            bk_err_set(e, BK_E_PROTO, "HSCAN of '%s': unexpected reply", key);
            goto fail;
        }
        redisReply **npv = realloc(pv, (np + 1) * sizeof(*pv));
        redisReply **ne =
            realloc(a->element, (total + rep->element[1]->elements + 1) * sizeof(*ne));
        if (npv != NULL)
            pv = npv;
        if (ne != NULL)
            a->element = ne;
        if (npv == NULL || ne == NULL) {
            freeReplyObject(rep);
            bk_err_set(e, BK_E_NOMEM, "out of memory");
            goto fail;
        }
        pv[np++] = rep;
        snprintf(cursor, sizeof(cursor), "%s", rep->element[0]->str);
        for (size_t i = 0; i < rep->element[1]->elements; i++)
            a->element[total++] = rep->element[1]->element[i];
    } while (strcmp(cursor, "0") != 0);
    a->elements = total; /* a field seen twice (a rehash): the same value */
    *agg = a;
    *pieces = pv;
    *npieces = np;
    return BK_OK;
fail:
    for (size_t i = 0; i < np; i++)
        freeReplyObject(pv[i]);
    free(pv);
    free(a->element);
    free(a);
    return bk_err_prefix(e, "cannot read the external key '%s'", key);
}

static void agg_free(redisReply *agg, redisReply **pieces, size_t n) {
    for (size_t i = 0; i < n; i++)
        freeReplyObject(pieces[i]);
    free(pieces);
    if (agg != NULL)
        free(agg->element);
    free(agg);
}

/* The large hashes of the reply ("hash+") read in pieces into it (their
 * replies kept in *keep); then the head read again: the leader still holds
 * at the cut and ext:applied did not move, so no external write came
 * between the script and the last piece. */
static int read_large(bd *d, bd_run *u, redisReply *rep, const char **argv,
                      redisReply ***keep, size_t *nkeep, bk_err *e) {
    bd_ext *x = &u->ext;
    size_t large = 0;
    for (size_t i = 0; i < x->n; i++) {
        redisReply *t = rep->element[EXT_HEAD + 2 * i];
        if (t->type != REDIS_REPLY_STRING || strcmp(t->str, "hash+") != 0)
            continue;
        redisReply *agg = NULL, **pv = NULL;
        size_t np = 0;
        if (hscan_all(d, x->names[i], &agg, &pv, &np, e) != BK_OK)
            return BK_ERR;
        redisReply **nk = realloc(*keep, (*nkeep + np + 1) * sizeof(*nk));
        if (nk == NULL) {
            agg_free(agg, pv, np);
            return bk_err_set(e, BK_E_NOMEM, "out of memory");
        }
        *keep = nk;
        for (size_t j = 0; j < np; j++)
            (*keep)[(*nkeep)++] = pv[j]; /* agg's strings live in these */
        free(pv);
        freeReplyObject(rep->element[EXT_HEAD + 1 + 2 * i]);
        rep->element[EXT_HEAD + 1 + 2 * i] = agg; /* detached before rep is freed */
        t->str[4] = '\0';                         /* "hash" */
        t->len = 4;
        t->type = REDIS_REPLY_STATUS; /* marks it as read in pieces */
        large++;
    }
    if (large == 0)
        return BK_OK;
    redisReply *again = bk_script_eval(d->r, &bk_lua_external_read, 3, 3, argv, NULL, e);
    if (again == NULL)
        return bk_err_prefix(e, "cannot read the external state again");
    int rc = BK_OK;
    if (again->type != REDIS_REPLY_ARRAY || again->elements != EXT_HEAD ||
        again->element[2]->type != REDIS_REPLY_INTEGER ||
        again->element[3]->type != REDIS_REPLY_STRING)
        rc = bk_err_set(e, BK_E_PROTO, "reading the external state: unexpected reply");
    else if ((rc = still_held(u, again->element[0], again->element[1], e)) == BK_OK &&
             ((again->element[2]->integer == 1) != x->has_cut ||
              strcmp(again->element[3]->str, x->applied_cut) != 0))
        rc = bk_err_set(e, BK_E_STATE,
                        "the external state changed while its %zu large key(s) were read "
                        "in pieces at the cut %" PRId64
                        " (applied '%s', now '%s'): this backup is given up",
                        large, u->cut, x->applied_cut, again->element[3]->str);
    freeReplyObject(again);
    if (rc == BK_OK)
        BK_INFO("external state at the cut %" PRId64 ": %zu hash(es) of more than 1000 "
                "fields read in pieces (HSCAN), unchanged meanwhile",
                u->cut, large);
    return rc;
}

/* Free the replies read at the cut (bd_external_read): the hashes read in
 * pieces are arrays whose strings live in the pieces (x->keep). */
static void ext_raw_free(bd_ext *x) {
    redisReply *rep = x->rep;
    for (size_t i = 0; rep != NULL && rep->type == REDIS_REPLY_ARRAY && i < x->n &&
                       EXT_HEAD + 2 * i + 1 < rep->elements;
         i++) {
        redisReply *t = rep->element[EXT_HEAD + 2 * i];
        if (t->type == REDIS_REPLY_STATUS && strcmp(t->str, "hash") == 0) {
            agg_free(rep->element[EXT_HEAD + 1 + 2 * i], NULL, 0); /* not its strings */
            rep->element[EXT_HEAD + 1 + 2 * i] = NULL;
        }
    }
    for (size_t i = 0; i < x->nkeep; i++)
        freeReplyObject(x->keep[i]);
    free(x->keep);
    if (rep != NULL)
        freeReplyObject(rep);
    x->rep = NULL;
    x->keep = NULL;
    x->nkeep = 0;
}

/* Every key of the script's reply is of a kind backupd stores (known at
 * the cut, before the leader resumes; ext_build checks it again). */
static int check_types(const bd_ext *x, const redisReply *rep, bk_err *e) {
    static const char *const kinds[] = {"string", "hash", "hash+", "set",
                                        "list",   "zset", "none"};
    for (size_t i = 0; i < x->n; i++) {
        const redisReply *t = rep->element[EXT_HEAD + 2 * i];
        const char *type = t->type == REDIS_REPLY_STRING ? t->str : "?";
        size_t k = 0;
        while (k < sizeof(kinds) / sizeof(kinds[0]) && strcmp(type, kinds[k]) != 0)
            k++;
        if (k == sizeof(kinds) / sizeof(kinds[0]))
            return bk_err_set(e, BK_E_STATE,
                              "the external key '%s' is a %.16s: backupd stores strings, "
                              "hashes, sets, lists and sorted sets",
                              x->names[i], type);
    }
    return BK_OK;
}

int bd_external_read(bd *d, bd_run *u, bk_err *e) {
    bd_ext *x = &u->ext;
    const char *svc = d->o->service;
    char kep[BK_KEY_MAX], kph[BK_KEY_MAX], ka[BK_KEY_MAX + 16];
    ext_raw_free(x);
    if (bk_key_epoch(kep, sizeof(kep), svc, e) != BK_OK ||
        bk_key_backup(kph, sizeof(kph), svc, e) != BK_OK ||
        bk_key_ext_applied(ka, sizeof(ka), svc, e) != BK_OK)
        return BK_ERR;
    const char **argv = calloc(x->n + 3, sizeof(*argv));
    if (argv == NULL)
        return bk_err_set(e, BK_E_NOMEM, "out of memory");
    argv[0] = kep;
    argv[1] = kph;
    argv[2] = ka;
    for (size_t i = 0; i < x->n; i++)
        argv[3 + i] = x->names[i];
    double t0 = bk_mono_msf();
    redisReply *rep = bk_script_eval(d->r, &bk_lua_external_read, (int)(x->n + 3),
                                     (int)(x->n + 3), argv, NULL, e);
    x->ms_script = bk_mono_msf() - t0;
    int rc = BK_ERR;
    x->rep = rep; /* from here on, freed by ext_raw_free */
    if (rep == NULL) {
        bk_err_prefix(e, "cannot read the external state '%s*'", x->prefix);
    } else if (rep->type != REDIS_REPLY_ARRAY || rep->elements != EXT_HEAD + 2 * x->n ||
               rep->element[2]->type != REDIS_REPLY_INTEGER ||
               rep->element[3]->type != REDIS_REPLY_STRING) {
        bk_err_set(e, BK_E_PROTO, "reading the external state: unexpected reply");
    } else if (still_held(u, rep->element[0], rep->element[1], e) == BK_OK &&
               check_types(x, rep, e) == BK_OK) {
        x->has_cut = rep->element[2]->integer == 1;
        snprintf(x->applied_cut, sizeof(x->applied_cut), "%s", rep->element[3]->str);
        t0 = bk_mono_msf();
        rc = read_large(d, u, rep, argv, &x->keep, &x->nkeep, e);
        x->ms_pieces = bk_mono_msf() - t0;
    }
    free(argv);
    if (rc != BK_OK)
        ext_raw_free(x);
    return rc;
}

json_t *bd_external_build(bd *d, bd_run *u, bk_err *e) {
    bd_ext *x = &u->ext;
    if (x->rep == NULL) {
        bk_err_set(e, BK_E_STATE,
                   "the external state read at the cut %" PRId64 " is not here (backupd "
                   "restarted since): this backup is given up",
                   u->cut);
        return NULL;
    }
    json_t *j = ext_build(d, u, x->rep, e);
    ext_raw_free(x);
    return j;
}

int bd_external_confirm(bd *d, bd_run *u, bk_err *e) {
    const bd_ext *x = &u->ext;
    /* every external write records its offset in <prefix>applied in the
     * same atomic step (I5): unchanged from before the key names were
     * listed to the cut, nothing was written, no key created */
    if (x->has_found && x->has_cut && strcmp(x->applied_found, x->applied_cut) == 0)
        return BK_OK;
    char **now = NULL;
    size_t n = 0, j = 0;
    if (scan_keys(d, x->prefix, &now, &n, e) != BK_OK)
        return BK_ERR;
    /* both sorted: is every key there now one of those read at the cut? */
    const char *extra = NULL;
    for (size_t i = 0; i < n && extra == NULL; i++) {
        while (j < x->n && strcmp(x->names[j], now[i]) < 0)
            j++;
        if (j == x->n || strcmp(x->names[j], now[i]) != 0)
            extra = now[i];
    }
    int rc = BK_OK;
    if (extra != NULL)
        rc = bk_err_set(e, BK_E_STATE,
                        "the external key '%.120s' appeared while the backup ran, "
                        "maybe before the cut %" PRId64
                        ": this backup is given up (the next one reads it at its cut)",
                        extra, u->cut);
    names_free(now, n);
    return rc;
}
/* ---- storing ---- */

int bd_read_back(bd *d, const char *what, const char *obj, const char *sha, int64_t size,
                 bk_err *e) {
    void *data = NULL;
    size_t len = 0;
    char got[65];
    if (bk_storage_get(d->st, obj, &data, &len, e) != BK_OK)
        return bk_err_prefix(e, "cannot read the %s back", what);
    int rc = bk_sha256_hex(data, len, got, e);
    free(data);
    if (rc == BK_OK && (strcmp(got, sha) != 0 || (int64_t)len != size))
        rc = bk_err_set(e, BK_E_STATE,
                        "%s object '%s' reads back as %zu bytes with sha256 %s, "
                        "expected %" PRId64 " bytes with %s",
                        what, obj, len, got, size, sha);
    return rc;
}

int bd_put_object(bd *d, const bd_run *u, const char *kind, const char *what,
                  const char *type, const json_t *content, json_t **meta, bk_err *e) {
    char sha[65], name[BK_STORAGE_NAME_MAX + 1], *wrapped = NULL;
    size_t slen = 0;
    *meta = NULL;
    char *text = json_dumps(content, JSON_COMPACT | JSON_SORT_KEYS);
    if (text == NULL)
        return bk_err_set(e, BK_E_NOMEM, "out of memory");
    size_t len = strlen(text);
    int rc = bk_blog_put_sealed(d->st, u->version, kind, text, len, d->pub, name, sha,
                                &slen, &wrapped, e);
    free(text);
    if (rc == BK_OK)
        rc = bd_read_back(d, what, name, sha, (int64_t)slen, e);
    if (rc != BK_OK) {
        free(wrapped);
        return BK_ERR;
    }
    *meta = bk_blog_object_meta(name, sha, slen, len, wrapped, type, "br2k-backupd");
    free(wrapped);
    return *meta ? BK_OK : bk_err_set(e, BK_E_NOMEM, "out of memory");
}
