/* commit.c - the leader's results: held until committed (worker.h:
 * worker.held), their external effects and the fenced commit of results
 * + SSI, inline (wk_flush_held) or on the commit thread (wk_commit_async,
 * one job in flight, collected by main with wk_collect).
 *
 * Results of records applied as leader but not committed are kept ("held")
 * until SSI covers them, so that this worker may lead again without
 * losing their effects: the take script requires SSI to lie between the
 * offset before the first held record and the LPI (the take window). */
#include <inttypes.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/clock.h"
#include "base/jscan.h"
#include "base/log.h"
#include "base/sig.h"
#include "redis/keys.h"
#include "worker_int.h"

void wk_publish_take_window(worker *w) {
    pthread_mutex_lock(&w->s.mu);
    w->s.take_max = w->pos.lpi;
    w->s.take_min = w->nheld ? w->held[0].offset - 1 : w->pos.lpi;
    pthread_mutex_unlock(&w->s.mu);
}

void wk_held_drop_upto(worker *w, int64_t ssi) {
    size_t k = 0;
    while (k < w->nheld && w->held[k].offset <= ssi) {
        free(w->held[k].request_id);
        free(w->held[k].json);
        k++;
    }
    if (k == 0)
        return;
    memmove(w->held, w->held + k, (w->nheld - k) * sizeof(*w->held));
    w->nheld -= k;
    wk_publish_take_window(w);
}

int wk_held_push(worker *w, int64_t offset, char *request_id, char *json, int named,
                 bk_err *e) {
    if (w->nheld == w->capheld) {
        size_t cap = w->capheld ? 2 * w->capheld : 256;
        held *h = realloc(w->held, cap * sizeof(*h));
        if (h == NULL)
            return bk_err_set(e, BK_E_NOMEM, "out of memory");
        w->held = h;
        w->capheld = cap;
    }
    w->held[w->nheld++] = (held){offset, request_id, json, 0, named};
    return BK_OK;
}

/* Still the leader of w->epoch per the lease thread? */
static int still_leader(worker *w) {
    pthread_mutex_lock(&w->s.mu);
    int yes = w->s.lease_epoch == w->epoch;
    pthread_mutex_unlock(&w->s.mu);
    return yes;
}

#define EXTERNAL_CHUNK 1000 /* records per external_many call */
/* results held before a hand-over waits for the commit thread */
#define COMMIT_BACKLOG(w) (4 * (w)->o->batch_max)

/* The external effects of the held records not done yet, EXTERNAL_CHUNK
 * at a time, with the application's external_many. */
static int external_many(worker *w, bk_redis *r, int64_t epoch, held *hv, size_t nh,
                         bk_err *e) {
    const bk_worker_opts *o = w->o;
    int64_t offs[EXTERNAL_CHUNK];
    const char *res[EXTERNAL_CHUNK];
    size_t i = 0;
    while (i < nh) {
        size_t n = 0, first = i;
        for (; i < nh && n < EXTERNAL_CHUNK; i++)
            if (!hv[i].ext_done) {
                offs[n] = hv[i].offset;
                res[n++] = hv[i].json;
            }
        if (n > 0 &&
            o->app->external_many(w->app, r, o->service, epoch, offs, res, n, e) != BK_OK)
            return BK_ERR;
        for (size_t j = first; j < i; j++)
            hv[j].ext_done = 1;
    }
    return BK_OK;
}

/* Does the result name `rid` as its request id ("id")? Not when the record
 * could not be parsed and its header named the id (batch.c): such a result
 * goes only under its offset (bk_lua_commit), never under the request id's
 * first key, which another client's real request may need (squatting).
 * batch.c knows it when it holds a result (held.named); this reads the
 * result for those reloaded from worker.held. */
