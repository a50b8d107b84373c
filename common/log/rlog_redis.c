/* rlog_redis.c - the Redis Streams back end of rlog.h (see the design in
 * its header comment). Offset N is the entry id "1-N" of the stream; the
 * counter {<stream>}:next holds the next offset and the hash {<stream>}:ids
 * maps a request id to its offset. Appends run one Lua script (EVALSHA):
 * bk_rlog_append formats it and sends it pipelined (256 at a time, or on
 * serve/flush) on a connection of its own; the delivery callbacks are
 * queued and called by serve/flush. append_sync, reads and the rest use
 * the bk_redis connection. Reads use XREAD, buffering up to 500 entries. */
#include "log/rlog_int.h"

#include <inttypes.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "base/clock.h"
#include "base/log.h"
#include "redis/redis.h"

#define READ_COUNT 500
#define END_REFRESH_MS 200

/* KEYS: stream, counter, ids. ARGV: has-id ("1"/"0"), request id, then the
 * field/value pairs of the entry. Returns the offset. */
static const char APPEND_LUA[] =
    "if ARGV[1] == '1' then\n"
    "  local o = redis.call('HGET', KEYS[3], ARGV[2])\n"
    "  if o then return tonumber(o) end\n"
    "end\n"
    "local off = redis.call('INCR', KEYS[2]) - 1\n"
    "local a = {'XADD', KEYS[1], '1-' .. string.format('%d', off)}\n"
    "for i = 3, #ARGV do a[#a + 1] = ARGV[i] end\n"
    "redis.call(unpack(a))\n"
    "if ARGV[1] == '1' then redis.call('HSET', KEYS[3], ARGV[2], off) end\n"
    "return off\n";

/* KEYS: stream, counter. Returns {first seq or -1, counter}, atomically. */
static const char OFFSETS_LUA[] =
    "local e = tonumber(redis.call('GET', KEYS[2]) or '0')\n"
    "local r = redis.call('XRANGE', KEYS[1], '-', '+', 'COUNT', 1)\n"
    "if #r == 0 then return {-1, e} end\n"
    "local id = r[1][1]\n"
    "return {tonumber(string.sub(id, string.find(id, '-') + 1)), e}\n";

/* KEYS: stream, ids. ARGV: offset n, count. Deletes up to `count` entries
 * below offset n (XRANGE's exclusive end), the oldest first, with the
 * request ids they hold (HDEL); returns how many. One chunk at a time keeps
 * each call short. */
static const char DELETE_LUA[] =
    "local r = redis.call('XRANGE', KEYS[1], '-', '(1-' .. ARGV[1], 'COUNT', ARGV[2])\n"
    "if #r == 0 then return 0 end\n"
    "for _, e in ipairs(r) do\n"
    "  local f = e[2]\n"
    "  for j = 1, #f, 2 do\n"
    "    if f[j] == 'h:br2k-request-id' then redis.call('HDEL', KEYS[2], f[j + 1]) end\n"
    "  end\n"
    "end\n"
    "local last = r[#r][1]\n"
    "local seq = tonumber(string.sub(last, string.find(last, '-') + 1))\n"
    "redis.call('XTRIM', KEYS[1], 'MINID', '1-' .. string.format('%d', seq + 1))\n"
    "return #r\n";
#define DELETE_CHUNK 2000

typedef struct script {
    const char *src;
    char sha[41]; /* "" until loaded */
} script;

typedef struct done {
    bk_rlog_delivery_cb cb;
    void *opaque;
    int64_t offset; /* -1 with err set: failed */
    bk_err *err;
} done;

typedef struct sent {
    char *cmd; /* the formatted EVALSHA */
    size_t len;
    bk_rlog_delivery_cb cb;
    void *opaque;
} sent;

#define PIPE_MAX 256 /* appends sent together */
#define LINGER_MS 2  /* bk_rlog_serve(l, 0) sends queued appends this old */

