/* lease.c - the lease and watch threads, the metrics hash, role changes
 * and the shared SSI (worker_int.h).
 *
 *   lease  takes the lease when free and caught up (the take window is
 *          published by main: commit.c) the moment it expires, renews it
 *          every lease/5 (a long apply never starves it); its own thread
 *          writes the heartbeat and the metrics hash every METRICS_MS;
 *   watch  SUBSCRIBEs to the changes channel and wakes main when SSI
 *          moves (or anything else changes: then main reads again).
 * Main notices what they did in wk_check_role. */
#include <inttypes.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
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

/* Renewal gaps of the lease holder: from the start of one successful
 * renewal (or of the take) to the end of the next, how long the lease had
 * to last; a gap above lease-ms would have let the lease expire. A
 * histogram in ms, logged every GAPS_LOG_MS while leading and when the
 * thread ends (bench/failover.sh reads these lines). */
#define GAP_SLOTS 4096 /* 1 ms slots; the last one holds everything above */
#define GAPS_LOG_MS 60000
typedef struct gaps {
    int64_t n, late, over, max, logged_n;
    uint32_t h[GAP_SLOTS];
} gaps;

static int64_t gap_pct(const gaps *g, int per_mille) {
    int64_t want = (g->n * per_mille + 999) / 1000, seen = 0;
    for (int i = 0; i < GAP_SLOTS; i++)
        if ((seen += g->h[i]) >= want && want > 0)
            return i;
    return g->max;
}

static void gaps_add(gaps *g, int64_t ms, int lease_ms, int renew) {
    g->n++;
    g->h[ms < 0 ? 0 : ms >= GAP_SLOTS ? GAP_SLOTS - 1 : ms]++;
    if (ms > g->max)
        g->max = ms;
    if (ms > lease_ms / 2) {
        g->late++;
        BK_WARN(
            "lease renewal late: %" PRId64 " ms since the last one (lease %d ms, every "
            "%d ms)%s",
            ms, lease_ms, renew, ms >= lease_ms ? ": the lease may have expired" : "");
    }
    if (ms >= lease_ms)
        g->over++;
}

