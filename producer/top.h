/* top.h - `br2k top` and `br2k probe` (top.c; not installed). */
#ifndef BR2K_TOP_H
#define BR2K_TOP_H

#include "cli.h"

/* br2k top [--interval MS] [--once [--json]]: a live view of the service,
 * read from Redis only, refreshed every MS until q, Ctrl-C or SIGTERM. */
int cmd_top(const cli_globals *g, int argc, char **argv);

/* br2k probe ready|live --id ID: Kubernetes readiness and liveness of one
 * worker (exit 0 yes, 1 no, 2 bad usage). argv[0] is "probe". */
int cmd_probe(const cli_globals *g, int argc, char **argv);

#endif
