/* rlog_redis.c - the Redis Streams back end of the request log (rlog.h,
 * behind the ops table of rlog_int.h; the design is in common/log/README.md).
 *
 * Offset N is the entry id "1-N" of the stream; the counter {<stream>}:next
 * holds the next offset and the hash {<stream>}:ids maps a request id to its
 * offset. An append is one Lua script (EVALSHA through redis/script.h): it
 * either adds entry 1-<next> and advances the counter, or changes nothing.
 * Entries that BR2K did not append (foreign: an XADD of anything else) are
 * adopted, always before anything after them is read or appended: each
 * becomes an empty record with the header br2k-foreign at the next offset,
 * so that offsets stay dense and every reader sees the same log.
 *
 * bk_rlog_append formats the EVALSHA and queues it; the queue is sent in one
 * pipeline (256 at a time, or from serve/flush/append_sync) on a connection
 * of its own, and the delivery callbacks are called by serve/flush. An
 * append the server may not have run (connection lost, LOADING, BUSY, ...)
 * stays queued and is sent again, with its request id (the script returns
 * the first offset of a request id it holds), until delivery.timeout.ms.
 * Reads use XREAD on the bk_redis connection, buffering up to 500 entries. */
#include "log/rlog_redis_int.h"

/* ---- the handle ---- */

static int redis_accepts(const char *bootstrap) {
    return strncmp(bootstrap, "redis://", 8) == 0;
}

static void redis_close(bk_rlog *l);

static bk_rlog *redis_open(const bk_rlog_settings *s, bk_err *e) {
    const char *url = s->bootstrap;
    const char *p = url + 8, *slash = strchr(p, '/');
    size_t alen = slash ? (size_t)(slash - url) : strlen(url);
    const char *stream = slash && slash[1] ? slash + 1 : s->topic;
    char host[256];
    int port = 0, delivery = DELIVERY_MS;
    if (alen >= 300 || strlen(stream) >= 256) {
        bk_err_set(e, BK_E_INVAL, "invalid log URL '%s': too long", url);
        return NULL;
    }
    /* {<stream>}:next hashes like <stream> in a Redis Cluster only when the
     * name has no braces of its own */
    if (stream[0] == '\0' || strpbrk(stream, "{} ") != NULL) {
        bk_err_set(e, BK_E_INVAL,
                   "invalid log URL '%s': stream name '%s' is empty or holds '{', '}' or "
                   "a space",
                   url, stream);
        return NULL;
    }
    /* librdkafka's names of the append deadline, so that one setting
     * serves both back ends */
    if (bk_rlog_prop_int(s->props, "message.timeout.ms", &delivery, e) != BK_OK ||
        bk_rlog_prop_int(s->props, "delivery.timeout.ms", &delivery, e) != BK_OK)
        return NULL;
    rlog_redis *r = calloc(1, sizeof(*r));
    if (r == NULL) {
        bk_err_set(e, BK_E_NOMEM, "out of memory");
        return NULL;
    }
    r->base.ops = &bk_rlog_redis_ops;
    memcpy(r->addr, url, alen);
    r->addr[alen] = '\0';
    if (bk_redis_parse_addr(r->addr, host, sizeof(host), &port, e) != BK_OK) {
        bk_err_prefix(e, "invalid log URL '%s'", url);
        free(r);
        return NULL;
    }
    snprintf(r->stream, sizeof(r->stream), "%s", stream);
    /* the hash tag puts them in the stream's slot (one script uses all three) */
    snprintf(r->counter, sizeof(r->counter), "{%s}:next", stream);
    snprintf(r->ids, sizeof(r->ids), "{%s}:ids", stream);
    snprintf(r->where, sizeof(r->where), "'%s' at %s", stream, r->addr);
    r->timeout_ms = s->timeout_ms;
    r->delivery_ms = delivery;
    atomic_init(&r->cached_end, -1);
    return &r->base;
}

void rr_drop_buf(rlog_redis *r) {
    for (size_t i = r->ibuf; i < r->nbuf; i++)
        free(r->buf[i]); /* an rrec: one allocation */
    r->nbuf = r->ibuf = 0;
}

