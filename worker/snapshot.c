/* snapshot.c - the leader's part of state-version-up, step 4 (DESIGN.md):
 * the snapshot of the application's state at the cut offset C, sealed and
 * stored off-chain, reported to backupd through Redis.
 *
 * It runs in a child process forked by the leader while it holds at C:
 * the child has a copy-on-write image of the state at C, so the leader
 * resumes at once and the service stalls only for the fork (the paper
 * stops the whole service for a backup). The child talks to Redis over a
 * connection of its own, and every write it makes is fenced with the
 * leader's token: a child of a deposed leader writes nothing. */
#include <inttypes.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>
#include <time.h>

#include "backup/backuplog.h"
#include "base/clock.h"
#include "base/hex.h"
#include "redis/keys.h"
#include "base/log.h"
#include "redis/redis.h"
#include "snapshot.h"
#include "backup/storage.h"

/* Read and check backup-req: the request backupd wrote with the phase. */
static json_t *read_request(bk_redis *r, const char *svc, int64_t epoch, int64_t cut,
                            bk_err *e) {
    char k[BK_KEY_MAX];
    if (bk_key_backup_aux(k, sizeof(k), svc, "backup-req", e) != BK_OK)
        return NULL;
    redisReply *rep = bk_redis_command(r, e, "GET %s", k);
    if (rep == NULL)
        return NULL;
    json_t *req = NULL;
    if (rep->type != REDIS_REPLY_STRING) {
        bk_err_set(e, BK_E_STATE, "no backup request in '%s'", k);
    } else {
        json_error_t je;
        req = json_loadb(rep->str, rep->len, 0, &je);
        if (req == NULL)
            bk_err_set(e, BK_E_PROTO, "backup request '%s' is not JSON: %s", k, je.text);
    }
    freeReplyObject(rep);
    if (req == NULL)
        return NULL;
    json_int_t rep_epoch = json_integer_value(json_object_get(req, "epoch"));
    json_int_t rep_cut = json_integer_value(json_object_get(req, "cut"));
    const char *url = json_string_value(json_object_get(req, "storage"));
    const char *pub = json_string_value(json_object_get(req, "pubkey"));
    if (rep_epoch != epoch || rep_cut != cut || url == NULL || pub == NULL ||
        !json_is_integer(json_object_get(req, "version"))) {
        bk_err_set(e, BK_E_PROTO,
                   "backup request does not match epoch %" PRId64 " and cut %" PRId64
                   " or lacks storage, pubkey or version",
                   epoch, cut);
        json_decref(req);
        return NULL;
    }
    return req;
}

/* ---- the external state from the application's view ---- */

/* The view's keys as the external state holds them (backuplog.h: what
 * backupd reads from Redis): "<prefix><name>" -> {"type": "string" or
 * "hash", "encoding": "utf-8" or "hex", "value"}; a key with a name or
 * value that is not UTF-8 is all hex (lower case, no 0x), as backupd
 * writes it. */
typedef struct view_out {
    json_t *keys;
    char prefix[BK_KEY_MAX];
    int64_t lpi;
    int called;
} view_out;

static json_t *hex_text(const char *s) {
    char *h = bk_hex_encode_alloc((const uint8_t *)s, strlen(s), 0);
    json_t *j = h ? json_string(h) : NULL;
    free(h);
    return j;
}

/* Turn a key's content into hex (a name or value that is not UTF-8 came). */
static int to_hex(json_t *entry) {
    json_t *v = json_object_get(entry, "value"), *nv = NULL;
    if (json_is_string(v)) {
        nv = hex_text(json_string_value(v));
    } else {
        nv = json_object();
        const char *f;
        json_t *x;
        json_object_foreach(v, f, x) {
            char *hf = bk_hex_encode_alloc((const uint8_t *)f, strlen(f), 0);
            json_t *hv = hex_text(json_string_value(x));
            int bad = hf == NULL || hv == NULL || json_object_set_new(nv, hf, hv) != 0;
            free(hf);
            if (bad) {
                json_decref(nv);
                return BK_ERR;
            }
        }
    }
    if (nv == NULL || json_object_set_new(entry, "value", nv) != 0 ||
        json_object_set_new(entry, "encoding", json_string("hex")) != 0)
        return BK_ERR;
    return BK_OK;
}

static int utf8_ok(const char *s) {
    json_t *j = json_string(s);
    json_decref(j);
    return j != NULL;
}

static int is_hex(const json_t *entry) {
    return strcmp(json_string_value(json_object_get(entry, "encoding")), "hex") == 0;
}

/* Text s as the entry's encoding wants it (switching it to hex first if s
 * is not UTF-8); NULL when out of memory. */
