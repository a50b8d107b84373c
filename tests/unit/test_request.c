/* test_request.c - the request envelope: parsing, the canonical signing
 * form, build + parse round trip, and a signature made by `cast wallet
 * sign` (fixtures/infodid/README.md). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "chain/ethkey.h"
#include "chain/request.h"

#define ANVIL_KEY "0xac0974bec39a17e36ba4a6b4d238ff944bacb478cbed5efcae784d7bf4f2ff80"
#define ANVIL_ADDR "0xf39Fd6e51aad88F6F4ce6aB8827279cffFb92266"

static const char *const OPS[] = {"register", "update", "revoke", NULL};

static char *slurp(const char *path, size_t *len) {
    FILE *f = fopen(path, "rb");
    if (f == NULL)
        return NULL;
    char *p = calloc(1, 65536);
    size_t n = p ? fread(p, 1, 65535, f) : 0;
    fclose(f);
    if (len != NULL)
        *len = n;
    return p;
}

static void chomp(char *s) {
    size_t n = strlen(s);
    while (n > 0 && (s[n - 1] == '\n' || s[n - 1] == '\r'))
        s[--n] = '\0';
}

static const char *reason_of(const char *text, size_t limit) {
    static bk_reason why;
    bk_request req;
    memset(&why, 0, sizeof(why));
    if (bk_request_parse(text, strlen(text), limit, OPS, &req, &why) == BK_OK) {
        bk_request_release(&req);
        return "ok";
    }
    bk_request_release(&req);
    return why.code;
}

static void test_parse_fields(void) {
    const char *text = "{\"v\":1,\"id\":{\"client\":\"alice-1.x_y\",\"seq\":42},"
                       "\"op\":\"update\",\"payload\":{\"did\":\"did:example:1\"},"
                       "\"ts\":1700000000123,\"sig\":\"0x"
                       "0102030405060708091011121314151617181920212223242526272829303132"
                       "3334353637383940414243444546474849505152535455565758596061626364"
                       "1c\"}";
    bk_request req;
    bk_reason why;
    CHECK(bk_request_parse(text, strlen(text), 0, OPS, &req, &why) == BK_OK, "parse: %s",
          why.text);
    CHECK_STR(req.client, "alice-1.x_y");
    CHECK_INT(req.seq, 42);
    CHECK_STR(req.id, "alice-1.x_y:42");
    CHECK_STR(req.op, "update");
    CHECK_INT(req.ts, 1700000000123LL);
    CHECK_STR(json_string_value(json_object_get(req.payload, "did")), "did:example:1");
    CHECK_INT(req.sig[0], 1);
    CHECK_INT(req.sig[63], 0x64);
    CHECK_INT(req.sig[64], 0x1c);
    bk_request_release(&req);
    bk_request_release(&req); /* twice is safe */

    /* any op when the caller gives no list */
    const char *other =
        "{\"v\":1,\"id\":{\"client\":\"c\",\"seq\":0},\"op\":\"transfer\","
        "\"payload\":{},\"ts\":0,\"sig\":\"0x"
        "0000000000000000000000000000000000000000000000000000000000000000"
        "0000000000000000000000000000000000000000000000000000000000000000"
        "1b\"}";
    CHECK(bk_request_parse(other, strlen(other), 0, NULL, &req, &why) == BK_OK, "%s",
          why.text);
    bk_request_release(&req);
    CHECK_STR(reason_of(other, 0), "unknown_op");
    /* the request id survives a later failure, so a result can name it */
    CHECK(bk_request_parse(other, strlen(other), 0, OPS, &req, &why) == BK_ERR, "fails");
    CHECK_STR(req.id, "c:0");
    CHECK(req.root == NULL && req.op == NULL, "nothing kept");
    /* size limit: the whole text */
    CHECK_STR(reason_of(other, 100), "too_large");
    CHECK_STR(reason_of(other, strlen(other)), "unknown_op");
    CHECK_STR(reason_of("", 0), "malformed_json");
    CHECK_STR(reason_of("null", 0), "not_object");
    CHECK_STR(reason_of("{}", 0), "missing_field:v");
    CHECK_STR(reason_of("{\"v\":7}", 0), "bad_version");
    CHECK_STR(
        reason_of("{\"v\":1,\"id\":{\"client\":\"c\",\"seq\":9007199254740992}}", 0),
        "bad_field:id.seq");
}

