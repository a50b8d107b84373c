/* ethtx.c - EIP-1559 transactions: encode, sign, hash, decode. */
#include "chain/ethtx.h"

#include <stdlib.h>
#include <string.h>

#include "chain/keccak.h"
#include "chain/rlp.h"

#define TX_TYPE 0x02

void bk_u256_from_u64(uint8_t out[32], uint64_t v) {
    memset(out, 0, 32);
    for (int i = 0; i < 8; i++)
        out[31 - i] = (uint8_t)(v >> (8 * i));
}

/* The nine unsigned fields, appended to an open list. */
static void put_fields(bk_rlp_enc *r, const bk_eth_tx *tx) {
    bk_rlp_put_uint(r, tx->chain_id);
    bk_rlp_put_uint(r, tx->nonce);
    bk_rlp_put_uint(r, tx->max_priority_fee);
    bk_rlp_put_uint(r, tx->max_fee);
    bk_rlp_put_uint(r, tx->gas_limit);
    if (tx->has_to)
        bk_rlp_put_bytes(r, tx->to, 20);
    else
        bk_rlp_put_bytes(r, NULL, 0);
    bk_rlp_put_uint_be(r, tx->value, 32);
    bk_rlp_put_bytes(r, tx->data, tx->data_len);
    bk_rlp_list_begin(r); /* access list: empty */
    bk_rlp_list_end(r);
}

/* Encode 0x02 || rlp(list) with the fields and, when sig is not NULL, the
 * signature. */
static int encode(const bk_eth_tx *tx, const uint8_t *sig, uint8_t **out, size_t *len,
                  bk_err *e) {
    bk_rlp_enc r;
    bk_rlp_enc_init(&r);
    uint8_t type = TX_TYPE;
    bk_rlp_put_raw(&r, &type, 1);
    bk_rlp_list_begin(&r);
    put_fields(&r, tx);
    if (sig != NULL) {
        bk_rlp_put_uint(&r, sig[64]);
        bk_rlp_put_uint_be(&r, sig, 32);
        bk_rlp_put_uint_be(&r, sig + 32, 32);
    }
    bk_rlp_list_end(&r);
    if (bk_rlp_enc_finish(&r, out, len, e) != BK_OK)
        return bk_err_prefix(e, "transaction");
    return BK_OK;
}

int bk_eth_tx_signing_hash(const bk_eth_tx *tx, uint8_t hash[32], bk_err *e) {
    uint8_t *buf;
    size_t len;
    if (encode(tx, NULL, &buf, &len, e) != BK_OK)
        return BK_ERR;
    bk_keccak256(buf, len, hash);
    free(buf);
    return BK_OK;
}

int bk_eth_tx_sign(const bk_eth_tx *tx, const bk_eth_key *k, uint8_t **raw,
                   size_t *raw_len, uint8_t hash[32], bk_err *e) {
    *raw = NULL;
    *raw_len = 0;
    uint8_t h[32], sig[65];
    if (bk_eth_tx_signing_hash(tx, h, e) != BK_OK)
        return BK_ERR;
    if (bk_eth_sign_hash(k, h, sig, e) != BK_OK)
        return bk_err_prefix(e, "transaction");
    if (encode(tx, sig, raw, raw_len, e) != BK_OK)
        return BK_ERR;
    if (hash != NULL)
        bk_keccak256(*raw, *raw_len, hash);
    return BK_OK;
}

/* A canonical integer item of at most 32 bytes into a 32-byte word. */
static int field_u256(const bk_rlp_item *it, uint8_t out[32], const char *name,
                      bk_err *e) {
    if (bk_rlp_uint256(it, out, e) != BK_OK)
        return bk_err_prefix(e, "transaction field %s", name);
    return BK_OK;
}

static int field_u64(const bk_rlp_item *it, uint64_t *out, const char *name, bk_err *e) {
    if (bk_rlp_uint64(it, out, e) != BK_OK)
        return bk_err_prefix(e, "transaction field %s", name);
    return BK_OK;
}

