/* redis.c - see redis.h. */
#include "redis/redis.h"

#include <poll.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/clock.h"
#include "base/log.h"

/* How often a connection looks at its Sentinel subscription, and waits
 * before subscribing again after a failure. */
#define SUB_POLL_MS 20
#define SUB_RETRY_MS 1000

struct bk_redis {
    bk_redis_addr a;
    char where[300]; /* the server connected now */
    int timeout_ms;
    int wait_needed;
    int next_sentinel; /* the Sentinel asked first next time */
    redisContext *c;
    long connects;
    /* sentinel://: a subscription to +switch-master on one Sentinel, so
     * that a failover is noticed without an error (a demoted primary still
     * answers reads) */
    redisContext *sub;
    int sub_sentinel;
    int64_t sub_next_ms, sub_poll_ms;
    long switches;
};

/* ---- addresses ---- */

/* "HOST[:PORT]" of len bytes at p into n; whole names addr in errors. */
static int parse_node(const char *whole, const char *p, size_t len, bk_redis_node *n,
                      bk_err *e) {
    const char *colon = memchr(p, ':', len);
    size_t hlen = colon ? (size_t)(colon - p) : len;
    if (hlen == 0 || hlen >= sizeof(n->host) || memchr(p, '/', len) != NULL)
        return bk_err_set(e, BK_E_INVAL, "invalid Redis address '%s': expected HOST:PORT",
                          whole);
    memcpy(n->host, p, hlen);
    n->host[hlen] = '\0';
    n->port = 6379;
    if (colon == NULL)
        return BK_OK;
    long v = 0;
    const char *q = colon + 1, *qend = p + len;
    for (; q < qend && *q >= '0' && *q <= '9' && v <= 65535; q++)
        v = v * 10 + (*q - '0');
    if (q != qend || q == colon + 1 || v < 1 || v > 65535)
        return bk_err_set(e, BK_E_INVAL,
                          "invalid Redis address '%s': expected a port from 1 to 65535",
                          whole);
    n->port = (int)v;
    return BK_OK;
}

static int parse_sentinel(const char *addr, bk_redis_addr *a, bk_err *e) {
    const char *p = addr + 11, *slash = strchr(p, '/');
    if (slash == NULL || slash[1] == '\0' || slash == p)
        return bk_err_set(e, BK_E_INVAL,
                          "invalid Redis address '%s': expected "
                          "sentinel://HOST:PORT[,HOST:PORT...]/PRIMARY-NAME",
                          addr);
    const char *name = slash + 1;
    size_t nlen = strlen(name);
    if (nlen > 0 && name[nlen - 1] == '/')
        nlen--;
    if (nlen == 0 || nlen >= sizeof(a->name) || memchr(name, '/', nlen) != NULL ||
        strpbrk(name, " \t") != NULL)
        return bk_err_set(e, BK_E_INVAL,
                          "invalid Redis address '%s': bad primary name after the '/'",
                          addr);
    memcpy(a->name, name, nlen);
    a->name[nlen] = '\0';
    while (p < slash) {
        const char *comma = memchr(p, ',', (size_t)(slash - p));
        const char *end = comma ? comma : slash;
        if (a->nnodes == BK_REDIS_MAX_SENTINELS)
            return bk_err_set(e, BK_E_INVAL,
                              "invalid Redis address '%s': more than %d Sentinels", addr,
                              BK_REDIS_MAX_SENTINELS);
        if (parse_node(addr, p, (size_t)(end - p), &a->nodes[a->nnodes], e) != BK_OK)
            return BK_ERR;
        a->nnodes++;
        p = comma ? comma + 1 : slash;
        if (comma && p == slash)
            return bk_err_set(e, BK_E_INVAL,
                              "invalid Redis address '%s': expected HOST:PORT", addr);
    }
    a->sentinel = 1;
    return BK_OK;
}

int bk_redis_addr_parse(const char *addr, bk_redis_addr *a, bk_err *e) {
    memset(a, 0, sizeof(*a));
    if (addr == NULL || addr[0] == '\0')
        return bk_err_set(e, BK_E_INVAL, "invalid Redis address '': expected HOST:PORT");
    if (strncmp(addr, "sentinel://", 11) == 0)
        return parse_sentinel(addr, a, e);
    const char *p = strncmp(addr, "redis://", 8) == 0 ? addr + 8 : addr;
    size_t len = strlen(p);
    if (len > 0 && p[len - 1] == '/')
        len--;
    if (parse_node(addr, p, len, &a->nodes[0], e) != BK_OK)
        return BK_ERR;
    a->nnodes = 1;
    return BK_OK;
}

