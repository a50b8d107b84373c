/* worker.c - the worker runtime (see worker.h).
 *
 * Three threads, each with its own Redis connection:
 *   main   reads the log, applies records in batches, and as leader runs
 *          the external effects and commits results + SSI (fenced);
 *   lease  takes the lease when free and caught up, renews it every
 *          lease/3 (a long apply never starves it), writes the heartbeat
 *          and the metrics hash every METRICS_MS;
 *   watch  SUBSCRIBEs to the changes channel and wakes main when SSI moves.
 *   commit (leader, when the application allows it: no per-record
 *          `external`) runs the external effects and the fenced commit of
 *          batch N while main applies batch N+1 (one job in flight).
 * They share `shared` under one mutex; main waits on its condition.
 *
 * A batch, in order (I3, I5, I6):
 *   1. mark first..last in flight (worker.pos, durable);
 *   2. apply each record (stop after the current one on SIGTERM);
 *   3. app->sync, then worker.pos = (last applied, its digest, no mark);
 *   4. leader: external effect of each record, then ONE fenced commit of
 *      the results and SSI = last applied. A FENCED reply: step down.
 *      With the commit thread, step 4 of batch N overlaps steps 1-3 of
 *      batch N+1; main waits for it before handing over batch N+1's, so
 *      commits stay in log order, SSI only covers durable records (the
 *      job's SSI is the LPI made durable before the hand-over), and the
 *      results of a job are in the same script as its SSI. A FENCED job
 *      clears the lease at once (main then steps down).
 * Results of records applied as leader but not committed are kept ("held")
 * until SSI covers them, so that this worker may lead again without
 * losing their effects: the take script requires SSI to lie between the
 * offset before the first held record and the LPI. */
#include "worker.h"

#include <errno.h>
#include <inttypes.h>
#include <jansson.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "backup/backuplog.h"
#include "base/clock.h"
#include "base/jscan.h"
#include "log/kafka_conf.h"
#include "redis/keys.h"
#include "base/log.h"
#include "redis/redis.h"
#include "log/rlog.h"
#include "base/sig.h"
#include "restore.h"
#include "snapshot.h"

#define METRICS_MS 500       /* heartbeat and metrics period */
#define ALIVE_TTL_MS 3000    /* TTL of alive-<id> */
#define SSI_REFRESH_MS 1000  /* GET SSI when no notification came for this long */
#define DIGEST_EVERY_MS 5000 /* state digest at least this often when busy */
#define START_READ_MS 5000   /* read the record at LPI again after this */
#define MIRROR_MS 50         /* LPI-<id> written at most this often while busy */

enum role { R_STARTING, R_FOLLOWER, R_LEADER, R_STOPPING, R_STOPPED, R_FAILED };
static const char *const role_names[] = {"starting", "follower", "leader",
                                         "stopping", "stopped",  "failed"};

typedef struct shared {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    int changed;         /* something main waits for happened */
    int resync;          /* the watch (re)subscribed: read SSI again */
    int quit;            /* threads stop */
    int64_t ssi;         /* highest SSI seen */
    int64_t lease_epoch; /* lease held by the lease thread, 0: none */
    int may_lead;        /* main allows taking the lease */
    int64_t take_min, take_max;
    /* metrics, written by main */
    int role;
    int64_t epoch, lpi, applied, rejected, changed_n, fenced, apply_ns, digest_lpi;
    char digest[65];
    /* joining (get-the-latest-state, then replay until SSI) */
    int joining;
    int64_t join_bytes, join_replayed, join_remaining, join_eta_s;
} shared;

typedef struct held {
    int64_t offset;
    char *request_id; /* NULL: the result names no request */
    char *json;
    int ext_done;
} held;

enum { C_OK, C_LOST, C_STOPPED }; /* outcome of a commit job */

typedef struct cjob {
    int busy, done, outcome; /* handed over / finished by the commit thread */
    int64_t epoch, upto, ssi_after;
    held *h; /* the job's results, owned by the job while busy */
    size_t n;
    char why[sizeof(((bk_err *)0)->msg)];
} cjob;

typedef struct worker {
    const bk_worker_opts *o;
    shared s;
    bk_redis *rm; /* main thread's connection */
    bk_rlog *log;
    br2k_app *app;
    char pos_path[4096], topic[256], chan[BK_KEY_MAX];
    bk_pos pos;
    int role;
    int64_t epoch, lead_from; /* leader: SSI when the lease was taken */
    held *held;
    size_t nheld, capheld;
    int64_t last_digest_ms, digest_cost_ms; /* when, and how long it took */
    int pos_fd;                  /* worker.pos, open for overwrites (-1: not yet) */
    char held_path[4096];        /* worker.held (worker.h) */
    int held_fd;                 /* ... open for overwrites (-1: not yet) */
    int crash_hook;              /* BR2K_TEST_CRASH_BEFORE_COMMIT=1 (tests only) */
    int stall_logged;            /* the "cannot lead" warning was logged */
    bk_rlog_rec **q;             /* records read and not applied yet, in order */
    size_t nq;                   /* ... how many (at most batch_max) */
    int q_rc;                    /* exit code of a failed read (BK_EXIT_OK: none) */
    int64_t log_down_ms;         /* since when the log cannot be reached (0: it can) */
    int64_t log_warn_ms;         /* when that was last logged */
    int64_t rnext;               /* offset of the next record read from the log */
    int64_t mirrored, mirror_ms; /* last LPI-<id> written, and when */
    pthread_t lease_thr, watch_thr, commit_thr;
    int threads, pipelined; /* pipelined: the commit thread runs */
    cjob job;               /* under s.mu; h and n written by main only */
    pthread_cond_t jcv;     /* job handed over / finished / quit */
    /* state-version-up (backup_poll) */
    bk_backup_phase bp;     /* the phase as last read */
    int64_t bp_lease_epoch; /* epoch of the lease when bp was read (0: none) */
    int64_t bp_read_ms, ssv_check_ms, ssv;
    pid_t snap_pid;               /* the snapshot child, 0: none */
    int64_t snap_epoch, snap_cut; /* the last snapshot forked */
    int64_t hold_since_ms;        /* leader: holding since (0: not holding) */
    /* get-the-latest-state */
    int gap;               /* check_log found records deleted after LPI */
    char recover_why[512]; /* why the state must be restored ("": it need not) */
    int64_t join_t0_ms, join_from, join_progress_ms, join_bytes;
    int joining, join_tty;
} worker;

static void wake(shared *s) {
    s->changed = 1;
    pthread_cond_broadcast(&s->cv);
}

/* ---- the lease thread: lease, heartbeat, metrics ---- */

static void write_metrics(worker *w, bk_redis *r, int64_t *prev_applied, int64_t *prev_ns,
                          int64_t *prev_ms) {
    const bk_worker_opts *o = w->o;
    int64_t ssv = 1;
    bk_err e;
    bk_err_clear(&e);
    if (bk_ssv_get(r, o->service, o->id, &ssv, &e) != BK_OK)
        BK_DEBUG("metrics: %s", e.msg);
    pthread_mutex_lock(&w->s.mu);
    shared m = w->s; /* a copy of the numbers (mutex and cond unused) */
    pthread_mutex_unlock(&w->s.mu);
    int64_t now = bk_mono_ms(), end = bk_rlog_cached_end(w->log);
    int64_t dt = now - *prev_ms > 0 ? now - *prev_ms : 1;
    int64_t dn = m.applied - *prev_applied;
    int64_t lag = end >= 0 ? end - 1 - m.lpi : -1;
    char v[22][72];
    const char *f[] = {"role",       "epoch",         "lpi",
                       "ssi",        "ssv",           "lag",
                       "applied",    "rejected",      "changed",
                       "fenced",     "apply_us",      "rps",
                       "digest",     "digest_lpi",    "updated_ms",
                       "pid",        "caught_up",     "joining",
                       "join_bytes", "join_replayed", "join_remaining",
                       "join_eta_s"};
    snprintf(v[0], sizeof(v[0]), "%s", role_names[m.role]);
    snprintf(v[1], sizeof(v[1]), "%" PRId64, m.epoch);
    snprintf(v[2], sizeof(v[2]), "%" PRId64, m.lpi);
    snprintf(v[3], sizeof(v[3]), "%" PRId64, m.ssi);
    snprintf(v[4], sizeof(v[4]), "%" PRId64, ssv);
    snprintf(v[5], sizeof(v[5]), "%" PRId64, lag < 0 ? 0 : lag);
    snprintf(v[6], sizeof(v[6]), "%" PRId64, m.applied);
    snprintf(v[7], sizeof(v[7]), "%" PRId64, m.rejected);
    snprintf(v[8], sizeof(v[8]), "%" PRId64, m.changed_n);
    snprintf(v[9], sizeof(v[9]), "%" PRId64, m.fenced);
    snprintf(v[10], sizeof(v[10]), "%.1f",
             dn > 0 ? (double)(m.apply_ns - *prev_ns) / (double)dn / 1000.0 : 0.0);
    snprintf(v[11], sizeof(v[11]), "%.1f", (double)dn * 1000.0 / (double)dt);
    snprintf(v[12], sizeof(v[12]), "%s", m.digest);
    snprintf(v[13], sizeof(v[13]), "%" PRId64, m.digest_lpi);
    snprintf(v[14], sizeof(v[14]), "%" PRId64, bk_wall_ms());
    snprintf(v[15], sizeof(v[15]), "%ld", (long)getpid());
    snprintf(v[16], sizeof(v[16]), "%d", !m.joining && m.lpi >= m.ssi);
    snprintf(v[17], sizeof(v[17]), "%d", m.joining);
    snprintf(v[18], sizeof(v[18]), "%" PRId64, m.join_bytes);
    snprintf(v[19], sizeof(v[19]), "%" PRId64, m.join_replayed);
    snprintf(v[20], sizeof(v[20]), "%" PRId64, m.join_remaining);
    snprintf(v[21], sizeof(v[21]), "%" PRId64, m.join_eta_s);
    const char *vals[22];
    for (int i = 0; i < 22; i++)
        vals[i] = v[i];
    if (bk_metrics_write(r, o->service, o->id, f, vals, 22, &e) != BK_OK) {
        BK_WARN("%s", e.msg);
        return;
    }
    *prev_applied = m.applied;
    *prev_ns = m.apply_ns;
    *prev_ms = now;
}

