/* history.c - the history of service actions (backupd.h step 4b): the
 * archive of the records a backup is about to let the log delete, its
 * check on chain before anything is deleted, and --archive-keep. */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "backup/archive.h"
#include "backup/backuplog.h"
#include "backupd_int.h"
#include "base/clock.h"
#include "base/hex.h"
#include "base/log.h"
#include "base/sig.h"
#include "chain/registry.h"
#include "redis/regchan.h"

#define HIST_KEY "backup-history" /* "<version> <state digest>" of the last one */

/* Add the inclusive gap [a, b] and say so (never hidden). */
static void gap(const bd_run *u, json_t *gaps, int64_t a, int64_t b) {
    BK_WARN("backup version %" PRId64 ": records %" PRId64 "..%" PRId64
            " were lost from the log before they could be archived (a gap in the "
            "history, recorded in the archive)",
            u->version, a, b);
    json_array_append_new(gaps, json_pack("[II]", (json_int_t)a, (json_int_t)b));
}

/* One record into b, with every header it has, in the log's order. */
static int add_record(bk_archive_buf *b, const bk_rlog_rec *rec, bk_err *e) {
    size_t nh = 0;
    bk_rlog_header lh;
    while (bk_rlog_rec_header_at(rec, nh, &lh))
        nh++;
    bk_archive_hdr *h = calloc(nh ? nh : 1, sizeof(*h));
    if (h == NULL)
        return bk_err_set(e, BK_E_NOMEM, "out of memory");
    for (size_t i = 0; i < nh && bk_rlog_rec_header_at(rec, i, &lh); i++)
        h[i] = (bk_archive_hdr){lh.name, lh.value, lh.len};
    int rc = bk_archive_add(b, rec->offset, rec->key, rec->key_len, h, nh, rec->value,
                            rec->len, rec->ts_ms, e);
    free(h);
    return rc;
}

/* The records prev_cut + 1 .. cut into b through log; gaps into gaps. */
static int read_log(bd *d, bk_rlog *log, const bd_run *u, bk_archive_buf *b, json_t *gaps,
                    bk_err *e) {
    int64_t next = u->prev_cut + 1;
    if (next > u->cut)
        return BK_OK;
    if (bk_rlog_seek(log, next, e) != BK_OK)
        return bk_err_prefix(e, "cannot read the log at %" PRId64, next);
    int64_t deadline = bk_mono_ms() + d->o->snapshot_timeout_ms;
    while (next <= u->cut) {
        bk_rlog_rec *rec = NULL;
        int rc = bk_rlog_poll(log, 500, &rec, e);
        if (rc < 0 && e->code == BK_E_RLOG_RANGE) {
            int64_t first = 0, end = 0;
            if (bk_rlog_offsets(log, &first, &end, e) != BK_OK)
                return bk_err_prefix(e, "cannot read the log's offsets");
            if (first <= next)
                return bk_err_set(e, BK_E_STATE,
                                  "the log says record %" PRId64
                                  " is out of range but its first offset is %" PRId64,
                                  next, first);
            int64_t last = first - 1 < u->cut ? first - 1 : u->cut;
            gap(u, gaps, next, last);
            next = last + 1;
            if (next <= u->cut && bk_rlog_seek(log, next, e) != BK_OK)
                return BK_ERR;
            continue;
        }
        if (rc < 0)
            return bk_err_prefix(e, "cannot read the log at %" PRId64, next);
        if (rc == 0) {
            if (bk_mono_ms() > deadline || bk_sig_stop)
                return bk_err_set(e, BK_E_TIMEOUT,
                                  "the log gave no record %" PRId64 " within %d ms", next,
                                  d->o->snapshot_timeout_ms);
            continue;
        }
        if (rec->offset < next) { /* already read */
            bk_rlog_rec_free(rec);
            continue;
        }
        if (rec->offset > next) /* the log skipped some: lost */
            gap(u, gaps, next, rec->offset - 1 < u->cut ? rec->offset - 1 : u->cut);
        if (rec->offset > u->cut) {
            bk_rlog_rec_free(rec);
            break;
        }
        rc = add_record(b, rec, e);
        next = rec->offset + 1;
        bk_rlog_rec_free(rec);
        if (rc != BK_OK)
            return BK_ERR;
    }
    return BK_OK;
}

/* The same through a reader of its own, closed afterwards: the daemon's
 * handle does not keep fetching the log between backups. */
static int read_records(bd *d, const bd_run *u, bk_archive_buf *b, json_t *gaps,
                        bk_err *e) {
    bk_rlog_settings ls = {d->o->kafka, d->topic, d->o->kafka_props, 10000};
    bk_rlog *log = bk_rlog_open(&ls, e);
    if (log == NULL)
        return BK_ERR;
    int rc = read_log(d, log, u, b, gaps, e);
    bk_rlog_close(log);
    return rc;
}

