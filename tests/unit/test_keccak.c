/* test_keccak.c - Keccak-256 against known vectors (values from
 * `cast keccak`, see fixtures/eth/README.md). */
#include <stdlib.h>

#include "check.h"
#include "base/hex.h"
#include "chain/keccak.h"

static const char *kec_hex(const void *data, size_t len) {
    static char s[65];
    uint8_t h[32];
    bk_keccak256(data, len, h);
    bk_hex_encode(h, 32, 0, s);
    return s;
}

int main(void) {
    CHECK_STR(kec_hex("", 0),
              "c5d2460186f7233c927e7db2dcc703c0e500b653ca82273b7bfad8045d85a470");
    CHECK_STR(kec_hex(NULL, 0),
              "c5d2460186f7233c927e7db2dcc703c0e500b653ca82273b7bfad8045d85a470");
    CHECK_STR(kec_hex("abc", 3),
              "4e03657aea45a94fc7d47ba826c8d667c0d1e6e33a64a036ec44f58fa12d6c45");
    /* Not SHA3-256("abc") = 3a985da7...: the padding differs. */

    char a200[200];
    memset(a200, 'a', sizeof a200);
    CHECK_STR(kec_hex(a200, sizeof a200),
              "96ea54061def936c4be90b518992fdc6f12f535068a256229aca54267b4d084d");

    size_t big = 1000000;
    char *m = malloc(big);
    memset(m, 'a', big);
    CHECK_STR(kec_hex(m, big),
              "fadae6b49f129bbb812be8407b7b2894f34aecf6dbd1f9b0f0c7e9853098fc96");

    /* Incremental in uneven pieces (crossing the 136-byte rate) equals
     * one-shot, for lengths around the block boundary. */
    for (size_t len = 0; len < 300; len += 7) {
        for (size_t step = 1; step < 140; step += 45) {
            uint8_t one[32], inc[32];
            bk_keccak256(m, len, one);
            bk_keccak_ctx c;
            bk_keccak_init(&c);
            for (size_t off = 0; off < len; off += step)
                bk_keccak_update(&c, m + off, off + step <= len ? step : len - off);
            bk_keccak_final(&c, inc);
            CHECK(memcmp(one, inc, 32) == 0, "len %zu step %zu", len, step);
        }
    }
    for (size_t len = 134; len <= 138; len++) {
        uint8_t one[32], inc[32];
        bk_keccak256(m, len, one);
        bk_keccak_ctx c;
        bk_keccak_init(&c);
        bk_keccak_update(&c, m, 1);
        bk_keccak_update(&c, NULL, 0);
        bk_keccak_update(&c, m + 1, len - 1);
        bk_keccak_final(&c, inc);
        CHECK(memcmp(one, inc, 32) == 0, "len %zu", len);
    }
    free(m);
    return check_done();
}
