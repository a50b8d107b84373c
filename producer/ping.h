/* ping.h - `br2k ping` and `br2k util free-port` (ping.c; not installed),
 * and the checks behind ping, which `br2k probe` also runs: does each part
 * of the stack answer? Each check writes one line into detail[size] (what
 * answered, or why not) and returns 1 when the part answers, else 0. */
#ifndef BR2K_PING_H
#define BR2K_PING_H

#include <stddef.h>

#include "opts.h"

/* Redis at HOST:PORT answers PING. */
int ping_redis(const char *addr, int timeout_ms, char *detail, size_t size);

/* The request log of `service` answers (its offsets are read, through
 * log/rlog.h: Kafka or Redis Streams, as `bootstrap` says). */
int ping_log(const char *bootstrap, const char *props, const char *service,
             int timeout_ms, char *detail, size_t size);

/* One of the Ethereum JSON-RPC `urls` (comma-separated) answers
 * eth_chainId. */
int ping_eth(const char *urls, int timeout_ms, char *detail, size_t size);

/* br2k ping: Redis, and the log and Ethereum when configured (global
 * options); exit 0 when all configured parts answer, 1 when one does not. */
int cmd_ping(const cli_globals *g, int argc, char **argv);

/* br2k util free-port: print a TCP port free on 127.0.0.1. */
int cmd_util(const cli_globals *g, int argc, char **argv);

#endif
