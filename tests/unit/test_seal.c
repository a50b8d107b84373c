/* test_seal.c - the snapshot envelope (seal.h): round trips, the object
 * address as sha256sum prints it, and each kind of damage refused with its
 * own message (I8). */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "check.h"
#include "backup/seal.h"

/* Deterministic test data: half compressible text, half noise. */
static uint8_t *make_data(size_t n) {
    uint8_t *p = malloc(n > 0 ? n : 1);
    uint32_t x = 2463534242u;
    for (size_t i = 0; i < n; i++) {
        if ((i / 4096) % 2 == 0) {
            p[i] = (uint8_t)("key-value-state "[i % 16]);
        } else {
            x ^= x << 13;
            x ^= x >> 17;
            x ^= x << 5;
            p[i] = (uint8_t)x;
        }
    }
    return p;
}

/* sha256sum's digest of the bytes, through a temporary file. */
static int sha256sum_of(const void *data, size_t len, char out[65]) {
    char path[] = "/tmp/br2k-test-seal.XXXXXX";
    int fd = mkstemp(path);
    if (fd < 0)
        return -1;
    int ok = write(fd, data, len) == (ssize_t)len;
    close(fd);
    char cmd[128];
    snprintf(cmd, sizeof cmd, "sha256sum %s", path);
    FILE *p = ok ? popen(cmd, "r") : NULL;
    ok = p != NULL && fscanf(p, "%64s", out) == 1;
    if (p != NULL)
        pclose(p);
    unlink(path);
    return ok ? 0 : -1;
}

static void round_trip(size_t n) {
    bk_err e;
    uint8_t *data = make_data(n), key[32];
    void *sealed = NULL, *plain = NULL;
    size_t slen = 0, plen = 1;
    char hex[65], sum[65] = "";
    CHECK_INT(bk_seal(data, n, key, &sealed, &slen, hex, &e), BK_OK);
    CHECK(slen >= BK_SEAL_HEADER_LEN, "sealed %zu bytes", slen);
    CHECK(sealed != NULL && memcmp(sealed, "BR2KSEAL\x01\x01", 10) == 0, "header");
    CHECK_INT(strlen(hex), 64);
    CHECK_INT(sha256sum_of(sealed, slen, sum), 0);
    CHECK_STR(hex, sum);
    CHECK_INT(bk_unseal(key, sealed, slen, hex, &plain, &plen, &e), BK_OK);
    CHECK_INT(plen, n);
    CHECK(plain != NULL && (n == 0 || memcmp(plain, data, n) == 0), "plaintext of %zu",
          n);
    CHECK(plain != NULL && ((char *)plain)[plen] == '\0', "NUL after the plaintext");
    free(plain);
    /* the digest in uppercase is the same digest */
    for (char *c = sum; *c; c++)
        if (*c >= 'a' && *c <= 'f')
            *c = (char)(*c - 'a' + 'A');
    CHECK_INT(bk_unseal(key, sealed, slen, sum, &plain, &plen, &e), BK_OK);
    free(plain);
    free(sealed);
    free(data);
}

/* Unseal and expect failure with message starting with want. */
static void refused(const uint8_t key[32], const uint8_t *s, size_t len,
                    const char *digest, const char *want, int line) {
    bk_err e;
    void *plain = (void *)1;
    size_t plen = 5;
    int rc = bk_unseal(key, s, len, digest, &plain, &plen, &e);
    CHECK(rc == BK_ERR, "line %d: accepted", line);
    if (rc == BK_OK)
        free(plain);
    else
        CHECK(plain == NULL && plen == 0, "line %d: outputs cleared", line);
    CHECK(strncmp(e.msg, want, strlen(want)) == 0, "line %d: got '%s', want '%s...'",
          line, e.msg, want);
    CHECK_INT(e.code, BK_E_INVAL);
}
#define REFUSED(k, s, l, d, w) refused(k, s, l, d, w, __LINE__)

/* A copy of the sealed bytes with byte i xor'ed with x, and its digest. */
static uint8_t *damaged(const uint8_t *s, size_t len, size_t i, uint8_t x, char hex[65]) {
    uint8_t *d = malloc(len);
    memcpy(d, s, len);
    d[i] ^= x;
    bk_sha256_hex(d, len, hex, NULL);
    return d;
}

/* The streamed open (bk_unsealer) fed in pieces of `piece` bytes: the
 * plaintext of bk_unseal, or its error (want != NULL: the message starts
 * with want). */
