/* keys.h - the Redis key layout of a BR2K service, every Lua script that
 * writes it, and the operations on it (schemas/redis-keys.md documents
 * each key for dashboards).
 *
 * keys.c is the ONE file of key names and script sources of the service:
 * every br2k:{<svc>}:* key (the service's own, the registry channel's,
 * InfoDID's external index) is built by a function below, and every
 * script that writes them is a bk_script below, run by the one loader
 * (script.h). The operations (lease, fenced writes, backup phase, reads)
 * are in ops.c. (The request log on Redis Streams, common/log/
 * rlog_redis.c, keeps its stream's own keys and scripts, run through
 * script.h too.)
 *
 * Every key of service <svc> is "br2k:{<svc>}:<name>": the hash tag keeps a
 * service in one Redis Cluster slot, so scripts can touch its keys
 * atomically. The paper's names are kept: Service-State (SV), State-<id>
 * (SSV), SSI, LPI-<id>.
 *
 * Leader-only writes (I2) are Lua scripts, loaded once (SCRIPT LOAD) and run
 * with EVALSHA (loaded again on NOSCRIPT), that compare the caller's fencing
 * token with br2k:{<svc>}:epoch and refuse a stale one atomically with an
 * error reply starting "FENCED" (returned as BK_ERR, code BK_E_FENCED).
 * SSI, SV and SSV only increase (I3): a lower value changes nothing.
 *
 * Changes are announced on the channel br2k:{<svc>}:changes: the message is
 * the new SSI in decimal, or a word for other events ("backup <phase>",
 * "backup-clear"). Subscribers treat a non-number as "something changed".
 *
 * All functions take the service name `svc` (letters, digits, '-', '_';
 * checked by bk_keys_check_service) and return BK_OK or BK_ERR with `e`. */
#ifndef BK_KEYS_H
#define BK_KEYS_H

#include <stddef.h>
#include <stdint.h>

#include "base/err.h"
#include "redis/redis.h"
#include "redis/script.h"

#define BK_KEY_MAX 512 /* enough for any key below with valid names */
#define BK_ID_MAX 64   /* bytes of a worker id */

/* ---- key names (pure) ----
 * Each writes the full key into buf[size] and returns BK_OK, or BK_ERR
 * (BK_E_INVAL) when a name is invalid or the key does not fit. */

/* Letters, digits, '-' and '_', 1 to 200 bytes. */
int bk_keys_check_service(const char *svc, bk_err *e);
/* Letters, digits, '-', '_' and '.', 1 to BK_ID_MAX bytes. */
int bk_keys_check_id(const char *id, bk_err *e);

int bk_key_sv(char *buf, size_t size, const char *svc, bk_err *e); /* Service-State */
int bk_key_ssv(char *buf, size_t size, const char *svc, const char *id,
               bk_err *e); /* State-<id> */
int bk_key_ssi(char *buf, size_t size, const char *svc, bk_err *e);
int bk_key_lpi(char *buf, size_t size, const char *svc, const char *id, bk_err *e);
int bk_key_backup(char *buf, size_t size, const char *svc, bk_err *e);
int bk_key_epoch(char *buf, size_t size, const char *svc, bk_err *e);
int bk_key_leader(char *buf, size_t size, const char *svc, bk_err *e);
int bk_key_members(char *buf, size_t size, const char *svc, bk_err *e);
int bk_key_alive(char *buf, size_t size, const char *svc, const char *id, bk_err *e);
int bk_key_metrics(char *buf, size_t size, const char *svc, const char *id, bk_err *e);
/* The results of requests "<client>:<seq>" (seq decimal 0 to 2^64-1, no
 * leading zero; client without '{' '}'): hash results:<client>:<seq / 1024>
 * (BK_RESULTS_PER_HASH requests per hash, one TTL for them), field <seq>.
 * BK_E_INVAL for any other id. */
#define BK_RESULTS_PER_HASH 1024
int bk_key_results(char *buf, size_t size, char *field, size_t fsize, const char *svc,
                   const char *request_id, bk_err *e);
/* result:<request id>: the string key of a result whose request id is not
 * of the form above (an application's own id), and the prefix of the keys
 * at an offset (below). */
int bk_key_result(char *buf, size_t size, const char *svc, const char *request_id,
                  bk_err *e);
