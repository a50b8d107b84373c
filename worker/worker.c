/* worker.c - the worker runtime (see worker.h).
 *
 * Five threads, each with its own Redis connection:
 *   main   reads the log, applies records in batches, and as leader runs
 *          the external effects and commits results + SSI (fenced);
 *   lease  takes the lease when free and caught up (the moment it
 *          expires), renews it every lease/5 (a long apply never starves
 *          it); it starts the fifth thread, which writes the heartbeat and
 *          the metrics hash every METRICS_MS (lease.c);
 *   watch  SUBSCRIBEs to the changes channel and wakes main when SSI moves.
 *   commit (leader, when the application allows it: no per-record
 *          `external`) runs the external effects and the fenced commit of
 *          batch N while main applies batch N+1 (one job in flight).
 * They share `shared` under one mutex; main waits on its condition.
 * This file: start-up (open_state), the main loop, threads, shutdown; the
 * other parts are listed in worker_int.h.
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
#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "base/clock.h"
#include "base/log.h"
#include "base/sig.h"
#include "log/rlog.h"
#include "redis/keys.h"
#include "redis/redis.h"
#include "worker_int.h"

#define SSI_REFRESH_MS 1000  /* GET SSI when no notification came for this long */
#define DIGEST_EVERY_MS 5000 /* state digest at least this often when busy */
#define FIRST_BATCH 32       /* most records in a new leader's first batch */

/* ---- start-up: position, application, log (I1, I6) ---- */