/* The state digest the previous version recorded (Redis HIST_KEY), or
 * NULL when Redis does not know it (then the archive says null). */
static json_t *start_digest(bd *d, const bd_run *u) {
    char k[BK_KEY_MAX];
    bk_err e;
    bk_err_clear(&e);
    if (bk_key_backup_aux(k, sizeof(k), d->o->service, HIST_KEY, &e) != BK_OK)
        return json_null();
    redisReply *rep = bk_redis_command(d->r, &e, "GET %s", k);
    json_t *j = NULL;
    long long v = 0;
    char dg[65];
    if (rep != NULL && rep->type == REDIS_REPLY_STRING &&
        sscanf(rep->str, "%lld %64s", &v, dg) == 2 && v == u->version - 1 &&
        strlen(dg) == 64)
        j = json_string(dg);
    if (rep != NULL)
        freeReplyObject(rep);
    if (j == NULL && u->version > 2)
        BK_WARN("backup version %" PRId64 ": the state digest of version %" PRId64
                " is not in Redis; the archive names its previous archive only",
                u->version, u->version - 1);
    return j ? j : json_null();
}

int bd_archive_build(bd *d, bd_run *u, bk_err *e) {
    int64_t t0 = bk_mono_ms();
    char prev[65] = BK_ARCHIVE_GENESIS;
    if (u->version > 2) {
        uint8_t dg[32];
        uint64_t pruned = 0;
        if (bk_reg_get_archive(d->rpc, d->reg, (uint64_t)(u->version - 1), dg, &pruned,
                               e) != BK_OK)
            return bk_err_prefix(e, "cannot read the archive digest of version %" PRId64,
                                 u->version - 1);
        bk_hex_encode(dg, 32, 0, prev);
    }
    bk_archive_buf b;
    memset(&b, 0, sizeof(b));
    json_t *gaps = json_array();
    if (read_records(d, u, &b, gaps, e) != BK_OK) {
        bk_archive_buf_free(&b);
        json_decref(gaps);
        return bk_err_prefix(e, "cannot archive the records %" PRId64 "..%" PRId64,
                             u->prev_cut + 1, u->cut);
    }
    int64_t count = b.count;
    json_t *hdr = json_pack(
        "{ss ss sI sI sI sI sO sI ss so sO sI}", "format", BK_ARCHIVE_FORMAT, "service",
        d->o->service, "version", (json_int_t)u->version, "from_offset",
        (json_int_t)(u->prev_cut + 1), "to_offset", (json_int_t)u->cut, "record_count",
        (json_int_t)count, "gaps", gaps, "previous_version", (json_int_t)(u->version - 1),
        "previous_archive", prev, "start_state_digest", start_digest(d, u),
        "end_state_digest", json_object_get(u->report, "state_digest"),
        "log_first_offset", (json_int_t)u->first_offset);
    char *plain = NULL, *wrapped = NULL;
    size_t len = 0, slen = 0;
    char name[BK_STORAGE_NAME_MAX + 1], sha[65], when[32];
    int rc = hdr ? bk_archive_finish(&b, hdr, &plain, &len, e)
                 : bk_err_set(e, BK_E_NOMEM, "out of memory");
    json_decref(hdr);
    bk_archive_buf_free(&b);
    if (rc == BK_OK)
        rc = bk_blog_put_sealed(d->st, u->version, "archive", plain, len, d->pub, name,
                                sha, &slen, &wrapped, e);
    free(plain);
    if (rc == BK_OK)
        rc = bd_read_back(d, "history archive", name, sha, (int64_t)slen, e);
    if (rc != BK_OK) {
        free(wrapped);
        json_decref(gaps);
        return bk_err_prefix(e, "cannot store the history archive of version %" PRId64,
                             u->version);
    }
    bk_blog_time(bk_wall_ms(), when);
    json_decref(u->archive);
    u->archive = json_pack(
        "{ss ss sI sI ss ss ss ss ss sI sI sI sO ss}", "object", name, "sha256", sha,
        "size", (json_int_t)slen, "plain_size", (json_int_t)len, "created", when,
        "data_key", wrapped, "type", "br2k-history-archive", "owner", "br2k-backupd",
        "form", "br2k-seal v1 (zlib, AES-256-GCM)", "from_offset",
        (json_int_t)(u->prev_cut + 1), "to_offset", (json_int_t)u->cut, "record_count",
        (json_int_t)count, "gaps", gaps, "previous_archive", prev);
    free(wrapped);
    json_decref(gaps);
    if (u->archive == NULL)
        return bk_err_set(e, BK_E_NOMEM, "out of memory");
    BK_INFO("backup version %" PRId64 ": archived %" PRId64 " records (%" PRId64
            "..%" PRId64 ") as '%s', %zu bytes sealed from %zu, in %" PRId64 " ms",
            u->version, count, u->prev_cut + 1, u->cut, name, slen, len,
            bk_mono_ms() - t0);
    return BK_OK;
}

