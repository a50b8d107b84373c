/* test_ecies.c - ECIES in eth-crypto's format: round trips, refusals, and
 * ciphertexts made by eth-crypto itself (fixtures/ecies/README.md). */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "backup/ecies.h"
#include "chain/ethkey.h"

#define KEY0 "0xac0974bec39a17e36ba4a6b4d238ff944bacb478cbed5efcae784d7bf4f2ff80"
#define KEY1 "0x59c6995e998f97a5a0044966f0945389dc9e86dae88c7a8412f4603b6b78690d"

/* Read a whole file into a malloc'd NUL-terminated buffer; NULL on error. */
static char *slurp(const char *path, size_t *len) {
    FILE *f = fopen(path, "rb");
    if (f == NULL)
        return NULL;
    size_t cap = 1024, n = 0;
    char *buf = malloc(cap);
    while (buf != NULL) {
        size_t r = fread(buf + n, 1, cap - n - 1, f);
        n += r;
        if (r == 0)
            break;
        if (n + 1 == cap) {
            char *nb = realloc(buf, cap * 2);
            if (nb == NULL) {
                free(buf);
                buf = NULL;
                break;
            }
            buf = nb;
            cap *= 2;
        }
    }
    fclose(f);
    if (buf != NULL) {
        buf[n] = '\0';
        if (len != NULL)
            *len = n;
    }
    return buf;
}

static void chomp(char *s) {
    size_t n = strlen(s);
    while (n > 0 && (s[n - 1] == '\n' || s[n - 1] == '\r' || s[n - 1] == ' '))
        s[--n] = '\0';
}

static void round_trip(const bk_eth_key *k, const uint8_t pub[65], const void *msg,
                       size_t len) {
    bk_err e;
    char *hex = NULL;
    CHECK_INT(bk_ecies_encrypt(pub, msg, len, &hex, &e), BK_OK);
    if (hex == NULL)
        return;
    size_t want = 2 * (16 + 33 + 32 + (len / 16 + 1) * 16);
    CHECK_INT(strlen(hex), want);
    /* the compressed ephemeral key after the iv */
    CHECK(hex[32] == '0' && (hex[33] == '2' || hex[33] == '3'), "prefix %.2s", hex + 32);
    void *out = NULL;
    size_t olen = 99;
    CHECK_INT(bk_ecies_decrypt(k, hex, &out, &olen, &e), BK_OK);
    CHECK_INT(olen, len);
    CHECK(out != NULL && (len == 0 || memcmp(out, msg, len) == 0), "plaintext of %zu",
          len);
    CHECK(out != NULL && ((char *)out)[olen] == '\0', "NUL after the plaintext");
    free(out);
    free(hex);
}

/* Flip one hex digit at position pos and expect decryption to fail with a
 * message containing want. */
static void tampered(const bk_eth_key *k, const char *hex, size_t pos, const char *want) {
    char *t = strdup(hex);
    t[pos] = t[pos] == '0' ? '1' : '0';
    bk_err e;
    void *out = (void *)1;
    size_t olen = 7;
    CHECK_INT(bk_ecies_decrypt(k, t, &out, &olen, &e), BK_ERR);
    CHECK(strstr(e.msg, want) != NULL, "pos %zu: msg '%s', want '%s'", pos, e.msg, want);
    CHECK(out == NULL && olen == 0, "outputs cleared on error");
    free(t);
}

