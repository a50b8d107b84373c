/* redis.h - a Redis connection that reconnects, to one server or to the
 * primary named by Sentinels.
 *
 * An address is "redis://HOST:PORT", "HOST:PORT", "HOST" (port 6379), or
 * "sentinel://HOST:PORT[,HOST:PORT...]/PRIMARY-NAME": the connection asks
 * the Sentinels (in turn, the first that answers) where the primary is,
 * connects there and checks with ROLE that it is a primary.
 *
 * Credentials never come from the address or the command line: the user
 * from BR2K_REDIS_USER, the password from BR2K_REDIS_PASSWORD or the first
 * line of the file named by BR2K_REDIS_PASSWORD_FILE (AUTH after connect);
 * the Sentinels' own from BR2K_SENTINEL_USER, BR2K_SENTINEL_PASSWORD or
 * BR2K_SENTINEL_PASSWORD_FILE.
 *
 * A command on a broken connection first reconnects (asking the Sentinels
 * again); a command that fails on the wire drops the connection (the next
 * call reconnects) and returns an error. Commands are never retried here: a
 * non-idempotent command (INCR of the fencing epoch) must not run twice
 * behind the caller's back. A Redis error reply becomes an error too (code
 * BK_E_REMOTE; BK_E_FENCED when the message starts with "FENCED"; BK_E_IO
 * for "LOADING", "BUSY", "READONLY", "MASTERDOWN", "NOREPLICAS": the server
 * cannot serve now and did not run the command; READONLY, MASTERDOWN and
 * NOREPLICAS also drop the connection: a failover moved the primary, and
 * the next call finds the new one), so a returned reply is never of type
 * REDIS_REPLY_ERROR. The caller frees replies with freeReplyObject().
 *
 * Scripts (script.h) notice a new primary by its NOSCRIPT answer and load
 * themselves again. */
#ifndef BK_REDIS_H
#define BK_REDIS_H

#include <hiredis/hiredis.h>

#include "base/err.h"

#define BK_REDIS_MAX_SENTINELS 8

typedef struct {
    char host[256];
    int port;
} bk_redis_node;

/* A parsed address: one server, or Sentinels and the primary's name. */
typedef struct {
    int sentinel; /* 1: the nodes are Sentinels, name the primary */
    int nnodes;
    bk_redis_node nodes[BK_REDIS_MAX_SENTINELS];
    char name[128];
} bk_redis_addr;

typedef struct bk_redis bk_redis;

/* Parse any address form above. Pure. */
int bk_redis_addr_parse(const char *addr, bk_redis_addr *a, bk_err *e);

/* Parse "redis://HOST:PORT", "HOST:PORT" or "HOST" (port 6379); a
 * sentinel:// address is an error here. Pure. */
int bk_redis_parse_addr(const char *addr, char *host, size_t hostsize, int *port,
                        bk_err *e);

/* A plain hiredis connection to the server or current primary of addr,
 * authenticated, with timeout_ms on connect and commands (for a
 * subscription or a pipeline of one's own). redisFree() it. */
redisContext *bk_redis_connect(const char *addr, int timeout_ms, bk_err *e);

/* Create and connect; timeout_ms bounds connect and every command. */
bk_redis *bk_redis_new(const char *addr, int timeout_ms, bk_err *e);
void bk_redis_free(bk_redis *r); /* NULL is fine */

redisReply *bk_redis_command(bk_redis *r, bk_err *e, const char *fmt, ...);
redisReply *bk_redis_commandv(bk_redis *r, bk_err *e, int argc, const char **argv,
                              const size_t *argvlen);

/* One command of a pipeline: argc arguments (argvlen NULL: strlen). */
typedef struct {
    int argc;
    const char **argv;
    const size_t *argvlen;
} bk_redis_cmd;

/* Send the n commands in one write and read their n replies into reps
 * (the caller frees each), all on one connection. reconnect 1: connect
 * first when there is no connection, like a command; 0: fail (BK_E_IO)
 * instead, so that the commands of a WATCH ... EXEC sent in several
 * pipelines run on the connection the key was watched on (a reconnect, or
 * a +switch-master seen, in between makes the transaction fail, never run
 * unwatched). A failure on the wire drops the connection. An error reply
 * is an error as for a command (the first one names it) and no reply is
 * returned; a nil reply (an EXEC refused by WATCH) is returned as such.
 * Never retried. */
int bk_redis_pipeline(bk_redis *r, int reconnect, size_t n, const bk_redis_cmd *cmds,
                      redisReply **reps, bk_err *e);

/* WAIT until the writes of this connection reached the replicas required
 * (bk_redis_wait_needed), at most timeout_ms; BK_E_IO when fewer
 * acknowledged. BK_OK at once when none are required. */
int bk_redis_wait(bk_redis *r, int timeout_ms, bk_err *e);

/* Replicas a write must reach before it counts (I9): 1 for a sentinel://
 * address, 0 for one server; BR2K_REDIS_WAIT_REPLICAS overrides. */
int bk_redis_wait_needed(const bk_redis *r);

/* Number of (re)connections made so far (for tests and metrics). */
long bk_redis_connects(const bk_redis *r);

/* With sentinel://, every command first reads (without blocking, at most
 * every 20 ms) a subscription to +switch-master on one Sentinel: when our
 * primary moved, the connection is dropped and the next command finds the
 * new one, even when the old one still answers (a demoted primary serves
 * reads). The number of +switch-master messages seen for our primary. */
long bk_redis_switches(const bk_redis *r);

/* Read that subscription now, as a command would (opening it when it is
 * not open yet); a no-op for redis://. */
void bk_redis_check_switch(bk_redis *r);

/* "HOST:PORT" of the server connected now ("" when none). */
const char *bk_redis_where(const bk_redis *r);

#endif