/* br2k:{<svc>}:result:<request_id>@<offset>: the result of the record at
 * `offset` when it is not the first of its request id (a repeat), or when
 * the record could not be parsed (its header named the id). */
int bk_key_result_at(char *buf, size_t size, const char *svc, const char *request_id,
                     int64_t offset, bk_err *e);
/* The pub/sub channel br2k:{<svc>}:changes. */
int bk_key_changes(char *buf, size_t size, const char *svc, bk_err *e);

/* The registry channel (regchan.h) and registryd: registry:queue,
 * registry:processing, registry:reply:<request id> (any id the caller chose),
 * registry:inflight (the transaction sender's, chain/sender.h) and
 * registry:endpoint:<worker id>. */
int bk_key_registry_queue(char *buf, size_t size, const char *svc, bk_err *e);
int bk_key_registry_processing(char *buf, size_t size, const char *svc, bk_err *e);
int bk_key_registry_reply(char *buf, size_t size, const char *svc, const char *req_id,
                          bk_err *e);
int bk_key_registry_inflight(char *buf, size_t size, const char *svc, bk_err *e);
int bk_key_registry_endpoint(char *buf, size_t size, const char *svc, const char *id,
                             bk_err *e);

/* The HTTP gateways (producer/gateway/): gateway-<id>, the metrics hash of
 * one (its advertised URL and heartbeat in it, expiring), and gateways,
 * the set of gateway ids that ever wrote one. */
int bk_key_gateway(char *buf, size_t size, const char *svc, const char *id, bk_err *e);
int bk_key_gateways(char *buf, size_t size, const char *svc, bk_err *e);

/* The applications' external state (worker/include/br2k/app.h, the host's
 * ext_write): br2k:{svc}:ext:<name>, and ext:applied, the last offset
 * whose external effect ran (I5). InfoDID's index (INFODID.md) is
 * ext:applied, ext:active (the active DIDs) and ext:did (hash DID ->
 * controller). bk_key_ext checks `name` (bk_ext_name_ok) and refuses
 * "applied", which only the script writes. */
int bk_key_ext_prefix(char *buf, size_t size, const char *svc, bk_err *e); /* ...:ext: */
int bk_key_ext(char *buf, size_t size, const char *svc, const char *name, bk_err *e);
int bk_key_ext_applied(char *buf, size_t size, const char *svc, bk_err *e);
int bk_key_ext_active(char *buf, size_t size, const char *svc, bk_err *e);
int bk_key_ext_did(char *buf, size_t size, const char *svc, bk_err *e);
/* br2k:{svc}:ext-lost: set when a worker put back an SSI that a Redis
 * failover lost (bk_ssi_restore): the SSI Redis showed then, the lowest
 * such; the external writes of the records after it may be lost too. The
 * next leader republishes the external view and deletes it (claim.c,
 * bk_ext_replace, I9). */
int bk_key_ext_lost(char *buf, size_t size, const char *svc, bk_err *e);
/* 1 when `name` is 1 to BK_EXT_NAME_MAX bytes of A-Z a-z 0-9 . _ - : and
 * not "applied". */
#define BK_EXT_NAME_MAX 128
int bk_ext_name_ok(const char *name);

/* ---- the scripts (keys.c; run with bk_script_eval, script.h) ----
 * KEYS and ARGV of each, in order. A fenced script starts with the check
 * of ARGV[1] (the caller's token) against KEYS[1] (epoch). */

/* KEYS leader epoch ssi; ARGV id max_ssi lease_ms min_ssi min_epoch.
 * Returns the new epoch, 0 (not caught up) or -1 - the PTTL of a lease
 * held. */
extern bk_script bk_lua_lease_take;
/* KEYS epoch leader; ARGV token id lease_ms. Fenced. */
extern bk_script bk_lua_lease_renew;
/* KEYS leader; ARGV "<id> <epoch>". */
extern bk_script bk_lua_lease_release;
/* KEYS epoch ssi, then per result its key and its key at its offset
 * (results:<client>:<bucket> or result:<id>, and result:<id>@<offset>);
 * ARGV token ssi ttl_s channel, then per result its JSON, its mode and its
 * field: 'h' (the request named itself, an id of the hash form: HSETNX of
 * the field, the hash's TTL renewed; the key at its offset when the field
 * is taken: a repeat), 'p' (the same for an id of another form: SET NX) or
 * 's' (an unparseable record named by its header: the key at its offset
 * only). Fenced. */
