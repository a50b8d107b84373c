/* test_ethkey.c - keys, addresses, signatures; fixtures from cast
 * (fixtures/eth/README.md gives the commands). */
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#include "check.h"
#include "chain/ethkey.h"
#include "base/hex.h"

#define ANVIL0_KEY "0xac0974bec39a17e36ba4a6b4d238ff944bacb478cbed5efcae784d7bf4f2ff80"
#define ANVIL0_ADDR "0xf39Fd6e51aad88F6F4ce6aB8827279cffFb92266"
#define ANVIL0_PUB                                                                       \
    "0x048318535b54105d4a7aae60c08fc45f9687181b4fdfc625bd1a753fa7397fed753547f11ca86966" \
    "4"                                                                                  \
    "6f2f3acb08e31016afac23e630c5d11f59f61fef57b0d2aa5"
#define MSG "hello br2k"
#define ORDER "fffffffffffffffffffffffffffffffebaaedce6af48a03bbfd25e8cd0364141"

/* Read a fixture file into buf, trailing whitespace removed. */
static const char *fixture(const char *path, char *buf, size_t size) {
    FILE *f = fopen(path, "r");
    if (f == NULL) {
        fprintf(stderr, "cannot open fixture '%s'\n", path);
        exit(2);
    }
    size_t n = fread(buf, 1, size - 1, f);
    fclose(f);
    while (n > 0 && (buf[n - 1] == '\n' || buf[n - 1] == ' ' || buf[n - 1] == '\r'))
        n--;
    buf[n] = '\0';
    return buf;
}

static void test_key(void) {
    bk_err e;
    bk_eth_key k;
    char a[43];
    CHECK_INT(bk_eth_key_from_hex(ANVIL0_KEY, &k, &e), BK_OK);
    bk_eth_addr_hex(k.addr, a);
    CHECK_STR(a, ANVIL0_ADDR);
    CHECK_INT(bk_eth_key_from_hex(ANVIL0_KEY + 2, &k, &e), BK_OK);

    uint8_t pub[65];
    char pubhex[135];
    CHECK_INT(bk_eth_pubkey(&k, pub, &e), BK_OK);
    bk_hex_encode(pub, 65, 1, pubhex);
    CHECK_STR(pubhex, ANVIL0_PUB);

    /* Invalid scalars: zero, the curve order, bad hex, wrong length. */
    CHECK_INT(bk_eth_key_from_hex(
                  "0x"
                  "0000000000000000000000000000000000000000000000000000000000000000",
                  &k, &e),
              BK_ERR);
    CHECK(strstr(e.msg, "curve order") != NULL, "msg: %s", e.msg);
    CHECK_INT(bk_eth_key_from_hex(ORDER, &k, &e), BK_ERR);
    CHECK_INT(
        bk_eth_key_from_hex(
            "0xzz0974bec39a17e36ba4a6b4d238ff944bacb478cbed5efcae784d7bf4f2ff80", &k, &e),
        BK_ERR);
    CHECK(strstr(e.msg, "zz") == NULL, "key text must not be in the message: %s", e.msg);
    CHECK_INT(bk_eth_key_from_hex("0xac09", &k, &e), BK_ERR);
    CHECK_INT(e.code, BK_E_INVAL);
}