bk_redis *rr_conn(rlog_redis *r, bk_err *e) {
    if (r->rc == NULL) {
        r->rc = bk_redis_new(r->addr, r->timeout_ms, e);
        if (r->rc == NULL)
            bk_err_prefix(e, "log %s", r->where);
    }
    return r->rc;
}

/* A command; an error names the log. */
redisReply *rr_cmdv(rlog_redis *r, bk_err *e, int argc, const char **argv,
                    const size_t *lens) {
    bk_redis *rc = rr_conn(r, e);
    if (rc == NULL)
        return NULL;
    redisReply *rep = bk_redis_commandv(rc, e, argc, argv, lens);
    if (rep == NULL)
        bk_err_prefix(e, "log %s", r->where);
    return rep;
}

/* A script (keys first in argv); an error names the log. */
redisReply *rr_eval(rlog_redis *r, bk_script *s, int nkeys, int argc, const char **argv,
                    const size_t *lens, bk_err *e) {
    bk_redis *rc = rr_conn(r, e);
    if (rc == NULL)
        return NULL;
    redisReply *rep = bk_script_eval(rc, s, nkeys, argc, argv, lens, e);
    if (rep == NULL)
        bk_err_prefix(e, "log %s", r->where);
    return rep;
}

/* ---- appending ---- */

/* Format the append script's EVALSHA for the record into *cmd, *cmdlen;
 * *has_rid when it carries a request id. Needs no server. */
static int format_append(rlog_redis *r, const void *key, size_t key_len,
                         const void *value, size_t len, const bk_rlog_header *headers,
                         size_t nheaders, char **cmd, size_t *cmdlen, int *has_rid,
                         bk_err *e) {
    if ((key == NULL && key_len > 0) || (value == NULL && len > 0) ||
        (headers == NULL && nheaders > 0) || nheaders > 1000)
        return bk_err_set(e, BK_E_INVAL, "cannot append to log %s: bad argument",
                          r->where);
    size_t argc = 3 + 2 + 4 + 2 * nheaders;
    const char **argv = malloc(argc * sizeof(*argv));
    size_t *lens = malloc(argc * sizeof(*lens));
    char **names = calloc(nheaders ? nheaders : 1, sizeof(*names));
    int rc = BK_ERR;
    if (argv == NULL || lens == NULL || names == NULL) {
        bk_err_set(e, BK_E_NOMEM, "out of memory");
        goto out;
    }
    size_t n = 0;
    argv[n] = r->stream, lens[n++] = strlen(r->stream);
    argv[n] = r->counter, lens[n++] = strlen(r->counter);
    argv[n] = r->ids, lens[n++] = strlen(r->ids);
    /* the request id: the last header of that name, as rec_header reads it */
    const bk_rlog_header *rid = NULL;
    for (size_t i = 0; i < nheaders; i++)
        if (headers[i].name != NULL && strcmp(headers[i].name, BK_RLOG_H_REQUEST_ID) == 0)
            rid = &headers[i];
    *has_rid = rid != NULL;
    argv[n] = rid ? "1" : "0", lens[n++] = 1;
    argv[n] = rid && rid->value ? rid->value : "",
    lens[n++] = rid && rid->value ? rid->len : 0;
    argv[n] = "k", lens[n++] = 1;
    argv[n] = key_len ? key : "", lens[n++] = key_len;
    argv[n] = "v", lens[n++] = 1;
    argv[n] = len ? value : "", lens[n++] = len;
    for (size_t i = 0; i < nheaders; i++) {
        if (headers[i].name == NULL) {
            bk_err_set(e, BK_E_INVAL, "cannot append to log %s: header without a name",
                       r->where);
            goto out;
        }
        size_t nl = strlen(headers[i].name);
        names[i] = malloc(nl + 3);
        if (names[i] == NULL) {
            bk_err_set(e, BK_E_NOMEM, "out of memory");
            goto out;
        }
        memcpy(names[i], "h:", 2);
        memcpy(names[i] + 2, headers[i].name, nl + 1);
        argv[n] = names[i], lens[n++] = nl + 2;
        argv[n] = headers[i].value ? headers[i].value : "";
        lens[n++] = headers[i].value ? headers[i].len : 0;
    }
    rc = bk_script_format(&rr_append_script, 3, (int)n, argv, lens, cmd, cmdlen, e);
out:
    if (names != NULL)
        for (size_t i = 0; i < nheaders; i++)
            free(names[i]);
    free(names);
    free(argv);
    free(lens);
    return rc;
}

