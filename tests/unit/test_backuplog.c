/* test_backuplog.c - the state-backup-log codec (common/backup/backuplog.h): the
 * check names every missing or bad field, encrypt/decrypt round trip, a
 * wrong key and a tampered ciphertext are refused, data keys wrap and
 * unwrap, the service key loaders, the time format, and a log that
 * eth-crypto itself encrypted (fixtures/backuplog/README.md); the optional
 * external_state (a log without it, as written before, still decodes), and
 * a sealed object stored and read back through its part of the log. */
#include <jansson.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "backup/backuplog.h"
#include "check.h"
#include "backup/ecies.h"
#include "chain/ethkey.h"
#include "base/hex.h"
#include "backup/storage.h"

#define KEY0 "0xac0974bec39a17e36ba4a6b4d238ff944bacb478cbed5efcae784d7bf4f2ff80"
#define KEY1 "0x59c6995e998f97a5a0044966f0945389dc9e86dae88c7a8412f4603b6b78690d"
/* the uncompressed public key of KEY1 (anvil's second account) */
#define PUB1                                                                             \
    "0x04ba5734d8f7091719471e7f7ed6b9df170dc70cc661ca05e688601ad984f068b0d67351e5f06073" \
    "092499336ab0839ef8a521afd334e53807205fa2f08eec74f4"

static const char *const required[] = {
    "format",
    "service",
    "version",
    "start",
    "end",
    "members",
    "alive_members",
    "subject",
    "epoch",
    "cut_offset",
    "previous_cut_offset",
    "log_first_offset",
    "app",
    "state_digest",
    "record_digest",
    "state_data",
    "state_data.object",
    "state_data.sha256",
    "state_data.size",
    "state_data.plain_size",
    "state_data.type",
    "state_data.owner",
    "state_data.created",
    "state_data.form",
    "state_data.data_key",
    "snapshot",
    "snapshot.object",
    "snapshot.sha256",
    "snapshot.size",
    "snapshot.plain_size",
    "snapshot.type",
    "snapshot.owner",
    "snapshot.created",
    "snapshot.form",
    "snapshot.data_key",
    "storage",
    "storage.url",
    "storage.kind",
    "storage.auth",
    "storage.form",
};

static json_t *sealed_obj(const char *kind, const char *sha, const char *type,
                          const char *owner, const uint8_t pub[65]) {
    uint8_t key[32];
    char *wrapped = NULL, name[128];
    for (int i = 0; i < 32; i++)
        key[i] = (uint8_t)(i * 7 + kind[0]);
    bk_err e;
    CHECK(bk_blog_wrap_key(key, pub, &wrapped, &e) == BK_OK, "wrap: %s", e.msg);
    snprintf(name, sizeof(name), "v00000002-%s-%s", kind, sha);
    json_t *o = json_pack("{ss ss si si ss ss ss ss ss}", "object", name, "sha256", sha,
                          "size", 1234, "plain_size", 5678, "type", type, "owner", owner,
                          "created", "2026-11-24T13:20:01.500Z", "form",
                          "br2k-seal v1 (zlib, AES-256-GCM)", "data_key", wrapped);
    free(wrapped);
    return o;
}

static json_t *sample_log(const uint8_t pub[65]) {
    const char *sha1 = "1111111111111111111111111111111111111111111111111111111111111111";
    const char *sha2 = "2222222222222222222222222222222222222222222222222222222222222222";
    return json_pack(
        "{ss ss si ss ss s[sss] s[ss] ss si si si si ss ss ss so so s{ss ss ss ss}}",
        "format", "br2k.state-backup-log.v1", "service", "default", "version", 2, "start",
        "2026-11-24T13:20:01.123Z", "end", "2026-11-24T13:20:02.456Z", "members", "w1",
        "w2", "w3", "alive_members", "w1", "w2", "subject", "w1", "epoch", 3,
        "cut_offset", 1999, "previous_cut_offset", -1, "log_first_offset", 0, "app",
        "infodid", "state_digest",
        "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa",
        "record_digest",
        "bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb", "state_data",
        sealed_obj("state", sha1, "infodid-snapshot", "w1", pub), "snapshot",
        sealed_obj("store", sha2, "br2k-store-snapshot", "br2k-backupd", pub), "storage",
        "url", "file:///var/lib/br2k/backups", "kind", "file", "auth", "none", "form",
        "immutable objects, sealed (zlib + AES-256-GCM), named "
        "v<version>-<kind>-<sha256>");
}

static const char *const required_external[] = {
    "external_state.object",         "external_state.sha256",
    "external_state.size",           "external_state.plain_size",
    "external_state.type",           "external_state.owner",
    "external_state.created",        "external_state.form",
    "external_state.data_key",       "external_state.cut_offset",
    "external_state.applied_offset", "external_state.key_count",
};