static void test_load(void) {
    bk_err e;
    bk_eth_key k;
    char a[43];
    char path[] = "/tmp/br2k-test-key.XXXXXX";
    int fd = mkstemp(path);
    CHECK(fd >= 0, "mkstemp");
    const char *text = "  \n" ANVIL0_KEY "\n\n";
    CHECK_INT(write(fd, text, strlen(text)), (long long)strlen(text));
    close(fd);
    CHECK_INT(bk_eth_key_load(path, "BR2K_TEST_NOPE", &k, &e), BK_OK);
    bk_eth_addr_hex(k.addr, a);
    CHECK_STR(a, ANVIL0_ADDR);

    /* A bad key in a file: the message names the file, not the key. */
    FILE *f = fopen(path, "w");
    fputs("ac0974bec39a17e36ba4a6b4d238ff944bacb478cbed5efcae784d7bf4f2ffzz\n", f);
    fclose(f);
    CHECK_INT(bk_eth_key_load(path, NULL, &k, &e), BK_ERR);
    CHECK(strstr(e.msg, path) != NULL, "msg names the file: %s", e.msg);
    CHECK(strstr(e.msg, "ac0974") == NULL, "msg leaks key: %s", e.msg);
    unlink(path);
    CHECK_INT(bk_eth_key_load(path, NULL, &k, &e), BK_ERR);
    CHECK_INT(e.code, BK_E_IO);

    setenv("BR2K_TEST_ETH_KEY", ANVIL0_KEY + 2, 1);
    CHECK_INT(bk_eth_key_load("", "BR2K_TEST_ETH_KEY", &k, &e), BK_OK);
    bk_eth_addr_hex(k.addr, a);
    CHECK_STR(a, ANVIL0_ADDR);
    CHECK_INT(bk_eth_key_load(NULL, "BR2K_TEST_ETH_KEY", &k, &e), BK_OK);
    setenv("BR2K_TEST_ETH_KEY", "ac0974bec39a17e36ba4a6b4", 1);
    CHECK_INT(bk_eth_key_load("", "BR2K_TEST_ETH_KEY", &k, &e), BK_ERR);
    CHECK(strstr(e.msg, "BR2K_TEST_ETH_KEY") != NULL, "msg: %s", e.msg);
    CHECK(strstr(e.msg, "ac0974") == NULL, "msg leaks key: %s", e.msg);
    unsetenv("BR2K_TEST_ETH_KEY");
    CHECK_INT(bk_eth_key_load("", "BR2K_TEST_ETH_KEY", &k, &e), BK_ERR);
    CHECK_INT(e.code, BK_E_NOTFOUND);
    bk_eth_key_clear(&k);
    CHECK_INT(k.priv[0], 0);
}