static void lease_lost(worker *w, int64_t epoch, const char *why) {
    pthread_mutex_lock(&w->s.mu);
    if (w->s.lease_epoch == epoch) {
        w->s.lease_epoch = 0;
        wake(&w->s);
    }
    pthread_mutex_unlock(&w->s.mu);
    BK_WARN("lease of epoch %" PRId64 " lost: %s", epoch, why);
}

static void *lease_main(void *arg) {
    worker *w = arg;
    const bk_worker_opts *o = w->o;
    int tick = o->lease_ms / 3 > 10 ? o->lease_ms / 3 : 10;
    bk_err e;
    bk_err_clear(&e);
    bk_redis *r = NULL;
    int64_t last_ok = 0, next_metrics = 0, prev_applied = 0, prev_ns = 0,
            prev_ms = bk_mono_ms();
    for (;;) {
        pthread_mutex_lock(&w->s.mu);
        int quit = w->s.quit, may = w->s.may_lead;
        int64_t held = w->s.lease_epoch, lo = w->s.take_min, hi = w->s.take_max;
        pthread_mutex_unlock(&w->s.mu);
        if (quit)
            break;
        if (r == NULL) {
            r = bk_redis_new(o->redis, tick > 100 ? tick : 100, &e);
            if (r == NULL)
                BK_WARN("lease thread: %s", e.msg);
        }
        int64_t now = bk_mono_ms();
        if (r != NULL && held > 0) {
            if (bk_lease_renew(r, o->service, o->id, held, o->lease_ms, &e) == BK_OK)
                last_ok = now;
            else if (e.code == BK_E_FENCED)
                lease_lost(w, held, e.msg);
            else if (now - last_ok >= o->lease_ms)
                lease_lost(w, held, e.msg);
            else
                BK_WARN("lease renewal failed (retrying): %s", e.msg);
        } else if (held > 0 && now - last_ok >= o->lease_ms) {
            lease_lost(w, held, "no Redis connection");
        } else if (r != NULL && may) {
            int64_t ep = 0;
            if (bk_lease_take(r, o->service, o->id, lo, hi, o->lease_ms, &ep, &e) !=
                BK_OK)
                BK_WARN("%s", e.msg);
            else if (ep > 0) {
                last_ok = now;
                pthread_mutex_lock(&w->s.mu);
                w->s.lease_epoch = ep;
                wake(&w->s);
                pthread_mutex_unlock(&w->s.mu);
                BK_INFO("took the lease with epoch %" PRId64, ep);
            }
        }
        if (r != NULL && now >= next_metrics) {
            if (bk_heartbeat(r, o->service, o->id, ALIVE_TTL_MS, &e) != BK_OK)
                BK_WARN("%s", e.msg);
            write_metrics(w, r, &prev_applied, &prev_ns, &prev_ms);
            next_metrics = now + METRICS_MS;
        }
        int64_t left = tick - (bk_mono_ms() - now);
        if (left > 0)
            bk_sleep_full_ms((int)left);
    }
    bk_redis_free(r);
    return NULL;
}

/* ---- the watch thread: SSI notifications ---- */

static int64_t parse_i64(const char *s, size_t len, int *ok) {
    int64_t v = 0;
    *ok = len > 0 && len < 19;
    for (size_t i = 0; *ok && i < len; i++) {
        if (s[i] < '0' || s[i] > '9')
            *ok = 0;
        else
            v = v * 10 + (s[i] - '0');
    }
    return v;
}

static void on_message(worker *w, redisReply *rep) {
    if (rep->type != REDIS_REPLY_ARRAY)
        return;
    if (rep->elements != 3 || rep->element[0]->type != REDIS_REPLY_STRING ||
        strcmp(rep->element[0]->str, "message") != 0 ||
        rep->element[2]->type != REDIS_REPLY_STRING)
        return;
    int ok = 0;
    int64_t ssi = parse_i64(rep->element[2]->str, rep->element[2]->len, &ok);
    pthread_mutex_lock(&w->s.mu);
    if (ok && ssi > w->s.ssi)
        w->s.ssi = ssi;
    if (!ok)
        w->s.resync = 1; /* another change (backup phase): look again */
    wake(&w->s);
    pthread_mutex_unlock(&w->s.mu);
}

static void *watch_main(void *arg) {
    worker *w = arg;
    char host[256];
    int port = 0;
    redisContext *c = NULL;
    bk_redis_parse_addr(w->o->redis, host, sizeof(host), &port, NULL);
    for (;;) {
        pthread_mutex_lock(&w->s.mu);
        int quit = w->s.quit;
        pthread_mutex_unlock(&w->s.mu);
        if (quit)
            break;
        if (c == NULL) {
            struct timeval tv = {1, 0};
            c = redisConnectWithTimeout(host, port, tv);
            redisReply *rep = NULL;
            if (c != NULL && c->err == 0) {
                redisSetTimeout(c, tv);
                rep = redisCommand(c, "SUBSCRIBE %s", w->chan);
            }
            if (rep == NULL || rep->type != REDIS_REPLY_ARRAY) {
                if (rep)
                    freeReplyObject(rep);
                BK_WARN("cannot subscribe to '%s' (retrying): %s", w->chan,
                        c && c->err ? c->errstr : "no reply");
                if (c)
                    redisFree(c);
                c = NULL;
                bk_sleep_full_ms(500);
                continue;
            }
            freeReplyObject(rep);
            pthread_mutex_lock(&w->s.mu);
            w->s.resync = 1; /* changes before the subscription were missed */
            wake(&w->s);
            pthread_mutex_unlock(&w->s.mu);
        }
        struct pollfd p = {c->fd, POLLIN, 0};
        int n = poll(&p, 1, 200);
        if (n <= 0)
            continue;
        if (redisBufferRead(c) != REDIS_OK) {
            BK_WARN("subscription to '%s' lost: %s", w->chan, c->errstr);
            redisFree(c);
            c = NULL;
            continue;
        }
        for (;;) {
            void *rep = NULL;
            if (redisGetReplyFromReader(c, &rep) != REDIS_OK) {
                redisFree(c);
                c = NULL;
                break;
            }
            if (rep == NULL)
                break;
            on_message(w, rep);
            freeReplyObject(rep);
        }
    }
    if (c)
        redisFree(c);
    return NULL;
}

/* ---- main thread helpers ---- */

static void set_role(worker *w, int role, const char *why) {
    if (w->role != role)
        BK_INFO("role: %s -> %s (epoch %" PRId64 ", lpi %" PRId64 ")%s%s",
                role_names[w->role], role_names[role], w->epoch, w->pos.lpi,
                why ? ": " : "", why ? why : "");
    w->role = role;
    pthread_mutex_lock(&w->s.mu);
    w->s.role = role;
    w->s.epoch = w->epoch;
    pthread_mutex_unlock(&w->s.mu);
}

static void publish_take_window(worker *w) {
    pthread_mutex_lock(&w->s.mu);
    w->s.take_max = w->pos.lpi;
    w->s.take_min = w->nheld ? w->held[0].offset - 1 : w->pos.lpi;
    pthread_mutex_unlock(&w->s.mu);
}

static void held_drop_upto(worker *w, int64_t ssi) {
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
    publish_take_window(w);
}

