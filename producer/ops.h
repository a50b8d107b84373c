/* ops.h - what ops.c shares with the other operator commands (not
 * installed): the status object of `br2k status --json`, which `br2k top`
 * shows and `br2k top --once --json` prints, and one member's part of it,
 * which `br2k probe` reads. Redis only; nothing here writes. */
#ifndef BR2K_OPS_H
#define BR2K_OPS_H

#include <jansson.h>

#include "cli.h"
#include "base/err.h"
#include "redis/redis.h"

/* Connect to the global --redis; on failure print "br2k CMD: why" on
 * stderr and return NULL. */
bk_redis *ops_connect(const cli_globals *g, const char *cmd);

/* The status object: {service, leader {id, epoch} or null, epoch, ssi, sv,
 * backup (the phase as stored, null when none), backup_last {version, cut}
 * or null, members [ops_member_json of each, sorted by id]}. NULL with `e`
 * set when Redis cannot be read or svc is not a valid service name. */
json_t *ops_status_json(bk_redis *r, const char *svc, bk_err *e);

/* One member: {id, alive (alive-<id> exists), role, lpi (LPI-<id>), ssv
 * (State-<id>), lag, metrics (the whole metrics-<id> hash, integers where
 * the text is one)}. svc and id must be valid names (bk_keys_check_*);
 * on a Redis error e->code is set. */
json_t *ops_member_json(bk_redis *r, const char *svc, const char *id, bk_err *e);

#endif
