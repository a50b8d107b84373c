/* test_jsonrpc.c - JSON-RPC reply parsing from bytes (replies recorded from
 * anvil, fixtures/eth/rpc_*.json, plus hand-broken ones), the typed
 * parsers, and the client's failover error when no URL answers. */
#include <stdlib.h>

#include "chain/abi.h"
#include "check.h"
#include "chain/ethkey.h"
#include "base/hex.h"
#include "chain/jsonrpc.h"

static const char *fixture(const char *name) {
    return check_fixture("fixtures/eth", name);
}

static int parse(const char *s, long long id, bk_rpc_reply *r, bk_err *e) {
    return bk_rpc_parse_reply(s, strlen(s), id, r, e);
}

static void test_reply(void) {
    bk_rpc_reply r;
    bk_err e;
    uint64_t v;

    CHECK_INT(parse(fixture("rpc_chain_id.json"), 7, &r, &e), BK_OK);
    CHECK(!r.is_error, "result");
    CHECK_INT(bk_rpc_parse_qty(r.result, &v, &e), BK_OK);
    CHECK_INT(v, 31337);
    bk_rpc_reply_release(&r);
    bk_rpc_reply_release(&r); /* twice is safe */

    /* Wrong id. */
    CHECK_INT(parse(fixture("rpc_chain_id.json"), 8, &r, &e), BK_ERR);
    CHECK(strstr(e.msg, "id") != NULL, "msg: %s", e.msg);
    CHECK_INT(e.code, BK_E_PROTO);

    /* Truncated reply: every prefix fails. */
    const char *full = fixture("rpc_receipt_create.json");
    size_t flen = strlen(full);
    while (flen > 0 && full[flen - 1] == '\n')
        flen--;
    for (size_t cut = 0; cut < flen; cut += 23)
        CHECK_INT(bk_rpc_parse_reply(full, cut, 11, &r, &e), BK_ERR);
    CHECK_INT(bk_rpc_parse_reply(full, flen, 11, &r, &e), BK_OK);
    bk_eth_receipt rc;
    CHECK_INT(bk_rpc_parse_receipt(r.result, &rc, &e), BK_OK);
    CHECK_INT(rc.status, 1);
    CHECK_INT(rc.block_number, 1);
    CHECK_INT(rc.gas_used, 0x1029a);
    CHECK_INT(rc.effective_gas_price, 0x3b9aca01);
    CHECK_INT(rc.has_contract, 1);
    char a[43];
    bk_eth_addr_hex(rc.contract_address, a);
    CHECK_STR(a, "0x5FbDB2315678afecb367f032d93F642f64180aa3");
    bk_rpc_reply_release(&r);

    /* A null result (receipt not found) is a result. */
    CHECK_INT(parse(fixture("rpc_receipt_null.json"), 12, &r, &e), BK_OK);
    CHECK(!r.is_error && json_is_null(r.result), "null result");
    bk_rpc_reply_release(&r);

    /* Error objects. */
    CHECK_INT(parse(fixture("rpc_no_method.json"), 15, &r, &e), BK_OK);
    CHECK_INT(r.is_error, 1);
    CHECK_INT(r.err_code, -32601);
    CHECK_STR(r.err_message, "Method not found");
    bk_rpc_reply_release(&r);
    CHECK_INT(parse(fixture("rpc_send_wrong_chain.json"), 9, &r, &e), BK_OK);
    CHECK_INT(r.err_code, -32003);
    CHECK_STR(r.err_message, "invalid chain id for signer");
    bk_rpc_reply_release(&r);

    /* A revert: code 3 with the revert data, decoded to the custom error. */
    CHECK_INT(parse(fixture("rpc_call_revert.json"), 8, &r, &e), BK_OK);
    CHECK_INT(r.err_code, 3);
    CHECK(strncmp(r.err_message, "execution reverted: custom error 0xce85c422: ?", 46) ==
              0,
          "msg: %s", r.err_message);
    for (const char *p = r.err_message; *p != '\0'; p++)
        CHECK(*p >= 0x20, "printable message");
    uint8_t *data;
    size_t len;
    CHECK_INT(bk_rpc_parse_data(r.err_data, &data, &len, &e), BK_OK);
    static const char *const errs[] = {"StaleEpoch(uint64,uint64)"};
    bk_abi_revert rv;
    char buf[256];
    CHECK_INT(bk_abi_decode_revert(data, len, errs, 1, &rv, &e), BK_OK);
    bk_abi_revert_format(&rv, buf, sizeof buf);
    CHECK_STR(buf, "StaleEpoch(5, 7)");
    free(data);
    bk_rpc_reply_release(&r);

    /* Fee sources. */
    CHECK_INT(parse(fixture("rpc_block_latest.json"), 10, &r, &e), BK_OK);
    CHECK_INT(bk_rpc_parse_qty(json_object_get(r.result, "baseFeePerGas"), &v, &e),
              BK_OK);
    CHECK_INT(v, 1000000000);
    bk_rpc_reply_release(&r);
    CHECK_INT(parse(fixture("rpc_priority_fee.json"), 13, &r, &e), BK_OK);
    CHECK_INT(bk_rpc_parse_qty(r.result, &v, &e), BK_OK);
    CHECK_INT(v, 1000000000);
    bk_rpc_reply_release(&r);
    CHECK_INT(parse(fixture("rpc_fee_history.json"), 14, &r, &e), BK_OK);
    json_t *reward =
        json_array_get(json_array_get(json_object_get(r.result, "reward"), 0), 0);
    CHECK_INT(bk_rpc_parse_qty(reward, &v, &e), BK_OK);
    CHECK_INT(v, 1);
    bk_rpc_reply_release(&r);

    /* Malformed replies. */
    CHECK_INT(parse("", 1, &r, &e), BK_ERR);
    CHECK_INT(parse("{\"jsonrpc\":\"2.0\",\"id\":1,\"result\":\"0x1\"", 1, &r, &e),
              BK_ERR);
    CHECK(strstr(e.msg, "bad JSON") != NULL, "msg: %s", e.msg);
    CHECK_INT(parse("<html>502 Bad Gateway</html>", 1, &r, &e), BK_ERR);
    CHECK_INT(parse("[{\"jsonrpc\":\"2.0\",\"id\":1,\"result\":\"0x1\"}]", 1, &r, &e),
              BK_ERR);
    CHECK(strstr(e.msg, "not a JSON object") != NULL, "msg: %s", e.msg);
    CHECK_INT(parse("{\"id\":1,\"result\":\"0x1\"}", 1, &r, &e), BK_ERR);
    CHECK(strstr(e.msg, "jsonrpc") != NULL, "msg: %s", e.msg);
    CHECK_INT(parse("{\"jsonrpc\":\"2.0\",\"id\":1}", 1, &r, &e), BK_ERR);
    CHECK(strstr(e.msg, "no result") != NULL, "msg: %s", e.msg);
    CHECK_INT(
        parse("{\"jsonrpc\":\"2.0\",\"id\":1,\"result\":1,\"error\":{}}", 1, &r, &e),
        BK_ERR);
    CHECK(strstr(e.msg, "both") != NULL, "msg: %s", e.msg);
    CHECK_INT(parse("{\"jsonrpc\":\"2.0\",\"id\":\"1\",\"result\":1}", 1, &r, &e),
              BK_ERR);
    CHECK_INT(
        parse("{\"jsonrpc\":\"2.0\",\"id\":1,\"error\":{\"code\":\"x\"}}", 1, &r, &e),
        BK_ERR);
    CHECK(strstr(e.msg, "malformed error") != NULL, "msg: %s", e.msg);
    CHECK_INT(parse("{\"jsonrpc\":\"2.0\",\"id\":1,\"error\":\"oops\"}", 1, &r, &e),
              BK_ERR);
}

