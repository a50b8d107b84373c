/* backupd.c - state-version-up; see backupd.h for the steps (the objects
 * besides the leader's state: objects.c). */
#include "backupd.h"

#include <inttypes.h>
#include <jansson.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "backup/backuplog.h"
#include "base/clock.h"
#include "base/hex.h"
#include "chain/jsonrpc.h"
#include "log/kafka_conf.h"
#include "redis/keys.h"
#include "base/log.h"
#include "redis/redis.h"
#include "redis/regchan.h"
#include "chain/registry.h"
#include "log/rlog.h"
#include "backup/seal.h"
#include "base/sig.h"
#include "backup/storage.h"
#include "backupd_int.h"

#define FAIL_BACKOFF_MS 2000 /* after a failed attempt, wait this long */
#define STEP_POLL_MS 2       /* polling of the phase and LPIs while held */

static void run_free(bd_run *u) {
    json_decref(u->members);
    json_decref(u->alive);
    json_decref(u->report);
    json_decref(u->store);
    json_decref(u->ext_data);
    json_decref(u->external);
    json_decref(u->archive);
    bd_ext_free(&u->ext);
    memset(u, 0, sizeof(*u));
}

/* Tests only: BR2K_TEST_BACKUP_STOP=<step>[:<n>] stops this process
 * (SIGSTOP) the n-th time (default 1) it reaches that step, so a test can
 * kill whatever it wants then. */
static void hook(const char *step) {
    static int fired, seen; /* once per process */
    const char *h = getenv("BR2K_TEST_BACKUP_STOP");
    size_t n = h ? strcspn(h, ":") : 0;
    if (fired || h == NULL || strlen(step) != n || strncmp(h, step, n) != 0)
        return;
    if (++seen < (h[n] == ':' ? atoi(h + n + 1) : 1))
        return;
    fired = 1;
    BK_WARN("BR2K_TEST_BACKUP_STOP: stopped at step '%s'", step);
    raise(SIGSTOP);
}

static void set_step(bd_run *u, const char *step) {
    snprintf(u->step, sizeof(u->step), "%s", step);
}

/* ---- backup-run ---- */

/* backup-run's text (malloc'd), or NULL when out of memory. */
static char *run_text(const bd_run *u) {
    json_t *j =
        json_pack("{sI sI sI sI sI sI ss ss ss}", "version", (json_int_t)u->version,
                  "epoch", (json_int_t)u->epoch, "cut", (json_int_t)u->cut, "prev_cut",
                  (json_int_t)u->prev_cut, "start_ms", (json_int_t)u->start_ms,
                  "first_offset", (json_int_t)u->first_offset, "leader", u->leader,
                  "step", u->step, "reason", u->reason);
    if (j == NULL)
        return NULL;
    if (u->members)
        json_object_set(j, "members", u->members);
    if (u->alive)
        json_object_set(j, "alive", u->alive);
    if (u->report)
        json_object_set(j, "report", u->report);
    if (u->store)
        json_object_set(j, "store", u->store);
    if (u->external)
        json_object_set(j, "external", u->external);
    if (u->archive)
        json_object_set(j, "archive", u->archive);
    char *text = json_dumps(j, JSON_COMPACT | JSON_SORT_KEYS);
    json_decref(j);
    return text;
}

static int run_save_text(bd *d, const char *text, bk_err *e) {
    char k[BK_KEY_MAX];
    if (bk_key_backup_aux(k, sizeof(k), d->o->service, "backup-run", e) != BK_OK)
        return BK_ERR;
    redisReply *rep = bk_redis_command(d->r, e, "SET %s %s", k, text);
    if (rep == NULL)
        return bk_err_prefix(e, "cannot save '%s'", k);
    freeReplyObject(rep);
    return BK_OK;
}

static int run_save(bd *d, bd_run *u, bk_err *e) {
    char *text = run_text(u);
    if (text == NULL)
        return bk_err_set(e, BK_E_NOMEM, "out of memory");
    int rc = run_save_text(d, text, e);
    free(text);
    return rc;
}

/* The run is finished or given up: nothing to save again. */
static void unfinished_clear(bd *d) {
    free(d->unfinished);
    d->unfinished = NULL;
    d->unfinished_version = 0;
    d->unfinished_sha[0] = '\0';
}

/* u is on chain and its finish failed: kept in memory (I7, I9), since a
 * Redis failover may lose backup-run or put an older one in its place. */
static void unfinished_set(bd *d, const bd_run *u) {
    unfinished_clear(d);
    d->unfinished = run_text(u);
    if (d->unfinished == NULL)
        return;
    d->unfinished_version = u->version;
    snprintf(d->unfinished_sha, sizeof(d->unfinished_sha), "%s",
             json_string_value(json_object_get(u->report, "sha256")) ?: "");
}

/* Whether u is the run kept in memory (same version, same snapshot). */
static int is_unfinished(const bd *d, const bd_run *u) {
    const char *sha = json_string_value(json_object_get(u->report, "sha256"));
    return d->unfinished != NULL && u->version == d->unfinished_version && sha != NULL &&
           strcmp(sha, d->unfinished_sha) == 0;
}

/* backup-run is deleted: u was finished (finished 1) or given up (0); NULL
 * when damaged. The run kept in memory goes with it only when u is that
 * run, or finished a later version: a stale run dropped (another version,
 * or an older attempt at that version: what a promoted replica held) does
 * not make this backupd forget a version on chain it has not finished. */
static void run_drop(bd *d, const bd_run *u, int finished) {
    char k[BK_KEY_MAX], k2[BK_KEY_MAX];
    bk_err e;
    bk_err_clear(&e);
    if (u != NULL && (is_unfinished(d, u) || (finished && d->unfinished != NULL &&
                                              u->version >= d->unfinished_version)))
        unfinished_clear(d);
    if (bk_key_backup_aux(k, sizeof(k), d->o->service, "backup-run", &e) != BK_OK ||
        bk_key_backup_aux(k2, sizeof(k2), d->o->service, "backup-report", &e) != BK_OK)
        return;
    redisReply *rep = bk_redis_command(d->r, &e, "DEL %s %s", k, k2);
    if (rep)
        freeReplyObject(rep);
    else
        BK_WARN("%s", e.msg);
}

