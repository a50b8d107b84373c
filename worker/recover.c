/* recover.c - get-the-latest-state for the worker (restore.c reads and
 * checks the backups): at start-up (no local state, an in-flight mark, a
 * damaged state, records deleted after LPI) and when a read finds the
 * records after LPI gone; then the progress of joining. */
#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "backup/backuplog.h"
#include "base/clock.h"
#include "base/log.h"
#include "base/sig.h"
#include "redis/keys.h"
#include "restore.h"
#include "worker_int.h"

/* ---- get-the-latest-state (restore.h) ---- */

/* ms since this process started (/proc/self/stat's start time against
 * CLOCK_BOOTTIME), -1 when unknown: the "start" of the restore stages. */
static double process_age_ms(void) {
    FILE *f = fopen("/proc/self/stat", "r");
    if (f == NULL)
        return -1;
    char buf[1024];
    size_t n = fread(buf, 1, sizeof(buf) - 1, f);
    fclose(f);
    buf[n] = '\0';
    char *p = strrchr(buf, ')'); /* the command may hold spaces */
    unsigned long long start = 0;
    /* after ") ": state is field 3, starttime field 22 */
    if (p == NULL || sscanf(p + 2,
                            "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %*u %*u %*d %*d "
                            "%*d %*d %*d %*d %llu",
                            &start) != 1)
        return -1;
    long hz = sysconf(_SC_CLK_TCK);
    struct timespec ts;
    if (hz <= 0 || clock_gettime(CLOCK_BOOTTIME, &ts) != 0)
        return -1;
    return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec / 1e6 -
           (double)start * 1e3 / (double)hz;
}

int wk_recovery_on(const worker *w) {
    return w->o->eth_rpc != NULL && w->o->eth_rpc[0] != '\0' && w->o->registry != NULL &&
           w->o->registry[0] != '\0';
}

int wk_state_set_aside(worker *w, char *aside, size_t size, int64_t *app_lpi, bk_err *e) {
    const bk_worker_opts *o = w->o;
    char appdir[4096];
    snprintf(appdir, sizeof(appdir), "%s/app", o->state_dir);
    snprintf(aside, size, "%s.damaged-%" PRId64, appdir, bk_wall_ms());
    if (rename(appdir, aside) != 0) {
        bk_err_set(e, BK_E_IO, "cannot move the damaged state '%s' aside: %s", appdir,
                   strerror(errno));
        return BK_EXIT_ERROR;
    }
    w->app = NULL;
    if (o->app->open(appdir, &w->app, app_lpi, e) != BK_OK) {
        bk_err_prefix(e, "cannot open application '%s'", o->app->name);
        return BK_EXIT_ERROR;
    }
    return BK_EXIT_OK;
}

/* The position at `lpi` with no mark, durable; no held results (those of
 * records before a restored cut, or of a state thrown away, are not
 * ours); the LPI mirror written again. */
static int reset_position(worker *w, int64_t lpi, const char *record_digest, bk_err *e) {
    w->pos = (bk_pos){lpi, "", -1, -1};
    snprintf(w->pos.digest, sizeof(w->pos.digest), "%s", record_digest);
    if (w->pos_fd >= 0)
        close(w->pos_fd);
    w->pos_fd = -1;
    if (bk_pos_write(w->pos_path, &w->pos, e) != BK_OK)
        return BK_EXIT_ERROR;
    wk_held_drop_upto(w, INT64_MAX);
    if (w->hf.fd >= 0)
        close(w->hf.fd);
    w->hf.fd = -1;
    w->hf.seq = -1;
    w->held_hi = -1;
    if (unlink(w->held_path) != 0 && errno != ENOENT)
        BK_WARN("cannot remove '%s': %s", w->held_path, strerror(errno));
    w->mirrored = -2;
    return BK_EXIT_OK;
}

/* No backup yet and a local state that is not trusted (an in-flight mark,
 * a damaged state, records gone after LPI). A brand-new node replays the
 * log from offset 0, and so may this one while the log still holds every
 * record from there (I1: no gap) and is still the log this node was
 * reading (the record at the LPI of worker.pos has its digest): the state
 * is set aside and rebuilt from an empty one (LPI -1; SSV stays, there is
 * no backup to raise it to). Otherwise one clear error, exit 3. On entry
 * *e says that the registry holds no backup; `app_empty`: the state was set
 * aside already (open_state) and the open one is empty. */
