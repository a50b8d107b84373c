/* libbr2k.c - see br2k.h.
 *
 * Inside: the request log (common/log/rlog.h: today the idempotent Kafka
 * producer, acks=all, writing partition 0 of the service topic); one Redis connection for
 * reading results (HMGET of the waiting requests' result fields); one raw hiredis
 * connection subscribed to the service's change channel, so that a result is looked for
 * as soon as the leader announces progress instead of on a timer. A slow timer
 * (POLL_FALLBACK_MS) still looks, so that a lost notification or a worker
 * that does not announce only costs latency.
 *
 * Which result is this append's: the first record of a request id has its
 * result in its hash (results:<client>:<seq / 1024>, field <seq>); a later
 * one (a repeat, or a different request reusing the id) at
 * result:<id>@<offset>, and so does a record that could
 * not be parsed (its header named the id). So once its offset is known a
 * request looks at both keys: the one at its offset is its own; the first
 * one is its own only when that result's "offset" (or "repeat_offset",
 * when the first expired and a repeat took its place) is this append's.
 *
 * Retries (settings.attempt_ms): a waiting request keeps its bytes; when an
 * attempt fails it is scheduled again (retry_at) after a back-off, and
 * re-appended with the same id once due, never while its previous append
 * is still in flight (its delivery report is always waited for, so a
 * report never meets a newer attempt). A failure also asks for the
 * registry to be read again (rediscover), which reconnects only when no
 * append is in flight on the old log. */
#include "br2k.h"

#include <errno.h>
#include <float.h>
#include <fcntl.h>
#include <inttypes.h>
#include <jansson.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "base/clock.h"
#include "base/err.h"
#include "log/kafka_conf.h"
#include "redis/keys.h"
#include "redis/redis.h"
#include "log/rlog.h"

#define POLL_FALLBACK_MS 50 /* look for results at least this often */
#define POLL_NOSUB_MS 5     /* ... and this often without a subscription */
#define LOOK_CHUNK 256      /* requests per look (round trip) */
#define SERVE_SLICE_MS 1    /* appends in flight: serve the log this often */

typedef struct req {
    br2k_client *c;
    char *id;     /* "<client>:<seq>" */
    char *key;    /* the hash of its result in Redis (br2k_result_key); the
                     field: the seq, after id's last ':' */
    char *at_key; /* ... at this append's offset, once delivered */
    int flags;
    br2k_event_cb cb;
    void *opaque;
    double t0, deadline; /* monotonic ms */
    int64_t offset;
    int delivered;     /* the delivery report was served */
    int looked_at_ssi; /* looked for when SSI already covered it */
    int finished;      /* the final event was served */
    char *result;      /* a result that came before the delivery report */
    int accepted;      /* of `result` */
    int waiting;       /* in the waiting list */
    /* retries (c->attempt_ms > 0) */
    char *client_id; /* the record's key */
    void *value;     /* the request's bytes, to send again */
    size_t len;
    double attempt_end; /* this attempt's result wait ends (monotonic ms) */
    double retry_at;    /* > 0: to be sent again at this time */
    int attempts;
    int appended_told;               /* BR2K_EV_APPENDED was served */
    struct req *prev, *next;         /* the waiting list */
    struct req *all_prev, *all_next; /* every request not freed */
} req;

struct br2k_client {
    char service[201];
    char topic[256];
    char redis_addr[256];
    char kafka[1024], kafka_props[2048];
    int timeout_ms, result_timeout_ms;
    int attempt_ms, backoff_ms; /* retries: 0, none */
    char eth_rpc[1024], registry[64];
    int need_discover;  /* a failure since the last read of the registry */
    double discover_at; /* not before (monotonic ms) */
    br2k_stats stats;
    bk_rlog *log;
    size_t appending;    /* appends whose delivery is not served yet */
    bk_redis *redis;     /* results; connected lazily */
    redisContext *sub;   /* subscribed to the change channel, or NULL */
    double sub_retry_at; /* when to try subscribing again */
    int notified;        /* a notification came since the last look */
    int look_all;        /* look at every waiting request next time */
    int64_t ssi;         /* the highest SSI announced */
    int closing;         /* br2k_free(): no more callbacks */
    double last_look;    /* monotonic ms of the last look */
    double next_retry;   /* the earliest scheduled retry (0: none) */
    double next_expire;  /* no attempt or wait ends before this (expire) */
    req *wait_head, *wait_tail;
    req *all;
    size_t nwaiting;
    size_t pending; /* submitted, final event not served */
    int served;     /* events served by the current poll */
};

