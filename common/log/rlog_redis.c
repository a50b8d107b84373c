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
#include <inttypes.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "base/clock.h"
#include "base/log.h"
#include "log/rlog_int.h"
#include "redis/redis.h"
#include "redis/script.h"

#define READ_COUNT 500
#define END_REFRESH_MS 200
#define PIPE_MAX 256           /* appends sent together */
#define QUEUE_MAX 100000       /* appends queued and not delivered (as librdkafka's) */
#define LINGER_MS 2            /* bk_rlog_serve(l, 0) sends queued appends this old */
#define DELIVERY_MS 300000     /* delivery.timeout.ms by default (as librdkafka's) */
#define RETRY_MIN_MS 50        /* the first wait before sending again */
#define RETRY_MAX_MS 1000      /* ... doubling up to this */
#define ADOPT_RETRY_MS 1000    /* a reader that could not adopt tries again after */
#define DELETE_CHUNK 2000      /* entries deleted by one script */
#define ADOPT_MAX_S "10000"    /* foreign entries adopted by one script at most */
#define FOREIGN_FIELDS_S "500" /* fields of a foreign entry kept (x:<name>) */

/* ---- the scripts ---- */

/* ours(f): the fields of an entry are as BR2K appends or adopts them: k,
 * v, then h:<name> (headers) or x:<name> (an adopted entry's own) pairs. adopt(stream,
 * counter, ids): make every entry after 1-<counter - 1> ours. The dense run that is
 * already of our form (an XADD of exactly what the append script would add) is kept as
 * is, its request id noted; every other entry is deleted and added again, in stream
 * order, at the next offsets as an empty record {k "", v "", h:br2k-foreign <its id>,
 * x:<field> <value>...}; the stream's last id is set back to our last entry (XSETID: a
 * foreign XADD leaves it beyond, even once deleted) and the counter follows. Returns the
 * new counter, or an error reply. Runs read-only when there is nothing to adopt. */