/* *found = 0 when there is no backup-run. */
static int run_load(bd *d, bd_run *u, int *found, bk_err *e) {
    char k[BK_KEY_MAX];
    *found = 0;
    memset(u, 0, sizeof(*u));
    if (bk_key_backup_aux(k, sizeof(k), d->o->service, "backup-run", e) != BK_OK)
        return BK_ERR;
    redisReply *rep = bk_redis_command(d->r, e, "GET %s", k);
    if (rep == NULL)
        return bk_err_prefix(e, "cannot read '%s'", k);
    if (rep->type != REDIS_REPLY_STRING) {
        freeReplyObject(rep);
        return BK_OK;
    }
    json_error_t je;
    json_t *j = json_loadb(rep->str, rep->len, 0, &je);
    freeReplyObject(rep);
    const char *leader = json_string_value(json_object_get(j, "leader"));
    const char *step = json_string_value(json_object_get(j, "step"));
    if (j == NULL || leader == NULL || step == NULL) {
        json_decref(j);
        BK_WARN("'%s' is damaged: dropped", k);
        run_drop(d, NULL, 0);
        return BK_OK;
    }
    u->version = json_integer_value(json_object_get(j, "version"));
    u->epoch = json_integer_value(json_object_get(j, "epoch"));
    u->cut = json_integer_value(json_object_get(j, "cut"));
    u->prev_cut = json_integer_value(json_object_get(j, "prev_cut"));
    u->start_ms = json_integer_value(json_object_get(j, "start_ms"));
    u->first_offset = json_integer_value(json_object_get(j, "first_offset"));
    snprintf(u->leader, sizeof(u->leader), "%s", leader);
    snprintf(u->step, sizeof(u->step), "%s", step);
    snprintf(u->reason, sizeof(u->reason), "%s",
             json_string_value(json_object_get(j, "reason")) ?: "");
    u->members = json_incref(json_object_get(j, "members"));
    u->alive = json_incref(json_object_get(j, "alive"));
    u->report = json_incref(json_object_get(j, "report"));
    u->store = json_incref(json_object_get(j, "store"));
    u->external = json_incref(json_object_get(j, "external"));
    u->archive = json_incref(json_object_get(j, "archive"));
    json_decref(j);
    *found = 1;
    return BK_OK;
}

/* ---- reading the service ---- */

/* members and the alive ones (JSON arrays of ids, sorted). */
static int read_members(bd *d, json_t **members, json_t **alive, bk_err *e) {
    char k[BK_KEY_MAX];
    *members = *alive = NULL;
    if (bk_key_members(k, sizeof(k), d->o->service, e) != BK_OK)
        return BK_ERR;
    redisReply *rep = bk_redis_command(d->r, e, "SORT %s ALPHA", k);
    if (rep == NULL)
        return bk_err_prefix(e, "cannot read '%s'", k);
    *members = json_array();
    *alive = json_array();
    for (size_t i = 0; rep->type == REDIS_REPLY_ARRAY && i < rep->elements; i++) {
        const char *id = rep->element[i]->str;
        char ka[BK_KEY_MAX];
        if (id == NULL || bk_key_alive(ka, sizeof(ka), d->o->service, id, NULL) != BK_OK)
            continue;
        json_array_append_new(*members, json_string(id));
        redisReply *x = bk_redis_command(d->r, e, "EXISTS %s", ka);
        if (x == NULL) {
            freeReplyObject(rep);
            json_decref(*members);
            json_decref(*alive);
            *members = *alive = NULL;
            return bk_err_prefix(e, "cannot read '%s'", ka);
        }
        if (x->type == REDIS_REPLY_INTEGER && x->integer == 1)
            json_array_append_new(*alive, json_string(id));
        freeReplyObject(x);
    }
    freeReplyObject(rep);
    return BK_OK;
}

/* ---- the steps ---- */

static int fenced_phase(bd *d, bd_run *u, const char *expect_phase, const char *to_phase,
                        int ttl_ms, const char *aux, const char *aux_val, bk_err *e) {
    char expect[96], to[96];
    if (expect_phase)
        bk_backup_phase_format(expect, sizeof(expect), expect_phase, u->epoch, u->cut);
    bk_backup_phase_format(to, sizeof(to), to_phase, u->epoch, u->cut);
    int done = 0;
    if (bk_fenced_backup_step(d->r, d->o->service, u->epoch,
                              expect_phase ? expect : BK_PHASE_ANY, to, ttl_ms, aux,
                              aux_val, &done, e) != BK_OK)
        return BK_ERR;
    if (!done)
        return bk_err_set(e, BK_E_STATE,
                          "the backup phase is no longer '%s' (expired or replaced); "
                          "abandoning the backup",
                          expect);
    return BK_OK;
}

/* Step 1: the leader holds and names C. */
static int step_cut(bd *d, bd_run *u, bk_err *e) {
    set_step(u, "cut");
    hook("cut");
    /* the external state's key names, found before the hold (objects.c) */
    if (bd_external_discover(d, u, e) != BK_OK)
        return bk_err_prefix(e, "cannot list the external state");
    char hold[96];
    bk_backup_phase_format(hold, sizeof(hold), "hold", u->epoch, -1);
    int done = 0;
    if (bk_fenced_backup_step(d->r, d->o->service, u->epoch, BK_PHASE_ANY, hold,
                              d->o->hold_timeout_ms, NULL, NULL, &done, e) != BK_OK)
        return BK_ERR;
    int64_t t0 = bk_mono_ms(), deadline = t0 + d->o->hold_timeout_ms;
    u->held_ms = t0;
    for (;;) {
        bk_backup_phase p;
        if (bk_backup_phase_get(d->r, d->o->service, &p, NULL, 0, e) != BK_OK)
            return BK_ERR;
        if (p.set && p.epoch == u->epoch && strcmp(p.phase, "held") == 0) {
            u->cut = p.cut;
            return BK_OK;
        }
        if (!p.set || p.epoch != u->epoch || strcmp(p.phase, "hold") != 0)
            return bk_err_set(e, BK_E_STATE,
                              "the leader '%s' did not hold (phase now '%s'); abandoning",
                              u->leader, p.set ? p.phase : "none");
        if (bk_mono_ms() > deadline || bk_sig_stop)
            return bk_err_set(e, BK_E_TIMEOUT,
                              "the leader '%s' (epoch %" PRId64
                              ") did not hold within %d ms",
                              u->leader, u->epoch, d->o->hold_timeout_ms);
        bk_sleep_ms(STEP_POLL_MS);
    }
}

/* Is the external state taken from the leader's state at C: it offers it
 * (backup-view "<epoch> <cut> 1", set with `held`: an application with a
 * view, worker/app.h) and the view has more than --view-fields fields?
 * Then nothing is read under ext: while it holds (at a million fields that
 * read takes seconds). */
static int leader_view(bd *d, bd_run *u, bk_err *e) {
    char k[BK_KEY_MAX], want[96];
    u->ext_view = 0;
    if (bk_key_backup_aux(k, sizeof(k), d->o->service, "backup-view", e) != BK_OK)
        return BK_ERR;
    redisReply *rep = bk_redis_command(d->r, e, "GET %s", k);
    if (rep == NULL)
        return BK_ERR;
    snprintf(want, sizeof(want), "%" PRId64 " %" PRId64 " 1", u->epoch, u->cut);
    u->ext_view = rep->type == REDIS_REPLY_STRING && strcmp(rep->str, want) == 0 &&
                  d->o->view_fields >= 0 && u->ext.fields > d->o->view_fields;
    freeReplyObject(rep);
    return BK_OK;
}

