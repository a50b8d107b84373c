/* test_abi.c - ABI encodings against `cast abi-encode` / `cast calldata`
 * fixtures (fixtures/eth/README.md), decoding round trips, revert data and
 * event logs. */
#include <stdlib.h>

#include "chain/abi.h"
#include "check.h"
#include "chain/ethkey.h"
#include "base/hex.h"

static const char *fixture(const char *name) {
    return check_fixture("fixtures/eth", name);
}

/* Decode a fixture into a malloc'd buffer (the caller frees). */
static uint8_t *fixture_bytes(const char *name, size_t *len) {
    uint8_t *p = NULL;
    bk_err e;
    if (bk_hex_decode_alloc(fixture(name), &p, len, &e) != BK_OK) {
        fprintf(stderr, "fixture '%s': %s\n", name, e.msg);
        exit(2);
    }
    return p;
}

/* Finish an encoder and compare its hex with a fixture. */
static void check_enc(bk_abi_enc *a, const char *name) {
    uint8_t *out;
    size_t len;
    bk_err e;
    CHECK_INT(bk_abi_enc_finish(a, &out, &len, &e), BK_OK);
    char *h = bk_hex_encode_alloc(out, len, 1);
    CHECK_STR(h, fixture(name));
    free(h);
    free(out);
}

static const uint8_t *word_of(uint8_t b) {
    static uint8_t w[32];
    memset(w, b, 32);
    return w;
}

static void test_encode(void) {
    bk_abi_enc a;
    uint8_t anvil0[20];
    bk_eth_addr_parse("0xf39Fd6e51aad88F6F4ce6aB8827279cffFb92266", anvil0, NULL);

    bk_abi_enc_init(&a, NULL);
    bk_abi_put_uint(&a, 12345);
    bk_abi_put_bytes(&a, "\xde\xad\xbe\xef", 4);
    bk_abi_put_string(&a, "hello, registry");
    bk_abi_put_address(&a, anvil0);
    bk_abi_put_bool(&a, 1);
    bk_abi_put_bytes32(&a, word_of(0x11));
    check_enc(&a, "abi_f.hex");

    bk_abi_enc_init(&a, NULL);
    bk_abi_put_uint(&a, UINT64_MAX);
    bk_abi_put_int(&a, -5);
    bk_abi_put_bytes(&a, NULL, 0);
    bk_abi_put_string(&a, "");
    bk_abi_put_uint256(&a, word_of(0xff));
    check_enc(&a, "abi_g.hex");

    uint8_t log[69];
    for (int i = 0; i < 69; i++)
        log[i] = (uint8_t)i;
    bk_abi_enc_init(&a, "appendBackupLog(uint64,bytes32,bytes)");
    bk_abi_put_uint(&a, 7);
    bk_abi_put_bytes32(&a, word_of(0xab));
    bk_abi_put_bytes(&a, log, sizeof log);
    check_enc(&a, "calldata_append.hex");

    bk_abi_enc_init(&a, "setLeader(string,uint64,string)");
    bk_abi_put_string(&a, "w1");
    bk_abi_put_uint(&a, 3);
    bk_abi_put_string(&a, "127.0.0.1:9000, a long endpoint string that needs two words");
    check_enc(&a, "calldata_setleader.hex");

    /* A selector alone, and too many arguments. */
    uint8_t *out;
    size_t len;
    bk_err e;
    bk_abi_enc_init(&a, "owner()");
    CHECK_INT(bk_abi_enc_finish(&a, &out, &len, &e), BK_OK);
    CHECK_INT(len, 4);
    CHECK(memcmp(out, "\x8d\xa5\xcb\x5b", 4) == 0, "owner() selector");
    free(out);
    bk_abi_enc_init(&a, NULL);
    for (int i = 0; i < BK_ABI_MAX_ARGS + 1; i++)
        bk_abi_put_string(&a, "x");
    CHECK_INT(bk_abi_enc_finish(&a, &out, &len, &e), BK_ERR);
    CHECK(out == NULL, "no output on error");
}