static json_t *text_for(json_t *entry, const char *s) {
    json_t *j = is_hex(entry) ? NULL : json_string(s);
    if (j == NULL && !is_hex(entry) && to_hex(entry) != BK_OK)
        return NULL;
    return j != NULL ? j : hex_text(s);
}

static int view_op(view_out *v, const bk_ext_op *o, bk_err *e) {
    char full[BK_KEY_MAX + 160];
    if (o->name == NULL || !bk_ext_name_ok(o->name))
        return bk_err_set(e, BK_E_INVAL, "external view: a bad key name");
    snprintf(full, sizeof(full), "%s%s", v->prefix, o->name);
    json_t *entry = json_object_get(v->keys, full);
    const char *type = entry ? json_string_value(json_object_get(entry, "type")) : NULL;
    switch (o->kind) {
    case BK_EXT_DEL:
        json_object_del(v->keys, full);
        return BK_OK;
    case BK_EXT_SET:
    case BK_EXT_INCRBY: {
        char num[32];
        const char *val = o->value;
        if (o->kind == BK_EXT_INCRBY) {
            long long cur = 0;
            if (entry != NULL) {
                char *end = NULL;
                const char *t = json_string_value(json_object_get(entry, "value"));
                cur = type && strcmp(type, "string") == 0 && !is_hex(entry) && t
                          ? strtoll(t, &end, 10)
                          : 0;
                if (end == NULL || *end != '\0' || end == t)
                    return bk_err_set(e, BK_E_INVAL,
                                      "external view: INCRBY of '%s', not an integer",
                                      o->name);
            }
            snprintf(num, sizeof(num), "%lld", cur + (long long)o->by);
            val = num;
        }
        if (val == NULL)
            return bk_err_set(e, BK_E_INVAL, "external view: SET of '%s' without a value",
                              o->name);
        json_t *ne = json_pack("{ss ss}", "type", "string", "encoding", "utf-8");
        json_t *t = ne ? text_for(ne, val) : NULL;
        if (t == NULL || json_object_set_new(ne, "value", t) != 0 ||
            json_object_set_new(v->keys, full, ne) != 0) {
            json_decref(ne);
            return bk_err_set(e, BK_E_NOMEM, "external view: out of memory");
        }
        return BK_OK;
    }
    case BK_EXT_HSET:
    case BK_EXT_HDEL:
        if (o->field == NULL || (o->kind == BK_EXT_HSET && o->value == NULL))
            return bk_err_set(e, BK_E_INVAL,
                              "external view: a hash op on '%s' without "
                              "its field or value",
                              o->name);
        if (type != NULL && strcmp(type, "hash") != 0)
            return bk_err_set(e, BK_E_INVAL,
                              "external view: hash op on '%s', a string (WRONGTYPE)",
                              o->name);
        if (entry == NULL && o->kind == BK_EXT_HDEL)
            return BK_OK;
        if (entry == NULL) {
            entry =
                json_pack("{ss ss s{}}", "type", "hash", "encoding", "utf-8", "value");
            if (entry == NULL || json_object_set_new(v->keys, full, entry) != 0)
                return bk_err_set(e, BK_E_NOMEM, "external view: out of memory");
        }
        if (!is_hex(entry) && (!utf8_ok(o->field) || (o->value && !utf8_ok(o->value))) &&
            to_hex(entry) != BK_OK)
            return bk_err_set(e, BK_E_NOMEM, "external view: out of memory");
        int hex = is_hex(entry);
        char *fk =
            hex ? bk_hex_encode_alloc((const uint8_t *)o->field, strlen(o->field), 0)
                : strdup(o->field);
        json_t *h = json_object_get(entry, "value");
        int bad = fk == NULL;
        if (!bad && o->kind == BK_EXT_HSET) {
            json_t *val = hex ? hex_text(o->value) : json_string(o->value);
            bad = val == NULL || json_object_set_new(h, fk, val) != 0;
        } else if (!bad) {
            json_object_del(h, fk);
            if (json_object_size(h) == 0) /* Redis drops an empty hash */
                json_object_del(v->keys, full);
        }
        free(fk);
        return bad ? bk_err_set(e, BK_E_NOMEM, "external view: out of memory") : BK_OK;
    default:
        return bk_err_set(e, BK_E_INVAL, "external view: unknown op kind %d on '%s'",
                          o->kind, o->name);
    }
}

static int view_cb(void *opaque, int64_t lpi, const bk_ext_op *ops, size_t n, bk_err *e) {
    view_out *v = opaque;
    if (v->called++)
        return bk_err_set(e, BK_E_STATE, "external view: ext_replace called twice");
    v->lpi = lpi;
    for (size_t i = 0; i < n; i++)
        if (view_op(v, &ops[i], e) != BK_OK)
            return BK_ERR;
    return BK_OK;
}

