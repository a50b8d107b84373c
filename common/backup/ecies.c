/* ecies.c - ECIES on secp256k1 as eth-crypto does it; see ecies.h. */
#include "backup/ecies.h"

#include <stdlib.h>
#include <string.h>

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/rand.h>
#include <secp256k1.h>
#include <secp256k1_ecdh.h>

#include "base/hex.h"

#define IV_LEN 16
#define CPUB_LEN 33
#define UPUB_LEN 65
#define MAC_LEN 32
#define HEAD_LEN (IV_LEN + CPUB_LEN + MAC_LEN)
#define BLOCK 16

/* eccrypto/eth-crypto use the raw x coordinate as the shared secret. */
static int ecdh_hash_x(unsigned char *out, const unsigned char *x32,
                       const unsigned char *y32, void *data) {
    (void)y32;
    (void)data;
    memcpy(out, x32, 32);
    return 1;
}

/* keys[0..32) encryption key, keys[32..64) mac key, from SHA-512 of the
 * ECDH x coordinate of priv * pub. */
static int derive_keys(const secp256k1_pubkey *pub, const uint8_t priv[32],
                       uint8_t keys[64], bk_err *e) {
    uint8_t x[32];
    if (secp256k1_ecdh(secp256k1_context_static, x, pub, priv, ecdh_hash_x, NULL) != 1)
        return bk_err_set(e, BK_E_INVAL, "ecies: ecdh failed (invalid key)");
    unsigned int n = 0;
    int ok = EVP_Digest(x, sizeof x, keys, &n, EVP_sha512(), NULL);
    OPENSSL_cleanse(x, sizeof x);
    if (ok != 1 || n != 64)
        return bk_err_set(e, BK_E_IO, "ecies: sha-512 failed");
    return BK_OK;
}

/* HMAC-SHA256(mac_key, iv || upub || ct) into mac. */
static int compute_mac(const uint8_t mac_key[32], const uint8_t iv[IV_LEN],
                       const uint8_t upub[UPUB_LEN], const uint8_t *ct, size_t ct_len,
                       uint8_t mac[MAC_LEN], bk_err *e) {
    size_t n = IV_LEN + UPUB_LEN + ct_len;
    uint8_t *buf = malloc(n);
    if (buf == NULL)
        return bk_err_set(e, BK_E_NOMEM, "ecies: out of memory");
    memcpy(buf, iv, IV_LEN);
    memcpy(buf + IV_LEN, upub, UPUB_LEN);
    if (ct_len > 0)
        memcpy(buf + IV_LEN + UPUB_LEN, ct, ct_len);
    unsigned int mlen = 0;
    const unsigned char *r = HMAC(EVP_sha256(), mac_key, 32, buf, n, mac, &mlen);
    free(buf);
    if (r == NULL || mlen != MAC_LEN)
        return bk_err_set(e, BK_E_IO, "ecies: hmac-sha256 failed");
    return BK_OK;
}

/* AES-256-CBC with PKCS#7 padding, either way. out must hold in_len + 16
 * bytes. */
static int aes_cbc(int enc, const uint8_t key[32], const uint8_t iv[IV_LEN],
                   const uint8_t *in, size_t in_len, uint8_t *out, size_t *out_len,
                   bk_err *e) {
    if (in_len > (size_t)(0x7fffffff - BLOCK))
        return bk_err_set(e, BK_E_INVAL, "ecies: message too long (%zu bytes)", in_len);
    EVP_CIPHER_CTX *c = EVP_CIPHER_CTX_new();
    if (c == NULL)
        return bk_err_set(e, BK_E_NOMEM, "ecies: out of memory");
    int l1 = 0, l2 = 0;
    int ok = EVP_CipherInit_ex(c, EVP_aes_256_cbc(), NULL, key, iv, enc) == 1 &&
             EVP_CipherUpdate(c, out, &l1, in, (int)in_len) == 1 &&
             EVP_CipherFinal_ex(c, out + l1, &l2) == 1;
    EVP_CIPHER_CTX_free(c);
    if (!ok)
        return bk_err_set(e, BK_E_IO, "ecies: aes-256-cbc %s failed",
                          enc ? "encryption" : "decryption (bad padding)");
    *out_len = (size_t)l1 + (size_t)l2;
    return BK_OK;
}