static int rebuild_empty(worker *w, int app_empty, bk_err *e) {
    const bk_worker_opts *o = w->o;
    char nobackup[sizeof(e->msg)];
    snprintf(nobackup, sizeof(nobackup), "%s", e->msg);
    bk_err_clear(e);
    int64_t first = 0, end = 0;
    if (wk_log_bounds(w, &first, &end, e) != BK_OK)
        return BK_EXIT_ERROR;
    if (first != 0)
        return wk_integrity(
            e,
            "get-the-latest-state failed (%s): %s, and log '%s' starts at "
            "offset %" PRId64 ", not 0: the state can be neither restored "
            "nor rebuilt by replaying the log (I1)",
            w->recover_why, nobackup, w->topic, first);
    bk_pos was;
    int exists = 0;
    if (bk_pos_read(w->pos_path, &was, &exists, e) != BK_OK)
        return BK_EXIT_INTEGRITY;
    if (exists && was.lpi >= 0) { /* not a foreign log (I1) */
        bk_pos keep = w->pos;
        w->pos = was;
        int rc = wk_check_log(w, e);
        w->pos = keep;
        if (rc != BK_EXIT_OK) {
            bk_err_prefix(e,
                          "get-the-latest-state failed (%s): %s, and the log cannot be "
                          "replayed from offset 0",
                          w->recover_why, nobackup);
            return rc;
        }
        if (bk_sig_stop) { /* not checked: keep the state (and its mark) as it is */
            bk_err_set(e, BK_E_STATE, "asked to stop before rebuilding the state");
            return BK_EXIT_ERROR;
        }
    }
    char aside[4200] = "";
    if (!app_empty) {
        if (w->app != NULL && o->app->close != NULL)
            o->app->close(w->app);
        int64_t app_lpi = -1;
        int rc = wk_state_set_aside(w, aside, sizeof(aside), &app_lpi, e);
        if (rc != BK_EXIT_OK)
            return rc;
        if (app_lpi != -1)
            return wk_integrity(e, "application '%s' opened a new state at LPI %" PRId64,
                                o->app->name, app_lpi);
    }
    int rc = reset_position(w, -1, "", e);
    if (rc != BK_EXIT_OK)
        return rc;
    pthread_mutex_lock(&w->s.mu);
    w->s.lpi = -1;
    pthread_mutex_unlock(&w->s.mu);
    BK_WARN("get-the-latest-state: no backup yet and log '%s' still holds every record "
            "from offset 0: rebuilding from an empty state%s%s%s and replaying the log "
            "from offset 0",
            w->topic, aside[0] ? " (the old one kept in '" : "", aside,
            aside[0] ? "')" : "");
    w->recover_why[0] = '\0';
    return BK_EXIT_OK;
}

/* Restore the latest usable backup into the open application and put the
 * position at its cut (the caller seeks the log). `fresh`: a new node, for
 * which "no backup yet" means replaying the log from offset 0. */
int wk_recover(worker *w, int fresh, bk_err *e) {
    const bk_worker_opts *o = w->o;
    bk_eth_key key;
    if (bk_service_key_load(o->service_key_file, &key, e) != BK_OK) {
        bk_err_prefix(e, "get-the-latest-state needs the service key");
        return BK_EXIT_CONFIG;
    }
    int app_empty = w->state_aside; /* only until it is restored or rebuilt */
    w->state_aside = 0;
    double age = process_age_ms();
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
    if (rc != BK_OK && e->code == BK_E_NOTFOUND)
        return rebuild_empty(w, app_empty, e);
    if (rc != BK_OK) {
        bk_err_prefix(e, "get-the-latest-state failed (%s)", w->recover_why);
        return BK_EXIT_INTEGRITY;
    }
    double tp = bk_mono_msf();
    rc = reset_position(w, out.cut, out.record_digest, e);
    if (rc != BK_EXIT_OK)
        return rc;
    if (wk_claim_floor(w, out.epoch, e) != BK_OK)
        return BK_EXIT_ERROR;
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
    const bk_restore_stats *st = &out.stats;
    BK_INFO("restore stages: start=%.0fms log=%.0fms fetch=%.0fms verify=%.0fms "
            "decrypt=%.0fms decompress=%.0fms pass=%.0fms restore=%.0fms check=%.0fms "
            "position=%.0fms total=%" PRId64 "ms sealed=%" PRIu64 " plain=%" PRIu64,
            age, st->log_ms, st->fetch_ms, st->verify_ms, st->decrypt_ms,
            st->decompress_ms, st->pass_ms, st->restore_ms, st->check_ms,
            bk_mono_msf() - tp, bk_mono_ms() - t0, st->sealed, st->plain);
    w->recover_why[0] = '\0';
    return BK_EXIT_OK;
}

