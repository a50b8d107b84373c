/* test_ethtx.c - EIP-1559 transactions signed by our code equal the raw
 * bytes `cast mktx` made from the same fields and key, and decode to the
 * fields and sender `cast decode-transaction` printed (fixtures/eth). */
#include <jansson.h>
#include <stdlib.h>

#include "chain/abi.h"
#include "check.h"
#include "chain/ethkey.h"
#include "chain/ethtx.h"
#include "base/hex.h"

#define ANVIL0_KEY "0xac0974bec39a17e36ba4a6b4d238ff944bacb478cbed5efcae784d7bf4f2ff80"

static const char *fixture(const char *name) {
    return check_fixture("fixtures/eth", name);
}

/* cast decode-transaction prints its JSON as a JSON string; accept both. */
static json_t *fixture_json(const char *name) {
    json_error_t je;
    json_t *j = json_loads(fixture(name), JSON_DECODE_ANY, &je);
    if (j != NULL && json_is_string(j)) {
        json_t *inner = json_loads(json_string_value(j), 0, &je);
        json_decref(j);
        j = inner;
    }
    if (j == NULL) {
        fprintf(stderr, "fixture '%s': %s\n", name, je.text);
        exit(2);
    }
    return j;
}

static const char *jstr(json_t *j, const char *key) {
    const char *s = json_string_value(json_object_get(j, key));
    return s ? s : "(missing)";
}

/* "0x..." quantity of a uint64, as JSON-RPC writes it. */
static const char *qty(uint64_t v) {
    static char b[4][24];
    static int i;
    i = (i + 1) % 4;
    snprintf(b[i], sizeof b[i], "0x%llx", (unsigned long long)v);
    return b[i];
}

/* A 32-byte value as a minimal quantity. */
static const char *qty256(const uint8_t w[32]) {
    static char b[70];
    char h[65];
    bk_hex_encode(w, 32, 0, h);
    const char *p = h;
    while (*p == '0' && p[1] != '\0')
        p++;
    snprintf(b, sizeof b, "0x%s", p);
    return b;
}

/* Compare our decoded fields and sender with the cast JSON. */
static void check_against(const bk_eth_tx *tx, const uint8_t from[20],
                          const uint8_t hash[32], json_t *j) {
    char s[140];
    CHECK_STR(jstr(j, "type"), "0x2");
    CHECK_STR(qty(tx->chain_id), jstr(j, "chainId"));
    CHECK_STR(qty(tx->nonce), jstr(j, "nonce"));
    CHECK_STR(qty(tx->gas_limit), jstr(j, "gas"));
    CHECK_STR(qty(tx->max_fee), jstr(j, "maxFeePerGas"));
    CHECK_STR(qty(tx->max_priority_fee), jstr(j, "maxPriorityFeePerGas"));
    CHECK_STR(qty256(tx->value), jstr(j, "value"));
    if (tx->has_to) {
        bk_hex_encode(tx->to, 20, 1, s);
        CHECK_STR(s, jstr(j, "to"));
    } else {
        CHECK(json_is_null(json_object_get(j, "to")), "to is null for a creation");
    }
    char *in = bk_hex_encode_alloc(tx->data, tx->data_len, 1);
    CHECK_STR(in, jstr(j, "input"));
    free(in);
    CHECK_INT(json_array_size(json_object_get(j, "accessList")), 0);
    bk_hex_encode(from, 20, 1, s);
    CHECK_STR(s, jstr(j, "signer"));
    bk_hex_encode(hash, 32, 1, s);
    CHECK_STR(s, jstr(j, "hash"));
}