static int held_push(worker *w, int64_t offset, char *request_id, char *json, bk_err *e) {
    if (w->nheld == w->capheld) {
        size_t cap = w->capheld ? 2 * w->capheld : 256;
        held *h = realloc(w->held, cap * sizeof(*h));
        if (h == NULL)
            return bk_err_set(e, BK_E_NOMEM, "out of memory");
        w->held = h;
        w->capheld = cap;
    }
    w->held[w->nheld++] = (held){offset, request_id, json, 0};
    return BK_OK;
}

static void step_down(worker *w, const char *why) {
    BK_WARN("fenced: stepping down from epoch %" PRId64 ": %s", w->epoch, why);
    pthread_mutex_lock(&w->s.mu);
    if (w->s.lease_epoch == w->epoch)
        w->s.lease_epoch = 0;
    w->s.fenced++;
    pthread_mutex_unlock(&w->s.mu);
    set_role(w, R_FOLLOWER, "fenced");
}

static int64_t shared_ssi(worker *w) {
    pthread_mutex_lock(&w->s.mu);
    int64_t v = w->s.ssi;
    pthread_mutex_unlock(&w->s.mu);
    return v;
}

static void raise_ssi(worker *w, int64_t ssi) {
    pthread_mutex_lock(&w->s.mu);
    if (ssi > w->s.ssi)
        w->s.ssi = ssi;
    pthread_mutex_unlock(&w->s.mu);
}