/* The sample log with an external_state (what backupd writes now). */
static json_t *sample_log_external(const json_t *good, const uint8_t pub[65]) {
    const char *sha3 = "3333333333333333333333333333333333333333333333333333333333333333";
    json_t *log = json_deep_copy(good);
    json_t *x = sealed_obj("external", sha3, "br2k-external-state", "br2k-backupd", pub);
    json_object_set_new(x, "cut_offset", json_integer(1999));
    json_object_set_new(x, "applied_offset", json_integer(1990));
    json_object_set_new(x, "key_count", json_integer(3));
    json_object_set_new(log, "external_state", x);
    return log;
}

/* Remove the field at "a" or "a.b" from log. */
static void del(json_t *log, const char *p) {
    char buf[64];
    snprintf(buf, sizeof(buf), "%s", p);
    char *dot = strchr(buf, '.');
    if (dot == NULL) {
        json_object_del(log, buf);
        return;
    }
    *dot = '\0';
    json_object_del(json_object_get(log, buf), dot + 1);
}

/* Set the field at "a" or "a.b" to v (stolen). */
static void set(json_t *log, const char *p, json_t *v) {
    char buf[64];
    snprintf(buf, sizeof(buf), "%s", p);
    char *dot = strchr(buf, '.');
    if (dot == NULL) {
        json_object_set_new(log, buf, v);
        return;
    }
    *dot = '\0';
    json_object_set_new(json_object_get(log, buf), dot + 1, v);
}

/* A copy of good with field p set to v: the check fails with want. */
static void expect_bad(const json_t *good, const char *p, json_t *v, const char *want) {
    json_t *log = json_deep_copy(good);
    bk_err e;
    bk_err_clear(&e);
    set(log, p, v);
    CHECK(bk_blog_check(log, &e) == BK_ERR, "%s accepted", p);
    CHECK_STR(e.msg, want);
    CHECK_INT(e.code, BK_E_INVAL);
    json_decref(log);
}

static void test_time(void) {
    char t[32];
    int64_t ms = -1;
    bk_err e;
    bk_blog_time(0, t);
    CHECK_STR(t, "1970-01-01T00:00:00.000Z");
    bk_blog_time(1795526401123, t);
    CHECK_STR(t, "2026-11-24T13:20:01.123Z");
    bk_blog_time(-5, t);
    CHECK_STR(t, "1970-01-01T00:00:00.000Z");
    CHECK(bk_blog_time_parse("2026-11-24T13:20:01.123Z", &ms, &e) == BK_OK, "%s", e.msg);
    CHECK_INT(ms, 1795526401123);
    CHECK(bk_blog_time_parse("2028-02-29T23:59:59.999Z", &ms, &e) == BK_OK, "%s", e.msg);
    static const char *const bad[] = {
        "2026-02-30T00:00:00.000Z",      "2026-11-24T13:20:01Z",
        "2026-11-24 13:20:01.123Z",      "2026-11-24T13:20:01.123",
        "2026-11-24T24:00:00.000Z",      "1969-12-31T23:59:59.999Z",
        "2026-11-24T13:20:01.123+01:00", ""};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        CHECK(bk_blog_time_parse(bad[i], &ms, &e) == BK_ERR, "'%s' accepted", bad[i]);
        CHECK(strstr(e.msg, "is not an ISO-8601 UTC time") != NULL, "%s", e.msg);
    }
}