static void test_decode(void) {
    bk_err e;
    bk_abi_val v[BK_ABI_MAX_ARGS];
    size_t n, len;
    uint64_t u;
    int64_t s;
    char buf[256];

    uint8_t *d = fixture_bytes("abi_f.hex", &len);
    CHECK_INT(
        bk_abi_decode(d, len, "uint256,bytes,string,address,bool,bytes32", v, 16, &n, &e),
        BK_OK);
    CHECK_INT(n, 6);
    CHECK_INT(bk_abi_val_u64(&v[0], &u, &e), BK_OK);
    CHECK_INT(u, 12345);
    CHECK(v[1].len == 4 && memcmp(v[1].data, "\xde\xad\xbe\xef", 4) == 0, "bytes");
    char *str = bk_abi_val_strdup(&v[2]);
    CHECK_STR(str, "hello, registry");
    free(str);
    bk_abi_val_format(&v[3], buf, sizeof buf);
    CHECK_STR(buf, "0xf39Fd6e51aad88F6F4ce6aB8827279cffFb92266");
    CHECK_INT(v[4].word[31], 1);
    CHECK(memcmp(v[5].word, word_of(0x11), 32) == 0, "bytes32");
    bk_abi_val_format(&v[1], buf, sizeof buf);
    CHECK_STR(buf, "0xdeadbeef");
    bk_abi_val_format(&v[2], buf, sizeof buf);
    CHECK_STR(buf, "\"hello, registry\"");
    bk_abi_val_format(&v[4], buf, sizeof buf);
    CHECK_STR(buf, "true");

    /* Every truncation of the data fails cleanly (the last 17 bytes are the
     * string's padding, which the decoder does not need). */
    for (size_t cut = 0; cut + 17 < len; cut += 7)
        CHECK_INT(bk_abi_decode(d, cut, "uint256,bytes,string,address,bool,bytes32", v,
                                16, &n, &e),
                  BK_ERR);
    /* Wrong types for the data: a string where a bool sits (offset 0x100). */
    CHECK_INT(bk_abi_decode(d, len, "uint256,bytes,string,address,string", v, 16, &n, &e),
              BK_ERR);
    /* address with high bits: word 0 (12345 fits) as an address is fine, but
     * the bytes32 word of 0x11 is not a valid address or bool or uint64. */
    CHECK_INT(bk_abi_decode(d + 160, 32, "address", v, 16, &n, &e), BK_ERR);
    CHECK(strstr(e.msg, "out of range") != NULL, "msg: %s", e.msg);
    CHECK_INT(bk_abi_decode(d + 160, 32, "bool", v, 16, &n, &e), BK_ERR);
    CHECK_INT(bk_abi_decode(d + 160, 32, "uint64", v, 16, &n, &e), BK_ERR);
    CHECK_INT(bk_abi_decode(d + 160, 32, "bytes4", v, 16, &n, &e), BK_ERR);
    CHECK(strstr(e.msg, "padding") != NULL, "msg: %s", e.msg);
    /* An offset pointing past the end. */
    uint8_t bad[64] = {0};
    bad[31] = 0x40;
    CHECK_INT(bk_abi_decode(bad, sizeof bad, "bytes", v, 16, &n, &e), BK_ERR);
    CHECK(strstr(e.msg, "beyond") != NULL, "msg: %s", e.msg);
    bad[31] = 0x20;
    bad[63] = 0x01; /* length 1, but no byte follows */
    CHECK_INT(bk_abi_decode(bad, sizeof bad, "bytes", v, 16, &n, &e), BK_ERR);
    bad[0] = 1; /* huge offset */
    CHECK_INT(bk_abi_decode(bad, sizeof bad, "string", v, 16, &n, &e), BK_ERR);
    CHECK(strstr(e.msg, "too large") != NULL, "msg: %s", e.msg);
    /* Bad type lists. */
    CHECK_INT(bk_abi_decode(d, len, "uint7", v, 16, &n, &e), BK_ERR);
    CHECK_INT(e.code, BK_E_INVAL);
    CHECK_INT(bk_abi_decode(d, len, "uint256[]", v, 16, &n, &e), BK_ERR);
    CHECK_INT(bk_abi_decode(d, len, "uint256,,bool", v, 16, &n, &e), BK_ERR);
    CHECK_INT(bk_abi_decode(d, len, "bytes33", v, 16, &n, &e), BK_ERR);
    CHECK_INT(bk_abi_decode(d, len, "", v, 16, &n, &e), BK_OK);
    CHECK_INT(n, 0);
    free(d);

    d = fixture_bytes("abi_g.hex", &len);
    CHECK_INT(
        bk_abi_decode(d, len, "uint64, int64, bytes, string, uint256", v, 16, &n, &e),
        BK_OK);
    CHECK_INT(bk_abi_val_u64(&v[0], &u, &e), BK_OK);
    CHECK(u == UINT64_MAX, "uint64 max");
    CHECK_INT(bk_abi_val_i64(&v[1], &s, &e), BK_OK);
    CHECK_INT(s, -5);
    bk_abi_val_format(&v[1], buf, sizeof buf);
    CHECK_STR(buf, "-5");
    CHECK_INT(v[2].len, 0);
    CHECK_INT(v[3].len, 0);
    CHECK_INT(bk_abi_val_u64(&v[4], &u, &e), BK_ERR);
    bk_abi_val_format(&v[4], buf, sizeof buf);
    CHECK_STR(
        buf,
        "115792089237316195423570985008687907853269984665640564039457584007913129639935");
    CHECK_INT(bk_abi_decode(d, len, "uint64,int8", v, 16, &n, &e), BK_OK); /* -5 fits */
    CHECK_INT(bk_abi_decode(d, len, "uint32", v, 16, &n, &e), BK_ERR);     /* max u64 */
    free(d);

    /* Calldata round trip: skip the selector. */
    d = fixture_bytes("calldata_setleader.hex", &len);
    uint8_t sel[4];
    bk_abi_selector("setLeader(string,uint64,string)", sel);
    CHECK(memcmp(d, sel, 4) == 0, "selector");
    CHECK_INT(bk_abi_decode(d + 4, len - 4, "string,uint64,string", v, 16, &n, &e),
              BK_OK);
    str = bk_abi_val_strdup(&v[2]);
    CHECK_STR(str, "127.0.0.1:9000, a long endpoint string that needs two words");
    free(str);
    free(d);
}

