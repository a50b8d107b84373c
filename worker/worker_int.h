/* worker_int.h - the worker runtime's private parts, shared by its files
 * (the public interface is worker.h).
 *
 * Read in this order:
 *   worker.c     start-up (open_state), the main loop, threads, shutdown;
 *   logcheck.c   the log against the position at start-up (I1);
 *   readahead.c  the queue of records read from the log and not applied;
 *   batch.c      applying a batch (I6 mark, sync, position), the digest;
 *   commit.c     the leader's held results, their external effects and
 *                fenced commit, inline or on the commit thread;
 *   lease.c      the lease and watch threads, metrics, role changes, SSI;
 *   svu.c        the worker's side of state-version-up (hold, cut, fork
 *                of the snapshot: snapshot.c);
 *   recover.c    get-the-latest-state (restore.c reads the backups);
 *   pos.c        worker.pos and worker.held on disk. */
#ifndef BK_WORKER_INT_H
#define BK_WORKER_INT_H

#include <pthread.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "log/rlog.h"
#include "redis/keys.h"
#include "redis/redis.h"
#include "worker.h"

enum role { R_STARTING, R_FOLLOWER, R_LEADER, R_STOPPING, R_STOPPED, R_FAILED };

/* What the threads share, under mu; main waits on cv. */
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
    int64_t take_epoch_min; /* a take asks for an epoch above it (claim.c, I9) */
    /* metrics, written by main */
    int role;
    int64_t epoch, lpi, applied, rejected, changed_n, fenced, apply_ns, digest_lpi;
    char digest[65];
    /* joining (get-the-latest-state, then replay until SSI) */
    int joining;
    int64_t join_bytes, join_replayed, join_remaining, join_eta_s;
} shared;

/* A result of a record applied as leader, not committed yet. */
typedef struct held {
    int64_t offset;
    char *request_id; /* NULL: the result names no request */
    char *json;
    int ext_done;
    int named; /* 1: the result's "id" is request_id; 0: it is not (the
                  record's header named it, batch.c); -1: not known
                  (reloaded from worker.held): commit.c reads the result */
} held;

enum {
    C_OK,
    C_LOST,
    C_STOPPED,
    C_APP
}; /* outcome of a commit job (C_APP: the
    * application failed in its external effect) */

/* The job of the commit thread (commit.c). */
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
    int pos_fd;           /* worker.pos, open for overwrites (-1: not yet) */
    char held_path[4096]; /* worker.held (worker.h) */
    bk_held_file hf;      /* ... open for writing (hf.fd -1: not yet) */
    int64_t held_hi;      /* the highest offset of a held result in a frame */
    int crash_hook;       /* BR2K_TEST_CRASH_BEFORE_COMMIT=1 (tests only) */
    char app_why[sizeof(((bk_err *)0)->msg)]; /* why app_failed, when not the digest */
    int app_failed;              /* an apply or sync failed: the application crashed,
                                    hung or answered garbage (worker.c restarts) */
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
    /* state-version-up (svu.c: wk_backup_poll) */
    bk_backup_phase bp; /* the phase as last read */
    int64_t bp_read_ms, ssv_check_ms, ssv;
    pid_t snap_pid;               /* the snapshot child, 0: none */
    int64_t snap_epoch, snap_cut; /* the last snapshot forked */
    int64_t hold_since_ms;        /* leader: holding since (0: not holding) */
    /* get-the-latest-state */
    int gap;            /* check_log found records deleted after LPI */
    int64_t rf_fail_at; /* record whose read failed before the last recovery in place */
    int64_t rf_backoff_ms; /* the wait before the next one that makes no progress */
    char recover_why[512]; /* why the state must be restored ("": it need not) */
    int state_aside;       /* open_state set the damaged state aside: the open one is
                              empty until wk_recover restores or rebuilds it */
    int64_t join_t0_ms, join_from, join_progress_ms, join_bytes;
    int joining, join_tty;
    /* the claim of the token in the log (claim.c, I9) */
    int claim_on;               /* replicas: a new leader claims its token first */
    int claimed;                /* leader: its claim was read back and counts */
    int64_t claim_off;          /* leader: its claim's offset (-1: none) */
    int64_t max_claim;          /* the highest epoch claimed in the log (worker.claim) */
    int64_t no_republish_epoch; /* leader term that found ext-lost and could not
                                   republish (said once: claim.c) */
    char claim_path[4096];
} worker;