static void test_check(const json_t *good) {
    bk_err e;
    bk_err_clear(&e);
    CHECK(bk_blog_check(good, &e) == BK_OK, "sample log: %s", e.msg);
    /* every required field, missing, is named */
    for (size_t i = 0; i < sizeof(required) / sizeof(required[0]); i++) {
        json_t *log = json_deep_copy(good);
        char want[128];
        del(log, required[i]);
        bk_err_clear(&e);
        CHECK(bk_blog_check(log, &e) == BK_ERR, "without '%s': accepted", required[i]);
        snprintf(want, sizeof(want), "backup log: '%s' is missing", required[i]);
        CHECK_STR(e.msg, want);
        json_decref(log);
    }
    /* an unknown field is allowed */
    json_t *more = json_deep_copy(good);
    json_object_set_new(more, "note", json_string("later addition"));
    CHECK(bk_blog_check(more, &e) == BK_OK, "unknown field: %s", e.msg);
    json_decref(more);
    CHECK(bk_blog_check(NULL, &e) == BK_ERR, "NULL accepted");
    CHECK_STR(e.msg, "backup log: not a JSON object");

    /* types and values */
    expect_bad(good, "format", json_string("br2k.state-backup-log.v2"),
               "backup log: 'format' is 'br2k.state-backup-log.v2', expected "
               "'br2k.state-backup-log.v1'");
    expect_bad(good, "service", json_integer(1), "backup log: 'service' is not a string");
    expect_bad(good, "service", json_string(""), "backup log: 'service' is empty");
    expect_bad(good, "version", json_string("2"),
               "backup log: 'version' is not an integer");
    expect_bad(good, "version", json_integer(1),
               "backup log: 'version' must be at least 2");
    expect_bad(good, "start", json_string("yesterday"),
               "backup log: 'start' is not an ISO-8601 UTC time like "
               "2026-11-24T13:20:01.123Z");
    expect_bad(good, "end", json_string("2026-11-24T13:20:01.122Z"),
               "backup log: 'end' is before 'start'");
    expect_bad(good, "members", json_string("w1"),
               "backup log: 'members' is not an array");
    expect_bad(good, "members", json_array(), "backup log: 'members' is empty");
    expect_bad(good, "members", json_pack("[si]", "w1", 2),
               "backup log: 'members' holds an item that is not a non-empty string");
    expect_bad(good, "members", json_pack("[ss]", "w1", "w1"),
               "backup log: 'members' holds an id twice");
    expect_bad(good, "alive_members", json_pack("[s]", "w9"),
               "backup log: 'alive_members' holds 'w9', which is not in 'members'");
    expect_bad(good, "epoch", json_integer(-1), "backup log: 'epoch' must be at least 0");
    expect_bad(good, "cut_offset", json_integer(-2),
               "backup log: 'cut_offset' must be at least -1");
    expect_bad(good, "previous_cut_offset", json_integer(2000),
               "backup log: 'previous_cut_offset' is after 'cut_offset'");
    expect_bad(good, "log_first_offset", json_real(0.5),
               "backup log: 'log_first_offset' is not an integer");
    expect_bad(good, "state_digest",
               json_string("AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"
                           "AAAAAAAAAAAAAAAAAAAA"),
               "backup log: 'state_digest' is not 64 lowercase hex digits");
    expect_bad(good, "record_digest", json_string(""),
               "backup log: 'record_digest' is not 64 lowercase hex digits");
    expect_bad(good, "state_data", json_array(),
               "backup log: 'state_data' is not an object");
    expect_bad(good, "state_data.sha256", json_string("xyz"),
               "backup log: 'state_data.sha256' is not 64 lowercase hex digits");
    expect_bad(
        good, "state_data.object", json_string("../etc/passwd"),
        "backup log: 'state_data.object' is not an object name (no '/', no leading "
        "'.')");
    expect_bad(good, "state_data.object", json_string("v00000002-state-other"),
               "backup log: 'state_data.object' does not end with its sha256");
    expect_bad(good, "snapshot.size", json_integer(0),
               "backup log: 'snapshot.size' must be at least 1");
    expect_bad(good, "snapshot.created", json_string("now"),
               "backup log: 'snapshot.created' is not an ISO-8601 UTC time like "
               "2026-11-24T13:20:01.123Z");
    expect_bad(good, "snapshot.data_key", json_string("00"),
               "backup log: 'snapshot.data_key' is not 322 lowercase hex digits");
    expect_bad(good, "storage.kind", json_string("ftp"),
               "backup log: 'storage.kind' is neither \"file\" nor \"s3\"");
    expect_bad(
        good, "storage.url", json_string("s3://bucket/prefix"),
        "backup log: 'storage.url' does not start with its kind's scheme (file://, "
        "s3://)");
    /* no credential in the storage URL */
    static const char *const creds[][2] = {
        {"s3://b/p?endpoint=http://k:s@minio:9000", "@"},
        {"s3://b/p?X-Amz-Credential=AKIA/x", "x-amz-credential"},
        {"s3://b/p?secret_key=abc", "secret"},
        {"s3://b/p?aws_AccessKeyId=AKIA", "accesskey"},
        {"s3://b/p?SECRET=1", "secret"},
    };
    for (size_t i = 0; i < sizeof(creds) / sizeof(creds[0]); i++) {
        json_t *log = json_deep_copy(good);
        set(log, "storage.kind", json_string("s3"));
        set(log, "storage.url", json_string(creds[i][0]));
        char want[200];
        snprintf(want, sizeof(want),
                 "backup log: 'storage.url' looks like it holds a credential ('%s'): "
                 "credentials must never be in the log",
                 creds[i][1]);
        CHECK(bk_blog_check(log, &e) == BK_ERR, "credential accepted: %s", creds[i][0]);
        CHECK_STR(e.msg, want);
        json_decref(log);
    }
    /* s3 without a credential, and a first backup's empty record digest */
    json_t *s3 = json_deep_copy(good);
    set(s3, "storage.kind", json_string("s3"));
    set(s3, "storage.url",
        json_string("s3://br2k/backups?endpoint=http://127.0.0.1:9000&region=us-east-1"));
    CHECK(bk_blog_check(s3, &e) == BK_OK, "s3 url: %s", e.msg);
    set(s3, "cut_offset", json_integer(-1));
    set(s3, "record_digest", json_string(""));
    CHECK(bk_blog_check(s3, &e) == BK_OK, "empty log: %s", e.msg);
    json_decref(s3);
}