static void streamed(const uint8_t key[32], const uint8_t *s, size_t len,
                     const char *digest, size_t piece, const uint8_t *plain_want,
                     size_t plain_len, const char *want, int line) {
    bk_err e;
    bk_unsealer *u = NULL;
    CHECK(bk_unsealer_new(key, digest, &u, &e) == BK_OK, "line %d: new: %s", line, e.msg);
    for (size_t off = 0; off < len; off += piece)
        CHECK(bk_unsealer_feed(u, s + off, len - off < piece ? len - off : piece, &e) ==
                  BK_OK,
              "line %d: feed: %s", line, e.msg);
    void *plain = (void *)1;
    size_t plen = 7;
    bk_unseal_stats st;
    int rc = bk_unsealer_finish(u, &plain, &plen, &st, &e);
    bk_unsealer_free(u);
    if (want == NULL) {
        CHECK(rc == BK_OK, "line %d: streamed open: %s", line, e.msg);
        CHECK(rc == BK_OK && plen == plain_len &&
                  (plain_len == 0 || memcmp(plain, plain_want, plain_len) == 0),
              "line %d: the same plaintext in pieces of %zu", line, piece);
        CHECK(rc == BK_OK && ((char *)plain)[plen] == '\0', "line %d: NUL", line);
        if (rc == BK_OK)
            free(plain);
        return;
    }
    CHECK(rc == BK_ERR && plain == NULL && plen == 0, "line %d: refused, outputs cleared",
          line);
    CHECK(strncmp(e.msg, want, strlen(want)) == 0, "line %d: got '%s', want '%s...'",
          line, e.msg, want);
}
#define STREAMED(k, s, l, d, p, pw, pl, w) streamed(k, s, l, d, p, pw, pl, w, __LINE__)

