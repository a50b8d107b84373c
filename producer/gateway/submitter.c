/* submitter.c - the one thread that owns the gateway's br2k_client.
 *
 * libbr2k's client is used by one thread at a time, and its callbacks run
 * inside br2k_poll() on that thread; so one thread takes the jobs the HTTP
 * side queued, appends each with br2k_submit(BR2K_WANT_RESULT) (the
 * idempotent producer, the result read from Redis), polls, and answers a
 * job when its result comes, when its append fails, or when the client's
 * wait ends first (202: the result is then read with GET /v1/results/ID).
 * Answering means: fill the job's answer under gw->mu, then resume the
 * suspended connection, whose handler queues the response (http.c). */
#include <inttypes.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <microhttpd.h>

#include "base/clock.h"
#include "base/log.h"
#include "gateway.h"

#define POLL_MS 2 /* br2k_poll's wait when requests are pending */

void gw_latency_add(gw *g, double ms) {
    pthread_mutex_lock(&g->mu);
    size_t cap = sizeof(g->lat) / sizeof(g->lat[0]);
    g->lat[g->lat_pos] = ms;
    g->lat_pos = (g->lat_pos + 1) % cap;
    if (g->nlat < cap)
        g->nlat++;
    pthread_mutex_unlock(&g->mu);
}

void gw_job_unref(gw *g, gw_job *j) {
    pthread_mutex_lock(&g->mu);
    int left = --j->refs;
    pthread_mutex_unlock(&g->mu);
    if (left > 0)
        return;
    free(j->body);
    free(j->answer);
    free(j);
}

int gw_submit(gw *g, gw_job *j) {
    pthread_mutex_lock(&g->mu);
    if (g->closed) {
        pthread_mutex_unlock(&g->mu);
        return -1;
    }
    j->next = NULL;
    if (g->queue_tail != NULL)
        g->queue_tail->next = j;
    else
        g->queue_head = j;
    g->queue_tail = j;
    pthread_cond_signal(&g->cond);
    pthread_mutex_unlock(&g->mu);
    return 0;
}

/* Answer the job's connection unless it was answered already; takes
 * `answer` (malloc'd JSON text). */
static void answer(gw *g, gw_job *j, int status, char *text) {
    pthread_mutex_lock(&g->mu);
    int first = !j->answered;
    if (first) {
        j->answered = 1;
        j->http_status = status;
        j->answer = text;
        text = NULL;
    }
    pthread_mutex_unlock(&g->mu);
    free(text);
    if (!first)
        return;
    gw_latency_add(g, (double)(bk_mono_ms() - j->t0_ms));
    if (status == MHD_HTTP_OK)
        atomic_fetch_add(&g->answered_result, 1);
    else if (status == MHD_HTTP_ACCEPTED)
        atomic_fetch_add(&g->answered_pending, 1);
    /* the connection is suspended until this call and touches the job only
     * after it */
    MHD_resume_connection(j->conn);
}

static char *pending_json(const gw_job *j) {
    json_t *o =
        json_pack("{s:s,s:s,s:s}", "id", j->id, "status", "pending", "location", "");
    char loc[160];
    snprintf(loc, sizeof(loc), "/v1/results/%s", j->id);
    json_object_set_new(o, "location", json_string(loc));
    json_object_set_new(o, "offset",
                        j->offset >= 0 ? json_integer(j->offset) : json_null());
    char *s = json_dumps(o, JSON_COMPACT | JSON_SORT_KEYS);
    json_decref(o);
    return s;
}

typedef struct sub {
    gw *g;
    gw_job *live; /* jobs libbr2k holds (the submitter's reference) */
} sub;

static sub S;

static void drop_live(gw_job *j) {
    for (gw_job **p = &S.live; *p != NULL; p = &(*p)->next)
        if (*p == j) {
            *p = j->next;
            return;
        }
}

static void on_event(const br2k_event *ev) {
    gw_job *j = ev->opaque;
    gw *g = S.g;
    switch (ev->type) {
    case BR2K_EV_APPENDED:
        j->offset = ev->offset;
        atomic_fetch_add(&g->accepted, 1);
        if (j->wait_ms == 0)
            answer(g, j, MHD_HTTP_ACCEPTED, pending_json(j));
        return;
    case BR2K_EV_RESULT:
        answer(g, j, MHD_HTTP_OK, strdup(ev->result));
        break;
    case BR2K_EV_FAILED:
        if (ev->offset >= 0 || j->offset >= 0)
            answer(g, j, MHD_HTTP_ACCEPTED, pending_json(j));
        else {
            atomic_fetch_add(&g->rejected[GW_R_UNAVAILABLE], 1);
            answer(g, j, MHD_HTTP_SERVICE_UNAVAILABLE,
                   gw_error_json("append_failed", "the log did not take request '%s': %s",
                                 j->id, ev->error ? ev->error->msg : "unknown error"));
        }
        break;
    }
    drop_live(j);
    gw_job_unref(g, j);
}