int wk_integrity(bk_err *e, const char *fmt, ...) {
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
    if (exists && w->pos.inflight_first >= 0 && wk_recovery_on(w)) {
        snprintf(w->recover_why, sizeof(w->recover_why),
                 "stopped in the middle of records %" PRId64 "..%" PRId64
                 " (in-flight mark)",
                 w->pos.inflight_first, w->pos.inflight_last);
    } else if (exists && w->pos.inflight_first >= 0)
        return wk_integrity(e,
                            "interrupted in the middle of records %" PRId64 "..%" PRId64
                            " (in-flight mark in '%s'): the local state may be partly "
                            "changed; it must be restored from the latest backup "
                            "(get-the-latest-state), which this version cannot do",
                            w->pos.inflight_first, w->pos.inflight_last, w->pos_path);
    int64_t app_lpi = -1;
    if (o->app->open(appdir, &w->app, &app_lpi, e) != BK_OK && wk_recovery_on(w) &&
        e->code == BK_E_INVAL) {
        /* a state that fails its own integrity check: set aside, restored (or
         * rebuilt from an empty one when there is no backup yet: recover.c) */
        char aside[4200], why[160];
        snprintf(why, sizeof(why), "%.150s", e->msg);
        bk_err_clear(e);
        int rc = wk_state_set_aside(w, aside, sizeof(aside), &app_lpi, e);
        if (rc != BK_EXIT_OK)
            return rc;
        w->state_aside = 1;
        snprintf(w->recover_why, sizeof(w->recover_why),
                 "the local state failed its integrity check (%s; kept in '%.200s')", why,
                 aside);
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
            return wk_integrity(e,
                                "application state in '%s' is at LPI %" PRId64
                                " but there is no position file '%s'",
                                appdir, app_lpi, w->pos_path);
        w->pos = (bk_pos){-1, "", -1, -1};
        if (bk_pos_write(w->pos_path, &w->pos, e) != BK_OK)
            return BK_EXIT_ERROR;
    } else if (w->pos.lpi != app_lpi) {
        return wk_integrity(e,
                            "position file '%s' says LPI %" PRId64
                            " but the application state is at %" PRId64,
                            w->pos_path, w->pos.lpi, app_lpi);
    }
    wk_load_held(w); /* and zeros to write its frames over (worker.h) */
    return BK_EXIT_OK;
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
        wk_collect(w, 0);
        wk_check_role(w);
        /* results left held while the commit thread was busy (commit.c):
         * handed over before this loop waits for the log (here, before the
         * limit below: the hand-over may step down) */
        if (w->role == R_LEADER && w->pipelined && w->nheld > 0 && w->nq == 0)
            wk_commit_async(w, 1);
        pthread_mutex_lock(&w->s.mu);
        int resync = w->s.resync;
        w->s.resync = 0;
        pthread_mutex_unlock(&w->s.mu);
        if (resync || bk_mono_ms() - last_ssi_read >= SSI_REFRESH_MS) {
            wk_refresh_ssi(w);
            if (w->role == R_LEADER)
                wk_claim_check_lost(w); /* a stale primary under our token */
            last_ssi_read = bk_mono_ms();
        }
        wk_backup_poll(w, resync);
        int64_t ssi = wk_shared_ssi(w);
        wk_join_progress(w, ssi);
        if (w->role == R_FOLLOWER && w->nheld)
            wk_held_drop_upto(w, ssi);
        wk_check_stall(w, ssi);
        int64_t limit = w->role == R_LEADER ? INT64_MAX : ssi;
        if (wk_leader_holds(w)) {
            if (wk_phase_is(w, "snapshot"))
                wk_leader_snapshot(w);
            else
                wk_leader_hold(w);
            if (wk_leader_holds(w))
                limit = w->pos.lpi;
        } else if (w->hold_since_ms != 0 && !wk_phase_is(w, "snapshot")) {
            BK_WARN("backup: hold ended without a snapshot (phase %s); resuming",
                    w->bp.set ? w->bp.phase : "none");
            w->hold_since_ms = 0;
        }
        /* a batch closes as soon as the records already fetched are used up:
         * it never waits to fill */
        if (wk_q_fill(w, 100, e) != BK_OK) {
            if ((rc = wk_read_failed(w, e)) != BK_EXIT_OK)
                goto out;
            continue;
        }
        /* stepped down above (a hold's commit fenced): a follower applies
         * nothing beyond SSI, or its records would have no held results */
        if (w->role != R_LEADER && limit > wk_shared_ssi(w))
            limit = wk_shared_ssi(w);
        size_t n = wk_q_ready(w, limit);
        /* a new leader's first batch is short: the first result after a
         * failover does not wait for the whole backlog of the pause */
        if (w->role == R_LEADER && w->pos.lpi == w->lead_from && n > FIRST_BATCH)
            n = FIRST_BATCH;
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
            wk_mirror_lpi(w, 1);
            wk_update_digest(w, 0);
            if (w->app_failed) { /* the application died while idle */
                bk_err_set(e, BK_E_IO, "the application failed: %s",
                           w->app_why[0] ? w->app_why
                                         : "its state digest cannot be read");
                rc = BK_EXIT_ERROR;
                goto out;
            }
            if (w->nq > 0)
                wait_change(w, 100); /* a follower waiting for SSI */
            continue;
        }
        if (wk_process_batch(w, w->q, n, e) != BK_OK) {
            /* the batch failed, or it is done and its look-ahead read failed */
            rc = w->q_rc != BK_EXIT_OK ? wk_read_failed(w, e) : BK_EXIT_ERROR;
            if (rc != BK_EXIT_OK)
                goto out;
            continue;
        }
        if (bk_mono_ms() - w->last_digest_ms >= wk_digest_gap_ms(w, DIGEST_EVERY_MS))
            wk_update_digest(w, 1);
    }
    if (w->role == R_LEADER && w->pipelined && w->nheld > 0)
        wk_commit_async(w, 1); /* what a busy commit thread left held */
    wk_collect(w, 1);
    if (w->pos.inflight_first >= 0) { /* stopping between batches: no mark */
        w->pos.inflight_first = w->pos.inflight_last = -1;
        if (bk_pos_store(&w->pos_fd, w->pos_path, &w->pos, e) != BK_OK)
            rc = BK_EXIT_ERROR;
    }
    wk_mirror_lpi(w, 1);