static int names_itself(const char *json, const char *rid) {
    static const char *const keys[] = {"id"};
    bk_jspan v[1];
    if (bk_jscan(json, strlen(json), keys, 1, v))
        return v[0].type == 's' && v[0].len == strlen(rid) &&
               memcmp(v[0].p, rid, v[0].len) == 0;
    json_t *root = json_loads(json, 0, NULL);
    const char *id = json_string_value(json_object_get(root, "id"));
    int yes = id != NULL && strcmp(id, rid) == 0;
    json_decref(root);
    return yes;
}

/* The external effects and the fenced commit of hv[0..nh-1] and SSI =
 * upto, with token `epoch` on connection r: BK_OK with *ssi_after, or
 * BK_ERR (e->code BK_E_FENCED when refused). */
static int commit_once(worker *w, bk_redis *r, int64_t epoch, held *hv, size_t nh,
                       int64_t upto, int64_t *ssi_after, bk_err *e) {
    const bk_worker_opts *o = w->o;
    /* With replicas (I9): the results and the external effects before them
     * (same connection) must reach a replica before SSI covers them, so
     * that SSI, which the followers apply up to and which a worker puts
     * back after a failover lost it, never covers what the promoted replica
     * lacks. So: results first (SSI left alone), WAIT, then SSI and its
     * announcement, which also marks ext-lost if the server's SSI is below
     * what this worker saw committed (a promoted replica that lost writes:
     * the raise would hide it; the leader then republishes, claim.c). On a failure the
     * external effects are done again on the retry (idempotent per offset, like the
     * results: never overwritten): the primary that had them may be gone. */
    int two_step = bk_redis_wait_needed(r) > 0;
    /* what this worker saw committed before: SSI below it on the server
     * when the commit raises SSI means a stale replica was promoted */
    int64_t floor = wk_shared_ssi(w);
    int rc = BK_OK;
    int64_t t0 = bk_mono_ns(), t1 = t0; /* for the debug line below */
    if (o->app->external_many != NULL)
        rc = external_many(w, r, epoch, hv, nh, e);
    for (size_t i = 0; rc == BK_OK && i < nh; i++) {
        held *h = &hv[i];
        if (h->ext_done || o->app->external == NULL)
            continue;
        rc = o->app->external(w->app, r, o->service, epoch, h->offset, h->json, e);
        if (rc == BK_OK)
            h->ext_done = 1;
    }
    bk_result_item *items = NULL;
    size_t n = 0;
    if (rc == BK_OK && (items = calloc(nh ? nh : 1, sizeof(*items))) == NULL)
        rc = bk_err_set(e, BK_E_NOMEM, "out of memory");
    for (size_t i = 0; rc == BK_OK && i < nh; i++)
        if (hv[i].request_id != NULL)
            items[n++] = (bk_result_item){
                hv[i].request_id, hv[i].json, hv[i].offset,
                hv[i].named < 0 ? !names_itself(hv[i].json, hv[i].request_id)
                                : !hv[i].named};
    if (rc == BK_OK) {
        t1 = bk_mono_ns();
        rc = bk_fenced_commit(r, o->service, epoch, items, n, o->result_ttl_s,
                              two_step ? -1 : upto, ssi_after, e);
    }
    free(items);
    if (rc == BK_OK && two_step) {
        if (bk_redis_wait(r, 1000, e) != BK_OK)
            rc = bk_err_prefix(e, "commit up to %" PRId64 " not on a replica", upto);
        else
            rc = bk_fenced_ssi_commit(r, o->service, epoch, upto, floor, ssi_after, e);
    }
    if (rc != BK_OK && two_step)
        for (size_t i = 0; i < nh; i++)
            hv[i].ext_done = 0;
    if (rc == BK_OK)
        BK_DEBUG("commit ..%" PRId64
                 " (%zu results): external %.2f ms, fenced commit %.2f ms",
                 upto, nh, (double)(t1 - t0) / 1e6, (double)(bk_mono_ns() - t1) / 1e6);
    return rc;
}

/* Run the external effects of the held records, then commit their results
 * and SSI = LPI with one fenced script. Retries transient Redis failures
 * while the lease is ours; FENCED (or a lost lease) steps down. */