#define LUA_ADOPT                                                                        \
    "local function num(n) return string.format('%d', n) end\n"                          \
    "local function ours(f)\n"                                                           \
    "  if #f < 4 or #f % 2 ~= 0 or f[1] ~= 'k' or f[3] ~= 'v' then return false end\n"   \
    "  for j = 5, #f, 2 do\n"                                                            \
    "    local p = string.sub(f[j], 1, 2)\n"                                             \
    "    if p ~= 'h:' and p ~= 'x:' then return false end\n"                             \
    "  end\n"                                                                            \
    "  return true\n"                                                                    \
    "end\n"                                                                              \
    "local function adopt(s, cn, ids)\n"                                                 \
    "  local cv = redis.call('GET', cn)\n"                                               \
    "  local c = tonumber(cv or '0')\n"                                                  \
    "  local t = redis.call('TYPE', s)['ok']\n"                                          \
    "  if t == 'none' then return c end\n"                                               \
    "  if t ~= 'stream' then\n"                                                          \
    "    return redis.error_reply('BR2K-NOTSTREAM the key ' .. s .. ' is a ' .. t ..\n"  \
    "      ', not the log stream: something else than BR2K wrote it')\n"                 \
    "  end\n"                                                                            \
    "  if not cv then\n"                                                                 \
    "    local h = redis.call('XRANGE', s, '-', '+', 'COUNT', 1)\n"                      \
    "    local q = #h > 0 and string.match(h[1][1], '^1%-(%d+)$')\n"                     \
    "    if q and tonumber(q) > 0 and ours(h[1][2]) then\n"                              \
    "      return redis.error_reply('BR2K-NOCOUNTER the counter ' .. cn .. ' is ' ..\n"  \
    "        'missing but ' .. s .. ' holds records from offset ' .. q .. ': set ' ..\n" \
    "        'it to the last offset + 1')\n"                                             \
    "    end\n"                                                                          \
    "  end\n"                                                                            \
    "  local after = '-'\n"                                                              \
    "  if c > 0 then after = '(1-' .. num(c - 1) end\n"                                  \
    "  local e = redis.call('XRANGE', s, after, '+', 'COUNT', " ADOPT_MAX_S " + 1)\n"    \
    "  if #e > " ADOPT_MAX_S " then\n"                                                   \
    "    return redis.error_reply('BR2K-FOREIGN more than " ADOPT_MAX_S                  \
    " entries after offset ' ..\n"                                                       \
    "      num(c - 1) .. ' of ' .. s .. ' were not appended by BR2K; too many to ' ..\n" \
    "      'adopt: delete the entries after 1-' .. num(c - 1) .. ' (XDEL)')\n"           \
    "  end\n"                                                                            \
    "  local o, i = c, 1\n"                                                              \
    "  while i <= #e and e[i][1] == '1-' .. num(o) and ours(e[i][2]) do\n"               \
    "    local f, rid = e[i][2], nil\n"                                                  \
    "    for j = 5, #f, 2 do\n"                                                          \
    "      if f[j] == 'h:br2k-request-id' then rid = f[j + 1] end\n"                     \
    "    end\n"                                                                          \
    "    if rid then redis.call('HSETNX', ids, rid, num(o)) end\n"                       \
    "    o, i = o + 1, i + 1\n"                                                          \
    "  end\n"                                                                            \
    "  for j = i, #e do redis.call('XDEL', s, e[j][1]) end\n"                            \
    "  local last = '0-0'\n"                                                             \
    "  if o > 0 then last = '1-' .. num(o - 1) end\n"                                    \
    "  local info, lg = redis.call('XINFO', 'STREAM', s), nil\n"                         \
    "  for j = 1, #info, 2 do\n"                                                         \
    "    if info[j] == 'last-generated-id' then lg = info[j + 1] end\n"                  \
    "  end\n"                                                                            \
    "  if lg ~= last then\n"                                                             \
    "    local r = redis.pcall('XSETID', s, last, 'MAXDELETEDID', last)\n"               \
    "    if type(r) == 'table' and r.err then redis.call('XSETID', s, last) end\n"       \
    "  end\n"                                                                            \
    "  for j = i, #e do\n"                                                               \
    "    local f = e[j][2]\n"                                                            \
    "    local a = {'XADD', s, '1-' .. num(o), 'k', '', 'v', '', 'h:br2k-foreign', "     \
    "e[j][1]}\n"                                                                         \
    "    for q = 1, math.min(#f, 2 * " FOREIGN_FIELDS_S "), 2 do\n"                      \
    "      a[#a + 1] = 'x:' .. f[q]\n"                                                   \
    "      a[#a + 1] = f[q + 1] or ''\n"                                                 \
    "    end\n"                                                                          \
    "    redis.call(unpack(a))\n"                                                        \
    "    o = o + 1\n"                                                                    \
    "  end\n"                                                                            \
    "  if o ~= c then redis.call('SET', cn, num(o)) end\n"                               \
    "  return o\n"                                                                       \
    "end\n"

/* KEYS: stream, counter, ids. ARGV: has-id ("1"/"0"), request id, then the
 * field/value pairs of the entry. Returns the offset: the one the request id
 * already has, or the next one, with entry 1-<offset> added and the counter
 * advanced; an XADD that fails (a foreign entry beyond ours) adopts first and
 * adds after it; any other failure is an error reply and changes nothing. */
static const char APPEND_LUA[] = LUA_ADOPT
    "if ARGV[1] == '1' then\n"
    "  local o = redis.call('HGET', KEYS[3], ARGV[2])\n"
    "  if o then return tonumber(o) end\n"
    "end\n"
    "local off = tonumber(redis.call('GET', KEYS[2]) or '0')\n"
    "local a = {'XADD', KEYS[1], '1-' .. num(off)}\n"
    "for i = 3, #ARGV do a[#a + 1] = ARGV[i] end\n"
    "local r = redis.pcall(unpack(a))\n"
    "if type(r) == 'table' and r.err then\n"
    "  local o = adopt(KEYS[1], KEYS[2], KEYS[3])\n"
    "  if type(o) == 'table' then return o end\n"
    "  if ARGV[1] == '1' then\n"
    "    local p = redis.call('HGET', KEYS[3], ARGV[2])\n"
    "    if p then return tonumber(p) end\n"
    "  end\n"
    "  off = o\n"
    "  a[3] = '1-' .. num(off)\n"
    "  r = redis.pcall(unpack(a))\n"
    "  if type(r) == 'table' and r.err then\n"
    "    return redis.error_reply('BR2K-APPEND cannot add entry ' .. a[3] .. ' to ' ..\n"
    "      KEYS[1] .. ': ' .. r.err)\n"
    "  end\n"
    "end\n"
    "redis.call('SET', KEYS[2], num(off + 1))\n"
    "if ARGV[1] == '1' then redis.call('HSET', KEYS[3], ARGV[2], num(off)) end\n"
    "return off\n";