extern bk_script bk_lua_commit;
/* KEYS epoch target; ARGV token v. Fenced. */
extern bk_script bk_lua_fenced_raise;
/* KEYS target; ARGV v. */
extern bk_script bk_lua_raise;
/* KEYS ssi ext-lost; ARGV v. Raise SSI to v if lower and then set
 * ext-lost to the lowest SSI seen going back; returns {SSI after, ext-lost
 * or -2 when unset} (bk_ssi_restore, bk_ext_lost_check). */
extern bk_script bk_lua_ssi_restore;
/* KEYS epoch ssi ext-lost; ARGV token ssi floor channel. Fenced: raise SSI
 * to ssi and publish it; SSI found below floor marks ext-lost first
 * (bk_fenced_ssi_commit). */
extern bk_script bk_lua_ssi_commit;
/* KEYS epoch ext:applied ext-lost, then one key per op; ARGV token offset
 * match-pattern, then per op: kind arg1 arg2. Fenced; deletes every key
 * matching the pattern (the ext: keys) but ext:applied, runs the ops, sets
 * ext:applied = offset and deletes ext-lost (bk_ext_replace). */
extern bk_script bk_lua_ext_replace;
/* KEYS epoch backup aux; ARGV token mode expect to ttl_ms channel aux_val.
 * Fenced. */
extern bk_script bk_lua_backup_step;
/* KEYS members alive; ARGV id now_ms ttl_ms. */
extern bk_script bk_lua_heartbeat;
/* KEYS epoch sv ssv backup-last backup; ARGV token version cut channel.
 * Fenced. */
extern bk_script bk_lua_backup_finish;
/* The external write of the applications (bk_ext_write). KEYS epoch
 * ext:applied, then one key per op in order; ARGV token, then per record:
 * offset nops, then per op: kind (SET|DEL|HSET|HDEL|INCRBY) arg1 arg2.
 * Fenced; a record whose offset is <= ext:applied is skipped; ext:applied
 * ends at the last offset run. Returns how many records ran. */
extern bk_script bk_lua_ext_write;
/* br2k-backupd's read of the external state at the cut. KEYS epoch,
 * backup, ext:applied, then the external keys. Read-only: returns the
 * epoch, the phase, EXISTS and GET of ext:applied, then (type, value) per
 * key (string: {value}; hash: HGETALL; set: SMEMBERS; list: LRANGE; zset:
 * ZRANGE WITHSCORES; other types: {}). A hash of more than 1000 fields
 * comes as type "hash+" and {}: the caller reads it with HSCAN (one script
 * reading InfoDID's 1M-field index blocked Redis for seconds), then reads
 * the head again (no keys) to check that ext:applied and the phase did not
 * move meanwhile. */
extern bk_script bk_lua_external_read;

/* ---- the lease and the fencing token (I2) (ops.c, as all below) ---- */

/* Take the lease br2k:{svc}:leader = "<id> <epoch>" for lease_ms if it is
 * free and min_ssi <= SSI <= max_ssi (SSI unset counts as -1): the caller
 * has caught up (max_ssi = its LPI) and holds the results of every record
 * it applied beyond SSI (min_ssi = the offset before the first of them, or
 * its LPI). Pass INT64_MIN and INT64_MAX to skip the check. On success
 * *epoch is the new token (epoch incremented); when the lease is held or
 * the condition fails, *epoch = 0 and BK_OK. */
int bk_lease_take(bk_redis *r, const char *svc, const char *id, int64_t min_ssi,
                  int64_t max_ssi, int lease_ms, int64_t *epoch, bk_err *e);

/* bk_lease_take with an epoch above min_epoch too (the highest epoch the
 * caller saw claimed in the log: a Redis failover that lost the last
 * INCR cannot hand that token out again, I9). With replicas (a
 * sentinel:// address) the new epoch must reach one (WAIT) before it is
 * returned; otherwise BK_ERR and *epoch 0. */
int bk_lease_take_above(bk_redis *r, const char *svc, const char *id, int64_t min_ssi,
                        int64_t max_ssi, int64_t min_epoch, int lease_ms, int64_t *epoch,
                        bk_err *e);