struct bk_rlog_redis {
    char addr[300];   /* redis://HOST:PORT */
    char stream[256]; /* and the keys derived from it */
    char counter[270];
    char ids[270];
    char where[600]; /* "'stream' at redis://HOST:PORT", for messages */
    int timeout_ms;
    bk_redis *rc; /* connected on first use */
    script append, offsets, del;
    done *q; /* delivery callbacks to call, in order */
    size_t nq, capq;
    redisContext *pc; /* the pipelined appends' own connection */
    sent *out;        /* appends formatted, not yet sent */
    size_t nout, capout;
    int64_t out_since_ms; /* when the oldest of out was queued */
    int seeked;
    int64_t next;      /* the offset the next poll returns */
    bk_rlog_rec **buf; /* records read, not yet returned */
    size_t nbuf, ibuf;
    int64_t last_end_ms; /* when the counter was last read by poll */
    atomic_llong cached_end;
};

typedef struct rrec {
    bk_rlog_rec pub;
    size_t nh;
    bk_rlog_header *h;
} rrec;

static char rec_tag; /* priv_ of this back end's records */

static void note_end(bk_rlog_redis *r, int64_t end) {
    int64_t cur = atomic_load(&r->cached_end);
    while (end > cur && !atomic_compare_exchange_weak(&r->cached_end, &cur, end))
        ;
}

int bk_rlog_redis_url(const char *bootstrap) {
    return bootstrap != NULL && strncmp(bootstrap, "redis://", 8) == 0;
}

bk_rlog_redis *bk_rlog_redis_open(const char *url, const char *topic, int timeout_ms,
                                  bk_err *e) {
    const char *p = url + 8, *slash = strchr(p, '/');
    size_t alen = slash ? (size_t)(slash - url) : strlen(url);
    const char *stream = slash && slash[1] ? slash + 1 : topic;
    char host[256];
    int port = 0;
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
    bk_rlog_redis *r = calloc(1, sizeof(*r));
    if (r == NULL) {
        bk_err_set(e, BK_E_NOMEM, "out of memory");
        return NULL;
    }
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
    r->timeout_ms = timeout_ms > 0 ? timeout_ms : 10000;
    r->append.src = APPEND_LUA;
    r->offsets.src = OFFSETS_LUA;
    r->del.src = DELETE_LUA;
    atomic_init(&r->cached_end, -1);
    return r;
}

static void drop_buf(bk_rlog_redis *r) {
    for (size_t i = r->ibuf; i < r->nbuf; i++)
        bk_rlog_redis_rec_free(r->buf[i]);
    r->nbuf = r->ibuf = 0;
}

void bk_rlog_redis_close(bk_rlog_redis *r) {
    if (r == NULL)
        return;
    bk_rlog_redis_flush(r, 0, NULL); /* send the rest, tell their callers */
    drop_buf(r);
    free(r->buf);
    free(r->q);
    free(r->out);
    if (r->pc != NULL)
        redisFree(r->pc);
    bk_redis_free(r->rc);
    free(r);
}

static bk_redis *conn(bk_rlog_redis *r, bk_err *e) {
    if (r->rc == NULL) {
        r->rc = bk_redis_new(r->addr, r->timeout_ms, e);
        if (r->rc == NULL)
            bk_err_prefix(e, "log %s", r->where);
    }
    return r->rc;
}

/* A command; an error names the log. */
static redisReply *cmdv(bk_rlog_redis *r, bk_err *e, int argc, const char **argv,
                        const size_t *lens) {
    bk_redis *rc = conn(r, e);
    if (rc == NULL)
        return NULL;
    redisReply *rep = bk_redis_commandv(rc, e, argc, argv, lens);
    if (rep == NULL)
        bk_err_prefix(e, "log %s", r->where);
    return rep;
}

