/* registry.h - the client of the BR2K registry contract
 * (registryd/contracts/BR2KRegistry.sol; its README lists every function,
 * error and event).
 *
 * Two layers:
 *  - a pure codec: calldata of every write and view, decoding of view
 *    results, of revert data (to the custom error's name and arguments)
 *    and of BackupLogged events; no I/O, so it is tested from bytes;
 *  - network reads over JSON-RPC (registry_rpc.c): views by eth_call,
 *    BackupLogged events by eth_getLogs.
 * Transactions (writes, deployment) go through the sender (sender.h).
 *
 * Every function returns BK_OK or BK_ERR with `e`; decoders are strict
 * (a truncated or malformed result is BK_E_PROTO naming the view). */
#ifndef BK_REGISTRY_H
#define BK_REGISTRY_H

#include <stddef.h>
#include <stdint.h>

#include "base/err.h"

/* The contract's custom errors, as bk_abi_decode_revert wants them. */
extern const char *const bk_reg_error_sigs[];
extern const size_t bk_reg_nerror_sigs;

/* topic0 of BackupLogged(uint64 indexed,bytes32,bytes), 0x-hex. */
#define BK_REG_TOPIC_BACKUP_LOGGED                                                       \
    "0x86c80834d72b79c6a67c0c6305c7719a0210437b261a0b408cd9f000d6a684f8"

/* ---- calldata ----
 * Each writes the calldata of one function into *out (malloc'd, the caller
 * frees) and *len, and returns BK_OK, or BK_ERR (out of memory). */

/* setAccessInfo(bootstrap, topic, results); results NULL means "". */
int bk_reg_enc_set_access_info(const char *bootstrap, const char *topic,
                               const char *results, uint8_t **out, size_t *len,
                               bk_err *e);
/* setLeader(worker_id, epoch, endpoint); endpoint NULL means "". */
int bk_reg_enc_set_leader(const char *worker_id, uint64_t epoch, const char *endpoint,
                          uint8_t **out, size_t *len, bk_err *e);
/* appendBackupLog(version, digest, log[loglen]). */
int bk_reg_enc_append_backup_log(uint64_t version, const uint8_t digest[32],
                                 const uint8_t *log, size_t loglen, uint8_t **out,
                                 size_t *len, bk_err *e);
/* appendBackupLogWithArchive(version, digest, archive, log[loglen]): the
 * backup with the SHA-256 of its history archive (HistoryArchived). */
int bk_reg_enc_append_backup_log_archive(uint64_t version, const uint8_t digest[32],
                                         const uint8_t archive[32], const uint8_t *log,
                                         size_t loglen, uint8_t **out, size_t *len,
                                         bk_err *e);
/* pruneArchives(through): the archives of versions <= through were pruned. */
int bk_reg_enc_prune_archives(uint64_t through, uint8_t **out, size_t *len, bk_err *e);
/* archiveByVersion(version), a view. */
int bk_reg_enc_archive_by_version(uint64_t version, uint8_t **out, size_t *len,
                                  bk_err *e);
/* addWriter(account). */
int bk_reg_enc_add_writer(const uint8_t account[20], uint8_t **out, size_t *len,
                          bk_err *e);
/* removeWriter(account). */
int bk_reg_enc_remove_writer(const uint8_t account[20], uint8_t **out, size_t *len,
                             bk_err *e);
/* isWriter(account), a view. */
int bk_reg_enc_is_writer(const uint8_t account[20], uint8_t **out, size_t *len,
                         bk_err *e);
/* backupByVersion(version), a view. */
int bk_reg_enc_backup_by_version(uint64_t version, uint8_t **out, size_t *len, bk_err *e);
/* setGateways(urls): the gateways' URLs, comma-separated (NULL means ""). */
int bk_reg_enc_set_gateways(const char *urls, uint8_t **out, size_t *len, bk_err *e);
/* A view without arguments: "stateVersion()", "latestBackup()", "leader()",
 * "accessInfo()", "owner()", "gateways()". */