static void test_sign(void) {
    bk_err e;
    bk_eth_key k;
    char buf[256], a[43];
    bk_eth_key_from_hex(ANVIL0_KEY, &k, &e);

    uint8_t h[32];
    char hh[67];
    bk_eth_personal_hash(MSG, strlen(MSG), h);
    bk_hex_encode(h, 32, 1, hh);
    CHECK_STR(hh, fixture("fixtures/eth/personal_hash.txt", buf, sizeof buf));

    /* cast's signature recovers to the anvil address. */
    const char *cast_sig = fixture("fixtures/eth/personal_sig.txt", buf, sizeof buf);
    uint8_t addr[20];
    CHECK_INT(bk_eth_personal_recover(MSG, strlen(MSG), cast_sig, addr, &e), BK_OK);
    bk_eth_addr_hex(addr, a);
    CHECK_STR(a, ANVIL0_ADDR);

    /* Ours equals cast's (RFC 6979). */
    uint8_t sig[65];
    char sighex[133];
    CHECK_INT(bk_eth_personal_sign(&k, MSG, strlen(MSG), sig, &e), BK_OK);
    bk_hex_encode(sig, 65, 1, sighex);
    CHECK_STR(sighex, cast_sig);

    /* Raw hash signing: v in {0,1}, and recover gives the address. */
    CHECK_INT(bk_eth_sign_hash(&k, h, sig, &e), BK_OK);
    CHECK(sig[64] <= 1, "v=%d", sig[64]);
    CHECK_INT(bk_eth_recover(h, sig, addr, &e), BK_OK);
    CHECK(memcmp(addr, k.addr, 20) == 0, "recovered address");
    CHECK(sig[32] < 0x80, "low s");

    /* Tampered: a changed message or s gives another address or fails. */
    CHECK_INT(bk_eth_personal_recover("hello br2K", 10, cast_sig, addr, &e), BK_OK);
    CHECK(memcmp(addr, k.addr, 20) != 0, "other message recovers another address");
    uint8_t bad[65];
    memcpy(bad, sig, 65);
    bad[40] ^= 0x01;
    if (bk_eth_recover(h, bad, addr, &e) == BK_OK)
        CHECK(memcmp(addr, k.addr, 20) != 0, "tampered s recovers another address");
    else
        CHECK(1, "tampered s fails");

    /* Bad v; high s (n - s) is refused; r = 0 is refused. */
    memcpy(bad, sig, 65);
    bad[64] = 2;
    CHECK_INT(bk_eth_recover(h, bad, addr, &e), BK_ERR);
    CHECK(strstr(e.msg, "recovery id") != NULL, "msg: %s", e.msg);
    bad[64] = 28;
    CHECK_INT(bk_eth_recover(h, bad, addr, &e), BK_OK);
    uint8_t order[32];
    bk_hex_decode_exact(ORDER, order, 32, &e);
    memcpy(bad, sig, 65);
    int borrow = 0;
    for (int i = 31; i >= 0; i--) {
        int d = order[i] - sig[32 + i] - borrow;
        borrow = d < 0;
        bad[32 + i] = (uint8_t)(d + (borrow ? 256 : 0));
    }
    bad[64] ^= 1;
    CHECK_INT(bk_eth_recover(h, bad, addr, &e), BK_ERR);
    CHECK(strstr(e.msg, "high s") != NULL, "msg: %s", e.msg);
    memset(bad, 0, 64);
    bad[64] = 0;
    CHECK_INT(bk_eth_recover(h, bad, addr, &e), BK_ERR);

    CHECK_INT(bk_eth_personal_recover(MSG, strlen(MSG), "0x1234", addr, &e), BK_ERR);
    CHECK(strstr(e.msg, "signature") != NULL, "msg: %s", e.msg);
}

static void test_addr(void) {
    bk_err e;
    uint8_t addr[20];
    char a[43];
    CHECK_INT(bk_eth_addr_parse("0x5aaeb6053f3e94c9b9a09f33669435e7ef1beaed", addr, &e),
              BK_OK);
    bk_eth_addr_hex(addr, a);
    CHECK_STR(a, "0x5aAeb6053F3E94C9b9A09f33669435E7Ef1BeAed");
    CHECK_INT(bk_eth_addr_parse("0xfB6916095ca1df60bB79Ce92cE3Ea74c37c5d359", addr, &e),
              BK_OK);
    bk_eth_addr_hex(addr, a);
    CHECK_STR(a, "0xfB6916095ca1df60bB79Ce92cE3Ea74c37c5d359");
    CHECK_INT(bk_eth_addr_parse("0xFB6916095CA1DF60BB79CE92CE3EA74C37C5D359", addr, &e),
              BK_OK);
    CHECK_INT(bk_eth_addr_parse("fb6916095ca1df60bb79ce92ce3ea74c37c5d359", addr, &e),
              BK_OK);
    /* Mixed case with a wrong checksum. */
    CHECK_INT(bk_eth_addr_parse("0xFb6916095ca1df60bB79Ce92cE3Ea74c37c5d359", addr, &e),
              BK_ERR);
    CHECK(strstr(e.msg, "checksum") != NULL, "msg: %s", e.msg);
    CHECK_INT(bk_eth_addr_parse("0xfb6916095ca1df60bb79ce92ce3ea74c37c5d3", addr, &e),
              BK_ERR);
    CHECK_INT(bk_eth_addr_parse("0xfb6916095ca1df60bb79ce92ce3ea74c37c5d35900", addr, &e),
              BK_ERR);
    CHECK_INT(bk_eth_addr_parse(NULL, addr, &e), BK_ERR);
}

int main(void) {
    test_key();
    test_load();
    test_sign();
    test_addr();
    return check_done();
}
