/* claim.c - the leader's claim of its fencing token in the log (I9).
 *
 * With Redis replicas, a failover may promote a replica that missed the
 * last INCR of the epoch: the next take could hand out a token that a
 * leader already holds. The log cannot roll back (I1), so a new leader
 * anchors its token there: it appends an empty record with the header
 * br2k-claim "<id> <epoch>" and makes no fenced write (commit, SV/SSV,
 * backup phase, external effects) until it has applied the log up to its
 * claim. Every worker reads every claim in log order, deterministically:
 * a claim counts only when its epoch is above every epoch claimed before
 * it (max_claim, kept in <state>/worker.claim); a leader whose own claim
 * does not count steps down, and so does a leader that reads another
 * worker's claim of its epoch or a higher one. A take asks for an epoch
 * above max_claim (bk_lease_take_above), so the next token is new. Two
 * workers with the same epoch number: the log orders their claims, the
 * later one does not count, and only the first one's holder writes with
 * that token (until it reads the later claim, then it steps down too).
 *
 * On one Redis server (no replicas) the epoch cannot roll back: no claim is
 * appended and a new leader writes at once. */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "base/log.h"
#include "worker_int.h"

/* worker.claim: "<max_claim>\n", written and synced before LPI covers the
 * claim that raised it. */
static int store(worker *w, bk_err *e) {
    char tmp[4200], buf[32];
    snprintf(tmp, sizeof(tmp), "%s.tmp", w->claim_path);
    int n = snprintf(buf, sizeof(buf), "%" PRId64 "\n", w->max_claim);
    int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    if (fd < 0)
        return bk_err_set(e, BK_E_IO, "cannot write '%s': %s", tmp, strerror(errno));
    int ok = write(fd, buf, (size_t)n) == n && fsync(fd) == 0;
    close(fd);
    if (!ok || rename(tmp, w->claim_path) != 0)
        return bk_err_set(e, BK_E_IO, "cannot write '%s': %s", w->claim_path,
                          strerror(errno));
    return BK_OK;
}

int wk_claim_init(worker *w, bk_err *e) {
    /* BR2K_TEST_NO_CLAIMS=1: tests only, the chaos test's proof that it
     * can fail (tests/chaos/selfcheck_i9.sh) */
    const char *off = getenv("BR2K_TEST_NO_CLAIMS");
    w->claim_on =
        bk_redis_wait_needed(w->rm) > 0 && !(off != NULL && strcmp(off, "1") == 0);
    if (!w->claim_on && off != NULL && strcmp(off, "1") == 0)
        BK_WARN("BR2K_TEST_NO_CLAIMS: leaders do not claim their token (I9 off)");
    w->claim_off = -1;
    w->claimed = 0;
    w->max_claim = 0;
    if ((size_t)snprintf(w->claim_path, sizeof(w->claim_path), "%s/worker.claim",
                         w->o->state_dir) >= sizeof(w->claim_path))
        return bk_err_set(e, BK_E_INVAL, "state directory '%s' is too long",
                          w->o->state_dir);
    FILE *f = fopen(w->claim_path, "r");
    if (f != NULL) {
        long long v = 0;
        int got = fscanf(f, "%lld", &v);
        fclose(f);
        if (got != 1 || v < 0)
            return bk_err_set(e, BK_E_STATE, "'%s' does not hold an epoch",
                              w->claim_path);
        w->max_claim = v;
    }
    pthread_mutex_lock(&w->s.mu);
    w->s.take_epoch_min = w->max_claim;
    pthread_mutex_unlock(&w->s.mu);
    return BK_OK;
}

/* After a restore: the claims before the backup's cut are not in the log
 * this worker will read, but none counted above the epoch the backup ran
 * under (the cut's leader held the last counting claim), so that epoch is
 * the floor (a wiped worker would otherwise start from 0 and could take a
 * token a failover handed out again). */
int wk_claim_floor(worker *w, int64_t epoch, bk_err *e) {
    if (epoch <= w->max_claim)
        return BK_OK;
    w->max_claim = epoch;
    pthread_mutex_lock(&w->s.mu);
    if (w->s.take_epoch_min < epoch)
        w->s.take_epoch_min = epoch;
    pthread_mutex_unlock(&w->s.mu);
    return store(w, e);
}

