/* cli.h - what the files of the br2k command share (not installed).
 *
 * cli.c parses the global options and dispatches; submit.c holds `br2k
 * submit` (one request, or the load generator); ops.c holds the operator
 * commands `br2k status` and `br2k verify`. A command returns the process
 * exit code. */
#ifndef BR2K_CLI_H
#define BR2K_CLI_H

#include "br2k.h"
#include "base/config.h"

/* The global options, as parsed by main(). */
typedef struct cli_globals {
    const char *service, *redis, *kafka, *kafka_props;
    int timeout_ms; /* of each network call */
    int json;       /* --json given before the command */
    int log_level, log_json;
} cli_globals;

/* Parse a command's own options: argv[0] is the command's name, options
 * follow (flag, then environment BR2K_<NAME>, then default). Returns 1
 * when the caller should exit with *rc (help shown, or an error printed),
 * 0 to go on. Restores the logging set up by the global options. */
int cli_parse(bk_cfg *sub, const cli_globals *g, int argc, char **argv, int *rc);

/* Library settings from the global options. */
void cli_settings(const cli_globals *g, br2k_settings *s);

int cmd_submit(const cli_globals *g, int argc, char **argv);
int cmd_status(const cli_globals *g, int argc, char **argv);
int cmd_verify(const cli_globals *g, int argc, char **argv);

#endif