/* May the leader make fenced writes (its claim counts, I9)? */
static inline int wk_claimed(const worker *w) {
    return w->role == R_LEADER && w->claimed;
}

static inline void wake(shared *s) {
    s->changed = 1;
    pthread_cond_broadcast(&s->cv);
}

/* worker.c: e->msg from fmt, e->code BK_E_STATE; returns BK_EXIT_INTEGRITY. */
int wk_integrity(bk_err *e, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* lease.c: the lease and watch threads, roles, SSI */
void *wk_lease_main(void *arg);
void *wk_watch_main(void *arg);
void wk_write_metrics(worker *w, bk_redis *r, int64_t *prev_applied, int64_t *prev_ns,
                      int64_t *prev_ms);
void wk_set_role(worker *w, int role, const char *why);
void wk_step_down(worker *w, const char *why);
int64_t wk_shared_ssi(worker *w);
void wk_raise_ssi(worker *w, int64_t ssi);
int wk_refresh_ssi(worker *w);
void wk_check_role(worker *w);

/* commit.c: held results and commits */
void wk_publish_take_window(worker *w);
void wk_held_drop_upto(worker *w, int64_t ssi);
int wk_held_push(worker *w, int64_t offset, char *request_id, char *json, int named,
                 bk_err *e);
int wk_flush_held(worker *w);
void *wk_commit_main(void *arg);
void wk_collect(worker *w, int block);
void wk_commit_async(worker *w, int wait);
int wk_store_held(worker *w, int64_t upto, bk_err *e);
void wk_load_held(worker *w);
void wk_check_stall(worker *w, int64_t ssi);

/* claim.c: the claim of the token in the log (I9) */
int wk_claim_init(worker *w, bk_err *e);
int wk_claim_floor(worker *w, int64_t epoch, bk_err *e);
void wk_claim_append(worker *w);
int wk_claim_seen(worker *w, const bk_rlog_rec *r, bk_err *e);
void wk_claim_check_lost(worker *w);

/* batch.c: applying records */
int64_t wk_digest_gap_ms(const worker *w, int64_t floor_ms);
void wk_update_digest(worker *w, int force);
void wk_mirror_lpi(worker *w, int now);
int wk_process_batch(worker *w, bk_rlog_rec **recs, size_t n, bk_err *e);

/* readahead.c: the queue w->q */
int wk_q_fill(worker *w, int first_ms, bk_err *e);
size_t wk_q_ready(worker *w, int64_t limit);
void wk_q_drop(worker *w, size_t k);

/* svu.c: state-version-up */
int wk_phase_is(const worker *w, const char *p);
int wk_leader_holds(const worker *w);
void wk_backup_poll(worker *w, int force);
void wk_leader_hold(worker *w);
void wk_leader_snapshot(worker *w);

/* recover.c: get-the-latest-state */
int wk_recovery_on(const worker *w);
int wk_recover(worker *w, int fresh, bk_err *e);
/* Move the application's state aside to <state>/app.damaged-<ms> (its path
 * in aside[size]) and open an empty one (w->app was closed or never
 * opened): BK_EXIT_OK with *app_lpi, or an exit code with *e. */
int wk_state_set_aside(worker *w, char *aside, size_t size, int64_t *app_lpi, bk_err *e);
void wk_join_progress(worker *w, int64_t ssi);
int wk_read_failed(worker *w, bk_err *e);

/* logcheck.c: the log at start-up (I1) */
int wk_open_log(worker *w, bk_err *e);
int wk_log_bounds(worker *w, int64_t *first, int64_t *end, bk_err *e);
int wk_check_log(worker *w, bk_err *e);

#endif