int bk_redis_parse_addr(const char *addr, char *host, size_t hostsize, int *port,
                        bk_err *e) {
    bk_redis_addr a;
    if (bk_redis_addr_parse(addr, &a, e) != BK_OK)
        return BK_ERR;
    if (a.sentinel)
        return bk_err_set(e, BK_E_INVAL,
                          "invalid Redis address '%s': a single HOST:PORT is needed here",
                          addr);
    if (strlen(a.nodes[0].host) >= hostsize)
        return bk_err_set(e, BK_E_INVAL, "invalid Redis address '%s': host too long",
                          addr);
    snprintf(host, hostsize, "%s", a.nodes[0].host);
    *port = a.nodes[0].port;
    return BK_OK;
}

/* ---- credentials ---- */

typedef struct {
    char user[128];
    char pass[512];
    int have; /* a password is set */
} creds;

/* The environment a connection's credentials come from: the user, the
 * password, or a file whose first line is the password (never a command
 * line). Spelled out, so that a reader (and tests/integration/k8s_check.js)
 * finds every name. */
typedef struct {
    const char *user, *password, *password_file;
} creds_env;
static const creds_env REDIS_ENV = {"BR2K_REDIS_USER", "BR2K_REDIS_PASSWORD",
                                    "BR2K_REDIS_PASSWORD_FILE"};
static const creds_env SENTINEL_ENV = {"BR2K_SENTINEL_USER", "BR2K_SENTINEL_PASSWORD",
                                       "BR2K_SENTINEL_PASSWORD_FILE"};

static int load_creds(const creds_env *n, creds *c, bk_err *e) {
    memset(c, 0, sizeof(*c));
    const char *u = getenv(n->user);
    const char *pw = getenv(n->password);
    const char *pf = getenv(n->password_file);
    if (u != NULL && u[0] != '\0')
        snprintf(c->user, sizeof(c->user), "%s", u);
    if (pw != NULL && pw[0] != '\0' && pf != NULL && pf[0] != '\0')
        return bk_err_set(e, BK_E_INVAL, "both %s and %s are set", n->password,
                          n->password_file);
    if (pw != NULL && pw[0] != '\0') {
        if (strlen(pw) >= sizeof(c->pass))
            return bk_err_set(e, BK_E_INVAL, "%s is too long", n->password);
        snprintf(c->pass, sizeof(c->pass), "%s", pw);
        c->have = 1;
    } else if (pf != NULL && pf[0] != '\0') {
        FILE *f = fopen(pf, "r");
        if (f == NULL)
            return bk_err_set(e, BK_E_IO, "cannot read %s '%s'", n->password_file, pf);
        if (fgets(c->pass, sizeof(c->pass), f) == NULL)
            c->pass[0] = '\0';
        fclose(f);
        c->pass[strcspn(c->pass, "\r\n")] = '\0';
        if (c->pass[0] == '\0')
            return bk_err_set(e, BK_E_INVAL, "%s '%s' is empty", n->password_file, pf);
        c->have = 1;
    }
    if (c->user[0] != '\0' && !c->have)
        return bk_err_set(e, BK_E_INVAL, "%s is set without a password", n->user);
    return BK_OK;
}

/* ---- connecting ---- */