int bd_archive_on_chain(bd *d, const bd_run *u, bk_err *e) {
    const char *sha = json_string_value(json_object_get(u->archive, "sha256"));
    if (sha == NULL)
        return bk_err_set(e, BK_E_STATE,
                          "backup version %" PRId64 " has no history archive",
                          u->version);
    uint8_t dg[32];
    uint64_t pruned = 0;
    char got[65];
    if (bk_reg_get_archive(d->rpc, d->reg, (uint64_t)u->version, dg, &pruned, e) != BK_OK)
        return bk_err_prefix(e, "cannot read the archive digest of version %" PRId64,
                             u->version);
    bk_hex_encode(dg, 32, 0, got);
    if (strcmp(got, sha) != 0)
        return bk_err_set(e, BK_E_STATE,
                          "the chain holds archive digest %.16s... for version %" PRId64
                          ", not %.16s...",
                          got, u->version, sha);
    /* the next archive names this state digest */
    bd_history_note(d, u->version,
                    json_string_value(json_object_get(u->report, "state_digest")));
    bk_err_clear(e);
    return BK_OK;
}

void bd_history_note(bd *d, int64_t version, const char *sd) {
    char k[BK_KEY_MAX];
    bk_err e;
    bk_err_clear(&e);
    char val[96];
    snprintf(val, sizeof(val), "%lld %s", (long long)version, sd ? sd : "");
    if (sd != NULL && sd[0] != '\0' &&
        bk_key_backup_aux(k, sizeof(k), d->o->service, HIST_KEY, &e) == BK_OK) {
        redisReply *rep = bk_redis_command(d->r, &e, "SET %s %s", k, val);
        if (rep == NULL)
            BK_WARN("cannot record the state digest of version %" PRId64 ": %s", version,
                    e.msg);
        else
            freeReplyObject(rep);
    }
}

void bd_archive_prune(bd *d, int64_t latest, int64_t epoch) {
    if (d->o->archive_keep <= 0)
        return;
    int64_t through = latest - d->o->archive_keep;
    if (through < 2)
        return;
    bk_err e;
    bk_err_clear(&e);
    uint8_t dg[32];
    uint64_t pruned = 0;
    if (bk_reg_get_archive(d->rpc, d->reg, (uint64_t)latest, dg, &pruned, &e) != BK_OK) {
        BK_WARN("cannot read what archives were pruned: %s", e.msg);
        return;
    }
    if ((int64_t)pruned < through) { /* on chain first: the history says it */
        json_t *args = json_pack("{sI}", "through", (json_int_t)through), *reply = NULL;
        int rc = bk_regchan_call(d->r, d->o->service, "pruneArchives", args, epoch,
                                 d->o->log_timeout_ms, &reply, &e);
        json_decref(args);
        int ok = rc == BK_OK && json_is_true(json_object_get(reply, "ok"));
        if (rc == BK_OK && !ok)
            bk_err_set(&e, BK_E_REMOTE, "%s",
                       json_string_value(json_object_get(reply, "error")) ?: "?");
        json_decref(reply);
        if (!ok) {
            BK_WARN("pruneArchives through version %" PRId64
                    " not recorded on chain (%s): "
                    "no archive pruned",
                    through, e.msg);
            return;
        }
        BK_INFO("recorded on chain: the archives of versions up to %" PRId64
                " are pruned (--archive-keep %d)",
                through, d->o->archive_keep);
    }
    char **names = NULL;
    size_t n = 0;
    if (bk_storage_list(d->st, "v", &names, &n, &e) != BK_OK) {
        BK_WARN("cannot list the storage to prune archives: %s", e.msg);
        return;
    }
    for (size_t i = 0; i < n; i++) {
        long long v = 0;
        if (sscanf(names[i], "v%lld-", &v) != 1 ||
            strstr(names[i], "-archive-") == NULL || v > through)
            continue;
        if (bk_storage_delete(d->st, names[i], &e) != BK_OK)
            BK_WARN("cannot prune '%s': %s", names[i], e.msg);
        else
            BK_INFO("pruned the history archive '%s' (--archive-keep %d)", names[i],
                    d->o->archive_keep);
    }
    bk_storage_names_free(names, n);
}