static void test_values(void) {
    bk_err e;
    uint64_t v;
    uint8_t w[32];
    json_t *j;
#define QTY(s) (j = json_string(s), j)
    CHECK_INT(bk_rpc_parse_qty(QTY("0x0"), &v, &e), BK_OK);
    CHECK_INT(v, 0);
    json_decref(j);
    CHECK_INT(bk_rpc_parse_qty(QTY("0xffffffffffffffff"), &v, &e), BK_OK);
    CHECK(v == UINT64_MAX, "max");
    json_decref(j);
    CHECK_INT(bk_rpc_parse_qty(QTY("0x10000000000000000"), &v, &e), BK_ERR);
    CHECK(strstr(e.msg, "64 bits") != NULL, "msg: %s", e.msg);
    json_decref(j);
    CHECK_INT(bk_rpc_parse_qty(QTY("0x"), &v, &e), BK_ERR);
    json_decref(j);
    CHECK_INT(bk_rpc_parse_qty(QTY("12"), &v, &e), BK_ERR);
    json_decref(j);
    CHECK_INT(bk_rpc_parse_qty(QTY("0x1g"), &v, &e), BK_ERR);
    json_decref(j);
    j = json_integer(5);
    CHECK_INT(bk_rpc_parse_qty(j, &v, &e), BK_ERR);
    json_decref(j);
    CHECK_INT(bk_rpc_parse_qty(NULL, &v, &e), BK_ERR);
    CHECK_INT(bk_rpc_parse_qty256(QTY("0x42ed123b0bd8203a14"), w, &e), BK_OK);
    json_decref(j);
    CHECK(w[31] == 0x14 && w[23] == 0x42 && w[22] == 0, "qty256");
    CHECK_INT(bk_rpc_parse_qty256(QTY("0xabc"), w, &e), BK_OK);
    json_decref(j);
    CHECK(w[31] == 0xbc && w[30] == 0x0a, "odd digits");

    uint8_t *d;
    size_t len;
    CHECK_INT(bk_rpc_parse_data(QTY("0x"), &d, &len, &e), BK_OK);
    CHECK_INT(len, 0);
    free(d);
    json_decref(j);
    CHECK_INT(bk_rpc_parse_data(QTY("0xabc"), &d, &len, &e), BK_ERR);
    CHECK_INT(e.code, BK_E_PROTO);
    json_decref(j);
    CHECK_INT(bk_rpc_parse_data(QTY("abcd"), &d, &len, &e), BK_ERR);
    json_decref(j);
#undef QTY

    /* A log object as anvil returns it. */
    const char *logtext =
        "{\"address\":\"0x5fbdb2315678afecb367f032d93f642f64180aa3\",\"topics\":["
        "\"0x86c80834d72b79c6a67c0c6305c7719a0210437b261a0b408cd9f000d6a684f8\","
        "\"0x0000000000000000000000000000000000000000000000000000000000000002\"],"
        "\"data\":\"0x0102\",\"blockHash\":\"0x"
        "1111111111111111111111111111111111111111111111111111111111111111\","
        "\"blockNumber\":\"0x5\",\"transactionHash\":\"0x"
        "2222222222222222222222222222222222222222222222222222222222222222\","
        "\"transactionIndex\":\"0x0\",\"logIndex\":\"0x3\",\"removed\":false}";
    json_t *lj = json_loads(logtext, 0, NULL);
    bk_eth_log l;
    CHECK_INT(bk_rpc_parse_log(lj, &l, &e), BK_OK);
    CHECK_INT(l.ntopics, 2);
    CHECK_INT(l.topics[1][31], 2);
    CHECK_INT(l.block_number, 5);
    CHECK_INT(l.log_index, 3);
    CHECK_INT(l.data_len, 2);
    CHECK_INT(l.removed, 0);
    bk_eth_log_release(&l);
    bk_eth_log_release(&l);
    json_object_set_new(lj, "blockNumber", json_string("five"));
    CHECK_INT(bk_rpc_parse_log(lj, &l, &e), BK_ERR);
    CHECK(strstr(e.msg, "log") != NULL, "msg: %s", e.msg);
    json_decref(lj);

    CHECK_INT(bk_rpc_parse_receipt(NULL, &(bk_eth_receipt){0}, &e), BK_ERR);
}

