/* seal.c - the snapshot envelope: zlib, then AES-256-GCM; see seal.h. */
#include "backup/seal.h"

#include <pthread.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/mman.h>
#include <unistd.h>

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
    *plain = NULL;
    *plain_len = 0;
    if (stats != NULL)
        memset(stats, 0, sizeof(*stats));
    bk_unsealer *u = NULL;
    if (bk_unsealer_new(key, expect_sha256_hex, &u, e) != BK_OK)
        return BK_ERR;
    int rc = bk_unsealer_feed(u, sealed, len, e);
    if (rc == BK_OK)
        rc = bk_unsealer_finish(u, plain, plain_len, stats, e);
    bk_unsealer_free(u);
    return rc;
}

/* ---- the streamed open (seal.h: bk_unsealer) ---- */

/* Decrypted bytes are inflated in pieces of this size. */
#define PIECE ((size_t)256 << 10)

struct bk_unsealer {
    uint8_t key[BK_SEAL_KEY_LEN];
    char expect[65]; /* "" when the caller checked the digest already */
    EVP_MD_CTX *sha;
    EVP_CIPHER_CTX *gcm;
    z_stream z;
    int z_on;
    uint8_t hdr[BK_SEAL_HEADER_LEN];
    size_t hlen;
    uint64_t want, total;
    uint8_t *out, *piece;
    /* The first problem found while the bytes stream in: reported by
     * bk_unsealer_finish only after the checks that bk_unseal makes
     * before it (the digest, then the header, the key, the tag), so that
     * both say the same thing about the same object. */
    bk_err late, zerr; /* zerr: zlib's, reported after the tag check */
    int late_set, zerr_set, zdone;
    bk_unseal_stats st;
    pthread_t pf; /* prefault_out */
    int pf_on, pf_stop;
};

/* Outputs from this size on get their pages faulted in on a second thread. */
#define PREFAULT_MIN ((size_t)16 << 20)
#define PREFAULT_STEP ((size_t)8 << 20)

/* The output buffer's pages, faulted in ahead of the inflate on a second
 * thread (MADV_POPULATE_WRITE, Linux 5.14: the pages are made present
 * and writable, their content untouched, so the inflate writing the same
 * pages at the same time is fine). The pass runs on one core, and the
 * first touch of fresh memory is expensive (zeroed pages; on a virtual
 * machine the host backs them too): measured here at 0.3-1.3 s for 441
 * MB, beside ~0.8 s of inflate. Best effort: a kernel without it stops at
 * the first refusal, and the inflate faults the pages in as before. */
static void *prefault_out(void *arg) {
#ifdef MADV_POPULATE_WRITE
    bk_unsealer *u = arg;
    long pg = sysconf(_SC_PAGESIZE);
    uintptr_t mask = (uintptr_t)(pg > 0 ? pg : 4096) - 1;
    uintptr_t p = ((uintptr_t)u->out + mask) & ~mask,
              end = ((uintptr_t)u->out + (size_t)u->want + 1) & ~mask;
    while (p < end && !__atomic_load_n(&u->pf_stop, __ATOMIC_RELAXED)) {
        size_t n = end - p < PREFAULT_STEP ? end - p : PREFAULT_STEP;
        if (madvise((void *)p, n, MADV_POPULATE_WRITE) != 0)
            break;
        p += n;
    }
#else
    (void)arg;
#endif
    return NULL;
}

static void prefault_stop(bk_unsealer *u) {
    if (!u->pf_on)
        return;
    __atomic_store_n(&u->pf_stop, 1, __ATOMIC_RELAXED);
    pthread_join(u->pf, NULL);
    u->pf_on = 0;
}

__attribute__((format(printf, 3, 4))) static void late(bk_unsealer *u, int code,
                                                       const char *fmt, ...) {
    if (u->late_set)
        return;
    u->late_set = 1;
    va_list ap;
    va_start(ap, fmt);
    bk_err_clear(&u->late);
    vsnprintf(u->late.msg, sizeof(u->late.msg), fmt, ap);
    va_end(ap);
    u->late.code = code;
}

