/* batch.c - applying a batch of records (I3, I5, I6), the state digest
 * and the LPI mirror. The order of a batch is in worker.c's comment. */
#include <inttypes.h>
#include <jansson.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "base/clock.h"
#include "base/jscan.h"
#include "base/log.h"
#include "base/sig.h"
#include "proto.h"
#include "redis/keys.h"
#include "worker_int.h"

#define MIRROR_MS 50 /* LPI-<id> written at most this often while busy */

/* The request id and status of a result (JSON text). */
static void result_info(const char *json, char **request_id, int *rejected) {
    static const char *const keys[] = {"id", "status"};
    bk_jspan v[2];
    *request_id = NULL;
    *rejected = 0;
    if (bk_jscan(json, strlen(json), keys, 2, v)) { /* the fast path, same answer */
        if (v[0].type == 's' && v[0].len > 0)
            *request_id = strndup(v[0].p, v[0].len);
        *rejected =
            v[1].type == 's' && v[1].len == 8 && memcmp(v[1].p, "rejected", 8) == 0;
        return;
    }
    json_t *root = json_loads(json, 0, NULL);
    if (root == NULL)
        return;
    const char *id = json_string_value(json_object_get(root, "id"));
    const char *st = json_string_value(json_object_get(root, "status"));
    if (id != NULL && *id != '\0')
        *request_id = strdup(id);
    *rejected = st != NULL && strcmp(st, "rejected") == 0;
    json_decref(root);
}

/* The request id of the record's br2k-request-id header, when the record's
 * own body could not name one (malformed JSON, oversize): NULL if absent or
 * not "<client>:<seq>" (client 1 to 64 of A-Z a-z 0-9 . _ -, seq 1 to 16
 * digits). Every replica sees the same header. Its result goes only under
 * its offset (commit.c: names_itself), never taking the id's first key. */