/* external_state: optional; when present, every field checked. */
static void test_external(const json_t *good, const uint8_t pub1[65],
                          const bk_eth_key *k1) {
    bk_err e;
    bk_err_clear(&e);
    CHECK(json_object_get(good, "external_state") == NULL, "the sample has one");
    CHECK(bk_blog_check(good, &e) == BK_OK, "a log without external_state: %s", e.msg);
    json_t *x = sample_log_external(good, pub1);
    CHECK(bk_blog_check(x, &e) == BK_OK, "a log with external_state: %s", e.msg);
    for (size_t i = 0; i < sizeof(required_external) / sizeof(required_external[0]);
         i++) {
        json_t *log = json_deep_copy(x);
        char want[128];
        del(log, required_external[i]);
        CHECK(bk_blog_check(log, &e) == BK_ERR, "without '%s': accepted",
              required_external[i]);
        snprintf(want, sizeof(want), "backup log: '%s' is missing", required_external[i]);
        CHECK_STR(e.msg, want);
        json_decref(log);
    }
    expect_bad(x, "external_state", json_string("v00000002-external-33"),
               "backup log: 'external_state' is not an object");
    expect_bad(x, "external_state.cut_offset", json_integer(1998),
               "backup log: 'external_state.cut_offset' is not the log's 'cut_offset'");
    expect_bad(x, "external_state.applied_offset", json_integer(-2),
               "backup log: 'external_state.applied_offset' must be at least -1");
    expect_bad(x, "external_state.key_count", json_integer(-1),
               "backup log: 'external_state.key_count' must be at least 0");
    expect_bad(x, "external_state.key_count", json_string("3"),
               "backup log: 'external_state.key_count' is not an integer");
    expect_bad(x, "external_state.object", json_string("v00000002-external-other"),
               "backup log: 'external_state.object' does not end with its sha256");
    expect_bad(x, "external_state.data_key", json_string("00"),
               "backup log: 'external_state.data_key' is not 322 lowercase hex digits");
    /* no keys, nothing applied yet: fine */
    json_t *empty = json_deep_copy(x);
    set(empty, "external_state.key_count", json_integer(0));
    set(empty, "external_state.applied_offset", json_integer(-1));
    CHECK(bk_blog_check(empty, &e) == BK_OK, "empty external state: %s", e.msg);
    json_decref(empty);
    /* through encryption and back, unchanged */
    char *hex = NULL;
    json_t *back = NULL;
    CHECK(bk_blog_encrypt(x, pub1, &hex, &e) == BK_OK, "encrypt: %s", e.msg);
    CHECK(hex != NULL && bk_blog_decrypt(hex, k1, &back, &e) == BK_OK, "decrypt: %s",
          e.msg);
    CHECK(back != NULL && json_equal(back, x), "round trip differs");
    json_decref(back);
    free(hex);
    json_decref(x);
}

