/* registry_cmd.h - `br2k registry ...`, the operator commands on the
 * registry contract, a command of the br2k CLI.
 *
 *   br2k registry deploy [--key-file F] [--writer ADDR | --writer-key-file F]
 *                        [--bootstrap B --topic T [--results R]]
 *       deploy the contract, print its address; optionally authorize
 *       registryd's address as a writer and publish the access information
 *   br2k registry show --registry ADDR [--json]
 *       access information, leader record, SV and the latest backup
 *   br2k registry log --registry ADDR [--backup-version N] [--json]
 *       a backup's encrypted state-backup-log (its BackupLogged event)
 *
 * Both read the Ethereum RPC URLs from --eth-rpc (default: the global
 * option). */
#ifndef BK_REGISTRY_CLI_H
#define BK_REGISTRY_CLI_H

#include "opts.h"

/* Run `registry` with argv[0] = "registry", argv[1] = the subcommand and
 * its options after it. eth_rpc is the global --eth-rpc ("" if unset);
 * json is the global --json. Returns the exit code: 0 ok, 1 a negative
 * answer, 2 an error. */
int bk_registry_cli(int argc, char **argv, const char *eth_rpc, int json);

/* The same as a command of the br2k dispatcher (g->eth_rpc, g->json). */
int cmd_registry(const cli_globals *g, int argc, char **argv);

#endif