/* bk_lease_take_above that also says, when the lease is held by another,
 * in how many ms it expires (*held_ms; -1 when it is not held): a caller
 * that waits that long takes it the moment it expires. */
int bk_lease_take_wait(bk_redis *r, const char *svc, const char *id, int64_t min_ssi,
                       int64_t max_ssi, int64_t min_epoch, int lease_ms, int64_t *epoch,
                       int64_t *held_ms, bk_err *e);

/* Extend the lease by lease_ms only if it is still "<id> <epoch>" and
 * epoch is current; otherwise BK_ERR with BK_E_FENCED. */
int bk_lease_renew(bk_redis *r, const char *svc, const char *id, int64_t epoch,
                   int lease_ms, bk_err *e);

/* Delete the lease if it is still "<id> <epoch>" (BK_OK either way). */
int bk_lease_release(bk_redis *r, const char *svc, const char *id, int64_t epoch,
                     bk_err *e);

/* Read the lease: id[BK_ID_MAX + 1] ("" if none) and its epoch (0 if none). */
int bk_lease_get(bk_redis *r, const char *svc, char *id, int64_t *epoch, bk_err *e);

/* ---- fenced leader writes ---- */

/* One result for the client: request id "<client>:<seq>" and JSON text. */
typedef struct bk_result_item {
    const char *request_id;
    const char *json;
    int64_t offset; /* the record's */
    int secondary;  /* the record did not name itself (its header did) */
} bk_result_item;

/* The leader's commit of a batch, atomically: with token `epoch`, store
 * the n results (a field or key already there is kept, so a repeated
 * request id keeps the first result; expire after ttl_s seconds, 0: never), then raise
 * SSI to `ssi` if higher (ssi < 0: leave SSI alone) and publish it on the changes
 * channel. Stale token: BK_ERR, BK_E_FENCED, nothing written. *ssi_now (may be NULL) gets
 * SSI after the call. Any number of results (sent in chunks, SSI with the
 * last chunk; an epoch taken during the call refuses the chunk it meets,
 * whole, and SSI is not raised). Chunks of 256 results and more are a
 * MULTI/EXEC under WATCH of the epoch (ops.c). */
int bk_fenced_commit(bk_redis *r, const char *svc, int64_t epoch,
                     const bk_result_item *items, size_t n, int ttl_s, int64_t ssi,
                     int64_t *ssi_now, bk_err *e);

/* The second step of a commit with replicas (I9; worker/commit.c): with
 * token `epoch`, raise SSI to `ssi` and publish it. `floor` is an SSI the
 * caller saw committed: SSI found below it means that a failover promoted
 * a replica which lost writes, the external ones included, so ext-lost is
 * marked (as bk_ssi_restore would) in the same atomic step as the raise
 * that would hide the loss. *ssi_now (may be NULL) gets SSI after. */
int bk_fenced_ssi_commit(bk_redis *r, const char *svc, int64_t epoch, int64_t ssi,
                         int64_t floor, int64_t *ssi_now, bk_err *e);

/* Raise SV to v if higher (fenced). *now (may be NULL) gets SV after. */
int bk_fenced_sv_raise(bk_redis *r, const char *svc, int64_t epoch, int64_t v,
                       int64_t *now, bk_err *e);

/* Raise the SSV of worker `id` to v if higher (fenced: the leader's). */
int bk_fenced_ssv_raise(bk_redis *r, const char *svc, int64_t epoch, const char *id,
                        int64_t v, int64_t *now, bk_err *e);

/* Set the backup phase to `phase` (a short word, e.g. "snapshot") or clear
 * it (phase NULL); fenced; announced on the changes channel as
 * "backup <phase>" or "backup-clear". */
int bk_fenced_backup(bk_redis *r, const char *svc, int64_t epoch, const char *phase,
                     bk_err *e);

/* The external effect of the applications (the host's ext_write of
 * worker/include/br2k/app.h): with token `epoch`, for each record in turn
 * (offsets strictly increasing), fenced and idempotent per offset: a
 * record whose offset is <= ext:applied changes nothing; else its ops run
 * on br2k:{svc}:ext:<name> and ext:applied = its offset. One script call
 * (bk_lua_ext_write), so all or nothing. The ops are checked first (a bad
 * kind, name, or a missing field or value: BK_E_INVAL, nothing written);
 * a stale token is BK_E_FENCED. *ran (may be NULL) gets the number of
 * records that ran. n = 0 does nothing. */