static void test_revert(void) {
    static const char *const errs[] = {"NotOwner(address)",
                                       "NotWriter(address)",
                                       "ZeroAddress()",
                                       "StaleEpoch(uint64,uint64)",
                                       "BadVersion(uint64,uint64)",
                                       "UnknownVersion(uint64)"};
    bk_err e;
    bk_abi_revert r;
    size_t len;
    char buf[512];
    uint64_t u;

    uint8_t *d = fixture_bytes("revert_stale_epoch.hex", &len);
    CHECK_INT(bk_abi_decode_revert(d, len, errs, 6, &r, &e), BK_OK);
    CHECK_INT(r.kind, BK_REVERT_CUSTOM);
    CHECK_STR(r.name, "StaleEpoch");
    CHECK_INT(r.nargs, 2);
    CHECK_INT(bk_abi_val_u64(&r.args[1], &u, &e), BK_OK);
    CHECK_INT(u, 7);
    bk_abi_revert_format(&r, buf, sizeof buf);
    CHECK_STR(buf, "StaleEpoch(5, 7)");
    /* Not in the list: unknown, named by selector. */
    CHECK_INT(bk_abi_decode_revert(d, len, errs, 2, &r, &e), BK_OK);
    CHECK_INT(r.kind, BK_REVERT_UNKNOWN);
    bk_abi_revert_format(&r, buf, sizeof buf);
    CHECK_STR(buf, "unknown error 0xce85c422");
    /* Truncated arguments. */
    CHECK_INT(bk_abi_decode_revert(d, len - 1, errs, 6, &r, &e), BK_ERR);
    CHECK(strstr(e.msg, "StaleEpoch") != NULL, "msg: %s", e.msg);
    CHECK_INT(bk_abi_decode_revert(d, 3, errs, 6, &r, &e), BK_ERR);
    free(d);

    d = fixture_bytes("revert_not_writer.hex", &len);
    CHECK_INT(bk_abi_decode_revert(d, len, errs, 6, &r, &e), BK_OK);
    bk_abi_revert_format(&r, buf, sizeof buf);
    CHECK_STR(buf, "NotWriter(0x70997970C51812dc3A010C7d01b50e0d17dc79C8)");
    free(d);

    d = fixture_bytes("revert_error.hex", &len);
    CHECK_INT(bk_abi_decode_revert(d, len, errs, 6, &r, &e), BK_OK);
    CHECK_INT(r.kind, BK_REVERT_ERROR);
    bk_abi_revert_format(&r, buf, sizeof buf);
    CHECK_STR(buf, "Error(\"not owner\")");
    free(d);

    d = fixture_bytes("revert_panic.hex", &len);
    CHECK_INT(bk_abi_decode_revert(d, len, errs, 6, &r, &e), BK_OK);
    CHECK_INT(r.kind, BK_REVERT_PANIC);
    bk_abi_revert_format(&r, buf, sizeof buf);
    CHECK_STR(buf, "Panic(0x11: arithmetic overflow)");
    free(d);

    CHECK_INT(bk_abi_decode_revert(NULL, 0, errs, 6, &r, &e), BK_OK);
    CHECK_INT(r.kind, BK_REVERT_EMPTY);
    bk_abi_revert_format(&r, buf, sizeof buf);
    CHECK_STR(buf, "empty revert");

    /* ZeroAddress() has no arguments. */
    uint8_t za[4];
    bk_abi_selector("ZeroAddress()", za);
    CHECK_INT(bk_abi_decode_revert(za, 4, errs, 6, &r, &e), BK_OK);
    bk_abi_revert_format(&r, buf, sizeof buf);
    CHECK_STR(buf, "ZeroAddress()");
}