/* Step 2: every alive follower reaches C. */
static int step_wait(bd *d, bd_run *u, bk_err *e) {
    set_step(u, "wait");
    hook("wait");
    int64_t deadline = u->held_ms + d->o->hold_timeout_ms;
    json_decref(u->members);
    json_decref(u->alive);
    if (read_members(d, &u->members, &u->alive, e) != BK_OK)
        return BK_ERR;
    size_t i;
    json_t *v;
    json_array_foreach(u->alive, i, v) {
        const char *id = json_string_value(v);
        if (strcmp(id, u->leader) == 0)
            continue;
        char k[BK_KEY_MAX];
        if (bk_key_lpi(k, sizeof(k), d->o->service, id, e) != BK_OK)
            return BK_ERR;
        for (;;) {
            int64_t lpi = -1;
            if (bk_keys_get_i64(d->r, k, -1, &lpi, e) != BK_OK)
                return BK_ERR;
            if (lpi >= u->cut)
                break;
            if (bk_mono_ms() > deadline || bk_sig_stop)
                return bk_err_set(e, BK_E_TIMEOUT,
                                  "follower '%s' is at %" PRId64
                                  ", not at the cut %" PRId64
                                  " within --hold-timeout-ms %d",
                                  id, lpi, u->cut, d->o->hold_timeout_ms);
            bk_sleep_ms(STEP_POLL_MS);
        }
    }
    /* the store snapshot and the external state, while the leader holds
     * (the external state's JSON is built once it resumed: step 4) */
    int64_t t1 = bk_mono_ms();
    json_decref(u->store);
    u->store = bd_store_snapshot(d, u, e);
    if (u->store == NULL)
        return BK_ERR;
    int64_t t2 = bk_mono_ms();
    if (leader_view(d, u, e) != BK_OK)
        return BK_ERR;
    if (!u->ext_view && bd_external_read(d, u, e) != BK_OK)
        return BK_ERR;
    if (u->ext_view)
        BK_INFO("backup version %" PRId64 ": the external state comes from the leader's "
                "view of its state at the cut %" PRId64 " (%lld fields or more, over "
                "--view-fields %lld); leader held and followers at the cut after %" PRId64
                " ms, store snapshot %" PRId64 " ms",
                u->version, u->cut, u->ext.fields, d->o->view_fields, t1 - u->held_ms,
                t2 - t1);
    else
        BK_DEBUG("backup version %" PRId64 " at the cut %" PRId64 ": leader held and "
                 "followers at the cut after %" PRId64 " ms, store snapshot %" PRId64
                 " ms, external state %" PRId64 " ms (script %.0f, large hashes %.0f)",
                 u->version, u->cut, t1 - u->held_ms, t2 - t1, bk_mono_ms() - t2,
                 u->ext.ms_script, u->ext.ms_pieces);
    return BK_OK;
}

/* Step 3: the snapshot request; the leader forks and resumes. */
static int step_phase(bd *d, bd_run *u, bk_err *e) {
    set_step(u, "phase");
    hook("phase");
    char k[BK_KEY_MAX];
    if (bk_key_backup_aux(k, sizeof(k), d->o->service, "backup-report", e) != BK_OK)
        return BK_ERR;
    redisReply *rep = bk_redis_command(d->r, e, "DEL %s", k);
    if (rep == NULL)
        return BK_ERR;
    freeReplyObject(rep);
    json_t *req =
        json_pack("{sI sI sI ss ss sb}", "epoch", (json_int_t)u->epoch, "cut",
                  (json_int_t)u->cut, "version", (json_int_t)u->version, "storage",
                  bk_storage_url(d->st), "pubkey", d->pubhex, "external", u->ext_view);
    char *text = req ? json_dumps(req, JSON_COMPACT | JSON_SORT_KEYS) : NULL;
    json_decref(req);
    if (text == NULL)
        return bk_err_set(e, BK_E_NOMEM, "out of memory");
    int rc =
        fenced_phase(d, u, "held", "snapshot", d->o->phase_ttl_ms, "backup-req", text, e);
    free(text);
    u->held_ms = bk_mono_ms() - u->held_ms;
    return rc;
}

/* Step 4: the leader's report; its object read back and checked; the
 * store snapshot and the external state sealed, stored, read back. */