/* KEYS: stream, counter, ids. Adopts (above); returns the new counter. */
static const char ADOPT_LUA[] = LUA_ADOPT "return adopt(KEYS[1], KEYS[2], KEYS[3])\n";

/* KEYS: stream, counter. Returns {first, end}, atomically: end is the
 * counter plus the foreign entries waiting to be adopted (the offset the
 * next append gets), first the seq of the first entry when it is ours
 * (below the counter), else the counter. */
static const char OFFSETS_LUA[] =
    "local c = tonumber(redis.call('GET', KEYS[2]) or '0')\n"
    "local t = redis.call('TYPE', KEYS[1])['ok']\n"
    "if t == 'none' then return {c, c} end\n"
    "if t ~= 'stream' then\n"
    "  return redis.error_reply('BR2K-NOTSTREAM the key ' .. KEYS[1] .. ' is a ' ..\n"
    "    t .. ', not the log stream: something else than BR2K wrote it')\n"
    "end\n"
    "local n = redis.call('XLEN', KEYS[1])\n"
    "local r = redis.call('XRANGE', KEYS[1], '-', '+', 'COUNT', 1)\n"
    "local first, ours = c, 0\n"
    "if #r > 0 then\n"
    "  local seq = string.match(r[1][1], '^1%-(%d+)$')\n"
    "  if seq and tonumber(seq) < c then first = tonumber(seq); ours = c - first end\n"
    "end\n"
    "local pend = n - ours\n"
    "if pend < 0 then pend = 0 end\n"
    "return {first, c + pend}\n";

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

static bk_script append_script = BK_SCRIPT_INIT(APPEND_LUA);
static bk_script adopt_script = BK_SCRIPT_INIT(ADOPT_LUA);
static bk_script offsets_script = BK_SCRIPT_INIT(OFFSETS_LUA);
static bk_script delete_script = BK_SCRIPT_INIT(DELETE_LUA);

/* ---- the handle ---- */

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
    int has_rid;         /* sent again only with a request id, when it may have run */
    int64_t deadline_ms; /* failed when not delivered by then */
} sent;

typedef struct rlog_redis {
    struct bk_rlog base; /* first: the ops */
    char addr[300];      /* redis://HOST:PORT */
    char stream[256];    /* and the keys derived from it */
    char counter[270];
    char ids[270];
    char where[600]; /* "'stream' at redis://HOST:PORT", for messages */
    int timeout_ms;
    int delivery_ms; /* delivery.timeout.ms */
    bk_redis *rc;    /* connected on first use */
    done *q;         /* delivery callbacks to call, in order */
    size_t nq, capq;
    redisContext *pc; /* the pipelined appends' own connection */
    sent *out;        /* appends formatted, not delivered yet, in order */
    size_t nout, capout;
    int64_t out_since_ms; /* when the oldest of out was queued */
    int64_t retry_at_ms;  /* after a failed send: not before then */
    int backoff_ms;
    bk_err send_err; /* why the last send failed */
    int seeked;
    int64_t next;      /* the offset the next poll returns */
    bk_rlog_rec **buf; /* records read, not yet returned */
    size_t nbuf, ibuf;
    char head[64];       /* the id of the entry at which fill stopped, "" none */
    int64_t last_end_ms; /* when the counter was last read by poll */
    int64_t adopt_fail_ms, adopt_warn_ms;
    atomic_llong cached_end;
} rlog_redis;

typedef struct rrec {
    bk_rlog_irec base; /* first: the public record and the ops */
    size_t nh;
    bk_rlog_header *h;
} rrec;

