/* loadgen.h - the clients of the load generator (`br2k submit --clients`)
 * and of the chaos test (tests/chaos/): client i of a prefix is the id
 * PREFIX-i with the secp256k1 key keccak256("PREFIX-i"), so that anyone can
 * rebuild its requests and check what the service holds for it; and the
 * log properties of a client that retries its appends. */
#ifndef BK_LOADGEN_H
#define BK_LOADGEN_H

#include <stddef.h>
#include <stdint.h>

#include "base/err.h"
#include "chain/ethkey.h"

typedef struct bk_lg_client {
    char id[96];
    bk_eth_key key;
    char did[64]; /* "did:br2k:<address, lower case>" */
} bk_lg_client;

/* Client `i` of `prefix` (i < 0: the id is `prefix` itself). */
int bk_lg_client_init(bk_lg_client *cl, const char *prefix, long i, bk_err *e);

/* The signed InfoDID request with sequence number `seq` (>= 1), timestamp
 * ts_ms: it registers <did>:<seq> with {name: <id>, n: "<seq>"}; with
 * `update`, it updates <did>:<seq - 1> with {n: "<seq>"} instead. The JSON
 * text, malloc'd; NULL with `e`. */
char *bk_lg_request(const bk_lg_client *cl, long seq, int update, int64_t ts_ms,
                    bk_err *e);

/* The log properties of a client whose appends are retried for retry_ms:
 * "delivery.timeout.ms=<retry_ms>", then `props` (may be NULL or "", and
 * may override it), into buf. Both log back ends take this property
 * (librdkafka's own; the Redis Streams back end reads it): an append that
 * may not have reached the log is sent again, with the same request id,
 * until then. BK_E_INVAL when it does not fit. */
int bk_lg_log_props(const char *props, long retry_ms, char *buf, size_t size, bk_err *e);

#endif