static int refresh_ssi(worker *w) {
    int64_t ssi;
    bk_err e;
    bk_err_clear(&e);
    if (bk_ssi_get(w->rm, w->o->service, &ssi, &e) != BK_OK) {
        BK_WARN("%s", e.msg);
        return BK_ERR;
    }
    raise_ssi(w, ssi);
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

/* The external effects and the fenced commit of hv[0..nh-1] and SSI =
 * upto, with token `epoch` on connection r: BK_OK with *ssi_after, or
 * BK_ERR (e->code BK_E_FENCED when refused). */
static int commit_once(worker *w, bk_redis *r, int64_t epoch, held *hv, size_t nh,
                       int64_t upto, int64_t *ssi_after, bk_err *e) {
    const bk_worker_opts *o = w->o;
    int rc = BK_OK;
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
    if (rc != BK_OK)
        return rc;
    size_t n = 0;
    bk_result_item *items = calloc(nh ? nh : 1, sizeof(*items));
    if (items == NULL)
        return bk_err_set(e, BK_E_NOMEM, "out of memory");
    for (size_t i = 0; i < nh; i++)
        if (hv[i].request_id != NULL)
            items[n++] = (bk_result_item){hv[i].request_id, hv[i].json};
    rc = bk_fenced_commit(r, o->service, epoch, items, n, o->result_ttl_s, upto,
                          ssi_after, e);
    free(items);
    return rc;
}

/* Run the external effects of the held records, then commit their results
 * and SSI = LPI with one fenced script. Retries transient Redis failures
 * while the lease is ours; FENCED (or a lost lease) steps down. */
static int flush_held(worker *w) {
    bk_err e;
    for (;;) {
        bk_err_clear(&e);
        if (!still_leader(w)) {
            step_down(w, "the lease was lost");
            return BK_OK;
        }
        int64_t now = -1;
        if (commit_once(w, w->rm, w->epoch, w->held, w->nheld, w->pos.lpi, &now, &e) ==
            BK_OK) {
            raise_ssi(w, now);
            held_drop_upto(w, w->pos.lpi);
            return BK_OK;
        }
        if (e.code == BK_E_FENCED) {
            step_down(w, e.msg);
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
        if (bk_sig_stop) {
            snprintf(j->why, sizeof(j->why), "%s", e.msg);
            return C_STOPPED;
        }
        BK_WARN("leader commit failed (retrying): %s", e.msg);
        bk_sleep_full_ms(200);
    }
}

static void *commit_main(void *arg) {
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
static void collect(worker *w, int block) {
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
        raise_ssi(w, j.ssi_after);
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
    publish_take_window(w);
    if (j.outcome == C_STOPPED)
        BK_WARN("stopping with %zu records not committed: %s", w->nheld, j.why);
    else if (w->role == R_LEADER)
        step_down(w, j.why);
}

/* Hand the held results and SSI = LPI (durable) over to the commit thread,
 * after the previous job is done. */
static void commit_async(worker *w) {
    collect(w, 1);
    if (w->role != R_LEADER)
        return;
    if (!still_leader(w)) {
        step_down(w, "the lease was lost");
        return;
    }
    pthread_mutex_lock(&w->s.mu);
    w->job = (cjob){1, 0, C_OK, w->epoch, w->pos.lpi, -1, w->held, w->nheld, ""};
    w->held = NULL;
    w->nheld = w->capheld = 0;
    pthread_cond_broadcast(&w->jcv);
    pthread_mutex_unlock(&w->s.mu);
}

/* Follower -> leader when the lease thread took the lease; leader ->
 * follower when it lost it. */
static void check_role(worker *w) {
    pthread_mutex_lock(&w->s.mu);
    int64_t le = w->s.lease_epoch;
    pthread_mutex_unlock(&w->s.mu);
    if (w->role == R_LEADER && le != w->epoch) {
        collect(w, 1); /* may step down with the job's reason */
        if (w->role == R_LEADER)
            step_down(w, "the lease was lost");
        return;
    }
    if (w->role != R_FOLLOWER || le == 0)
        return;
    int64_t ssi;
    bk_err e;
    bk_err_clear(&e);
    if (bk_ssi_get(w->rm, w->o->service, &ssi, &e) != BK_OK) {
        BK_WARN("cannot start leading: %s", e.msg);
        return;
    }
    raise_ssi(w, ssi);
    held_drop_upto(w, ssi);
    if (ssi > w->pos.lpi || (w->nheld && w->held[0].offset != ssi + 1) ||
        (!w->nheld && ssi != w->pos.lpi)) {
        /* the take script checked this; a mismatch is a bug: do not lead */
        BK_ERROR("cannot lead with epoch %" PRId64 ": SSI %" PRId64 ", LPI %" PRId64
                 ", %zu held results",
                 le, ssi, w->pos.lpi, w->nheld);
        bk_lease_release(w->rm, w->o->service, w->o->id, le, NULL);
        pthread_mutex_lock(&w->s.mu);
        w->s.lease_epoch = 0;
        w->s.may_lead = 0; /* no take and release loop */
        pthread_mutex_unlock(&w->s.mu);
        return;
    }
    w->epoch = le;
    w->lead_from = ssi;
    char why[96];
    snprintf(why, sizeof(why), "lease taken, SSI %" PRId64, ssi);
    set_role(w, R_LEADER, why);
    if (w->nheld)
        flush_held(w);
}

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
 * not "<client>:<seq>". Every replica sees the same header. */
static char *header_request_id(const bk_rlog_rec *r) {
    const void *v = NULL;
    size_t len = 0;
    if (bk_rlog_rec_header(r, BK_RLOG_H_REQUEST_ID, &v, &len, NULL) != BK_OK ||
        len == 0 || len > 200 || memchr(v, ':', len) == NULL ||
        memchr(v, '\0', len) != NULL)
        return NULL;
    return strndup(v, len);
}

/* The digest hashes the whole state (InfoDID sorts every key): a large
 * state makes it expensive, so the next unforced one waits at least 20
 * times as long as the last one took (at most ~5% of the time). */
static int64_t digest_gap_ms(const worker *w, int64_t floor_ms) {
    int64_t g = 20 * w->digest_cost_ms;
    return g > floor_ms ? g : floor_ms;
}

static void update_digest(worker *w, int force) {
    int64_t now = bk_mono_ms();
    pthread_mutex_lock(&w->s.mu);
    int same = w->s.digest_lpi == w->pos.lpi && w->s.digest[0];
    pthread_mutex_unlock(&w->s.mu);
    if (same || (!force && now - w->last_digest_ms < digest_gap_ms(w, 100)))
        return;
    char hex[65];
    bk_err e;
    bk_err_clear(&e);
    if (w->o->app->digest(w->app, hex, &e) != BK_OK) {
        BK_WARN("cannot compute the state digest: %s", e.msg);
        return;
    }
    w->last_digest_ms = bk_mono_ms();
    w->digest_cost_ms = w->last_digest_ms - now;
    pthread_mutex_lock(&w->s.mu);
    memcpy(w->s.digest, hex, 65);
    w->s.digest_lpi = w->pos.lpi;
    pthread_mutex_unlock(&w->s.mu);
}

/* ---- the read-ahead queue w->q ---- */

static int integrity(bk_err *e, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

/* Read what the log has into w->q (up to batch_max records), waiting up to
 * first_ms for the first one when the queue is empty. A gap or an error
 * sets w->q_rc (never skipped, I1) and returns BK_ERR. */
static int q_fill(worker *w, int first_ms, bk_err *e) {
    size_t cap = (size_t)w->o->batch_max;
    while (w->nq < cap) {
        bk_rlog_rec *r = NULL;
        int wait_ms = w->nq == 0 ? first_ms : 0;
        int got = bk_rlog_poll(w->log, wait_ms, &r, e);
        first_ms = 0;
        if (got < 0 && (e->code == BK_E_IO || e->code == BK_E_TIMEOUT)) {
            /* the log's server cannot be reached (a Redis restarting): wait
             * and read the same offset again, as librdkafka does by itself
             * for a broker; the lease lapses meanwhile if it must */
            int64_t now = bk_mono_ms();
            if (w->log_down_ms == 0)
                w->log_down_ms = now;
            if (now - w->log_warn_ms >= 5000) {
                BK_WARN("cannot read the log for %" PRId64 " ms, retrying: %s",
                        now - w->log_down_ms, e->msg);
                w->log_warn_ms = now;
            }
            if (wait_ms > 0)
                usleep((useconds_t)(wait_ms < 100 ? wait_ms : 100) * 1000);
            bk_err_clear(e);
            return BK_OK;
        }
        if (got >= 0 && w->log_down_ms != 0) {
            BK_INFO("the log can be read again after %" PRId64 " ms",
                    bk_mono_ms() - w->log_down_ms);
            w->log_down_ms = w->log_warn_ms = 0;
        }
        if (got < 0) {
            w->q_rc = e->code == BK_E_RLOG_RANGE ? BK_EXIT_INTEGRITY : BK_EXIT_ERROR;
            if (w->q_rc == BK_EXIT_INTEGRITY)
                bk_err_prefix(e, "never skipping ahead (I1); the state must be restored "
                                 "from a backup");
            return BK_ERR;
        }
        if (got == 0)
            return BK_OK;
        int64_t want = w->rnext;
        if (r->offset != want) {
            w->q_rc = integrity(e,
                                "log '%s' gave record %" PRId64 " where %" PRId64
                                " was expected: a gap is never skipped (I1)",
                                w->topic, r->offset, want);
            bk_rlog_rec_free(r);
            return BK_ERR;
        }
        w->q[w->nq++] = r;
        w->rnext++;
    }
    return BK_OK;
}

/* How many records at the head of w->q may be applied now (offset <= limit). */
static size_t q_ready(worker *w, int64_t limit) {
    size_t n = 0;
    while (n < w->nq && w->q[n]->offset <= limit)
        n++;
    return n;
}

/* Free the first k records of w->q. */
static void q_drop(worker *w, size_t k) {
    for (size_t i = 0; i < k; i++)
        bk_rlog_rec_free(w->q[i]);
    memmove(w->q, w->q + k, (w->nq - k) * sizeof(*w->q));
    w->nq -= k;
}

/* Mirror the durable LPI to LPI-<id>: at once when `now`, else at most
 * every MIRROR_MS while busy (each write costs Redis an AOF fsync); the
 * idle loop always catches up. */
static void mirror_lpi(worker *w, int now) {
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

/* Write the held results (all of them, up to LPI `upto`) to worker.held. */
static int store_held(worker *w, int64_t upto, bk_err *e) {
    bk_held_rec stack[256] = {{0, NULL, NULL}}, *r = stack;
    size_t jn = w->job.busy ? w->job.n : 0, n = jn + w->nheld; /* h, n: main's */
    if (n > 256 && (r = malloc(n * sizeof(*r))) == NULL)
        return bk_err_set(e, BK_E_NOMEM, "out of memory");
    for (size_t i = 0; i < jn; i++) /* the job in flight, not committed yet */
        r[i] =
            (bk_held_rec){w->job.h[i].offset, w->job.h[i].request_id, w->job.h[i].json};
    for (size_t i = 0; i < w->nheld; i++)
        r[jn + i] =
            (bk_held_rec){w->held[i].offset, w->held[i].request_id, w->held[i].json};
    int rc = bk_held_store(&w->held_fd, w->held_path, upto, r, n, e);
    if (r != stack)
        free(r);
    return rc;
}

/* Reload the results a leader held when it stopped (crash or SIGTERM
 * before its commit): only when worker.held was written at this LPI. */
static void load_held(worker *w) {
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
            held_push(w, r[i].offset, (char *)r[i].request_id, (char *)r[i].json, &e) ==
                BK_OK) {
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
}

/* A worker whose LPI is beyond SSI without the results of the records in
 * between (it led, and lost them) cannot take the lease (the take script
 * requires SSI in its window) until another leader raises SSI past its
 * LPI: say so once, or the service may stall silently. */
static void check_stall(worker *w, int64_t ssi) {
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

/* Apply recs[0..n-1] (contiguous offsets). BK_ERR: fatal. */
static int process_batch(worker *w, bk_rlog_rec **recs, size_t n, bk_err *e) {
    const br2k_app_ops *ops = w->o->app;
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
    for (; k < n; k++) {
        bk_rlog_rec *r = recs[k];
        char *result = NULL;
        int did = 0;
        int64_t t0 = bk_mono_ns();
        if (ops->apply(w->app, r->offset, r->value, r->len, &result, &did, e) != BK_OK)
            return bk_err_prefix(e, "cannot apply record %" PRId64, r->offset);
        ns += bk_mono_ns() - t0;
        char *rid = NULL;
        int rej = 0, lead = w->role == R_LEADER && r->offset > w->lead_from;
        if (result != NULL && lead) {
            result_info(result, &rid, &rej);
            if (rid == NULL) /* unparseable request: the producer's header names it */
                rid = header_request_id(r);
        } else if (result != NULL) /* results are compact JSON (result.schema.json) */
            rej = strstr(result, "\"status\":\"rejected\"") != NULL;
        applied++;
        rejected += rej;
        changed += did != 0;
        if (lead && result != NULL) {
            if (held_push(w, r->offset, rid, result, e) != BK_OK) {
                free(rid);
                free(result);
                return BK_ERR;
            }
        } else {
            free(rid);
            free(result);
        }
        if (k == n - 1 || bk_sig_stop) {
            bk_record_digest(r->key, r->key_len, r->value, r->len, digest);
            k++;
            break; /* SIGTERM: finish the current record only */
        }
    }
    int64_t t_applied = bk_mono_ns();
    if (ops->sync(w->app, e) != BK_OK)
        return bk_err_prefix(e, "cannot sync the application state");
    int64_t lpi = recs[k - 1]->offset;
    q_drop(w, k); /* recs[] points into w->q: not used below */
    /* Look ahead: the records that are already here and may be applied
     * next get their in-flight mark in the same durable write that clears
     * this batch's mark with the new LPI (one position write per batch). */
    int64_t next_first = -1, next_last = -1;
    bk_err re;
    bk_err_clear(&re);
    if (!bk_sig_stop && q_fill(w, 0, &re) == BK_OK) {
        size_t m = q_ready(w, w->role == R_LEADER ? INT64_MAX : shared_ssi(w));
        if (m > 0) {
            next_first = w->q[0]->offset;
            next_last = w->q[m - 1]->offset;
        }
    }
    /* The leader's results not committed yet are durable before LPI covers
     * their records (worker.h: worker.held), so that a crash between here
     * and the commit does not leave LPI > SSI without them. */
    if (w->role == R_LEADER && (w->nheld > 0 || (w->job.busy && w->job.n > 0)) &&
        store_held(w, lpi, e) != BK_OK)
        return BK_ERR;
    w->pos.lpi = lpi;
    memcpy(w->pos.digest, digest, 65);
    w->pos.inflight_first = next_first;
    w->pos.inflight_last = next_last;
    if (bk_pos_store(&w->pos_fd, w->pos_path, &w->pos, e) != BK_OK)
        return BK_ERR;
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
    publish_take_window(w);
    mirror_lpi(w, next_first < 0);
    int64_t t_durable = bk_mono_ns();
    if (w->role == R_LEADER && w->pipelined)
        commit_async(w);
    else if (w->role == R_LEADER)
        flush_held(w);
    BK_DEBUG("batch ..%" PRId64 " (%zu records): apply %.2f ms, durable %.2f ms, "
             "commit %.2f ms",
             w->pos.lpi, k, (double)ns / 1e6, (double)(t_durable - t_applied) / 1e6,
             (double)(bk_mono_ns() - t_durable) / 1e6);
    if (w->q_rc != BK_EXIT_OK) { /* the look-ahead read failed */
        *e = re;
        return BK_ERR;
    }
    return BK_OK;
}

/* Wait until something changes (SSI, lease, subscription), up to ms. */
static void wait_change(worker *w, int ms) {
    pthread_mutex_lock(&w->s.mu);
    if (!w->s.changed) {
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        ts.tv_nsec += (long)ms * 1000000;
        ts.tv_sec += ts.tv_nsec / 1000000000;
        ts.tv_nsec %= 1000000000;
        pthread_cond_timedwait(&w->s.cv, &w->s.mu, &ts);
    }
    w->s.changed = 0;
    pthread_mutex_unlock(&w->s.mu);
}

/* ---- state-version-up: the worker's part (keys.h, backupd) ---- */

#define BP_POLL_MS 200       /* phase read this often while one is set */
#define BP_IDLE_POLL_MS 1000 /* ... and when none is */
#define SSV_CHECK_MS 2000    /* backup-last read this often */

static int phase_is(const worker *w, const char *p) {
    return w->bp.set && strcmp(w->bp.phase, p) == 0;
}

/* Followers pause following in the phases after `held` while the lease
 * is held under the backup's epoch (a dead leader's backup never stops
 * the followers that must take over). */
static int follower_paused(const worker *w) {
    return w->role == R_FOLLOWER && w->bp.set && w->bp.epoch > 0 &&
           w->bp.epoch == w->bp_lease_epoch && !phase_is(w, "hold") &&
           !phase_is(w, "held");
}

/* The leader holds (applies nothing new) in `hold` and `held` of its own
 * epoch, and until it has forked the snapshot in `snapshot`. */
static int leader_holds(const worker *w) {
    if (w->role != R_LEADER || !w->bp.set || w->bp.epoch != w->epoch)
        return 0;
    if (phase_is(w, "hold") || phase_is(w, "held"))
        return 1;
    return phase_is(w, "snapshot") && w->bp.cut == w->pos.lpi &&
           !(w->snap_epoch == w->epoch && w->snap_cut == w->bp.cut);
}

/* Raise this worker's SSV to the last backup's version once its state
 * covers that backup's cut (DESIGN.md step 8: followers raise their own). */
static void ssv_check(worker *w) {
    int64_t v = 1, cut = -1;
    bk_err e;
    bk_err_clear(&e);
    w->ssv_check_ms = bk_mono_ms();
    if (bk_backup_last_get(w->rm, w->o->service, &v, &cut, &e) != BK_OK) {
        BK_WARN("%s", e.msg);
        return;
    }
    if (v <= w->ssv || w->pos.lpi < cut)
        return;
    int64_t now = 0;
    if (bk_ssv_raise(w->rm, w->o->service, w->o->id, v, &now, &e) != BK_OK) {
        BK_WARN("%s", e.msg);
        return;
    }
    if (now > w->ssv)
        BK_INFO("state version %" PRId64 " (backup cut %" PRId64 ", LPI %" PRId64 ")",
                now, cut, w->pos.lpi);
    w->ssv = now;
}

/* Read the phase (and the lease epoch while one is set), reap a finished
 * snapshot child, raise SSV after a backup. */
static void backup_poll(worker *w, int force) {
    int64_t t = bk_mono_ms();
    if (w->snap_pid > 0) {
        int st = 0;
        pid_t p = waitpid(w->snap_pid, &st, WNOHANG);
        if (p == w->snap_pid) {
            if (!WIFEXITED(st) || WEXITSTATUS(st) != 0)
                BK_WARN("the snapshot process of cut %" PRId64 " failed (status %d)",
                        w->snap_cut, st);
            w->snap_pid = 0;
        }
    }
    int every = w->bp.set ? BP_POLL_MS : BP_IDLE_POLL_MS;
    if (!force && t - w->bp_read_ms < every)
        return;
    bk_err e;
    bk_err_clear(&e);
    w->bp_read_ms = t;
    int was_set = w->bp.set;
    if (bk_backup_phase_get(w->rm, w->o->service, &w->bp, NULL, 0, &e) != BK_OK) {
        BK_WARN("%s", e.msg);
        w->bp.set = 0;
        return;
    }
    w->bp_lease_epoch = 0;
    if (w->bp.set && w->role == R_FOLLOWER) {
        char id[BK_ID_MAX + 1];
        if (bk_lease_get(w->rm, w->o->service, id, &w->bp_lease_epoch, &e) != BK_OK) {
            BK_WARN("%s", e.msg);
            w->bp_lease_epoch = 0;
        }
    }
    if (!w->bp.set && (was_set || force || t - w->ssv_check_ms >= SSV_CHECK_MS))
        ssv_check(w);
}

/* Leader, phase `hold`: commit everything applied, then announce the cut
 * C = SSI = LPI by moving the phase to `held` (keeping its TTL). */
static void leader_hold(worker *w) {
    if (w->hold_since_ms == 0) {
        w->hold_since_ms = bk_mono_ms();
        w->snap_epoch = 0; /* a new backup: its snapshot is still to be taken */
        w->snap_cut = -2;
        BK_INFO("backup: holding at LPI %" PRId64 " (epoch %" PRId64 ")", w->pos.lpi,
                w->epoch);
    }
    if (!phase_is(w, "hold"))
        return;
    collect(w, 1);
    if (w->role == R_LEADER && w->nheld > 0) {
        if (w->pipelined) {
            commit_async(w);
            collect(w, 1);
        } else {
            flush_held(w);
        }
    }
    if (w->role != R_LEADER || w->nheld > 0 || shared_ssi(w) != w->pos.lpi)
        return;
    char expect[96], to[96];
    bk_backup_phase_format(expect, sizeof(expect), "hold", w->epoch, -1);
    bk_backup_phase_format(to, sizeof(to), "held", w->epoch, w->pos.lpi);
    int done = 0;
    bk_err e;
    bk_err_clear(&e);
    if (bk_fenced_backup_step(w->rm, w->o->service, w->epoch, expect, to, -1, NULL, NULL,
                              &done, &e) != BK_OK) {
        BK_WARN("backup: cannot announce the cut: %s", e.msg);
        return;
    }
    if (done) {
        w->bp.cut = w->pos.lpi;
        snprintf(w->bp.phase, sizeof(w->bp.phase), "held");
    }
    backup_poll(w, 1);
}

/* Leader, phase `snapshot` at C = LPI: fork the snapshot process (it has
 * the state at C, copy-on-write) and resume at once. */
static void leader_snapshot(worker *w) {
    w->snap_epoch = w->epoch;
    w->snap_cut = w->bp.cut;
    char type[64];
    snprintf(type, sizeof(type), "%s-snapshot", w->o->app->name);
    bk_wsnap_args a = {w->o->app, w->app,   w->o->redis, w->o->service, w->o->id,
                       type,      w->epoch, w->bp.cut,   w->pos.digest};
    if (w->snap_pid > 0) { /* a previous child still running: let it finish */
        int st = 0;
        waitpid(w->snap_pid, &st, 0);
        w->snap_pid = 0;
    }
    fflush(NULL);
    pid_t parent = getpid();
    pid_t pid = fork();
    if (pid == 0) {
        /* it shares the state directory's lock: when the worker dies (a
         * SIGKILL), the snapshot dies too, so that the worker restarted at
         * once finds its directory free (its report would be fenced anyway) */
        if (prctl(PR_SET_PDEATHSIG, SIGKILL) != 0 || getppid() != parent)
            _exit(1);
        _exit(bk_wsnap_child(&a));
    }
    int64_t held_ms = w->hold_since_ms ? bk_mono_ms() - w->hold_since_ms : 0;
    w->hold_since_ms = 0;
    if (pid < 0) {
        BK_ERROR("backup: cannot fork the snapshot process: %s", strerror(errno));
        return;
    }
    w->snap_pid = pid;
    BK_INFO("backup: snapshot of cut %" PRId64 " in process %d; resuming after holding "
            "%" PRId64 " ms",
            w->bp.cut, (int)pid, held_ms);
}

/* ---- get-the-latest-state (restore.h) ---- */

static int recovery_on(const worker *w) {
    return w->o->eth_rpc != NULL && w->o->eth_rpc[0] != '\0' && w->o->registry != NULL &&
           w->o->registry[0] != '\0';
}

/* Restore the latest usable backup into the open application and put the
 * position at its cut (the caller seeks the log). `fresh`: a new node, for
 * which "no backup yet" means replaying the log from offset 0. */
static int recover(worker *w, int fresh, bk_err *e) {
    const bk_worker_opts *o = w->o;
    bk_eth_key key;
    if (bk_service_key_load(o->service_key_file, &key, e) != BK_OK) {
        bk_err_prefix(e, "get-the-latest-state needs the service key");
        return BK_EXIT_CONFIG;
    }
    int64_t t0 = bk_mono_ms();
    bk_recover_args a = {o->app, w->app, o->eth_rpc, o->registry, &key, w->log};
    bk_recovered out;
    int rc = bk_recover_latest(&a, &out, e);
    memset(&key, 0, sizeof(key));
    if (rc != BK_OK && fresh && e->code == BK_E_NOTFOUND) {
        BK_INFO("get-the-latest-state: no backup yet; replaying the log from its start");
        bk_err_clear(e);
        return BK_EXIT_OK;
    }
    if (rc != BK_OK) {
        bk_err_prefix(e, "get-the-latest-state failed (%s)", w->recover_why);
        return BK_EXIT_INTEGRITY;
    }
    w->pos = (bk_pos){out.cut, "", -1, -1};
    snprintf(w->pos.digest, sizeof(w->pos.digest), "%s", out.record_digest);
    if (w->pos_fd >= 0)
        close(w->pos_fd);
    w->pos_fd = -1;
    if (bk_pos_write(w->pos_path, &w->pos, e) != BK_OK)
        return BK_EXIT_ERROR;
    held_drop_upto(w, INT64_MAX); /* results of records before the cut: not ours */
    if (w->held_fd >= 0)
        close(w->held_fd);
    w->held_fd = -1;
    if (unlink(w->held_path) != 0 && errno != ENOENT)
        BK_WARN("cannot remove '%s': %s", w->held_path, strerror(errno));
    int64_t now = 0;
    bk_err se;
    bk_err_clear(&se);
    if (w->rm != NULL &&
        bk_ssv_raise(w->rm, o->service, o->id, (int64_t)out.version, &now, &se) != BK_OK)
        BK_WARN("%s", se.msg);
    else if (w->rm != NULL)
        w->ssv = now;
    w->joining = 1;
    w->join_from = out.cut;
    w->join_bytes = (int64_t)out.bytes;
    w->join_t0_ms = bk_mono_ms();
    w->join_progress_ms = 0;
    w->join_tty = isatty(STDERR_FILENO);
    w->mirrored = -2;
    pthread_mutex_lock(&w->s.mu);
    w->s.lpi = out.cut;
    w->s.joining = 1;
    w->s.join_bytes = (int64_t)out.bytes;
    w->s.join_replayed = 0;
    w->s.join_remaining = -1;
    w->s.join_eta_s = -1;
    pthread_mutex_unlock(&w->s.mu);
    BK_INFO("get-the-latest-state: restored backup version %" PRIu64 " (cut %" PRId64
            ", %" PRIu64 " bytes, state digest %.12s...) in %" PRId64
            " ms; replaying the log from offset %" PRId64,
            out.version, out.cut, out.bytes, out.state_digest, bk_mono_ms() - t0,
            out.cut + 1);
    w->recover_why[0] = '\0';
    return BK_EXIT_OK;
}

/* While joining: progress on a terminal and in the metrics; done once the
 * worker has caught up with SSI. */
static void join_progress(worker *w, int64_t ssi) {
    if (!w->joining)
        return;
    int64_t now = bk_mono_ms(), replayed = w->pos.lpi - w->join_from,
            remaining = ssi - w->pos.lpi;
    if (remaining <= 0) {
        w->joining = 0;
        pthread_mutex_lock(&w->s.mu);
        w->s.joining = 0;
        w->s.join_replayed = replayed;
        w->s.join_remaining = 0;
        w->s.join_eta_s = 0;
        pthread_mutex_unlock(&w->s.mu);
        if (w->join_tty)
            fprintf(stderr, "\n");
        BK_INFO("joined: caught up with SSI %" PRId64 " after replaying %" PRId64
                " records from the backup's cut in %" PRId64 " ms",
                ssi, replayed, now - w->join_t0_ms);
        return;
    }
    if (now - w->join_progress_ms < 500)
        return;
    w->join_progress_ms = now;
    double secs = (double)(now - w->join_t0_ms) / 1000.0;
    double rate = secs > 0 ? (double)replayed / secs : 0;
    int64_t eta = rate > 0 ? (int64_t)((double)remaining / rate + 0.5) : -1;
    pthread_mutex_lock(&w->s.mu);
    w->s.join_replayed = replayed;
    w->s.join_remaining = remaining;
    w->s.join_eta_s = eta;
    pthread_mutex_unlock(&w->s.mu);
    if (w->join_tty)
        fprintf(stderr,
                "\rjoining: backup of %.1f MiB restored, %" PRId64
                " records replayed, %" PRId64 " to go, about %" PRId64 " s left   ",
                (double)w->join_bytes / 1048576.0, replayed, remaining, eta);
}

/* ---- start-up: position, application, log (I1, I6) ---- */

static int integrity(bk_err *e, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
static int integrity(bk_err *e, const char *fmt, ...) {
    if (e != NULL) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(e->msg, sizeof(e->msg), fmt, ap);
        va_end(ap);
        e->code = BK_E_STATE;
    }
    return BK_EXIT_INTEGRITY;
}

static int open_state(worker *w, bk_err *e) {
    const bk_worker_opts *o = w->o;
    char appdir[4096];
    if (mkdir(o->state_dir, 0755) != 0 && errno != EEXIST) {
        bk_err_set(e, BK_E_IO, "cannot create state directory '%s': %s", o->state_dir,
                   strerror(errno));
        return BK_EXIT_ERROR;
    }
    if ((size_t)snprintf(w->pos_path, sizeof(w->pos_path), "%s/worker.pos",
                         o->state_dir) >= sizeof(w->pos_path) ||
        (size_t)snprintf(w->held_path, sizeof(w->held_path), "%s/worker.held",
                         o->state_dir) >= sizeof(w->held_path) ||
        (size_t)snprintf(appdir, sizeof(appdir), "%s/app", o->state_dir) >=
            sizeof(appdir)) {
        bk_err_set(e, BK_E_INVAL, "state directory '%s' is too long", o->state_dir);
        return BK_EXIT_CONFIG;
    }
    int exists = 0;
    if (bk_pos_read(w->pos_path, &w->pos, &exists, e) != BK_OK)
        return BK_EXIT_INTEGRITY;
    if (exists && w->pos.inflight_first >= 0 && recovery_on(w)) {
        snprintf(w->recover_why, sizeof(w->recover_why),
                 "stopped in the middle of records %" PRId64 "..%" PRId64
                 " (in-flight mark)",
                 w->pos.inflight_first, w->pos.inflight_last);
    } else if (exists && w->pos.inflight_first >= 0)
        return integrity(e,
                         "interrupted in the middle of records %" PRId64 "..%" PRId64
                         " (in-flight mark in '%s'): the local state may be partly "
                         "changed; it must be restored from the latest backup "
                         "(get-the-latest-state), which this version cannot do",
                         w->pos.inflight_first, w->pos.inflight_last, w->pos_path);
    int64_t app_lpi = -1;
    if (o->app->open(appdir, &w->app, &app_lpi, e) != BK_OK && recovery_on(w) &&
        e->code == BK_E_INVAL) {
        /* a state that fails its own integrity check: set aside, restored */
        char aside[4200];
        snprintf(aside, sizeof(aside), "%s.damaged-%" PRId64, appdir, bk_wall_ms());
        if (rename(appdir, aside) != 0) {
            bk_err_set(e, BK_E_IO, "cannot move the damaged state '%s' aside: %s", appdir,
                       strerror(errno));
            return BK_EXIT_ERROR;
        }
        snprintf(w->recover_why, sizeof(w->recover_why),
                 "the local state failed its integrity check (%.150s; kept in '%.200s')",
                 e->msg, aside);
        bk_err_clear(e);
        w->app = NULL;
        if (o->app->open(appdir, &w->app, &app_lpi, e) != BK_OK) {
            bk_err_prefix(e, "cannot open application '%s'", o->app->name);
            return BK_EXIT_ERROR;
        }
        if (exists)
            w->pos = (bk_pos){-1, "", -1, -1};
        exists = 0;
    } else if (w->app == NULL) {
        bk_err_prefix(e, "cannot open application '%s'", o->app->name);
        return BK_EXIT_ERROR;
    }
    if (w->recover_why[0]) /* restored below: the local state is not trusted */
        return BK_EXIT_OK;
    if (!exists) {
        if (app_lpi != -1)
            return integrity(e,
                             "application state in '%s' is at LPI %" PRId64
                             " but there is no position file '%s'",
                             appdir, app_lpi, w->pos_path);
        w->pos = (bk_pos){-1, "", -1, -1};
        if (bk_pos_write(w->pos_path, &w->pos, e) != BK_OK)
            return BK_EXIT_ERROR;
    } else if (w->pos.lpi != app_lpi) {
        return integrity(e,
                         "position file '%s' says LPI %" PRId64
                         " but the application state is at %" PRId64,
                         w->pos_path, w->pos.lpi, app_lpi);
    }
    if (exists)
        load_held(w);
    return BK_EXIT_OK;
}

/* Check that the log is the one we were reading and position the reader
 * at LPI + 1 (I1). */
static int open_log(worker *w, bk_err *e) {
    const bk_worker_opts *o = w->o;
    if (bk_kafka_topic_name(o->service, w->topic, sizeof(w->topic), e) != BK_OK)
        return BK_EXIT_CONFIG;
    bk_rlog_settings ls = {o->kafka, w->topic, o->kafka_props, 10000};
    w->log = bk_rlog_open(&ls, e);
    if (w->log == NULL)
        return BK_EXIT_CONFIG;
    return BK_EXIT_OK;
}

/* Read the offsets the log holds into *first, *end. A broker too busy to
 * answer in time is waited out (warned once a window), not a reason to
 * stop: the log is still there. Returns BK_OK, or BK_ERR with *e set. */
static int log_bounds(worker *w, int64_t *first, int64_t *end, bk_err *e) {
    for (;;) {
        if (bk_rlog_offsets(w->log, first, end, e) == BK_OK)
            return BK_OK;
        if (e->code != BK_E_TIMEOUT || bk_sig_stop)
            return BK_ERR;
        BK_WARN("%s; asking again", e->msg);
        bk_err_clear(e);
    }
}

/* I1 against the offsets the log holds: BK_EXIT_OK when the record at LPI
 * (or, with no LPI, the next one) may still be read, else an integrity
 * error (w->gap set when records after LPI were deleted). */
static int check_bounds(worker *w, int64_t first, int64_t end, bk_err *e) {
    int64_t lpi = w->pos.lpi;
    if (end <= lpi)
        return integrity(e,
                         "log '%s' ends at offset %" PRId64 " but LPI is %" PRId64
                         ": it is not the log this worker was reading (topic recreated "
                         "or broker lost its data)",
                         w->topic, end - 1, lpi);
    if (first > lpi + 1) {
        w->gap = 1;
        return integrity(e,
                         "log '%s' starts at offset %" PRId64 " but the next record to "
                         "apply is %" PRId64 ": records were deleted; the state must be "
                         "restored from a backup (I1)",
                         w->topic, first, lpi + 1);
    }
    return BK_EXIT_OK;
}

/* Read the record at LPI into *out (NULL when asked to stop meanwhile). A
 * record that the log still holds is waited for as long as it takes: a
 * read that times out on a busy broker is read again from a fresh seek,
 * never a fatal error. Only a record that is gone (or a log that is not
 * ours any more) ends the wait, as an integrity error. */
static int read_lpi_record(worker *w, bk_rlog_rec **out, bk_err *e) {
    int64_t lpi = w->pos.lpi, started = bk_mono_ms();
    *out = NULL;
    while (!bk_sig_stop) {
        if (bk_rlog_seek(w->log, lpi, e) != BK_OK)
            return BK_EXIT_ERROR;
        int64_t deadline = bk_mono_ms() + START_READ_MS;
        while (bk_mono_ms() < deadline && !bk_sig_stop) {
            int rc = bk_rlog_poll(w->log, 100, out, e);
            if (rc > 0)
                return BK_EXIT_OK;
            if (rc < 0)
                return e->code == BK_E_RLOG_RANGE ? BK_EXIT_INTEGRITY : BK_EXIT_ERROR;
        }
        if (bk_sig_stop)
            break;
        int64_t first = 0, end = 0;
        if (log_bounds(w, &first, &end, e) != BK_OK)
            return BK_EXIT_ERROR;
        int rc = check_bounds(w, first, end, e);
        if (rc != BK_EXIT_OK)
            return rc;
        if (first == lpi + 1)
            return BK_EXIT_OK; /* deleted meanwhile: the caller seeks past it */
        BK_WARN("record %" PRId64 " of log '%s' not read after %" PRId64
                " ms although the log holds %" PRId64 "..%" PRId64
                ": the broker is slow; reading it again",
                lpi, w->topic, bk_mono_ms() - started, first, end - 1);
    }
    return BK_EXIT_OK;
}

/* Check the log against the position (I1) and seek to LPI + 1. */
static int check_log(worker *w, bk_err *e) {
    int64_t first = 0, end = 0, lpi = w->pos.lpi;
    w->gap = 0;
    if (log_bounds(w, &first, &end, e) != BK_OK)
        return BK_EXIT_ERROR;
    BK_INFO("log '%s' holds offsets %" PRId64 "..%" PRId64 "; LPI %" PRId64, w->topic,
            first, end - 1, lpi);
    int rc = check_bounds(w, first, end, e);
    if (rc != BK_EXIT_OK)
        return rc;
    bk_rlog_rec *r = NULL;
    if (lpi >= 0 && first <= lpi) {
        rc = read_lpi_record(w, &r, e);
        if (rc != BK_EXIT_OK)
            return rc;
        if (r == NULL && bk_sig_stop)
            return BK_EXIT_OK; /* asked to stop: run_loop will not start */
    }
    if (r == NULL) {
        if (lpi >= 0)
            BK_WARN("record %" PRId64
                    " (LPI) was deleted from the log: its digest cannot "
                    "be checked",
                    lpi);
        return bk_rlog_seek(w->log, lpi + 1, e) == BK_OK ? BK_EXIT_OK : BK_EXIT_ERROR;
    }
    char hex[65];
    bk_record_digest(r->key, r->key_len, r->value, r->len, hex);
    int64_t off = r->offset;
    bk_rlog_rec_free(r);
    if (off != lpi || strcmp(hex, w->pos.digest) != 0)
        return integrity(e,
                         "record %" PRId64 " of log '%s' is not the record this worker "
                         "applied at its LPI (digest %.12s..., expected %.12s...): the "
                         "topic was recreated or the broker lost its data",
                         off, w->topic, hex, w->pos.digest);
    BK_INFO("record %" PRId64 " matches the digest of the last applied record", lpi);
    return BK_EXIT_OK;
}

/* A read of the log failed (w->q_rc set, *e why). When the records after
 * LPI are gone (I1) and this worker is a follower that can restore, it
 * restores the latest backup in place and reads on from its cut: never
 * skipping them. Returns BK_EXIT_OK to go on, or the exit code. */
static int read_failed(worker *w, bk_err *e) {
    if (w->q_rc != BK_EXIT_INTEGRITY || e->code != BK_E_RLOG_RANGE || !recovery_on(w) ||
        w->role == R_LEADER)
        return w->q_rc;
    snprintf(w->recover_why, sizeof(w->recover_why), "%s", e->msg);
    BK_WARN("get-the-latest-state: %s", w->recover_why);
    q_drop(w, w->nq);
    w->q_rc = BK_EXIT_OK;
    bk_err_clear(e);
    int rc = recover(w, 0, e);
    if (rc == BK_EXIT_OK && bk_rlog_seek(w->log, w->pos.lpi + 1, e) != BK_OK)
        rc = BK_EXIT_ERROR;
    if (rc != BK_EXIT_OK)
        return rc;
    w->rnext = w->pos.lpi + 1;
    publish_take_window(w);
    return BK_EXIT_OK;
}

/* ---- the main loop ---- */

static int run_loop(worker *w, bk_err *e) {
    size_t cap = (size_t)w->o->batch_max;
    int rc = BK_EXIT_OK;
    int64_t last_ssi_read = bk_mono_ms();
    w->q = calloc(cap, sizeof(*w->q));
    w->nq = 0;
    w->q_rc = BK_EXIT_OK;
    w->rnext = w->pos.lpi + 1;
    if (w->q == NULL) {
        bk_err_set(e, BK_E_NOMEM, "out of memory");
        return BK_EXIT_ERROR;
    }
    while (!bk_sig_stop) {
        collect(w, 0);
        check_role(w);
        pthread_mutex_lock(&w->s.mu);
        int resync = w->s.resync;
        w->s.resync = 0;
        pthread_mutex_unlock(&w->s.mu);
        if (resync || bk_mono_ms() - last_ssi_read >= SSI_REFRESH_MS) {
            refresh_ssi(w);
            last_ssi_read = bk_mono_ms();
        }
        backup_poll(w, resync);
        int64_t ssi = shared_ssi(w);
        join_progress(w, ssi);
        if (w->role == R_FOLLOWER && w->nheld)
            held_drop_upto(w, ssi);
        check_stall(w, ssi);
        int64_t limit = w->role == R_LEADER ? INT64_MAX : ssi;
        if (leader_holds(w)) {
            if (phase_is(w, "snapshot"))
                leader_snapshot(w);
            else
                leader_hold(w);
            if (leader_holds(w))
                limit = w->pos.lpi;
        } else if (w->hold_since_ms != 0 && !phase_is(w, "snapshot")) {
            BK_WARN("backup: hold ended without a snapshot (phase %s); resuming",
                    w->bp.set ? w->bp.phase : "none");
            w->hold_since_ms = 0;
        }
        if (follower_paused(w) && w->bp.cut < limit)
            limit = w->bp.cut;
        /* a batch closes as soon as the records already fetched are used up:
         * it never waits to fill */
        if (q_fill(w, 100, e) != BK_OK) {
            if ((rc = read_failed(w, e)) != BK_EXIT_OK)
                goto out;
            continue;
        }
        size_t n = q_ready(w, limit);
        if (n == 0) {
            if (w->pos.inflight_first >= 0) {
                /* a look-ahead mark for records we will not apply now (a
                 * follower waiting for SSI, or a leader fenced) */
                w->pos.inflight_first = w->pos.inflight_last = -1;
                if (bk_pos_store(&w->pos_fd, w->pos_path, &w->pos, e) != BK_OK) {
                    rc = BK_EXIT_ERROR;
                    goto out;
                }
            }
            mirror_lpi(w, 1);
            update_digest(w, 0);
            if (w->nq > 0)
                wait_change(w, 100); /* a follower waiting for SSI */
            continue;
        }
        if (process_batch(w, w->q, n, e) != BK_OK) {
            /* the batch failed, or it is done and its look-ahead read failed */
            rc = w->q_rc != BK_EXIT_OK ? read_failed(w, e) : BK_EXIT_ERROR;
            if (rc != BK_EXIT_OK)
                goto out;
            continue;
        }
        if (bk_mono_ms() - w->last_digest_ms >= digest_gap_ms(w, DIGEST_EVERY_MS))
            update_digest(w, 1);
    }
    collect(w, 1);
    if (w->pos.inflight_first >= 0) { /* stopping between batches: no mark */
        w->pos.inflight_first = w->pos.inflight_last = -1;
        if (bk_pos_store(&w->pos_fd, w->pos_path, &w->pos, e) != BK_OK)
            rc = BK_EXIT_ERROR;
    }
    mirror_lpi(w, 1);
out:
    q_drop(w, w->nq);
    free(w->q);
    w->q = NULL;
    return rc;
}

static int start_threads(worker *w, bk_err *e) {
    sigset_t all, old;
    sigfillset(&all);
    pthread_sigmask(SIG_BLOCK, &all, &old); /* signals go to the main thread */
    int rc = pthread_create(&w->lease_thr, NULL, lease_main, w);
    if (rc == 0) {
        rc = pthread_create(&w->watch_thr, NULL, watch_main, w);
        if (rc != 0) {
            pthread_mutex_lock(&w->s.mu);
            w->s.quit = 1;
            pthread_mutex_unlock(&w->s.mu);
            pthread_join(w->lease_thr, NULL);
        }
    }
    /* the commit thread only when the external effects do not touch the
     * local state that main is changing (external_many or none, app.h) */
    int want = w->o->app->external == NULL || w->o->app->external_many != NULL;
    if (rc == 0 && want && pthread_create(&w->commit_thr, NULL, commit_main, w) == 0)
        w->pipelined = 1;
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    if (rc != 0)
        return bk_err_set(e, BK_E_NOMEM, "cannot start a thread: %s", strerror(rc));
    w->threads = 1;
    return BK_OK;
}

static void stop_threads(worker *w) {
    if (!w->threads)
        return;
    collect(w, 1);
    pthread_mutex_lock(&w->s.mu);
    w->s.quit = 1;
    pthread_cond_broadcast(&w->jcv);
    pthread_mutex_unlock(&w->s.mu);
    pthread_join(w->lease_thr, NULL);
    pthread_join(w->watch_thr, NULL);
    if (w->pipelined)
        pthread_join(w->commit_thr, NULL);
    w->pipelined = 0;
    w->threads = 0;
}

static void shutdown_worker(worker *w, int rc) {
    const bk_worker_opts *o = w->o;
    bk_err e;
    bk_err_clear(&e);
    pthread_mutex_lock(&w->s.mu);
    w->s.may_lead = 0;
    pthread_mutex_unlock(&w->s.mu);
    if (w->role != R_STARTING)
        set_role(w, R_STOPPING, bk_sig_stop ? "signal" : NULL);
    stop_threads(w); /* after this, nobody takes or renews the lease */
    pthread_mutex_lock(&w->s.mu);
    int64_t held = w->s.lease_epoch;
    pthread_mutex_unlock(&w->s.mu);
    set_role(w, rc == BK_EXIT_OK ? R_STOPPED : R_FAILED, NULL);
    if (w->rm != NULL) {
        if (held > 0 && bk_lease_release(w->rm, o->service, o->id, held, &e) != BK_OK)
            BK_WARN("%s", e.msg);
        else if (held > 0)
            BK_INFO("released the lease of epoch %" PRId64, held);
        if (bk_leave(w->rm, o->service, o->id, &e) != BK_OK)
            BK_WARN("%s", e.msg);
        if (w->log != NULL) {
            int64_t a = 0, ns = 0, ms = bk_mono_ms();
            write_metrics(w, w->rm, &a, &ns, &ms); /* the final numbers */
        }
    }
    if (w->snap_pid > 0) { /* let a snapshot in progress finish its report */
        int st = 0;
        waitpid(w->snap_pid, &st, 0);
    }
    held_drop_upto(w, INT64_MAX);
    free(w->held);
    if (w->pos_fd >= 0)
        close(w->pos_fd);
    if (w->held_fd >= 0)
        close(w->held_fd);
    if (w->app != NULL && o->app->close != NULL)
        o->app->close(w->app);
    bk_rlog_close(w->log);
    bk_redis_free(w->rm);
    pthread_cond_destroy(&w->s.cv);
    pthread_cond_destroy(&w->jcv);
    pthread_mutex_destroy(&w->s.mu);
}

int bk_worker_run(const bk_worker_opts *o, bk_err *err) {
    bk_err local, *e = err != NULL ? err : &local;
    bk_err_clear(e);
    if (bk_keys_check_id(o->id, e) != BK_OK ||
        bk_keys_check_service(o->service, e) != BK_OK)
        return BK_EXIT_CONFIG;
    if (o->lease_ms < 30 || o->batch_max < 1) {
        bk_err_set(e, BK_E_INVAL, "invalid lease (%d ms) or batch size (%d)", o->lease_ms,
                   o->batch_max);
        return BK_EXIT_CONFIG;
    }
    worker *w = calloc(1, sizeof(*w));
    if (w == NULL) {
        bk_err_set(e, BK_E_NOMEM, "out of memory");
        return BK_EXIT_ERROR;
    }
    w->o = o;
    w->pos_fd = -1;
    w->held_fd = -1;
    const char *hook = getenv("BR2K_TEST_CRASH_BEFORE_COMMIT");
    w->crash_hook = hook != NULL && strcmp(hook, "1") == 0;
    w->mirrored = -2;
    w->role = R_STARTING;
    w->lead_from = INT64_MAX;
    pthread_mutex_init(&w->s.mu, NULL);
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_cond_init(&w->s.cv, &ca);
    pthread_cond_init(&w->jcv, &ca);
    pthread_condattr_destroy(&ca);
    w->s.ssi = -1;
    w->s.lpi = -1;
    w->s.digest_lpi = -1;
    int rc = BK_EXIT_OK;
    if (bk_key_changes(w->chan, sizeof(w->chan), o->service, e) != BK_OK) {
        rc = BK_EXIT_CONFIG;
        goto out;
    }
    BK_INFO("worker '%s' of service '%s' starting: app %s, state '%s', lease %d ms",
            o->id, o->service, o->app->name, o->state_dir, o->lease_ms);
    rc = open_state(w, e);
    if (rc != BK_EXIT_OK)
        goto out;
    w->rm = bk_redis_new(o->redis, 5000, e);
    if (w->rm == NULL || bk_versions_init(w->rm, o->service, o->id, e) != BK_OK ||
        refresh_ssi(w) != BK_OK) {
        rc = BK_EXIT_ERROR;
        goto out;
    }
    rc = open_log(w, e);
    if (rc != BK_EXIT_OK)
        goto out;
    if (bk_ssv_get(w->rm, o->service, o->id, &w->ssv, e) != BK_OK) {
        rc = BK_EXIT_ERROR;
        goto out;
    }
    int fresh = 0;
    if (!w->recover_why[0]) {
        rc = check_log(w, e);
        if (rc == BK_EXIT_INTEGRITY && w->gap && recovery_on(w)) {
            snprintf(w->recover_why, sizeof(w->recover_why), "%s", e->msg);
            bk_err_clear(e);
        } else if (rc != BK_EXIT_OK) {
            goto out;
        } else if (w->pos.lpi == -1 && recovery_on(w)) {
            fresh = 1; /* a new node joins from the latest backup, if any */
            snprintf(w->recover_why, sizeof(w->recover_why),
                     "no local state (a new node or a wiped disk)");
        }
    }
    if (w->recover_why[0]) {
        BK_WARN("get-the-latest-state: %s", w->recover_why);
        rc = recover(w, fresh, e);
        if (rc == BK_EXIT_OK)
            rc = check_log(w, e);
        if (rc != BK_EXIT_OK)
            goto out;
    }
    w->s.lpi = w->pos.lpi;
    publish_take_window(w);
    update_digest(w, 1);
    if (start_threads(w, e) != BK_OK) {
        rc = BK_EXIT_ERROR;
        goto out;
    }
    set_role(w, R_FOLLOWER, NULL);
    pthread_mutex_lock(&w->s.mu);
    w->s.may_lead = 1;
    pthread_mutex_unlock(&w->s.mu);
    rc = run_loop(w, e);
    if (rc == BK_EXIT_OK)
        update_digest(w, 1);
out:
    if (rc != BK_EXIT_OK)
        BK_ERROR("%s", e->msg);
    shutdown_worker(w, rc);
    if (rc == BK_EXIT_OK)
        BK_INFO("stopped at LPI %" PRId64, w->pos.lpi);
    free(w);
    return rc;
}
