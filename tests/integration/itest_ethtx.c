/* itest_ethtx.c - sends transactions signed by our code through our
 * JSON-RPC client to a live node (anvil), and checks what comes back.
 *
 * usage: itest_ethtx RPC_URLS   (comma-separated; the key comes from the
 *        environment variable ITEST_ETH_KEY)
 * Prints "ok: ..." per step and, last, "contract <address>" for the shell
 * test to check with cast; exits 1 on the first failure. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "chain/abi.h"
#include "chain/ethkey.h"
#include "chain/ethtx.h"
#include "base/hex.h"
#include "chain/jsonrpc.h"

#define RECIPIENT "0x70997970C51812dc3A010C7d01b50e0d17dc79C8"
/* Init code that returns the runtime 602a60005260206000f3 (returns 42). */
#define INIT_CODE "0x600a600c600039600a6000f3602a60005260206000f3"
#define RUNTIME "0x602a60005260206000f3"
/* Reverts with StaleEpoch(5, 7). */
#define REVERT_CODE "0x63ce85c42260e01b6000526005600452600760245260446000fd"

static void die(const char *what, const bk_err *e) {
    fprintf(stderr, "FAIL: %s: %s\n", what, e != NULL ? e->msg : "");
    exit(1);
}

static void sleep_ms(long ms) {
    struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

/* Sign and send tx; wait for its receipt. */
static void send_and_wait(bk_rpc *c, const bk_eth_key *k, const bk_eth_tx *tx,
                          bk_eth_receipt *r) {
    bk_err e;
    uint8_t *raw, hash[32], sent[32];
    size_t len;
    if (bk_eth_tx_sign(tx, k, &raw, &len, hash, &e) != BK_OK)
        die("sign", &e);
    if (bk_rpc_send_raw(c, raw, len, sent, &e) != BK_OK)
        die("send", &e);
    free(raw);
    if (memcmp(hash, sent, 32) != 0)
        die("node returned another transaction hash", NULL);
    for (int i = 0; i < 200; i++) {
        int found;
        if (bk_rpc_receipt(c, hash, &found, r, &e) != BK_OK)
            die("receipt", &e);
        if (found)
            return;
        sleep_ms(50);
    }
    die("no receipt after 10 s", NULL);
}

/* Fees: priority fee from the node, max fee = 2 * base fee + priority. */
static void fill_fees(bk_rpc *c, bk_eth_tx *tx) {
    bk_err e;
    uint64_t prio, base;
    if (bk_rpc_priority_fee(c, &prio, &e) != BK_OK)
        die("priority fee", &e);
    if (bk_rpc_base_fee(c, &base, &e) != BK_OK)
        die("base fee", &e);
    tx->max_priority_fee = prio;
    tx->max_fee = 2 * base + prio;
}

int main(int argc, char **argv) {
    bk_err e;
    if (argc != 2) {
        fprintf(stderr, "usage: itest_ethtx RPC_URLS\n");
        return 2;
    }
    bk_eth_key k;
    if (bk_eth_key_load("", "ITEST_ETH_KEY", &k, &e) != BK_OK)
        die("key", &e);
    bk_rpc *c = bk_rpc_new_list(argv[1], 5000, &e);
    if (c == NULL)
        die("client", &e);

    uint64_t chain, nonce, block;
    if (bk_rpc_chain_id(c, &chain, &e) != BK_OK)
        die("chain id", &e);
    printf("ok: chain id %llu via %s\n", (unsigned long long)chain,
           bk_rpc_current_url(c));
    if (bk_rpc_block_number(c, &block, &e) != BK_OK)
        die("block number", &e);
    if (bk_rpc_nonce(c, k.addr, &nonce, &e) != BK_OK)
        die("nonce", &e);

    /* 1. A value transfer of 1.5 ether. */
    bk_eth_tx tx;
    memset(&tx, 0, sizeof tx);
    tx.chain_id = chain;
    tx.nonce = nonce;
    tx.has_to = 1;
    if (bk_eth_addr_parse(RECIPIENT, tx.to, &e) != BK_OK)
        die("recipient", &e);
    bk_u256_from_u64(tx.value, 1500000000000000000ULL);
    bk_rpc_msg m = {.from = k.addr, .to = tx.to, .value = tx.value};
    if (bk_rpc_estimate_gas(c, &m, &tx.gas_limit, &e) != BK_OK)
        die("estimate gas", &e);
    if (tx.gas_limit != 21000)
        die("a transfer should estimate 21000 gas", NULL);
    fill_fees(c, &tx);
    bk_eth_receipt r;
    send_and_wait(c, &k, &tx, &r);
    if (r.status != 1)
        die("transfer status is not 1", NULL);
    printf("ok: transfer mined in block %llu, status 1\n",
           (unsigned long long)r.block_number);

    /* 2. The same nonce again: an RPC error object, named clearly. */
    tx.value[31] ^= 1; /* another transaction with the used nonce */
    uint8_t *raw;
    size_t len;
    if (bk_eth_tx_sign(&tx, &k, &raw, &len, NULL, &e) != BK_OK)
        die("sign", &e);
    int rc = bk_rpc_send_raw(c, raw, len, NULL, &e);
    free(raw);
    if (rc == BK_OK || e.code != BK_E_REMOTE || strstr(e.msg, "nonce") == NULL)
        die("reused nonce should be an rpc error about the nonce", &e);
    printf("ok: reused nonce refused: %s\n", e.msg);

    /* 3. A contract creation. */
    uint8_t code[64], *got;
    size_t code_len, got_len;
    if (bk_hex_decode_n(INIT_CODE, strlen(INIT_CODE), code, sizeof code, &code_len, &e) !=
        BK_OK)
        die("init code", &e);
    memset(&tx, 0, sizeof tx);
    tx.chain_id = chain;
    if (bk_rpc_nonce(c, k.addr, &tx.nonce, &e) != BK_OK)
        die("nonce", &e);
    tx.data = code;
    tx.data_len = code_len;
    bk_rpc_msg cm = {.from = k.addr, .data = code, .data_len = code_len};
    if (bk_rpc_estimate_gas(c, &cm, &tx.gas_limit, &e) != BK_OK)
        die("estimate gas (create)", &e);
    tx.gas_limit += tx.gas_limit / 5;
    fill_fees(c, &tx);
    send_and_wait(c, &k, &tx, &r);
    uint8_t want[20];
    bk_eth_create_address(k.addr, tx.nonce, want);
    if (r.status != 1 || !r.has_contract || memcmp(want, r.contract_address, 20) != 0)
        die("creation receipt", NULL);
    if (bk_rpc_get_code(c, r.contract_address, &got, &got_len, &e) != BK_OK)
        die("get code", &e);
    char *hex = bk_hex_encode_alloc(got, got_len, 1);
    if (hex == NULL || strcmp(hex, RUNTIME) != 0)
        die("deployed code differs", NULL);
    free(hex);
    free(got);
    char addr[43];
    bk_eth_addr_hex(r.contract_address, addr);
    printf("ok: contract created at %s\n", addr);

    /* 4. eth_call of the contract returns 42. */
    bk_rpc_msg call = {.to = r.contract_address};
    uint8_t *rev;
    size_t rev_len;
    if (bk_rpc_call_contract(c, &call, NULL, &got, &got_len, &rev, &rev_len, &e) != BK_OK)
        die("eth_call", &e);
    bk_abi_val v[1];
    size_t n;
    uint64_t x;
    if (bk_abi_decode(got, got_len, "uint256", v, 1, &n, &e) != BK_OK ||
        bk_abi_val_u64(&v[0], &x, &e) != BK_OK || x != 42)
        die("eth_call result is not 42", &e);
    free(got);
    printf("ok: eth_call returned 42\n");

    /* 5. A reverting eth_call gives the revert data; the decoder names it. */
    if (bk_hex_decode_n(REVERT_CODE, strlen(REVERT_CODE), code, sizeof code, &code_len,
                        &e) != BK_OK)
        die("revert code", &e);
    bk_rpc_msg rm = {.data = code, .data_len = code_len};
    if (bk_rpc_call_contract(c, &rm, NULL, &got, &got_len, &rev, &rev_len, &e) == BK_OK)
        die("the reverting call succeeded", NULL);
    static const char *const errs[] = {"StaleEpoch(uint64,uint64)"};
    bk_abi_revert rv;
    char buf[256];
    if (rev == NULL || bk_abi_decode_revert(rev, rev_len, errs, 1, &rv, &e) != BK_OK)
        die("revert data", &e);
    bk_abi_revert_format(&rv, buf, sizeof buf);
    free(rev);
    if (strcmp(buf, "StaleEpoch(5, 7)") != 0)
        die("revert not named StaleEpoch(5, 7)", NULL);
    printf("ok: revert decoded: %s\n", buf);

    printf("contract %s\n", addr);
    bk_rpc_free(c);
    bk_eth_key_clear(&k);
    return 0;
}
