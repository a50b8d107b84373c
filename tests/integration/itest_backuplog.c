/* itest_backuplog.c - the state-backup-log codec (common/backup/backuplog.h) as a
 * filter, for the live interoperability test with eth-crypto
 * (backuplog_ethcrypto.sh, with tests/integration/ethcrypto_log.js).
 *
 *   itest_backuplog sample PUB VERSION DATA_KEY_HEX   > log.json
 *       a complete, valid log of VERSION whose state_data.data_key wraps
 *       DATA_KEY_HEX (the snapshot's a fixed key) to PUB; compact, sorted
 *   itest_backuplog encrypt PUB        < log.json     > cipher-hex
 *   itest_backuplog decrypt KEYFILE    < cipher-hex   > log (compact, sorted)
 *   itest_backuplog wrap PUB DATA_KEY_HEX             > cipher-hex
 *   itest_backuplog unwrap KEYFILE     < cipher-hex   > 64 hex digits
 *   itest_backuplog check              < log.json
 *
 * PUB: the service's public key as bk_service_pub_load takes it (0x04...,
 * or a file). KEYFILE: its private key as bk_service_key_load takes it ("":
 * BR2K_SERVICE_KEY). Exits 1 with "FAIL: <what>: <error>" on stderr. */
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "backup/backuplog.h"
#include "chain/ethkey.h"
#include "base/hex.h"
#include "backup/seal.h"

static void die(const char *what, const bk_err *e) {
    fprintf(stderr, "FAIL: %s: %s\n", what, e != NULL ? e->msg : "");
    exit(1);
}

/* All of stdin, NUL-terminated, trailing whitespace removed. */
static char *read_all(void) {
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
    while (n > 0 && strchr(" \t\r\n", buf[n - 1]) != NULL)
        n--;
    buf[n] = '\0';
    return buf;
}

static json_t *read_json(void) {
    char *text = read_all();
    json_error_t je;
    json_t *j = json_loads(text, JSON_REJECT_DUPLICATES, &je);
    free(text);
    if (j == NULL) {
        bk_err e;
        bk_err_set(&e, BK_E_INVAL, "%s", je.text);
        die("stdin is not JSON", &e);
    }
    return j;
}

static void print_text(const json_t *j) {
    char *text = bk_blog_text(j);
    if (text == NULL)
        die("out of memory", NULL);
    printf("%s\n", text);
    free(text);
}

/* A sealed object's part of the log, data key `key` wrapped to pub. */
static json_t *obj(const char *kind, int64_t version, const uint8_t key[32],
                   const uint8_t pub[65], const char *type, const char *owner,
                   const char *created) {
    bk_err e;
    char seed[64], sha[65], name[128], *wrapped = NULL;
    snprintf(seed, sizeof(seed), "%s-v%lld", kind, (long long)version);
    if (bk_sha256_hex(seed, strlen(seed), sha, &e) != BK_OK ||
        bk_blog_wrap_key(key, pub, &wrapped, &e) != BK_OK)
        die("sample", &e);
    snprintf(name, sizeof(name), "v%08lld-%s-%s", (long long)version, kind, sha);
    json_t *o = json_pack("{ss ss sI sI ss ss ss ss ss}", "object", name, "sha256", sha,
                          "size", (json_int_t)(1000 + version), "plain_size",
                          (json_int_t)(5000 + version), "type", type, "owner", owner,
                          "created", created, "form", "br2k-seal v1 (zlib, AES-256-GCM)",
                          "data_key", wrapped);
    free(wrapped);
    return o;
}