static int load_script(bk_rlog_redis *r, script *s, bk_err *e) {
    if (s->sha[0] != '\0')
        return BK_OK;
    bk_redis *rc = conn(r, e);
    if (rc == NULL)
        return BK_ERR;
    redisReply *rep = bk_redis_command(rc, e, "SCRIPT LOAD %s", s->src);
    if (rep == NULL)
        return bk_err_prefix(e, "log %s", r->where);
    if (rep->type != REDIS_REPLY_STRING || rep->len != 40) {
        freeReplyObject(rep);
        return bk_err_set(e, BK_E_PROTO, "log %s: SCRIPT LOAD gave no sha", r->where);
    }
    memcpy(s->sha, rep->str, 40);
    s->sha[40] = '\0';
    freeReplyObject(rep);
    return BK_OK;
}

static void set_head(const char **argv, size_t *lens, const script *s, const char *nk) {
    argv[0] = "EVALSHA";
    lens[0] = 7;
    argv[1] = s->sha;
    lens[1] = 40;
    argv[2] = nk;
    lens[2] = strlen(nk);
}

/* EVALSHA of a script, loading it first and again on NOSCRIPT. argv[0..2]
 * are left free for "EVALSHA", the sha and the number of keys. */
static redisReply *run_script(bk_rlog_redis *r, script *s, int nkeys, int argc,
                              const char **argv, size_t *lens, bk_err *e) {
    bk_redis *rc = conn(r, e);
    if (rc == NULL)
        return NULL;
    char nk[16];
    snprintf(nk, sizeof(nk), "%d", nkeys);
    for (int attempt = 0; attempt < 2; attempt++) {
        if (load_script(r, s, e) != BK_OK)
            return NULL;
        set_head(argv, lens, s, nk);
        bk_err le;
        bk_err_clear(&le);
        redisReply *rep = bk_redis_commandv(rc, &le, argc, argv, lens);
        if (rep != NULL)
            return rep;
        if (le.code == BK_E_REMOTE && strstr(le.msg, "NOSCRIPT") != NULL) {
            s->sha[0] = '\0'; /* flushed or restarted without it: load again */
            continue;
        }
        if (e != NULL)
            *e = le;
        bk_err_prefix(e, "log %s", r->where);
        return NULL;
    }
    bk_err_set(e, BK_E_REMOTE, "log %s: script not kept by the server", r->where);
    return NULL;
}

/* ---- appending ---- */

/* Run the append script now (*offset set), or when `fmt` is not NULL,
 * only format its EVALSHA into *fmt, *fmtlen (for the pipeline). */
static int append_now(bk_rlog_redis *r, const void *key, size_t key_len,
                      const void *value, size_t len, const bk_rlog_header *headers,
                      size_t nheaders, int64_t *offset, char **fmt, size_t *fmtlen,
                      bk_err *e) {
    if ((key == NULL && key_len > 0) || (value == NULL && len > 0) ||
        (headers == NULL && nheaders > 0) || nheaders > 1000)
        return bk_err_set(e, BK_E_INVAL, "cannot append to log %s: bad argument",
                          r->where);
    size_t argc = 3 + 3 + 2 + 4 + 2 * nheaders;
    const char **argv = malloc(argc * sizeof(*argv));
    size_t *lens = malloc(argc * sizeof(*lens));
    char **names = calloc(nheaders ? nheaders : 1, sizeof(*names));
    int rc = BK_ERR;
    if (argv == NULL || lens == NULL || names == NULL) {
        bk_err_set(e, BK_E_NOMEM, "out of memory");
        goto out;
    }
    size_t n = 3;
    argv[n] = r->stream, lens[n++] = strlen(r->stream);
    argv[n] = r->counter, lens[n++] = strlen(r->counter);
    argv[n] = r->ids, lens[n++] = strlen(r->ids);
    /* the request id: the last header of that name, as rec_header reads it */
    const bk_rlog_header *rid = NULL;
    for (size_t i = 0; i < nheaders; i++)
        if (headers[i].name != NULL && strcmp(headers[i].name, BK_RLOG_H_REQUEST_ID) == 0)
            rid = &headers[i];
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
    if (fmt != NULL) {
        if (load_script(r, &r->append, e) != BK_OK) {
            bk_err_prefix(e, "cannot append");
            goto out;
        }
        set_head(argv, lens, &r->append, "3");
        long long fl = redisFormatCommandArgv(fmt, (int)n, argv, lens);
        if (fl < 0) {
            bk_err_set(e, BK_E_NOMEM, "out of memory");
            goto out;
        }
        *fmtlen = (size_t)fl;
        rc = BK_OK;
        goto out;
    }
    redisReply *rep = run_script(r, &r->append, 3, (int)n, argv, lens, e);
    if (rep == NULL) {
        bk_err_prefix(e, "cannot append");
        goto out;
    }
    if (rep->type != REDIS_REPLY_INTEGER) {
        bk_err_set(e, BK_E_PROTO, "cannot append to log %s: unexpected reply type %d",
                   r->where, rep->type);
    } else {
        *offset = rep->integer;
        note_end(r, rep->integer + 1);
        rc = BK_OK;
    }
    freeReplyObject(rep);
out:
    if (names != NULL)
        for (size_t i = 0; i < nheaders; i++)
            free(names[i]);
    free(names);
    free(argv);
    free(lens);
    return rc;
}

