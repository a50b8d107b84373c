/* redis.h - a Redis connection that reconnects.
 *
 * A command on a broken connection first reconnects; a command that fails
 * on the wire drops the connection (the next call reconnects) and returns
 * an error. Commands are never retried here: a non-idempotent command
 * (INCR of the fencing epoch) must not run twice behind the caller's back.
 * A Redis error reply becomes an error too (code BK_E_REMOTE; BK_E_FENCED
 * when the message starts with "FENCED"; BK_E_IO for "LOADING" and "BUSY":
 * the server cannot serve now and did not run the command), so a returned reply
 * is never of type REDIS_REPLY_ERROR. The caller frees replies with
 * freeReplyObject(). */
#ifndef BK_REDIS_H
#define BK_REDIS_H

#include <hiredis/hiredis.h>

#include "base/err.h"

typedef struct bk_redis bk_redis;

/* Parse "redis://HOST:PORT", "HOST:PORT" or "HOST" (port 6379). Pure. */
int bk_redis_parse_addr(const char *addr, char *host, size_t hostsize, int *port,
                        bk_err *e);

/* Create and connect; timeout_ms bounds connect and every command. */
bk_redis *bk_redis_new(const char *addr, int timeout_ms, bk_err *e);
void bk_redis_free(bk_redis *r); /* NULL is fine */

redisReply *bk_redis_command(bk_redis *r, bk_err *e, const char *fmt, ...);
redisReply *bk_redis_commandv(bk_redis *r, bk_err *e, int argc, const char **argv,
                              const size_t *argvlen);

/* Number of (re)connections made so far (for tests and metrics). */
long bk_redis_connects(const bk_redis *r);

#endif
