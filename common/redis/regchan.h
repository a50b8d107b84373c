/* regchan.h - the local channel to registryd, over Redis.
 *
 * registryd is the only holder of the Ethereum key; other processes
 * (workers on a leader change, backupd for backup logs, operators) ask it
 * to send registry transactions through this channel:
 *
 *   caller:    LPUSH br2k:{svc}:registry:queue <request JSON>
 *              BLPOP br2k:{svc}:registry:reply:<id> <timeout>
 *   registryd: BLMOVE queue -> br2k:{svc}:registry:processing (RIGHT LEFT)
 *              ... one transaction at a time, in order ...
 *              LPUSH reply:<id> <reply JSON>; EXPIRE; LREM processing
 *
 * A request left in `processing` by a registryd that died is taken up
 * again first when it restarts (at-least-once; the contract makes every
 * write safe to repeat: a repeated leader epoch or backup version reverts
 * with StaleEpoch / BadVersion, which registryd reports as already done
 * when the stored value is the requested one).
 *
 * Request:  {"id": HEX, "method": NAME, "args": {...}, "epoch": N|null}
 * Reply:    {"id": HEX, "ok": true, "tx": "0x..", "block": N, ...} or
 *           {"id": HEX, "ok": false, "error": "one line", "code": NAME} */
#ifndef BK_REGCHAN_H
#define BK_REGCHAN_H

#include <jansson.h>

#include "base/err.h"
#include "redis/redis.h"

/* Caller side: send `method` with `args` (borrowed) and the caller's
 * fencing token `epoch` (-1: none), wait up to timeout_ms for the reply.
 * On success *reply is the reply object (the caller decrefs); a reply
 * with "ok": false is still BK_OK: the caller reads "error". */
int bk_regchan_call(bk_redis *r, const char *svc, const char *method, json_t *args,
                    long long epoch, int timeout_ms, json_t **reply, bk_err *e);

/* registryd side: the next request (one left in `processing` first, then
 * the queue, waiting up to timeout_ms). *req is NULL on timeout. */
int bk_regchan_next(bk_redis *r, const char *svc, int timeout_ms, json_t **req,
                    bk_err *e);

/* registryd side: publish `reply` (borrowed) for `req`, then drop `req`
 * from `processing`. */
int bk_regchan_reply(bk_redis *r, const char *svc, json_t *req, json_t *reply, bk_err *e);

#endif
