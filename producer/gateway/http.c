/* http.c - the gateway's HTTP side on libmicrohttpd (see README.md).
 *
 * One internal polling thread (epoll where there is one) runs every
 * handler; a POST /v1/requests that passes its checks is suspended
 * (MHD_suspend_connection) and handed to the submitter thread, which
 * resumes it with the answer: thousands of clients can wait for their
 * results without a thread each. The checks, in order, each answered with
 * {"error":{"code","message"}}:
 *   route 404 not_found, method 405 method_not_allowed, rate per remote
 *   address 429 rate_limited, content type 415 unsupported_media_type, body
 *   size 413 too_large, wait 400 bad_wait, the envelope 400 <its reason code>
 *   (schemas/README.md), the signature 422 bad_signature, rate per request
 *   client 429 rate_limited, concurrent waits 503 busy.
 * A refused request is never appended: the append is the last step. */
#include <arpa/inet.h>
#include <ctype.h>
#include <inttypes.h>
#include <jansson.h>
#include <microhttpd.h>
#include <netinet/in.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "base/clock.h"
#include "base/log.h"
#include "chain/request.h"
#include "gateway.h"
#include "ops.h"
#include "redis/keys.h"

const char *const gw_reason_names[GW_R_COUNT] = {
    "not_found", "method_not_allowed", "unsupported_media_type",
    "too_large", "bad_request",        "bad_signature",
    "bad_wait",  "rate_limited_addr",  "rate_limited_client",
    "busy",      "unavailable"};

/* Per connection request state (*req_cls). */
typedef struct conn_state {
    int is_post;
    char *body;
    size_t len, cap;
    int too_large;
    gw_job *job; /* suspended for this job */
} conn_state;