int bk_wsnap_view_keys(const char *prefix, const bk_ext_op *ops, size_t n, json_t **keys,
                       bk_err *e) {
    view_out v = {json_object(), "", -2, 0};
    *keys = NULL;
    if (v.keys == NULL)
        return bk_err_set(e, BK_E_NOMEM, "out of memory");
    snprintf(v.prefix, sizeof(v.prefix), "%s", prefix);
    if (view_cb(&v, 0, ops, n, e) != BK_OK) {
        json_decref(v.keys);
        return BK_ERR;
    }
    *keys = v.keys;
    return BK_OK;
}

/* The external state at the cut from the application's view (its JSON,
 * backuplog.h), sealed and stored; *meta gets its log entry. */
static int put_view(const bk_wsnap_args *a, bk_storage *st, int64_t version,
                    const uint8_t pub[65], json_t **meta, bk_err *e) {
    view_out v = {json_object(), "", -2, 0};
    char *text = NULL, *wrapped = NULL, name[BK_STORAGE_NAME_MAX + 1], sha[65], when[32];
    size_t slen = 0;
    int rc = BK_ERR;
    *meta = NULL;
    if (v.keys == NULL) {
        bk_err_set(e, BK_E_NOMEM, "out of memory");
        goto out;
    }
    if (bk_key_ext_prefix(v.prefix, sizeof(v.prefix), a->svc, e) != BK_OK)
        goto out;
    if (a->ops->view == NULL) {
        bk_err_set(e, BK_E_UNSUPPORTED,
                   "the application '%s' gives no view of its external state",
                   a->ops->name);
        goto out;
    }
    if (a->ops->view(a->app, view_cb, &v, e) != BK_OK) {
        bk_err_prefix(e, "cannot take the external view");
        goto out;
    }
    if (v.lpi != a->cut) {
        bk_err_set(e, BK_E_STATE,
                   "the external view is of offset %" PRId64 ", not of the cut %" PRId64,
                   v.lpi, a->cut);
        goto out;
    }
    /* ext:applied, as ext_replace sets it: the state's LPI, the cut */
    char applied[BK_KEY_MAX + 16], cut[24];
    snprintf(cut, sizeof(cut), "%" PRId64, a->cut);
    if (bk_key_ext_applied(applied, sizeof(applied), a->svc, e) != BK_OK)
        goto out;
    if (json_object_set_new(v.keys, applied,
                            json_pack("{ss ss ss}", "type", "string", "encoding", "utf-8",
                                      "value", cut)) != 0) {
        bk_err_set(e, BK_E_NOMEM, "out of memory");
        goto out;
    }
    bk_blog_time(bk_wall_ms(), when);
    size_t nkeys = json_object_size(v.keys);
    json_t *j = json_pack("{ss ss ss sI sI sI ss sO}", "format", BK_EXTERNAL_FORMAT,
                          "service", a->svc, "taken", when, "epoch", (json_int_t)a->epoch,
                          "cut_offset", (json_int_t)a->cut, "applied_offset",
                          (json_int_t)a->cut, "prefix", v.prefix, "keys", v.keys);
    text = j ? json_dumps(j, JSON_COMPACT | JSON_SORT_KEYS) : NULL;
    json_decref(j);
    if (text == NULL) {
        bk_err_set(e, BK_E_NOMEM, "out of memory");
        goto out;
    }
    size_t len = strlen(text);
    if (bk_blog_put_sealed(st, version, "external", text, len, pub, name, sha, &slen,
                           &wrapped, e) != BK_OK)
        goto out;
    *meta =
        bk_blog_object_meta(name, sha, slen, len, wrapped, "br2k-external-state", a->id);
    if (*meta == NULL ||
        json_object_set_new(*meta, "cut_offset", json_integer((json_int_t)a->cut)) != 0 ||
        json_object_set_new(*meta, "applied_offset", json_integer((json_int_t)a->cut)) !=
            0 ||
        json_object_set_new(*meta, "key_count", json_integer((json_int_t)nkeys)) != 0) {
        json_decref(*meta);
        *meta = NULL;
    }
    rc = *meta ? BK_OK : bk_err_set(e, BK_E_NOMEM, "out of memory");
out:
    json_decref(v.keys);
    free(text);
    free(wrapped);
    return rc;
}