static int push_done(rlog_redis *r, bk_rlog_delivery_cb cb, void *opaque, int64_t off,
                     bk_err *err) {
    if (r->nq == r->capq) {
        size_t cap = r->capq ? 2 * r->capq : 64;
        done *q = realloc(r->q, cap * sizeof(*q));
        if (q == NULL)
            return BK_ERR;
        r->q = q;
        r->capq = cap;
    }
    r->q[r->nq++] = (done){cb, opaque, off, err};
    return BK_OK;
}

/* An append delivered at `off`: its callback comes from serve/flush. */
static void deliver_sent(rlog_redis *r, sent *x, int64_t off) {
    rr_note_end(r, off + 1);
    if (push_done(r, x->cb, x->opaque, off, NULL) != BK_OK && x->cb != NULL)
        x->cb(x->opaque, off, NULL);
    redisFreeCommand(x->cmd);
}

/* A failed append: its callback gets the error from serve/flush. */
static void fail_sent(rlog_redis *r, sent *x, const bk_err *e) {
    bk_err *copy = malloc(sizeof(*copy));
    if (copy != NULL)
        *copy = *e;
    if (copy == NULL || push_done(r, x->cb, x->opaque, -1, copy) != BK_OK) {
        free(copy);
        BK_WARN("%s (out of memory: its callback is not called)", e->msg);
    }
    redisFreeCommand(x->cmd);
}

static int pipe_conn(rlog_redis *r, bk_err *e) {
    if (r->pc != NULL && r->pc->err == 0)
        return BK_OK;
    if (r->pc != NULL)
        redisFree(r->pc);
    r->pc = bk_redis_connect(r->addr, r->timeout_ms, e);
    return r->pc != NULL ? BK_OK : BK_ERR;
}

/* An error reply after which the script did not run and may run later:
 * the server is loading, busy, not a master now, out of memory, ... */
static int transient_reply(const char *msg) {
    static const char *const codes[] = {"LOADING",  "BUSY",       "MASTERDOWN",
                                        "READONLY", "TRYAGAIN",   "CLUSTERDOWN",
                                        "OOM",      "NOREPLICAS", "UNBLOCKED"};
    for (size_t i = 0; i < sizeof(codes) / sizeof(codes[0]); i++) {
        size_t n = strlen(codes[i]);
        if (strncmp(msg, codes[i], n) == 0 && (msg[n] == ' ' || msg[n] == '\0'))
            return 1;
    }
    return 0;
}

/* Fail the queued appends whose deadline passed, with what went wrong. */
static void expire_out(rlog_redis *r) {
    int64_t now = bk_mono_ms();
    size_t keep = 0;
    for (size_t i = 0; i < r->nout; i++) {
        sent *x = &r->out[i];
        if (now < x->deadline_ms) {
            r->out[keep++] = *x;
            continue;
        }
        bk_err e;
        bk_err_set(&e, r->send_err.code ? r->send_err.code : BK_E_TIMEOUT,
                   "cannot append to log %s within delivery.timeout.ms=%d%s: %s",
                   r->where, r->delivery_ms,
                   x->has_rid ? " (it is in the log once or not at all: sending it again "
                                "with the same request id is safe)"
                              : "",
                   r->send_err.msg[0] ? r->send_err.msg : "no reply");
        fail_sent(r, x, &e);
    }
    r->nout = keep;
}

/* Send the queued appends in one pipeline and read their replies, in
 * order. Each ends delivered (its offset), failed (an error the script
 * gave: it changed nothing), or queued again: not run (NOSCRIPT: the
 * script is loaded again and they go at once; LOADING and the like: after
 * a back-off), or perhaps run when the connection broke before its reply
 * (again only with a request id: the script then returns its first
 * offset; without one it fails, as it might be in the log). Nothing is
 * sent during a back-off; what waits past its deadline fails. */