/* bk_blog_put_sealed, then bk_blog_get_sealed from the log's part. */
static void test_sealed_object(const uint8_t pub1[65], const bk_eth_key *k1,
                               const bk_eth_key *k0) {
    bk_err e;
    bk_err_clear(&e);
    char dir[] = "/tmp/test_backuplog_st.XXXXXX", url[64], path[300];
    CHECK(mkdtemp(dir) != NULL, "mkdtemp");
    snprintf(url, sizeof(url), "file://%s", dir);
    bk_storage *st = NULL;
    CHECK(bk_storage_open(url, &st, &e) == BK_OK, "open: %s", e.msg);
    if (st == NULL)
        return;
    const char *plain = "{\"format\":\"br2k.external-state.v1\",\"keys\":{}}";
    char name[BK_STORAGE_NAME_MAX + 1], sha[65], *wrapped = NULL;
    size_t size = 0;
    CHECK(bk_blog_put_sealed(st, 2, "external", plain, strlen(plain), pub1, name, sha,
                             &size, &wrapped, &e) == BK_OK,
          "put: %s", e.msg);
    CHECK(strncmp(name, "v00000002-external-", 19) == 0 && strstr(name, sha) != NULL,
          "name %s", name);
    json_t *meta = json_pack("{ss ss sI ss}", "object", name, "sha256", sha, "size",
                             (json_int_t)size, "data_key", wrapped ? wrapped : "");
    void *got = NULL;
    size_t len = 0;
    CHECK(bk_blog_get_sealed(st, meta, k1, &got, &len, &e) == BK_OK, "get: %s", e.msg);
    CHECK(got != NULL && len == strlen(plain) && memcmp(got, plain, len) == 0,
          "read back other bytes");
    free(got);
    /* the wrong service key */
    CHECK(bk_blog_get_sealed(st, meta, k0, &got, &len, &e) == BK_ERR, "wrong key");
    CHECK(got == NULL && strstr(e.msg, "bad mac") != NULL, "%s", e.msg);
    /* one byte changed: the digest no longer matches */
    snprintf(path, sizeof(path), "%s/%s", dir, name);
    FILE *f = fopen(path, "r+b");
    CHECK(f != NULL, "open %s", path);
    if (f != NULL) {
        fseek(f, 70, SEEK_SET);
        int ch = fgetc(f);
        fseek(f, 70, SEEK_SET);
        fputc(ch ^ 1, f);
        fclose(f);
    }
    CHECK(bk_blog_get_sealed(st, meta, k1, &got, &len, &e) == BK_ERR, "tampered");
    CHECK(strstr(e.msg, "seal: digest mismatch") != NULL && strstr(e.msg, name) != NULL,
          "%s", e.msg);
    /* another size in the log, and a missing object */
    json_object_set_new(meta, "size", json_integer((json_int_t)size + 1));
    CHECK(bk_blog_get_sealed(st, meta, k1, &got, &len, &e) == BK_ERR, "wrong size");
    CHECK(strstr(e.msg, "the log says") != NULL, "%s", e.msg);
    unlink(path);
    CHECK(bk_blog_get_sealed(st, meta, k1, &got, &len, &e) == BK_ERR, "missing object");
    CHECK_INT(e.code, BK_E_NOTFOUND);
    json_object_del(meta, "data_key");
    CHECK(bk_blog_get_sealed(st, meta, k1, &got, &len, &e) == BK_ERR, "no data key");
    CHECK_STR(e.msg, "sealed object: the log names no object, sha256 or data key");
    json_decref(meta);
    free(wrapped);
    bk_storage_close(st);
    rmdir(dir);
}

