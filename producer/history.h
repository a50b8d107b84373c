/* history.h - `br2k history` (history.c; not installed): the history of
 * service actions, archived by br2k-backupd with each backup
 * (common/backup/archive.h).
 *
 *   br2k [--eth-rpc URLS] [--registry ADDR] history list [--json]
 *       every version's archive: offsets, record count, gaps, size, and
 *       whether the chain holds its digest
 *   br2k ... history export [--from V] [--to V]
 *       the archived records as JSON lines, decrypted with the service key
 *   br2k ... history verify [--from V] [--to V] [--app SPEC] [--json]
 *       replay every archived record through the application (br2k-replay)
 *       from the empty state, or from the verified backup of --from - 1,
 *       checking at every version the state digest the backup recorded and
 *       the chain links (the previous archive's digest, the start state)
 *
 * Exit 0 when everything holds, 1 with one line naming the version and
 * what broke, 2 on bad usage or an unreachable chain. */
#ifndef BR2K_HISTORY_H
#define BR2K_HISTORY_H

#include "opts.h"

/* argv[0] = "history", argv[1] the subcommand. */
int cmd_history(const cli_globals *g, int argc, char **argv);

#endif