static void send_out(rlog_redis *r) {
    if (r->nout == 0 || bk_mono_ms() < r->retry_at_ms)
        return;
    for (int round = 0; round < 3 && r->nout > 0; round++) {
        bk_err e;
        bk_err_clear(&e);
        size_t keep = 0;
        int noscript = 0, transient = 0;
        if (pipe_conn(r, &e) != BK_OK) {
            keep = r->nout;
            transient = 1;
        } else {
            for (size_t j = 0; j < r->nout; j++)
                redisAppendFormattedCommand(r->pc, r->out[j].cmd, r->out[j].len);
            for (size_t i = 0; i < r->nout; i++) {
                sent *x = &r->out[i];
                void *vrep = NULL;
                if (redisGetReply(r->pc, &vrep) != REDIS_OK || vrep == NULL) {
                    bk_err_set(&e, BK_E_IO, "%s",
                               r->pc->errstr[0] ? r->pc->errstr : "connection lost");
                    redisFree(r->pc);
                    r->pc = NULL;
                    transient = 1;
                    for (; i < r->nout; i++) {
                        x = &r->out[i];
                        if (x->has_rid) {
                            r->out[keep++] = *x;
                        } else {
                            bk_err f;
                            bk_err_set(&f, BK_E_IO,
                                       "cannot append to log %s: %s: the append may or "
                                       "may not be in the log (no request id to send it "
                                       "again with)",
                                       r->where, e.msg);
                            fail_sent(r, x, &f);
                        }
                    }
                    break;
                }
                redisReply *rep = vrep;
                if (rep->type == REDIS_REPLY_INTEGER) {
                    deliver_sent(r, x, rep->integer);
                } else if (rep->type == REDIS_REPLY_ERROR &&
                           bk_script_noscript(rep->str)) {
                    r->out[keep++] = *x;
                    noscript = 1;
                } else if (rep->type == REDIS_REPLY_ERROR && transient_reply(rep->str)) {
                    bk_err_set(&e, BK_E_IO, "%s", rep->str);
                    r->out[keep++] = *x;
                    transient = 1;
                } else {
                    bk_err f;
                    bk_err_set(
                        &f, rep->type == REDIS_REPLY_ERROR ? BK_E_REMOTE : BK_E_PROTO,
                        "cannot append to log %s: %s", r->where,
                        rep->type == REDIS_REPLY_ERROR ? rep->str : "unexpected reply");
                    fail_sent(r, x, &f);
                }
                freeReplyObject(rep);
            }
        }
        r->nout = keep;
        if (keep == 0) {
            r->backoff_ms = 0;
            r->retry_at_ms = 0;
            bk_err_clear(&r->send_err);
            return;
        }
        if (!transient && noscript) {
            /* flushed, or a restarted server: they did not run; load it
             * and send them again now */
            bk_redis *rc = rr_conn(r, &e);
            if (rc != NULL && bk_script_reload(rc, &rr_append_script, &e) == BK_OK)
                continue;
        }
        r->send_err = e;
        r->backoff_ms = r->backoff_ms ? 2 * r->backoff_ms : RETRY_MIN_MS;
        if (r->backoff_ms > RETRY_MAX_MS)
            r->backoff_ms = RETRY_MAX_MS;
        r->retry_at_ms = bk_mono_ms() + r->backoff_ms;
        expire_out(r);
        return;
    }
}