int bk_reg_enc_noarg(const char *signature, uint8_t **out, size_t *len, bk_err *e);

/* ---- decoded views ---- */

typedef struct bk_reg_access {
    char *bootstrap, *topic, *results; /* owned; "" before setAccessInfo */
} bk_reg_access;

typedef struct bk_reg_leader {
    char *worker_id; /* owned; "" before the first setLeader */
    uint64_t epoch;
    char *endpoint; /* owned */
} bk_reg_leader;

typedef struct bk_reg_backup {
    uint64_t version;
    uint8_t digest[32];
    uint64_t block;
} bk_reg_backup;

/* Free what a decoded record owns (safe on a zeroed or released one). */
void bk_reg_access_release(bk_reg_access *a);
void bk_reg_leader_release(bk_reg_leader *l);

/* Decoders of view results ret[len]: BK_OK, or BK_ERR (BK_E_PROTO) naming
 * the view for an empty, truncated or malformed result; strings are
 * malloc'd copies, freed by the release functions above. */

/* stateVersion() -> *sv. */
int bk_reg_dec_state_version(const uint8_t *ret, size_t len, uint64_t *sv, bk_err *e);
/* latestBackup() and backupByVersion(v) (same shape) -> *b. */
int bk_reg_dec_backup(const uint8_t *ret, size_t len, bk_reg_backup *b, bk_err *e);
/* leader() -> *l (release with bk_reg_leader_release; nothing to free on
 * error). */
int bk_reg_dec_leader(const uint8_t *ret, size_t len, bk_reg_leader *l, bk_err *e);
/* accessInfo() -> *a (release with bk_reg_access_release). */
int bk_reg_dec_access_info(const uint8_t *ret, size_t len, bk_reg_access *a, bk_err *e);
/* archiveByVersion(v) -> digest[32] (zero: no archive), *pruned_through. */
int bk_reg_dec_archive(const uint8_t *ret, size_t len, uint8_t digest[32],
                       uint64_t *pruned_through, bk_err *e);
/* gateways() -> *urls (malloc'd, the caller frees; "" when none). */
int bk_reg_dec_gateways(const uint8_t *ret, size_t len, char **urls, bk_err *e);
/* isWriter(account) -> *v (0 or 1). */
int bk_reg_dec_bool(const uint8_t *ret, size_t len, int *v, bk_err *e);
/* owner() -> addr[20]. */
int bk_reg_dec_address(const uint8_t *ret, size_t len, uint8_t addr[20], bk_err *e);

/* ---- reverts ---- */

/* Describe revert data: name[name_size] gets the error's name
 * ("StaleEpoch", "Error", "Panic", "" when empty or unknown) and
 * line[line_size] the one-line form ("StaleEpoch(5, 5)", "empty revert",
 * "unknown error 0x12345678"); args[2] (may be NULL) the first two
 * arguments as uint64 when they are integers (0 otherwise). Returns BK_OK,
 * or BK_ERR (BK_E_PROTO) for data shorter than a selector or arguments
 * that do not decode; line then holds the error message too. */
int bk_reg_revert_describe(const uint8_t *data, size_t len, char *name, size_t name_size,
                           char *line, size_t line_size, uint64_t args[2], bk_err *e);

/* ---- events ---- */

/* A BackupLogged event: version, digest, the encrypted log (pointing into
 * the caller's data: keep it alive), and where it was logged. */
typedef struct bk_reg_backup_log {
    uint64_t version;
    uint8_t digest[32];
    const uint8_t *log;
    size_t loglen;
    uint64_t block;
} bk_reg_backup_log;

/* Decode a BackupLogged log from its topics and data. */
int bk_reg_dec_backup_logged(const uint8_t (*topics)[32], size_t ntopics,
                             const uint8_t *data, size_t len, bk_reg_backup_log *out,
                             bk_err *e);

/* ---- network reads (registry_rpc.c) ----
 * Each reads the registry at reg[20] with eth_call on "latest" through rpc
 * (which fails over between its URLs). A revert is BK_ERR (BK_E_REMOTE)
 * whose message names the view and the custom error:
 * "'backupByVersion' reverted: UnknownVersion(9)". */

