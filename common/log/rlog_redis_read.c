/* rlog_redis_read.c - reading the Redis Streams log: XREAD into a buffer
 * of records, and adopting the foreign entries met on the way (so that
 * every reader sees the same record at the same offset; see
 * common/log/README.md). */
#include "log/rlog_redis_int.h"

/* ---- reading ---- */

static void pf_reset(rlog_redis *r);

int rr_seek(bk_rlog *l, int64_t offset, bk_err *e) {
    rlog_redis *r = R(l);
    rr_drop_buf(r);
    if (r->pf_on) {
        pthread_mutex_lock(&r->pf_mu);
        pf_reset(r);
        pthread_mutex_unlock(&r->pf_mu);
    }
    r->next = offset;
    r->seeked = 1;
    return rr_conn(r, e) != NULL ? BK_OK : BK_ERR;
}

static int parse_seq(const redisReply *id, int64_t *seq) {
    if (id->type != REDIS_REPLY_STRING || id->len < 3 || memcmp(id->str, "1-", 2) != 0)
        return BK_ERR;
    int64_t v = 0;
    for (size_t i = 2; i < id->len; i++) {
        if (id->str[i] < '0' || id->str[i] > '9' || v > INT64_MAX / 10 - 10)
            return BK_ERR;
        v = v * 10 + (id->str[i] - '0');
    }
    *seq = v;
    return BK_OK;
}

/* The fields of an entry are as the scripts write them: k, v, then h:<name>
 * or x:<name> pairs (ours() of the scripts). */
static int our_form(const redisReply *kv) {
    if (kv->type != REDIS_REPLY_ARRAY || kv->elements < 4 || kv->elements % 2 != 0)
        return 0;
    for (size_t i = 0; i < kv->elements; i++)
        if (kv->element[i]->type != REDIS_REPLY_STRING)
            return 0;
    const redisReply *k = kv->element[0], *v = kv->element[2];
    if (k->len != 1 || k->str[0] != 'k' || v->len != 1 || v->str[0] != 'v')
        return 0;
    for (size_t i = 4; i < kv->elements; i += 2)
        if (kv->element[i]->len < 2 || (memcmp(kv->element[i]->str, "h:", 2) != 0 &&
                                        memcmp(kv->element[i]->str, "x:", 2) != 0))
            return 0;
    return 1;
}

/* One stream entry [id, [f, v, ...]] of our form as a record (one
 * allocation); NULL when out of memory. */
static bk_rlog_rec *make_rec(const redisReply *ent, int64_t seq) {
    const redisReply *kv = ent->element[1];
    size_t nh = 0, bytes = 0;
    for (size_t i = 0; i < kv->elements; i += 2) {
        const redisReply *f = kv->element[i], *v = kv->element[i + 1];
        if (f->len > 2 && memcmp(f->str, "h:", 2) == 0)
            nh++;
        bytes += f->len + 1 + v->len + 1;
    }
    rrec *x = malloc(sizeof(*x) + nh * sizeof(bk_rlog_header) + bytes);
    if (x == NULL)
        return NULL;
    x->h = (bk_rlog_header *)(x + 1);
    x->nh = 0;
    char *p = (char *)(x->h + nh);
    bk_rlog_rec *pub = &x->base.pub;
    x->base.ops = &bk_rlog_redis_ops;
    pub->offset = seq;
    pub->key = "";
    pub->key_len = 0;
    pub->value = "";
    pub->len = 0;
    pub->ts_ms = -1;
    pub->priv_ = NULL;
    for (size_t i = 0; i < kv->elements; i += 2) {
        const redisReply *f = kv->element[i], *v = kv->element[i + 1];
        char *fv = p;
        memcpy(p, f->str, f->len);
        p[f->len] = '\0';
        p += f->len + 1;
        char *vv = p;
        memcpy(p, v->str, v->len);
        p[v->len] = '\0';
        p += v->len + 1;
        if (f->len == 1 && fv[0] == 'k') {
            pub->key = vv;
            pub->key_len = v->len;
        } else if (f->len == 1 && fv[0] == 'v') {
            pub->value = vv;
            pub->len = v->len;
        } else if (f->len > 2 && memcmp(fv, "h:", 2) == 0) {
            x->h[x->nh++] = (bk_rlog_header){fv + 2, vv, v->len};
        }
    }
    return pub;
}