/* Give the lease up: step down and take again above max_claim. */
static void give_up(worker *w, const char *why) {
    int64_t ep = w->epoch;
    wk_step_down(w, why);
    bk_lease_release(w->rm, w->o->service, w->o->id, ep, NULL);
}

void wk_claim_append(worker *w) {
    w->claim_off = -1;
    w->claimed = !w->claim_on;
    if (!w->claim_on)
        return;
    char v[BK_ID_MAX + 32];
    int n = snprintf(v, sizeof(v), "%s %" PRId64, w->o->id, w->epoch);
    bk_rlog_header h = {BK_RLOG_H_CLAIM, v, (size_t)n};
    bk_err e;
    bk_err_clear(&e);
    int64_t off = -1;
    if (bk_rlog_append_sync(w->log, "", 0, "", 0, &h, 1, &off, &e) != BK_OK) {
        char why[sizeof(e.msg) + 64];
        snprintf(why, sizeof(why), "cannot append the claim of the token: %s", e.msg);
        give_up(w, why);
        return;
    }
    w->claim_off = off;
    BK_INFO("claimed epoch %" PRId64 " at log offset %" PRId64
            "; no fenced write until it is read back (I9)",
            w->epoch, off);
}

/* A new leader whose claim counts, before its first fenced write: did a
 * Redis failover lose writes of committed records? A worker that found
 * SSI lower than it had seen put it back and marked ext-lost
 * (bk_ssi_restore); this leader does the same with the SSI it saw. The
 * results of those records are gone with the primary, and with them the
 * external effects they drove (a commit writes the external effects, then
 * raises SSI, so the promoted replica lacks the effects of every record
 * above the SSI it had): running `external` again is impossible. The
 * state has them: the application republishes its whole external view
 * from its state (`republish`, bk_ext_replace: fenced with our token,
 * atomic, ext:applied = its LPI, ext-lost deleted), so the view is whole
 * again and the commits of the records after it go on once per offset.
 * BK_ERR with why[]: give the lease up (the next leader tries again). */
static int ext_repair(worker *w, char *why, size_t size) {
    const br2k_app_ops *ops = w->o->app;
    bk_err e;
    bk_err_clear(&e);
    int64_t seen = wk_shared_ssi(w), ssi = -1, lost = -2;
    if (bk_ext_lost_check(w->rm, w->o->service, seen, &ssi, &lost, &e) != BK_OK) {
        snprintf(why, size, "cannot check what Redis lost: %.200s", e.msg);
        return BK_ERR;
    }
    wk_raise_ssi(w, ssi);
    /* ext-lost stays set when the view cannot be republished: said once
     * per leader term, not at every check (wk_claim_check_lost) */
    if (lost == -2 || (ops->external == NULL && ops->external_many == NULL) ||
        w->no_republish_epoch == w->epoch)
        return BK_OK;
    /* BR2K_TEST_NO_REPUBLISH=1: tests only, the chaos test's proof that its
     * check of the external index fails without the repair */
    const char *off = getenv("BR2K_TEST_NO_REPUBLISH");
    if (off != NULL && strcmp(off, "1") == 0) {
        w->no_republish_epoch = w->epoch;
        BK_WARN("BR2K_TEST_NO_REPUBLISH: the external view is not republished after "
                "Redis lost writes after SSI %" PRId64,
                lost);
        return BK_OK;
    }
    /* no republish: a plug-in without it (ABI 1, or NULL), or an
     * application over the protocol whose Open did not offer it */
    int rc = BK_ERR;
    if (ops->republish != NULL) {
        BK_INFO("a Redis failover lost writes after SSI %" PRId64
                " (their external effects too): the application republishes its "
                "external view from its state (I9)",
                lost);
        rc = ops->republish(w->app, w->rm, w->o->service, w->epoch, &e);
    }
    if (ops->republish == NULL || (rc != BK_OK && e.code == BK_E_UNSUPPORTED)) {
        w->no_republish_epoch = w->epoch;
        BK_WARN("a Redis failover lost writes after SSI %" PRId64
                ": the external effects of those records are lost too, and the "
                "application '%s' cannot republish its external view (no republish)",
                lost, ops->name);
        return BK_OK;
    }
    if (rc != BK_OK) {
        snprintf(why, size, "cannot republish the external view: %.200s", e.msg);
        return BK_ERR;
    }
    int64_t at = -1;
    bk_err_clear(&e);
    if (bk_ext_applied_get(w->rm, w->o->service, &at, &e) != BK_OK)
        BK_WARN("%s", e.msg);
    BK_INFO("external view republished at offset %" PRId64 " (epoch %" PRId64 ", I9)", at,
            w->epoch);
    return BK_OK;
}