static int sample(const uint8_t pub[65], int64_t version, const char *keyhex) {
    bk_err e;
    uint8_t key[32], store_key[32];
    if (bk_hex_decode_exact(keyhex, key, 32, &e) != BK_OK)
        die("data key", &e);
    memset(store_key, 0x5a, sizeof(store_key));
    char start[32], end[32], created[32], digest[65], record[65];
    int64_t t0 = 1795526401123 + version * 60000;
    bk_blog_time(t0, start);
    bk_blog_time(t0 + 1500 + version, end);
    bk_blog_time(t0 + 900, created);
    if (bk_sha256_hex(start, strlen(start), digest, &e) != BK_OK ||
        bk_sha256_hex(end, strlen(end), record, &e) != BK_OK)
        die("sample", &e);
    json_t *log = json_pack(
        "{ss ss sI ss ss s[sss] s[ss] ss sI sI sI sI ss ss ss so so s{ss ss ss ss}}",
        "format", BK_BLOG_FORMAT, "service", "default", "version", (json_int_t)version,
        "start", start, "end", end, "members", "w1", "w2", "w3", "alive_members", "w1",
        "w3", "subject", "w1", "epoch", (json_int_t)(version + 1), "cut_offset",
        (json_int_t)(version * 1000 - 1), "previous_cut_offset",
        (json_int_t)(version * 1000 - 1001), "log_first_offset",
        (json_int_t)(version * 1000 - 1000), "app", "infodid", "state_digest", digest,
        "record_digest", record, "state_data",
        obj("state", version, key, pub, "infodid-snapshot", "w1", created), "snapshot",
        obj("store", version, store_key, pub, "br2k-store-snapshot", "br2k-backupd",
            created),
        "storage", "url", "file:///var/lib/br2k/backups", "kind", "file", "auth", "none",
        "form",
        "immutable objects, sealed (zlib + AES-256-GCM), named "
        "v<version>-<kind>-<sha256>");
    if (log == NULL)
        die("sample: out of memory", NULL);
    json_object_set_new(json_object_get(log, "storage"), "note",
                        json_string("\xc3\xbcn\xc3\xaf"
                                    "code \xe2\x9c\x93"));
    if (bk_blog_check(log, &e) != BK_OK)
        die("sample check", &e);
    print_text(log);
    json_decref(log);
    return 0;
}

int main(int argc, char **argv) {
    bk_err e;
    bk_err_clear(&e);
    const char *op = argc > 1 ? argv[1] : "";
    uint8_t pub[65];
    bk_eth_key k;
    if (strcmp(op, "sample") == 0 && argc == 5) {
        if (bk_service_pub_load(argv[2], pub, &e) != BK_OK)
            die("public key", &e);
        return sample(pub, strtoll(argv[3], NULL, 10), argv[4]);
    }
    if (strcmp(op, "encrypt") == 0 && argc == 3) {
        char *hex = NULL;
        json_t *log = read_json();
        if (bk_service_pub_load(argv[2], pub, &e) != BK_OK)
            die("public key", &e);
        if (bk_blog_encrypt(log, pub, &hex, &e) != BK_OK)
            die("encrypt", &e);
        printf("%s\n", hex);
        free(hex);
        json_decref(log);
        return 0;
    }
    if (strcmp(op, "wrap") == 0 && argc == 4) {
        uint8_t key[32];
        char *hex = NULL;
        if (bk_service_pub_load(argv[2], pub, &e) != BK_OK)
            die("public key", &e);
        if (bk_hex_decode_exact(argv[3], key, 32, &e) != BK_OK)
            die("data key", &e);
        if (bk_blog_wrap_key(key, pub, &hex, &e) != BK_OK)
            die("wrap", &e);
        printf("%s\n", hex);
        free(hex);
        return 0;
    }
    if ((strcmp(op, "decrypt") == 0 || strcmp(op, "unwrap") == 0) && argc == 3) {
        if (bk_service_key_load(argv[2], &k, &e) != BK_OK)
            die("service key", &e);
        char *hex = read_all();
        if (op[0] == 'd') {
            json_t *log = NULL;
            if (bk_blog_decrypt(hex, &k, &log, &e) != BK_OK)
                die("decrypt", &e);
            print_text(log);
            json_decref(log);
        } else {
            uint8_t key[32];
            char kh[65];
            if (bk_blog_unwrap_key(hex, &k, key, &e) != BK_OK)
                die("unwrap", &e);
            bk_hex_encode(key, 32, 0, kh);
            printf("%s\n", kh);
        }
        free(hex);
        bk_eth_key_clear(&k);
        return 0;
    }
    if (strcmp(op, "check") == 0 && argc == 2) {
        json_t *log = read_json();
        if (bk_blog_check(log, &e) != BK_OK)
            die("check", &e);
        json_decref(log);
        printf("ok\n");
        return 0;
    }
    fprintf(stderr, "usage: itest_backuplog sample PUB VERSION KEYHEX | encrypt PUB | "
                    "decrypt KEYFILE | wrap PUB KEYHEX | unwrap KEYFILE | check\n");
    return 2;
}