static int step_snapshot(bd *d, bd_run *u, bk_err *e) {
    set_step(u, "snapshot");
    hook("snapshot");
    /* no external key missed (objects.c), while the leader snapshots; the
     * external state's JSON from what was read at the cut */
    json_decref(u->ext_data);
    u->ext_data = NULL;
    if (!u->ext_view && (bd_external_confirm(d, u, e) != BK_OK ||
                         (u->ext_data = bd_external_build(d, u, e)) == NULL))
        return BK_ERR;
    char k[BK_KEY_MAX];
    if (bk_key_backup_aux(k, sizeof(k), d->o->service, "backup-report", e) != BK_OK)
        return BK_ERR;
    int64_t deadline = bk_mono_ms() + d->o->snapshot_timeout_ms, next_lease_ms = 0;
    json_t *rj = NULL;
    while (rj == NULL) {
        redisReply *rep = bk_redis_command(d->r, e, "GET %s", k);
        if (rep == NULL)
            return BK_ERR;
        if (rep->type == REDIS_REPLY_STRING) {
            json_error_t je;
            rj = json_loadb(rep->str, rep->len, 0, &je);
            if (rj == NULL) {
                freeReplyObject(rep);
                return bk_err_set(e, BK_E_PROTO, "'%s' is not JSON: %s", k, je.text);
            }
        }
        freeReplyObject(rep);
        if (rj == NULL && bk_mono_ms() >= next_lease_ms) {
            /* a leader that lost its lease before it saw the snapshot phase
             * (paused, then fenced) never reports: do not wait it out */
            char cur[BK_ID_MAX + 1];
            int64_t ep = 0;
            if (bk_lease_get(d->r, d->o->service, cur, &ep, e) != BK_OK)
                return BK_ERR;
            if (ep != 0 && ep != u->epoch)
                return bk_err_set(e, BK_E_FENCED,
                                  "the leader '%s' of epoch %" PRId64
                                  " lost its lease ('%s' leads with epoch %" PRId64
                                  ") before it reported the snapshot of cut %" PRId64,
                                  u->leader, u->epoch, cur, ep, u->cut);
            next_lease_ms = bk_mono_ms() + 200;
        }
        if (rj == NULL && (bk_mono_ms() > deadline || bk_sig_stop))
            return bk_err_set(e, BK_E_TIMEOUT,
                              "the leader '%s' reported no snapshot of cut %" PRId64
                              " within %d ms (see its log)",
                              u->leader, u->cut, d->o->snapshot_timeout_ms);
        if (rj == NULL)
            bk_sleep_ms(20);
    }
    const char *err = json_string_value(json_object_get(rj, "error"));
    const char *obj = json_string_value(json_object_get(rj, "object"));
    const char *sha = json_string_value(json_object_get(rj, "sha256"));
    json_int_t size = json_integer_value(json_object_get(rj, "size"));
    if (err != NULL || obj == NULL || sha == NULL ||
        json_integer_value(json_object_get(rj, "cut")) != u->cut ||
        json_integer_value(json_object_get(rj, "epoch")) != u->epoch) {
        bk_err_set(e, BK_E_REMOTE, "the leader's snapshot of cut %" PRId64 " failed: %s",
                   u->cut, err ? err : "report without object, or of another cut");
        json_decref(rj);
        return BK_ERR;
    }
    /* it counts only once read back whole with the SHA-256 it was named by */
    if (bd_read_back(d, "snapshot", obj, sha, size, e) != BK_OK) {
        json_decref(rj);
        return BK_ERR;
    }
    /* the external state the leader gave (its view at the cut), checked
     * like the state object */
    json_t *xv = u->ext_view ? json_object_get(rj, "external") : NULL;
    if (u->ext_view) {
        const char *xo = json_string_value(json_object_get(xv, "object"));
        const char *xs = json_string_value(json_object_get(xv, "sha256"));
        if (xo == NULL || xs == NULL ||
            json_integer_value(json_object_get(xv, "cut_offset")) != u->cut) {
            bk_err_set(e, BK_E_REMOTE,
                       "the leader's snapshot of cut %" PRId64 " reported no external "
                       "state of its view, or of another cut",
                       u->cut);
            json_decref(rj);
            return BK_ERR;
        }
        if (bd_read_back(d, "external state", xo, xs,
                         json_integer_value(json_object_get(xv, "size")), e) != BK_OK) {
            json_decref(rj);
            return BK_ERR;
        }
    }
    json_decref(u->report);
    u->report = rj;
    /* the store snapshot and the external state (read at the cut, step 2) */
    json_t *meta = NULL;
    if (bd_put_object(d, u, "store", "store snapshot", "br2k-store-snapshot", u->store,
                      &meta, e) != BK_OK)
        return bk_err_prefix(e, "cannot store the store snapshot");
    json_decref(u->store);
    u->store = meta;
    if (u->ext_view) {
        json_decref(u->external);
        u->external = json_deep_copy(xv);
        json_object_del(u->report, "external"); /* logged as external_state */
        return u->external ? BK_OK : bk_err_set(e, BK_E_NOMEM, "out of memory");
    }
    if (bd_put_object(d, u, "external", "external state", "br2k-external-state",
                      u->ext_data, &meta, e) != BK_OK)
        return bk_err_prefix(e, "cannot store the external state");
    json_object_set(meta, "cut_offset", json_object_get(u->ext_data, "cut_offset"));
    json_object_set(meta, "applied_offset",
                    json_object_get(u->ext_data, "applied_offset"));
    json_object_set_new(
        meta, "key_count",
        json_integer((json_int_t)json_object_size(json_object_get(u->ext_data, "keys"))));
    json_decref(u->ext_data);
    u->ext_data = NULL;
    json_decref(u->external);
    u->external = meta;
    return BK_OK;
}

/* Step 4b: the history archive (history.c). */
static int step_archive(bd *d, bd_run *u, bk_err *e) {
    set_step(u, "archive");
    hook("archive");
    return bd_archive_build(d, u, e);
}

static json_t *storage_meta(bd *d) {
    const char *url = bk_storage_url(d->st);
    int s3 = strncmp(url, "s3://", 5) == 0;
    return json_pack("{ss ss ss ss}", "url", url, "kind", s3 ? "s3" : "file", "auth",
                     s3 ? "aws-sigv4 (credentials are not in this log)" : "none", "form",
                     "immutable objects, sealed (zlib + AES-256-GCM), named "
                     "v<version>-<kind>-<sha256>");
}

/* The state-backup-log (schemas/state-backup-log.schema.json). */
static json_t *build_log(bd *d, const bd_run *u) {
    char start[32], end[32], app[64] = "app";
    bk_blog_time(u->start_ms, start);
    bk_blog_time(bk_wall_ms(), end);
    const json_t *r = u->report;
    const char *type = json_string_value(json_object_get(r, "type"));
    if (type != NULL) {
        snprintf(app, sizeof(app), "%s", type);
        char *dash = strstr(app, "-snapshot");
        if (dash)
            *dash = '\0';
    }
    char created[32];
    bk_blog_time(json_integer_value(json_object_get(r, "created_ms")), created);
    json_t *state = json_pack(
        "{sO sO sO sO ss ss ss ss sO}", "object", json_object_get(r, "object"), "sha256",
        json_object_get(r, "sha256"), "size", json_object_get(r, "size"), "plain_size",
        json_object_get(r, "plain_size"), "type", type ? type : "app-snapshot", "owner",
        u->leader, "created", created, "form", "br2k-seal v1 (zlib, AES-256-GCM)",
        "data_key", json_object_get(r, "data_key"));
    if (state == NULL)
        return NULL;
    json_t *log = json_pack(
        "{ss ss sI ss ss sO sO ss sI sI sI sI ss sO sO so sO so}", "format",
        "br2k.state-backup-log.v1", "service", d->o->service, "version",
        (json_int_t)u->version, "start", start, "end", end, "members", u->members,
        "alive_members", u->alive, "subject", u->leader, "epoch", (json_int_t)u->epoch,
        "cut_offset", (json_int_t)u->cut, "previous_cut_offset", (json_int_t)u->prev_cut,
        "log_first_offset", (json_int_t)u->first_offset, "app", app, "state_digest",
        json_object_get(r, "state_digest"), "record_digest",
        json_object_get(r, "record_digest"), "state_data", state, "snapshot", u->store,
        "storage", storage_meta(d));
    if (log != NULL && u->external != NULL)
        json_object_set(log, "external_state", u->external);
    if (log != NULL && u->archive != NULL)
        json_object_set(log, "history_archive", u->archive);
    return log;
}

/* Whether the chain holds `version` with digest sha (hex); another digest
 * at that version is BK_E_STATE. */
static int on_chain(bd *d, int64_t version, const char *sha, int *yes, bk_err *e) {
    uint8_t want[32];
    int held = 0;
    *yes = 0;
    if (bk_hex_decode_exact(sha, want, 32, e) != BK_OK ||
        bk_reg_has_backup(d->rpc, d->reg, (uint64_t)version, want, &held, NULL, e) !=
            BK_OK)
        return BK_ERR;
    if (held < 0)
        return bk_err_set(
            e, BK_E_STATE,
            "the chain holds version %" PRId64 " with another snapshot digest", version);
    *yes = held;
    return BK_OK;
}