void bk_unsealer_free(bk_unsealer *u) {
    if (u == NULL)
        return;
    prefault_stop(u);
    EVP_MD_CTX_free(u->sha);
    EVP_CIPHER_CTX_free(u->gcm);
    if (u->z_on)
        inflateEnd(&u->z);
    if (u->out != NULL) {
        OPENSSL_cleanse(u->out, (size_t)u->want + 1);
        free(u->out);
    }
    if (u->piece != NULL) {
        OPENSSL_cleanse(u->piece, PIECE);
        free(u->piece);
    }
    OPENSSL_cleanse(u->key, sizeof(u->key));
    free(u);
}

int bk_unsealer_new(const uint8_t key[32], const char *expect_sha256_hex,
                    bk_unsealer **out, bk_err *e) {
    *out = NULL;
    if (expect_sha256_hex != NULL && !is_sha256_hex(expect_sha256_hex))
        return bk_err_set(e, BK_E_INVAL,
                          "seal: expected digest '%.80s' is not 64 hex digits",
                          expect_sha256_hex);
    bk_unsealer *u = calloc(1, sizeof(*u));
    if (u == NULL)
        return bk_err_set(e, BK_E_NOMEM, "seal: out of memory");
    memcpy(u->key, key, sizeof(u->key));
    if (expect_sha256_hex != NULL)
        memcpy(u->expect, expect_sha256_hex, 65);
    u->sha = EVP_MD_CTX_new();
    u->gcm = EVP_CIPHER_CTX_new();
    u->piece = malloc(PIECE);
    if (u->sha == NULL || u->gcm == NULL || u->piece == NULL) {
        bk_unsealer_free(u);
        return bk_err_set(e, BK_E_NOMEM, "seal: out of memory");
    }
    if (EVP_DigestInit_ex(u->sha, EVP_sha256(), NULL) != 1) {
        bk_unsealer_free(u);
        return bk_err_set(e, BK_E_IO, "sha-256 failed");
    }
    *out = u;
    return BK_OK;
}

/* The header is complete: check it as bk_unseal does, set up GCM and
 * zlib and the output buffer (the header's plaintext length, + 1 NUL). */
static void header_done(bk_unsealer *u) {
    const uint8_t *s = u->hdr;
    if (memcmp(s, BK_SEAL_MAGIC, 8) != 0) {
        late(u, BK_E_INVAL, "seal: not a sealed object (bad magic)");
        return;
    }
    if (s[OFF_VERSION] != BK_SEAL_VERSION) {
        late(u, BK_E_INVAL, "seal: unsupported format version %u",
             (unsigned)s[OFF_VERSION]);
        return;
    }
    if (s[OFF_COMPRESSION] != COMPRESSION_ZLIB) {
        late(u, BK_E_INVAL, "seal: unsupported compression %u",
             (unsigned)s[OFF_COMPRESSION]);
        return;
    }
    if (s[OFF_RESERVED] != 0 || s[OFF_RESERVED + 1] != 0) {
        late(u, BK_E_INVAL, "seal: reserved header bytes are not zero");
        return;
    }
    uint8_t kcv[KCV_LEN];
    bk_err ke;
    if (key_check(u->key, kcv, &ke) != BK_OK) {
        late(u, BK_E_IO, "%s", ke.msg);
        return;
    }
    if (CRYPTO_memcmp(kcv, s + OFF_KCV, KCV_LEN) != 0) {
        late(u, BK_E_INVAL, "seal: wrong key (key check does not match)");
        return;
    }
    u->want = get_be64(s + OFF_PLAIN_LEN);
    if (u->want > (uint64_t)SIZE_MAX - 1 || u->want > (uint64_t)(uLong)-1) {
        late(u, BK_E_INVAL, "seal: plaintext length %llu too large",
             (unsigned long long)u->want);
        return;
    }
    int l = 0;
    if (EVP_DecryptInit_ex(u->gcm, EVP_aes_256_gcm(), NULL, NULL, NULL) != 1 ||
        EVP_CIPHER_CTX_ctrl(u->gcm, EVP_CTRL_GCM_SET_IVLEN, NONCE_LEN, NULL) != 1 ||
        EVP_DecryptInit_ex(u->gcm, NULL, NULL, u->key, s + OFF_NONCE) != 1 ||
        EVP_DecryptUpdate(u->gcm, NULL, &l, s, AAD_LEN) != 1) {
        late(u, BK_E_IO, "seal: aes-256-gcm decryption failed");
        return;
    }
    /* the pages are only touched as the plaintext arrives */
    u->out = malloc((size_t)u->want + 1);
    if (u->out == NULL) {
        late(u, BK_E_NOMEM, "seal: out of memory (%llu bytes)",
             (unsigned long long)u->want);
        return;
    }
    if ((size_t)u->want >= PREFAULT_MIN)
        u->pf_on = pthread_create(&u->pf, NULL, prefault_out, u) == 0;
    if (inflateInit(&u->z) != Z_OK) {
        late(u, BK_E_NOMEM, "seal: zlib init failed");
        return;
    }
    u->z_on = 1;
    u->z.next_out = u->out;
    u->z.avail_out = 0;
}

