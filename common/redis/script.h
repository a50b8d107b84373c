/* script.h - the one loader of the service's Lua scripts.
 *
 * A script is a bk_script: its source (every source of the service is in
 * common/redis/keys.c) and what this process knows of it. It is run with
 * EVALSHA; the first run in a process loads it (SCRIPT LOAD), and a
 * NOSCRIPT reply (the server restarted or SCRIPT FLUSH; the script did
 * not run) loads it again and runs it once more. The SHA-1 is computed
 * here from the source, so it never depends on a reply. Every function is
 * thread-safe: one bk_script may be run from several threads, on several
 * connections, even to different servers.
 *
 * For a pipeline (common/log/rlog_redis.c): bk_script_load, then
 * bk_script_format for each command; a reply for which bk_script_noscript
 * is true asks for bk_script_reload and sending that command again. */
#ifndef BK_SCRIPT_H
#define BK_SCRIPT_H

#include <hiredis/hiredis.h>
#include <stdatomic.h>
#include <stddef.h>

#include "base/err.h"
#include "redis/redis.h"

typedef struct bk_script {
    const char *src; /* the Lua source */
    /* private to script.c */
    char sha[41];     /* SHA-1 of src, 40 lowercase hex, once state >= 1 */
    atomic_int state; /* 0: sha not computed, 1: not loaded, 2: loaded */
} bk_script;

/* A static initializer: bk_script s = BK_SCRIPT_INIT("return 1\n"); */
#define BK_SCRIPT_INIT(source)                                                           \
    { (source), {0}, 0 }

/* The SHA-1 of the source as 40 lowercase hex (valid as long as s). */
const char *bk_script_sha(bk_script *s);

/* Load the script (SCRIPT LOAD) unless this process has loaded it
 * already; bk_script_reload loads it in any case (after a NOSCRIPT). */
int bk_script_load(bk_redis *r, bk_script *s, bk_err *e);
int bk_script_reload(bk_redis *r, bk_script *s, bk_err *e);

/* EVALSHA the script with argc arguments: the nkeys keys first, then the
 * others (argv[0] is the first key, not "EVALSHA"). argvlen may be NULL
 * (every argument is then a C string). Loads it first when needed, and
 * again on NOSCRIPT. Returns the reply (never an error reply: a Redis
 * error is NULL with `e`, BK_E_FENCED for "FENCED ...", see redis.h), the
 * caller frees it with freeReplyObject(). */
redisReply *bk_script_eval(bk_redis *r, bk_script *s, int nkeys, int argc,
                           const char **argv, const size_t *argvlen, bk_err *e);

/* The same EVALSHA in the wire format, for redisAppendFormattedCommand:
 * *cmd (free it with redisFreeCommand) and *len. Does not load: call
 * bk_script_load first. */
int bk_script_format(bk_script *s, int nkeys, int argc, const char **argv,
                     const size_t *argvlen, char **cmd, size_t *len, bk_err *e);

/* 1 when an error text (a reply's str, or a bk_err message) is a NOSCRIPT
 * error, 0 otherwise (NULL too). */
int bk_script_noscript(const char *msg);

/* In a child process after fork(): forget the lock state of the loader
 * (another thread of the parent may have held it). */
void bk_script_after_fork(void);

#endif
