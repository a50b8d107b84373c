/* svu.c - the worker's side of state-version-up (backupd, keys.h): the
 * phase read, followers pausing, the leader holding at the cut, the fork
 * of the snapshot process (snapshot.c), SSV raised after a backup. */
#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include "base/clock.h"
#include "base/log.h"
#include "redis/keys.h"
#include "snapshot.h"
#include "worker_int.h"

/* ---- state-version-up: the worker's part (keys.h, backupd) ---- */

#define BP_POLL_MS 200       /* phase read this often while one is set */
#define BP_IDLE_POLL_MS 1000 /* ... and when none is */
#define SSV_CHECK_MS 2000    /* backup-last read this often */

int wk_phase_is(const worker *w, const char *p) {
    return w->bp.set && strcmp(w->bp.phase, p) == 0;
}

/* The leader holds (applies nothing new) in `hold` and `held` of its own
 * epoch, and until it has forked the snapshot in `snapshot`. */
int wk_leader_holds(const worker *w) {
    if (!wk_claimed(w) || !w->bp.set || w->bp.epoch != w->epoch)
        return 0;
    if (wk_phase_is(w, "hold") || wk_phase_is(w, "held"))
        return 1;
    return wk_phase_is(w, "snapshot") && w->bp.cut == w->pos.lpi &&
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

/* Read the phase, reap a finished
 * snapshot child, raise SSV after a backup. */
void wk_backup_poll(worker *w, int force) {
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
    if (!w->bp.set && (was_set || force || t - w->ssv_check_ms >= SSV_CHECK_MS))
        ssv_check(w);
}

/* Leader, phase `hold`: commit everything applied, then announce the cut
 * C = SSI = LPI by moving the phase to `held` (keeping its TTL). */
void wk_leader_hold(worker *w) {
    if (w->hold_since_ms == 0) {
        w->hold_since_ms = bk_mono_ms();
        w->snap_epoch = 0; /* a new backup: its snapshot is still to be taken */
        w->snap_cut = -2;
        BK_INFO("backup: holding at LPI %" PRId64 " (epoch %" PRId64 ")", w->pos.lpi,
                w->epoch);
    }
    if (!wk_phase_is(w, "hold"))
        return;
    wk_collect(w, 1);
    if (w->role == R_LEADER && w->nheld > 0) {
        if (w->pipelined) {
            wk_commit_async(w, 1);
            wk_collect(w, 1);
        } else {
            wk_flush_held(w);
        }
    }
    if (!wk_claimed(w) || w->nheld > 0 || wk_shared_ssi(w) != w->pos.lpi)
        return;
    char expect[96], to[96];
    bk_backup_phase_format(expect, sizeof(expect), "hold", w->epoch, -1);
    bk_backup_phase_format(to, sizeof(to), "held", w->epoch, w->pos.lpi);
    int done = 0;
    bk_err e;
    bk_err_clear(&e);
    /* with the cut, whether the snapshot process can give the external
     * state from the state (the application's view: a plug-in with
     * `republish`); then backupd reads nothing under ext: while we hold */
    char view[96];
    snprintf(view, sizeof(view), "%" PRId64 " %" PRId64 " %d", w->epoch, w->pos.lpi,
             w->o->app->view != NULL && getenv("BR2K_TEST_NO_VIEW") == NULL);
    if (bk_fenced_backup_step(w->rm, w->o->service, w->epoch, expect, to, -1,
                              "backup-view", view, &done, &e) != BK_OK) {
        BK_WARN("backup: cannot announce the cut: %s", e.msg);
        return;
    }
    if (done) {
        w->bp.cut = w->pos.lpi;
        snprintf(w->bp.phase, sizeof(w->bp.phase), "held");
    }
    wk_backup_poll(w, 1);
}

/* Leader, phase `snapshot` at C = LPI: fork the snapshot process (it has
 * the state at C, copy-on-write) and resume at once. */
void wk_leader_snapshot(worker *w) {
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
