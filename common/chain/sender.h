/* sender.h - sends Ethereum transactions one at a time, in nonce order,
 * and survives its own restart.
 *
 * One send: eth_estimateGas first (a revert there is reported with the
 * custom error's name and nothing is sent); fees from the node's priority
 * fee plus twice the latest base fee; sign (EIP-1559) and record the
 * transaction in flight (when a Redis connection and service are given:
 * br2k:{<svc>}:registry:inflight, a JSON object with the nonce, every raw
 * transaction and hash sent at that nonce, and the request id); broadcast;
 * wait for the receipt and for `confirmations` blocks; clear the record.
 * A transaction not mined within stuck_ms is replaced at the same nonce
 * with fees raised by 12.5% (at least 1 wei); every hash sent at the nonce
 * is watched, so whichever is mined counts.
 *
 * Nonces: the node's pending count at the first send and after a nonce
 * error, then one past our last mined transaction (a failover to a node
 * that has not seen it yet cannot reuse its nonce). On "nonce too low" at
 * broadcast the nonce is re-read and the send retried once. A record found at start (or
 * before the next send) is resolved first: its receipt is awaited (after
 * re-broadcasting the last raw transaction), or, when the chain's mined
 * nonce stays past it for 3 s with none of its hashes mined, it was
 * replaced by another transaction of the same key and is dropped.
 *
 * confirmations: 1 (the default) returns once the receipt exists; N waits
 * until N blocks include or follow it; 0 returns once the node accepted
 * the transaction (no receipt; a revert after estimateGas is then not
 * seen, and no fee bump happens).
 *
 * The key is only used to sign; it is never logged. */
#ifndef BK_SENDER_H
#define BK_SENDER_H

#include <stddef.h>
#include <stdint.h>

#include "base/err.h"
#include "chain/ethkey.h"
#include "chain/jsonrpc.h"
#include "redis/redis.h"

typedef struct bk_sender_conf {
    const char *svc;      /* with a Redis connection: where the in-flight record lives */
    int confirmations;    /* 0.. (see above) */
    int stuck_ms;         /* fee bump after this long unmined */
    int timeout_ms;       /* give up waiting for a receipt (the record stays) */
    int poll_ms;          /* receipt polling interval */
    uint64_t chain_id;    /* 0: read from the node */
    uint64_t max_fee_cap; /* wei per gas a bump never exceeds; 0: no cap */
} bk_sender_conf;

/* Why a send failed (bk_send_result.code). */
#define BK_SEND_REVERTED "reverted" /* estimateGas or the receipt: see revert */
#define BK_SEND_FUNDS "insufficient-funds"
#define BK_SEND_NONCE "nonce"       /* nonce too low twice */
#define BK_SEND_RPC "rpc"           /* the node(s) failed or refused */
#define BK_SEND_TIMEOUT "timeout"   /* not mined in timeout_ms; still in flight */
#define BK_SEND_STOPPED "stopped"   /* bk_sig_stop; still in flight */
#define BK_SEND_REPLACED "replaced" /* the nonce was used by another transaction */

typedef struct bk_send_result {
    char code[24];    /* "" on success, else one of BK_SEND_* */
    uint8_t hash[32]; /* the transaction (the one mined, after bumps) */
    uint64_t nonce;
    uint64_t block; /* 0 with confirmations 0 */
    uint64_t gas_used;
    int bumps;        /* fee bumps made */
    int has_contract; /* a deployment's address */
    uint8_t contract[20];
    char revert_name[64];  /* "StaleEpoch", ... ("" when not a named error) */
    char revert_line[256]; /* "StaleEpoch(5, 5)" */
    uint64_t revert_args[2];
} bk_send_result;

typedef struct bk_sender bk_sender;

/* A sender of key's transactions through rpc (borrowed, like r, which may
 * be NULL: then nothing is recorded in flight). Reads the chain id when
 * conf->chain_id is 0. Returns NULL with e on error. */
bk_sender *bk_sender_new(bk_rpc *rpc, bk_redis *r, const bk_eth_key *key,
                         const bk_sender_conf *conf, bk_err *e);

/* Free a sender (safe on NULL); wipes its copy of the key. */
void bk_sender_free(bk_sender *s);

/* The chain id in use, and the sender's address. */
uint64_t bk_sender_chain_id(const bk_sender *s);
const uint8_t *bk_sender_address(const bk_sender *s);

/* Resolve a transaction recorded in flight by an earlier run (see above).
 * *had (may be NULL) is 1 when there was one; res (may be NULL) describes
 * it. Returns BK_OK when nothing is left in flight, BK_ERR otherwise. */
int bk_sender_recover(bk_sender *s, int *had, bk_send_result *res, bk_err *e);

/* Send a transaction to `to` (NULL: create a contract with data as init
 * code) with data[len]; req_id (may be NULL) is kept in the in-flight
 * record. Resolves an earlier in-flight record first. Returns BK_OK with
 * res filled, or BK_ERR with res->code and a one-line e->msg naming
 * `what` ("'setLeader' reverted: StaleEpoch(5, 5)"). */
int bk_sender_send(bk_sender *s, const char *what, const uint8_t *to, const uint8_t *data,
                   size_t len, const char *req_id, bk_send_result *res, bk_err *e);

#endif