static void test_client(void) {
    bk_err e;
    CHECK(bk_rpc_new(NULL, 0, 1000, &e) == NULL, "no URLs");
    const char *empty[] = {""};
    CHECK(bk_rpc_new(empty, 1, 1000, &e) == NULL, "empty URL");
    CHECK(strstr(e.msg, "empty") != NULL, "msg: %s", e.msg);

    /* Two URLs where nothing listens (port 1 on loopback): a transport
     * error naming the method, tried on both. */
    bk_rpc *c = bk_rpc_new_list("http://127.0.0.1:1, http://127.0.0.1:1/b", 2000, &e);
    CHECK(c != NULL, "client: %s", e.msg);
    if (c == NULL)
        return;
    CHECK_STR(bk_rpc_current_url(c), "http://127.0.0.1:1");
    uint64_t id;
    CHECK_INT(bk_rpc_chain_id(c, &id, &e), BK_ERR);
    CHECK_INT(e.code, BK_E_IO);
    CHECK(strstr(e.msg, "eth_chainId") != NULL, "msg: %s", e.msg);
    CHECK(strstr(e.msg, "127.0.0.1:1/b") != NULL, "last URL tried: %s", e.msg);
    CHECK(bk_rpc_last_error(c) == NULL, "no error object");
    uint8_t *rv;
    size_t rvlen;
    CHECK_INT(bk_rpc_last_revert(c, &rv, &rvlen, &e), BK_ERR);
    bk_rpc_free(c);
    bk_rpc_free(NULL);
}

int main(void) {
    test_reply();
    test_values();
    test_client();
    return check_done();
}