int wk_flush_held(worker *w) {
    bk_err e;
    if (!wk_claimed(w)) /* not before our claim counts (claim.c, I9): kept */
        return BK_OK;
    for (;;) {
        bk_err_clear(&e);
        if (!still_leader(w)) {
            wk_step_down(w, "the lease was lost");
            return BK_OK;
        }
        int64_t now = -1;
        if (commit_once(w, w->rm, w->epoch, w->held, w->nheld, w->pos.lpi, &now, &e) ==
            BK_OK) {
            wk_raise_ssi(w, now);
            wk_held_drop_upto(w, w->pos.lpi);
            return BK_OK;
        }
        if (e.code == BK_E_FENCED) {
            wk_step_down(w, e.msg);
            return BK_OK;
        }
        if (e.code == BK_E_APP) { /* the results stay held; main restarts (worker.c) */
            BK_WARN("leader commit: %s", e.msg);
            snprintf(w->app_why, sizeof(w->app_why), "%s", e.msg);
            w->app_failed = 1;
            return BK_OK;
        }
        if (bk_sig_stop) {
            BK_WARN("stopping with %zu records not committed: %s", w->nheld, e.msg);
            return BK_OK;
        }
        BK_WARN("leader commit failed (retrying): %s", e.msg);
        bk_sleep_full_ms(200);
    }
}

/* ---- the commit thread (pipelined commits) ---- */

/* Run one job until it is committed, fenced, the lease is lost or the
 * worker stops; transient Redis failures are retried. */
static int commit_job(worker *w, bk_redis **r, cjob *j) {
    bk_err e;
    for (;;) {
        bk_err_clear(&e);
        pthread_mutex_lock(&w->s.mu);
        int ours = w->s.lease_epoch == j->epoch;
        pthread_mutex_unlock(&w->s.mu);
        if (!ours) {
            snprintf(j->why, sizeof(j->why), "the lease was lost");
            return C_LOST;
        }
        if (*r == NULL)
            *r = bk_redis_new(w->o->redis, 5000, &e);
        if (*r != NULL &&
            commit_once(w, *r, j->epoch, j->h, j->n, j->upto, &j->ssi_after, &e) == BK_OK)
            return C_OK;
        if (e.code == BK_E_FENCED) {
            snprintf(j->why, sizeof(j->why), "%s", e.msg);
            return C_LOST;
        }
        if (e.code == BK_E_APP) { /* its process is gone: main restarts (worker.c) */
            snprintf(j->why, sizeof(j->why), "%s", e.msg);
            return C_APP;
        }
        if (bk_sig_stop) {
            snprintf(j->why, sizeof(j->why), "%s", e.msg);
            return C_STOPPED;
        }
        BK_WARN("leader commit failed (retrying): %s", e.msg);
        bk_sleep_full_ms(200);
    }
}

void *wk_commit_main(void *arg) {
    worker *w = arg;
    bk_redis *r = NULL;
    pthread_mutex_lock(&w->s.mu);
    for (;;) {
        while (!w->s.quit && !(w->job.busy && !w->job.done))
            pthread_cond_wait(&w->jcv, &w->s.mu);
        if (!(w->job.busy && !w->job.done))
            break; /* quit, nothing to do */
        cjob j = w->job;
        pthread_mutex_unlock(&w->s.mu);
        int outcome = commit_job(w, &r, &j);
        pthread_mutex_lock(&w->s.mu);
        w->job.outcome = outcome;
        w->job.ssi_after = j.ssi_after;
        memcpy(w->job.why, j.why, sizeof(j.why));
        w->job.done = 1;
        if (outcome == C_OK && j.ssi_after > w->s.ssi)
            w->s.ssi = j.ssi_after;
        if (outcome == C_LOST && w->s.lease_epoch == j.epoch)
            w->s.lease_epoch = 0; /* fenced: main steps down at once */
        pthread_cond_broadcast(&w->jcv);
        wake(&w->s);
    }
    pthread_mutex_unlock(&w->s.mu);
    bk_redis_free(r);
    return NULL;
}