int bk_ecies_encrypt(const uint8_t pub[65], const void *msg, size_t len, char **hex_out,
                     bk_err *e) {
    *hex_out = NULL;
    secp256k1_pubkey rpub;
    if (pub[0] != 0x04 ||
        secp256k1_ec_pubkey_parse(secp256k1_context_static, &rpub, pub, UPUB_LEN) != 1)
        return bk_err_set(e, BK_E_INVAL, "ecies: recipient public key is not a point");
    if (len > (size_t)0x7fffffff - 2 * BLOCK)
        return bk_err_set(e, BK_E_INVAL, "ecies: message too long (%zu bytes)", len);

    bk_eth_key eph;
    memset(&eph, 0, sizeof eph);
    do {
        if (RAND_bytes(eph.priv, sizeof eph.priv) != 1) {
            bk_eth_key_clear(&eph);
            return bk_err_set(e, BK_E_IO, "ecies: no randomness for the ephemeral key");
        }
    } while (secp256k1_ec_seckey_verify(secp256k1_context_static, eph.priv) != 1);

    int rc = BK_ERR;
    uint8_t keys[64], upub[UPUB_LEN], iv[IV_LEN], mac[MAC_LEN];
    uint8_t *out = NULL;
    secp256k1_pubkey epk;
    size_t ct_len = 0, cl = CPUB_LEN;

    if (bk_eth_pubkey(&eph, upub, e) != BK_OK)
        goto done;
    if (derive_keys(&rpub, eph.priv, keys, e) != BK_OK)
        goto done;
    if (RAND_bytes(iv, sizeof iv) != 1) {
        bk_err_set(e, BK_E_IO, "ecies: no randomness for the iv");
        goto done;
    }
    out = malloc(HEAD_LEN + len + BLOCK);
    if (out == NULL) {
        bk_err_set(e, BK_E_NOMEM, "ecies: out of memory");
        goto done;
    }
    if (aes_cbc(1, keys, iv, msg, len, out + HEAD_LEN, &ct_len, e) != BK_OK)
        goto done;
    if (compute_mac(keys + 32, iv, upub, out + HEAD_LEN, ct_len, mac, e) != BK_OK)
        goto done;
    if (secp256k1_ec_pubkey_parse(secp256k1_context_static, &epk, upub, UPUB_LEN) != 1) {
        bk_err_set(e, BK_E_INVAL, "ecies: ephemeral public key is not a point");
        goto done;
    }
    memcpy(out, iv, IV_LEN);
    secp256k1_ec_pubkey_serialize(secp256k1_context_static, out + IV_LEN, &cl, &epk,
                                  SECP256K1_EC_COMPRESSED);
    memcpy(out + IV_LEN + CPUB_LEN, mac, MAC_LEN);
    *hex_out = bk_hex_encode_alloc(out, HEAD_LEN + ct_len, 0);
    if (*hex_out == NULL) {
        bk_err_set(e, BK_E_NOMEM, "ecies: out of memory");
        goto done;
    }
    rc = BK_OK;
done:
    bk_eth_key_clear(&eph);
    OPENSSL_cleanse(keys, sizeof keys);
    if (out != NULL) {
        OPENSSL_cleanse(out, HEAD_LEN + len + BLOCK);
        free(out);
    }
    return rc;
}

int bk_ecies_decrypt(const bk_eth_key *k, const char *hex, void **msg, size_t *len,
                     bk_err *e) {
    *msg = NULL;
    *len = 0;
    uint8_t *raw = NULL, *plain = NULL;
    size_t n = 0;
    if (bk_hex_decode_alloc(hex, &raw, &n, NULL) != BK_OK)
        return bk_err_set(e, BK_E_INVAL, "ecies: ciphertext is not hex");
    int rc = BK_ERR;
    uint8_t keys[64], upub[UPUB_LEN], mac[MAC_LEN];
    secp256k1_pubkey epk;
    size_t ul = UPUB_LEN, ct_len = 0, plen = 0;
    if (n < BK_ECIES_MIN_BYTES) {
        bk_err_set(e, BK_E_INVAL, "ecies: ciphertext too short (%zu bytes, need >= %d)",
                   n, BK_ECIES_MIN_BYTES);
        goto done;
    }
    ct_len = n - HEAD_LEN;
    if (ct_len % BLOCK != 0) {
        bk_err_set(e, BK_E_INVAL,
                   "ecies: ciphertext of %zu bytes is not a whole number of aes blocks",
                   ct_len);
        goto done;
    }
    if (secp256k1_ec_pubkey_parse(secp256k1_context_static, &epk, raw + IV_LEN,
                                  CPUB_LEN) != 1) {
        bk_err_set(e, BK_E_INVAL, "ecies: ephemeral public key is not a point");
        goto done;
    }
    secp256k1_ec_pubkey_serialize(secp256k1_context_static, upub, &ul, &epk,
                                  SECP256K1_EC_UNCOMPRESSED);
    if (derive_keys(&epk, k->priv, keys, e) != BK_OK)
        goto done;
    if (compute_mac(keys + 32, raw, upub, raw + HEAD_LEN, ct_len, mac, e) != BK_OK)
        goto done;
    if (CRYPTO_memcmp(mac, raw + IV_LEN + CPUB_LEN, MAC_LEN) != 0) {
        bk_err_set(e, BK_E_INVAL, "ecies: bad mac (wrong key or tampered ciphertext)");
        goto done;
    }
    plain = malloc(ct_len + BLOCK + 1);
    if (plain == NULL) {
        bk_err_set(e, BK_E_NOMEM, "ecies: out of memory");
        goto done;
    }
    if (aes_cbc(0, keys, raw, raw + HEAD_LEN, ct_len, plain, &plen, e) != BK_OK)
        goto done;
    plain[plen] = '\0';
    *msg = plain;
    *len = plen;
    plain = NULL;
    rc = BK_OK;
done:
    OPENSSL_cleanse(keys, sizeof keys);
    if (plain != NULL) {
        OPENSSL_cleanse(plain, ct_len + BLOCK + 1);
        free(plain);
    }
    free(raw);
    return rc;
}
