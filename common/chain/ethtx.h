/* ethtx.h - EIP-1559 (type 2) Ethereum transactions: the signing hash, the
 * signed raw bytes, the transaction hash, and a decoder of signed raw
 * transactions (which also recovers the sender).
 *
 * raw = 0x02 || rlp([chainId, nonce, maxPriorityFeePerGas, maxFeePerGas,
 *                    gasLimit, to, value, data, accessList, yParity, r, s])
 * signing hash = keccak256(0x02 || rlp(the first nine fields))
 * tx hash = keccak256(raw)
 * The access list is always empty here. Fees and gas are uint64 (2^64 wei
 * per gas is far above any real fee); the value is a uint256. */
#ifndef BK_ETHTX_H
#define BK_ETHTX_H

#include <stddef.h>
#include <stdint.h>

#include "base/err.h"
#include "chain/ethkey.h"

typedef struct bk_eth_tx {
    uint64_t chain_id;
    uint64_t nonce;
    uint64_t max_priority_fee; /* wei per gas */
    uint64_t max_fee;          /* wei per gas */
    uint64_t gas_limit;
    int has_to;          /* 0: contract creation */
    uint8_t to[20];      /* when has_to */
    uint8_t value[32];   /* wei, big-endian */
    const uint8_t *data; /* calldata or init code; not owned */
    size_t data_len;
} bk_eth_tx;

/* Set a 32-byte big-endian value from a uint64. */
void bk_u256_from_u64(uint8_t out[32], uint64_t v);

/* The hash the sender signs. Returns BK_OK or BK_ERR (out of memory). */
int bk_eth_tx_signing_hash(const bk_eth_tx *tx, uint8_t hash[32], bk_err *e);

/* Sign tx with k: *raw (malloc'd, the caller frees) and *raw_len get the
 * raw transaction for eth_sendRawTransaction; hash (if not NULL) its
 * transaction hash. Deterministic (RFC 6979). Returns BK_OK or BK_ERR. */
int bk_eth_tx_sign(const bk_eth_tx *tx, const bk_eth_key *k, uint8_t **raw,
                   size_t *raw_len, uint8_t hash[32], bk_err *e);

/* Decode a signed type-2 raw transaction into tx (tx->data points into raw;
 * keep raw alive), recover the sender into from, and put the transaction
 * hash into hash (each may be NULL). Returns BK_OK, or BK_ERR (BK_E_PROTO)
 * for another type, bad RLP, wrong field count, a non-empty access list, a
 * value that does not fit, or a bad signature. */
int bk_eth_tx_decode(const uint8_t *raw, size_t raw_len, bk_eth_tx *tx, uint8_t from[20],
                     uint8_t hash[32], bk_err *e);

/* The address of a contract created by sender with nonce:
 * keccak256(rlp([sender, nonce]))[12:]. */
void bk_eth_create_address(const uint8_t sender[20], uint64_t nonce, uint8_t out[20]);

#endif