/* Collect the finished job (waiting for it when `block`): free its
 * results once committed, else put them back in front of w->held and
 * step down when it was fenced. */
void wk_collect(worker *w, int block) {
    pthread_mutex_lock(&w->s.mu);
    if (!w->job.busy || (!block && !w->job.done)) {
        pthread_mutex_unlock(&w->s.mu);
        return;
    }
    while (!w->job.done)
        pthread_cond_wait(&w->jcv, &w->s.mu);
    cjob j = w->job;
    w->job.busy = w->job.done = 0;
    w->job.h = NULL;
    w->job.n = 0;
    pthread_mutex_unlock(&w->s.mu);
    if (j.outcome == C_OK) {
        wk_raise_ssi(w, j.ssi_after);
        for (size_t i = 0; i < j.n; i++) {
            free(j.h[i].request_id);
            free(j.h[i].json);
        }
        free(j.h);
        return;
    }
    /* not committed: these results precede every one in w->held */
    size_t total = j.n + w->nheld;
    held *h = j.n ? realloc(j.h, (total ? total : 1) * sizeof(*h)) : NULL;
    if (j.n && h == NULL) {
        BK_ERROR("out of memory: dropping %zu uncommitted results", j.n);
        for (size_t i = 0; i < j.n; i++) {
            free(j.h[i].request_id);
            free(j.h[i].json);
        }
        free(j.h);
    } else if (j.n) {
        if (w->nheld)
            memcpy(h + j.n, w->held, w->nheld * sizeof(*h));
        free(w->held);
        w->held = h;
        w->nheld = w->capheld = total;
    }
    wk_publish_take_window(w);
    if (j.outcome == C_STOPPED) {
        BK_WARN("stopping with %zu records not committed: %s", w->nheld, j.why);
    } else if (j.outcome == C_APP) {
        BK_WARN("%zu records not committed: %s", w->nheld, j.why);
        snprintf(w->app_why, sizeof(w->app_why), "%s", j.why);
        w->app_failed = 1;
    } else if (w->role == R_LEADER)
        wk_step_down(w, j.why);
}

/* Hand the held results and SSI = LPI (durable) over to the commit thread.
 * With `wait`, after the previous job is done; without, only when it is
 * done already: otherwise they stay held and go with the next hand-over,
 * so that a commit slower than a batch carries the results of the
 * batches applied meanwhile in one script call (the apply never waits
 * for it while fewer than COMMIT_BACKLOG results are held). */
void wk_commit_async(worker *w, int wait) {
    if (!wait && w->nheld >= (size_t)COMMIT_BACKLOG(w))
        wait = 1;
    wk_collect(w, wait);
    pthread_mutex_lock(&w->s.mu);
    int busy = w->job.busy;
    pthread_mutex_unlock(&w->s.mu);
    if (busy) /* not done yet (wait = 0): next time */
        return;
    if (!wk_claimed(w)) /* a follower, or a leader before its claim counts (I9) */
        return;
    if (!still_leader(w)) {
        wk_step_down(w, "the lease was lost");
        return;
    }
    pthread_mutex_lock(&w->s.mu);
    w->job = (cjob){1, 0, C_OK, w->epoch, w->pos.lpi, -1, w->held, w->nheld, ""};
    w->held = NULL;
    w->nheld = w->capheld = 0;
    pthread_cond_broadcast(&w->jcv);
    pthread_mutex_unlock(&w->s.mu);
}

/* Make the held results durable for LPI `upto` (worker.held, worker.h):
 * a frame with the results held since the last frame, or, when nothing
 * is in flight (every earlier frame committed) or the file is full, a
 * new generation with every result not committed. */