/* Connect to host:port and AUTH; what names the node in errors. */
static redisContext *connect_node(const char *what, const bk_redis_node *n,
                                  int timeout_ms, const creds *cr, bk_err *e) {
    struct timeval tv = {timeout_ms / 1000, (timeout_ms % 1000) * 1000};
    redisContext *c = redisConnectWithTimeout(n->host, n->port, tv);
    if (c == NULL) {
        bk_err_set(e, BK_E_NOMEM, "cannot allocate a Redis context");
        return NULL;
    }
    if (c->err != 0) {
        bk_err_set(e, BK_E_IO, "cannot connect to %s at %s:%d: %s", what, n->host,
                   n->port, c->errstr);
        redisFree(c);
        return NULL;
    }
    redisSetTimeout(c, tv);
    if (cr->have) {
        redisReply *rep = cr->user[0] ? redisCommand(c, "AUTH %s %s", cr->user, cr->pass)
                                      : redisCommand(c, "AUTH %s", cr->pass);
        int ok = rep != NULL && rep->type != REDIS_REPLY_ERROR;
        if (!ok)
            bk_err_set(e, rep ? BK_E_REMOTE : BK_E_IO, "%s at %s:%d refused AUTH: %s",
                       what, n->host, n->port,
                       rep ? rep->str : (c->errstr[0] ? c->errstr : "connection lost"));
        if (rep)
            freeReplyObject(rep);
        if (!ok) {
            redisFree(c);
            return NULL;
        }
    }
    return c;
}

/* Ask Sentinel s where the primary is, into *out. */
static int ask_sentinel(const bk_redis_addr *a, int s, int timeout_ms, const creds *sc,
                        bk_redis_node *out, bk_err *e) {
    redisContext *c = connect_node("Sentinel", &a->nodes[s], timeout_ms, sc, e);
    if (c == NULL)
        return BK_ERR;
    redisReply *rep = redisCommand(c, "SENTINEL get-master-addr-by-name %s", a->name);
    int rc = BK_ERR;
    if (rep == NULL)
        bk_err_set(e, BK_E_IO, "Sentinel at %s:%d: %s", a->nodes[s].host,
                   a->nodes[s].port, c->errstr[0] ? c->errstr : "connection lost");
    else if (rep->type == REDIS_REPLY_ARRAY && rep->elements == 2 &&
             rep->element[0]->type == REDIS_REPLY_STRING &&
             rep->element[1]->type == REDIS_REPLY_STRING &&
             rep->element[0]->len < sizeof(out->host)) {
        snprintf(out->host, sizeof(out->host), "%s", rep->element[0]->str);
        out->port = atoi(rep->element[1]->str);
        rc = out->port > 0
                 ? BK_OK
                 : bk_err_set(e, BK_E_PROTO, "Sentinel at %s:%d: bad port '%s'",
                              a->nodes[s].host, a->nodes[s].port, rep->element[1]->str);
    } else
        bk_err_set(e, rep->type == REDIS_REPLY_ERROR ? BK_E_REMOTE : BK_E_NOTFOUND,
                   "Sentinel at %s:%d does not know a primary named '%s'%s%s",
                   a->nodes[s].host, a->nodes[s].port, a->name,
                   rep->type == REDIS_REPLY_ERROR ? ": " : "",
                   rep->type == REDIS_REPLY_ERROR ? rep->str : "");
    if (rep)
        freeReplyObject(rep);
    redisFree(c);
    return rc;
}

/* 1 when the server of c says ROLE master. */
static int is_primary(redisContext *c, bk_err *e, const bk_redis_node *n) {
    redisReply *rep = redisCommand(c, "ROLE");
    int ok = rep != NULL && rep->type == REDIS_REPLY_ARRAY && rep->elements > 0 &&
             rep->element[0]->type == REDIS_REPLY_STRING &&
             strcmp(rep->element[0]->str, "master") == 0;
    if (!ok)
        bk_err_set(e, BK_E_IO, "Redis at %s:%d is not a primary (yet): %s", n->host,
                   n->port,
                   rep == NULL                      ? "no answer to ROLE"
                   : rep->type == REDIS_REPLY_ERROR ? rep->str
                   : rep->type == REDIS_REPLY_ARRAY && rep->elements > 0 &&
                           rep->element[0]->type == REDIS_REPLY_STRING
                       ? rep->element[0]->str
                       : "bad ROLE reply");
    if (rep)
        freeReplyObject(rep);
    return ok;
}

/* Connect to the server or the current primary of a; *first is the
 * Sentinel to ask first (advanced past one that failed). */
