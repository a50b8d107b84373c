/* rlog_redis_int.h - what the files of the Redis Streams back end share
 * (rlog_redis.c: the handle, appending, offsets and deletion;
 * rlog_redis_read.c: reading and adopting foreign entries;
 * rlog_redis_lua.c: the scripts). Not for use outside common/log/. */
#ifndef BK_RLOG_REDIS_INT_H
#define BK_RLOG_REDIS_INT_H

#include <inttypes.h>
#include <pthread.h>
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
#define PF_MAX 4000 /* records read ahead by the prefetch thread at most */
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
    size_t nbuf, ibuf, capbuf;
    char head[64];       /* the id of the entry at which fill stopped, "" none */
    int64_t last_end_ms; /* when the counter was last read by poll */
    int64_t adopt_fail_ms, adopt_warn_ms;
    atomic_llong cached_end;
    /* prefetch (bk_rlog_settings.prefetch, rlog_redis_read.c): a thread on
     * its own connection reads the records that follow pf_next into pf_q
     * while records are there one after another; at the end of the log, a
     * gap, a foreign entry or an error it halts, and poll reads (and looks
     * again) on the handle's connection as without prefetch, then resumes
     * it after what it read. pf_gen changes on each seek: a read begun
     * before is dropped. */
    int pf_on;
    pthread_t pf_thr;
    pthread_mutex_t pf_mu;
    pthread_cond_t pf_cv;
    bk_redis *pf_rc;    /* the thread's connection (the thread's only) */
    bk_rlog_rec **pf_q; /* PF_MAX slots, pf_n used, in offset order */
    size_t pf_n;
    int64_t pf_next; /* the offset the thread reads next */
    unsigned pf_gen;
    int pf_halt, pf_quit;
} rlog_redis;

typedef struct rrec {
    bk_rlog_irec base; /* first: the public record and the ops */
    size_t nh;
    bk_rlog_header *h;
} rrec;

static inline rlog_redis *R(bk_rlog *l) {
    return (rlog_redis *)l;
}

/* Raise the cached end to `end` (never lower it). */
static inline void rr_note_end(rlog_redis *r, int64_t end) {
    int64_t cur = atomic_load(&r->cached_end);
    while (end > cur && !atomic_compare_exchange_weak(&r->cached_end, &cur, end))
        ;
}

/* The scripts (rlog_redis_lua.c). */
extern bk_script rr_append_script, rr_adopt_script, rr_offsets_script, rr_delete_script;

/* rlog_redis.c: the reading connection (made on first use), a command and a
 * script on it (errors name the log), and dropping the records read ahead. */
bk_redis *rr_conn(rlog_redis *r, bk_err *e);
redisReply *rr_cmdv(rlog_redis *r, bk_err *e, int argc, const char **argv,
                    const size_t *lens);
redisReply *rr_eval(rlog_redis *r, bk_script *s, int nkeys, int argc, const char **argv,
                    const size_t *lens, bk_err *e);
void rr_drop_buf(rlog_redis *r);

/* rlog_redis_read.c: the prefetch thread (started by redis_open, stopped
 * and its records freed by rr_prefetch_stop). */
int rr_prefetch_start(rlog_redis *r, bk_err *e);
void rr_prefetch_stop(rlog_redis *r);

/* rlog_redis_read.c: the reading side of the ops table. */
int rr_seek(bk_rlog *l, int64_t offset, bk_err *e);
int rr_poll(bk_rlog *l, int timeout_ms, bk_rlog_rec **rec, bk_err *e);
void rr_rec_free(bk_rlog_rec *rec);
int rr_rec_header_at(const bk_rlog_rec *rec, size_t i, bk_rlog_header *h);
int rr_rec_header(const bk_rlog_rec *rec, const char *name, const void **value,
                  size_t *len, bk_err *e);

#endif
