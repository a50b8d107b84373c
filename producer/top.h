/* top.h - `br2k top` (top.c; not installed). */
#ifndef BR2K_TOP_H
#define BR2K_TOP_H

#include "opts.h"

/* br2k top [--interval MS] [--once [--json]]: a live view of the service,
 * read from Redis only, refreshed every MS until q, Ctrl-C or SIGTERM. */
int cmd_top(const cli_globals *g, int argc, char **argv);

#endif