static void test_crypto(const json_t *good, const bk_eth_key *k1, const bk_eth_key *k0,
                        const uint8_t pub1[65]) {
    bk_err e;
    char *hex = NULL;
    json_t *back = NULL;
    bk_err_clear(&e);
    CHECK(bk_blog_encrypt(good, pub1, &hex, &e) == BK_OK, "encrypt: %s", e.msg);
    if (hex == NULL)
        return;
    CHECK(strncmp(hex, "0x", 2) != 0, "a 0x prefix");
    for (const char *p = hex; *p; p++)
        if (!((*p >= '0' && *p <= '9') || (*p >= 'a' && *p <= 'f'))) {
            CHECK(0, "not lowercase hex: '%c'", *p);
            break;
        }
    /* the plaintext length: the sorted compact text, padded */
    char *text = bk_blog_text(good);
    size_t tl = strlen(text);
    CHECK_INT(strlen(hex), 2 * (16 + 33 + 32 + (tl / 16 + 1) * 16));
    CHECK(strncmp(text, "{\"alive_members\":[\"w1\",\"w2\"],\"app\":\"infodid\"", 44) ==
              0,
          "not sorted compact: %.60s", text);
    free(text);

    CHECK(bk_blog_decrypt(hex, k1, &back, &e) == BK_OK, "decrypt: %s", e.msg);
    CHECK(back != NULL && json_equal(back, good), "round trip differs");
    json_decref(back);
    /* with 0x, and from raw bytes */
    char *hx = malloc(strlen(hex) + 3);
    sprintf(hx, "0x%s", hex);
    CHECK(bk_blog_decrypt(hx, k1, &back, &e) == BK_OK, "decrypt 0x: %s", e.msg);
    json_decref(back);
    free(hx);
    uint8_t raw[4096];
    size_t rl = 0;
    CHECK(strlen(hex) / 2 < sizeof(raw) &&
              bk_hex_decode_n(hex, strlen(hex), raw, sizeof(raw), &rl, &e) == BK_OK,
          "hex");
    CHECK(bk_blog_decrypt_raw(raw, rl, k1, &back, &e) == BK_OK, "raw: %s", e.msg);
    CHECK(back != NULL && json_equal(back, good), "raw round trip differs");
    json_decref(back);

    /* the wrapped data key opens with the service key */
    uint8_t key[32], want[32];
    for (int i = 0; i < 32; i++)
        want[i] = (uint8_t)(i * 7 + 's');
    const char *wrapped = json_string_value(
        json_object_get(json_object_get(good, "state_data"), "data_key"));
    CHECK(bk_blog_unwrap_key(wrapped, k1, key, &e) == BK_OK, "unwrap: %s", e.msg);
    CHECK(memcmp(key, want, 32) == 0, "unwrapped another key");

    /* the wrong key */
    back = (json_t *)1;
    CHECK(bk_blog_decrypt(hex, k0, &back, &e) == BK_ERR, "wrong key accepted");
    CHECK(back == NULL, "log not reset");
    CHECK_STR(e.msg,
              "backup log: cannot decrypt: bad mac (wrong service key or tampered log)");
    CHECK_INT(e.code, BK_E_INVAL);
    CHECK(bk_blog_unwrap_key(wrapped, k0, key, &e) == BK_ERR, "wrong key unwrapped");
    CHECK_STR(e.msg,
              "data key: cannot decrypt: bad mac (wrong service key or tampered log)");
    static const uint8_t zero[32];
    CHECK(memcmp(key, zero, 32) == 0, "key not zeroed");

    /* tampered: one digit changed in the iv, the mac, the ciphertext */
    size_t n = strlen(hex);
    size_t where[] = {3, 2 * (16 + 33) + 5, n / 2, n - 1};
    for (size_t i = 0; i < sizeof(where) / sizeof(where[0]); i++) {
        char *t = strdup(hex);
        t[where[i]] = t[where[i]] == '0' ? '1' : '0';
        CHECK(bk_blog_decrypt(t, k1, &back, &e) == BK_ERR, "tampered at %zu accepted",
              where[i]);
        CHECK_STR(
            e.msg,
            "backup log: cannot decrypt: bad mac (wrong service key or tampered log)");
        free(t);
    }
    /* cut short, and not hex */
    hex[n - 32] = '\0';
    CHECK(bk_blog_decrypt(hex, k1, &back, &e) == BK_ERR, "truncated accepted");
    CHECK(strncmp(e.msg, "backup log: cannot decrypt: ", 28) == 0, "%s", e.msg);
    CHECK(bk_blog_decrypt("zz", k1, &back, &e) == BK_ERR, "zz accepted");
    CHECK(strncmp(e.msg, "backup log: cannot decrypt: ", 28) == 0, "%s", e.msg);
    free(hex);

    /* decrypts but is not JSON, or not a valid log */
    CHECK(bk_ecies_encrypt(pub1, "not json", 8, &hex, &e) == BK_OK, "%s", e.msg);
    CHECK(bk_blog_decrypt(hex, k1, &back, &e) == BK_ERR, "not json accepted");
    CHECK(strncmp(e.msg, "backup log: not JSON: ", 22) == 0, "%s", e.msg);
    free(hex);
    const char *partial = "{\"format\":\"br2k.state-backup-log.v1\",\"service\":\"x\"}";
    CHECK(bk_ecies_encrypt(pub1, partial, strlen(partial), &hex, &e) == BK_OK, "%s",
          e.msg);
    CHECK(bk_blog_decrypt(hex, k1, &back, &e) == BK_ERR, "partial accepted");
    CHECK_STR(e.msg, "backup log: 'version' is missing");
    free(hex);
    /* an invalid log is not encrypted */
    json_t *bad = json_deep_copy(good);
    json_object_del(bad, "subject");
    hex = (char *)1;
    CHECK(bk_blog_encrypt(bad, pub1, &hex, &e) == BK_ERR, "invalid log encrypted");
    CHECK(hex == NULL, "hex not reset");
    CHECK_STR(e.msg, "backup log: 'subject' is missing");
    json_decref(bad);

    /* wrap: a fresh ciphertext each time, of the documented length */
    uint8_t dk[32];
    for (int i = 0; i < 32; i++)
        dk[i] = (uint8_t)(255 - i);
    char *w1 = NULL, *w2 = NULL;
    CHECK(bk_blog_wrap_key(dk, pub1, &w1, &e) == BK_OK, "%s", e.msg);
    CHECK(bk_blog_wrap_key(dk, pub1, &w2, &e) == BK_OK, "%s", e.msg);
    CHECK(w1 && w2 && strcmp(w1, w2) != 0, "same ciphertext twice");
    CHECK_INT(w1 ? strlen(w1) : 0, BK_BLOG_WRAPPED_KEY_HEX);
    CHECK(bk_blog_unwrap_key(w2, k1, key, &e) == BK_OK, "%s", e.msg);
    CHECK(memcmp(key, dk, 32) == 0, "unwrapped another key");
    /* the plaintext is the 64 lowercase hex digits */
    void *msg = NULL;
    size_t ml = 0;
    CHECK(bk_ecies_decrypt(k1, w1, &msg, &ml, &e) == BK_OK, "%s", e.msg);
    CHECK_STR((char *)msg,
              "fffefdfcfbfaf9f8f7f6f5f4f3f2f1f0efeeedecebeae9e8e7e6e5e4e3e2e1e0");
    free(msg);
    free(w1);
    free(w2);
    /* something else wrapped */
    CHECK(bk_ecies_encrypt(pub1, "not a key", 9, &w1, &e) == BK_OK, "%s", e.msg);
    CHECK(bk_blog_unwrap_key(w1, k1, key, &e) == BK_ERR, "not a key unwrapped");
    CHECK_STR(e.msg, "data key: not 64 hex digits");
    free(w1);
}