static char *header_request_id(const bk_rlog_rec *r) {
    const void *v = NULL;
    size_t len = 0;
    if (bk_rlog_rec_header(r, BK_RLOG_H_REQUEST_ID, &v, &len, NULL) != BK_OK || len < 3 ||
        len > 81)
        return NULL;
    const char *s = v, *colon = memchr(s, ':', len);
    if (colon == NULL || colon == s || colon - s > 64 ||
        len - (size_t)(colon - s) - 1 < 1 || len - (size_t)(colon - s) - 1 > 16)
        return NULL;
    for (const char *p = s; p < colon; p++)
        if (!((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') ||
              (*p >= '0' && *p <= '9') || *p == '.' || *p == '_' || *p == '-'))
            return NULL;
    for (const char *p = colon + 1; p < s + len; p++)
        if (*p < '0' || *p > '9')
            return NULL;
    return strndup(v, len);
}

/* The digest hashes the whole state (InfoDID sorts every key): a large
 * state makes it expensive, so the next unforced one waits at least 20
 * times as long as the last one took (at most ~5% of the time). */
int64_t wk_digest_gap_ms(const worker *w, int64_t floor_ms) {
    int64_t g = 20 * w->digest_cost_ms;
    return g > floor_ms ? g : floor_ms;
}

void wk_update_digest(worker *w, int force) {
    int64_t now = bk_mono_ms();
    pthread_mutex_lock(&w->s.mu);
    int same = w->s.digest_lpi == w->pos.lpi && w->s.digest[0];
    pthread_mutex_unlock(&w->s.mu);
    if (same || (!force && now - w->last_digest_ms < wk_digest_gap_ms(w, 100)))
        return;
    char hex[65];
    bk_err e;
    bk_err_clear(&e);
    if (w->o->app->digest(w->app, hex, &e) != BK_OK) {
        BK_WARN("cannot compute the state digest: %s", e.msg);
        /* an application process that is gone or hung (proto.c) is a
         * crashed worker: the main loop stops and restarts (worker.c) */
        if (e.code == BK_E_IO || e.code == BK_E_TIMEOUT || e.code == BK_E_PROTO ||
            e.code == BK_E_REMOTE || e.code == BK_E_APP)
            w->app_failed = 1;
        return;
    }
    w->last_digest_ms = bk_mono_ms();
    w->digest_cost_ms = w->last_digest_ms - now;
    pthread_mutex_lock(&w->s.mu);
    memcpy(w->s.digest, hex, 65);
    w->s.digest_lpi = w->pos.lpi;
    pthread_mutex_unlock(&w->s.mu);
}

/* Mirror the durable LPI to LPI-<id>: at once when `now`, else at most
 * every MIRROR_MS while busy (each write costs Redis an AOF fsync); the
 * idle loop always catches up. */
void wk_mirror_lpi(worker *w, int now) {
    int64_t t = bk_mono_ms();
    if (w->mirrored == w->pos.lpi || (!now && t - w->mirror_ms < MIRROR_MS))
        return;
    bk_err le;
    bk_err_clear(&le);
    if (bk_lpi_mirror(w->rm, w->o->service, w->o->id, w->pos.lpi, &le) != BK_OK) {
        BK_WARN("%s", le.msg);
        return;
    }
    w->mirrored = w->pos.lpi;
    w->mirror_ms = t;
}

/* The results of a batched apply (proto.h: bk_app_apply_many). */
typedef struct batch_out {
    char **results;
    int *applied;
} batch_out;

static void batch_out_free(batch_out *b, size_t n) {
    for (size_t i = 0; b->results != NULL && i < n; i++)
        free(b->results[i]);
    free(b->results);
    b->results = NULL;
    b->applied = NULL; /* in the same block */
}

/* Apply recs[0..n-1] with one apply_many call: b gets the results. */
static int apply_all(worker *w, bk_rlog_rec **recs, size_t n, batch_out *b, int64_t *ns,
                     bk_err *e) {
    size_t each =
        sizeof(char *) + sizeof(int) + sizeof(int64_t) + sizeof(void *) + sizeof(size_t);
    char *block = calloc(n, each);
    if (block == NULL)
        return bk_err_set(e, BK_E_NOMEM, "out of memory");
    b->results = (char **)block; /* pointers first: aligned */
    int64_t *offs = (int64_t *)(block + n * sizeof(char *));
    const void **vals = (const void **)(block + n * (sizeof(char *) + sizeof(int64_t)));
    size_t *lens =
        (size_t *)(block + n * (sizeof(char *) + sizeof(int64_t) + sizeof(void *)));
    b->applied = (int *)(block + n * (each - sizeof(int)));
    for (size_t i = 0; i < n; i++) {
        offs[i] = recs[i]->offset;
        vals[i] = recs[i]->value;
        lens[i] = recs[i]->len;
    }
    int64_t t0 = bk_mono_ns();
    if (bk_app_apply_many(w->o->app)(w->app, offs, vals, lens, n, b->results, b->applied,
                                     e) != BK_OK) {
        free(block);
        b->results = NULL;
        w->app_failed = 1;
        return bk_err_prefix(e, "cannot apply records %" PRId64 "..%" PRId64,
                             recs[0]->offset, recs[n - 1]->offset);
    }
    *ns = bk_mono_ns() - t0;
    return BK_OK;
}

/* Apply recs[0..n-1] (contiguous offsets). BK_ERR: fatal. */
int wk_process_batch(worker *w, bk_rlog_rec **recs, size_t n, bk_err *e) {
    const br2k_app_ops *ops = w->o->app;
    int64_t t_start = bk_mono_ns(); /* for the debug line's stages */
    /* I6: the mark of exactly these records is durable before the first is
     * applied. Usually the previous batch's position write set it already
     * (look-ahead below); otherwise (idle before, or the batch was cut by
     * a role change) write it now. */
    if (w->pos.inflight_first != recs[0]->offset ||
        w->pos.inflight_last != recs[n - 1]->offset) {
        w->pos.inflight_first = recs[0]->offset;
        w->pos.inflight_last = recs[n - 1]->offset;
        if (bk_pos_store(&w->pos_fd, w->pos_path, &w->pos, e) != BK_OK)
            return BK_ERR;
    }
    int64_t applied = 0, rejected = 0, changed = 0, ns = 0;
    size_t k = 0;
    char digest[65] = "";
    batch_out b = {NULL, NULL};
    if (bk_app_apply_many(ops) != NULL && apply_all(w, recs, n, &b, &ns, e) != BK_OK)
        return BK_ERR;
    for (; k < n; k++) {
        bk_rlog_rec *r = recs[k];
        char *result = NULL;
        int did = 0;
        if (b.results != NULL) {
            result = b.results[k];
            b.results[k] = NULL;
            did = b.applied[k];
        } else {
            int64_t t0 = bk_mono_ns();
            if (ops->apply(w->app, r->offset, r->value, r->len, &result, &did, e) !=
                BK_OK) {
                w->app_failed = 1;
                return bk_err_prefix(e, "cannot apply record %" PRId64, r->offset);
            }
            ns += bk_mono_ns() - t0;
        }
        /* a claim of the token (claim.c, I9): the application saw an
         * empty record; every replica reads the claim here, in log order */
        if (wk_claim_seen(w, r, e) != BK_OK) {
            free(result);
            batch_out_free(&b, n);
            return BK_ERR;
        }
        char *rid = NULL;
        int rej = 0, lead = w->role == R_LEADER && r->offset > w->lead_from, named = 1;
        if (result != NULL && lead) {
            result_info(result, &rid, &rej);
            if (rid == NULL) { /* unparseable request: the producer's header names it */
                rid = header_request_id(r);
                named = 0;
            }
        } else if (result != NULL) /* results are compact JSON (result.schema.json) */
            rej = strstr(result, "\"status\":\"rejected\"") != NULL;
        applied++;
        rejected += rej;
        changed += did != 0;
        if (lead && result != NULL) {
            if (wk_held_push(w, r->offset, rid, result, named, e) != BK_OK) {
                free(rid);
                free(result);
                batch_out_free(&b, n);
                return BK_ERR;
            }
        } else {
            free(rid);
            free(result);
        }
        /* SIGTERM: finish the current record only (a batched call has
         * applied them all) */
        if (k == n - 1 || (b.results == NULL && bk_sig_stop)) {
            bk_record_digest(r->key, r->key_len, r->value, r->len, digest);
            k++;
            break;
        }
    }
    batch_out_free(&b, n);
    int64_t t_applied = bk_mono_ns();
    if (ops->sync(w->app, e) != BK_OK) {
        w->app_failed = 1;
        return bk_err_prefix(e, "cannot sync the application state");
    }
    int64_t t_synced = bk_mono_ns();
    int64_t lpi = recs[k - 1]->offset;
    wk_q_drop(w, k); /* recs[] points into w->q: not used below */
    /* Look ahead: the records that are already here and may be applied
     * next get their in-flight mark in the same durable write that clears
     * this batch's mark with the new LPI (one position write per batch). */
    int64_t next_first = -1, next_last = -1;
    bk_err re;
    bk_err_clear(&re);
    if (!bk_sig_stop && wk_q_fill(w, 0, &re) == BK_OK) {
        size_t m = wk_q_ready(w, w->role == R_LEADER ? INT64_MAX : wk_shared_ssi(w));
        if (m > 0) {
            next_first = w->q[0]->offset;
            next_last = w->q[m - 1]->offset;
        }
    }
    int64_t t_ahead = bk_mono_ns();
    /* The leader's results not committed yet are durable before LPI covers
     * their records (worker.h: worker.held), so that a crash between here
     * and the commit does not leave LPI > SSI without them. */
    if (w->role == R_LEADER && (w->nheld > 0 || (w->job.busy && w->job.n > 0)) &&
        wk_store_held(w, lpi, e) != BK_OK)
        return BK_ERR;
    int64_t t_held = bk_mono_ns();
    w->pos.lpi = lpi;
    memcpy(w->pos.digest, digest, 65);
    w->pos.inflight_first = next_first;
    w->pos.inflight_last = next_last;
    if (bk_pos_store(&w->pos_fd, w->pos_path, &w->pos, e) != BK_OK)
        return BK_ERR;
    int64_t t_pos = bk_mono_ns();
    if (w->crash_hook && w->role == R_LEADER) {
        /* tests only: die between the sync of the first leader batch and
         * its commit (tests/integration/core_stall.sh) */
        BK_WARN("BR2K_TEST_CRASH_BEFORE_COMMIT: exiting before the commit of ..%" PRId64,
                lpi);
        _exit(9);
    }
    pthread_mutex_lock(&w->s.mu);
    w->s.lpi = w->pos.lpi;
    w->s.applied += applied;
    w->s.rejected += rejected;
    w->s.changed_n += changed;
    w->s.apply_ns += ns;
    pthread_mutex_unlock(&w->s.mu);
    wk_publish_take_window(w);
    wk_mirror_lpi(w, next_first < 0);
    int64_t t_durable = bk_mono_ns();
    if (w->role == R_LEADER && w->pipelined)
        wk_commit_async(w, 0);
    else if (w->role == R_LEADER)
        wk_flush_held(w);
    /* the stages (bench/run.sh reads them): durable = the application's
     * sync (state) + the look-ahead read + the held results + the position
     * + the rest (LPI mirror, metrics); commit = the hand-over to the
     * commit thread (waiting for the previous job) or the inline commit */
    BK_DEBUG("batch ..%" PRId64 " (%zu records): apply %.2f ms, durable %.2f ms, "
             "commit %.2f ms (durable: state %.2f, read-ahead %.2f, results %.2f, "
             "position %.2f ms; batch %.2f ms)",
             w->pos.lpi, k, (double)ns / 1e6, (double)(t_durable - t_applied) / 1e6,
             (double)(bk_mono_ns() - t_durable) / 1e6,
             (double)(t_synced - t_applied) / 1e6, (double)(t_ahead - t_synced) / 1e6,
             (double)(t_held - t_ahead) / 1e6, (double)(t_pos - t_held) / 1e6,
             (double)(bk_mono_ns() - t_start) / 1e6);
    if (w->q_rc != BK_EXIT_OK) { /* the look-ahead read failed */
        *e = re;
        return BK_ERR;
    }
    return BK_OK;
}