/* The finish of a version, in storage beside its objects, in clear (no
 * secret: offsets and digests): v<V>-done-<its own sha256>, like every
 * object, JSON {version, cut, state_digest, sha256 of the state object},
 * stored before the version is
 * logged on chain. A backupd that starts after a Redis failover lost the
 * finish of the chain's latest version (its SV and cut; refinish) and
 * that did not finish it itself reads the cut here: the one whose sha256
 * the chain holds for that version (other attempts at the same version
 * that never reached the chain are ignored). */
static int done_put(bd *d, const bd_run *u, const char *sha, bk_err *e) {
    const char *sd = json_string_value(json_object_get(u->report, "state_digest"));
    json_t *j =
        json_pack("{sI sI ss ss}", "version", (json_int_t)u->version, "cut",
                  (json_int_t)u->cut, "state_digest", sd ? sd : "", "sha256", sha);
    char *text = j ? json_dumps(j, JSON_COMPACT | JSON_SORT_KEYS) : NULL;
    json_decref(j);
    if (text == NULL)
        return bk_err_set(e, BK_E_NOMEM, "out of memory");
    char name[BK_STORAGE_NAME_MAX + 1], own[65];
    int rc = bk_sha256_hex(text, strlen(text), own, e);
    snprintf(name, sizeof(name), "v%08" PRId64 "-done-%s", u->version, own);
    if (rc == BK_OK)
        rc = bk_storage_put(d->st, name, text, strlen(text), e);
    free(text);
    return rc == BK_OK ? BK_OK : bk_err_prefix(e, "cannot store '%s'", name);
}

/* d->done_* from the v<version>-done-* object whose sha256 the chain holds
 * for `version`: BK_OK with *found 0 when there is none (a version logged
 * before this object existed). */
static int done_load(bd *d, int64_t version, int *found, bk_err *e) {
    char prefix[32], **names = NULL;
    size_t n = 0;
    *found = 0;
    snprintf(prefix, sizeof(prefix), "v%08" PRId64 "-done-", version);
    if (bk_storage_list(d->st, prefix, &names, &n, e) != BK_OK)
        return bk_err_prefix(e, "cannot list '%s*'", prefix);
    int rc = BK_OK;
    for (size_t i = 0; rc == BK_OK && !*found && i < n; i++) {
        void *data = NULL;
        size_t len = 0;
        if ((rc = bk_storage_get(d->st, names[i], &data, &len, e)) != BK_OK)
            break;
        json_t *j = json_loadb(data, len, 0, NULL);
        free(data);
        const char *sha = json_string_value(json_object_get(j, "sha256"));
        const char *sd = json_string_value(json_object_get(j, "state_digest"));
        json_t *cut = json_object_get(j, "cut");
        int yes = 0;
        if (sha == NULL || sd == NULL || !json_is_integer(cut) ||
            json_integer_value(json_object_get(j, "version")) != version)
            BK_WARN("'%s' is not a version's finish: ignored", names[i]);
        else if ((rc = on_chain(d, version, sha, &yes, e)) == BK_OK && yes) {
            d->done_version = version;
            d->done_cut = json_integer_value(cut);
            snprintf(d->done_sd, sizeof(d->done_sd), "%s", sd);
            *found = 1;
        }
        json_decref(j);
    }
    bk_storage_names_free(names, n);
    return rc;
}

/* Step 5: the log, encrypted, on chain. */
static int step_log(bd *d, bd_run *u, bk_err *e) {
    set_step(u, "log");
    hook("log");
    json_t *log = build_log(d, u);
    if (log == NULL)
        return bk_err_set(e, BK_E_NOMEM, "cannot build the backup log");
    char *hex = NULL;
    int rc = bk_blog_check(log, e);
    if (rc == BK_OK)
        rc = bk_blog_encrypt(log, d->pub, &hex, e);
    json_decref(log);
    if (rc != BK_OK)
        return BK_ERR;
    if (fenced_phase(d, u, "snapshot", "log", d->o->phase_ttl_ms, NULL, NULL, e) !=
            BK_OK ||
        run_save(d, u, e) != BK_OK) {
        free(hex);
        return BK_ERR;
    }
    const char *sha = json_string_value(json_object_get(u->report, "sha256"));
    if (done_put(d, u, sha, e) != BK_OK) {
        free(hex);
        return BK_ERR;
    }
    char digest[67];
    snprintf(digest, sizeof(digest), "0x%s", sha);
    size_t hl = strlen(hex);
    char *hx = malloc(hl + 3);
    if (hx == NULL) {
        free(hex);
        return bk_err_set(e, BK_E_NOMEM, "out of memory");
    }
    memcpy(hx, "0x", 2);
    memcpy(hx + 2, hex, hl + 1);
    free(hex);
    json_t *args = json_pack("{sI ss ss}", "version", (json_int_t)u->version, "digest",
                             digest, "log", hx);
    free(hx);
    char archive[67];
    snprintf(archive, sizeof(archive), "0x%s",
             json_string_value(json_object_get(u->archive, "sha256")) ?: "");
    if (args != NULL && u->archive != NULL)
        json_object_set_new(args, "archive", json_string(archive));
    json_t *reply = NULL;
    rc = bk_regchan_call(d->r, d->o->service, "appendBackupLog", args, u->epoch,
                         d->o->log_timeout_ms, &reply, e);
    json_decref(args);
    if (rc != BK_OK)
        return bk_err_prefix(e, "appendBackupLog of version %" PRId64, u->version);
    if (!json_is_true(json_object_get(reply, "ok"))) {
        bk_err_set(e, BK_E_REMOTE,
                   "appendBackupLog of version %" PRId64 " refused: %s (%s)", u->version,
                   json_string_value(json_object_get(reply, "error")) ?: "?",
                   json_string_value(json_object_get(reply, "code")) ?: "?");
        json_decref(reply);
        return BK_ERR;
    }
    json_decref(reply);
    int yes = 0;
    if (on_chain(d, u->version, sha, &yes, e) != BK_OK)
        return BK_ERR;
    if (!yes)
        return bk_err_set(e, BK_E_STATE,
                          "registryd confirmed version %" PRId64
                          " but the chain does not hold it",
                          u->version);
    return BK_OK;
}

/* Steps 6-8, also when resuming after a restart (then with the epoch of
 * whoever leads now). */