static void test_canonical(void) {
    json_t *payload =
        json_loads("{\"b\":\"x\\ny\\u0001\",\"a\":{\"z\":1,\"c\":[true,null]},"
                   "\"\\u00e9\":\"/\\\"\\\\\"}",
                   0, NULL);
    CHECK(payload != NULL, "payload fixture parses");
    char *canon = NULL;
    size_t len = 0;
    CHECK(bk_request_canonical_parts("c1", 5, "register", payload, 1700000000000LL,
                                     &canon, &len, NULL) == BK_OK,
          "canonical");
    const char *want = "{\"id\":{\"client\":\"c1\",\"seq\":5},\"op\":\"register\","
                       "\"payload\":{\"a\":{\"c\":[true,null],\"z\":1},"
                       "\"b\":\"x\\ny\\u0001\",\"\xc3\xa9\":\"/\\\"\\\\\"},"
                       "\"ts\":1700000000000,\"v\":1}";
    CHECK_STR(canon, want);
    CHECK_INT(len, strlen(want));
    free(canon);

    bk_err e;
    json_t *real = json_pack("{s:f}", "x", 1.5);
    CHECK(bk_request_canonical_parts("c1", 5, "register", real, 1, &canon, &len, &e) ==
              BK_ERR,
          "a fraction has no canonical form");
    CHECK(bk_request_canonical_parts("a:b", 5, "register", payload, 1, &canon, &len,
                                     &e) == BK_ERR,
          "client id with ':' refused");
    CHECK_INT(e.code, BK_E_INVAL);
    json_decref(real);
    json_decref(payload);
}

static void test_build_roundtrip(void) {
    bk_eth_key key;
    bk_err e;
    CHECK(bk_eth_key_from_hex(ANVIL_KEY, &key, &e) == BK_OK, "key: %s", e.msg);
    json_t *payload =
        json_pack("{s:{s:s,s:s}}", "attrs", "name", "Alice", "city", "Seoul");
    char *text = NULL;
    CHECK(bk_request_build(&key, "loadgen-3", 77, "register", payload, 1700000000001LL,
                           &text, &e) == BK_OK,
          "build: %s", e.msg);
    bk_request req;
    bk_reason why;
    CHECK(text != NULL &&
              bk_request_parse(text, strlen(text), 0, OPS, &req, &why) == BK_OK,
          "parse built: %s", why.text);
    CHECK_STR(req.id, "loadgen-3:77");
    CHECK_STR(req.op, "register");
    CHECK(json_equal(req.payload, payload), "payload round trip");
    CHECK(req.sig[64] == 27 || req.sig[64] == 28, "v as cast writes it: %d", req.sig[64]);
    uint8_t addr[20];
    char hex[43];
    CHECK(bk_request_signer(&req, addr, &e) == BK_OK, "signer: %s", e.msg);
    bk_eth_addr_hex(addr, hex);
    CHECK_STR(hex, ANVIL_ADDR);
    /* a changed field no longer verifies as the same signer */
    req.ts++;
    if (bk_request_signer(&req, addr, &e) == BK_OK) {
        bk_eth_addr_hex(addr, hex);
        CHECK(strcmp(hex, ANVIL_ADDR) != 0, "tampered request recovers another address");
    }
    bk_request_release(&req);
    free(text);
    json_decref(payload);
}

static void test_cast_fixture(void) {
    const char *names[] = {"register", "update"};
    for (int i = 0; i < 2; i++) {
        char path[256];
        size_t len = 0;
        snprintf(path, sizeof(path), "fixtures/infodid/%s.json", names[i]);
        char *text = slurp(path, &len);
        snprintf(path, sizeof(path), "fixtures/infodid/%s.canonical", names[i]);
        char *want = slurp(path, NULL);
        CHECK(text != NULL && want != NULL, "fixture %s readable", names[i]);
        if (text == NULL || want == NULL) {
            free(text);
            free(want);
            continue;
        }
        chomp(text);
        bk_request req;
        bk_reason why;
        CHECK(bk_request_parse(text, strlen(text), 0, OPS, &req, &why) == BK_OK,
              "parse fixture: %s", why.text);
        char *canon = NULL;
        size_t clen = 0;
        CHECK(bk_request_canonical(&req, &canon, &clen, NULL) == BK_OK, "canonical");
        CHECK_STR(canon, want);
        uint8_t addr[20];
        char hex[43];
        bk_err e;
        CHECK(bk_request_signer(&req, addr, &e) == BK_OK, "cast signature: %s", e.msg);
        bk_eth_addr_hex(addr, hex);
        CHECK_STR(hex, ANVIL_ADDR);
        free(canon);
        bk_request_release(&req);
        free(text);
        free(want);
    }
}

int main(void) {
    test_parse_fields();
    test_canonical();
    test_build_roundtrip();
    test_cast_fixture();
    return check_done();
}