/* The work itself; *report gets the JSON to publish on success. */
static int take(const bk_wsnap_args *a, bk_redis *r, json_t **report, bk_err *e) {
    json_t *req = read_request(r, a->svc, a->epoch, a->cut, e);
    if (req == NULL)
        return BK_ERR;
    int rc = BK_ERR;
    void *plain = NULL;
    size_t plen = 0, slen = 0;
    char *wrapped = NULL;
    bk_storage *st = NULL;
    uint8_t pub[65];
    char sha[65], digest[65], name[BK_STORAGE_NAME_MAX + 1];
    int64_t lpi = -2, version = json_integer_value(json_object_get(req, "version"));
    const char *url = json_string_value(json_object_get(req, "storage"));
    const char *pubhex = json_string_value(json_object_get(req, "pubkey"));
    if (bk_hex_decode_exact(pubhex, pub, sizeof(pub), e) != BK_OK || pub[0] != 4) {
        bk_err_set(e, BK_E_INVAL,
                   "backup request: 'pubkey' is not an uncompressed public key (04...)");
        goto out;
    }
    int64_t t0 = bk_wall_ms();
    if (a->ops->snapshot(a->app, &plain, &plen, &lpi, e) != BK_OK) {
        bk_err_prefix(e, "cannot snapshot the application state");
        goto out;
    }
    if (lpi != a->cut) {
        bk_err_set(e, BK_E_STATE,
                   "the application state is at %" PRId64 ", not at the cut %" PRId64,
                   lpi, a->cut);
        goto out;
    }
    if (a->ops->digest(a->app, digest, e) != BK_OK)
        goto out;
    if (bk_storage_open(url, &st, e) != BK_OK ||
        bk_blog_put_sealed(st, version, "state", plain, plen, pub, name, sha, &slen,
                           &wrapped, e) != BK_OK)
        goto out;
    /* the state object is stored: its plaintext (the whole state) need not
     * sit beside the view's JSON */
    free(plain);
    plain = NULL;
    /* backupd asked for the external state from the state's view (the
     * leader said it can give one, svu.c): read nothing from Redis for it */
    json_t *ext = NULL;
    if (json_is_true(json_object_get(req, "external")) &&
        put_view(a, st, version, pub, &ext, e) != BK_OK) {
        bk_err_prefix(e, "external state");
        goto out;
    }
    *report = json_pack("{sI sI sI ss ss sI sI ss ss sI ss ss ss sI}", "epoch",
                        (json_int_t)a->epoch, "cut", (json_int_t)a->cut, "version",
                        (json_int_t)version, "object", name, "sha256", sha, "size",
                        (json_int_t)slen, "plain_size", (json_int_t)plen, "type", a->type,
                        "owner", a->id, "created_ms", (json_int_t)bk_wall_ms(),
                        "state_digest", digest, "record_digest", a->record_digest,
                        "data_key", wrapped, "took_ms", (json_int_t)(bk_wall_ms() - t0));
    if (*report == NULL ||
        (ext != NULL && json_object_set_new(*report, "external", ext) != 0)) {
        bk_err_set(e, BK_E_NOMEM, "out of memory");
        goto out;
    }
    rc = BK_OK;
out:
    free(plain);
    free(wrapped);
    bk_storage_close(st);
    json_decref(req);
    return rc;
}

int bk_wsnap_child(const bk_wsnap_args *a) {
    bk_keys_after_fork();
    bk_err e;
    bk_err_clear(&e);
    bk_redis *r = bk_redis_new(a->redis, 5000, &e);
    if (r == NULL) {
        BK_ERROR("snapshot at %" PRId64 ": %s", a->cut, e.msg);
        return 1;
    }
    json_t *report = NULL;
    int ok = take(a, r, &report, &e) == BK_OK;
    if (!ok)
        report = json_pack("{sI sI ss}", "epoch", (json_int_t)a->epoch, "cut",
                           (json_int_t)a->cut, "error", e.msg);
    char *text = report ? json_dumps(report, JSON_COMPACT | JSON_SORT_KEYS) : NULL;
    json_decref(report);
    char expect[96];
    bk_backup_phase_format(expect, sizeof(expect), "snapshot", a->epoch, a->cut);
    int done = 0;
    bk_err we;
    bk_err_clear(&we);
    int rc = 1;
    if (text == NULL)
        BK_ERROR("snapshot at %" PRId64 ": out of memory", a->cut);
    else if (bk_fenced_backup_step(r, a->svc, a->epoch, expect, "=", 0, "backup-report",
                                   text, &done, &we) != BK_OK)
        BK_ERROR("snapshot at %" PRId64 ": cannot report: %s", a->cut, we.msg);
    else if (!done)
        BK_WARN("snapshot at %" PRId64 ": the backup was aborted meanwhile", a->cut);
    else if (ok)
        rc = 0;
    if (ok && rc == 0)
        BK_INFO("snapshot at %" PRId64 " stored and reported", a->cut);
    else if (!ok)
        BK_ERROR("snapshot at %" PRId64 " failed: %s", a->cut, e.msg);
    free(text);
    bk_redis_free(r);
    return rc;
}