static int step_finish(bd *d, bd_run *u, int resumed, bk_err *e) {
    set_step(u, "delete");
    if (!resumed &&
        fenced_phase(d, u, "log", "delete", d->o->phase_ttl_ms, NULL, NULL, e) != BK_OK)
        return BK_ERR;
    if (run_save(d, u, e) != BK_OK)
        return BK_ERR;
    hook("delete");
    BK_INFO("backup version %" PRId64 " is on chain: deleting the records below %" PRId64,
            u->version, u->cut + 1);
    bk_err de;
    bk_err_clear(&de);
    if (bd_archive_on_chain(d, u, &de) != BK_OK) {
        /* I7: nothing leaves the log unless its archive is stored and on chain */
        BK_WARN("the records below %" PRId64 " are kept: %s", u->cut + 1, de.msg);
    } else if (d->delete_warned) {
        /* the back end said it cannot delete: not asked again */
    } else if (bk_rlog_delete_below(d->log, u->cut + 1, &de) != BK_OK) {
        if (de.code == BK_E_RLOG_UNSUPPORTED) {
            BK_WARN("the log back end cannot delete records (%s); records below %" PRId64
                    " stay, and this backupd does not ask again",
                    de.msg, u->cut + 1);
            d->delete_warned = 1;
        } else {
            BK_WARN("cannot delete the records below %" PRId64 " (kept; the next backup "
                    "tries again): %s",
                    u->cut + 1, de.msg);
        }
    } else {
        BK_INFO("deleted the log's records below %" PRId64, u->cut + 1);
    }
    set_step(u, "raise");
    hook("raise");
    int64_t sv = 0;
    if (bk_fenced_backup_finish(d->r, d->o->service, u->epoch, u->leader, u->version,
                                u->cut, &sv, e) != BK_OK)
        return BK_ERR;
    set_step(u, "clear");
    hook("clear");
    return BK_OK;
}

/* Keep the newest `keep` versions in storage (never the one just logged). */
static void prune(bd *d, int64_t latest) {
    char **names = NULL;
    size_t n = 0;
    bk_err e;
    bk_err_clear(&e);
    if (bk_storage_list(d->st, "v", &names, &n, &e) != BK_OK) {
        BK_WARN("cannot list the storage to prune it: %s", e.msg);
        return;
    }
    for (size_t i = 0; i < n; i++) {
        long long v = 0;
        if (sscanf(names[i], "v%lld-", &v) != 1 || v > latest - d->o->keep ||
            v >= latest || strstr(names[i], "-archive-") != NULL) /* the history stays */
            continue;
        if (bk_storage_delete(d->st, names[i], &e) != BK_OK)
            BK_WARN("cannot prune '%s': %s", names[i], e.msg);
        else
            BK_INFO("pruned '%s' (keeping versions above %lld)", names[i],
                    (long long)(latest - d->o->keep));
    }
    bk_storage_names_free(names, n);
}

/* Give a backup up: clear its phase if it is still ours. */
static void abandon(bd *d, bd_run *u, const bk_err *why) {
    BK_ERROR("backup version %" PRId64 " failed at step '%s': %s", u->version, u->step,
             why->msg);
    bk_err e;
    bk_err_clear(&e);
    bk_backup_phase p;
    if (u->epoch > 0 &&
        bk_backup_phase_get(d->r, d->o->service, &p, NULL, 0, &e) == BK_OK && p.set &&
        p.epoch == u->epoch &&
        bk_fenced_backup_step(d->r, d->o->service, u->epoch, BK_PHASE_ANY, NULL, 0, NULL,
                              NULL, NULL, &e) != BK_OK &&
        e.code != BK_E_FENCED)
        BK_WARN("cannot clear the backup phase: %s", e.msg);
    run_drop(d, u, 0);
}

/* The leader's id and epoch; *epoch 0 when there is none. */
static int current_leader(bd *d, bd_run *u, bk_err *e) {
    return bk_lease_get(d->r, d->o->service, u->leader, &u->epoch, e);
}

/* Remember what was finished (bd.done_*; the highest version). */
static void done_note(bd *d, const bd_run *u) {
    if (u->version < d->done_version)
        return;
    const char *sd = json_string_value(json_object_get(u->report, "state_digest"));
    d->done_version = u->version;
    d->done_cut = u->cut;
    snprintf(d->done_sd, sizeof(d->done_sd), "%s", sd ? sd : "");
}

/* Redis's last backup is below the chain's version V: a Redis failover
 * lost the finish of V (or a backupd stopped before it). When this
 * backupd finished V itself, put the finish back with the current leader's
 * token (SV, backup-last with V's cut: raises, never down) and V's state
 * digest, and take V's cut as the previous one; else *prev_cut is left as
 * Redis says. */
static int refinish(bd *d, bd_run *u, uint64_t chain_sv, bk_err *e) {
    if (d->done_version != (int64_t)chain_sv)
        return BK_OK;
    BK_WARN("Redis lost the finish of backup version %" PRId64
            " (a failover; last backup there: cut %" PRId64
            "): putting it back, cut %" PRId64,
            d->done_version, u->prev_cut, d->done_cut);
    int64_t sv = 0;
    if (bk_fenced_backup_finish(d->r, d->o->service, u->epoch, u->leader, d->done_version,
                                d->done_cut, &sv, e) != BK_OK)
        return bk_err_prefix(e, "cannot put back the finish of version %" PRId64,
                             d->done_version);
    bd_history_note(d, d->done_version, d->done_sd);
    u->prev_cut = d->done_cut;
    return BK_OK;
}

static void done_line(bd *d, const bd_run *u) {
    BK_INFO("backup version %" PRId64 " done (%s): cut %" PRId64 ", %" PRId64
            " records since the previous cut, leader '%s' held %" PRId64
            " ms, took %" PRId64 " ms; stored '%s'",
            u->version, u->reason, u->cut, u->cut - u->prev_cut, u->leader, u->held_ms,
            bk_wall_ms() - u->start_ms,
            json_string_value(json_object_get(u->report, "object")) ?: "?");
    (void)d;
}