int main(void) {
    bk_err e;
    bk_eth_key k0, k1;
    uint8_t pub0[65], pub1[65];
    CHECK_INT(bk_eth_key_from_hex(KEY0, &k0, &e), BK_OK);
    CHECK_INT(bk_eth_key_from_hex(KEY1, &k1, &e), BK_OK);
    CHECK_INT(bk_eth_pubkey(&k0, pub0, &e), BK_OK);
    CHECK_INT(bk_eth_pubkey(&k1, pub1, &e), BK_OK);

    /* round trips: empty, short, exactly one block, binary and larger */
    round_trip(&k0, pub0, "", 0);
    round_trip(&k0, pub0, "hello", 5);
    round_trip(&k0, pub0, "0123456789abcdef", 16);
    size_t big = 100000;
    uint8_t *bin = malloc(big);
    for (size_t i = 0; i < big; i++)
        bin[i] = (uint8_t)(i * 131 + 7);
    round_trip(&k1, pub1, bin, big);
    free(bin);

    /* two encryptions of the same text differ (random ephemeral key, iv) */
    char *h1 = NULL, *h2 = NULL;
    const char *text = "{\"version\":2}";
    CHECK_INT(bk_ecies_encrypt(pub0, text, strlen(text), &h1, &e), BK_OK);
    CHECK_INT(bk_ecies_encrypt(pub0, text, strlen(text), &h2, &e), BK_OK);
    CHECK(h1 && h2 && strcmp(h1, h2) != 0, "fresh randomness each time");

    /* a bad mac: tampered iv, mac or ciphertext, or the wrong key */
    size_t n = strlen(h1);
    tampered(&k0, h1, 0, "bad mac");                 /* iv */
    tampered(&k0, h1, 2 * (16 + 33) + 5, "bad mac"); /* mac */
    tampered(&k0, h1, n - 1, "bad mac");             /* ciphertext */
    void *out = NULL;
    size_t olen = 0;
    CHECK_INT(bk_ecies_decrypt(&k1, h1, &out, &olen, &e), BK_ERR);
    CHECK_STR(e.msg, "ecies: bad mac (wrong key or tampered ciphertext)");
    CHECK_INT(e.code, BK_E_INVAL);
    CHECK(out == NULL, "no output for a wrong key");

    /* an ephemeral key that is not a point (prefix 05) */
    {
        char *t = strdup(h1);
        t[33] = '5';
        CHECK_INT(bk_ecies_decrypt(&k0, t, &out, &olen, &e), BK_ERR);
        CHECK_STR(e.msg, "ecies: ephemeral public key is not a point");
        free(t);
    }
    /* malformed text */
    CHECK_INT(bk_ecies_decrypt(&k0, "xyz", &out, &olen, &e), BK_ERR);
    CHECK_STR(e.msg, "ecies: ciphertext is not hex");
    CHECK_INT(bk_ecies_decrypt(&k0, "00ff", &out, &olen, &e), BK_ERR);
    CHECK_STR(e.msg, "ecies: ciphertext too short (2 bytes, need >= 97)");
    {
        size_t tl = n + 3;
        char *t = malloc(tl);
        snprintf(t, tl, "%s00", h1); /* one byte past a whole block */
        CHECK_INT(bk_ecies_decrypt(&k0, t, &out, &olen, &e), BK_ERR);
        CHECK(strstr(e.msg, "not a whole number of aes blocks") != NULL, "msg: %s",
              e.msg);
        free(t);
    }
    /* the optional 0x prefix */
    {
        size_t tl = n + 3;
        char *t = malloc(tl);
        snprintf(t, tl, "0x%s", h1);
        CHECK_INT(bk_ecies_decrypt(&k0, t, &out, &olen, &e), BK_OK);
        CHECK(out != NULL && olen == strlen(text) && memcmp(out, text, olen) == 0,
              "0x-prefixed ciphertext");
        free(out);
        free(t);
    }
    free(h1);
    free(h2);

    /* a recipient key that is not a point */
    {
        uint8_t bad[65];
        memcpy(bad, pub0, 65);
        bad[64] ^= 1;
        char *h = (char *)1;
        CHECK_INT(bk_ecies_encrypt(bad, "x", 1, &h, &e), BK_ERR);
        CHECK_STR(e.msg, "ecies: recipient public key is not a point");
        CHECK(h == NULL, "no output");
        memcpy(bad, pub0, 65);
        bad[0] = 0x06; /* hybrid encoding: not what eth-crypto gives */
        CHECK_INT(bk_ecies_encrypt(bad, "x", 1, &h, &e), BK_ERR);
    }

    /* ciphertexts made by eth-crypto (fixtures/ecies/make.sh) */
    {
        size_t mlen = 0;
        char *want = slurp("fixtures/ecies/message.txt", &mlen);
        char *hex = slurp("fixtures/ecies/ethcrypto_message.hex", NULL);
        CHECK(want != NULL && hex != NULL, "fixtures readable");
        if (want != NULL && hex != NULL) {
            chomp(hex);
            CHECK_INT(bk_ecies_decrypt(&k0, hex, &out, &olen, &e), BK_OK);
            CHECK_INT(olen, mlen);
            CHECK(out != NULL && memcmp(out, want, mlen) == 0, "eth-crypto plaintext");
            free(out);
            out = NULL;
            CHECK_INT(bk_ecies_decrypt(&k1, hex, &out, &olen, &e), BK_ERR);
            CHECK_STR(e.msg, "ecies: bad mac (wrong key or tampered ciphertext)");
            tampered(&k0, hex, strlen(hex) - 3, "bad mac");
        }
        free(want);
        free(hex);
        hex = slurp("fixtures/ecies/ethcrypto_empty.hex", NULL);
        CHECK(hex != NULL, "empty fixture readable");
        if (hex != NULL) {
            chomp(hex);
            CHECK_INT(bk_ecies_decrypt(&k0, hex, &out, &olen, &e), BK_OK);
            CHECK_INT(olen, 0);
            free(out);
        }
        free(hex);
    }

    bk_eth_key_clear(&k0);
    bk_eth_key_clear(&k1);
    return check_done();
}