typedef enum bk_ext_kind {
    BK_EXT_SET = 1,
    BK_EXT_DEL = 2,
    BK_EXT_HSET = 3,
    BK_EXT_HDEL = 4,
    BK_EXT_INCRBY = 5
} bk_ext_kind;

typedef struct bk_ext_op {
    int kind;          /* bk_ext_kind */
    const char *name;  /* the key under ext: (bk_ext_name_ok) */
    const char *field; /* HSET, HDEL */
    const char *value; /* SET, HSET */
    int64_t by;        /* INCRBY */
} bk_ext_op;

typedef struct bk_ext_rec {
    int64_t offset;
    const bk_ext_op *ops;
    size_t n;
} bk_ext_rec;

int bk_ext_write(bk_redis *r, const char *svc, int64_t epoch, const bk_ext_rec *recs,
                 size_t n, int64_t *ran, bk_err *e);

/* ext:applied (-1 when unset). */
int bk_ext_applied_get(bk_redis *r, const char *svc, int64_t *offset, bk_err *e);

/* Replace the whole external view (an application's `republish`): with
 * token `epoch` (else BK_E_FENCED, nothing written), in one script: every
 * br2k:{svc}:ext:* key but ext:applied deleted, the n ops run in order,
 * ext:applied = offset, ext-lost deleted. The ops are checked first. */
int bk_ext_replace(bk_redis *r, const char *svc, int64_t epoch, int64_t offset,
                   const bk_ext_op *ops, size_t n, bk_err *e);

/* A new leader's check (claim.c): raise SSI to `seen` like bk_ssi_restore
 * (marking ext-lost if it was lower), then *lost = ext-lost: the SSI
 * below which the external view is whole, or -2 when nothing was lost.
 * *ssi (may be NULL) gets SSI after. */
int bk_ext_lost_check(bk_redis *r, const char *svc, int64_t seen, int64_t *ssi,
                      int64_t *lost, bk_err *e);

/* ---- state-version-up (backupd and the leader; schemas/redis-keys.md) ----
 *
 * The phase key br2k:{svc}:backup holds "<phase> <epoch> <cut>": the step
 * of the backup in progress, the fencing token it runs under (the
 * leader's), and the cut offset C (-1 before it is chosen). Phases, in
 * order: hold (backupd asks the leader to hold), held (the leader holds
 * at C = SSI = its LPI), snapshot (the leader snapshots its state at C
 * and resumes), log, delete; then backup-finish clears it. The leader
 * holds only while the phase names its own epoch; followers pause
 * following in the phases after `held` only while the lease is held with
 * that epoch. A phase has a TTL so a dead backupd never holds the
 * service. Other keys (bk_key_backup_aux names): backup-req (JSON, the
 * snapshot request to the leader), backup-report (JSON, the leader's
 * answer), backup-run (JSON, backupd's own progress across restarts),
 * backup-last ("<version> <cut>" of the last finished backup), backup-now
 * (an operator's request, unix ms). */

#define BK_PHASE_ANY NULL /* bk_fenced_backup_step: whatever the phase is */

typedef struct bk_backup_phase {
    int set;        /* 0: no backup in progress */
    char phase[16]; /* "hold", "held", "snapshot", ... */
    int64_t epoch;  /* the fencing token the backup runs under */
    int64_t cut;    /* C, -1 before it is chosen */
} bk_backup_phase;

/* br2k:{svc}:<name>, name one of the backup-* keys above. */
int bk_key_backup_aux(char *buf, size_t size, const char *svc, const char *name,
                      bk_err *e);

/* "<phase> <epoch> <cut>" into buf. */
void bk_backup_phase_format(char *buf, size_t size, const char *phase, int64_t epoch,
                            int64_t cut);
/* Parse such a value (NULL: no phase, p->set = 0); BK_ERR when malformed. */
int bk_backup_phase_parse(const char *s, bk_backup_phase *p);
/* Read the phase; raw[raw_size] (may be NULL) gets the value as stored
 * ("" when none). */