__attribute__((format(printf, 2, 3))) static void zfail(bk_unsealer *u, const char *fmt,
                                                        ...) {
    if (u->zerr_set)
        return;
    u->zerr_set = 1;
    va_list ap;
    va_start(ap, fmt);
    bk_err_clear(&u->zerr);
    vsnprintf(u->zerr.msg, sizeof(u->zerr.msg), fmt, ap);
    va_end(ap);
    u->zerr.code = BK_E_INVAL;
}

/* Inflate n decrypted bytes into the output buffer. */
static void inflate_piece(bk_unsealer *u, const uint8_t *p, size_t n) {
    if (u->zerr_set)
        return;
    if (u->zdone) {
        if (n > 0)
            zfail(u, "seal: cannot decompress: %s (header says %llu bytes, got %llu)",
                  "trailing data", (unsigned long long)u->want,
                  (unsigned long long)u->z.total_out);
        return;
    }
    u->z.next_in = (Bytef *)(uintptr_t)p;
    u->z.avail_in = (uInt)n;
    while (u->z.avail_in > 0) {
        size_t room = (size_t)u->want - (size_t)u->z.total_out;
        u->z.next_out = u->out + u->z.total_out;
        u->z.avail_out = (uInt)(room < CHUNK ? room : CHUNK);
        int zr = inflate(&u->z, Z_NO_FLUSH);
        if (zr == Z_STREAM_END) {
            u->zdone = 1;
            if (u->z.avail_in > 0)
                zfail(u, "seal: cannot decompress: %s (header says %llu bytes, got %llu)",
                      "trailing data", (unsigned long long)u->want,
                      (unsigned long long)u->z.total_out);
            return;
        }
        if (zr == Z_OK)
            continue;
        /* no room left (more than the header said) or a broken stream */
        zfail(u, "seal: cannot decompress: %s (header says %llu bytes, got %llu)",
              zr == Z_BUF_ERROR ? "more data than the header says" : zError(zr),
              (unsigned long long)u->want, (unsigned long long)u->z.total_out);
        return;
    }
}