static void test_log(void) {
    bk_err e;
    uint8_t topics[2][32];
    char canon_topic[67];
    size_t len, n;
    bk_abi_val v[4];
    uint64_t u;

    const char *desc = "BackupLogged(uint64 indexed, bytes32, bytes)";
    CHECK_INT(bk_abi_event_topic(desc, topics[0], &e), BK_OK);
    bk_hex_encode(topics[0], 32, 1, canon_topic);
    CHECK_STR(canon_topic, fixture("topic_backup_logged.hex"));
    memset(topics[1], 0, 32);
    topics[1][31] = 9;
    uint8_t *d = fixture_bytes("log_backup_logged_data.hex", &len);
    CHECK_INT(
        bk_abi_decode_log(desc, (const uint8_t(*)[32])topics, 2, d, len, v, 4, &n, &e),
        BK_OK);
    CHECK_INT(n, 3);
    CHECK_INT(bk_abi_val_u64(&v[0], &u, &e), BK_OK);
    CHECK_INT(u, 9);
    CHECK(memcmp(v[1].word, word_of(0xcd), 32) == 0, "digest");
    CHECK(v[2].len == 5 && memcmp(v[2].data, "\x01\x02\x03\x04\x05", 5) == 0, "log");
    /* Wrong topic count, wrong event. */
    CHECK_INT(
        bk_abi_decode_log(desc, (const uint8_t(*)[32])topics, 1, d, len, v, 4, &n, &e),
        BK_ERR);
    CHECK(strstr(e.msg, "topics") != NULL, "msg: %s", e.msg);
    CHECK_INT(bk_abi_decode_log("LeaderChanged(uint64 indexed,string,string)",
                                (const uint8_t(*)[32])topics, 2, d, len, v, 4, &n, &e),
              BK_ERR);
    CHECK(strstr(e.msg, "not event") != NULL, "msg: %s", e.msg);
    CHECK_INT(
        bk_abi_decode_log(desc, (const uint8_t(*)[32])topics, 2, d, 40, v, 4, &n, &e),
        BK_ERR);
    free(d);
}

int main(void) {
    test_encode();
    test_decode();
    test_revert();
    test_log();
    return check_done();
}