static int redis_append(bk_rlog *l, const void *key, size_t key_len, const void *value,
                        size_t len, const bk_rlog_header *headers, size_t nheaders,
                        bk_rlog_delivery_cb cb, void *opaque, bk_err *e) {
    rlog_redis *r = R(l);
    if (r->nout + r->nq >= QUEUE_MAX)
        return bk_err_set(
            e, BK_E_TIMEOUT, "cannot append to log %s: %zu appends queued (%s)", r->where,
            r->nout + r->nq, r->send_err.msg[0] ? r->send_err.msg : "the queue is full");
    if (r->nout == r->capout) {
        size_t cap = r->capout ? 2 * r->capout : PIPE_MAX;
        sent *o = realloc(r->out, cap * sizeof(*o));
        if (o == NULL)
            return bk_err_set(e, BK_E_NOMEM, "out of memory");
        r->out = o;
        r->capout = cap;
    }
    char *cmd = NULL;
    size_t cl = 0;
    int has_rid = 0;
    if (format_append(r, key, key_len, value, len, headers, nheaders, &cmd, &cl, &has_rid,
                      e) != BK_OK)
        return BK_ERR;
    int64_t now = bk_mono_ms();
    if (r->nout == 0)
        r->out_since_ms = now;
    r->out[r->nout++] = (sent){cmd, cl, cb, opaque, has_rid, now + r->delivery_ms};
    if (r->nout >= PIPE_MAX)
        send_out(r);
    return BK_OK;
}

/* Call the queued delivery callbacks; returns how many. */
static int run_callbacks(rlog_redis *r) {
    if (r->nq == 0)
        return 0;
    /* callbacks may append again: take the queue first */
    size_t n = r->nq;
    done *q = r->q;
    r->q = NULL;
    r->nq = r->capq = 0;
    for (size_t i = 0; i < n; i++) {
        if (q[i].cb != NULL)
            q[i].cb(q[i].opaque, q[i].offset, q[i].err);
        free(q[i].err);
    }
    if (r->q == NULL) {
        r->q = q;
        r->capq = n;
    } else {
        free(q);
    }
    return (int)n;
}

/* How long to sleep, at most `left`, before the next send is due. */
static int64_t wait_for_send(const rlog_redis *r, int64_t left) {
    int64_t now = bk_mono_ms();
    if (r->nout > 0 && r->retry_at_ms - now < left)
        left = r->retry_at_ms > now ? r->retry_at_ms - now : 1;
    return left;
}

static int redis_serve(bk_rlog *l, int timeout_ms) {
    rlog_redis *r = R(l);
    int64_t end = bk_mono_ms() + (timeout_ms > 0 ? timeout_ms : 0);
    for (;;) {
        /* like a Kafka producer's linger: a caller that serves after every
         * append still gets its appends sent together */
        if (r->nout > 0 &&
            (timeout_ms > 0 || bk_mono_ms() - r->out_since_ms >= LINGER_MS))
            send_out(r);
        if (r->nq > 0)
            return run_callbacks(r);
        int64_t left = end - bk_mono_ms();
        if (left <= 0)
            return 0;
        bk_sleep_ms(wait_for_send(r, left)); /* nothing will come before */
    }
}

static int redis_flush(bk_rlog *l, int timeout_ms, bk_err *e) {
    rlog_redis *r = R(l);
    int64_t end = bk_mono_ms() + (timeout_ms > 0 ? timeout_ms : 0);
    for (;;) {
        send_out(r);
        (void)run_callbacks(r);
        if (r->nout == 0 && r->nq == 0)
            return BK_OK;
        int64_t left = end - bk_mono_ms();
        if (left <= 0)
            return bk_err_set(e, BK_E_TIMEOUT, "%zu appends to log %s not delivered: %s",
                              r->nout + r->nq, r->where,
                              r->send_err.msg[0] ? r->send_err.msg : "still sending");
        bk_sleep_ms(wait_for_send(r, left));
    }
}

static int redis_pending(bk_rlog *l) {
    rlog_redis *r = R(l);
    return (int)(r->nq + r->nout);
}

static void redis_close(bk_rlog *l) {
    rlog_redis *r = R(l);
    /* deliver what can be delivered in time, then tell the rest */
    if (r->nout > 0 || r->nq > 0) {
        bk_err e;
        if (redis_flush(l, r->timeout_ms, &e) != BK_OK) {
            BK_WARN("%s", e.msg);
            bk_err f;
            bk_err_set(&f, r->send_err.code ? r->send_err.code : BK_E_TIMEOUT,
                       "log %s closed before the append was delivered: %s", r->where,
                       r->send_err.msg[0] ? r->send_err.msg : "still sending");
            for (size_t i = 0; i < r->nout; i++)
                fail_sent(r, &r->out[i], &f);
            r->nout = 0;
            (void)run_callbacks(r);
        }
    }
    rr_prefetch_stop(r);
    rr_drop_buf(r);
    free(r->buf);
    free(r->q);
    free(r->out);
    if (r->pc != NULL)
        redisFree(r->pc);
    bk_redis_free(r->rc);
    free(r);
}

