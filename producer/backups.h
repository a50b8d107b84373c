/* backups.h - the backup commands of br2k (backups.c; not installed).
 *
 *   br2k keygen [--out FILE]
 *       a new secp256k1 service key pair: the private key (hex) into FILE,
 *       mode 0600, never overwriting; prints the public key and address
 *   br2k [--eth-rpc URLS] [--registry ADDR] backups [--json]
 *        [--service-key FILE]
 *       every backup version's state-backup-log read from the registry and
 *       decrypted with the service key (FILE, or env BR2K_SERVICE_KEY)
 *   br2k backup now [--wait SECONDS] [--force]
 *       ask br2k-backupd for a backup now and wait until it is done; when
 *       a backup exists and no record was processed since (SSI <= the cut
 *       of backup-last), say "nothing new" and ask nothing, unless --force
 *
 * Each returns the process exit code: 0 ok, 1 a negative answer (a log
 * that does not decrypt, no backup within the wait), 2 an error. */
#ifndef BR2K_BACKUPS_H
#define BR2K_BACKUPS_H

#include "opts.h"

int cmd_keygen(const cli_globals *g, int argc, char **argv);

/* The global --eth-rpc and --registry (g->eth_rpc, g->registry) are the
 * defaults of the command's own options. */
int cmd_backups(const cli_globals *g, int argc, char **argv);

/* argv[0] = "backup", argv[1] = the subcommand ("now"). */
int cmd_backup(const cli_globals *g, int argc, char **argv);

#endif
