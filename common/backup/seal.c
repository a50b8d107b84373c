/* seal.c - the snapshot envelope: zlib, then AES-256-GCM; see seal.h. */
#include "backup/seal.h"

#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/rand.h>
#include <zlib.h>

#include "base/clock.h"
#include "base/hex.h"

#define OFF_VERSION 8
#define OFF_COMPRESSION 9
#define OFF_RESERVED 10
#define OFF_PLAIN_LEN 12
#define OFF_NONCE 20
#define OFF_KCV 32
#define OFF_TAG 48
#define NONCE_LEN 12
#define KCV_LEN 16
#define TAG_LEN 16
#define AAD_LEN OFF_TAG
#define COMPRESSION_ZLIB 1
#define KCV_LABEL "BR2KSEAL key check v1"
/* EVP takes int lengths: feed it in chunks. */
#define CHUNK ((size_t)1 << 30)

int bk_sha256_hex(const void *data, size_t len, char out[65], bk_err *e) {
    uint8_t d[32];
    unsigned int n = 0;
    if (EVP_Digest(data, len, d, &n, EVP_sha256(), NULL) != 1 || n != 32) {
        out[0] = '\0';
        return bk_err_set(e, BK_E_IO, "sha-256 failed");
    }
    bk_hex_encode(d, 32, 0, out);
    return BK_OK;
}

static int key_check(const uint8_t key[32], uint8_t kcv[KCV_LEN], bk_err *e) {
    uint8_t mac[32];
    unsigned int n = 0;
    if (HMAC(EVP_sha256(), key, 32, (const unsigned char *)KCV_LABEL,
             sizeof(KCV_LABEL) - 1, mac, &n) == NULL ||
        n != 32)
        return bk_err_set(e, BK_E_IO, "seal: hmac-sha256 failed");
    memcpy(kcv, mac, KCV_LEN);
    return BK_OK;
}

static void put_be64(uint8_t *p, uint64_t v) {
    for (int i = 7; i >= 0; i--) {
        p[i] = (uint8_t)(v & 0xff);
        v >>= 8;
    }
}

static uint64_t get_be64(const uint8_t *p) {
    uint64_t v = 0;
    for (int i = 0; i < 8; i++)
        v = (v << 8) | p[i];
    return v;
}

/* AES-256-GCM over n bytes of in into out (same length), with the header
 * as additional data. enc: the tag is written to tag; decrypt: the tag is
 * checked (returns 1 on a mismatch, -1 on an OpenSSL failure, 0 if good). */
static int gcm(int enc, const uint8_t key[32], const uint8_t *hdr, const uint8_t *in,
               size_t n, uint8_t *out, uint8_t tag[TAG_LEN]) {
    EVP_CIPHER_CTX *c = EVP_CIPHER_CTX_new();
    if (c == NULL)
        return -1;
    int rc = -1, l = 0;
    if (EVP_CipherInit_ex(c, EVP_aes_256_gcm(), NULL, NULL, NULL, enc) != 1 ||
        EVP_CIPHER_CTX_ctrl(c, EVP_CTRL_GCM_SET_IVLEN, NONCE_LEN, NULL) != 1 ||
        EVP_CipherInit_ex(c, NULL, NULL, key, hdr + OFF_NONCE, enc) != 1 ||
        EVP_CipherUpdate(c, NULL, &l, hdr, AAD_LEN) != 1)
        goto done;
    for (size_t off = 0; off < n;) {
        size_t m = n - off < CHUNK ? n - off : CHUNK;
        if (EVP_CipherUpdate(c, out + off, &l, in + off, (int)m) != 1)
            goto done;
        off += m;
    }
    if (enc) {
        if (EVP_CipherFinal_ex(c, out + n, &l) != 1 ||
            EVP_CIPHER_CTX_ctrl(c, EVP_CTRL_GCM_GET_TAG, TAG_LEN, tag) != 1)
            goto done;
        rc = 0;
    } else {
        if (EVP_CIPHER_CTX_ctrl(c, EVP_CTRL_GCM_SET_TAG, TAG_LEN, tag) != 1)
            goto done;
        rc = EVP_CipherFinal_ex(c, out + n, &l) == 1 ? 0 : 1;
    }
done:
    EVP_CIPHER_CTX_free(c);
    return rc;
}