static rlog_redis *R(bk_rlog *l) {
    return (rlog_redis *)l;
}

static void sleep_ms(int64_t ms) {
    if (ms <= 0)
        return;
    struct timespec ts = {(time_t)(ms / 1000), (long)(ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

static void note_end(rlog_redis *r, int64_t end) {
    int64_t cur = atomic_load(&r->cached_end);
    while (end > cur && !atomic_compare_exchange_weak(&r->cached_end, &cur, end))
        ;
}

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

static void drop_buf(rlog_redis *r) {
    for (size_t i = r->ibuf; i < r->nbuf; i++)
        free(r->buf[i]); /* an rrec: one allocation */
    r->nbuf = r->ibuf = 0;
}

static bk_redis *conn(rlog_redis *r, bk_err *e) {
    if (r->rc == NULL) {
        r->rc = bk_redis_new(r->addr, r->timeout_ms, e);
        if (r->rc == NULL)
            bk_err_prefix(e, "log %s", r->where);
    }
    return r->rc;
}

/* A command; an error names the log. */
static redisReply *cmdv(rlog_redis *r, bk_err *e, int argc, const char **argv,
                        const size_t *lens) {
    bk_redis *rc = conn(r, e);
    if (rc == NULL)
        return NULL;
    redisReply *rep = bk_redis_commandv(rc, e, argc, argv, lens);
    if (rep == NULL)
        bk_err_prefix(e, "log %s", r->where);
    return rep;
}

/* A script (keys first in argv); an error names the log. */
static redisReply *eval(rlog_redis *r, bk_script *s, int nkeys, int argc,
                        const char **argv, const size_t *lens, bk_err *e) {
    bk_redis *rc = conn(r, e);
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
    rc = bk_script_format(&append_script, 3, (int)n, argv, lens, cmd, cmdlen, e);
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
    note_end(r, off + 1);
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
    char host[256];
    int port = 0;
    if (bk_redis_parse_addr(r->addr, host, sizeof(host), &port, e) != BK_OK)
        return BK_ERR;
    struct timeval tv = {r->timeout_ms / 1000, (r->timeout_ms % 1000) * 1000};
    r->pc = redisConnectWithTimeout(host, port, tv);
    if (r->pc == NULL)
        return bk_err_set(e, BK_E_NOMEM, "out of memory");
    if (r->pc->err != 0) {
        bk_err_set(e, BK_E_IO, "cannot connect: %s", r->pc->errstr);
        redisFree(r->pc);
        r->pc = NULL;
        return BK_ERR;
    }
    redisSetTimeout(r->pc, tv);
    return BK_OK;
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
            bk_redis *rc = conn(r, &e);
            if (rc != NULL && bk_script_reload(rc, &append_script, &e) == BK_OK)
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
        sleep_ms(wait_for_send(r, left)); /* nothing will come before */
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
        sleep_ms(wait_for_send(r, left));
    }
}

static int redis_pending(bk_rlog *l) {
    rlog_redis *r = R(l);
    return (int)(r->nq + r->nout);
}

typedef struct sync_wait {
    int done;
    int64_t offset;
    bk_err err;
} sync_wait;

static void sync_cb(void *opaque, int64_t offset, const bk_err *e) {
    sync_wait *w = opaque;
    w->done = 1;
    w->offset = offset;
    if (e != NULL)
        w->err = *e;
}

static int redis_append_sync(bk_rlog *l, const void *key, size_t key_len,
                             const void *value, size_t len, const bk_rlog_header *headers,
                             size_t nheaders, int64_t *offset, bk_err *e) {
    rlog_redis *r = R(l);
    /* queued behind earlier appends, delivered after them, as on Kafka */
    sync_wait w = {0, -1, {0, ""}};
    if (redis_append(l, key, key_len, value, len, headers, nheaders, sync_cb, &w, e) !=
        BK_OK)
        return BK_ERR;
    while (!w.done) {
        send_out(r);
        (void)run_callbacks(r);
        if (!w.done)
            sleep_ms(wait_for_send(r, 100));
    }
    if (w.offset < 0) {
        if (e != NULL)
            *e = w.err;
        return BK_ERR;
    }
    if (offset != NULL)
        *offset = w.offset;
    return BK_OK;
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
    drop_buf(r);
    free(r->buf);
    free(r->q);
    free(r->out);
    if (r->pc != NULL)
        redisFree(r->pc);
    bk_redis_free(r->rc);
    free(r);
}

/* ---- reading ---- */

static int redis_seek(bk_rlog *l, int64_t offset, bk_err *e) {
    rlog_redis *r = R(l);
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
    redisReply *rep = cmdv(r, e, 2, argv, lens);
    if (rep == NULL)
        return BK_ERR;
    *end = rep->type == REDIS_REPLY_STRING ? strtoll(rep->str, NULL, 10) : 0;
    freeReplyObject(rep);
    note_end(r, *end);
    r->last_end_ms = bk_mono_ms();
    return BK_OK;
}

/* XREAD after r->next - 1 into the buffer: the records r->next, r->next +
 * 1, ... that follow one another. Returns how many were buffered; r->head
 * is the id of the entry it stopped at when that was the first one (not
 * record r->next: a gap, or an entry that BR2K did not append), else "". */
static int fill(rlog_redis *r, int block_ms, bk_err *e) {
    char last[32], blk[16], cnt[16];
    r->head[0] = '\0';
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
            parse_seq(ent->element[0], &seq) != BK_OK || seq != want ||
            !our_form(ent->element[1])) {
            /* a gap, or a foreign entry (not adopted yet): only the first
             * is looked into (poll); further on, the next fill starts there */
            if (i == 0) {
                const redisReply *id =
                    ent->type == REDIS_REPLY_ARRAY && ent->elements >= 1 ? ent->element[0]
                                                                         : NULL;
                snprintf(r->head, sizeof(r->head), "%.*s",
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

/* Run the adopt script: BK_OK, or BK_ERR with e. */
static int adopt(rlog_redis *r, bk_err *e) {
    const char *argv[] = {r->stream, r->counter, r->ids};
    size_t lens[] = {strlen(r->stream), strlen(r->counter), strlen(r->ids)};
    redisReply *rep = eval(r, &adopt_script, 3, 3, argv, lens, e);
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
        sleep_ms(timeout_ms < ADOPT_RETRY_MS ? timeout_ms : ADOPT_RETRY_MS);
        return 0;
    }
}

static int redis_poll(bk_rlog *l, int timeout_ms, bk_rlog_rec **rec, bk_err *e) {
    rlog_redis *r = R(l);
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
        }
        if (got == 0) {
            got = look_again(r, timeout_ms, e);
            if (got <= 0)
                return got;
        }
    }
    *rec = r->buf[r->ibuf++];
    r->next = (*rec)->offset + 1;
    if (r->ibuf == r->nbuf)
        r->ibuf = r->nbuf = 0;
    return 1;
}

static void redis_rec_free(bk_rlog_rec *rec) {
    free(rec); /* the rrec: one allocation, pub first */
}

static int redis_rec_header(const bk_rlog_rec *rec, const char *name, const void **value,
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

static int redis_offsets(bk_rlog *l, int64_t *first, int64_t *end, bk_err *e) {
    rlog_redis *r = R(l);
    const char *argv[] = {r->stream, r->counter};
    size_t lens[] = {strlen(r->stream), strlen(r->counter)};
    redisReply *rep = eval(r, &offsets_script, 2, 2, argv, lens, e);
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
 * application tells a repeat by its request id, the result key keeps the
 * first result). */
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
        redisReply *rep = eval(r, &delete_script, 2, 4, argv, lens, e);
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

const bk_rlog_ops bk_rlog_redis_ops = {
    .name = "redis",
    .accepts = redis_accepts,
    .open = redis_open,
    .close = redis_close,
    .append = redis_append,
    .append_sync = redis_append_sync,
    .serve = redis_serve,
    .flush = redis_flush,
    .pending = redis_pending,
    .seek = redis_seek,
    .poll = redis_poll,
    .rec_free = redis_rec_free,
    .rec_header = redis_rec_header,
    .offsets = redis_offsets,
    .cached_end = redis_cached_end,
    .delete_below = redis_delete_below,
};