/* A leader that keeps its token through a Redis failover: Sentinel
 * promoted a replica that had its epoch and lease but missed later
 * commits (their SSI, results and external writes). No claim comes then
 * (no new leader); ext-lost is marked by the first SSI raise of our
 * commits on that server (bk_fenced_ssi_commit) or by a worker that puts
 * SSI back (bk_ssi_restore), and the leader looks for it with each SSI
 * refresh: the same repair as at a claim. A failed repair (the new
 * primary not writable yet: min-replicas-to-write) is tried again at the
 * next refresh. */
void wk_claim_check_lost(worker *w) {
    if (!w->claim_on || !wk_claimed(w))
        return;
    char why[256];
    if (ext_repair(w, why, sizeof(why)) != BK_OK)
        BK_WARN("leader, epoch %" PRId64 ": %s; trying again", w->epoch, why);
}

int wk_claim_seen(worker *w, const bk_rlog_rec *r, bk_err *e) {
    const void *v = NULL;
    size_t len = 0;
    if (bk_rlog_rec_header(r, BK_RLOG_H_CLAIM, &v, &len, NULL) != BK_OK)
        return BK_OK;
    char buf[BK_ID_MAX + 32], id[BK_ID_MAX + 1];
    long long ep = 0;
    if (len == 0 || len >= sizeof(buf))
        len = 0;
    memcpy(buf, v, len);
    buf[len] = '\0';
    char fmt[32];
    snprintf(fmt, sizeof(fmt), "%%%ds %%lld", BK_ID_MAX);
    if (len == 0 || sscanf(buf, fmt, id, &ep) != 2 || ep <= 0) {
        BK_WARN("record %" PRId64
                ": a malformed claim '%s' (ignored, like every replica)",
                r->offset, buf);
        return BK_OK;
    }
    int counts = ep > w->max_claim;
    int64_t before = w->max_claim;
    if (counts) {
        w->max_claim = ep;
        if (store(w, e) != BK_OK)
            return BK_ERR;
        pthread_mutex_lock(&w->s.mu);
        w->s.take_epoch_min = w->max_claim;
        pthread_mutex_unlock(&w->s.mu);
    }
    if (w->role != R_LEADER)
        return BK_OK;
    int own = strcmp(id, w->o->id) == 0 && ep == w->epoch;
    char why[256];
    if (own && r->offset == w->claim_off) {
        if (counts && ext_repair(w, why, sizeof(why)) != BK_OK) {
            give_up(w, why);
        } else if (counts) {
            w->claimed = 1;
            BK_INFO("claim of epoch %lld read back at offset %" PRId64 ": leading (I9)",
                    ep, r->offset);
        } else {
            snprintf(why, sizeof(why),
                     "our claim of epoch %lld at offset %" PRId64
                     " does not count: epoch %" PRId64
                     " was claimed before it (a Redis failover lost the epoch, I9)",
                     ep, r->offset, before);
            give_up(w, why);
        }
    } else if (!own && ep >= w->epoch) {
        snprintf(why, sizeof(why),
                 "'%s' claimed epoch %lld at offset %" PRId64 " (ours is %" PRId64
                 ", I9)",
                 id, ep, r->offset, w->epoch);
        give_up(w, why);
    }
    return BK_OK;
}