static void take_new(gw *g, int idle) {
    pthread_mutex_lock(&g->mu);
    if (idle && g->queue_head == NULL && !atomic_load(&g->stop)) {
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        ts.tv_nsec += 50 * 1000000L;
        if (ts.tv_nsec >= 1000000000L) {
            ts.tv_sec++;
            ts.tv_nsec -= 1000000000L;
        }
        pthread_cond_timedwait(&g->cond, &g->mu, &ts);
    }
    gw_job *q = g->queue_head;
    g->queue_head = g->queue_tail = NULL;
    pthread_mutex_unlock(&g->mu);
    while (q != NULL) {
        gw_job *j = q;
        q = q->next;
        j->next = S.live;
        S.live = j;
        br2k_error err;
        if (br2k_submit(g->client, j->client, j->seq, j->body, j->len, BR2K_WANT_RESULT,
                        on_event, j, &err) != BR2K_OK) {
            atomic_fetch_add(&g->rejected[GW_R_UNAVAILABLE], 1);
            answer(g, j, MHD_HTTP_SERVICE_UNAVAILABLE,
                   gw_error_json("append_failed", "the log did not take request '%s': %s",
                                 j->id, err.msg));
            drop_live(j);
            gw_job_unref(g, j);
        }
    }
}

/* Answer 202 to the jobs whose client wait has ended (they stay in libbr2k
 * until its own result deadline). */
static void expire(gw *g) {
    int64_t now = bk_mono_ms();
    for (gw_job *j = S.live; j != NULL; j = j->next)
        if (now >= j->deadline_ms && j->wait_ms > 0) {
            pthread_mutex_lock(&g->mu);
            int done = j->answered;
            pthread_mutex_unlock(&g->mu);
            if (!done)
                answer(g, j, MHD_HTTP_ACCEPTED, pending_json(j));
        }
}

static void *run(void *arg) {
    gw *g = arg;
    while (!atomic_load(&g->stop)) {
        take_new(g, S.live == NULL);
        if (S.live != NULL) {
            br2k_error err;
            if (br2k_poll(g->client, POLL_MS, &err) == BR2K_ERR)
                BK_DEBUG("poll: %s", err.msg);
        }
        expire(g);
    }
    /* no more jobs; answer whoever still waits: the daemon is stopping */
    pthread_mutex_lock(&g->mu);
    g->closed = 1;
    gw_job *q = g->queue_head;
    g->queue_head = g->queue_tail = NULL;
    pthread_mutex_unlock(&g->mu);
    while (q != NULL) {
        gw_job *j = q;
        q = q->next;
        j->next = S.live;
        S.live = j;
    }
    for (gw_job *j = S.live; j != NULL; j = j->next)
        answer(g, j, MHD_HTTP_SERVICE_UNAVAILABLE,
               gw_error_json("stopping", "the gateway is stopping; poll %s%s",
                             "/v1/results/", j->id));
    return NULL;
}

int gw_submitter_start(gw *g, pthread_t *th, char *err, size_t errsize) {
    br2k_settings s;
    memset(&s, 0, sizeof(s));
    s.kafka = g->cfg.kafka;
    s.redis = g->cfg.redis;
    s.service = g->cfg.service;
    s.kafka_props = g->cfg.kafka_props[0] ? g->cfg.kafka_props : NULL;
    s.timeout_ms = g->cfg.redis_timeout_ms;
    s.result_timeout_ms = g->cfg.max_wait_ms + 1000;
    br2k_error e;
    g->client = br2k_connect(&s, &e);
    if (g->client == NULL) {
        snprintf(err, errsize, "%s", e.msg);
        return -1;
    }
    S.g = g;
    S.live = NULL;
    if (pthread_create(th, NULL, run, g) != 0) {
        snprintf(err, errsize, "cannot start the submitter thread");
        return -1;
    }
    return 0;
}

void gw_submitter_release(gw *g) {
    br2k_free(g->client); /* may still call on_event for appends */
    g->client = NULL;
    while (S.live != NULL) {
        gw_job *j = S.live;
        S.live = j->next;
        gw_job_unref(g, j);
    }
}