static void gaps_log(gaps *g, int lease_ms, int renew) {
    if (g->n == 0 || g->n == g->logged_n)
        return;
    g->logged_n = g->n;
    BK_INFO("lease renewals: %" PRId64 ", gap ms p50 %" PRId64 " p90 %" PRId64
            " p99 %" PRId64 " p99.9 %" PRId64 " max %" PRId64 "; %" PRId64
            " late (gap over half the lease: %d ms), %" PRId64
            " at or over the lease (%d ms, renewed every %d ms)",
            g->n, gap_pct(g, 500), gap_pct(g, 900), gap_pct(g, 990), gap_pct(g, 999),
            g->max, g->late, lease_ms / 2, g->over, lease_ms, renew);
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

/* The heartbeat and the metrics hash, every METRICS_MS, on a thread and a
 * connection of their own: their writes never delay a renewal. */
static void *beat_main(void *arg) {
    worker *w = arg;
    bk_err e;
    bk_err_clear(&e);
    bk_redis *r = NULL;
    int64_t prev_applied = 0, prev_ns = 0, prev_ms = bk_mono_ms();
    for (;;) {
        pthread_mutex_lock(&w->s.mu);
        int quit = w->s.quit;
        pthread_mutex_unlock(&w->s.mu);
        if (quit)
            break;
        int64_t now = bk_mono_ms();
        if (r == NULL && (r = bk_redis_new(w->o->redis, 2000, &e)) == NULL)
            BK_WARN("metrics thread: %s", e.msg);
        if (r != NULL) {
            if (bk_heartbeat(r, w->o->service, w->o->id, ALIVE_TTL_MS, &e) != BK_OK)
                BK_WARN("%s", e.msg);
            wk_write_metrics(w, r, &prev_applied, &prev_ns, &prev_ms);
        }
        int64_t left; /* sleep in steps, so that a stop is not kept waiting */
        while ((left = METRICS_MS - (bk_mono_ms() - now)) > 0) {
            bk_sleep_full_ms((int)(left < 100 ? left : 100));
            pthread_mutex_lock(&w->s.mu);
            quit = w->s.quit;
            pthread_mutex_unlock(&w->s.mu);
            if (quit)
                break;
        }
    }
    bk_redis_free(r);
    return NULL;
}

/* The lease thread. The holder renews every lease/5 on this thread's own
 * connection (a long apply on main never starves it). A follower that
 * finds the lease held learns its remaining time from the take script and
 * tries again the moment it expires (or after lease/3, if sooner): a dead
 * leader is replaced lease-ms after its last renewal, not up to lease/3
 * later. The gaps between renewals under load chose these periods
 * (bench/failover.sh). */
void *wk_lease_main(void *arg) {
    worker *w = arg;
    const bk_worker_opts *o = w->o;
    /* the holder renews every lease/5: a stall of up to 4/5 of the lease
     * right before a renewal is due does not lose it; a follower polls
     * every lease/3 and is woken at the expiry it was told */
    int tick = o->lease_ms / 3 > 10 ? o->lease_ms / 3 : 10,
        renew = o->lease_ms / 5 > 10 ? o->lease_ms / 5 : 10;
    bk_err e;
    bk_err_clear(&e);
    bk_redis *r = NULL;
    int64_t last_ok = 0, next_gaps_log = 0;
    gaps *g = calloc(1, sizeof(*g)); /* NULL: no figures, the lease works the same */
    pthread_t beat;
    int beating = pthread_create(&beat, NULL, beat_main, w) == 0;
    if (!beating)
        BK_WARN("cannot start the metrics thread: no heartbeat, no metrics");
    for (;;) {
        pthread_mutex_lock(&w->s.mu);
        int quit = w->s.quit, may = w->s.may_lead;
        int64_t held = w->s.lease_epoch, lo = w->s.take_min, hi = w->s.take_max,
                floor = w->s.take_epoch_min;
        pthread_mutex_unlock(&w->s.mu);
        if (quit)
            break;
        if (r == NULL) {
            /* a reply slower than a tick is still worth waiting for: the
             * next renewal could not be sent sooner on this connection */
            r = bk_redis_new(o->redis, o->lease_ms / 2 > 100 ? o->lease_ms / 2 : 100, &e);
            if (r == NULL)
                BK_WARN("lease thread: %s", e.msg);
        }
        int64_t now = bk_mono_ms(), wake_at = now + (held > 0 ? renew : tick);
        if (r != NULL && held > 0) {
            if (bk_lease_renew(r, o->service, o->id, held, o->lease_ms, &e) == BK_OK) {
                if (g != NULL)
                    gaps_add(g, bk_mono_ms() - last_ok, o->lease_ms, renew);
                last_ok = now;
            } else if (e.code == BK_E_FENCED)
                lease_lost(w, held, e.msg);
            else if (now - last_ok >= o->lease_ms)
                lease_lost(w, held, e.msg);
            else
                BK_WARN("lease renewal failed (retrying): %s", e.msg);
        } else if (held > 0 && now - last_ok >= o->lease_ms) {
            lease_lost(w, held, "no Redis connection");
        } else if (r != NULL && may) {
            int64_t ep = 0, held_ms = -1;
            if (bk_lease_take_wait(r, o->service, o->id, lo, hi, floor, o->lease_ms, &ep,
                                   &held_ms, &e) != BK_OK)
                BK_WARN("%s", e.msg);
            else if (ep > 0) {
                last_ok = now;
                pthread_mutex_lock(&w->s.mu);
                w->s.lease_epoch = ep;
                wake(&w->s);
                pthread_mutex_unlock(&w->s.mu);
                BK_INFO("took the lease with epoch %" PRId64, ep);
            } else if (held_ms >= 0 && bk_mono_ms() + held_ms + 2 < wake_at) {
                /* try again as it expires (+2 ms: Redis counts whole ms) */
                wake_at = bk_mono_ms() + held_ms + 2;
            }
        }
        if (g != NULL && held > 0 && now >= next_gaps_log) {
            if (next_gaps_log > 0)
                gaps_log(g, o->lease_ms, renew);
            next_gaps_log = now + GAPS_LOG_MS;
        }
        int64_t left = wake_at - bk_mono_ms();
        if (left > 0)
            bk_sleep_full_ms((int)left);
    }
    if (beating)
        pthread_join(beat, NULL);
    if (g != NULL)
        gaps_log(g, o->lease_ms, renew);
    free(g);
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
