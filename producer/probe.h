/* probe.h - `br2k probe ready|live` (probe.c; not installed): the
 * Kubernetes probes of a worker (--id, from its heartbeat and metrics in
 * Redis) and of a daemon that writes no heartbeat of its own, br2k-backupd
 * and br2k-registryd (--process, from its process and the parts of the
 * stack it needs). */
#ifndef BR2K_PROBE_H
#define BR2K_PROBE_H

#include "opts.h"

/* argv[0] = "probe", argv[1] = "ready" or "live", options after. Exit 0
 * yes, 1 no (one line on stdout says why), 2 bad usage. */
int cmd_probe(const cli_globals *g, int argc, char **argv);

#endif