static void test_keys(const uint8_t pub1[65]) {
    bk_err e;
    bk_eth_key k;
    uint8_t pub[65];
    char dir[] = "/tmp/test_backuplog.XXXXXX", path[128], pubpath[128], bad[128];
    CHECK(mkdtemp(dir) != NULL, "mkdtemp");
    unsetenv(BK_SERVICE_KEY_ENV);
    unsetenv(BK_SERVICE_KEY_FILE_ENV);
    CHECK(bk_service_key_load("", &k, &e) == BK_ERR, "no key: accepted");
    CHECK_STR(e.msg, "no service key: give a key file, or set BR2K_SERVICE_KEY (the key) "
                     "or BR2K_SERVICE_KEY_FILE (br2k keygen makes one)");
    CHECK_INT(e.code, BK_E_NOTFOUND);
    CHECK(bk_service_pub_load("", pub, &e) == BK_ERR, "no key: pub accepted");
    CHECK_INT(e.code, BK_E_NOTFOUND);

    snprintf(path, sizeof(path), "%s/service.key", dir);
    FILE *f = fopen(path, "w");
    fprintf(f, "  %s\n", KEY1);
    fclose(f);
    CHECK(bk_service_key_load(path, &k, &e) == BK_OK, "file: %s", e.msg);
    char addr[43];
    bk_eth_addr_hex(k.addr, addr);
    CHECK_STR(addr, "0x70997970C51812dc3A010C7d01b50e0d17dc79C8");
    CHECK(bk_service_key_load("/nonexistent/key", &k, &e) == BK_ERR, "missing file");
    CHECK(strstr(e.msg, "service key: ") == e.msg && strstr(e.msg, "/nonexistent/key"),
          "%s", e.msg);

    /* BR2K_SERVICE_KEY_FILE, and BR2K_SERVICE_KEY before it */
    setenv(BK_SERVICE_KEY_FILE_ENV, path, 1);
    memset(&k, 0, sizeof(k));
    CHECK(bk_service_key_load(NULL, &k, &e) == BK_OK, "key file env: %s", e.msg);
    bk_eth_addr_hex(k.addr, addr);
    CHECK_STR(addr, "0x70997970C51812dc3A010C7d01b50e0d17dc79C8");
    setenv(BK_SERVICE_KEY_ENV, KEY0, 1);
    CHECK(bk_service_key_load("", &k, &e) == BK_OK, "env first: %s", e.msg);
    bk_eth_addr_hex(k.addr, addr);
    CHECK_STR(addr, "0xf39Fd6e51aad88F6F4ce6aB8827279cffFb92266");
    setenv(BK_SERVICE_KEY_FILE_ENV, "/nonexistent/key", 1);
    setenv(BK_SERVICE_KEY_ENV, KEY1 + 2, 1);
    CHECK(bk_service_key_load("", &k, &e) == BK_OK, "env: %s", e.msg);
    CHECK(bk_service_pub_load(NULL, pub, &e) == BK_OK, "derived: %s", e.msg);
    CHECK(memcmp(pub, pub1, 65) == 0, "derived another public key");
    setenv(BK_SERVICE_KEY_ENV, "0x1234", 1);
    CHECK(bk_service_key_load("", &k, &e) == BK_ERR, "bad env accepted");
    CHECK(strstr(e.msg, "BR2K_SERVICE_KEY") != NULL && strstr(e.msg, "1234") == NULL,
          "%s", e.msg);
    unsetenv(BK_SERVICE_KEY_ENV);
    CHECK(bk_service_key_load("", &k, &e) == BK_ERR, "missing key file: accepted");
    CHECK(strstr(e.msg, "/nonexistent/key") != NULL, "%s", e.msg);
    unsetenv(BK_SERVICE_KEY_FILE_ENV);

    /* public key as hex, with and without 0x, and in a file */
    memset(pub, 0, sizeof(pub));
    CHECK(bk_service_pub_load(PUB1, pub, &e) == BK_OK, "hex: %s", e.msg);
    CHECK(memcmp(pub, pub1, 65) == 0, "hex: another key");
    CHECK(bk_service_pub_load(PUB1 + 2, pub, &e) == BK_OK, "bare hex: %s", e.msg);
    snprintf(pubpath, sizeof(pubpath), "%s/service.pub", dir);
    f = fopen(pubpath, "w");
    fprintf(f, "%s\n", PUB1);
    fclose(f);
    memset(pub, 0, sizeof(pub));
    CHECK(bk_service_pub_load(pubpath, pub, &e) == BK_OK, "file: %s", e.msg);
    CHECK(memcmp(pub, pub1, 65) == 0, "file: another key");
    /* a private key given as the public key: refused, and not echoed */
    CHECK(bk_service_pub_load(KEY1, pub, &e) == BK_ERR, "private key accepted");
    CHECK(strstr(e.msg, "59c6995e") == NULL, "key echoed: %s", e.msg);
    CHECK(strstr(e.msg, "got 66 hex digits") != NULL, "%s", e.msg);
    /* a file holding the private key: refused, not echoed */
    CHECK(bk_service_pub_load(path, pub, &e) == BK_ERR, "private key file accepted");
    CHECK(strstr(e.msg, "59c6995e") == NULL && strstr(e.msg, "does not hold one"), "%s",
          e.msg);
    /* not a point of the curve */
    char offcurve[140] = "04";
    for (int i = 0; i < 128; i++)
        offcurve[2 + i] = i < 64 ? '0' : '1';
    offcurve[130] = '\0';
    CHECK(bk_service_pub_load(offcurve, pub, &e) == BK_ERR, "off-curve point accepted");
    snprintf(bad, sizeof(bad), "%s/none.pub", dir);
    CHECK(bk_service_pub_load(bad, pub, &e) == BK_ERR, "missing file accepted");
    CHECK_INT(e.code, BK_E_IO);
    unlink(path);
    unlink(pubpath);
    rmdir(dir);
}