int bk_eth_tx_decode(const uint8_t *raw, size_t raw_len, bk_eth_tx *tx, uint8_t from[20],
                     uint8_t hash[32], bk_err *e) {
    memset(tx, 0, sizeof *tx);
    if (raw_len == 0 || raw[0] != TX_TYPE)
        return bk_err_set(e, BK_E_PROTO,
                          "transaction: not an EIP-1559 (type 2) transaction");
    bk_rlp_item top, f[12];
    size_t n;
    if (bk_rlp_decode_all(raw + 1, raw_len - 1, &top, e) != BK_OK ||
        bk_rlp_list(&top, f, 12, &n, e) != BK_OK)
        return bk_err_prefix(e, "transaction");
    if (n != 12)
        return bk_err_set(e, BK_E_PROTO, "transaction: %zu fields, want 12", n);
    if (field_u64(&f[0], &tx->chain_id, "chainId", e) != BK_OK ||
        field_u64(&f[1], &tx->nonce, "nonce", e) != BK_OK ||
        field_u64(&f[2], &tx->max_priority_fee, "maxPriorityFeePerGas", e) != BK_OK ||
        field_u64(&f[3], &tx->max_fee, "maxFeePerGas", e) != BK_OK ||
        field_u64(&f[4], &tx->gas_limit, "gasLimit", e) != BK_OK)
        return BK_ERR;
    if (f[5].is_list || (f[5].len != 0 && f[5].len != 20))
        return bk_err_set(e, BK_E_PROTO, "transaction field to: %zu bytes, want 0 or 20",
                          f[5].len);
    tx->has_to = f[5].len == 20;
    if (tx->has_to)
        memcpy(tx->to, f[5].payload, 20);
    if (field_u256(&f[6], tx->value, "value", e) != BK_OK)
        return BK_ERR;
    if (f[7].is_list)
        return bk_err_set(e, BK_E_PROTO, "transaction field data: a list");
    tx->data = f[7].payload;
    tx->data_len = f[7].len;
    if (!f[8].is_list || f[8].len != 0)
        return bk_err_set(
            e, BK_E_PROTO,
            "transaction field accessList: not an empty list (unsupported)");
    uint64_t v;
    uint8_t sig[65];
    if (field_u64(&f[9], &v, "yParity", e) != BK_OK)
        return BK_ERR;
    if (v > 1)
        return bk_err_set(e, BK_E_PROTO, "transaction field yParity: %llu",
                          (unsigned long long)v);
    if (field_u256(&f[10], sig, "r", e) != BK_OK ||
        field_u256(&f[11], sig + 32, "s", e) != BK_OK)
        return BK_ERR;
    sig[64] = (uint8_t)v;
    if (from != NULL) {
        uint8_t h[32];
        if (bk_eth_tx_signing_hash(tx, h, e) != BK_OK)
            return BK_ERR;
        if (bk_eth_recover(h, sig, from, e) != BK_OK)
            return bk_err_prefix(e, "transaction");
    }
    if (hash != NULL)
        bk_keccak256(raw, raw_len, hash);
    return BK_OK;
}

void bk_eth_create_address(const uint8_t sender[20], uint64_t nonce, uint8_t out[20]) {
    /* rlp([sender, nonce]) is at most 1 + 21 + 9 bytes: encode by hand. */
    uint8_t buf[32], h[32];
    size_t n = 0;
    uint8_t be[8];
    size_t k = 0;
    for (int i = 7; i >= 0; i--) {
        uint8_t b = (uint8_t)(nonce >> (8 * i));
        if (k > 0 || b != 0)
            be[k++] = b;
    }
    size_t nlen = (k == 1 && be[0] < 0x80) ? 1 : 1 + k;
    buf[n++] = (uint8_t)(0xc0 + 21 + nlen);
    buf[n++] = 0x80 + 20;
    memcpy(buf + n, sender, 20);
    n += 20;
    if (nlen == 1 && k == 1) {
        buf[n++] = be[0];
    } else {
        buf[n++] = (uint8_t)(0x80 + k);
        memcpy(buf + n, be, k);
        n += k;
    }
    bk_keccak256(buf, n, h);
    memcpy(out, h + 12, 20);
}