static redisContext *connect_addr(const bk_redis_addr *a, int timeout_ms, int *first,
                                  char *where, size_t wsize, bk_err *e) {
    creds rc;
    if (load_creds(&REDIS_ENV, &rc, e) != BK_OK)
        return NULL;
    if (!a->sentinel) {
        redisContext *c = connect_node("Redis", &a->nodes[0], timeout_ms, &rc, e);
        if (c != NULL && where != NULL)
            snprintf(where, wsize, "%s:%d", a->nodes[0].host, a->nodes[0].port);
        return c;
    }
    creds sc;
    if (load_creds(&SENTINEL_ENV, &sc, e) != BK_OK)
        return NULL;
    bk_err last;
    bk_err_clear(&last);
    for (int i = 0; i < a->nnodes; i++) {
        int s = (*first + i) % a->nnodes;
        bk_redis_node p;
        if (ask_sentinel(a, s, timeout_ms, &sc, &p, &last) != BK_OK)
            continue;
        redisContext *c = connect_node("the Redis primary", &p, timeout_ms, &rc, &last);
        if (c == NULL)
            continue;
        if (!is_primary(c, &last, &p)) {
            redisFree(c);
            continue;
        }
        *first = s;
        if (where != NULL)
            snprintf(where, wsize, "%s:%d", p.host, p.port);
        return c;
    }
    *first = (*first + 1) % a->nnodes;
    if (e != NULL)
        *e = last;
    bk_err_prefix(e, "no Redis primary '%s' found through %d Sentinel(s)", a->name,
                  a->nnodes);
    return NULL;
}

redisContext *bk_redis_connect(const char *addr, int timeout_ms, bk_err *e) {
    bk_redis_addr a;
    if (bk_redis_addr_parse(addr, &a, e) != BK_OK)
        return NULL;
    int first = 0;
    return connect_addr(&a, timeout_ms > 0 ? timeout_ms : 2000, &first, NULL, 0, e);
}

static void drop(bk_redis *r) {
    if (r->c != NULL)
        redisFree(r->c);
    r->c = NULL;
    r->where[0] = '\0';
}

/* ---- +switch-master ---- */

static void sub_close(bk_redis *r, int64_t now) {
    if (r->sub != NULL)
        redisFree(r->sub);
    r->sub = NULL;
    r->sub_sentinel = (r->sub_sentinel + 1) % r->a.nnodes; /* another one next */
    r->sub_next_ms = now + SUB_RETRY_MS;
}

static void sub_open(bk_redis *r, int64_t now) {
    creds sc;
    bk_err e;
    bk_err_clear(&e);
    if (load_creds(&SENTINEL_ENV, &sc, &e) != BK_OK) {
        r->sub_next_ms = now + SUB_RETRY_MS;
        return;
    }
    r->sub =
        connect_node("Sentinel", &r->a.nodes[r->sub_sentinel], r->timeout_ms, &sc, &e);
    if (r->sub == NULL) {
        sub_close(r, now);
        return;
    }
    redisReply *rep = redisCommand(r->sub, "SUBSCRIBE +switch-master");
    int ok = rep != NULL && rep->type == REDIS_REPLY_ARRAY;
    if (rep)
        freeReplyObject(rep);
    if (!ok)
        sub_close(r, now);
}

/* One +switch-master message: "<name> <old ip> <old port> <new ip> <new
 * port>"; for our primary, drop the connection unless it is already there. */
static void sub_message(bk_redis *r, const redisReply *m) {
    if (m->type != REDIS_REPLY_ARRAY || m->elements != 3 ||
        m->element[0]->type != REDIS_REPLY_STRING ||
        strcmp(m->element[0]->str, "message") != 0 ||
        m->element[2]->type != REDIS_REPLY_STRING)
        return;
    char name[256], oh[256], nh[256];
    int op = 0, np = 0;
    if (sscanf(m->element[2]->str, "%255s %255s %d %255s %d", name, oh, &op, nh, &np) !=
            5 ||
        strcmp(name, r->a.name) != 0)
        return;
    char now_at[300];
    snprintf(now_at, sizeof(now_at), "%s:%d", nh, np);
    r->switches++;
    if (r->c != NULL && strcmp(r->where, now_at) == 0)
        return;
    BK_INFO("Sentinel: primary '%s' moved from %s:%d to %s (+switch-master); "
            "reconnecting",
            name, oh, op, now_at);
    if (r->c != NULL)
        redisFree(r->c);
    r->c = NULL;
    r->where[0] = '\0';
}

/* Read what the subscription has, without blocking (at most every
 * SUB_POLL_MS; opened or opened again when due). */