static int get_counter(rlog_redis *r, int64_t *end, bk_err *e) {
    const char *argv[] = {"GET", r->counter};
    size_t lens[] = {3, strlen(r->counter)};
    redisReply *rep = rr_cmdv(r, e, 2, argv, lens);
    if (rep == NULL)
        return BK_ERR;
    *end = rep->type == REDIS_REPLY_STRING ? strtoll(rep->str, NULL, 10) : 0;
    freeReplyObject(rep);
    rr_note_end(r, *end);
    r->last_end_ms = bk_mono_ms();
    return BK_OK;
}

/* XREAD on connection c after `next` - 1 into out[] (READ_COUNT slots):
 * the records next, next + 1, ... that follow one another. Returns how
 * many, or BK_ERR; head[64] gets the id of the entry it stopped at when
 * that was the first one (not record `next`: a gap, or an entry that BR2K
 * did not append), else "". */
static int xread_run(rlog_redis *r, bk_redis *c, int64_t next, int block_ms,
                     bk_rlog_rec **out, char *head, bk_err *e) {
    char last[32], blk[16], cnt[16];
    head[0] = '\0';
    if (next == 0)
        snprintf(last, sizeof(last), "0-0");
    else
        snprintf(last, sizeof(last), "1-%" PRId64, next - 1);
    snprintf(cnt, sizeof(cnt), "%d", READ_COUNT);
    const char *argv[8];
    size_t lens[8];
    int n = 0;
    argv[n] = "XREAD", lens[n++] = 5;
    if (block_ms > 0) {
        snprintf(blk, sizeof(blk), "%d", block_ms);
        argv[n] = "BLOCK", lens[n++] = 5;
        argv[n] = blk, lens[n++] = strlen(blk);
    }
    argv[n] = "COUNT", lens[n++] = 5;
    argv[n] = cnt, lens[n++] = strlen(cnt);
    argv[n] = "STREAMS", lens[n++] = 7;
    argv[n] = r->stream, lens[n++] = strlen(r->stream);
    argv[n] = last, lens[n++] = strlen(last);
    redisReply *rep = bk_redis_commandv(c, e, n, argv, lens);
    if (rep == NULL)
        return bk_err_prefix(e, "log %s", r->where);
    const redisReply *ents = NULL;
    if (rep->type == REDIS_REPLY_ARRAY && rep->elements == 1 &&
        rep->element[0]->type == REDIS_REPLY_ARRAY && rep->element[0]->elements == 2 &&
        rep->element[0]->element[1]->type == REDIS_REPLY_ARRAY)
        ents = rep->element[0]->element[1];
    else if (rep->type != REDIS_REPLY_NIL) {
        freeReplyObject(rep);
        return bk_err_set(e, BK_E_PROTO, "log %s: unexpected XREAD reply", r->where);
    }
    size_t k = ents ? ents->elements : 0, got = 0;
    int rc = 0;
    int64_t want = next;
    for (size_t i = 0; i < k && i < READ_COUNT; i++) {
        const redisReply *ent = ents->element[i];
        int64_t seq = -1;
        if (ent->type != REDIS_REPLY_ARRAY || ent->elements != 2 ||
            parse_seq(ent->element[0], &seq) != BK_OK || seq != want ||
            !our_form(ent->element[1])) {
            /* a gap, or a foreign entry (not adopted yet): only the first
             * is looked into (poll); further on, the next fill starts there */
            if (i == 0) {
                const redisReply *id =
                    ent->type == REDIS_REPLY_ARRAY && ent->elements >= 1 ? ent->element[0]
                                                                         : NULL;
                snprintf(head, 64, "%.*s",
                         id && id->type == REDIS_REPLY_STRING ? (int)id->len : 1,
                         id && id->type == REDIS_REPLY_STRING ? id->str : "?");
            }
            break;
        }
        bk_rlog_rec *x = make_rec(ent, seq);
        if (x == NULL) {
            rc = bk_err_set(e, BK_E_NOMEM, "out of memory");
            break;
        }
        out[got++] = x;
        want++;
    }
    freeReplyObject(rep);
    if (rc != 0) {
        for (size_t i = 0; i < got; i++)
            free(out[i]); /* an rrec: one allocation */
        return BK_ERR;
    }
    if (got > 0)
        rr_note_end(r, want);
    return (int)got;
}

