/* redis.c - see redis.h. */
#include "redis/redis.h"

#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

#include "base/log.h"

struct bk_redis {
    char host[256];
    int port;
    int timeout_ms;
    redisContext *c;
    long connects;
};

int bk_redis_parse_addr(const char *addr, char *host, size_t hostsize, int *port,
                        bk_err *e) {
    const char *p = strncmp(addr, "redis://", 8) == 0 ? addr + 8 : addr;
    size_t len = strlen(p);
    if (len > 0 && p[len - 1] == '/')
        len--;
    const char *colon = memchr(p, ':', len);
    size_t hlen = colon ? (size_t)(colon - p) : len;
    if (hlen == 0 || hlen >= hostsize || memchr(p, '/', len) != NULL)
        return bk_err_set(e, BK_E_INVAL, "invalid Redis address '%s': expected HOST:PORT",
                          addr);
    memcpy(host, p, hlen);
    host[hlen] = '\0';
    *port = 6379;
    if (colon == NULL)
        return BK_OK;
    long v = 0;
    const char *q = colon + 1, *qend = p + len;
    for (; q < qend && *q >= '0' && *q <= '9' && v <= 65535; q++)
        v = v * 10 + (*q - '0');
    if (q != qend || q == colon + 1 || v < 1 || v > 65535)
        return bk_err_set(e, BK_E_INVAL,
                          "invalid Redis address '%s': expected a port from 1 to 65535",
                          addr);
    *port = (int)v;
    return BK_OK;
}

static int reconnect(bk_redis *r, bk_err *e) {
    if (r->c != NULL && r->c->err == 0)
        return BK_OK;
    if (r->c != NULL)
        redisFree(r->c);
    struct timeval tv = {r->timeout_ms / 1000, (r->timeout_ms % 1000) * 1000};
    r->c = redisConnectWithTimeout(r->host, r->port, tv);
    if (r->c == NULL)
        return bk_err_set(e, BK_E_NOMEM, "cannot allocate a Redis context");
    if (r->c->err != 0) {
        bk_err_set(e, BK_E_IO, "cannot connect to Redis at %s:%d: %s", r->host, r->port,
                   r->c->errstr);
        redisFree(r->c);
        r->c = NULL;
        return BK_ERR;
    }
    redisSetTimeout(r->c, tv);
    r->connects++;
    if (r->connects > 1)
        BK_INFO("reconnected to Redis at %s:%d", r->host, r->port);
    return BK_OK;
}

bk_redis *bk_redis_new(const char *addr, int timeout_ms, bk_err *e) {
    bk_redis *r = calloc(1, sizeof(*r));
    if (r == NULL) {
        bk_err_set(e, BK_E_NOMEM, "out of memory");
        return NULL;
    }
    r->timeout_ms = timeout_ms > 0 ? timeout_ms : 2000;
    if (bk_redis_parse_addr(addr, r->host, sizeof(r->host), &r->port, e) != BK_OK ||
        reconnect(r, e) != BK_OK) {
        free(r);
        return NULL;
    }
    return r;
}

void bk_redis_free(bk_redis *r) {
    if (r == NULL)
        return;
    if (r->c != NULL)
        redisFree(r->c);
    free(r);
}

static redisReply *check_reply(bk_redis *r, redisReply *rep, bk_err *e) {
    if (rep == NULL) {
        bk_err_set(e, BK_E_IO, "Redis at %s:%d: %s", r->host, r->port,
                   r->c->errstr[0] ? r->c->errstr : "connection lost");
        redisFree(r->c); /* the next call reconnects */
        r->c = NULL;
        return NULL;
    }
    if (rep->type == REDIS_REPLY_ERROR) {
        int fenced = strncmp(rep->str, "FENCED", 6) == 0;
        /* a server still loading its data after a restart, or one whose
         * script runs too long, is unavailable for now, like a closed
         * connection: callers that retry I/O errors retry these too */
        int busy =
            strncmp(rep->str, "LOADING", 7) == 0 || strncmp(rep->str, "BUSY", 4) == 0;
        bk_err_set(e,
                   fenced ? BK_E_FENCED
                   : busy ? BK_E_IO
                          : BK_E_REMOTE,
                   "Redis: %s", rep->str);
        freeReplyObject(rep);
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

long bk_redis_connects(const bk_redis *r) {
    return r->connects;
}