static void sub_check(bk_redis *r) {
    if (!r->a.sentinel)
        return;
    int64_t now = bk_mono_ms();
    if (now < r->sub_poll_ms)
        return;
    r->sub_poll_ms = now + SUB_POLL_MS;
    if (r->sub == NULL) {
        if (now >= r->sub_next_ms)
            sub_open(r, now);
        return;
    }
    struct pollfd pf = {r->sub->fd, POLLIN, 0};
    int n = poll(&pf, 1, 0);
    if (n <= 0)
        return;
    if (redisBufferRead(r->sub) != REDIS_OK) { /* the Sentinel went away */
        sub_close(r, now);
        return;
    }
    void *m = NULL;
    while (redisGetReplyFromReader(r->sub, &m) == REDIS_OK && m != NULL) {
        sub_message(r, m);
        freeReplyObject(m);
        m = NULL;
    }
    if (r->sub->err != 0)
        sub_close(r, now);
}

static int reconnect(bk_redis *r, bk_err *e) {
    sub_check(r);
    if (r->c != NULL && r->c->err == 0)
        return BK_OK;
    drop(r);
    r->c = connect_addr(&r->a, r->timeout_ms, &r->next_sentinel, r->where,
                        sizeof(r->where), e);
    if (r->c == NULL)
        return BK_ERR;
    r->connects++;
    if (r->connects > 1)
        BK_INFO("reconnected to Redis at %s", r->where);
    return BK_OK;
}

bk_redis *bk_redis_new(const char *addr, int timeout_ms, bk_err *e) {
    bk_redis *r = calloc(1, sizeof(*r));
    if (r == NULL) {
        bk_err_set(e, BK_E_NOMEM, "out of memory");
        return NULL;
    }
    r->timeout_ms = timeout_ms > 0 ? timeout_ms : 2000;
    if (bk_redis_addr_parse(addr, &r->a, e) != BK_OK) {
        free(r);
        return NULL;
    }
    r->wait_needed = r->a.sentinel ? 1 : 0;
    const char *w = getenv("BR2K_REDIS_WAIT_REPLICAS");
    if (w != NULL && w[0] != '\0') {
        char *end = NULL;
        long v = strtol(w, &end, 10);
        if (*end != '\0' || v < 0 || v > 16) {
            bk_err_set(e, BK_E_INVAL,
                       "invalid BR2K_REDIS_WAIT_REPLICAS '%s': expected 0 to 16", w);
            free(r);
            return NULL;
        }
        r->wait_needed = (int)v;
    }
    if (reconnect(r, e) != BK_OK) {
        free(r);
        return NULL;
    }
    return r;
}

void bk_redis_free(bk_redis *r) {
    if (r == NULL)
        return;
    drop(r);
    if (r->sub != NULL)
        redisFree(r->sub);
    free(r);
}

static redisReply *check_reply(bk_redis *r, redisReply *rep, bk_err *e) {
    if (rep == NULL) {
        bk_err_set(e, BK_E_IO, "Redis at %s: %s", r->where,
                   r->c->errstr[0] ? r->c->errstr : "connection lost");
        drop(r); /* the next call reconnects */
        return NULL;
    }
    if (rep->type == REDIS_REPLY_ERROR) {
        int fenced = strncmp(rep->str, "FENCED", 6) == 0;
        /* a server still loading its data after a restart, or one whose
         * script runs too long, is unavailable for now, like a closed
         * connection: callers that retry I/O errors retry these too */
        int busy =
            strncmp(rep->str, "LOADING", 7) == 0 || strncmp(rep->str, "BUSY", 4) == 0;
        /* a failover: this server is no longer the primary, or a primary
         * cut from its replicas refuses writes; it did not run the
         * command. Drop it: the next call asks the Sentinels again. */
        int moved = strncmp(rep->str, "READONLY", 8) == 0 ||
                    strncmp(rep->str, "MASTERDOWN", 10) == 0 ||
                    strncmp(rep->str, "NOREPLICAS", 10) == 0;
        bk_err_set(e,
                   fenced          ? BK_E_FENCED
                   : busy || moved ? BK_E_IO
                                   : BK_E_REMOTE,
                   "Redis: %s", rep->str);
        freeReplyObject(rep);
        if (moved)
            drop(r);
        return NULL;
    }
    return rep;
}

