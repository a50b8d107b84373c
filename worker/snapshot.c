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
    *report = json_pack("{sI sI sI ss ss sI sI ss ss sI ss ss ss sI}", "epoch",
                        (json_int_t)a->epoch, "cut", (json_int_t)a->cut, "version",
                        (json_int_t)version, "object", name, "sha256", sha, "size",
                        (json_int_t)slen, "plain_size", (json_int_t)plen, "type", a->type,
                        "owner", a->id, "created_ms", (json_int_t)bk_wall_ms(),
                        "state_digest", digest, "record_digest", a->record_digest,
                        "data_key", wrapped, "took_ms", (json_int_t)(bk_wall_ms() - t0));
    if (*report == NULL) {
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