int bk_seal(const void *plain, size_t len, uint8_t key_out[32], void **sealed,
            size_t *sealed_len, char sha256_hex[65], bk_err *e) {
    *sealed = NULL;
    *sealed_len = 0;
    sha256_hex[0] = '\0';
    static const uint8_t empty = 0;
    if (plain == NULL)
        plain = &empty;

    uLongf zcap = compressBound((uLong)len);
    uint8_t *z = malloc(zcap > 0 ? zcap : 1);
    if (z == NULL)
        return bk_err_set(e, BK_E_NOMEM, "seal: out of memory (%zu bytes)", len);
    uLongf zlen = zcap;
    int zr = compress2(z, &zlen, plain, (uLong)len, BK_SEAL_ZLEVEL);
    if (zr != Z_OK) {
        OPENSSL_cleanse(z, zcap);
        free(z);
        return bk_err_set(e, BK_E_IO, "seal: zlib compress failed (%s)", zError(zr));
    }

    int rc = BK_ERR;
    size_t total = BK_SEAL_HEADER_LEN + (size_t)zlen;
    uint8_t *out = malloc(total);
    if (out == NULL) {
        bk_err_set(e, BK_E_NOMEM, "seal: out of memory (%zu bytes)", total);
        goto done;
    }
    memset(out, 0, BK_SEAL_HEADER_LEN);
    memcpy(out, BK_SEAL_MAGIC, 8);
    out[OFF_VERSION] = BK_SEAL_VERSION;
    out[OFF_COMPRESSION] = COMPRESSION_ZLIB;
    put_be64(out + OFF_PLAIN_LEN, (uint64_t)len);
    if (RAND_bytes(key_out, BK_SEAL_KEY_LEN) != 1 ||
        RAND_bytes(out + OFF_NONCE, NONCE_LEN) != 1) {
        bk_err_set(e, BK_E_IO, "seal: no randomness for the data key and nonce");
        goto done;
    }
    if (key_check(key_out, out + OFF_KCV, e) != BK_OK)
        goto done;
    if (gcm(1, key_out, out, z, (size_t)zlen, out + BK_SEAL_HEADER_LEN, out + OFF_TAG) !=
        0) {
        bk_err_set(e, BK_E_IO, "seal: aes-256-gcm encryption failed");
        goto done;
    }
    if (bk_sha256_hex(out, total, sha256_hex, e) != BK_OK)
        goto done;
    *sealed = out;
    *sealed_len = total;
    out = NULL;
    rc = BK_OK;
done:
    OPENSSL_cleanse(z, zcap);
    free(z);
    free(out);
    if (rc != BK_OK)
        OPENSSL_cleanse(key_out, BK_SEAL_KEY_LEN);
    return rc;
}

/* 64 hex digits, any case. */
static int is_sha256_hex(const char *s) {
    size_t i = 0;
    for (; s[i] != '\0'; i++)
        if (i >= 64 || bk_hex_digit((unsigned char)s[i]) < 0)
            return 0;
    return i == 64;
}

int bk_unseal(const uint8_t key[32], const void *sealed, size_t len,
              const char *expect_sha256_hex, void **plain, size_t *plain_len, bk_err *e) {
    return bk_unseal_ex(key, sealed, len, expect_sha256_hex, plain, plain_len, NULL, e);
}