static int push_done(bk_rlog_redis *r, bk_rlog_delivery_cb cb, void *opaque, int64_t off,
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

/* A failed append: its callback gets the error from serve/flush. */
static void fail_sent(bk_rlog_redis *r, sent *x, const bk_err *e) {
    bk_err *copy = malloc(sizeof(*copy));
    if (copy != NULL)
        *copy = *e;
    if (copy == NULL || push_done(r, x->cb, x->opaque, -1, copy) != BK_OK) {
        free(copy);
        BK_WARN("%s (out of memory: its callback is not called)", e->msg);
    }
}

static int pipe_conn(bk_rlog_redis *r, bk_err *e) {
    if (r->pc != NULL && r->pc->err == 0)
        return BK_OK;
    if (r->pc != NULL)
        redisFree(r->pc);
    char host[256];
    int port = 0;
    if (bk_redis_parse_addr(r->addr, host, sizeof(host), &port, e) != BK_OK)
        return BK_ERR;
    struct timeval tv = {r->timeout_ms / 1000, (r->timeout_ms % 1000) * 1000};
    r->pc = redisConnectWithTimeout(host, port, tv);
    if (r->pc == NULL)
        return bk_err_set(e, BK_E_NOMEM, "out of memory");
    if (r->pc->err != 0) {
        bk_err_set(e, BK_E_IO, "log %s: cannot connect: %s", r->where, r->pc->errstr);
        redisFree(r->pc);
        r->pc = NULL;
        return BK_ERR;
    }
    redisSetTimeout(r->pc, tv);
    return BK_OK;
}

/* Send the formatted appends in one pipeline and read their replies, in
 * order; a NOSCRIPT (the server lost the script) loads it again and sends
 * the rest again. Every one ends in the done queue or failed. */
static void send_out(bk_rlog_redis *r) {
    size_t i = 0;
    for (int round = 0; i < r->nout && round < 3; round++) {
        bk_err e;
        bk_err_clear(&e);
        if (pipe_conn(r, &e) != BK_OK) {
            for (; i < r->nout; i++)
                fail_sent(r, &r->out[i], &e);
            break;
        }
        size_t start = i;
        for (size_t j = i; j < r->nout; j++)
            redisAppendFormattedCommand(r->pc, r->out[j].cmd, r->out[j].len);
        int noscript = 0;
        for (; i < r->nout; i++) {
            void *vrep = NULL;
            if (redisGetReply(r->pc, &vrep) != REDIS_OK || vrep == NULL) {
                bk_err_set(&e, BK_E_IO, "cannot append to log %s: %s", r->where,
                           r->pc->errstr[0] ? r->pc->errstr : "connection lost");
                redisFree(r->pc);
                r->pc = NULL;
                for (; i < r->nout; i++)
                    fail_sent(r, &r->out[i], &e);
                break;
            }
            redisReply *rep = vrep;
            sent *x = &r->out[i];
            if (noscript) { /* sent again below */
            } else if (rep->type == REDIS_REPLY_INTEGER) {
                note_end(r, rep->integer + 1);
                if (push_done(r, x->cb, x->opaque, rep->integer, NULL) != BK_OK &&
                    x->cb != NULL)
                    x->cb(x->opaque, rep->integer, NULL);
            } else if (rep->type == REDIS_REPLY_ERROR &&
                       strncmp(rep->str, "NOSCRIPT", 8) == 0) {
                noscript = 1;
                start = i;
            } else {
                bk_err_set(&e, rep->type == REDIS_REPLY_ERROR ? BK_E_REMOTE : BK_E_PROTO,
                           "cannot append to log %s: %s", r->where,
                           rep->type == REDIS_REPLY_ERROR ? rep->str
                                                          : "unexpected reply");
                fail_sent(r, x, &e);
            }
            freeReplyObject(rep);
        }
        if (!noscript)
            break;
        i = start;
        r->append.sha[0] = '\0';
        if (load_script(r, &r->append, &e) != BK_OK) {
            for (; i < r->nout; i++)
                fail_sent(r, &r->out[i], &e);
            break;
        }
    }
    for (size_t j = 0; j < r->nout; j++)
        free(r->out[j].cmd);
    r->nout = 0;
}

int bk_rlog_redis_append(bk_rlog_redis *r, const void *key, size_t key_len,
                         const void *value, size_t len, const bk_rlog_header *headers,
                         size_t nheaders, bk_rlog_delivery_cb cb, void *opaque,
                         bk_err *e) {
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
    if (append_now(r, key, key_len, value, len, headers, nheaders, NULL, &cmd, &cl, e) !=
        BK_OK)
        return BK_ERR;
    if (r->nout == 0)
        r->out_since_ms = bk_mono_ms();
    r->out[r->nout++] = (sent){cmd, cl, cb, opaque};
    if (r->nout >= PIPE_MAX)
        send_out(r);
    return BK_OK;
}

int bk_rlog_redis_append_sync(bk_rlog_redis *r, const void *key, size_t key_len,
                              const void *value, size_t len,
                              const bk_rlog_header *headers, size_t nheaders,
                              int64_t *offset, bk_err *e) {
    /* earlier appends go first and are delivered first, as on Kafka */
    (void)bk_rlog_redis_flush(r, 0, NULL);
    int64_t off = -1;
    if (append_now(r, key, key_len, value, len, headers, nheaders, &off, NULL, NULL, e) !=
        BK_OK)
        return BK_ERR;
    if (offset != NULL)
        *offset = off;
    return BK_OK;
}

int bk_rlog_redis_serve(bk_rlog_redis *r, int timeout_ms) {
    /* like a Kafka producer's linger: a caller that serves after every
     * append still gets its appends sent together */
    if (r->nout > 0 && (timeout_ms > 0 || bk_mono_ms() - r->out_since_ms >= LINGER_MS))
        send_out(r);
    if (r->nq == 0) {
        if (timeout_ms > 0) { /* nothing will come: wait as the caller asked */
            struct timespec ts = {timeout_ms / 1000,
                                  (long)(timeout_ms % 1000) * 1000000L};
            nanosleep(&ts, NULL);
        }
        return 0;
    }
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

int bk_rlog_redis_flush(bk_rlog_redis *r, int timeout_ms, bk_err *e) {
    (void)timeout_ms;
    (void)e;
    while (r->nq > 0 || r->nout > 0) {
        if (r->nout > 0)
            send_out(r);
        (void)bk_rlog_redis_serve(r, 0);
    }
    return BK_OK;
}

int bk_rlog_redis_pending(bk_rlog_redis *r) {
    return (int)(r->nq + r->nout);
}

/* ---- reading ---- */

int bk_rlog_redis_seek(bk_rlog_redis *r, int64_t offset, bk_err *e) {
    if (offset < 0)
        return bk_err_set(e, BK_E_INVAL, "invalid log offset %lld", (long long)offset);
    drop_buf(r);
    r->next = offset;
    r->seeked = 1;
    return conn(r, e) != NULL ? BK_OK : BK_ERR;
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

/* One stream entry [id, [f, v, ...]] as a record (one allocation). */
static bk_rlog_rec *make_rec(const redisReply *ent, int64_t seq) {
    const redisReply *kv = ent->element[1];
    if (kv->type != REDIS_REPLY_ARRAY || kv->elements % 2 != 0)
        return NULL;
    size_t nh = 0, bytes = 0;
    for (size_t i = 0; i < kv->elements; i++)
        if (kv->element[i]->type != REDIS_REPLY_STRING)
            return NULL;
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
    x->pub.offset = seq;
    x->pub.key = "";
    x->pub.key_len = 0;
    x->pub.value = "";
    x->pub.len = 0;
    x->pub.ts_ms = -1;
    x->pub.priv_ = &rec_tag;
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
            x->pub.key = vv;
            x->pub.key_len = v->len;
        } else if (f->len == 1 && fv[0] == 'v') {
            x->pub.value = vv;
            x->pub.len = v->len;
        } else if (f->len > 2 && memcmp(fv, "h:", 2) == 0) {
            x->h[x->nh++] = (bk_rlog_header){fv + 2, vv, v->len};
        }
    }
    return &x->pub;
}

static int get_counter(bk_rlog_redis *r, int64_t *end, bk_err *e) {
    const char *argv[] = {"GET", r->counter};
    size_t lens[] = {3, strlen(r->counter)};
    redisReply *rep = cmdv(r, e, 2, argv, lens);
    if (rep == NULL)
        return BK_ERR;
    *end = rep->type == REDIS_REPLY_STRING ? strtoll(rep->str, NULL, 10) : 0;
    freeReplyObject(rep);
    note_end(r, *end);
    return BK_OK;
}

/* XREAD from r->next on into the buffer; returns how many were buffered. */
static int fill(bk_rlog_redis *r, int block_ms, bk_err *e) {
    char last[32], blk[16], cnt[16];
    if (r->next == 0)
        snprintf(last, sizeof(last), "0-0");
    else
        snprintf(last, sizeof(last), "1-%" PRId64, r->next - 1);
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
    redisReply *rep = cmdv(r, e, n, argv, lens);
    if (rep == NULL)
        return BK_ERR;
    const redisReply *ents = NULL;
    if (rep->type == REDIS_REPLY_ARRAY && rep->elements == 1 &&
        rep->element[0]->type == REDIS_REPLY_ARRAY && rep->element[0]->elements == 2 &&
        rep->element[0]->element[1]->type == REDIS_REPLY_ARRAY)
        ents = rep->element[0]->element[1];
    else if (rep->type != REDIS_REPLY_NIL) {
        freeReplyObject(rep);
        return bk_err_set(e, BK_E_PROTO, "log %s: unexpected XREAD reply", r->where);
    }
    size_t k = ents ? ents->elements : 0;
    if (k > 0) {
        bk_rlog_rec **b = realloc(r->buf, k * sizeof(*b));
        if (b == NULL) {
            freeReplyObject(rep);
            return bk_err_set(e, BK_E_NOMEM, "out of memory");
        }
        r->buf = b;
    }
    r->nbuf = r->ibuf = 0;
    int rc = 0;
    int64_t want = r->next;
    for (size_t i = 0; i < k; i++) {
        const redisReply *ent = ents->element[i];
        int64_t seq = -1;
        if (ent->type != REDIS_REPLY_ARRAY || ent->elements != 2 ||
            parse_seq(ent->element[0], &seq) != BK_OK) {
            rc = bk_err_set(e, BK_E_PROTO, "log %s: an entry id is not 1-<offset>",
                            r->where);
            break;
        }
        if (seq != want) {
            if (i == 0) /* I1: never skip ahead */
                rc = bk_err_set(e, BK_E_RLOG_RANGE,
                                "log %s: offset %" PRId64
                                " out of range: deleted (first is %" PRId64 ")",
                                r->where, want, seq);
            break; /* a hole further on: the next read reports it */
        }
        bk_rlog_rec *x = make_rec(ent, seq);
        if (x == NULL) {
            rc = bk_err_set(e, BK_E_PROTO, "log %s: bad entry %" PRId64, r->where, seq);
            break;
        }
        r->buf[r->nbuf++] = x;
        want++;
    }
    freeReplyObject(rep);
    if (rc != 0) {
        drop_buf(r);
        return BK_ERR;
    }
    if (r->nbuf > 0)
        note_end(r, want);
    return (int)r->nbuf;
}

int bk_rlog_redis_poll(bk_rlog_redis *r, int timeout_ms, bk_rlog_rec **rec, bk_err *e) {
    *rec = NULL;
    if (!r->seeked)
        return bk_err_set(e, BK_E_STATE, "log %s is read before a seek", r->where);
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
            r->last_end_ms = bk_mono_ms();
        }
        if (got == 0) {
            /* nothing after next - 1: fine when next is the end; when the
             * counter is past next, those records were there and are gone
             * (read the counter, then look again: no race with appends);
             * when next is past the counter, it is not there yet */
            int64_t end = 0;
            if (get_counter(r, &end, e) != BK_OK)
                return BK_ERR;
            r->last_end_ms = bk_mono_ms();
            if (end == r->next)
                return 0;
            if (end < r->next)
                return bk_err_set(e, BK_E_RLOG_RANGE,
                                  "log %s: offset %" PRId64
                                  " out of range: not yet there (end is %" PRId64 ")",
                                  r->where, r->next, end);
            got = fill(r, 0, e);
            if (got < 0)
                return BK_ERR;
            if (got == 0)
                return bk_err_set(e, BK_E_RLOG_RANGE,
                                  "log %s: offset %" PRId64
                                  " out of range: deleted (the log is empty, end is "
                                  "%" PRId64 ")",
                                  r->where, r->next, end);
        }
    }
    *rec = r->buf[r->ibuf++];
    r->next = (*rec)->offset + 1;
    if (r->ibuf == r->nbuf)
        r->ibuf = r->nbuf = 0;
    return 1;
}