int bk_unsealer_feed(bk_unsealer *u, const void *data, size_t n, bk_err *e) {
    const uint8_t *p = data;
    double t = bk_mono_msf();
    for (size_t off = 0; off < n;) {
        size_t m = n - off < CHUNK ? n - off : CHUNK;
        if (EVP_DigestUpdate(u->sha, p + off, m) != 1)
            return bk_err_set(e, BK_E_IO, "sha-256 failed");
        off += m;
    }
    u->st.verify_ms += bk_mono_msf() - t;
    u->total += n;
    if (u->hlen < BK_SEAL_HEADER_LEN) {
        size_t m = BK_SEAL_HEADER_LEN - u->hlen < n ? BK_SEAL_HEADER_LEN - u->hlen : n;
        memcpy(u->hdr + u->hlen, p, m);
        u->hlen += m;
        p += m;
        n -= m;
        if (u->hlen == BK_SEAL_HEADER_LEN)
            header_done(u);
    }
    while (n > 0 && !u->late_set) {
        size_t m = n < PIECE ? n : PIECE;
        int l = 0;
        t = bk_mono_msf();
        int ok = EVP_DecryptUpdate(u->gcm, u->piece, &l, p, (int)m) == 1;
        u->st.decrypt_ms += bk_mono_msf() - t;
        if (!ok) {
            late(u, BK_E_IO, "seal: aes-256-gcm decryption failed");
            break;
        }
        t = bk_mono_msf();
        inflate_piece(u, u->piece, (size_t)l);
        u->st.decompress_ms += bk_mono_msf() - t;
        p += m;
        n -= m;
    }
    return BK_OK;
}

int bk_unsealer_finish(bk_unsealer *u, void **plain, size_t *plain_len,
                       bk_unseal_stats *stats, bk_err *e) {
    *plain = NULL;
    *plain_len = 0;
    prefault_stop(u); /* every byte is in: what it did not reach, the inflate did */
    double t = bk_mono_msf();
    uint8_t d[32];
    unsigned int dn = 0;
    if (EVP_DigestFinal_ex(u->sha, d, &dn) != 1 || dn != 32)
        return bk_err_set(e, BK_E_IO, "sha-256 failed");
    u->st.verify_ms += bk_mono_msf() - t;
    if (stats != NULL)
        *stats = u->st;
    if (u->expect[0] != '\0') {
        char got[65];
        bk_hex_encode(d, 32, 0, got);
        if (strcasecmp(got, u->expect) != 0)
            return bk_err_set(e, BK_E_INVAL,
                              "seal: digest mismatch: object has sha256 %s, expected %s",
                              got, u->expect);
    }
    if (u->hlen < BK_SEAL_HEADER_LEN)
        return bk_err_set(e, BK_E_INVAL, "seal: truncated header (%llu bytes, need %d)",
                          (unsigned long long)u->total, BK_SEAL_HEADER_LEN);
    /* a header problem, the key, or a failure before the tag could be read */
    if (u->late_set) {
        *e = u->late;
        return BK_ERR;
    }
    /* the tag covers everything decrypted: checked before any byte counts */
    int l = 0;
    t = bk_mono_msf();
    int good = EVP_CIPHER_CTX_ctrl(u->gcm, EVP_CTRL_GCM_SET_TAG, TAG_LEN,
                                   u->hdr + OFF_TAG) == 1 &&
               EVP_DecryptFinal_ex(u->gcm, u->piece, &l) == 1;
    u->st.decrypt_ms += bk_mono_msf() - t;
    if (stats != NULL)
        *stats = u->st;
    if (!good)
        return bk_err_set(
            e, BK_E_INVAL,
            "seal: authentication tag mismatch (object corrupted or tampered)");
    if (u->zerr_set) {
        *e = u->zerr;
        return BK_ERR;
    }
    if (!u->zdone || u->z.total_out != u->want)
        return bk_err_set(
            e, BK_E_INVAL,
            "seal: cannot decompress: %s (header says %llu bytes, got %llu)",
            u->zdone ? "wrong length" : zError(Z_BUF_ERROR), (unsigned long long)u->want,
            (unsigned long long)u->z.total_out);
    u->out[u->want] = '\0';
    *plain = u->out;
    *plain_len = (size_t)u->want;
    u->out = NULL;
    return BK_OK;
}