redisReply *bk_redis_command(bk_redis *r, bk_err *e, const char *fmt, ...) {
    if (reconnect(r, e) != BK_OK)
        return NULL;
    va_list ap;
    va_start(ap, fmt);
    redisReply *rep = redisvCommand(r->c, fmt, ap);
    va_end(ap);
    return check_reply(r, rep, e);
}

redisReply *bk_redis_commandv(bk_redis *r, bk_err *e, int argc, const char **argv,
                              const size_t *argvlen) {
    if (reconnect(r, e) != BK_OK)
        return NULL;
    redisReply *rep = redisCommandArgv(r->c, argc, argv, argvlen);
    return check_reply(r, rep, e);
}

int bk_redis_pipeline(bk_redis *r, int reconnect_ok, size_t n, const bk_redis_cmd *cmds,
                      redisReply **reps, bk_err *e) {
    for (size_t i = 0; i < n; i++)
        reps[i] = NULL;
    if (reconnect_ok) {
        if (reconnect(r, e) != BK_OK)
            return BK_ERR;
    } else {
        sub_check(r); /* a +switch-master seen drops the connection */
        if (r->c == NULL || r->c->err != 0) {
            drop(r);
            return bk_err_set(e, BK_E_IO, "Redis connection lost within a transaction");
        }
    }
    for (size_t i = 0; i < n; i++)
        if (redisAppendCommandArgv(r->c, cmds[i].argc, cmds[i].argv, cmds[i].argvlen) !=
            REDIS_OK) {
            bk_err_set(e, r->c->err == REDIS_ERR_OOM ? BK_E_NOMEM : BK_E_IO,
                       "Redis at %s: %s", r->where,
                       r->c->errstr[0] ? r->c->errstr : "cannot queue a command");
            drop(r); /* commands queued but not sent: never send them later */
            return BK_ERR;
        }
    int rc = BK_OK;
    for (size_t i = 0; i < n; i++) {
        void *rep = NULL;
        if (redisGetReply(r->c, &rep) != REDIS_OK || rep == NULL) {
            check_reply(r, NULL, e); /* drops the connection */
            rc = BK_ERR;
            break;
        }
        reps[i] = rep;
        if (reps[i]->type == REDIS_REPLY_ERROR && rc == BK_OK) {
            /* the first error names the failure (and drops the connection
             * after a failover); the other replies are still read */
            reps[i] = check_reply(r, reps[i], e);
            rc = BK_ERR;
            if (r->c == NULL)
                break;
        }
    }
    if (rc != BK_OK)
        for (size_t i = 0; i < n; i++) {
            if (reps[i] != NULL)
                freeReplyObject(reps[i]);
            reps[i] = NULL;
        }
    return rc;
}

int bk_redis_wait(bk_redis *r, int timeout_ms, bk_err *e) {
    if (r->wait_needed == 0)
        return BK_OK;
    if (r->c == NULL || r->c->err != 0)
        /* a new connection has nothing of ours to wait for: the write it
         * follows was on a connection that is gone */
        return bk_err_set(e, BK_E_IO, "Redis connection lost before WAIT");
    redisReply *rep = bk_redis_command(r, e, "WAIT %d %d", r->wait_needed,
                                       timeout_ms > 0 ? timeout_ms : 1);
    if (rep == NULL)
        return bk_err_prefix(e, "WAIT");
    long long n = rep->type == REDIS_REPLY_INTEGER ? rep->integer : -1;
    freeReplyObject(rep);
    if (n < r->wait_needed)
        return bk_err_set(e, BK_E_IO,
                          "Redis at %s: %lld of %d replica(s) acknowledged within %d ms",
                          r->where, n, r->wait_needed, timeout_ms);
    return BK_OK;
}

int bk_redis_wait_needed(const bk_redis *r) {
    return r->wait_needed;
}

long bk_redis_connects(const bk_redis *r) {
    return r->connects;
}

long bk_redis_switches(const bk_redis *r) {
    return r->switches;
}

void bk_redis_check_switch(bk_redis *r) {
    sub_check(r);
}

const char *bk_redis_where(const bk_redis *r) {
    return r->where;
}
