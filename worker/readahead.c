/* readahead.c - the records read from the log and not applied yet
 * (w->q, at most batch_max): never a gap (I1). */
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "base/clock.h"
#include "base/log.h"
#include "worker_int.h"

/* ---- the read-ahead queue w->q ---- */

/* Read what the log has into w->q (up to batch_max records), waiting up to
 * first_ms for the first one when the queue is empty. A gap or an error
 * sets w->q_rc (never skipped, I1) and returns BK_ERR. */
int wk_q_fill(worker *w, int first_ms, bk_err *e) {
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
            w->q_rc = wk_integrity(e,
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
size_t wk_q_ready(worker *w, int64_t limit) {
    size_t n = 0;
    while (n < w->nq && w->q[n]->offset <= limit)
        n++;
    return n;
}

/* Free the first k records of w->q. */
void wk_q_drop(worker *w, size_t k) {
    for (size_t i = 0; i < k; i++)
        bk_rlog_rec_free(w->q[i]);
    memmove(w->q, w->q + k, (w->nq - k) * sizeof(*w->q));
    w->nq -= k;
}