static void sign_and_check(const bk_eth_tx *tx, const char *raw_fixture,
                           const char *json_fixture) {
    bk_err e;
    bk_eth_key k;
    CHECK_INT(bk_eth_key_from_hex(ANVIL0_KEY, &k, &e), BK_OK);
    uint8_t *raw, hash[32], hash2[32], from[20];
    size_t len;
    CHECK_INT(bk_eth_tx_sign(tx, &k, &raw, &len, hash, &e), BK_OK);
    char *h = bk_hex_encode_alloc(raw, len, 1);
    CHECK_STR(h, fixture(raw_fixture));
    free(h);

    bk_eth_tx d;
    CHECK_INT(bk_eth_tx_decode(raw, len, &d, from, hash2, &e), BK_OK);
    CHECK(memcmp(hash, hash2, 32) == 0, "hash from sign and decode");
    CHECK(memcmp(from, k.addr, 20) == 0, "sender");
    json_t *j = fixture_json(json_fixture);
    check_against(&d, from, hash2, j);
    json_decref(j);

    /* Bad input: every truncation, a flipped type byte, trailing bytes, a
     * changed field (the sender changes, or the signature fails). */
    for (size_t cut = 0; cut < len; cut += 9)
        CHECK_INT(bk_eth_tx_decode(raw, cut, &d, from, NULL, &e), BK_ERR);
    uint8_t *bad = malloc(len + 1);
    memcpy(bad, raw, len);
    bad[0] = 0x01;
    CHECK_INT(bk_eth_tx_decode(bad, len, &d, from, NULL, &e), BK_ERR);
    CHECK(strstr(e.msg, "type 2") != NULL, "msg: %s", e.msg);
    bad[0] = 0x02;
    bad[len] = 0;
    CHECK_INT(bk_eth_tx_decode(bad, len + 1, &d, from, NULL, &e), BK_ERR);
    CHECK(strstr(e.msg, "trailing") != NULL, "msg: %s", e.msg);
    bad[len - 40] ^= 0x01; /* inside s */
    if (bk_eth_tx_decode(bad, len, &d, from, NULL, &e) == BK_OK)
        CHECK(memcmp(from, k.addr, 20) != 0, "tampered signature: other sender");
    free(bad);
    free(raw);
}

int main(void) {
    bk_err e;
    bk_eth_tx tx;

    /* The call: cast mktx ... setLeader(string,uint64,string) w1 3 ... */
    bk_abi_enc a;
    bk_abi_enc_init(&a, "setLeader(string,uint64,string)");
    bk_abi_put_string(&a, "w1");
    bk_abi_put_uint(&a, 3);
    bk_abi_put_string(&a, "127.0.0.1:9000");
    uint8_t *calldata;
    size_t calldata_len;
    CHECK_INT(bk_abi_enc_finish(&a, &calldata, &calldata_len, &e), BK_OK);
    memset(&tx, 0, sizeof tx);
    tx.chain_id = 31337;
    tx.nonce = 5;
    tx.max_priority_fee = 1500000000;
    tx.max_fee = 30000000000;
    tx.gas_limit = 100000;
    tx.has_to = 1;
    CHECK_INT(bk_eth_addr_parse("0x70997970C51812dc3A010C7d01b50e0d17dc79C8", tx.to, &e),
              BK_OK);
    /* 1234567890123456789012 wei = 0x42ed123b0bd8203a14 */
    CHECK_INT(
        bk_hex_decode_exact("0x000000000000000000000000000000000000000000000042ed123b0"
                            "bd8203a14",
                            tx.value, 32, &e),
        BK_OK);
    tx.data = calldata;
    tx.data_len = calldata_len;
    sign_and_check(&tx, "tx_call.raw", "tx_call.json");
    free(calldata);

    /* The creation: cast mktx ... --create 0x600a600c600039600a6000f3... */
    uint8_t code[64];
    size_t code_len;
    CHECK_INT(bk_hex_decode_n("0x600a600c600039600a6000f3602a60005260206000f3", 46, code,
                              sizeof code, &code_len, &e),
              BK_OK);
    memset(&tx, 0, sizeof tx);
    tx.chain_id = 1;
    tx.nonce = 0;
    tx.max_priority_fee = 0;
    tx.max_fee = 2000000000;
    tx.gas_limit = 60000;
    tx.data = code;
    tx.data_len = code_len;
    sign_and_check(&tx, "tx_create.raw", "tx_create.json");

    /* Contract addresses (cast compute-address). */
    uint8_t sender[20], addr[20];
    char s[43];
    bk_eth_addr_parse("0xf39Fd6e51aad88F6F4ce6aB8827279cffFb92266", sender, &e);
    bk_eth_create_address(sender, 0, addr);
    bk_eth_addr_hex(addr, s);
    CHECK_STR(s, "0x5FbDB2315678afecb367f032d93F642f64180aa3");
    bk_eth_create_address(sender, 200, addr);
    bk_eth_addr_hex(addr, s);
    CHECK_STR(s, fixture("create_address_nonce200.txt"));
    bk_eth_create_address(sender, 0x10000, addr);
    bk_eth_addr_hex(addr, s);
    CHECK_STR(s, fixture("create_address_nonce65536.txt"));
    return check_done();
}