static int fail(br2k_error *err, int code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static int fail(br2k_error *err, int code, const char *fmt, ...) {
    if (err != NULL) {
        va_list ap;
        va_start(ap, fmt);
        err->code = code;
        vsnprintf(err->msg, sizeof(err->msg), fmt, ap);
        va_end(ap);
    }
    return BR2K_ERR;
}

static void from_bk(br2k_error *err, const bk_err *e) {
    if (err != NULL) {
        /* our codes are BK's up to BK_E_STATE; the log's own are remote */
        err->code = e->code <= BK_E_STATE ? e->code : BR2K_E_REMOTE;
        snprintf(err->msg, sizeof(err->msg), "%.*s", (int)sizeof(err->msg) - 1, e->msg);
    }
}

static void clear(br2k_error *err) {
    if (err != NULL) {
        err->code = 0;
        err->msg[0] = '\0';
    }
}

/* ---- requests and events ---- */

static void req_free(req *r) {
    if (r == NULL)
        return;
    if (r->all_prev != NULL)
        r->all_prev->all_next = r->all_next;
    else if (r->c->all == r)
        r->c->all = r->all_next;
    if (r->all_next != NULL)
        r->all_next->all_prev = r->all_prev;
    free(r->id);
    free(r->key);
    free(r->at_key);
    free(r->result);
    free(r->client_id);
    free(r->value);
    free(r);
}

static void wait_add(br2k_client *c, req *r) {
    r->prev = c->wait_tail;
    r->next = NULL;
    if (c->wait_tail)
        c->wait_tail->next = r;
    else
        c->wait_head = r;
    c->wait_tail = r;
    r->waiting = 1;
    c->nwaiting++;
}

static void wait_del(br2k_client *c, req *r) {
    if (!r->waiting)
        return;
    if (r->prev)
        r->prev->next = r->next;
    else
        c->wait_head = r->next;
    if (r->next)
        r->next->prev = r->prev;
    else
        c->wait_tail = r->prev;
    r->prev = r->next = NULL;
    r->waiting = 0;
    c->nwaiting--;
}

static void emit(br2k_client *c, req *r, br2k_event_type type, const char *result,
                 int accepted, const br2k_error *error) {
    c->served++;
    if (r->cb == NULL || c->closing)
        return;
    br2k_event ev = {type,
                     r->id,
                     r->offset,
                     result,
                     accepted,
                     error,
                     bk_mono_msf() - r->t0,
                     r->opaque,
                     r->attempts > 0 ? r->attempts : 1};
    r->cb(&ev);
}

/* The final event of `r`: free it unless the delivery report (which holds
 * a pointer to it) is still to come. */
static void finish(br2k_client *c, req *r, br2k_event_type type, const char *result,
                   int accepted, const br2k_error *error) {
    wait_del(c, r);
    r->finished = 1;
    c->pending--;
    emit(c, r, type, result, accepted, error);
    if (r->delivered)
        req_free(r);
}

/* Accepted when the result's "status" is "ok" (schemas/result.schema.json). */
static int result_accepted(const char *json) {
    json_t *root = json_loads(json, 0, NULL);
    const char *status = json_string_value(json_object_get(root, "status"));
    int ok = status != NULL && strcmp(status, "ok") == 0;
    json_decref(root);
    return ok;
}

/* Is the result at the request id's first key the one of the append at
 * `offset`: its "offset" or "repeat_offset" is `offset` (a result with
 * neither, from an application that writes no offset, is taken as it is). */
static int result_is_at(const char *json, int64_t offset) {
    json_t *root = json_loads(json, 0, NULL);
    json_t *o = json_object_get(root, "offset"),
           *ro = json_object_get(root, "repeat_offset");
    int yes = (!json_is_integer(o) && !json_is_integer(ro)) ||
              (json_is_integer(o) && json_integer_value(o) == offset) ||
              (json_is_integer(ro) && json_integer_value(ro) == offset);
    json_decref(root);
    return yes;
}

static void got_result(br2k_client *c, req *r, const char *json) {
    int accepted = result_accepted(json);
    if (!r->delivered) { /* hold it: APPENDED comes first */
        wait_del(c, r);
        r->result = strdup(json);
        r->accepted = accepted;
        if (r->result == NULL) {
            br2k_error e = {BR2K_E_NOMEM, "out of memory"};
            finish(c, r, BR2K_EV_FAILED, NULL, 0, &e);
        }
        return;
    }
    finish(c, r, BR2K_EV_RESULT, json, accepted, NULL);
}

/* Schedule `r` (waiting, its append reported) to be sent again after
 * its back-off, if its result wait allows; 0 when it does not. */
/* Lower c->next_expire to t: an attempt or a wait ends then. A poll walks
 * the waiting requests only once something is due (with thousands in
 * flight, a walk per poll was the load generator's busiest loop). */
static void due_at(br2k_client *c, double t) {
    if (t < c->next_expire)
        c->next_expire = t;
}

/* Send r again at `at`; c->next_retry is the earliest of them. */
static void set_retry(br2k_client *c, req *r, double at) {
    r->retry_at = at;
    if (c->next_retry <= 0 || at < c->next_retry)
        c->next_retry = at;
}

static int retry_later(br2k_client *c, req *r) {
    if (c->attempt_ms <= 0 || r->value == NULL || !r->waiting)
        return 0;
    double now = bk_mono_msf();
    double pause = c->backoff_ms;
    for (int i = 1; i < r->attempts && pause < 2000; i++)
        pause *= 2;
    if (pause > 2000)
        pause = 2000;
    if (now + pause >= r->deadline)
        return 0;
    set_retry(c, r, now + pause);
    c->need_discover = 1;
    return 1;
}

/* The log's delivery report of request `opaque`. */
static void delivered(void *opaque, int64_t offset, const bk_err *be) {
    req *r = opaque;
    br2k_client *c = r->c;
    r->delivered = 1;
    c->appending--;
    if (r->finished) { /* timed out meanwhile */
        req_free(r);
        return;
    }
    if (be != NULL || offset < 0) {
        if (retry_later(c, r))
            return;
        br2k_error e;
        fail(&e, BR2K_E_REMOTE, "cannot append request '%s' to '%s': %s", r->id, c->topic,
             be != NULL ? be->msg : "no offset");
        finish(c, r, BR2K_EV_FAILED, NULL, 0, &e);
        return;
    }
    r->offset = offset;
    if (r->attempt_end > 0) /* its attempt's end counts once it is delivered */
        due_at(c, r->attempt_end);
    if (!(r->flags & BR2K_WANT_RESULT)) {
        finish(c, r, BR2K_EV_APPENDED, NULL, 0, NULL);
        return;
    }
    char at[600];
    bk_err ke;
    free(r->at_key);
    r->at_key = NULL;
    if (bk_key_result_at(at, sizeof(at), c->service, r->id, offset, &ke) == BK_OK)
        r->at_key = strdup(at); /* NULL (no memory): the first key only */
    if (!r->appended_told)
        emit(c, r, BR2K_EV_APPENDED, NULL, 0, NULL);
    r->appended_told = 1;
    if (r->result != NULL && result_is_at(r->result, offset)) {
        finish(c, r, BR2K_EV_RESULT, r->result, r->accepted, NULL);
    } else if (r->result != NULL) { /* another append's: wait for our own */
        free(r->result);
        r->result = NULL;
        wait_add(c, r);
    }
}

/* ---- connect and free ---- */

static const char *env_or(const char *name, const char *def) {
    const char *v = getenv(name);
    return v != NULL ? v : def;
}

br2k_client *br2k_connect(const br2k_settings *s, br2k_error *err) {
    br2k_settings env = {0};
    bk_err e;
    bk_err_clear(&e);
    clear(err);
    if (s == NULL) {
        env.kafka = env_or("BR2K_KAFKA", "");
        env.redis = env_or("BR2K_REDIS", NULL);
        env.service = env_or("BR2K_SERVICE", NULL);
        env.kafka_props = env_or("BR2K_KAFKA_PROPS", NULL);
        s = &env;
    }
    const char *svc = s->service != NULL && s->service[0] ? s->service : "default";
    const char *redis = s->redis != NULL && s->redis[0] ? s->redis : "127.0.0.1:6379";
    br2k_client *c = calloc(1, sizeof(*c));
    if (c == NULL) {
        fail(err, BR2K_E_NOMEM, "out of memory");
        return NULL;
    }
    c->ssi = -1;
    c->timeout_ms = s->timeout_ms > 0 ? s->timeout_ms : 3000;
    c->result_timeout_ms = s->result_timeout_ms > 0 ? s->result_timeout_ms : 30000;
    c->attempt_ms = s->attempt_ms > 0 ? s->attempt_ms : 0;
    c->backoff_ms = s->backoff_ms > 0 ? s->backoff_ms : 100;
    snprintf(c->kafka, sizeof(c->kafka), "%s", s->kafka ? s->kafka : "");
    snprintf(c->kafka_props, sizeof(c->kafka_props), "%s",
             s->kafka_props ? s->kafka_props : "");
    if (s->eth_rpc != NULL && s->eth_rpc[0] && s->registry != NULL && s->registry[0]) {
        snprintf(c->eth_rpc, sizeof(c->eth_rpc), "%s", s->eth_rpc);
        snprintf(c->registry, sizeof(c->registry), "%s", s->registry);
    }
    bk_redis_addr ra;
    if (bk_kafka_topic_name(svc, c->topic, sizeof(c->topic), &e) != BK_OK ||
        bk_redis_addr_parse(redis, &ra, &e) != BK_OK) {
        from_bk(err, &e);
        free(c);
        return NULL;
    }
    snprintf(c->service, sizeof(c->service), "%s", svc);
    snprintf(c->redis_addr, sizeof(c->redis_addr), "%s", redis);
    /* the log creates its producer at the first append: check the Kafka
     * settings now, so that a bad one is reported here */
    rd_kafka_conf_t *conf =
        bk_kafka_conf_new(BK_KAFKA_PRODUCER, s->kafka, s->kafka_props, &e);
    if (conf == NULL) {
        from_bk(err, &e);
        free(c);
        return NULL;
    }
    rd_kafka_conf_destroy(conf);
    bk_rlog_settings ls = {s->kafka, c->topic, s->kafka_props, c->timeout_ms};
    c->log = bk_rlog_open(&ls, &e);
    if (c->log == NULL) {
        from_bk(err, &e);
        free(c);
        return NULL;
    }
    return c;
}

static void drop_all(br2k_client *c) {
    while (c->wait_head != NULL) {
        req *r = c->wait_head;
        wait_del(c, r);
        r->finished = 1;
        if (r->delivered)
            req_free(r);
    }
}

void br2k_free(br2k_client *c) {
    if (c == NULL)
        return;
    if (c->log != NULL) {
        /* deliveries served while flushing still call back */
        (void)bk_rlog_flush(c->log, 10000, NULL);
        c->closing = 1;
        bk_rlog_close(c->log);
    }
    drop_all(c);
    while (c->all != NULL) /* appends never reported */
        req_free(c->all);
    if (c->sub != NULL)
        redisFree(c->sub);
    bk_redis_free(c->redis);
    free(c);
}

const char *br2k_service(const br2k_client *c) {
    return c->service;
}

const char *br2k_topic(const br2k_client *c) {
    return c->topic;
}

void br2k_get_stats(const br2k_client *c, br2k_stats *st) {
    *st = c->stats;
}

size_t br2k_pending(const br2k_client *c) {
    return c->pending;
}

int br2k_result_key(const br2k_client *c, const char *client_id, uint64_t seq, char *buf,
                    size_t size) {
    char id[300], field[24];
    int n = snprintf(id, sizeof(id), "%s:%" PRIu64, client_id, seq);
    if (n < 0 || (size_t)n >= sizeof(id))
        return BR2K_ERR;
    return bk_key_results(buf, size, field, sizeof(field), c->service, id, NULL) == BK_OK
               ? BR2K_OK
               : BR2K_ERR;
}

/* ---- results ---- */

static int64_t parse_i64(const char *s, size_t len) {
    int64_t v = 0;
    size_t i = 0;
    if (len == 0)
        return -1;
    for (; i < len && s[i] >= '0' && s[i] <= '9' && v < INT64_MAX / 10 - 10; i++)
        v = v * 10 + (s[i] - '0');
    return i == len ? v : -1;
}

/* A message on the changes channel: any message makes us look; one that
 * is only a number is the new SSI, which bounds what to look for. */
static void on_message(br2k_client *c, const redisReply *m) {
    if (m->type != REDIS_REPLY_ARRAY || m->elements < 3 ||
        m->element[0]->type != REDIS_REPLY_STRING ||
        strcmp(m->element[0]->str, "message") != 0)
        return;
    const redisReply *payload = m->element[2];
    int64_t ssi =
        payload->type == REDIS_REPLY_STRING ? parse_i64(payload->str, payload->len) : -1;
    c->notified = 1;
    if (ssi > c->ssi)
        c->ssi = ssi;
    else if (ssi < 0)
        c->look_all = 1; /* not an SSI: look at everything */
}

static void unsubscribe(br2k_client *c) {
    if (c->sub != NULL)
        redisFree(c->sub);
    c->sub = NULL;
    c->sub_retry_at = bk_mono_msf() + 1000;
    c->notified = 1; /* we may have missed something */
    c->look_all = 1;
}

/* Subscribe to the changes channel; on failure, retry at most once a
 * second (results are still found by the fallback timer). */
static int subscribe(br2k_client *c) {
    if (c->sub != NULL)
        return BR2K_OK;
    if (bk_mono_msf() < c->sub_retry_at)
        return BR2K_ERR;
    char chan[BK_KEY_MAX];
    c->sub = bk_redis_connect(c->redis_addr, c->timeout_ms, NULL);
    if (c->sub == NULL) {
        unsubscribe(c);
        return BR2K_ERR;
    }
    (void)bk_key_changes(chan, sizeof(chan), c->service, NULL); /* checked at connect */
    redisReply *rep = redisCommand(c->sub, "SUBSCRIBE %s", chan);
    int ok = rep != NULL && rep->type == REDIS_REPLY_ARRAY;
    if (rep)
        freeReplyObject(rep);
    if (!ok) {
        unsubscribe(c);
        return BR2K_ERR;
    }
    return BR2K_OK;
}

/* Read what the subscription has (the caller saw its socket readable). */
static void read_sub(br2k_client *c) {
    if (redisBufferRead(c->sub) != REDIS_OK) {
        unsubscribe(c);
        return;
    }
    for (;;) {
        void *rep = NULL;
        if (redisGetReplyFromReader(c->sub, &rep) != REDIS_OK) {
            unsubscribe(c);
            return;
        }
        if (rep == NULL)
            return;
        on_message(c, rep);
        freeReplyObject(rep);
    }
}

/* May `r` have a result now? Delivered requests only up to the announced
 * SSI; undelivered ones (the report may be late) on every full look. */
static int worth_looking(const br2k_client *c, const req *r, int full) {
    if (r->retry_at > 0)
        return 0; /* to be sent again: its old attempt's keys may not be ours */
    if (full)
        return 1;
    return r->delivered && r->offset <= c->ssi && !r->looked_at_ssi;
}

/* Read the results of the waiting requests worth looking at: the request
 * id's field in its hash (the requests of one hash: one HMGET), and once
 * delivered the key at its offset (one MGET), in one round trip. */
static int look(br2k_client *c, int full, br2k_error *err) {
    bk_err e;
    bk_err_clear(&e);
    if (c->redis == NULL) {
        c->redis = bk_redis_new(c->redis_addr, c->timeout_ms, &e);
        if (c->redis == NULL) {
            from_bk(err, &e);
            return BR2K_ERR;
        }
    }
    full = full || c->look_all;
    c->last_look = bk_mono_msf();
    c->notified = 0;
    c->look_all = 0;
    req *batch[LOOK_CHUNK];
    /* per request: its HMGET (command) and its place in the reply, and
     * its place in the MGET of the keys at an offset (-1: none) */
    int cmd_of[LOOK_CHUNK], pos_of[LOOK_CHUNK], at_of[LOOK_CHUNK];
    const char *argv[4 * LOOK_CHUNK + 2];
    bk_redis_cmd cmds[LOOK_CHUNK + 1];
    redisReply *reps[LOOK_CHUNK + 1];
    req *r = c->wait_head;
    while (r != NULL) {
        size_t n = 0, k = 0, nat = 0;
        for (; r != NULL && n < LOOK_CHUNK; r = r->next)
            if (worth_looking(c, r, full)) {
                at_of[n] = r->at_key != NULL ? (int)nat++ : -1;
                batch[n++] = r;
            }
        if (n == 0)
            break;
        /* the requests by hash (a few clients' requests interleave) */
        const char *gkey[LOOK_CHUNK];
        for (size_t i = 0; i < n; i++) {
            int g = -1;
            for (size_t j = k; g < 0 && j > 0; j--) /* the latest first */
                if (strcmp(gkey[j - 1], batch[i]->key) == 0)
                    g = (int)j - 1;
            if (g < 0) {
                g = (int)k;
                gkey[k] = batch[i]->key;
                cmds[k++] = (bk_redis_cmd){2, NULL, NULL};
            }
            cmd_of[i] = g;
            pos_of[i] = cmds[g].argc++ - 2;
        }
        const char **a = argv; /* each HMGET's arguments, then the MGET's */
        for (size_t j = 0; j < k; j++) {
            cmds[j].argv = a;
            a += cmds[j].argc;
        }
        for (size_t i = 0; i < n; i++) {
            const char **v = (const char **)cmds[cmd_of[i]].argv;
            v[0] = "HMGET";
            v[1] = batch[i]->key;
            v[2 + pos_of[i]] = strrchr(batch[i]->id, ':') + 1;
        }
        if (nat > 0) {
            const char **c0 = a;
            *a++ = "MGET";
            for (size_t i = 0; i < n; i++)
                if (at_of[i] >= 0)
                    *a++ = batch[i]->at_key;
            cmds[k++] = (bk_redis_cmd){(int)(a - c0), c0, NULL};
        }
        if (bk_redis_pipeline(c->redis, 1, k, cmds, reps, &e) != BK_OK) {
            from_bk(err, &e);
            return BR2K_ERR;
        }
        int bad = 0;
        for (size_t j = 0; j < k; j++)
            bad |=
                reps[j]->type != REDIS_REPLY_ARRAY ||
                reps[j]->elements != (size_t)cmds[j].argc - (j + 1 == k && nat ? 1 : 2);
        /* callbacks may submit (appending to the list) but `r`, the next
         * request to look at, is not freed by handling this batch */
        for (size_t i = 0; i < n && !bad; i++) {
            req *q = batch[i];
            const redisReply *first = reps[cmd_of[i]]->element[pos_of[i]], *mine = NULL;
            if (at_of[i] >= 0)
                mine = reps[k - 1]->element[at_of[i]];
            q->looked_at_ssi = q->delivered && q->offset <= c->ssi;
            if (mine != NULL && mine->type == REDIS_REPLY_STRING)
                got_result(c, q, mine->str); /* this append's own */
            else if (first->type == REDIS_REPLY_STRING &&
                     (!q->delivered || result_is_at(first->str, q->offset)))
                got_result(c, q, first->str); /* checked at delivery if not yet */
        }
        for (size_t j = 0; j < k; j++)
            freeReplyObject(reps[j]);
        if (bad) {
            fail(err, BR2K_E_REMOTE, "cannot read results from Redis: unexpected reply");
            return BR2K_ERR;
        }
    }
    return BR2K_OK;
}

static void expire(br2k_client *c) {
    double now = bk_mono_msf();
    if (now < c->next_expire)
        return;
    c->next_expire = DBL_MAX; /* lowered by what is due, from here on */
    double next = DBL_MAX;
    req *r = c->wait_head;
    while (r != NULL) {
        req *after = r->next;
        /* an attempt with no result in time, its append reported: again */
        if (now < r->deadline && r->retry_at <= 0 && r->attempt_end > 0 &&
            now >= r->attempt_end && r->delivered && retry_later(c, r)) {
            r = after;
            continue;
        }
        if (now >= r->deadline) {
            br2k_error e;
            fail(&e, BR2K_E_TIMEOUT, "no result for request '%s' within %d ms", r->id,
                 (int)(r->deadline - r->t0));
            finish(c, r, BR2K_EV_FAILED, NULL, 0, &e);
            r = after;
            continue;
        }
        if (r->deadline < next)
            next = r->deadline;
        /* an attempt's end that passed counts again when it is delivered
         * (delivered) or sent again (resend_due) */
        if (r->retry_at <= 0 && r->attempt_end > now && r->attempt_end < next)
            next = r->attempt_end;
        r = after;
    }
    due_at(c, next);
}

static int append_req(br2k_client *c, req *r, const char *client_id, const void *value,
                      size_t len, bk_err *e);

/* Read the registry again after a failure (at most once a second); when it
 * names another log or results location and no append is in flight on the
 * old log, move there and send every waiting request again. */
static void rediscover(br2k_client *c) {
    double now = bk_mono_msf();
    if (!c->need_discover || c->eth_rpc[0] == '\0' || now < c->discover_at)
        return;
    c->discover_at = now + 1000;
    c->need_discover = 0;
    c->stats.rediscoveries++;
    br2k_discovery d;
    br2k_settings s;
    br2k_error err;
    memset(&s, 0, sizeof(s));
    if (br2k_discover(c->eth_rpc, c->registry, &d, &s, &err) != BR2K_OK) {
        c->need_discover = 1; /* the chain may be down too: again later */
        return;
    }
    const char *redis = s.redis != NULL && s.redis[0] ? s.redis : c->redis_addr;
    if (strcmp(d.kafka, c->kafka) == 0 && strcmp(redis, c->redis_addr) == 0)
        return; /* the same place: the retries go on there */
    if (c->appending > 0) {
        c->need_discover = 1; /* wait for the old log's reports first */
        return;
    }
    bk_err e;
    bk_err_clear(&e);
    bk_rlog_settings ls = {d.kafka, c->topic, c->kafka_props, c->timeout_ms};
    bk_rlog *log = bk_rlog_open(&ls, &e);
    if (log == NULL)
        return;
    bk_rlog_close(c->log);
    c->log = log;
    bk_redis_free(c->redis);
    c->redis = NULL;
    if (c->sub != NULL)
        redisFree(c->sub);
    c->sub = NULL;
    c->ssi = -1;
    snprintf(c->kafka, sizeof(c->kafka), "%s", d.kafka);
    snprintf(c->redis_addr, sizeof(c->redis_addr), "%s", redis);
    c->stats.reconnects++;
    for (req *r = c->wait_head; r != NULL; r = r->next)
        if (r->value != NULL)
            set_retry(c, r, now); /* waiting on the old place: send again here */
}

/* Send again the requests whose retry is due (none before
 * c->next_retry: no walk). */
static void resend_due(br2k_client *c) {
    rediscover(c);
    double now = bk_mono_msf();
    if (c->next_retry <= 0 || now < c->next_retry)
        return;
    c->next_retry = 0;
    for (req *r = c->wait_head; r != NULL; r = r->next) {
        if (r->retry_at <= 0)
            continue;
        if (r->retry_at > now) {
            set_retry(c, r, r->retry_at);
            continue;
        }
        bk_err e;
        bk_err_clear(&e);
        r->delivered = 0;
        r->offset = -1;
        r->looked_at_ssi = 0;
        free(r->at_key);
        r->at_key = NULL;
        free(r->result);
        r->result = NULL;
        if (append_req(c, r, r->client_id, r->value, r->len, &e) != BK_OK) {
            r->delivered = 1; /* nothing in flight: try again shortly */
            set_retry(c, r, now + 50);
            c->need_discover = 1;
            continue;
        }
        r->retry_at = 0;
        r->attempts++;
        r->attempt_end = now + c->attempt_ms;
        due_at(c, r->attempt_end);
        c->stats.retries++;
    }
}

int br2k_poll(br2k_client *c, int timeout_ms, br2k_error *err) {
    clear(err);
    double end = bk_mono_msf() + (timeout_ms > 0 ? timeout_ms : 0);
    br2k_error lerr = {0, ""};
    int failed = 0;
    c->served = 0;
    for (;;) {
        if (c->appending > 0)
            (void)bk_rlog_serve(c->log, 0);
        if (c->attempt_ms > 0 && c->nwaiting > 0)
            resend_due(c);
        if (c->nwaiting > 0) {
            if (c->sub == NULL)
                (void)subscribe(c);
            /* what the subscription has delivered already, without
             * waiting: also at a timeout of 0 (a paced load generator
             * polls with < 1 ms left), or results would be found only by
             * the fallback look */
            struct pollfd sp = {c->sub != NULL ? c->sub->fd : -1, POLLIN, 0};
            if (c->sub != NULL && poll(&sp, 1, 0) > 0)
                read_sub(c);
            double now = bk_mono_msf();
            double every = c->sub != NULL ? POLL_FALLBACK_MS : POLL_NOSUB_MS;
            int full = now - c->last_look >= every;
            if ((full || c->notified) && look(c, full, &lerr) != BR2K_OK) {
                failed = 1; /* kept; the next look is one interval away */
                c->last_look = now;
                c->notified = 0;
                c->need_discover = 1; /* the results' place may have moved */
            }
            expire(c);
        }
        if (c->served > 0)
            return c->served;
        double left = end - bk_mono_msf();
        if (left <= 0) {
            if (!failed)
                return 0;
            if (err != NULL)
                *err = lerr;
            return BR2K_ERR;
        }
        /* sleep until a delivery, a notification, the fallback look or
         * the end; the log has no descriptor to wait on, so while appends
         * are in flight and results awaited, wait in slices */
        double every = c->sub != NULL ? POLL_FALLBACK_MS : POLL_NOSUB_MS;
        double wait = c->nwaiting > 0 && left > every ? every : left;
        if (c->next_retry > 0 && c->next_retry - bk_mono_msf() < wait)
            wait = c->next_retry - bk_mono_msf() > 0 ? c->next_retry - bk_mono_msf() : 0;
        struct pollfd pfd = {c->sub != NULL ? c->sub->fd : -1, POLLIN, 0};
        if (c->appending > 0 && c->nwaiting > 0) {
            if (c->sub != NULL && poll(&pfd, 1, 0) > 0)
                read_sub(c);
            /* at least 1 ms when there is time left: a slice of 0 would
             * spin through the last fraction of a ms (like the waits
             * below, it may end up to 1 ms late) */
            (void)bk_rlog_serve(c->log, wait <= 0 ? 0 : SERVE_SLICE_MS);
        } else if (c->appending > 0) {
            (void)bk_rlog_serve(c->log, (int)wait + 1);
        } else if (poll(&pfd, 1, (int)wait + 1) > 0 && c->sub != NULL) {
            read_sub(c);
        }
    }
}

int br2k_flush(br2k_client *c, int timeout_ms, br2k_error *err) {
    double end = bk_mono_msf() + timeout_ms;
    clear(err);
    while (c->pending > 0) {
        double left = end - bk_mono_msf();
        if (left <= 0)
            return fail(err, BR2K_E_TIMEOUT, "%zu request(s) still pending after %d ms",
                        c->pending, timeout_ms);
        br2k_error pe;
        if (br2k_poll(c, (int)left + 1, &pe) < 0 && err != NULL)
            *err = pe; /* remembered; the requests keep waiting */
    }
    return BR2K_OK;
}

/* ---- submit and wait ---- */

typedef struct waiter {
    int done, accepted;
    int64_t offset;
    char *json;
    br2k_error error;
} waiter;

static void wait_cb(const br2k_event *ev) {
    waiter *w = ev->opaque;
    if (ev->type == BR2K_EV_APPENDED) {
        w->offset = ev->offset;
        return;
    }
    w->done = 1;
    if (ev->type == BR2K_EV_RESULT) {
        w->accepted = ev->accepted;
        w->json = strdup(ev->result);
        if (w->json == NULL)
            fail(&w->error, BR2K_E_NOMEM, "out of memory");
    } else {
        w->error = *ev->error;
    }
}

int br2k_submit_wait(br2k_client *c, const char *client_id, uint64_t seq,
                     const void *value, size_t len, int timeout_ms, br2k_result *res,
                     br2k_error *err) {
    waiter w = {0, 0, -1, NULL, {0, ""}};
    memset(res, 0, sizeof(*res));
    res->offset = -1;
    if (br2k_submit(c, client_id, seq, value, len, BR2K_WANT_RESULT, wait_cb, &w, err) !=
        BR2K_OK)
        return BR2K_ERR;
    if (timeout_ms > 0) {
        c->wait_tail->deadline = c->wait_tail->t0 + timeout_ms;
        due_at(c, c->wait_tail->deadline);
    }
    br2k_error pe = {0, ""};
    while (!w.done) {
        br2k_error one;
        if (br2k_poll(c, 100, &one) < 0)
            pe = one; /* Redis down: keep trying until the deadline */
    }
    res->offset = w.offset;
    if (w.json == NULL) {
        if (err != NULL)
            *err = w.error.code == BR2K_E_TIMEOUT && pe.code != 0 ? pe : w.error;
        return BR2K_ERR;
    }
    res->accepted = w.accepted;
    res->json = w.json;
    return BR2K_OK;
}

void br2k_result_release(br2k_result *res) {
    if (res == NULL)
        return;
    free(res->json);
    res->json = NULL;
}

/* ---- submit ---- */

/* Read id.client and id.seq from a request's JSON text. */
static int id_from_json(const void *value, size_t len, char *client, size_t size,
                        uint64_t *seq, br2k_error *err) {
    json_error_t je;
    json_t *root = json_loadb(value, len, 0, &je);
    if (root == NULL)
        return fail(err, BR2K_E_INVAL, "invalid request: %s (line %d)", je.text, je.line);
    json_t *id = json_object_get(root, "id");
    const char *cl = json_string_value(json_object_get(id, "client"));
    json_t *sq = json_object_get(id, "seq");
    int rc = BR2K_OK;
    if (cl == NULL || !json_is_integer(sq) || json_integer_value(sq) < 0)
        rc = fail(err, BR2K_E_INVAL,
                  "invalid request: expected 'id' with a string 'client' and an "
                  "integer 'seq' >= 0");
    else if ((size_t)snprintf(client, size, "%s", cl) >= size)
        rc = fail(err, BR2K_E_INVAL, "invalid request: 'id.client' is too long");
    else
        *seq = (uint64_t)json_integer_value(sq);
    json_decref(root);
    return rc;
}

int br2k_submit(br2k_client *c, const char *client_id, uint64_t seq, const void *value,
                size_t len, int flags, br2k_event_cb cb, void *opaque, br2k_error *err) {
    char client[256], id[300], key[600];
    clear(err);
    if (client_id == NULL) {
        if (id_from_json(value, len, client, sizeof(client), &seq, err) != BR2K_OK)
            return BR2K_ERR;
        client_id = client;
    }
    if (client_id[0] == '\0' || strlen(client_id) > 200)
        return fail(err, BR2K_E_INVAL,
                    "invalid client id '%.40s': expected 1 to 200 bytes", client_id);
    snprintf(id, sizeof(id), "%s:%" PRIu64, client_id, seq);
    if (br2k_result_key(c, client_id, seq, key, sizeof(key)) != BR2K_OK)
        return fail(err, BR2K_E_INVAL, "request id '%s' is too long", id);
    req *r = calloc(1, sizeof(*r));
    if (r != NULL) {
        r->c = c;
        r->id = strdup(id);
        r->key = strdup(key);
    }
    if (r == NULL || r->id == NULL || r->key == NULL) {
        req_free(r);
        return fail(err, BR2K_E_NOMEM, "out of memory");
    }
    r->flags = flags;
    r->cb = cb;
    r->opaque = opaque;
    r->offset = -1;
    r->t0 = bk_mono_msf();
    r->deadline = r->t0 + c->result_timeout_ms;
    if ((flags & BR2K_WANT_RESULT) && c->sub == NULL)
        (void)subscribe(c); /* before the append, so no announcement is missed */
    if ((flags & BR2K_WANT_RESULT) && c->attempt_ms > 0) { /* kept to send again */
        r->client_id = strdup(client_id);
        r->value = malloc(len ? len : 1);
        if (r->client_id == NULL || r->value == NULL) {
            req_free(r);
            return fail(err, BR2K_E_NOMEM, "out of memory");
        }
        memcpy(r->value, value, len);
        r->len = len;
        r->attempts = 1;
        r->attempt_end = r->t0 + c->attempt_ms;
        due_at(c, r->attempt_end);
    }
    due_at(c, r->deadline);
    bk_err e;
    bk_err_clear(&e);
    if (append_req(c, r, client_id, value, len, &e) != BK_OK) {
        fail(err, BR2K_E_REMOTE, "%s", e.msg);
        req_free(r);
        return BR2K_ERR;
    }
    r->all_next = c->all;
    if (c->all != NULL)
        c->all->all_prev = r;
    c->all = r;
    c->pending++;
    if (flags & BR2K_WANT_RESULT)
        wait_add(c, r);
    return BR2K_OK;
}

/* Append r's record (its delivery report comes to delivered()); blocks,
 * serving reports, while the producer's queue is full, for up to the
 * client's timeout. */
static int append_req(br2k_client *c, req *r, const char *client_id, const void *value,
                      size_t len, bk_err *e) {
    bk_rlog_header hdr[2] = {{BK_RLOG_H_REQUEST_ID, r->id, strlen(r->id)},
                             {BK_RLOG_H_SCHEMA, "1", 1}};
    double give_up = bk_mono_msf() + c->timeout_ms;
    for (;;) {
        bk_err_clear(e);
        if (bk_rlog_append(c->log, client_id, strlen(client_id), value, len, hdr, 2,
                           delivered, r, e) == BK_OK)
            break;
        /* a full queue drains as deliveries are served; anything else, or
         * a queue that does not drain, is an error */
        if (bk_rlog_pending(c->log) == 0 || bk_mono_msf() >= give_up) {
            char why[200];
            snprintf(why, sizeof(why), "%.199s", e->msg);
            return bk_err_set(e, e->code ? e->code : BK_E_REMOTE,
                              "cannot append request '%s' to '%s': %s", r->id, c->topic,
                              why);
        }
        (void)bk_rlog_serve(c->log, 10);
    }
    c->appending++;
    c->stats.attempts++;
    return BK_OK;
}