int bk_backup_phase_get(bk_redis *r, const char *svc, bk_backup_phase *p, char *raw,
                        size_t raw_size, bk_err *e);

/* Fenced compare-and-set of the phase, atomically: with token `epoch`,
 * when the current value matches `expect` (BK_PHASE_ANY: anything; "": no
 * phase; else that exact value), set it to `to` with a TTL of ttl_ms (0:
 * none; -1: keep the current TTL; `to` NULL deletes it; "=" keeps value and TTL), and SET
 * the key aux_name (may be NULL) to aux_val. Announced on the changes channel. *done (may
 * be NULL) is 1 when written, 0 when `expect` did not match; a stale token is BK_ERR with
 * BK_E_FENCED. */
int bk_fenced_backup_step(bk_redis *r, const char *svc, int64_t epoch, const char *expect,
                          const char *to, int ttl_ms, const char *aux_name,
                          const char *aux_val, int *done, bk_err *e);

/* Steps 7 and 8 in one fenced script: SV and the SSV of leader_id raised to
 * version (if higher), backup-last = "<version> <cut>", the phase deleted,
 * "backup-clear" announced. *sv_now (may be NULL) gets SV after. */
int bk_fenced_backup_finish(bk_redis *r, const char *svc, int64_t epoch,
                            const char *leader_id, int64_t version, int64_t cut,
                            int64_t *sv_now, bk_err *e);

/* backup-last: *version (1 when none) and *cut (-1 when none). */
int bk_backup_last_get(bk_redis *r, const char *svc, int64_t *version, int64_t *cut,
                       bk_err *e);

/* An operator's request for a backup now (`br2k backup now`): SET
 * backup-now <unix ms>, announced as "backup-now"; backupd takes it. */
int bk_backup_now_request(bk_redis *r, const char *svc, bk_err *e);

/* ---- non-fenced writes ---- */

/* Raise this worker's own SSV to v if higher (a follower after a backup). */
int bk_ssv_raise(bk_redis *r, const char *svc, const char *id, int64_t v, int64_t *now,
                 bk_err *e);

/* SV and State-<id> are set to 1 if unset (versions start at 1). */
int bk_versions_init(bk_redis *r, const char *svc, const char *id, bk_err *e);

/* SADD members <id>; SET alive-<id> <unix ms> PX ttl_ms. */
int bk_heartbeat(bk_redis *r, const char *svc, const char *id, int ttl_ms, bk_err *e);

/* SREM members <id>; DEL alive-<id>. */
int bk_leave(bk_redis *r, const char *svc, const char *id, bk_err *e);

/* SET LPI-<id> lpi (the mirror of the durable local LPI). */
int bk_lpi_mirror(bk_redis *r, const char *svc, const char *id, int64_t lpi, bk_err *e);

/* HSET metrics-<id> with n field/value pairs (fields[i], values[i]). */
int bk_metrics_write(bk_redis *r, const char *svc, const char *id,
                     const char *const *fields, const char *const *values, size_t n,
                     bk_err *e);

/* Raise SSI to v if it is lower (never down): a worker restores the SSI
 * it saw committed when a Redis failover lost it (I3, I9), and marks
 * ext-lost (the external writes after the SSI Redis had may be lost too).
 * *now (may be NULL) gets SSI after. */
int bk_ssi_restore(bk_redis *r, const char *svc, int64_t v, int64_t *now, bk_err *e);

/* ---- reads ---- */

/* GET key as an integer; *v = def when the key does not exist. */
int bk_keys_get_i64(bk_redis *r, const char *key, int64_t def, int64_t *v, bk_err *e);

/* SSI (-1 when unset), SV and SSV of `id` (1 when unset), epoch (0). */
int bk_ssi_get(bk_redis *r, const char *svc, int64_t *ssi, bk_err *e);
int bk_sv_get(bk_redis *r, const char *svc, int64_t *sv, bk_err *e);
int bk_ssv_get(bk_redis *r, const char *svc, const char *id, int64_t *ssv, bk_err *e);
int bk_epoch_get(bk_redis *r, const char *svc, int64_t *epoch, bk_err *e);

/* In a child process after fork(): forget the lock state of the script
 * loader (another thread of the parent may have held it); the same as
 * bk_script_after_fork. */
void bk_keys_after_fork(void);

#endif
