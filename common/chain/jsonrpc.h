/* jsonrpc.h - an Ethereum JSON-RPC client over libcurl, with failover.
 *
 * A client holds a list of RPC URLs. A call goes to the URL that answered
 * last; when it fails at the transport level (cannot connect, timeout, an
 * HTTP status other than 200, a reply that is not a JSON-RPC reply) the
 * next URL is tried, and so on once around the list. A JSON-RPC error
 * object from a node is an answer, not a failure: it is returned at once
 * as BK_ERR with code BK_E_REMOTE and the message
 * "<method>: rpc error <code>: <message>"; its code and data stay readable
 * with bk_rpc_last_error (for example the revert data of an eth_call).
 *
 * Reply parsing is a pure function (bk_rpc_parse_reply), tested from bytes.
 * A client is used by one thread at a time. */
#ifndef BK_JSONRPC_H
#define BK_JSONRPC_H

#include <jansson.h>
#include <stddef.h>
#include <stdint.h>

#include "base/err.h"

#define BK_RPC_MAX_URLS 16
#define BK_RPC_MAX_REPLY (64u << 20) /* bytes of one reply */

/* ---- reply parsing (pure) ---- */

typedef struct bk_rpc_reply {
    json_t *result; /* new reference when !is_error (may be JSON null) */
    int is_error;   /* the node answered with an error object */
    long long err_code;
    char err_message[256];
    json_t *err_data; /* new reference or NULL */
} bk_rpc_reply;

/* Parse a reply body buf[len] to the request with id want_id. Returns BK_OK
 * for a well-formed reply (a result, or an error object: see is_error), or
 * BK_ERR (BK_E_PROTO) for malformed JSON, a truncated body, a missing
 * "jsonrpc":"2.0", a wrong id, neither or both of result and error. Release
 * with bk_rpc_reply_release. */
int bk_rpc_parse_reply(const char *buf, size_t len, long long want_id, bk_rpc_reply *r,
                       bk_err *e);

/* Drop the references a reply holds (safe on a zeroed or released reply). */
void bk_rpc_reply_release(bk_rpc_reply *r);

/* Parse a JSON-RPC quantity ("0x0", "0x1a") into a uint64. Returns BK_OK or
 * BK_ERR (BK_E_PROTO): not a string, no 0x, empty, a non-hex digit, more
 * than 64 bits. */
int bk_rpc_parse_qty(const json_t *j, uint64_t *v, bk_err *e);

/* Parse a quantity of up to 256 bits into 32 big-endian bytes. */
int bk_rpc_parse_qty256(const json_t *j, uint8_t out[32], bk_err *e);

/* Parse hex data ("0x...") into a malloc'd buffer (caller frees; non-NULL
 * even when empty). Returns BK_OK or BK_ERR (BK_E_PROTO). */
int bk_rpc_parse_data(const json_t *j, uint8_t **out, size_t *len, bk_err *e);

/* ---- the client ---- */

typedef struct bk_rpc bk_rpc;

/* A client for urls[n] (copied), each call limited to timeout_ms (connect
 * and transfer). Returns NULL (with e) when n is 0 or too large, a URL is
 * empty, or out of memory. Free with bk_rpc_free. */
bk_rpc *bk_rpc_new(const char *const *urls, size_t n, long timeout_ms, bk_err *e);

/* Parse a comma-separated URL list ("http://a:8545,http://b:8545"). */
bk_rpc *bk_rpc_new_list(const char *csv, long timeout_ms, bk_err *e);

/* Free a client (safe on NULL). */
void bk_rpc_free(bk_rpc *c);

/* The URL the next call tries first. */
const char *bk_rpc_current_url(const bk_rpc *c);

/* Call method with params (a JSON array, stolen: the client decrefs it,
 * even on error; NULL means []). On success *result is a new reference
 * (caller decrefs; may be JSON null). Returns BK_OK, or BK_ERR: BK_E_REMOTE
 * (an error object; see bk_rpc_last_error), or the last transport error
 * (BK_E_IO, BK_E_TIMEOUT, BK_E_PROTO) when every URL failed. */
int bk_rpc_call(bk_rpc *c, const char *method, json_t *params, json_t **result,
                bk_err *e);

/* The error object of the last call that got one (code, message, data);
 * NULL when the last call got none. Owned by the client, valid until the
 * next call. */
const bk_rpc_reply *bk_rpc_last_error(const bk_rpc *c);

/* The revert data of the last call's error object (data as hex, or
 * data.data), into *out (malloc'd, caller frees) and *len. Returns BK_OK,
 * or BK_ERR (BK_E_NOTFOUND) when the last error carried none. */
int bk_rpc_last_revert(const bk_rpc *c, uint8_t **out, size_t *len, bk_err *e);