/* Room for `n` records in r->buf (empty). */
static int buf_room(rlog_redis *r, size_t n, bk_err *e) {
    if (r->capbuf >= n)
        return BK_OK;
    bk_rlog_rec **b = realloc(r->buf, n * sizeof(*b));
    if (b == NULL)
        return bk_err_set(e, BK_E_NOMEM, "out of memory");
    r->buf = b;
    r->capbuf = n;
    return BK_OK;
}

/* XREAD after r->next - 1 into the buffer (xread_run on the handle's
 * connection; r->head as its head). Returns how many were buffered. */
static int fill(rlog_redis *r, int block_ms, bk_err *e) {
    r->head[0] = '\0';
    r->nbuf = r->ibuf = 0;
    bk_redis *c = rr_conn(r, e);
    if (c == NULL || buf_room(r, READ_COUNT, e) != BK_OK)
        return BK_ERR;
    int got = xread_run(r, c, r->next, block_ms, r->buf, r->head, e);
    if (got < 0)
        return BK_ERR;
    r->nbuf = (size_t)got;
    return got;
}

/* ---- prefetch ---- */

static void *pf_main(void *arg) {
    rlog_redis *r = arg;
    bk_rlog_rec *tmp[READ_COUNT];
    pthread_mutex_lock(&r->pf_mu);
    while (!r->pf_quit) {
        if (r->pf_halt || r->pf_n + READ_COUNT > PF_MAX) {
            pthread_cond_wait(&r->pf_cv, &r->pf_mu);
            continue;
        }
        unsigned gen = r->pf_gen;
        int64_t next = r->pf_next;
        pthread_mutex_unlock(&r->pf_mu);
        bk_err e;
        bk_err_clear(&e);
        char head[64];
        int got = -1;
        if (r->pf_rc == NULL)
            r->pf_rc = bk_redis_new(r->addr, r->timeout_ms, &e);
        if (r->pf_rc != NULL)
            got = xread_run(r, r->pf_rc, next, 0, tmp, head, &e);
        if (got < 0 && r->pf_rc != NULL) { /* connect again next time */
            bk_redis_free(r->pf_rc);
            r->pf_rc = NULL;
        }
        pthread_mutex_lock(&r->pf_mu);
        if (gen != r->pf_gen) { /* a seek came meanwhile */
            for (int i = 0; i < got; i++)
                free(tmp[i]);
            continue;
        }
        if (got > 0) {
            memcpy(r->pf_q + r->pf_n, tmp, (size_t)got * sizeof(*tmp));
            r->pf_n += (size_t)got;
            r->pf_next += got;
        } else /* the end, a gap, a foreign entry or an error: poll's turn */
            r->pf_halt = 1;
        pthread_cond_broadcast(&r->pf_cv);
    }
    pthread_mutex_unlock(&r->pf_mu);
    return NULL;
}

int rr_prefetch_start(rlog_redis *r, bk_err *e) {
    r->pf_q = malloc(PF_MAX * sizeof(*r->pf_q));
    if (r->pf_q == NULL || buf_room(r, PF_MAX, e) != BK_OK) {
        free(r->pf_q);
        r->pf_q = NULL;
        return bk_err_set(e, BK_E_NOMEM, "out of memory");
    }
    r->pf_halt = 1; /* until poll has read the first records */
    pthread_mutex_init(&r->pf_mu, NULL);
    pthread_cond_init(&r->pf_cv, NULL);
    if (pthread_create(&r->pf_thr, NULL, pf_main, r) != 0) {
        free(r->pf_q);
        r->pf_q = NULL;
        pthread_mutex_destroy(&r->pf_mu);
        pthread_cond_destroy(&r->pf_cv);
        return bk_err_set(e, BK_E_NOMEM, "cannot start the log's read-ahead thread");
    }
    r->pf_on = 1;
    return BK_OK;
}

/* Drop what the thread read ahead and halt it (under pf_mu). */
static void pf_reset(rlog_redis *r) {
    r->pf_gen++;
    for (size_t i = 0; i < r->pf_n; i++)
        free(r->pf_q[i]);
    r->pf_n = 0;
    r->pf_halt = 1;
}

