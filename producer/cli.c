/* cli.c - br2k, the client and operator command line: only the
 * dispatcher. The global options (before the command) are parsed by
 * opts.c; each command lives in its own file, behind its own header, and
 * parses its own options with opts.h:
 *
 *   submit             submit.c        status, verify   ops.c
 *   top                top.c           probe            probe.c
 *   keygen, backups,   backups.c       registry         registry_cmd.c
 *   backup                             ping, util       ping.c
 *   history            history.c
 *
 * No command file includes this one. */
#include <curl/curl.h>
#include <stdio.h>
#include <string.h>

#include "backups.h"
#include "history.h"
#include "opts.h"
#include "ops.h"
#include "ping.h"
#include "probe.h"
#include "registry_cmd.h"
#include "submit.h"
#include "top.h"

static const char epilog[] =
    "Commands:\n"
    "  submit [OPTIONS]  append a signed request and print its result; or, with\n"
    "                  --clients K --count N, run the load generator (br2k submit "
    "--help)\n"
    "  status [--json] leader, epoch, SSI, SV, backup phase and members with their\n"
    "                  role (from the lease and heartbeat), LPI, SSV, lag (SSI - LPI)\n"
    "                  and heartbeat, rows that may be old marked STALE; from Redis\n"
    "  top [--interval MS] [--once [--json]]\n"
    "                  live view of the same, refreshed every MS (default 1000), with\n"
    "                  per member records/s, caught up / joining and heartbeat age;\n"
    "                  q or Ctrl-C quits; --once: one frame; --once --json: exactly\n"
    "                  the JSON of status --json\n"
    "  probe ready|live --id ID|--process NAME [--timeout-ms MS]\n"
    "                  Kubernetes probes of worker ID: ready exits 0 when its heartbeat\n"
    "                  is present and it has caught up, live when its heartbeat is\n"
    "                  present or Redis cannot be reached; else 1 with the reason;\n"
    "                  of a daemon (br2k-backupd, br2k-registryd): live when its\n"
    "                  process runs, ready when the parts it needs answer too\n"
    "  verify [--json] [--timeout-ms MS]\n"
    "                  compare the state digests of the replicas at the same LPI;\n"
    "                  exit 0 only when they are consistent\n"
    "  registry deploy|show|log\n"
    "                  the service registry contract on Ethereum (br2k registry help)\n"
    "  backups [--json] [--service-key FILE]\n"
    "                  every backup version in the registry (needs --eth-rpc and\n"
    "                  --registry) with its state-backup-log decrypted by the service\n"
    "                  key (FILE, or env BR2K_SERVICE_KEY holding the key)\n"
    "  backup now [--wait SECONDS] [--force]\n"
    "                  ask br2k-backupd for a backup now and wait until it is done;\n"
    "                  'nothing new' (exit 0, nothing asked) when no record came\n"
    "                  since the last backup, unless --force\n"
    "  history list|export|verify [--from V] [--to V] [--json]\n"
    "                  the history of service actions archived with the backups:\n"
    "                  list them, export the records (JSON lines), or verify: replay\n"
    "                  every record from genesis and check each version's state\n"
    "                  digest and the hash chain (br2k history --help)\n"
    "  keygen [--out FILE]\n"
    "                  make a service key pair: private key to FILE (mode 0600),\n"
    "                  print the public key and address\n"
    "  ping            check that Redis answers PING, that the Kafka brokers list the\n"
    "                  service topic, and that the Ethereum node answers eth_chainId;\n"
    "                  exit 0 only when all configured parts answer\n"
    "  util free-port  print a TCP port that is free on 127.0.0.1\n"
    "  help            show this help\n"
    "\n"
    "Global options go before the command, a command's own after it. Exit codes:\n"
    "0 ok, 1 a negative answer (a rejected request, inconsistent replicas, a part\n"
    "that does not answer), 2 an error. The local stack prints the environment that\n"
    "points every br2k program at it: eval \"$(deploy/local/stack env)\".";

/* The commands. `discover`: with no --kafka and a --registry, the service
 * is found through the registry first (opts_discover); the commands that
 * read the registry itself, or that must answer quickly from what they are
 * given (probes), do not. */
static const struct {
    const char *name;
    int (*run)(const cli_globals *g, int argc, char **argv);
    int discover;
} commands[] = {
    {"submit", cmd_submit, 1},   {"status", cmd_status, 1}, {"top", cmd_top, 1},
    {"probe", cmd_probe, 0},     {"verify", cmd_verify, 1}, {"keygen", cmd_keygen, 0},
    {"backups", cmd_backups, 0}, {"backup", cmd_backup, 1}, {"registry", cmd_registry, 0},
    {"ping", cmd_ping, 1},       {"util", cmd_util, 0},     {"history", cmd_history, 0},
};

int main(int argc, char **argv) {
    int argi, rc;
    cli_globals g;
    if (opts_globals(argc, argv, epilog, &g, &argi, &rc))
        return rc;
    const char *cmd = argi < argc ? argv[argi] : "help";
    size_t i, n = sizeof(commands) / sizeof(commands[0]);
    for (i = 0; i < n && strcmp(cmd, commands[i].name) != 0; i++)
        ;
    curl_global_init(CURL_GLOBAL_DEFAULT);
    if (strcmp(cmd, "help") == 0) {
        opts_help(stdout);
        rc = 0;
    } else if (i == n) {
        fprintf(stderr, "br2k: unknown command '%s' (see br2k --help)\n", cmd);
        rc = 2;
    } else if (commands[i].discover && (rc = opts_discover(&g)) != 0) {
        /* the reason is printed */
    } else {
        rc = commands[i].run(&g, argc - argi, argv + argi);
    }
    curl_global_cleanup();
    opts_release();
    return rc;
}
