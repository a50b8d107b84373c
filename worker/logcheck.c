/* logcheck.c - the log at start-up (I1): is it still the one this
 * worker was reading (the record at LPI has the digest of worker.pos),
 * does it still hold LPI + 1; then the reader is at LPI + 1. */
#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include "base/clock.h"
#include "base/log.h"
#include "base/sig.h"
#include "log/kafka_conf.h"
#include "worker_int.h"

#define START_READ_MS 5000 /* read the record at LPI again after this */

/* Check that the log is the one we were reading and position the reader
 * at LPI + 1 (I1). */
int wk_open_log(worker *w, bk_err *e) {
    const bk_worker_opts *o = w->o;
    if (bk_kafka_topic_name(o->service, w->topic, sizeof(w->topic), e) != BK_OK)
        return BK_EXIT_CONFIG;
    bk_rlog_settings ls = {o->kafka, w->topic, o->kafka_props, 10000};
    w->log = bk_rlog_open(&ls, e);
    if (w->log == NULL)
        return BK_EXIT_CONFIG;
    if (bk_rlog_read_ahead(w->log, e) != BK_OK)
        return BK_EXIT_ERROR;
    return BK_EXIT_OK;
}

/* Read the offsets the log holds into *first, *end. A broker too busy to
 * answer in time is waited out (warned once a window), not a reason to
 * stop: the log is still there. Returns BK_OK, or BK_ERR with *e set. */
int wk_log_bounds(worker *w, int64_t *first, int64_t *end, bk_err *e) {
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
        return wk_integrity(
            e,
            "log '%s' ends at offset %" PRId64 " but LPI is %" PRId64
            ": it is not the log this worker was reading (topic recreated "
            "or broker lost its data)",
            w->topic, end - 1, lpi);
    if (first > lpi + 1) {
        w->gap = 1;
        return wk_integrity(
            e,
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
        if (wk_log_bounds(w, &first, &end, e) != BK_OK)
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
int wk_check_log(worker *w, bk_err *e) {
    int64_t first = 0, end = 0, lpi = w->pos.lpi;
    w->gap = 0;
    if (wk_log_bounds(w, &first, &end, e) != BK_OK)
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
        return wk_integrity(
            e,
            "record %" PRId64 " of log '%s' is not the record this worker "
            "applied at its LPI (digest %.12s..., expected %.12s...): the "
            "topic was recreated or the broker lost its data",
            off, w->topic, hex, w->pos.digest);
    BK_INFO("record %" PRId64 " matches the digest of the last applied record", lpi);
    return BK_EXIT_OK;
}