out:
    wk_q_drop(w, w->nq);
    free(w->q);
    w->q = NULL;
    return rc;
}

static int start_threads(worker *w, bk_err *e) {
    sigset_t all, old;
    sigfillset(&all);
    pthread_sigmask(SIG_BLOCK, &all, &old); /* signals go to the main thread */
    int rc = pthread_create(&w->lease_thr, NULL, wk_lease_main, w);
    if (rc == 0) {
        rc = pthread_create(&w->watch_thr, NULL, wk_watch_main, w);
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
    if (rc == 0 && want && pthread_create(&w->commit_thr, NULL, wk_commit_main, w) == 0)
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
    wk_collect(w, 1);
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
        wk_set_role(w, R_STOPPING, bk_sig_stop ? "signal" : NULL);
    stop_threads(w); /* after this, nobody takes or renews the lease */
    pthread_mutex_lock(&w->s.mu);
    int64_t held = w->s.lease_epoch;
    pthread_mutex_unlock(&w->s.mu);
    wk_set_role(w, rc == BK_EXIT_OK ? R_STOPPED : R_FAILED, NULL);
    if (w->rm != NULL) {
        if (held > 0 && bk_lease_release(w->rm, o->service, o->id, held, &e) != BK_OK)
            BK_WARN("%s", e.msg);
        else if (held > 0)
            BK_INFO("released the lease of epoch %" PRId64, held);
        if (bk_leave(w->rm, o->service, o->id, &e) != BK_OK)
            BK_WARN("%s", e.msg);
        if (w->log != NULL) {
            int64_t a = 0, ns = 0, ms = bk_mono_ms();
            wk_write_metrics(w, w->rm, &a, &ns, &ms); /* the final numbers */
        }
    }
    if (w->snap_pid > 0) { /* let a snapshot in progress finish its report */
        int st = 0;
        waitpid(w->snap_pid, &st, 0);
    }
    wk_held_drop_upto(w, INT64_MAX);
    free(w->held);
    if (w->pos_fd >= 0)
        close(w->pos_fd);
    if (w->hf.fd >= 0)
        close(w->hf.fd);
    if (w->app != NULL && o->app->close != NULL)
        o->app->close(w->app);
    bk_rlog_close(w->log);
    bk_redis_free(w->rm);
    pthread_cond_destroy(&w->s.cv);
    pthread_cond_destroy(&w->jcv);
    pthread_mutex_destroy(&w->s.mu);
}

static int run_once(const bk_worker_opts *o, bk_err *e, int *app_failed) {
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
    w->hf.fd = -1;
    w->hf.seq = -1;
    w->held_hi = -1;
    const char *hook = getenv("BR2K_TEST_CRASH_BEFORE_COMMIT");
    w->crash_hook = hook != NULL && strcmp(hook, "1") == 0;
    w->mirrored = -2;
    w->role = R_STARTING;
    w->lead_from = INT64_MAX;
    w->rf_fail_at = INT64_MIN; /* no recovery in place yet */
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
    /* Sentinels that name no reachable primary yet: a failover is under
     * way (Sentinel promotes a replica within seconds); wait for it */
    for (int64_t until = bk_mono_ms() + 30000;
         w->rm == NULL && e->code == BK_E_IO &&
         strncmp(o->redis, "sentinel://", 11) == 0 && !bk_sig_stop &&
         bk_mono_ms() < until;) {
        BK_WARN("%s (retrying)", e->msg);
        bk_sleep_full_ms(500);
        bk_err_clear(e);
        w->rm = bk_redis_new(o->redis, 5000, e);
    }
    if (w->rm == NULL || bk_versions_init(w->rm, o->service, o->id, e) != BK_OK ||
        wk_refresh_ssi(w) != BK_OK) {
        rc = BK_EXIT_ERROR;
        goto out;
    }
    if (wk_claim_init(w, e) != BK_OK) {
        rc = BK_EXIT_ERROR;
        goto out;
    }
    rc = wk_open_log(w, e);
    if (rc != BK_EXIT_OK)
        goto out;
    if (bk_ssv_get(w->rm, o->service, o->id, &w->ssv, e) != BK_OK) {
        rc = BK_EXIT_ERROR;
        goto out;
    }
    int fresh = 0;
    if (!w->recover_why[0]) {
        rc = wk_check_log(w, e);
        if (rc == BK_EXIT_INTEGRITY && w->gap && wk_recovery_on(w)) {
            snprintf(w->recover_why, sizeof(w->recover_why), "%s", e->msg);
            bk_err_clear(e);
        } else if (rc != BK_EXIT_OK) {
            goto out;
        } else if (w->pos.lpi == -1 && wk_recovery_on(w)) {
            fresh = 1; /* a new node joins from the latest backup, if any */
            snprintf(w->recover_why, sizeof(w->recover_why),
                     "no local state (a new node or a wiped disk)");
        }
    }
    if (w->recover_why[0]) {
        BK_WARN("get-the-latest-state: %s", w->recover_why);
        rc = wk_recover(w, fresh, e);
        if (rc == BK_EXIT_OK)
            rc = wk_check_log(w, e);
        if (rc != BK_EXIT_OK)
            goto out;
    }
    w->s.lpi = w->pos.lpi;
    wk_publish_take_window(w);
    wk_update_digest(w, 1);
    if (start_threads(w, e) != BK_OK) {
        rc = BK_EXIT_ERROR;
        goto out;
    }
    wk_set_role(w, R_FOLLOWER, NULL);
    pthread_mutex_lock(&w->s.mu);
    w->s.may_lead = 1;
    pthread_mutex_unlock(&w->s.mu);
    rc = run_loop(w, e);
    if (rc == BK_EXIT_OK)
        wk_update_digest(w, 1);
out:
    if (rc != BK_EXIT_OK)
        BK_ERROR("%s", e->msg);
    shutdown_worker(w, rc);
    if (rc == BK_EXIT_OK)
        BK_INFO("stopped at LPI %" PRId64, w->pos.lpi);
    *app_failed = w->app_failed;
    free(w);
    return rc;
}

/* An application that crashed, hung or answered garbage in the middle of a
 * batch is a crashed worker (I6): the batch's in-flight mark stays, and
 * the worker runs its start-up again in this process (get-the-latest-state
 * from the mark, or refusing with exit 3 when it cannot restore), as a
 * process supervisor would restart it. At most APP_RESTARTS times in a row
 * within APP_RESTART_WINDOW_MS, then it exits with the error. */
#define APP_RESTARTS 5
#define APP_RESTART_WINDOW_MS 60000

int bk_worker_run(const bk_worker_opts *o, bk_err *err) {
    bk_err local, *e = err != NULL ? err : &local;
    int restarts = 0;
    int64_t first_ms = 0;
    for (;;) {
        bk_err_clear(e);
        int app_failed = 0;
        int rc = run_once(o, e, &app_failed);
        if (rc != BK_EXIT_ERROR || !app_failed || bk_sig_stop)
            return rc;
        int64_t now = bk_mono_ms();
        if (restarts == 0 || now - first_ms > APP_RESTART_WINDOW_MS) {
            restarts = 0;
            first_ms = now;
        }
        if (++restarts > APP_RESTARTS) {
            BK_ERROR("application '%s' failed %d times within %d s: giving up",
                     o->app->name, APP_RESTARTS, APP_RESTART_WINDOW_MS / 1000);
            return rc;
        }
        BK_WARN("application '%s' failed (%s): restarting the worker (%d of %d): "
                "start-up again (an in-flight mark leads to get-the-latest-state)",
                o->app->name, e->msg, restarts, APP_RESTARTS);
        for (int i = 0; i < 10 * restarts && !bk_sig_stop; i++)
            usleep(50000);
    }
}
