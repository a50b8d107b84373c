/* ethkey.c - Ethereum keys, signatures and addresses with libsecp256k1. */
#include "chain/ethkey.h"

#include <ctype.h>
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/crypto.h>
#include <openssl/rand.h>
#include <secp256k1.h>
#include <secp256k1_recovery.h>

#include "base/hex.h"
#include "chain/keccak.h"

#define KEY_FILE_MAX 4096

static secp256k1_context *sign_ctx;
static pthread_once_t sign_ctx_once = PTHREAD_ONCE_INIT;

/* One signing context for the process, randomised once (side-channel
 * blinding); libsecp256k1 contexts are safe to share for signing. */
static void sign_ctx_make(void) {
    secp256k1_context *c = secp256k1_context_create(SECP256K1_CONTEXT_NONE);
    unsigned char seed[32];
    if (c != NULL && RAND_bytes(seed, sizeof seed) == 1) {
        if (secp256k1_context_randomize(c, seed) != 1) {
            secp256k1_context_destroy(c);
            c = NULL;
        }
    }
    OPENSSL_cleanse(seed, sizeof seed);
    sign_ctx = c;
}

static const secp256k1_context *ctx_sign(void) {
    pthread_once(&sign_ctx_once, sign_ctx_make);
    return sign_ctx;
}

void bk_eth_addr_from_pubkey(const uint8_t pub[65], uint8_t addr[20]) {
    uint8_t h[32];
    bk_keccak256(pub + 1, 64, h);
    memcpy(addr, h + 12, 20);
}

int bk_eth_pubkey(const bk_eth_key *k, uint8_t pub[65], bk_err *e) {
    const secp256k1_context *c = ctx_sign();
    if (c == NULL)
        return bk_err_set(e, BK_E_NOMEM, "secp256k1: cannot create context");
    secp256k1_pubkey pk;
    if (secp256k1_ec_pubkey_create(c, &pk, k->priv) != 1)
        return bk_err_set(e, BK_E_INVAL, "ethereum key: invalid private key");
    size_t len = 65;
    secp256k1_ec_pubkey_serialize(secp256k1_context_static, pub, &len, &pk,
                                  SECP256K1_EC_UNCOMPRESSED);
    return BK_OK;
}

int bk_eth_key_from_hex(const char *hex, bk_eth_key *k, bk_err *e) {
    memset(k, 0, sizeof *k);
    if (bk_hex_decode_exact(hex, k->priv, 32, NULL) != BK_OK) {
        bk_eth_key_clear(k);
        return bk_err_set(e, BK_E_INVAL, "ethereum key: not 32 bytes of hex");
    }
    if (secp256k1_ec_seckey_verify(secp256k1_context_static, k->priv) != 1) {
        bk_eth_key_clear(k);
        return bk_err_set(e, BK_E_INVAL,
                          "ethereum key: scalar is zero or not below the curve order");
    }
    uint8_t pub[65];
    if (bk_eth_pubkey(k, pub, e) != BK_OK) {
        bk_eth_key_clear(k);
        return BK_ERR;
    }
    bk_eth_addr_from_pubkey(pub, k->addr);
    return BK_OK;
}

void bk_eth_key_clear(bk_eth_key *k) {
    if (k != NULL)
        OPENSSL_cleanse(k, sizeof *k);
}

/* Trim whitespace in place from both ends of buf[len]; returns the start. */
static char *trim(char *buf, size_t len) {
    while (len > 0 && isspace((unsigned char)buf[len - 1]))
        len--;
    buf[len] = '\0';
    char *p = buf;
    while (*p != '\0' && isspace((unsigned char)*p))
        p++;
    return p;
}

static int key_from_file(const char *path, bk_eth_key *k, bk_err *e) {
    FILE *f = fopen(path, "r");
    if (f == NULL)
        return bk_err_set(e, BK_E_IO, "cannot open key file '%s': %s", path,
                          strerror(errno));
    char buf[KEY_FILE_MAX + 1];
    size_t n = fread(buf, 1, KEY_FILE_MAX + 1, f);
    int rerr = ferror(f);
    fclose(f);
    int rc;
    if (rerr)
        rc = bk_err_set(e, BK_E_IO, "cannot read key file '%s'", path);
    else if (n > KEY_FILE_MAX)
        rc = bk_err_set(e, BK_E_INVAL, "key file '%s': too large", path);
    else if (bk_eth_key_from_hex(trim(buf, n), k, e) != BK_OK)
        rc = bk_err_prefix(e, "key file '%s'", path);
    else
        rc = BK_OK;
    OPENSSL_cleanse(buf, sizeof buf);
    return rc;
}

int bk_eth_key_load(const char *path_or_empty, const char *env_name, bk_eth_key *k,
                    bk_err *e) {
    memset(k, 0, sizeof *k);
    if (path_or_empty != NULL && path_or_empty[0] != '\0')
        return key_from_file(path_or_empty, k, e);
    const char *v = env_name != NULL ? getenv(env_name) : NULL;
    if (v == NULL || v[0] == '\0')
        return bk_err_set(e, BK_E_NOTFOUND,
                          "no ethereum key: no key file given and '%s' is not set",
                          env_name != NULL ? env_name : "(none)");
    size_t len = strlen(v);
    if (len > KEY_FILE_MAX)
        return bk_err_set(e, BK_E_INVAL, "environment variable '%s': too long", env_name);
    char buf[KEY_FILE_MAX + 1];
    memcpy(buf, v, len);
    int rc = bk_eth_key_from_hex(trim(buf, len), k, e);
    OPENSSL_cleanse(buf, sizeof buf);
    if (rc != BK_OK)
        return bk_err_prefix(e, "environment variable '%s'", env_name);
    return BK_OK;
}