char *gw_error_json(const char *code, const char *fmt, ...) {
    char msg[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    json_t *o = json_pack("{s:{s:s,s:s}}", "error", "code", code, "message", msg);
    char *s = o != NULL ? json_dumps(o, JSON_COMPACT | JSON_SORT_KEYS) : NULL;
    json_decref(o);
    return s;
}

/* Queue `text` (taken, malloc'd) with `status` and its content type. */
static enum MHD_Result send_text(struct MHD_Connection *c, int status, char *text,
                                 const char *ctype, const char *hname, const char *hval) {
    if (text == NULL)
        return MHD_NO;
    struct MHD_Response *r =
        MHD_create_response_from_buffer(strlen(text), text, MHD_RESPMEM_MUST_FREE);
    if (r == NULL) {
        free(text);
        return MHD_NO;
    }
    MHD_add_response_header(r, MHD_HTTP_HEADER_CONTENT_TYPE, ctype);
    MHD_add_response_header(r, MHD_HTTP_HEADER_CACHE_CONTROL, "no-store");
    if (hname != NULL)
        MHD_add_response_header(r, hname, hval);
    enum MHD_Result ret = MHD_queue_response(c, (unsigned)status, r);
    MHD_destroy_response(r);
    return ret;
}

static enum MHD_Result send_json(struct MHD_Connection *c, int status, char *text) {
    return send_text(c, status, text, "application/json", NULL, NULL);
}

/* Refuse with a JSON error and count the reason. */
static enum MHD_Result refuse(gw *g, struct MHD_Connection *c, int status,
                              enum gw_reason why, const char *code, const char *hname,
                              const char *hval, const char *fmt, ...)
    __attribute__((format(printf, 8, 9)));
static enum MHD_Result refuse(gw *g, struct MHD_Connection *c, int status,
                              enum gw_reason why, const char *code, const char *hname,
                              const char *hval, const char *fmt, ...) {
    char msg[400];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    atomic_fetch_add(&g->rejected[why], 1);
    BK_DEBUG("%d %s: %s", status, code, msg);
    return send_text(c, status, gw_error_json(code, "%s", msg), "application/json", hname,
                     hval);
}

static void remote_addr(struct MHD_Connection *c, char *buf, size_t size) {
    const union MHD_ConnectionInfo *ci =
        MHD_get_connection_info(c, MHD_CONNECTION_INFO_CLIENT_ADDRESS);
    snprintf(buf, size, "?");
    if (ci == NULL || ci->client_addr == NULL)
        return;
    const struct sockaddr *sa = ci->client_addr;
    if (sa->sa_family == AF_INET)
        inet_ntop(AF_INET, &((const struct sockaddr_in *)sa)->sin_addr, buf, size);
    else if (sa->sa_family == AF_INET6)
        inet_ntop(AF_INET6, &((const struct sockaddr_in6 *)sa)->sin6_addr, buf, size);
}

/* ---- the routes ---- */

static enum MHD_Result get_status(gw *g, struct MHD_Connection *c) {
    bk_err e;
    bk_err_clear(&e);
    if (g->http_redis == NULL)
        g->http_redis = bk_redis_new(g->cfg.redis, g->cfg.redis_timeout_ms, &e);
    json_t *st =
        g->http_redis != NULL ? ops_status_json(g->http_redis, g->cfg.service, &e) : NULL;
    if (st == NULL)
        return refuse(g, c, MHD_HTTP_SERVICE_UNAVAILABLE, GW_R_UNAVAILABLE, "unavailable",
                      "Retry-After", "1", "cannot read the status from Redis at %s: %s",
                      g->cfg.redis, e.msg);
    char *text = json_dumps(st, JSON_COMPACT | JSON_SORT_KEYS);
    json_decref(st);
    return send_json(c, MHD_HTTP_OK, text);
}

/* A request id "<client>:<seq>" as the envelope allows it. */
static int request_id_ok(const char *id) {
    const char *colon = strrchr(id, ':');
    if (colon == NULL || colon == id || colon - id > BK_REQUEST_CLIENT_MAX)
        return 0;
    for (const char *p = id; p < colon; p++)
        if (!isalnum((unsigned char)*p) && *p != '.' && *p != '_' && *p != '-')
            return 0;
    const char *s = colon + 1;
    if (*s == '\0' || strlen(s) > 16 || (s[0] == '0' && s[1] != '\0'))
        return 0;
    for (; *s; s++)
        if (!isdigit((unsigned char)*s))
            return 0;
    return 1;
}

static enum MHD_Result get_result(gw *g, struct MHD_Connection *c, const char *id) {
    if (!request_id_ok(id))
        return refuse(g, c, MHD_HTTP_BAD_REQUEST, GW_R_BAD_REQUEST, "bad_request_id",
                      NULL, NULL, "'%s' is not a request id <client>:<seq>", id);
    bk_err e;
    bk_err_clear(&e);
    char key[BK_KEY_MAX], field[24];
    if (bk_key_results(key, sizeof(key), field, sizeof(field), g->cfg.service, id, &e) !=
        BK_OK)
        return refuse(g, c, MHD_HTTP_BAD_REQUEST, GW_R_BAD_REQUEST, "bad_request_id",
                      NULL, NULL, "%s", e.msg);
    if (g->http_redis == NULL)
        g->http_redis = bk_redis_new(g->cfg.redis, g->cfg.redis_timeout_ms, &e);
    redisReply *rep = g->http_redis != NULL
                          ? bk_redis_command(g->http_redis, &e, "HGET %s %s", key, field)
                          : NULL;
    if (rep == NULL)
        return refuse(g, c, MHD_HTTP_SERVICE_UNAVAILABLE, GW_R_UNAVAILABLE, "unavailable",
                      "Retry-After", "1", "cannot read the result from Redis at %s: %s",
                      g->cfg.redis, e.msg);
    enum MHD_Result ret;
    if (rep->type == REDIS_REPLY_STRING)
        ret = send_json(c, MHD_HTTP_OK, strdup(rep->str));
    else
        ret =
            send_json(c, MHD_HTTP_NOT_FOUND,
                      gw_error_json("no_result", "no result for request '%s' (yet)", id));
    freeReplyObject(rep);
    return ret;
}

static enum MHD_Result get_ready(gw *g, struct MHD_Connection *c) {
    int ready = atomic_load(&g->ready);
    pthread_mutex_lock(&g->mu);
    json_t *o =
        json_pack("{s:b,s:b,s:b,s:b,s:s}", "ready", ready, "redis",
                  atomic_load(&g->redis_ok), "log", atomic_load(&g->log_ok), "leader",
                  atomic_load(&g->leader_ok), "detail", g->ready_detail);
    pthread_mutex_unlock(&g->mu);
    char *s = json_dumps(o, JSON_COMPACT | JSON_SORT_KEYS);
    json_decref(o);
    return send_json(c, ready ? MHD_HTTP_OK : MHD_HTTP_SERVICE_UNAVAILABLE, s);
}

/* The wait the client chose: ?wait_ms=N, else "Prefer: wait=S" (RFC 7240,
 * seconds), else the default; capped. -1 when the value is not a number. */
static int client_wait(gw *g, struct MHD_Connection *c) {
    const char *q = MHD_lookup_connection_value(c, MHD_GET_ARGUMENT_KIND, "wait_ms");
    long long v = g->cfg.wait_ms;
    char *end = NULL;
    if (q != NULL) {
        v = strtoll(q, &end, 10);
        if (*q == '\0' || *end != '\0' || v < 0)
            return -1;
    } else {
        const char *p = MHD_lookup_connection_value(c, MHD_HEADER_KIND, "Prefer");
        const char *w = p != NULL ? strstr(p, "wait=") : NULL;
        if (w != NULL) {
            v = strtoll(w + 5, &end, 10);
            if (end == w + 5 || v < 0)
                return -1;
            v = v > 3600 ? 3600000 : v * 1000;
        }
    }
    return v > g->cfg.max_wait_ms ? g->cfg.max_wait_ms : (int)v;
}

static int json_content_type(const char *ct) {
    if (ct == NULL)
        return 0;
    size_t n = strlen("application/json");
    if (strncasecmp(ct, "application/json", n) != 0)
        return 0;
    return ct[n] == '\0' || ct[n] == ';' || ct[n] == ' ';
}

/* POST /v1/requests with the whole body in st. */
static enum MHD_Result post_request(gw *g, struct MHD_Connection *c, conn_state *st) {
    if (st->too_large)
        return refuse(g, c, MHD_HTTP_CONTENT_TOO_LARGE, GW_R_TOO_LARGE, "too_large", NULL,
                      NULL, "the request body is over the limit of %d bytes",
                      g->cfg.max_body);
    int wait = client_wait(g, c);
    if (wait < 0)
        return refuse(g, c, MHD_HTTP_BAD_REQUEST, GW_R_BAD_WAIT, "bad_wait", NULL, NULL,
                      "wait_ms (or Prefer: wait=) must be a non-negative integer");
    bk_request req;
    bk_reason why;
    memset(&req, 0, sizeof(req));
    if (bk_request_parse(st->body != NULL ? st->body : "", st->len,
                         (size_t)g->cfg.max_body, NULL, &req, &why) != BK_OK) {
        bk_request_release(&req);
        return refuse(g, c,
                      strcmp(why.code, "too_large") == 0 ? MHD_HTTP_CONTENT_TOO_LARGE
                                                         : MHD_HTTP_BAD_REQUEST,
                      GW_R_BAD_REQUEST, why.code, NULL, NULL, "%s", why.text);
    }
    char *canon = NULL;
    size_t clen = 0;
    uint8_t addr[20];
    bk_err e;
    bk_err_clear(&e);
    int sig_ok = bk_request_canonical(&req, &canon, &clen, &e) == BK_OK &&
                 bk_request_recover(&req, canon, clen, addr, &e) == BK_OK;
    free(canon);
    if (!sig_ok) {
        char id[sizeof(req.id)];
        snprintf(id, sizeof(id), "%s", req.id);
        bk_request_release(&req);
        return refuse(g, c, MHD_HTTP_UNPROCESSABLE_CONTENT, GW_R_BAD_SIGNATURE,
                      "bad_signature", NULL, NULL, "the signature of request '%s': %s",
                      id, e.msg);
    }
    if (req.has_signer && memcmp(addr, req.signer, 20) != 0) {
        /* a corrupted or forged signature: it recovers, to someone else */
        char id[sizeof(req.id)], got[43], want[43];
        snprintf(id, sizeof(id), "%s", req.id);
        bk_eth_addr_hex(addr, got);
        bk_eth_addr_hex(req.signer, want);
        bk_request_release(&req);
        return refuse(
            g, c, MHD_HTTP_UNPROCESSABLE_CONTENT, GW_R_BAD_SIGNATURE, "signer_mismatch",
            NULL, NULL,
            "the signature of request '%s' recovers to %s, not to its signer %s", id, got,
            want);
    }
    int retry = 1;
    char ra[16];
    if (!gw_limiter_take(g->lim_client, req.client, bk_mono_ms(), &retry)) {
        snprintf(ra, sizeof(ra), "%d", retry);
        char client[sizeof(req.client)];
        snprintf(client, sizeof(client), "%s", req.client);
        bk_request_release(&req);
        return refuse(g, c, MHD_HTTP_TOO_MANY_REQUESTS, GW_R_RATE_CLIENT, "rate_limited",
                      "Retry-After", ra,
                      "client '%s' is over %.0f requests a second (burst %.0f)", client,
                      g->cfg.rate_client, g->cfg.burst_client);
    }
    if (atomic_fetch_add(&g->waiting, 1) >= g->cfg.max_waits) {
        atomic_fetch_sub(&g->waiting, 1);
        bk_request_release(&req);
        return refuse(
            g, c, MHD_HTTP_SERVICE_UNAVAILABLE, GW_R_BUSY, "busy", "Retry-After", "1",
            "%d requests are already waiting here (--max-waits)", g->cfg.max_waits);
    }
    gw_job *j = calloc(1, sizeof(*j));
    if (j == NULL) {
        atomic_fetch_sub(&g->waiting, 1);
        bk_request_release(&req);
        return MHD_NO;
    }
    j->conn = c;
    j->body = st->body;
    j->len = st->len;
    st->body = NULL;
    snprintf(j->client, sizeof(j->client), "%s", req.client);
    j->seq = (uint64_t)req.seq;
    snprintf(j->id, sizeof(j->id), "%s", req.id);
    bk_request_release(&req);
    j->wait_ms = wait;
    j->t0_ms = bk_mono_ms();
    j->deadline_ms = j->t0_ms + wait;
    j->offset = -1;
    j->refs = 2;
    st->job = j;
    MHD_suspend_connection(c);
    if (gw_submit(g, j) != 0) {
        j->refs = 1;
        j->answered = 1;
        j->http_status = MHD_HTTP_SERVICE_UNAVAILABLE;
        j->answer = gw_error_json("stopping", "the gateway is stopping");
        MHD_resume_connection(c);
    }
    return MHD_YES;
}

/* The connection of a suspended POST was resumed: send the job's answer. */
static enum MHD_Result resumed(gw *g, struct MHD_Connection *c, conn_state *st) {
    gw_job *j = st->job;
    st->job = NULL;
    atomic_fetch_sub(&g->waiting, 1);
    pthread_mutex_lock(&g->mu);
    char *text = j->answer;
    j->answer = NULL;
    int status = j->http_status;
    pthread_mutex_unlock(&g->mu);
    char loc[160];
    snprintf(loc, sizeof(loc), "/v1/results/%s", j->id);
    enum MHD_Result ret =
        send_text(c, status, text, "application/json",
                  status == MHD_HTTP_ACCEPTED ? MHD_HTTP_HEADER_LOCATION : NULL, loc);
    gw_job_unref(g, j);
    return ret;
}

/* Every route but POST /v1/requests: answered on the first call, before any
 * body is read (a body sent with them is not read; the connection closes). */
static enum MHD_Result route_other(gw *g, struct MHD_Connection *c, const char *url,
                                   const char *method) {
    int get = strcmp(method, MHD_HTTP_METHOD_GET) == 0 ||
              strcmp(method, MHD_HTTP_METHOD_HEAD) == 0;
    const char *allow = "GET, HEAD";
    if (strcmp(url, "/") == 0 || strcmp(url, "/index.html") == 0) {
        if (get)
            return send_text(c, MHD_HTTP_OK, strdup(gw_page_html),
                             "text/html; charset=utf-8", NULL, NULL);
    } else if (strcmp(url, "/healthz") == 0) {
        if (get)
            return send_json(c, MHD_HTTP_OK, strdup("{\"status\":\"ok\"}"));
    } else if (strcmp(url, "/readyz") == 0) {
        if (get)
            return get_ready(g, c);
    } else if (strcmp(url, "/v1/status") == 0) {
        if (get)
            return get_status(g, c);
    } else if (strncmp(url, "/v1/results/", 12) == 0 && url[12] != '\0') {
        if (get)
            return get_result(g, c, url + 12);
    } else {
        return refuse(g, c, MHD_HTTP_NOT_FOUND, GW_R_NOT_FOUND, "not_found", NULL, NULL,
                      "no route %s %s", method, url);
    }
    return refuse(g, c, MHD_HTTP_METHOD_NOT_ALLOWED, GW_R_METHOD, "method_not_allowed",
                  "Allow", allow, "%s %s: only GET is allowed", method, url);
}

static enum MHD_Result handler(void *cls, struct MHD_Connection *c, const char *url,
                               const char *method, const char *version,
                               const char *upload, size_t *upload_size, void **req_cls) {
    (void)version;
    gw *g = cls;
    conn_state *st = *req_cls;
    if (st == NULL) {
        /* first call: the headers are here, the body is not */
        st = calloc(1, sizeof(*st));
        if (st == NULL)
            return MHD_NO;
        *req_cls = st;
        atomic_fetch_add(&g->requests, 1);
        char addr[64];
        remote_addr(c, addr, sizeof(addr));
        int retry = 1;
        char ra[16];
        if (!gw_limiter_take(g->lim_addr, addr, bk_mono_ms(), &retry)) {
            snprintf(ra, sizeof(ra), "%d", retry);
            return refuse(g, c, MHD_HTTP_TOO_MANY_REQUESTS, GW_R_RATE_ADDR,
                          "rate_limited", "Retry-After", ra,
                          "address %s is over %.0f requests a second (burst %.0f)", addr,
                          g->cfg.rate_addr, g->cfg.burst_addr);
        }
        if (strcmp(url, "/v1/requests") == 0) {
            if (strcmp(method, MHD_HTTP_METHOD_POST) != 0)
                return refuse(g, c, MHD_HTTP_METHOD_NOT_ALLOWED, GW_R_METHOD,
                              "method_not_allowed", "Allow", "POST",
                              "%s /v1/requests: only POST is allowed", method);
            const char *ct = MHD_lookup_connection_value(c, MHD_HEADER_KIND,
                                                         MHD_HTTP_HEADER_CONTENT_TYPE);
            if (!json_content_type(ct))
                return refuse(g, c, MHD_HTTP_UNSUPPORTED_MEDIA_TYPE, GW_R_MEDIA_TYPE,
                              "unsupported_media_type", NULL, NULL,
                              "the content type must be application/json, got '%s'",
                              ct != NULL ? ct : "(none)");
            const char *cl = MHD_lookup_connection_value(c, MHD_HEADER_KIND,
                                                         MHD_HTTP_HEADER_CONTENT_LENGTH);
            if (cl != NULL && strtoll(cl, NULL, 10) > g->cfg.max_body)
                return refuse(
                    g, c, MHD_HTTP_CONTENT_TOO_LARGE, GW_R_TOO_LARGE, "too_large", NULL,
                    NULL, "the request body of %s bytes is over the limit of %d bytes",
                    cl, g->cfg.max_body);
            st->is_post = 1;
            return MHD_YES;
        }
        return route_other(g, c, url, method);
    }
    if (st->job != NULL)
        return resumed(g, c, st);
    if (st->is_post) {
        if (*upload_size > 0) {
            size_t n = *upload_size;
            *upload_size = 0;
            if (st->too_large || st->len + n > (size_t)g->cfg.max_body) {
                st->too_large = 1; /* read on, keep nothing */
                return MHD_YES;
            }
            if (st->len + n + 1 > st->cap) {
                size_t cap = st->cap ? st->cap : 1024;
                while (cap < st->len + n + 1)
                    cap *= 2;
                char *b = realloc(st->body, cap);
                if (b == NULL)
                    return MHD_NO;
                st->body = b;
                st->cap = cap;
            }
            memcpy(st->body + st->len, upload, n);
            st->len += n;
            st->body[st->len] = '\0';
            return MHD_YES;
        }
        return post_request(g, c, st);
    }
    return MHD_NO; /* not reached: other routes are answered on the first call */
}

static void completed(void *cls, struct MHD_Connection *c, void **req_cls,
                      enum MHD_RequestTerminationCode toe) {
    (void)c;
    (void)toe;
    gw *g = cls;
    conn_state *st = *req_cls;
    if (st == NULL)
        return;
    if (st->job != NULL) { /* closed while its answer was pending */
        atomic_fetch_sub(&g->waiting, 1);
        gw_job_unref(g, st->job);
    }
    free(st->body);
    free(st);
    *req_cls = NULL;
}

static void mhd_log(void *cls, const char *fmt, va_list ap) {
    (void)cls;
    char line[512];
    vsnprintf(line, sizeof(line), fmt, ap);
    line[strcspn(line, "\n")] = '\0';
    BK_WARN("libmicrohttpd: %s", line);
}

struct MHD_Daemon *gw_http_start(gw *g, const char *listen, int max_conns, char *err,
                                 size_t errsize) {
    char host[256];
    const char *colon = strrchr(listen, ':');
    char *end = NULL;
    long port = colon != NULL ? strtol(colon + 1, &end, 10) : -1;
    if (colon == NULL || colon == listen || (size_t)(colon - listen) >= sizeof(host) ||
        end == colon + 1 || *end != '\0' || port < 0 || port > 65535) {
        snprintf(err, errsize, "--listen: '%s' is not HOST:PORT", listen);
        return NULL;
    }
    memcpy(host, listen, (size_t)(colon - listen));
    host[colon - listen] = '\0';
    struct sockaddr_in sa;
    memset(&sa, 0, sizeof(sa));
    sa.sin_family = AF_INET;
    sa.sin_port = htons((uint16_t)port);
    if (inet_pton(AF_INET, host, &sa.sin_addr) != 1) {
        snprintf(err, errsize, "--listen: '%s' is not an IPv4 address", host);
        return NULL;
    }
    struct MHD_Daemon *d = MHD_start_daemon(
        MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_AUTO | MHD_ALLOW_SUSPEND_RESUME |
            MHD_USE_ERROR_LOG,
        (uint16_t)port, NULL, NULL, handler, g, MHD_OPTION_EXTERNAL_LOGGER, mhd_log, NULL,
        MHD_OPTION_SOCK_ADDR, (struct sockaddr *)&sa, MHD_OPTION_CONNECTION_LIMIT,
        (unsigned)max_conns, MHD_OPTION_CONNECTION_TIMEOUT, (unsigned)60,
        MHD_OPTION_NOTIFY_COMPLETED, completed, g, MHD_OPTION_LISTENING_ADDRESS_REUSE,
        (unsigned)1, MHD_OPTION_END);
    if (d == NULL)
        snprintf(err, errsize, "cannot listen on %s (in use, or not an address here)",
                 listen);
    return d;
}
