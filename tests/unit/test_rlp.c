/* test_rlp.c - RLP vectors from the Ethereum wiki's RLP page (also checked
 * with `cast to-rlp`), round trips, and strict rejection of bad input. */
#include <stdlib.h>

#include "check.h"
#include "base/hex.h"
#include "chain/rlp.h"

#define LOREM "Lorem ipsum dolor sit amet, consectetur adipisicing elit"

static char hexbuf[1024];

/* Finish r and return its hex (no prefix). */
static const char *fin(bk_rlp_enc *r) {
    uint8_t *out;
    size_t len;
    bk_err e;
    if (bk_rlp_enc_finish(r, &out, &len, &e) != BK_OK)
        return "(error)";
    bk_hex_encode(out, len, 0, hexbuf);
    free(out);
    return hexbuf;
}

static void test_encode(void) {
    bk_rlp_enc r;
    bk_rlp_enc_init(&r);
    bk_rlp_put_str(&r, "dog");
    CHECK_STR(fin(&r), "83646f67");

    bk_rlp_enc_init(&r);
    bk_rlp_list_begin(&r);
    bk_rlp_put_str(&r, "cat");
    bk_rlp_put_str(&r, "dog");
    bk_rlp_list_end(&r);
    CHECK_STR(fin(&r), "c88363617483646f67");

    bk_rlp_enc_init(&r);
    bk_rlp_put_str(&r, "");
    CHECK_STR(fin(&r), "80");

    bk_rlp_enc_init(&r);
    bk_rlp_list_begin(&r);
    bk_rlp_list_end(&r);
    CHECK_STR(fin(&r), "c0");

    bk_rlp_enc_init(&r);
    bk_rlp_put_uint(&r, 0);
    CHECK_STR(fin(&r), "80");

    bk_rlp_enc_init(&r);
    bk_rlp_put_bytes(&r, "\x00", 1);
    CHECK_STR(fin(&r), "00");

    bk_rlp_enc_init(&r);
    bk_rlp_put_uint(&r, 15);
    CHECK_STR(fin(&r), "0f");

    bk_rlp_enc_init(&r);
    bk_rlp_put_uint(&r, 1024);
    CHECK_STR(fin(&r), "820400");

    bk_rlp_enc_init(&r);
    bk_rlp_put_uint(&r, 0x80);
    CHECK_STR(fin(&r), "8180");

    bk_rlp_enc_init(&r);
    bk_rlp_put_uint(&r, UINT64_MAX);
    CHECK_STR(fin(&r), "88ffffffffffffffff");

    uint8_t u256[32] = {0};
    u256[30] = 0x04;
    bk_rlp_enc_init(&r);
    bk_rlp_put_uint_be(&r, u256, 32);
    CHECK_STR(fin(&r), "820400");

    /* [ [], [[]], [ [], [[]] ] ] */
    bk_rlp_enc_init(&r);
    bk_rlp_list_begin(&r);
    bk_rlp_list_begin(&r);
    bk_rlp_list_end(&r);
    bk_rlp_list_begin(&r);
    bk_rlp_list_begin(&r);
    bk_rlp_list_end(&r);
    bk_rlp_list_end(&r);
    bk_rlp_list_begin(&r);
    bk_rlp_list_begin(&r);
    bk_rlp_list_end(&r);
    bk_rlp_list_begin(&r);
    bk_rlp_list_begin(&r);
    bk_rlp_list_end(&r);
    bk_rlp_list_end(&r);
    bk_rlp_list_end(&r);
    bk_rlp_list_end(&r);
    CHECK_STR(fin(&r), "c7c0c1c0c3c0c1c0");

    bk_rlp_enc_init(&r);
    bk_rlp_put_str(&r, LOREM);
    CHECK_STR(fin(&r),
              "b8384c6f72656d20697073756d20646f6c6f722073697420616d65742c20636f6e73"
              "65637465747572206164697069736963696e6720656c6974");

    /* A list longer than 55 bytes: long list header. */
    bk_rlp_enc_init(&r);
    bk_rlp_list_begin(&r);
    bk_rlp_put_str(&r, LOREM);
    bk_rlp_list_end(&r);
    const char *h = fin(&r);
    CHECK(strncmp(h, "f83ab838", 8) == 0, "long list header: %.16s", h);

    /* Unbalanced lists are an error. */
    uint8_t *out;
    size_t len;
    bk_err e;
    bk_rlp_enc_init(&r);
    bk_rlp_list_begin(&r);
    CHECK_INT(bk_rlp_enc_finish(&r, &out, &len, &e), BK_ERR);
    bk_rlp_enc_init(&r);
    bk_rlp_list_end(&r);
    CHECK_INT(bk_rlp_enc_finish(&r, &out, &len, &e), BK_ERR);
}