/* While joining: progress on a terminal and in the metrics; done once the
 * worker has caught up with SSI. */
void wk_join_progress(worker *w, int64_t ssi) {
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

/* A read of the log failed (w->q_rc set, *e why). When the records after
 * LPI are gone (I1) and this worker is a follower that can restore, it
 * restores the latest backup in place and reads on from its cut: never
 * skipping them. Returns BK_EXIT_OK to go on, or the exit code. */
/* A read that fails at the same offset as the one before the last recovery
 * in place means that recovery made no progress (the log stays broken after
 * the backup's cut). The offset, not the LPI: the read may fail while
 * records before it still wait in the queue, so the LPI at the failure
 * depends on timing. The next recovery waits, from RF_BACKOFF_MIN_MS doubling
 * to RF_BACKOFF_MAX_MS, so that it costs a restore a minute, not several
 * a second. */
#define RF_BACKOFF_MIN_MS 1000
#define RF_BACKOFF_MAX_MS 60000

/* Wait ms, or less when asked to stop; 0 when the wait ran out. */
static int wait_or_stop(int64_t ms) {
    int64_t end = bk_mono_ms() + ms;
    while (!bk_sig_stop && bk_mono_ms() < end)
        bk_sleep_ms(end - bk_mono_ms() < 100 ? end - bk_mono_ms() : 100);
    return bk_sig_stop;
}

int wk_read_failed(worker *w, bk_err *e) {
    if (w->q_rc != BK_EXIT_INTEGRITY || e->code != BK_E_RLOG_RANGE ||
        !wk_recovery_on(w) || w->role == R_LEADER)
        return w->q_rc;
    if (w->rnext == w->rf_fail_at) {
        w->rf_backoff_ms = w->rf_backoff_ms ? w->rf_backoff_ms * 2 : RF_BACKOFF_MIN_MS;
        if (w->rf_backoff_ms > RF_BACKOFF_MAX_MS)
            w->rf_backoff_ms = RF_BACKOFF_MAX_MS;
        BK_WARN(
            "get-the-latest-state made no progress: the log fails again at LPI %" PRId64
            ", reading record %" PRId64 " (%s); waiting %" PRId64
            " ms before the next try",
            w->pos.lpi, w->rnext, e->msg, w->rf_backoff_ms);
        if (wait_or_stop(w->rf_backoff_ms)) {
            wk_q_drop(w, w->nq);
            w->q_rc = BK_EXIT_OK;
            bk_err_clear(e);
            return BK_EXIT_OK; /* the main loop sees the stop */
        }
    } else {
        w->rf_backoff_ms = 0;
    }
    w->rf_fail_at = w->rnext;
    snprintf(w->recover_why, sizeof(w->recover_why), "%s", e->msg);
    BK_WARN("get-the-latest-state: %s", w->recover_why);
    wk_q_drop(w, w->nq);
    w->q_rc = BK_EXIT_OK;
    bk_err_clear(e);
    int rc = wk_recover(w, 0, e);
    if (rc == BK_EXIT_OK && bk_rlog_seek(w->log, w->pos.lpi + 1, e) != BK_OK)
        rc = BK_EXIT_ERROR;
    if (rc != BK_EXIT_OK)
        return rc;
    w->rnext = w->pos.lpi + 1;
    wk_publish_take_window(w);
    return BK_EXIT_OK;
}