int main(void) {
    bk_err e;
    round_trip(0);
    round_trip(1);
    round_trip(1000);
    round_trip(5 * 1024 * 1024);

    /* fresh key and nonce each time */
    uint8_t k1[32], k2[32];
    void *s1 = NULL, *s2 = NULL;
    size_t l1 = 0, l2 = 0;
    char h1[65], h2[65];
    const char *text = "the state at C: {\"users\": 3}";
    CHECK_INT(bk_seal(text, strlen(text), k1, &s1, &l1, h1, &e), BK_OK);
    CHECK_INT(bk_seal(text, strlen(text), k2, &s2, &l2, h2, &e), BK_OK);
    CHECK(memcmp(k1, k2, 32) != 0, "fresh data keys");
    CHECK(strcmp(h1, h2) != 0, "fresh digests");
    CHECK(memcmp((uint8_t *)s1 + 20, (uint8_t *)s2 + 20, 12) != 0, "fresh nonces");
    CHECK_INT(l1, l2);

    const uint8_t *s = s1;
    char dh[65];
    uint8_t *d;

    /* a digest mismatch: another object's digest, or a damaged object */
    REFUSED(k1, s, l1, h2, "seal: digest mismatch: object has sha256 ");
    d = damaged(s, l1, l1 - 1, 0x01, dh);
    REFUSED(k1, d, l1, h1, "seal: digest mismatch");
    /* the same damage with its own digest (an attacker who also changed the
     * address): the tag refuses it */
    REFUSED(k1, d, l1, dh,
            "seal: authentication tag mismatch (object corrupted or "
            "tampered)");
    REFUSED(k1, d, l1, NULL, "seal: authentication tag mismatch");
    free(d);
    /* a bad expected digest */
    REFUSED(k1, s, l1, "abc", "seal: expected digest 'abc' is not 64 hex digits");
    REFUSED(k1, s, l1, "", "seal: expected digest '' is not 64 hex digits");

    /* a wrong key */
    REFUSED(k2, s, l1, h1, "seal: wrong key (key check does not match)");

    /* a truncated header, with and without the digest of what is left */
    char th[65];
    bk_sha256_hex(s, 40, th, NULL);
    REFUSED(k1, s, 40, th, "seal: truncated header (40 bytes, need 64)");
    REFUSED(k1, s, 0, NULL, "seal: truncated header (0 bytes, need 64)");
    /* a truncated body */
    bk_sha256_hex(s, l1 - 3, th, NULL);
    REFUSED(k1, s, l1 - 3, th, "seal: authentication tag mismatch");

    /* header fields */
    d = damaged(s, l1, 0, 0x20, dh);
    REFUSED(k1, d, l1, dh, "seal: not a sealed object (bad magic)");
    free(d);
    d = damaged(s, l1, 8, 0x03, dh);
    REFUSED(k1, d, l1, dh, "seal: unsupported format version 2");
    free(d);
    d = damaged(s, l1, 9, 0x02, dh);
    REFUSED(k1, d, l1, dh, "seal: unsupported compression 3");
    free(d);
    d = damaged(s, l1, 11, 0x01, dh);
    REFUSED(k1, d, l1, dh, "seal: reserved header bytes are not zero");
    free(d);
    /* the plaintext length, the nonce and the tag are authenticated */
    d = damaged(s, l1, 19, 0x01, dh);
    REFUSED(k1, d, l1, dh, "seal: authentication tag mismatch");
    free(d);
    d = damaged(s, l1, 25, 0x80, dh);
    REFUSED(k1, d, l1, dh, "seal: authentication tag mismatch");
    free(d);
    d = damaged(s, l1, 50, 0x04, dh);
    REFUSED(k1, d, l1, dh, "seal: authentication tag mismatch");
    free(d);
    /* the key check itself damaged: reported as a wrong key (the digest
     * check, done first when the address is known, names the real cause) */
    d = damaged(s, l1, 33, 0x04, dh);
    REFUSED(k1, d, l1, dh, "seal: wrong key");
    REFUSED(k1, d, l1, h1, "seal: digest mismatch");
    free(d);

    /* the original still opens */
    void *plain = NULL;
    size_t plen = 0;
    CHECK_INT(bk_unseal(k1, s, l1, h1, &plain, &plen, &e), BK_OK);
    CHECK(plain != NULL && plen == strlen(text) && memcmp(plain, text, plen) == 0,
          "text");
    free(plain);
    /* NULL plaintext with length 0 */
    void *s3 = NULL;
    size_t l3 = 0;
    char h3[65];
    CHECK_INT(bk_seal(NULL, 0, k2, &s3, &l3, h3, &e), BK_OK);
    CHECK_INT(bk_unseal(k2, s3, l3, h3, &plain, &plen, &e), BK_OK);
    CHECK_INT(plen, 0);
    free(plain);
    free(s3);

    /* streamed, in pieces of any size: the same plaintext, the same errors;
     * at 24 MB the output's pages are also faulted in ahead on a second
     * thread (from 16 MB on), and a failure stops it cleanly */
    static const size_t sizes[] = {3 * 1024 * 1024 + 17, 24 * 1024 * 1024 + 5};
    for (size_t i = 0; i < sizeof(sizes) / sizeof(sizes[0]); i++) {
        size_t n = sizes[i];
        uint8_t *data = make_data(n), key[32];
        void *big = NULL;
        size_t bl = 0;
        char bh[65];
        CHECK_INT(bk_seal(data, n, key, &big, &bl, bh, &e), BK_OK);
        STREAMED(key, big, bl, bh, 1 << 20, data, n, NULL);
        STREAMED(key, big, bl, bh, 4093, data, n, NULL);
        STREAMED(key, big, bl, NULL, bl, data, n, NULL);
        d = damaged(big, bl, bl / 2, 0x10, dh);
        STREAMED(key, d, bl, bh, 65536, NULL, 0, "seal: digest mismatch");
        STREAMED(key, d, bl, dh, 65536, NULL, 0, "seal: authentication tag mismatch");
        free(d);
        d = damaged(big, bl, bl / 3, 0x10, dh);
        STREAMED(key, d, bl, dh, 1 << 20, NULL, 0, "seal: authentication tag mismatch");
        free(d);
        d = damaged(big, bl, 19, 0x01, dh); /* the plaintext length */
        STREAMED(key, d, bl, dh, 7, NULL, 0, "seal: authentication tag mismatch");
        free(d);
        STREAMED(k1, big, bl, bh, 4096, NULL, 0, "seal: wrong key");
        STREAMED(key, big, 40, NULL, 1, NULL, 0, "seal: truncated header (40 bytes");
        free(big);
        free(data);
    }
    STREAMED(k1, s, l1, h1, 1, (const uint8_t *)text, strlen(text), NULL);
    d = damaged(s, l1, 0, 0x20, dh);
    STREAMED(k1, d, l1, dh, 3, NULL, 0, "seal: not a sealed object (bad magic)");
    free(d);

    free(s1);
    free(s2);
    return check_done();
}