/* Decode hex input as one whole item. */
static int dec(const char *hex, bk_rlp_item *it, uint8_t *buf, bk_err *e) {
    size_t n;
    if (bk_hex_decode_n(hex, strlen(hex), buf, 1024, &n, NULL) != BK_OK)
        return -2;
    return bk_rlp_decode_all(buf, n, it, e);
}

static void test_decode(void) {
    bk_err e;
    bk_rlp_item it, items[8];
    uint8_t buf[1024];
    size_t n;
    uint64_t v;

    CHECK_INT(dec("83646f67", &it, buf, &e), BK_OK);
    CHECK(!it.is_list && it.len == 3 && memcmp(it.payload, "dog", 3) == 0, "dog");

    CHECK_INT(dec("c88363617483646f67", &it, buf, &e), BK_OK);
    CHECK(it.is_list, "list");
    CHECK_INT(bk_rlp_list(&it, items, 8, &n, &e), BK_OK);
    CHECK_INT(n, 2);
    CHECK(items[0].len == 3 && memcmp(items[0].payload, "cat", 3) == 0, "cat");
    CHECK(items[1].len == 3 && memcmp(items[1].payload, "dog", 3) == 0, "dog");
    CHECK_INT(bk_rlp_list(&it, items, 1, &n, &e), BK_ERR);

    CHECK_INT(dec("80", &it, buf, &e), BK_OK);
    CHECK(!it.is_list && it.len == 0, "empty string");
    CHECK_INT(bk_rlp_uint64(&it, &v, &e), BK_OK);
    CHECK_INT(v, 0);
    CHECK_INT(dec("c0", &it, buf, &e), BK_OK);
    CHECK(it.is_list && it.len == 0, "empty list");
    CHECK_INT(bk_rlp_list(&it, items, 8, &n, &e), BK_OK);
    CHECK_INT(n, 0);
    CHECK_INT(dec("0f", &it, buf, &e), BK_OK);
    CHECK_INT(bk_rlp_uint64(&it, &v, &e), BK_OK);
    CHECK_INT(v, 15);
    CHECK_INT(dec("820400", &it, buf, &e), BK_OK);
    CHECK_INT(bk_rlp_uint64(&it, &v, &e), BK_OK);
    CHECK_INT(v, 1024);
    uint8_t u[32];
    CHECK_INT(bk_rlp_uint256(&it, u, &e), BK_OK);
    CHECK(u[30] == 4 && u[31] == 0 && u[0] == 0, "uint256");

    CHECK_INT(dec("c7c0c1c0c3c0c1c0", &it, buf, &e), BK_OK);
    CHECK_INT(bk_rlp_list(&it, items, 8, &n, &e), BK_OK);
    CHECK_INT(n, 3);
    CHECK(items[2].is_list && items[2].len == 3, "third");

    CHECK_INT(dec("b8384c6f72656d20697073756d20646f6c6f722073697420616d65742c20636f6e7365"
                  "637465747572206164697069736963696e6720656c6974",
                  &it, buf, &e),
              BK_OK);
    CHECK(it.len == 56 && memcmp(it.payload, LOREM, 56) == 0, "lorem");

    /* Bad input. */
    CHECK_INT(dec("", &it, buf, &e), BK_ERR);
    CHECK(strstr(e.msg, "empty") != NULL, "msg: %s", e.msg);
    CHECK_INT(dec("83646f", &it, buf, &e), BK_ERR); /* truncated string */
    CHECK(strstr(e.msg, "truncated") != NULL, "msg: %s", e.msg);
    CHECK_INT(e.code, BK_E_PROTO);
    CHECK_INT(dec("c88363617483646f", &it, buf, &e), BK_ERR); /* truncated list */
    CHECK_INT(dec("83646f6700", &it, buf, &e), BK_ERR);       /* trailing byte */
    CHECK(strstr(e.msg, "trailing") != NULL, "msg: %s", e.msg);
    CHECK_INT(dec("8105", &it, buf, &e), BK_ERR); /* single byte with a prefix */
    CHECK(strstr(e.msg, "single byte") != NULL, "msg: %s", e.msg);
    CHECK_INT(dec("b803646f67", &it, buf, &e), BK_ERR); /* long form, short length */
    CHECK(strstr(e.msg, "long form") != NULL, "msg: %s", e.msg);
    CHECK_INT(dec("b90038"
                  "4c6f72656d20697073756d20646f6c6f722073697420616d65742c20636f6e7365"
                  "637465747572206164697069736963696e6720656c6974",
                  &it, buf, &e),
              BK_ERR); /* length with a leading zero */
    CHECK(strstr(e.msg, "leading zero") != NULL, "msg: %s", e.msg);
    CHECK_INT(dec("b9", &it, buf, &e), BK_ERR);                 /* missing length */
    CHECK_INT(dec("bfffffffffffffffff", &it, buf, &e), BK_ERR); /* huge length */
    CHECK_INT(dec("c3836361", &it, buf, &e), BK_OK);            /* list with bad item */
    CHECK_INT(bk_rlp_list(&it, items, 8, &n, &e), BK_ERR);
    CHECK(strstr(e.msg, "item 0") != NULL, "msg: %s", e.msg);
    CHECK_INT(dec("820004", &it, buf, &e), BK_OK); /* integer with leading zero */
    CHECK_INT(bk_rlp_uint64(&it, &v, &e), BK_ERR);
    CHECK(strstr(e.msg, "leading zero") != NULL, "msg: %s", e.msg);
    CHECK_INT(dec("89010000000000000000", &it, buf, &e), BK_OK); /* 9-byte integer */
    CHECK_INT(bk_rlp_uint64(&it, &v, &e), BK_ERR);
    CHECK_INT(dec("c0", &it, buf, &e), BK_OK);
    CHECK_INT(bk_rlp_uint64(&it, &v, &e), BK_ERR);
    CHECK_INT(dec("83646f67", &it, buf, &e), BK_OK);
    CHECK_INT(bk_rlp_list(&it, items, 8, &n, &e), BK_ERR);
}