/* A log that eth-crypto 4.1.0 encrypted (tests/integration/ethcrypto_log.js
 * encrypt), and its plaintext. */
static void test_ethcrypto_fixture(const bk_eth_key *k1) {
    bk_err e;
    json_error_t je;
    json_t *want = json_load_file("fixtures/backuplog/log.json", 0, &je);
    CHECK(want != NULL, "fixture log.json: %s", je.text);
    char *hex = strdup(check_fixture("fixtures/backuplog", "log.ethcrypto.hex"));
    json_t *got = NULL;
    CHECK(bk_blog_decrypt(hex, k1, &got, &e) == BK_OK, "eth-crypto's log: %s", e.msg);
    CHECK(got != NULL && want != NULL && json_equal(got, want),
          "eth-crypto's log decrypts to other JSON");
    /* written before external_state existed: still a valid log */
    CHECK(want != NULL && json_object_get(want, "external_state") == NULL,
          "the fixture has an external_state");
    free(hex);
    /* its state data key, wrapped by eth-crypto too */
    uint8_t key[32];
    const char *wrapped = json_string_value(
        json_object_get(json_object_get(want, "state_data"), "data_key"));
    CHECK(bk_blog_unwrap_key(wrapped, k1, key, &e) == BK_OK, "eth-crypto's key: %s",
          e.msg);
    char kh[65];
    for (int i = 0; i < 32; i++)
        snprintf(kh + 2 * i, 3, "%02x", key[i]);
    CHECK_STR(kh, check_fixture("fixtures/backuplog", "state.key"));
    json_decref(got);
    json_decref(want);
}

int main(void) {
    bk_err e;
    bk_eth_key k0, k1;
    uint8_t pub1[65];
    if (bk_eth_key_from_hex(KEY0, &k0, &e) != BK_OK ||
        bk_eth_key_from_hex(KEY1, &k1, &e) != BK_OK ||
        bk_eth_pubkey(&k1, pub1, &e) != BK_OK) {
        fprintf(stderr, "keys: %s\n", e.msg);
        return 2;
    }
    test_time();
    json_t *good = sample_log(pub1);
    CHECK(good != NULL, "sample log");
    if (good != NULL) {
        test_check(good);
        test_crypto(good, &k1, &k0, pub1);
        test_external(good, pub1, &k1);
    }
    json_decref(good);
    test_keys(pub1);
    test_ethcrypto_fixture(&k1);
    test_sealed_object(pub1, &k1, &k0);
    return check_done();
}
