/* lease.c - the lease and watch threads, the metrics hash, role changes
 * and the shared SSI (worker_int.h).
 *
 *   lease  takes the lease when free and caught up (the take window is
 *          published by main: commit.c), renews it every lease/3 (a long
 *          apply never starves it), writes the heartbeat and the metrics
 *          hash every METRICS_MS;
 *   watch  SUBSCRIBEs to the changes channel and wakes main when SSI
 *          moves (or anything else changes: then main reads again).
 * Main notices what they did in wk_check_role. */
#include <inttypes.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "base/clock.h"
#include "base/log.h"
#include "log/rlog.h"
#include "redis/keys.h"
#include "redis/redis.h"
#include "worker_int.h"

#define METRICS_MS 500    /* heartbeat and metrics period */
#define ALIVE_TTL_MS 3000 /* TTL of alive-<id> */

static const char *const role_names[] = {"starting", "follower", "leader",
                                         "stopping", "stopped",  "failed"};

/* ---- the lease thread: lease, heartbeat, metrics ---- */

void wk_write_metrics(worker *w, bk_redis *r, int64_t *prev_applied, int64_t *prev_ns,
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

void *wk_lease_main(void *arg) {
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
        int64_t held = w->s.lease_epoch, lo = w->s.take_min, hi = w->s.take_max,
                floor = w->s.take_epoch_min;
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
            if (bk_lease_take_above(r, o->service, o->id, lo, hi, floor, o->lease_ms, &ep,
                                    &e) != BK_OK)
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
            wk_write_metrics(w, r, &prev_applied, &prev_ns, &prev_ms);
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

void *wk_watch_main(void *arg) {
    worker *w = arg;
    redisContext *c = NULL;
    for (;;) {
        pthread_mutex_lock(&w->s.mu);
        int quit = w->s.quit;
        pthread_mutex_unlock(&w->s.mu);
        if (quit)
            break;
        if (c == NULL) {
            bk_err ce;
            bk_err_clear(&ce);
            /* the current primary (through the Sentinels, if any): a
             * failover closes this connection, and the next one finds the
             * new primary */
            c = bk_redis_connect(w->o->redis, 1000, &ce);
            redisReply *rep = NULL;
            if (c != NULL)
                rep = redisCommand(c, "SUBSCRIBE %s", w->chan);
            if (rep == NULL || rep->type != REDIS_REPLY_ARRAY) {
                if (rep)
                    freeReplyObject(rep);
                BK_WARN("cannot subscribe to '%s' (retrying): %s", w->chan,
                        c == NULL ? ce.msg
                        : c->err  ? c->errstr
                                  : "no reply");
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

void wk_set_role(worker *w, int role, const char *why) {
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

void wk_step_down(worker *w, const char *why) {
    BK_WARN("fenced: stepping down from epoch %" PRId64 ": %s", w->epoch, why);
    pthread_mutex_lock(&w->s.mu);
    if (w->s.lease_epoch == w->epoch)
        w->s.lease_epoch = 0;
    w->s.fenced++;
    pthread_mutex_unlock(&w->s.mu);
    wk_set_role(w, R_FOLLOWER, "fenced");
}

int64_t wk_shared_ssi(worker *w) {
    pthread_mutex_lock(&w->s.mu);
    int64_t v = w->s.ssi;
    pthread_mutex_unlock(&w->s.mu);
    return v;
}

void wk_raise_ssi(worker *w, int64_t ssi) {
    pthread_mutex_lock(&w->s.mu);
    if (ssi > w->s.ssi)
        w->s.ssi = ssi;
    pthread_mutex_unlock(&w->s.mu);
}

int wk_refresh_ssi(worker *w) {
    int64_t ssi;
    bk_err e;
    bk_err_clear(&e);
    if (bk_ssi_get(w->rm, w->o->service, &ssi, &e) != BK_OK) {
        BK_WARN("%s", e.msg);
        return BK_ERR;
    }
    int64_t seen = wk_shared_ssi(w);
    if (bk_redis_wait_needed(w->rm) > 0 && ssi < seen) {
        /* with replicas: a failover promoted a replica that missed the
         * last commits. SSI never goes back (I3): what this worker saw
         * committed was committed; put it back (a raise, never down) */
        BK_WARN("SSI in Redis is %" PRId64 " but %" PRId64
                " was committed: a Redis failover lost it; restoring it (I3)",
                ssi, seen);
        if (bk_ssi_restore(w->rm, w->o->service, seen, &ssi, &e) != BK_OK)
            BK_WARN("%s", e.msg);
    }
    wk_raise_ssi(w, ssi);
    return BK_OK;
}

/* Follower -> leader when the lease thread took the lease; leader ->
 * follower when it lost it. */
void wk_check_role(worker *w) {
    pthread_mutex_lock(&w->s.mu);
    int64_t le = w->s.lease_epoch;
    pthread_mutex_unlock(&w->s.mu);
    if (w->role == R_LEADER && le != w->epoch) {
        wk_collect(w, 1); /* may step down with the job's reason */
        if (w->role == R_LEADER)
            wk_step_down(w, "the lease was lost");
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
    wk_raise_ssi(w, ssi);
    wk_held_drop_upto(w, ssi);
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
    wk_set_role(w, R_LEADER, why);
    wk_claim_append(w); /* with replicas: no fenced write before it is read back */
    if (w->nheld)
        wk_flush_held(w);
}