typedef struct bk_rpc bk_rpc;

/* eth_call with calldata; *ret (malloc'd, the caller frees) the result. */
int bk_reg_view(bk_rpc *rpc, const uint8_t reg[20], const char *view,
                const uint8_t *calldata, size_t len, uint8_t **ret, size_t *retlen,
                bk_err *e);

/* stateVersion(), latestBackup(), backupByVersion(version), leader(),
 * accessInfo(), isWriter(account), owner(), read and decoded. */
int bk_reg_get_state_version(bk_rpc *rpc, const uint8_t reg[20], uint64_t *sv, bk_err *e);
int bk_reg_get_latest_backup(bk_rpc *rpc, const uint8_t reg[20], bk_reg_backup *b,
                             bk_err *e);
int bk_reg_get_backup(bk_rpc *rpc, const uint8_t reg[20], uint64_t version,
                      bk_reg_backup *b, bk_err *e);
/* archiveByVersion(version): the archive digest (zero: none) and the
 * highest version whose archives were pruned (0: none). */
int bk_reg_get_archive(bk_rpc *rpc, const uint8_t reg[20], uint64_t version,
                       uint8_t digest[32], uint64_t *pruned_through, bk_err *e);
int bk_reg_get_leader(bk_rpc *rpc, const uint8_t reg[20], bk_reg_leader *l, bk_err *e);
int bk_reg_get_access_info(bk_rpc *rpc, const uint8_t reg[20], bk_reg_access *a,
                           bk_err *e);
int bk_reg_get_is_writer(bk_rpc *rpc, const uint8_t reg[20], const uint8_t account[20],
                         int *yes, bk_err *e);
int bk_reg_get_owner(bk_rpc *rpc, const uint8_t reg[20], uint8_t owner[20], bk_err *e);
int bk_reg_get_gateways(bk_rpc *rpc, const uint8_t reg[20], char **urls, bk_err *e);

/* Find the service's HTTP gateways from the registry alone, as an end
 * user's client does: read gateways() of the contract `registry` (0x
 * address) from the first answering URL of `eth_rpc` (comma-separated),
 * each call bounded by timeout_ms (<= 0: 5000). *urls gets the URLs,
 * comma-separated (malloc'd, the caller frees), *n (may be NULL) how many.
 * BK_E_NOTFOUND when the registry lists none; BK_E_INVAL for a bad
 * address; the RPC's error when the chain cannot be read. */
int bk_reg_discover_gateways(const char *eth_rpc, const char *registry, int timeout_ms,
                             char **urls, size_t *n, bk_err *e);

/* Whether the chain holds backup `version` with `digest`: *held = 1 yes,
 * 0 not yet (stateVersion below it), -1 with another digest; *block (may
 * be NULL) the block that logged it. */
int bk_reg_has_backup(bk_rpc *rpc, const uint8_t reg[20], uint64_t version,
                      const uint8_t digest[32], int *held, uint64_t *block, bk_err *e);

/* The encrypted state-backup-log of `version`, from the BackupLogged event
 * of its block (backupByVersion gives the block): *log (malloc'd, the
 * caller frees) and *loglen; digest[32] (may be NULL) the digest the event
 * carries. BK_E_NOTFOUND when the block holds no such event. */
int bk_reg_get_backup_log(bk_rpc *rpc, const uint8_t reg[20], uint64_t version,
                          uint8_t **log, size_t *loglen, uint8_t digest[32], bk_err *e);

/* ---- the contract's creation code (embedded at build time) ---- */

/* The creation bytecode of BR2KRegistry (from BR2KRegistry.json) into *out
 * (malloc'd, the caller frees). */
int bk_reg_creation_code(uint8_t **out, size_t *len, bk_err *e);

/* The runtime bytecode, 0x-hex (what eth_getCode returns after deploy). */
const char *bk_reg_runtime_code_hex(void);

#endif