int bk_eth_sign_hash(const bk_eth_key *k, const uint8_t hash[32], uint8_t sig[65],
                     bk_err *e) {
    const secp256k1_context *c = ctx_sign();
    if (c == NULL)
        return bk_err_set(e, BK_E_NOMEM, "secp256k1: cannot create context");
    secp256k1_ecdsa_recoverable_signature rs;
    /* The default nonce function is RFC 6979, and it gives low-s. */
    if (secp256k1_ecdsa_sign_recoverable(c, &rs, hash, k->priv, NULL, NULL) != 1)
        return bk_err_set(e, BK_E_INVAL, "ethereum sign: invalid private key");
    int recid = 0;
    secp256k1_ecdsa_recoverable_signature_serialize_compact(secp256k1_context_static, sig,
                                                            &recid, &rs);
    sig[64] = (uint8_t)recid;
    return BK_OK;
}

int bk_eth_recover(const uint8_t hash[32], const uint8_t sig[65], uint8_t addr[20],
                   bk_err *e) {
    int v = sig[64];
    if (v == 27 || v == 28)
        v -= 27;
    if (v != 0 && v != 1)
        return bk_err_set(e, BK_E_INVAL, "signature: bad recovery id v=%d", sig[64]);
    const secp256k1_context *c = secp256k1_context_static;
    secp256k1_ecdsa_signature plain;
    if (secp256k1_ecdsa_signature_parse_compact(c, &plain, sig) != 1)
        return bk_err_set(e, BK_E_INVAL, "signature: r or s out of range");
    secp256k1_ecdsa_signature norm;
    if (secp256k1_ecdsa_signature_normalize(c, &norm, &plain) != 0)
        return bk_err_set(e, BK_E_INVAL, "signature: high s value (not canonical)");
    secp256k1_ecdsa_recoverable_signature rs;
    if (secp256k1_ecdsa_recoverable_signature_parse_compact(c, &rs, sig, v) != 1)
        return bk_err_set(e, BK_E_INVAL, "signature: r or s out of range");
    secp256k1_pubkey pk;
    if (secp256k1_ecdsa_recover(c, &pk, &rs, hash) != 1)
        return bk_err_set(e, BK_E_INVAL, "signature: no public key recovers from it");
    uint8_t pub[65];
    size_t len = sizeof pub;
    secp256k1_ec_pubkey_serialize(c, pub, &len, &pk, SECP256K1_EC_UNCOMPRESSED);
    bk_eth_addr_from_pubkey(pub, addr);
    return BK_OK;
}

void bk_eth_personal_hash(const void *msg, size_t len, uint8_t hash[32]) {
    char prefix[64];
    int n = snprintf(prefix, sizeof prefix,
                     "\x19"
                     "Ethereum Signed Message:\n%zu",
                     len);
    bk_keccak_ctx c;
    bk_keccak_init(&c);
    bk_keccak_update(&c, prefix, (size_t)n);
    bk_keccak_update(&c, msg, len);
    bk_keccak_final(&c, hash);
}

int bk_eth_personal_sign(const bk_eth_key *k, const void *msg, size_t len,
                         uint8_t sig[65], bk_err *e) {
    uint8_t h[32];
    bk_eth_personal_hash(msg, len, h);
    if (bk_eth_sign_hash(k, h, sig, e) != BK_OK)
        return BK_ERR;
    sig[64] += 27;
    return BK_OK;
}

int bk_eth_personal_recover(const void *msg, size_t len, const char *sig_hex,
                            uint8_t addr[20], bk_err *e) {
    uint8_t sig[65];
    if (bk_hex_decode_exact(sig_hex, sig, sizeof sig, e) != BK_OK)
        return bk_err_prefix(e, "signature");
    uint8_t h[32];
    bk_eth_personal_hash(msg, len, h);
    return bk_eth_recover(h, sig, addr, e);
}

void bk_eth_addr_hex(const uint8_t addr[20], char out[43]) {
    char lower[41];
    bk_hex_encode(addr, 20, 0, lower);
    uint8_t h[32];
    bk_keccak256(lower, 40, h);
    out[0] = '0';
    out[1] = 'x';
    for (int i = 0; i < 40; i++) {
        int nib = (i % 2 == 0) ? h[i / 2] >> 4 : h[i / 2] & 15;
        char ch = lower[i];
        if (ch >= 'a' && ch <= 'f' && nib >= 8)
            ch = (char)(ch - 'a' + 'A');
        out[2 + i] = ch;
    }
    out[42] = '\0';
}

int bk_eth_addr_parse(const char *s, uint8_t addr[20], bk_err *e) {
    if (s == NULL)
        return bk_err_set(e, BK_E_INVAL, "address: missing");
    if (bk_hex_decode_exact(s, addr, 20, NULL) != BK_OK)
        return bk_err_set(e, BK_E_INVAL, "address '%.64s': not 20 bytes of hex", s);
    const char *d = (s[0] == '0' && (s[1] == 'x' || s[1] == 'X')) ? s + 2 : s;
    int has_lower = 0, has_upper = 0;
    for (int i = 0; i < 40; i++) {
        if (d[i] >= 'a' && d[i] <= 'f')
            has_lower = 1;
        if (d[i] >= 'A' && d[i] <= 'F')
            has_upper = 1;
    }
    if (has_lower && has_upper) {
        char want[43];
        bk_eth_addr_hex(addr, want);
        if (memcmp(want + 2, d, 40) != 0)
            return bk_err_set(e, BK_E_INVAL, "address '%s': bad EIP-55 checksum", s);
    }
    return BK_OK;
}