/* One backup from step 1. */
static int backup_once(bd *d, const char *reason, bk_err *e) {
    /* a version on chain that this backupd has not finished comes first
     * (the loop finishes it): a backup started now would take Redis's last
     * cut, older than that version's, and archive records twice */
    if (d->unfinished != NULL) {
        bk_err_set(e, BK_E_STATE,
                   "backup version %" PRId64
                   " is on chain but not finished: no new backup before it is",
                   d->unfinished_version);
        BK_WARN("%s", e->msg);
        return BK_ERR;
    }
    bd_run u;
    memset(&u, 0, sizeof(u));
    u.start_ms = bk_wall_ms();
    u.cut = -1;
    snprintf(u.reason, sizeof(u.reason), "%s", reason);
    if (current_leader(d, &u, e) != BK_OK)
        return BK_ERR;
    if (u.epoch == 0)
        return bk_err_set(e, BK_E_STATE, "no leader: no backup until one is elected");
    uint64_t chain_sv = 0;
    int64_t sv = 1, last_v = 1, end = 0;
    if (bk_reg_get_state_version(d->rpc, d->reg, &chain_sv, e) != BK_OK ||
        bk_sv_get(d->r, d->o->service, &sv, e) != BK_OK ||
        bk_backup_last_get(d->r, d->o->service, &last_v, &u.prev_cut, e) != BK_OK)
        return BK_ERR;
    int found = 0;
    if ((int64_t)chain_sv > last_v && d->done_version != (int64_t)chain_sv &&
        done_load(d, (int64_t)chain_sv, &found, e) != BK_OK)
        return BK_ERR;
    if (found)
        BK_INFO("backup version %" PRIu64
                " is on chain but Redis's last backup is version "
                "%" PRId64 ": its cut %" PRId64 " read from storage",
                chain_sv, last_v, d->done_cut);
    if ((int64_t)chain_sv > last_v && d->done_version == (int64_t)chain_sv) {
        if (refinish(d, &u, chain_sv, e) != BK_OK)
            return BK_ERR;
    } else if (d->done_version == (int64_t)chain_sv) {
        u.prev_cut = d->done_cut; /* the chain's latest version, finished here */
    } else if ((int64_t)chain_sv > sv)
        BK_WARN("the chain is at version %" PRIu64 " and Redis at %" PRId64
                " (a backup logged by a backupd that stopped before finishing it)",
                chain_sv, sv);
    u.version = (int64_t)chain_sv + 1;
    /* the log's first offset goes into the backup's log: without it (the
     * broker moving its partition leader, Redis restarting) no backup now */
    if (bk_rlog_offsets(d->log, &u.first_offset, &end, e) != BK_OK) {
        bk_err_prefix(e,
                      "no backup version %" PRId64 " now: cannot read the log's offsets",
                      u.version);
        BK_WARN("%s", e->msg);
        return BK_ERR;
    }
    BK_INFO("backup version %" PRId64 " starting (%s): leader '%s', epoch %" PRId64,
            u.version, reason, u.leader, u.epoch);
    /* backup-run is saved before each step, so that a backupd that stops
     * anywhere is followed by one that knows what to finish or undo */
    int (*const steps[])(bd *, bd_run *, bk_err *) = {
        step_cut, step_wait, step_phase, step_snapshot, step_archive, step_log};
    int rc = BK_OK;
    for (size_t i = 0; rc == BK_OK && i < sizeof(steps) / sizeof(steps[0]); i++) {
        rc = run_save(d, &u, e);
        if (rc == BK_OK)
            rc = steps[i](d, &u, e);
    }
    if (rc != BK_OK) {
        int yes = 0;
        bk_err ce;
        bk_err_clear(&ce);
        const char *sha = json_string_value(json_object_get(u.report, "sha256"));
        if (strcmp(u.step, "log") == 0 && sha != NULL &&
            on_chain(d, u.version, sha, &yes, &ce) == BK_OK && yes) {
            BK_WARN("%s; but the chain holds version %" PRId64 ": finishing it", e->msg,
                    u.version);
            rc = BK_OK;
        } else {
            abandon(d, &u, e);
            run_free(&u);
            return BK_ERR;
        }
    }
    rc = step_finish(d, &u, 0, e);
    if (rc != BK_OK) { /* logged on chain: kept in backup-run, finished later */
        BK_ERROR("backup version %" PRId64 " is on chain but not finished: %s (retrying)",
                 u.version, e->msg);
        /* and in memory: a Redis failover may lose backup-run (I7, I9) */
        unfinished_set(d, &u);
        run_free(&u);
        return BK_ERR;
    }
    done_line(d, &u);
    done_note(d, &u);
    run_drop(d, &u, 1);
    prune(d, u.version);
    bd_archive_prune(d, u.version, u.epoch);
    run_free(&u);
    return BK_OK;
}

/* A backup-run left by a backupd that stopped: finish it when its log is
 * on chain (I7 holds: nothing was deleted before), else abandon it. */
static int resume(bd *d, bd_run *u, bk_err *e) {
    const char *sha = json_string_value(json_object_get(u->report, "sha256"));
    int logged = strcmp(u->step, "log") == 0 || strcmp(u->step, "delete") == 0 ||
                 strcmp(u->step, "raise") == 0 || strcmp(u->step, "clear") == 0;
    if (!logged || sha == NULL) {
        bk_err why;
        bk_err_set(&why, BK_E_STATE, "interrupted before its log was sent");
        abandon(d, u, &why);
        return BK_OK;
    }
    int yes = 0;
    int64_t deadline = bk_mono_ms() + d->o->log_timeout_ms;
    while (!yes) {
        if (on_chain(d, u->version, sha, &yes, e) != BK_OK) {
            if (e->code == BK_E_STATE) { /* another digest at that version */
                abandon(d, u, e);
                return BK_OK;
            }
            return BK_ERR; /* the chain is unreachable: try again later */
        }
        if (!yes && (bk_mono_ms() > deadline || bk_sig_stop)) {
            bk_err why;
            bk_err_set(&why, BK_E_TIMEOUT,
                       "interrupted while logging, and the chain does not hold version "
                       "%" PRId64 " after %d ms",
                       u->version, d->o->log_timeout_ms);
            abandon(d, u, &why);
            return BK_OK;
        }
        if (!yes)
            bk_sleep_ms(200);
    }
    /* on chain: this backupd knows it now, and keeps it until it is
     * finished (a Redis failover may lose backup-run before) */
    if (!is_unfinished(d, u))
        unfinished_set(d, u);
    char cur[BK_ID_MAX + 1];
    int64_t ep = 0;
    if (bk_lease_get(d->r, d->o->service, cur, &ep, e) != BK_OK)
        return BK_ERR;
    if (ep == 0)
        return bk_err_set(e, BK_E_STATE, "no leader to finish version %" PRId64 " with",
                          u->version);
    BK_INFO("finishing backup version %" PRId64 " (on chain; interrupted at step '%s') "
            "with leader '%s', epoch %" PRId64,
            u->version, u->step, cur, ep);
    u->epoch = ep;
    snprintf(u->leader, sizeof(u->leader), "%s", cur);
    if (step_finish(d, u, 1, e) != BK_OK)
        return BK_ERR;
    done_line(d, u);
    done_note(d, u);
    run_drop(d, u, 1);
    prune(d, u->version);
    bd_archive_prune(d, u->version, u->epoch);
    return BK_OK;
}

/* A backup phase with no backup-run behind it (left by a backupd that
 * died before saving one, or by a backup whose leader was replaced): it
 * is inert for other epochs, but cleared anyway with the current leader's
 * token (compare-and-delete of that exact value), so that the keys say
 * plainly that no backup is in progress. */