static void test_roundtrip(void) {
    /* [n, "x"*i, [bytes]] for growing sizes, across the 55/56 boundary. */
    for (size_t sz = 0; sz < 300; sz += 11) {
        uint8_t data[300];
        for (size_t i = 0; i < sz; i++)
            data[i] = (uint8_t)(i * 7 + 1);
        bk_rlp_enc r;
        bk_rlp_enc_init(&r);
        bk_rlp_list_begin(&r);
        bk_rlp_put_uint(&r, sz * 1000003ULL);
        bk_rlp_put_bytes(&r, data, sz);
        bk_rlp_list_begin(&r);
        bk_rlp_put_bytes(&r, data, sz / 2);
        bk_rlp_list_end(&r);
        bk_rlp_list_end(&r);
        uint8_t *out;
        size_t len;
        bk_err e;
        CHECK_INT(bk_rlp_enc_finish(&r, &out, &len, &e), BK_OK);
        bk_rlp_item it, items[4], inner[2];
        size_t n, m;
        uint64_t v = 1;
        CHECK_INT(bk_rlp_decode_all(out, len, &it, &e), BK_OK);
        CHECK_INT(bk_rlp_list(&it, items, 4, &n, &e), BK_OK);
        CHECK_INT(n, 3);
        CHECK_INT(bk_rlp_uint64(&items[0], &v, &e), BK_OK);
        CHECK_INT(v, sz * 1000003ULL);
        CHECK(items[1].len == sz && (sz == 0 || memcmp(items[1].payload, data, sz) == 0),
              "bytes %zu", sz);
        CHECK_INT(bk_rlp_list(&items[2], inner, 2, &m, &e), BK_OK);
        CHECK_INT(m, 1);
        CHECK_INT(inner[0].len, sz / 2);
        /* Every strict prefix is truncated. */
        for (size_t cut = 0; cut < len; cut += 13)
            CHECK_INT(bk_rlp_decode_all(out, cut, &it, &e), BK_ERR);
        free(out);
    }
}

int main(void) {
    test_encode();
    test_decode();
    test_roundtrip();
    return check_done();
}