/* ---- offsets and deletion ---- */

static int redis_offsets(bk_rlog *l, int64_t *first, int64_t *end, bk_err *e) {
    rlog_redis *r = R(l);
    const char *argv[] = {r->stream, r->counter};
    size_t lens[] = {strlen(r->stream), strlen(r->counter)};
    redisReply *rep = rr_eval(r, &rr_offsets_script, 2, 2, argv, lens, e);
    if (rep == NULL)
        return bk_err_prefix(e, "cannot read the offsets");
    if (rep->type != REDIS_REPLY_ARRAY || rep->elements != 2 ||
        rep->element[0]->type != REDIS_REPLY_INTEGER ||
        rep->element[1]->type != REDIS_REPLY_INTEGER) {
        freeReplyObject(rep);
        return bk_err_set(e, BK_E_PROTO, "cannot read the offsets of log %s: bad reply",
                          r->where);
    }
    int64_t f = rep->element[0]->integer, n = rep->element[1]->integer;
    freeReplyObject(rep);
    *end = n;
    *first = f < 0 || f > n ? n : f;
    atomic_store(&r->cached_end, n);
    return BK_OK;
}

static int64_t redis_cached_end(bk_rlog *l) {
    return atomic_load(&R(l)->cached_end);
}

/* Deletes the entries below `offset` with the request ids they hold, in
 * chunks of DELETE_CHUNK (one script each, so Redis is never held long):
 * the ids hash keeps the ids of the records still in the log only, and a
 * late retry of a deleted record is appended again, as on Kafka (the
 * application tells a repeat by its request id, the result's hash keeps
 * the first result). */
static int redis_delete_below(bk_rlog *l, int64_t offset, bk_err *e) {
    rlog_redis *r = R(l);
    if (offset <= 0)
        return BK_OK;
    char below[32], count[16];
    snprintf(below, sizeof(below), "%" PRId64, offset);
    snprintf(count, sizeof(count), "%d", DELETE_CHUNK);
    for (;;) {
        const char *argv[] = {r->stream, r->ids, below, count};
        size_t lens[] = {strlen(r->stream), strlen(r->ids), strlen(below), strlen(count)};
        redisReply *rep = rr_eval(r, &rr_delete_script, 2, 4, argv, lens, e);
        if (rep == NULL)
            return bk_err_prefix(e, "cannot delete below %lld", (long long)offset);
        long long n = rep->type == REDIS_REPLY_INTEGER ? rep->integer : -1;
        freeReplyObject(rep);
        if (n < 0)
            return bk_err_set(e, BK_E_PROTO,
                              "cannot delete below %lld in log %s: bad reply",
                              (long long)offset, r->where);
        if (n < DELETE_CHUNK)
            return BK_OK;
    }
}

static int redis_read_ahead(bk_rlog *l, bk_err *e) {
    rlog_redis *r = R(l);
    return r->pf_on ? BK_OK : rr_prefetch_start(r, e);
}

const bk_rlog_ops bk_rlog_redis_ops = {
    .name = "redis",
    .accepts = redis_accepts,
    .open = redis_open,
    .close = redis_close,
    .append = redis_append,
    .serve = redis_serve,
    .flush = redis_flush,
    .pending = redis_pending,
    .seek = rr_seek,
    .poll = rr_poll,
    .rec_free = rr_rec_free,
    .rec_header = rr_rec_header,
    .rec_header_at = rr_rec_header_at,
    .offsets = redis_offsets,
    .cached_end = redis_cached_end,
    .delete_below = redis_delete_below,
    .read_ahead = redis_read_ahead,
};