static int clear_stale(bd *d, bk_err *e) {
    bk_backup_phase p;
    char raw[128];
    if (bk_backup_phase_get(d->r, d->o->service, &p, raw, sizeof(raw), e) != BK_OK)
        return BK_ERR;
    if (!p.set)
        return BK_OK;
    char id[BK_ID_MAX + 1];
    int64_t ep = 0;
    int done = 0;
    if (bk_lease_get(d->r, d->o->service, id, &ep, e) != BK_OK)
        return BK_ERR;
    if (ep == 0) /* no leader: nobody holds or pauses; cleared later */
        return BK_OK;
    if (bk_fenced_backup_step(d->r, d->o->service, ep, raw, NULL, 0, NULL, NULL, &done,
                              e) != BK_OK)
        return e->code == BK_E_FENCED ? BK_OK : BK_ERR; /* a leader change: next time */
    if (done)
        BK_WARN("cleared the backup phase '%s' left by an interrupted backup", raw);
    return BK_OK;
}

/* The trigger, or NULL: an operator's request, max-replicated records
 * since the last cut, or fewer than a majority alive (with new records). */
static const char *trigger(bd *d, bk_err *e) {
    char k[BK_KEY_MAX];
    if (bk_key_backup_aux(k, sizeof(k), d->o->service, "backup-now", e) != BK_OK)
        return NULL;
    redisReply *rep = bk_redis_command(d->r, e, "GETDEL %s", k);
    if (rep == NULL)
        return NULL;
    int now = rep->type == REDIS_REPLY_STRING;
    freeReplyObject(rep);
    if (now)
        return "operator";
    int64_t ssi = -1, v = 1, cut = -1;
    if (bk_ssi_get(d->r, d->o->service, &ssi, e) != BK_OK ||
        bk_backup_last_get(d->r, d->o->service, &v, &cut, e) != BK_OK)
        return NULL;
    if (ssi - cut >= d->o->max_replicated)
        return "max-replicated";
    if (ssi <= cut)
        return NULL;
    json_t *m = NULL, *a = NULL;
    if (read_members(d, &m, &a, e) != BK_OK)
        return NULL;
    size_t nm = json_array_size(m), na = json_array_size(a);
    json_decref(m);
    json_decref(a);
    if (nm > 0 && na < nm / 2 + 1)
        return "majority";
    return NULL;
}

static int open_all(bd *d, bk_err *e) {
    const bk_backupd_opts *o = d->o;
    if (bk_keys_check_service(o->service, e) != BK_OK)
        return 2;
    if (o->registry[0] == '\0' || bk_eth_addr_parse(o->registry, d->reg, e) != BK_OK) {
        bk_err_set(e, BK_E_INVAL, "--registry needs the contract's address, got '%s'",
                   o->registry);
        return 2;
    }
    if (o->eth_rpc[0] == '\0') {
        bk_err_set(e, BK_E_INVAL, "--eth-rpc needs at least one URL");
        return 2;
    }
    if (bk_service_pub_load(o->pubkey, d->pub, e) != BK_OK)
        return 2;
    bk_hex_encode(d->pub, sizeof(d->pub), 0, d->pubhex);
    if (bk_storage_open(o->storage, &d->st, e) != BK_OK)
        return 2;
    d->rpc = bk_rpc_new_list(o->eth_rpc, 10000, e);
    if (d->rpc == NULL)
        return 2;
    d->r = bk_redis_new(o->redis, 5000, e);
    if (d->r == NULL)
        return 1;
    if (bk_kafka_topic_name(o->service, d->topic, sizeof(d->topic), e) != BK_OK)
        return 2;
    bk_rlog_settings ls = {o->kafka, d->topic, o->kafka_props, 10000};
    d->log = bk_rlog_open(&ls, e);
    if (d->log == NULL)
        return 1;
    return 0;
}

int bk_backupd_run(const bk_backupd_opts *o, bk_err *e) {
    bd d;
    memset(&d, 0, sizeof(d));
    d.o = o;
    int rc = open_all(&d, e);
    if (rc == 0)
        BK_INFO("backupd of service '%s': storage '%s', max-replicated %lld, keep %d",
                o->service, bk_storage_url(d.st), o->max_replicated, o->keep);
    int64_t next_ms = 0;
    while (rc == 0 && !bk_sig_stop) {
        bk_err le;
        bk_err_clear(&le);
        if (bk_mono_ms() < next_ms) {
            bk_sleep_ms(o->poll_ms);
            continue;
        }
        bd_run u;
        int found = 0;
        if (run_load(&d, &u, &found, &le) != BK_OK) {
            BK_WARN("%s", le.msg);
            next_ms = bk_mono_ms() + FAIL_BACKOFF_MS;
            continue;
        }
        if (d.unfinished != NULL &&
            (!found || (u.version <= d.unfinished_version && !is_unfinished(&d, &u)))) {
            /* backup-run of a version on chain is gone, or an older one is
             * in its place: a Redis failover promoted a replica that missed
             * it (and held the run of a backup in flight before). Put it
             * back and finish it first (resume: SV, the last backup and its
             * cut from this run, with the current leader's token), so that
             * the next backup archives from its cut, not an older one; the
             * older run is obsolete (that version was given up, or the
             * finish of this one covers it) */
            if (found) {
                BK_WARN("backup version %" PRId64
                        " is on chain but Redis holds the backup-run of version %" PRId64
                        " (step '%s') in its place (a failover): saving it again to "
                        "finish it",
                        d.unfinished_version, u.version, u.step);
                run_free(&u);
            } else {
                BK_WARN("backup version %" PRId64
                        " is on chain but Redis lost its backup-run (a failover): saving "
                        "it again to finish it",
                        d.unfinished_version);
            }
            if (run_save_text(&d, d.unfinished, &le) != BK_OK) {
                BK_WARN("%s", le.msg);
                next_ms = bk_mono_ms() + FAIL_BACKOFF_MS;
            }
            continue;
        }
        if (found) {
            int r2 = resume(&d, &u, &le);
            run_free(&u);
            if (r2 != BK_OK) {
                BK_WARN("cannot finish the interrupted backup yet: %s", le.msg);
                next_ms = bk_mono_ms() + FAIL_BACKOFF_MS;
            }
            continue;
        }
        if (clear_stale(&d, &le) != BK_OK) {
            BK_WARN("%s", le.msg);
            next_ms = bk_mono_ms() + FAIL_BACKOFF_MS;
            continue;
        }
        const char *why = o->once ? "operator" : trigger(&d, &le);
        if (why == NULL) {
            if (le.code != BK_E_NONE)
                BK_WARN("%s", le.msg);
            bk_sleep_ms(o->poll_ms);
            continue;
        }
        if (backup_once(&d, why, &le) != BK_OK) {
            if (le.code == BK_E_STATE && strstr(le.msg, "no leader") != NULL)
                BK_INFO("%s", le.msg);
            next_ms = bk_mono_ms() + FAIL_BACKOFF_MS;
            if (o->once) {
                *e = le;
                rc = 1;
            }
        } else if (o->once) {
            break;
        }
    }
    unfinished_clear(&d);
    bk_rlog_close(d.log);
    bk_redis_free(d.r);
    bk_rpc_free(d.rpc);
    bk_storage_close(d.st);
    return rc;
}