int bk_unseal_ex(const uint8_t key[32], const void *sealed, size_t len,
                 const char *expect_sha256_hex, void **plain, size_t *plain_len,
                 bk_unseal_stats *stats, bk_err *e) {
    bk_unseal_stats st0;
    if (stats == NULL)
        stats = &st0;
    memset(stats, 0, sizeof(*stats));
    double t = bk_mono_msf();
    *plain = NULL;
    *plain_len = 0;
    const uint8_t *s = sealed;

    if (expect_sha256_hex != NULL) {
        if (!is_sha256_hex(expect_sha256_hex))
            return bk_err_set(e, BK_E_INVAL,
                              "seal: expected digest '%.80s' is not 64 hex digits",
                              expect_sha256_hex);
        char got[65];
        if (bk_sha256_hex(s, len, got, e) != BK_OK)
            return BK_ERR;
        stats->verify_ms = bk_mono_msf() - t;
        if (strcasecmp(got, expect_sha256_hex) != 0)
            return bk_err_set(e, BK_E_INVAL,
                              "seal: digest mismatch: object has sha256 %s, expected %s",
                              got, expect_sha256_hex);
    }
    if (len < BK_SEAL_HEADER_LEN)
        return bk_err_set(e, BK_E_INVAL, "seal: truncated header (%zu bytes, need %d)",
                          len, BK_SEAL_HEADER_LEN);
    if (memcmp(s, BK_SEAL_MAGIC, 8) != 0)
        return bk_err_set(e, BK_E_INVAL, "seal: not a sealed object (bad magic)");
    if (s[OFF_VERSION] != BK_SEAL_VERSION)
        return bk_err_set(e, BK_E_INVAL, "seal: unsupported format version %u",
                          (unsigned)s[OFF_VERSION]);
    if (s[OFF_COMPRESSION] != COMPRESSION_ZLIB)
        return bk_err_set(e, BK_E_INVAL, "seal: unsupported compression %u",
                          (unsigned)s[OFF_COMPRESSION]);
    if (s[OFF_RESERVED] != 0 || s[OFF_RESERVED + 1] != 0)
        return bk_err_set(e, BK_E_INVAL, "seal: reserved header bytes are not zero");

    uint8_t kcv[KCV_LEN];
    if (key_check(key, kcv, e) != BK_OK)
        return BK_ERR;
    if (CRYPTO_memcmp(kcv, s + OFF_KCV, KCV_LEN) != 0)
        return bk_err_set(e, BK_E_INVAL, "seal: wrong key (key check does not match)");

    uint64_t want = get_be64(s + OFF_PLAIN_LEN);
    if (want > (uint64_t)SIZE_MAX - 1 || want > (uint64_t)(uLong)-1)
        return bk_err_set(e, BK_E_INVAL, "seal: plaintext length %llu too large",
                          (unsigned long long)want);
    size_t zlen = len - BK_SEAL_HEADER_LEN;
    uint8_t *z = malloc(zlen > 0 ? zlen : 1), *out = NULL;
    if (z == NULL)
        return bk_err_set(e, BK_E_NOMEM, "seal: out of memory (%zu bytes)", zlen);
    int rc = BK_ERR;
    uint8_t tag[TAG_LEN];
    memcpy(tag, s + OFF_TAG, TAG_LEN);
    t = bk_mono_msf();
    int g = gcm(0, key, s, s + BK_SEAL_HEADER_LEN, zlen, z, tag);
    stats->decrypt_ms = bk_mono_msf() - t;
    if (g < 0) {
        bk_err_set(e, BK_E_IO, "seal: aes-256-gcm decryption failed");
        goto done;
    }
    if (g > 0) {
        bk_err_set(e, BK_E_INVAL,
                   "seal: authentication tag mismatch (object corrupted or tampered)");
        goto done;
    }
    out = malloc((size_t)want + 1);
    if (out == NULL) {
        bk_err_set(e, BK_E_NOMEM, "seal: out of memory (%llu bytes)",
                   (unsigned long long)want);
        goto done;
    }
    uLongf olen = (uLongf)want;
    uLong srclen = (uLong)zlen;
    t = bk_mono_msf();
    int zr = uncompress2(out, &olen, z, &srclen);
    stats->decompress_ms = bk_mono_msf() - t;
    if (zr != Z_OK || olen != (uLongf)want || srclen != (uLong)zlen) {
        bk_err_set(e, BK_E_INVAL,
                   "seal: cannot decompress: %s (header says %llu bytes, got %lu)",
                   zr == Z_OK ? "trailing data" : zError(zr), (unsigned long long)want,
                   (unsigned long)olen);
        goto done;
    }
    out[want] = '\0';
    *plain = out;
    *plain_len = (size_t)want;
    out = NULL;
    rc = BK_OK;
done:
    OPENSSL_cleanse(z, zlen > 0 ? zlen : 1);
    free(z);
    if (out != NULL) {
        OPENSSL_cleanse(out, (size_t)want + 1);
        free(out);
    }
    return rc;
}
