/* itest_ecies.c - our ECIES (common/backup/ecies.c) as a filter, for the live
 * interoperability test with eth-crypto (ecies_ethcrypto.sh).
 *
 * usage: itest_ecies encrypt   < plaintext  > ciphertext-hex
 *        itest_ecies decrypt   < ciphertext-hex > plaintext
 * The key comes from the environment variable ITEST_ECIES_KEY (hex private
 * key; encrypt uses its public key). Exits 1 with the error on stderr. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "backup/ecies.h"
#include "chain/ethkey.h"

static void die(const char *what, const bk_err *e) {
    fprintf(stderr, "FAIL: %s: %s\n", what, e != NULL ? e->msg : "");
    exit(1);
}

/* All of stdin, NUL-terminated, in a malloc'd buffer. */
static char *read_all(size_t *len) {
    size_t cap = 4096, n = 0;
    char *buf = malloc(cap);
    if (buf == NULL)
        die("out of memory", NULL);
    for (;;) {
        size_t r = fread(buf + n, 1, cap - n - 1, stdin);
        n += r;
        if (r == 0)
            break;
        if (n + 1 == cap) {
            char *nb = realloc(buf, cap * 2);
            if (nb == NULL)
                die("out of memory", NULL);
            buf = nb;
            cap *= 2;
        }
    }
    buf[n] = '\0';
    *len = n;
    return buf;
}

int main(int argc, char **argv) {
    bk_err e;
    bk_eth_key k;
    if (argc != 2)
        die("usage: itest_ecies encrypt|decrypt", NULL);
    if (bk_eth_key_load("", "ITEST_ECIES_KEY", &k, &e) != BK_OK)
        die("key", &e);
    size_t len = 0;
    char *in = read_all(&len);
    if (strcmp(argv[1], "encrypt") == 0) {
        uint8_t pub[65];
        char *hex = NULL;
        if (bk_eth_pubkey(&k, pub, &e) != BK_OK)
            die("pubkey", &e);
        if (bk_ecies_encrypt(pub, in, len, &hex, &e) != BK_OK)
            die("encrypt", &e);
        printf("%s\n", hex);
        free(hex);
    } else if (strcmp(argv[1], "decrypt") == 0) {
        while (len > 0 && (in[len - 1] == '\n' || in[len - 1] == '\r'))
            in[--len] = '\0';
        void *msg = NULL;
        size_t mlen = 0;
        if (bk_ecies_decrypt(&k, in, &msg, &mlen, &e) != BK_OK)
            die("decrypt", &e);
        fwrite(msg, 1, mlen, stdout);
        free(msg);
    } else {
        die("usage: itest_ecies encrypt|decrypt", NULL);
    }
    free(in);
    bk_eth_key_clear(&k);
    return 0;
}
