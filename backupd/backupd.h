/* backupd.h - br2k-backupd: state-version-up (DESIGN.md, the paper's
 * Table 1), fenced with the leader's token at every step.
 *
 * Steps (names used by the log, the backup-run key and the test hook):
 *   1 cut       the external state's key names are listed (before the
 *               hold: objects.c); phase "hold E -1"; the leader commits
 *               what it applied and answers "held E C" with C = SSI = its
 *               LPI; it then holds
 *   2 wait      every alive follower reaches LPI >= C; then, the leader
 *               still holding, the store snapshot (the service's Redis keys)
 *               and the external state (the keys under br2k:{svc}:ext:,
 *               read in one script that checks the phase is still "held E
 *               C") are read; unless the leader offered its view
 *               (backup-view "E C 1") and the view has more than
 *               --view-fields fields: then nothing is read under ext:
 *   3 phase     backup-req (storage, public key, version, external: whether
 *               the snapshot process writes the external state from the
 *               application's view too) and phase "snapshot E C": the
 *               leader forks its snapshot process and resumes (the hold
 *               ends here); followers never pause
 *   4 snapshot  check that no external key was missed and build the
 *               external state's JSON (when read from Redis); wait for
 *               backup-report; read the object(s) back and check their
 *               SHA-256; seal and store the store snapshot and the external
 *               state (v<version>-store-<sha256>, v<version>-external-
 *               <sha256>), each read back and checked before it counts
 *   4b archive  the history archive (common/backup/archive.h): the log's
 *               records from the previous cut + 1 to C, as the log holds
 *               them (a gap the log lost is recorded and reported), named
 *               after the previous version's archive digest (on chain) and
 *               state digest; sealed, stored, read back
 *               (v<version>-archive-<sha256>)
 *   5 log       the state-backup-log (schemas/state-backup-log.schema.json)
 *               encrypted to the service key, appendBackupLog through
 *               registryd, confirmed on chain (backupByVersion digest)
 *   6 delete    the log's records below C + 1 (DeleteRecords), only when
 *               the chain holds this version's archive digest
 *   7 raise     SV and the leader's SSV := version, backup-last := "V C",
 *   8 clear     and the phase deleted: one fenced script (followers then
 *               raise their own SSV)
 * Progress is kept in backup-run (JSON) so that a restarted backupd
 * finishes a backup whose log is on chain, and abandons one that is not
 * (nothing is deleted before step 5 is confirmed: I7). */
#ifndef BK_BACKUPD_H
#define BK_BACKUPD_H

#include <stdint.h>

#include "base/err.h"

typedef struct bk_backupd_opts {
    const char *service, *redis, *kafka, *kafka_props;
    const char *eth_rpc, *registry; /* URLs (comma-separated), 0x address */
    const char *storage;            /* file://DIR or s3://BUCKET/PREFIX?... */
    const char *pubkey;             /* service public key: hex or file; "": env */
    long long max_replicated;       /* records since the last cut that trigger */
    int keep;                       /* versions kept in storage */
    int hold_timeout_ms;            /* steps 1-3: how long the leader may hold */
    int snapshot_timeout_ms;        /* step 4 */
    int log_timeout_ms;             /* step 5 */
    int phase_ttl_ms;               /* TTL of the phases after `held` */
    int poll_ms;                    /* trigger checks */
    int once;                       /* run one backup now and exit */
    int archive_keep;               /* history archives kept (0: all) */
    long long view_fields; /* external views of more hash fields than this come from
                              the leader's view (0: always offered; -1: never) */
} bk_backupd_opts;

/* Run until SIGTERM (or, with once, after one backup). Returns an exit
 * status: 0, 1 (a failure; e says why), 2 (bad configuration). */
int bk_backupd_run(const bk_backupd_opts *o, bk_err *e);

#endif
