/* gateway.h - br2k-gateway's parts and what they share (not installed).
 *
 *   main.c      options, start, signals, stop
 *   http.c      the HTTP side on libmicrohttpd: routes, checks, answers
 *   submitter.c the one thread that owns the br2k_client (libbr2k): appends,
 *               result waits, resumes the suspended connections
 *   keeper.c    readiness (Redis, the log, a leader) and the metrics hash
 *               br2k:{svc}:gateway-<id>, once a second
 *   limits.c    token buckets per remote address and per request client
 *   page.c      the status page served at /
 *
 * Threads: libmicrohttpd's one internal polling thread runs every handler
 * (so the limiter and the HTTP side's Redis connection need no lock); the
 * submitter thread; the keeper thread. They share `gw_job`s (under gw->mu)
 * and the counters (atomics). */
#ifndef BR2K_GATEWAY_H
#define BR2K_GATEWAY_H

#include <pthread.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

#include "br2k.h"
#include "redis/redis.h"

struct MHD_Connection;

/* Why a request was refused (counted as rejected_<name> in the metrics). */
enum gw_reason {
    GW_R_NOT_FOUND = 0,
    GW_R_METHOD,
    GW_R_MEDIA_TYPE,
    GW_R_TOO_LARGE,
    GW_R_BAD_REQUEST, /* the envelope: malformed_json, missing_field:..., ... */
    GW_R_BAD_SIGNATURE,
    GW_R_BAD_WAIT,
    GW_R_RATE_ADDR,
    GW_R_RATE_CLIENT,
    GW_R_BUSY,
    GW_R_UNAVAILABLE,
    GW_R_COUNT
};
extern const char *const gw_reason_names[GW_R_COUNT];

/* Token buckets keyed by a string (limits.c). Not thread-safe. */
typedef struct gw_limiter gw_limiter;
/* `rate` tokens a second, at most `burst`; rate 0: no limit. NULL when out
 * of memory. */
gw_limiter *gw_limiter_new(double rate, double burst, size_t slots);
void gw_limiter_free(gw_limiter *l);
/* Take a token for `key` at time now_ms: 1 taken, 0 refused with
 * *retry_after_s (>= 1) the seconds until one is there. */
int gw_limiter_take(gw_limiter *l, const char *key, int64_t now_ms, int *retry_after_s);

/* One POST /v1/requests being appended and waited for. Two holders: the
 * connection (until its answer is queued) and the submitter (until
 * libbr2k's final event); freed by the last (gw_job_unref). */
typedef struct gw_job {
    struct gw_job *next; /* the submitter's queue / its list */
    struct MHD_Connection *conn;
    char *body; /* the request JSON text (owned) */
    size_t len;
    char client[72];
    uint64_t seq;
    char id[96]; /* "<client>:<seq>" */
    int wait_ms; /* how long the client waits for the result */
    int64_t t0_ms, deadline_ms;
    int64_t offset; /* the append's offset once known, else -1 */
    /* under gw->mu */
    int refs;
    int answered; /* the HTTP answer below is set */
    int http_status;
    char *answer; /* JSON text (owned) */
} gw_job;

typedef struct gw_cfg {
    const char *service, *redis, *kafka, *kafka_props, *id, *advertise, *listen;
    int max_body, max_waits, wait_ms, max_wait_ms, redis_timeout_ms;
    double rate_addr, burst_addr, rate_client, burst_client;
} gw_cfg;

typedef struct gw {
    gw_cfg cfg;
    pthread_mutex_t mu;
    pthread_cond_t cond;
    gw_job *queue_head, *queue_tail; /* new jobs for the submitter */
    int closed;                      /* the submitter takes no more */
    atomic_int stop;
    atomic_int waiting; /* suspended POSTs (the concurrent waits) */
    atomic_long requests, accepted, answered_result, answered_pending;
    atomic_long rejected[GW_R_COUNT];
    atomic_int ready, redis_ok, log_ok, leader_ok;
    char ready_detail[512]; /* under mu */
    /* latencies of answered POSTs in ms (a ring), under mu */
    double lat[2048];
    size_t nlat, lat_pos;
    br2k_client *client;  /* the submitter's own */
    bk_redis *http_redis; /* the HTTP thread's own */
    gw_limiter *lim_addr, *lim_client;
} gw;

/* submitter.c */
int gw_submitter_start(gw *g, pthread_t *th, char *err, size_t errsize);
/* Hand a job to the submitter, its connection already suspended (refs 2:
 * the connection's and the submitter's). -1 when the submitter has stopped
 * (the job was not taken). */
int gw_submit(gw *g, gw_job *j);
/* After the submitter thread and the HTTP daemon stopped: free the client
 * and the jobs it still held. */
void gw_submitter_release(gw *g);
/* {"error":{"code":CODE,"message":...}} (malloc'd). */
char *gw_error_json(const char *code, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
void gw_job_unref(gw *g, gw_job *j);
/* Record one POST latency. */
void gw_latency_add(gw *g, double ms);

/* keeper.c */
int gw_keeper_start(gw *g, pthread_t *th);

/* http.c: start libmicrohttpd on HOST:PORT; NULL with err filled. */
struct MHD_Daemon *gw_http_start(gw *g, const char *listen, int max_conns, char *err,
                                 size_t errsize);

/* page.c: the status page (HTML, NUL-terminated). */
extern const char gw_page_html[];

#endif
