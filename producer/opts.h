/* opts.h - the options of the br2k command (opts.c; not installed): the
 * global options, parsed once by the dispatcher (cli.c), and the parsing of
 * each command's own options. Every command file includes this header and
 * no other file of the dispatcher, so the command files never import each
 * other through it:
 *
 *   cli.c (main, the command table)
 *     -> submit.h ops.h top.h probe.h backups.h registry_cmd.h ping.h
 *        -> opts.h
 *
 * A command is `int cmd_NAME(const cli_globals *g, int argc, char **argv)`
 * with argv[0] its name; it returns the process exit code (0 ok, 1 a
 * negative answer, 2 an error). */
#ifndef BR2K_OPTS_H
#define BR2K_OPTS_H

#include <stdio.h>

#include "br2k.h"
#include "base/config.h"

/* The global options (given before the command), as parsed. The strings
 * live until opts_release(). */
typedef struct cli_globals {
    const char *service, *redis, *kafka, *kafka_props;
    int timeout_ms; /* of each network call */
    int json;       /* --json given before the command */
    int log_level, log_json;
    const char *registry; /* registry contract address, "" if unset */
    const char *eth_rpc;  /* Ethereum JSON-RPC URLs, "" if unset */
} cli_globals;

/* Parse the global options of argv (up to the command) into *g; epilog is
 * the text of `br2k --help` after the options (the command list). Returns
 * 1 when main should exit with *rc (--help, --version or a bad option,
 * already printed), else 0 with *argi the index of the command (argc when
 * none). */
int opts_globals(int argc, char **argv, const char *epilog, cli_globals *g, int *argi,
                 int *rc);

/* With no --kafka and a --registry, find the service through the
 * registry's access information on the chain (the paper's clients know
 * only the registry): fills g->kafka, g->service, and g->redis unless
 * --redis was given. 0 on success or when there is nothing to find; 2 with
 * the reason printed on stderr. */
int opts_discover(cli_globals *g);

/* `br2k --help`. */
void opts_help(FILE *out);

/* Free what opts_globals parsed (the strings of *g become invalid). */
void opts_release(void);

/* Parse a command's own options: argv[0] is the command's name, options
 * follow (flag, then environment BR2K_<NAME>, then default). Returns 1
 * when the caller should exit with *rc (help shown, or an error printed),
 * 0 to go on. Restores the logging set up by the global options. */
int cli_parse(bk_cfg *sub, const cli_globals *g, int argc, char **argv, int *rc);

/* Library settings from the global options. */
void cli_settings(const cli_globals *g, br2k_settings *s);

#endif