/* ---- typed helpers ---- */

int bk_rpc_chain_id(bk_rpc *c, uint64_t *id, bk_err *e);
int bk_rpc_block_number(bk_rpc *c, uint64_t *n, bk_err *e);

/* eth_getTransactionCount(addr, "pending"). */
int bk_rpc_nonce(bk_rpc *c, const uint8_t addr[20], uint64_t *nonce, bk_err *e);

/* eth_getBalance(addr, "latest") as 32 big-endian bytes. */
int bk_rpc_balance(bk_rpc *c, const uint8_t addr[20], uint8_t wei[32], bk_err *e);

/* A call or transaction for eth_call and eth_estimateGas. */
typedef struct bk_rpc_msg {
    const uint8_t *from;  /* 20 bytes or NULL */
    const uint8_t *to;    /* 20 bytes or NULL (contract creation) */
    const uint8_t *value; /* 32 bytes or NULL */
    const uint8_t *data;
    size_t data_len;
} bk_rpc_msg;

/* eth_estimateGas(msg). A revert is BK_E_REMOTE (see bk_rpc_last_revert). */
int bk_rpc_estimate_gas(bk_rpc *c, const bk_rpc_msg *m, uint64_t *gas, bk_err *e);

/* The priority fee to offer: eth_maxPriorityFeePerGas; if the node does
 * not have it, the median reward of the last block from eth_feeHistory; if
 * that fails too, eth_gasPrice minus the latest base fee (at least 0). */
int bk_rpc_priority_fee(bk_rpc *c, uint64_t *fee, bk_err *e);

/* The base fee per gas of the latest block (0 when the block has none). */
int bk_rpc_base_fee(bk_rpc *c, uint64_t *fee, bk_err *e);

/* eth_sendRawTransaction; hash (if not NULL) gets the returned hash. */
int bk_rpc_send_raw(bk_rpc *c, const uint8_t *raw, size_t len, uint8_t hash[32],
                    bk_err *e);

typedef struct bk_eth_receipt {
    int status; /* 1 success, 0 reverted */
    uint64_t block_number;
    uint64_t gas_used;
    uint64_t effective_gas_price;
    int has_contract;
    uint8_t contract_address[20];
    uint8_t tx_hash[32];
} bk_eth_receipt;

/* eth_getTransactionReceipt. Returns BK_OK with *found = 1 and r filled,
 * BK_OK with *found = 0 when the transaction is not mined (yet), or BK_ERR. */
int bk_rpc_receipt(bk_rpc *c, const uint8_t hash[32], int *found, bk_eth_receipt *r,
                   bk_err *e);

/* Parse a receipt object (pure). Returns BK_OK or BK_ERR (BK_E_PROTO). */
int bk_rpc_parse_receipt(const json_t *j, bk_eth_receipt *r, bk_err *e);

/* eth_call(msg, block) with block "latest" when NULL. On success *out
 * (malloc'd, caller frees) holds the return data. On a revert returns
 * BK_ERR (BK_E_REMOTE) and, when revert is not NULL, *revert and *revert_len
 * get the revert data (malloc'd, possibly empty) for bk_abi_decode_revert. */
int bk_rpc_call_contract(bk_rpc *c, const bk_rpc_msg *m, const char *block, uint8_t **out,
                         size_t *out_len, uint8_t **revert, size_t *revert_len,
                         bk_err *e);

/* eth_getCode(addr, "latest") into *code (malloc'd, caller frees). */
int bk_rpc_get_code(bk_rpc *c, const uint8_t addr[20], uint8_t **code, size_t *len,
                    bk_err *e);

typedef struct bk_eth_log {
    uint8_t address[20];
    uint8_t topics[4][32];
    size_t ntopics;
    uint8_t *data; /* malloc'd; bk_eth_log_release frees it */
    size_t data_len;
    uint64_t block_number;
    uint64_t log_index;
    uint8_t tx_hash[32];
    int removed;
} bk_eth_log;

/* eth_getLogs for address (NULL: any), topic0 (NULL: any), and blocks
 * from..to (to = UINT64_MAX means "latest"). *logs is a new reference to the
 * JSON array (caller decrefs); parse entries with bk_rpc_parse_log. */
int bk_rpc_get_logs(bk_rpc *c, const uint8_t *address, const uint8_t *topic0,
                    uint64_t from_block, uint64_t to_block, json_t **logs, bk_err *e);

/* Parse one log object (pure). Returns BK_OK or BK_ERR (BK_E_PROTO); on
 * success release with bk_eth_log_release. */
int bk_rpc_parse_log(const json_t *j, bk_eth_log *l, bk_err *e);

/* Free a log's data (safe twice). */
void bk_eth_log_release(bk_eth_log *l);

#endif
