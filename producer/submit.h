/* submit.h - `br2k submit` (submit.c; not installed): one signed request,
 * or, with --clients K --count N, the load generator (loadgen.h). */
#ifndef BR2K_SUBMIT_H
#define BR2K_SUBMIT_H

#include "opts.h"

int cmd_submit(const cli_globals *g, int argc, char **argv);

#endif