void rr_prefetch_stop(rlog_redis *r) {
    if (!r->pf_on)
        return;
    pthread_mutex_lock(&r->pf_mu);
    pf_reset(r);
    r->pf_quit = 1;
    pthread_cond_broadcast(&r->pf_cv);
    pthread_mutex_unlock(&r->pf_mu);
    pthread_join(r->pf_thr, NULL);
    bk_redis_free(r->pf_rc);
    free(r->pf_q);
    pthread_mutex_destroy(&r->pf_mu);
    pthread_cond_destroy(&r->pf_cv);
    r->pf_on = 0;
}

/* Take what the thread read ahead into the (empty) buffer, waiting up to
 * timeout_ms while it reads: > 0 records buffered, 0 with *halted when it
 * stopped (poll reads itself), 0 on a timeout. */
static int pf_take(rlog_redis *r, int timeout_ms, int *halted) {
    struct timespec until;
    clock_gettime(CLOCK_REALTIME, &until);
    until.tv_sec += timeout_ms / 1000;
    until.tv_nsec += (long)(timeout_ms % 1000) * 1000000L;
    if (until.tv_nsec >= 1000000000L) {
        until.tv_sec++;
        until.tv_nsec -= 1000000000L;
    }
    pthread_mutex_lock(&r->pf_mu);
    while (r->pf_n == 0 && !r->pf_halt && timeout_ms > 0 &&
           pthread_cond_timedwait(&r->pf_cv, &r->pf_mu, &until) == 0)
        ;
    int got = (int)r->pf_n;
    *halted = got == 0 && r->pf_halt;
    if (got > 0) { /* swap the arrays: both have PF_MAX slots */
        bk_rlog_rec **b = r->buf;
        r->buf = r->pf_q;
        r->pf_q = b;
        r->nbuf = r->pf_n;
        r->ibuf = 0;
        r->pf_n = 0;
        pthread_cond_broadcast(&r->pf_cv); /* room again */
    }
    pthread_mutex_unlock(&r->pf_mu);
    return got;
}

/* Poll read r->buf itself: the thread goes on after its last record. */
static void pf_resume(rlog_redis *r) {
    pthread_mutex_lock(&r->pf_mu);
    r->pf_gen++;
    r->pf_next = r->buf[r->nbuf - 1]->offset + 1;
    r->pf_halt = 0;
    pthread_cond_broadcast(&r->pf_cv);
    pthread_mutex_unlock(&r->pf_mu);
}

/* Run the adopt script: BK_OK, or BK_ERR with e. */
static int adopt(rlog_redis *r, bk_err *e) {
    const char *argv[] = {r->stream, r->counter, r->ids};
    size_t lens[] = {strlen(r->stream), strlen(r->counter), strlen(r->ids)};
    redisReply *rep = rr_eval(r, &rr_adopt_script, 3, 3, argv, lens, e);
    if (rep == NULL)
        return BK_ERR;
    int ok = rep->type == REDIS_REPLY_INTEGER;
    freeReplyObject(rep);
    if (!ok)
        return bk_err_set(e, BK_E_PROTO, "log %s: unexpected reply to the adopt script",
                          r->where);
    return BK_OK;
}

static int out_of_range(rlog_redis *r, int64_t end, bk_err *e) {
    if (end < r->next)
        return bk_err_set(e, BK_E_RLOG_RANGE,
                          "log %s: offset %" PRId64
                          " out of range: not yet there (end is %" PRId64 ")",
                          r->where, r->next, end);
    if (r->head[0] != '\0')
        return bk_err_set(e, BK_E_RLOG_RANGE,
                          "log %s: offset %" PRId64
                          " out of range: deleted (first is %s)",
                          r->where, r->next, r->head);
    return bk_err_set(e, BK_E_RLOG_RANGE,
                      "log %s: offset %" PRId64
                      " out of range: deleted (the log is empty, end is %" PRId64 ")",
                      r->where, r->next, end);
}

/* fill found nothing to return at r->next (r->head: an entry that is not
 * it). Decide with the counter, read before a second look (no race with
 * appends): records below the counter were appended, so one missing is
 * deleted (I1); at or past the counter, an entry there was not appended by
 * BR2K (or the counter lags a copy of our form): it is adopted, then read.
 * Returns what poll returns: > 0 records buffered, 0 nothing yet, BK_ERR. */
