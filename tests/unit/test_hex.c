/* test_hex.c - hex encoding and strict decoding. */
#include <stdlib.h>

#include "check.h"
#include "base/hex.h"

int main(void) {
    bk_err e;
    char s[64];
    const uint8_t b[] = {0x00, 0x01, 0xab, 0xff};

    CHECK_INT(bk_hex_encode(b, 4, 0, s), 8);
    CHECK_STR(s, "0001abff");
    CHECK_INT(bk_hex_encode(b, 4, 1, s), 10);
    CHECK_STR(s, "0x0001abff");
    CHECK_INT(bk_hex_encode(b, 0, 1, s), 2);
    CHECK_STR(s, "0x");
    char *a = bk_hex_encode_alloc(b, 2, 1);
    CHECK_STR(a, "0x0001");
    free(a);

    uint8_t out[4];
    CHECK_INT(bk_hex_decode_exact("0x0001ABff", out, 4, &e), BK_OK);
    CHECK(memcmp(out, b, 4) == 0, "decoded bytes");
    CHECK_INT(bk_hex_decode_exact("0001abff", out, 4, &e), BK_OK);
    CHECK_INT(bk_hex_decode_exact("0X0001abff", out, 4, &e), BK_OK);
    CHECK_INT(bk_hex_decode_exact("0001abf", out, 4, &e), BK_ERR);
    CHECK_INT(bk_hex_decode_exact("0001ab", out, 4, &e), BK_ERR);
    CHECK(strstr(e.msg, "want 4 bytes") != NULL, "msg: %s", e.msg);
    CHECK_INT(bk_hex_decode_exact("0001abfg", out, 4, &e), BK_ERR);
    CHECK(strstr(e.msg, "bad digit") != NULL, "msg: %s", e.msg);
    CHECK_INT(e.code, BK_E_INVAL);
    CHECK_INT(bk_hex_decode_exact(" 001abff", out, 4, &e), BK_ERR);
    CHECK_INT(bk_hex_decode_exact(NULL, out, 4, &e), BK_ERR);

    uint8_t *p;
    size_t n;
    CHECK_INT(bk_hex_decode_alloc("0x", &p, &n, &e), BK_OK);
    CHECK_INT(n, 0);
    CHECK(p != NULL, "empty decode gives a buffer");
    free(p);
    CHECK_INT(bk_hex_decode_alloc("", &p, &n, &e), BK_OK);
    CHECK_INT(n, 0);
    free(p);
    CHECK_INT(bk_hex_decode_alloc("0xdeadbeef00", &p, &n, &e), BK_OK);
    CHECK_INT(n, 5);
    CHECK_INT(p[0], 0xde);
    CHECK_INT(p[4], 0x00);
    free(p);
    CHECK_INT(bk_hex_decode_alloc("0xdea", &p, &n, &e), BK_ERR);
    CHECK(p == NULL, "no buffer on error");
    CHECK(strstr(e.msg, "odd") != NULL, "msg: %s", e.msg);
    CHECK_INT(bk_hex_decode_alloc("0x0x", &p, &n, &e), BK_ERR);

    size_t got;
    CHECK_INT(bk_hex_decode_n("0xabcdef", 6, out, 4, &got, &e), BK_OK);
    CHECK_INT(got, 2);
    CHECK_INT(bk_hex_decode_n("abcdef0102", 10, out, 4, &got, &e), BK_ERR);
    return check_done();
}
