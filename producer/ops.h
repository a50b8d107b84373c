/* ops.h - `br2k status` and `br2k verify` (ops.c; not installed), and
 * what they share with the other operator commands: the status object of
 * `br2k status --json`, which `br2k top` shows and `br2k top --once --json`
 * prints, and one member's part of it, which `br2k probe` reads. Redis
 * only; nothing here writes.
 *
 * What an operator reads must be true, so a member's role comes from the
 * lease (br2k:{svc}:leader = "<id> <epoch>") and its heartbeat
 * (alive-<id>), never from its metrics hash alone, which a paused or dead
 * worker leaves behind; a row whose numbers may be old says so (stale); and
 * the lag is computed from the SSI and LPI shown beside it. */
#ifndef BR2K_OPS_H
#define BR2K_OPS_H

#include <jansson.h>

#include "opts.h"
#include "base/err.h"
#include "redis/redis.h"

/* A worker writes alive-<id> (its unix time in ms) with this TTL, and
 * alive-<id> and its metrics hash every 500 ms (ALIVE_TTL_MS and METRICS_MS
 * of worker/lease.c, schemas/redis-keys.md): the heartbeat's age is
 * OPS_ALIVE_TTL_MS - PTTL. (Both sides would better share one constant of
 * redis/keys.h.) */
#define OPS_ALIVE_TTL_MS 3000
/* A row is stale once its heartbeat is older than this (3 periods missed
 * and then some), or its metrics are this much older than its heartbeat. */
#define OPS_STALE_MS 2000

/* Connect to the global --redis; on failure print "br2k CMD: why" on
 * stderr and return NULL. */
bk_redis *ops_connect(const cli_globals *g, const char *cmd);

/* The status object: {service, leader {id, epoch} or null (the lease),
 * epoch, ssi, sv, backup (the phase as stored, null when none), backup_last
 * {version, cut} or null, members [ops_member_json of each, sorted by id],
 * gateways [{id, url, ready, requests, accepted, rejected, inflight, p50_ms,
 * p99_ms, updated_ms} of each live br2k-gateway, sorted by id]}.
 * NULL with `e` set when Redis cannot be read or svc is not a valid service
 * name. */
json_t *ops_status_json(bk_redis *r, const char *svc, bk_err *e);

/* One member:
 *   id
 *   alive             alive-<id> exists
 *   heartbeat_age_ms  ms since its last heartbeat (Redis's clock), null
 *                     when not alive
 *   stale             its row may be old: no heartbeat, a heartbeat older
 *                     than OPS_STALE_MS, no metrics, metrics older than the
 *                     heartbeat, or metrics that say `leader` while the
 *                     lease names another (or nobody)
 *   note              why it is stale (absent when it is not)
 *   role              "leader" when the lease names it; else, without a
 *                     heartbeat, "stopped" or "failed" when its metrics say
 *                     so, or "down"; else "unknown" when stale; else the
 *                     role its metrics report (follower, starting, ...)
 *   reported_role     the role in its metrics hash, as written (or null)
 *   lpi, ssv          LPI-<id>, State-<id>
 *   lag               SSI - lpi (0 when ahead), null when either is unset
 *   metrics           the whole metrics-<id> hash, integers where the text
 *                     is one
 * svc and id must be valid names (bk_keys_check_*); on a Redis error
 * e->code is set. Reads the lease and SSI itself. */
json_t *ops_member_json(bk_redis *r, const char *svc, const char *id, bk_err *e);

/* br2k status [--json] */
int cmd_status(const cli_globals *g, int argc, char **argv);

/* br2k verify [--json] [--timeout-ms MS] */
int cmd_verify(const cli_globals *g, int argc, char **argv);

#endif