static int look_again(rlog_redis *r, int timeout_ms, bk_err *e) {
    for (int tries = 0;; tries++) {
        int head = r->head[0] != '\0';
        int64_t end = 0;
        if (get_counter(r, &end, e) != BK_OK)
            return BK_ERR;
        if (!head && end == r->next)
            return 0; /* at the end */
        int got = fill(r, 0, e);
        if (got != 0)
            return got;
        head = r->head[0] != '\0';
        if (end > r->next)
            return out_of_range(r, end, e);
        if (!head && end == r->next)
            return 0;
        if (tries > 0) /* adopted, and still: past the end, or a new foreign entry */
            return end < r->next ? out_of_range(r, end, e) : 0;
        int64_t now = bk_mono_ms();
        bk_err ae;
        bk_err_clear(&ae);
        if (now - r->adopt_fail_ms >= ADOPT_RETRY_MS && adopt(r, &ae) == BK_OK)
            continue;
        if (ae.code == BK_E_IO || ae.code == BK_E_TIMEOUT) {
            if (e != NULL)
                *e = ae;
            return BK_ERR;
        }
        if (ae.code != 0)
            r->adopt_fail_ms = now;
        if (end < r->next && !head)
            return out_of_range(r, end, e);
        /* a foreign entry this reader cannot adopt (no write permission,
         * too many): wait, without spinning, until an append adopts it or
         * an operator removes it */
        if (ae.code != 0 && now - r->adopt_warn_ms >= 10000) {
            BK_WARN("log %s: entry %s at offset %" PRId64
                    " was not appended by BR2K and cannot be adopted here (%s); waiting "
                    "until it is adopted (by an append) or removed",
                    r->where, r->head, r->next, ae.msg);
            r->adopt_warn_ms = now;
        }
        bk_sleep_ms(timeout_ms < ADOPT_RETRY_MS ? timeout_ms : ADOPT_RETRY_MS);
        return 0;
    }
}

int rr_poll(bk_rlog *l, int timeout_ms, bk_rlog_rec **rec, bk_err *e) {
    rlog_redis *r = R(l);
    if (!r->seeked)
        return bk_err_set(e, BK_E_STATE, "log %s is read before a seek", r->where);
    int halted = 1;
    if (r->ibuf == r->nbuf && r->pf_on) {
        int got = pf_take(r, timeout_ms, &halted);
        if (got == 0 && !halted)
            return 0; /* the thread is reading: nothing yet */
        if (got > 0 && bk_mono_ms() - r->last_end_ms >= END_REFRESH_MS) {
            int64_t end = 0; /* for the lag seen by bk_rlog_cached_end */
            if (get_counter(r, &end, e) != BK_OK)
                return BK_ERR;
        }
    }
    if (r->ibuf == r->nbuf) {
        /* keep the block below the connection's command timeout */
        int block = timeout_ms;
        if (block > r->timeout_ms - 500)
            block = r->timeout_ms > 1000 ? r->timeout_ms - 500 : r->timeout_ms / 2;
        int got = fill(r, block, e);
        if (got < 0)
            return BK_ERR;
        if (got > 0 && bk_mono_ms() - r->last_end_ms >= END_REFRESH_MS) {
            int64_t end = 0; /* for the lag seen by bk_rlog_cached_end */
            if (get_counter(r, &end, e) != BK_OK)
                return BK_ERR;
        }
        if (got == 0) {
            got = look_again(r, timeout_ms, e);
            if (got <= 0)
                return got;
        }
        if (r->pf_on)
            pf_resume(r);
    }
    *rec = r->buf[r->ibuf++];
    r->next = (*rec)->offset + 1;
    if (r->ibuf == r->nbuf)
        r->ibuf = r->nbuf = 0;
    return 1;
}

void rr_rec_free(bk_rlog_rec *rec) {
    free(rec); /* the rrec: one allocation, pub first */
}

int rr_rec_header_at(const bk_rlog_rec *rec, size_t i, bk_rlog_header *h) {
    const rrec *x = (const rrec *)rec;
    if (i >= x->nh)
        return 0;
    *h = x->h[i];
    return 1;
}

int rr_rec_header(const bk_rlog_rec *rec, const char *name, const void **value,
                  size_t *len, bk_err *e) {
    const rrec *x = (const rrec *)rec;
    for (size_t i = x->nh; i-- > 0;)
        if (strcmp(x->h[i].name, name) == 0) {
            *value = x->h[i].value;
            *len = x->h[i].len;
            return BK_OK;
        }
    return bk_err_set(e, BK_E_NOTFOUND, "record %lld has no header '%s'",
                      (long long)rec->offset, name);
}