int wk_store_held(worker *w, int64_t upto, bk_err *e) {
    size_t jn = w->job.busy ? w->job.n : 0, n = jn + w->nheld; /* h, n: main's */
    int64_t base = jn ? w->job.h[0].offset : w->nheld ? w->held[0].offset : upto + 1;
    size_t first = 0; /* w->held[first..]: not in a frame yet */
    while (first < w->nheld && w->held[first].offset <= w->held_hi)
        first++;
    size_t bytes = 0;
    for (size_t i = first; i < w->nheld; i++)
        bytes += 64 + strlen(w->held[i].json) +
                 (w->held[i].request_id ? strlen(w->held[i].request_id) : 0);
    int restart = jn == 0 || w->hf.seq < 0 || w->hf.end + 128 + bytes > BK_HELD_SPACE;
    if (restart)
        first = 0;
    size_t m = restart ? n : w->nheld - first;
    bk_held_rec stack[256] = {{0, NULL, NULL}}, *r = stack;
    if (m > 256 && (r = malloc(m * sizeof(*r))) == NULL)
        return bk_err_set(e, BK_E_NOMEM, "out of memory");
    size_t k = 0;
    for (size_t i = 0; restart && i < jn; i++) /* the job in flight, not committed yet */
        r[k++] =
            (bk_held_rec){w->job.h[i].offset, w->job.h[i].request_id, w->job.h[i].json};
    for (size_t i = first; i < w->nheld; i++)
        r[k++] = (bk_held_rec){w->held[i].offset, w->held[i].request_id, w->held[i].json};
    int rc = bk_held_write(&w->hf, w->held_path, restart, upto, base, r, k, e);
    if (r != stack)
        free(r);
    if (rc == BK_OK && w->nheld > 0)
        w->held_hi = w->held[w->nheld - 1].offset;
    return rc;
}

/* Reload the results a leader held when it stopped (crash or SIGTERM
 * before its commit): only when worker.held was written at this LPI. */
void wk_load_held(worker *w) {
    int64_t upto = -1;
    bk_held_rec *r = NULL;
    size_t n = 0;
    bk_err e;
    bk_err_clear(&e);
    if (bk_held_read(w->held_path, &upto, &r, &n, &e) != BK_OK) {
        BK_WARN("%s: ignored", e.msg);
        return;
    }
    size_t kept = 0;
    for (size_t i = 0; i < n; i++) {
        if (upto == w->pos.lpi && r[i].offset <= upto &&
            (w->nheld == 0 || r[i].offset > w->held[w->nheld - 1].offset) &&
            wk_held_push(w, r[i].offset, (char *)r[i].request_id, (char *)r[i].json, -1,
                         &e) == BK_OK) {
            kept++;
            continue;
        }
        free((char *)r[i].request_id);
        free((char *)r[i].json);
    }
    free(r);
    if (kept > 0)
        BK_INFO("reloaded %zu results applied as leader and not committed "
                "(offsets %" PRId64 "..%" PRId64 ") from '%s'",
                kept, w->held[0].offset, w->held[w->nheld - 1].offset, w->held_path);
    /* zeros to write frames over (a new generation starts at the first write) */
    if (bk_held_prepare(&w->hf, w->held_path, &e) != BK_OK)
        BK_WARN("%s", e.msg);
}

/* A worker whose LPI is beyond SSI without the results of the records in
 * between (it led, and lost them) cannot take the lease (the take script
 * requires SSI in its window) until another leader raises SSI past its
 * LPI: say so once, or the service may stall silently. */
void wk_check_stall(worker *w, int64_t ssi) {
    int stalled = w->role == R_FOLLOWER && ssi < w->pos.lpi &&
                  (w->nheld == 0 || w->held[0].offset - 1 > ssi);
    if (stalled && !w->stall_logged)
        BK_WARN("cannot lead: LPI %" PRId64 " is beyond SSI %" PRId64
                " and the results of records %" PRId64 "..%" PRId64
                " are not held (applied as leader, never committed, and lost); this "
                "worker waits for another leader to raise SSI to %" PRId64
                "; if there is none, the service is stalled",
                w->pos.lpi, ssi, ssi + 1, w->nheld ? w->held[0].offset - 1 : w->pos.lpi,
                w->pos.lpi);
    w->stall_logged = stalled;
}