int bk_rlog_redis_is_rec(const bk_rlog_rec *rec) {
    return rec != NULL && rec->priv_ == &rec_tag;
}

void bk_rlog_redis_rec_free(bk_rlog_rec *rec) {
    free(rec); /* pub is the first member of the one allocation */
}

int bk_rlog_redis_rec_header(const bk_rlog_rec *rec, const char *name, const void **value,
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

/* ---- offsets and deletion ---- */

int bk_rlog_redis_offsets(bk_rlog_redis *r, int64_t *first, int64_t *end, bk_err *e) {
    const char *argv[5];
    size_t lens[5];
    argv[3] = r->stream, lens[3] = strlen(r->stream);
    argv[4] = r->counter, lens[4] = strlen(r->counter);
    redisReply *rep = run_script(r, &r->offsets, 2, 5, argv, lens, e);
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

int64_t bk_rlog_redis_cached_end(bk_rlog_redis *r) {
    return atomic_load(&r->cached_end);
}

/* Deletes the entries below `offset` with the request ids they hold, in
 * chunks of DELETE_CHUNK (one script each, so Redis is never held long):
 * the ids hash keeps the ids of the records still in the log only, and a
 * late retry of a deleted record is appended again, as on Kafka (the
 * application tells a repeat by its request id, the result key keeps the
 * first result). */
int bk_rlog_redis_delete_below(bk_rlog_redis *r, int64_t offset, bk_err *e) {
    if (offset <= 0)
        return BK_OK;
    char below[32], count[16];
    snprintf(below, sizeof(below), "%" PRId64, offset);
    snprintf(count, sizeof(count), "%d", DELETE_CHUNK);
    for (;;) {
        const char *argv[7];
        size_t lens[7];
        argv[3] = r->stream, lens[3] = strlen(r->stream);
        argv[4] = r->ids, lens[4] = strlen(r->ids);
        argv[5] = below, lens[5] = strlen(below);
        argv[6] = count, lens[6] = strlen(count);
        redisReply *rep = run_script(r, &r->del, 2, 7, argv, lens, e);
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
