/* test_registry.c - the registry contract's codec (common/chain/registry.h):
 * calldata compared with `cast calldata` fixtures, view results and revert
 * data decoded from `cast abi-encode` fixtures, and malformed or truncated
 * results refused with a clear error. Fixtures: fixtures/registry/. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "chain/ethkey.h"
#include "base/hex.h"
#include "chain/registry.h"

#define FIX "fixtures/registry/"

static const char *ADDR = "0x70997970C51812dc3A010C7d01b50e0d17dc79C8";

static const char *fixture(const char *name) {
    return check_fixture("fixtures/registry", name);
}

/* Decode a fixture to bytes (the caller frees). */
static uint8_t *fixture_bytes(const char *name, size_t *len) {
    uint8_t *b = NULL;
    bk_err e;
    if (bk_hex_decode_alloc(fixture(name), &b, len, &e) != BK_OK) {
        CHECK(0, "fixture '%s': %s", name, e.msg);
        *len = 0;
        return NULL;
    }
    return b;
}

/* Compare an encoding (then freed) with a fixture. */
static void same(const char *what, int rc, uint8_t *got, size_t len, const char *name) {
    CHECK(rc == BK_OK, "%s: encoding failed", what);
    if (rc != BK_OK)
        return;
    char *hex = bk_hex_encode_alloc(got, len, 1);
    CHECK(hex != NULL && strcmp(hex, fixture(name)) == 0, "%s: got %s, want %s", what,
          hex ? hex : "(null)", fixture(name));
    free(hex);
    free(got);
}

static void test_calls(void) {
    uint8_t *out = NULL, addr[20], d1[32], log[4] = {0xde, 0xad, 0xbe, 0xef};
    size_t len = 0;
    bk_err e;
    memset(d1, 0x11, sizeof(d1));
    CHECK(bk_eth_addr_parse(ADDR, addr, &e) == BK_OK, "address: %s", e.msg);
    int rc = bk_reg_enc_set_access_info("127.0.0.1:9092,127.0.0.1:9093",
                                        "br2k.infodid.requests", "redis://127.0.0.1:6379",
                                        &out, &len, &e);
    same("setAccessInfo", rc, out, len, "set_access_info.hex");
    rc = bk_reg_enc_set_access_info("k:9092", "t", NULL, &out, &len, &e);
    same("setAccessInfo, empty results", rc, out, len,
         "set_access_info_empty_results.hex");
    rc = bk_reg_enc_set_leader("w1", 7, "10.0.0.1:7001", &out, &len, &e);
    same("setLeader", rc, out, len, "set_leader.hex");
    rc = bk_reg_enc_append_backup_log(2, d1, log, sizeof(log), &out, &len, &e);
    same("appendBackupLog", rc, out, len, "append_backup_log.hex");
    uint8_t d2[32];
    memset(d2, 0x22, sizeof(d2));
    rc =
        bk_reg_enc_append_backup_log_archive(2, d1, d2, log, sizeof(log), &out, &len, &e);
    same("appendBackupLogWithArchive", rc, out, len, "append_backup_log_archive.hex");
    rc = bk_reg_enc_archive_by_version(3, &out, &len, &e);
    same("archiveByVersion", rc, out, len, "archive_by_version.hex");
    rc = bk_reg_enc_prune_archives(4, &out, &len, &e);
    same("pruneArchives", rc, out, len, "prune_archives.hex");
    rc = bk_reg_enc_add_writer(addr, &out, &len, &e);
    same("addWriter", rc, out, len, "add_writer.hex");
    rc = bk_reg_enc_remove_writer(addr, &out, &len, &e);
    same("removeWriter", rc, out, len, "remove_writer.hex");
    rc = bk_reg_enc_is_writer(addr, &out, &len, &e);
    same("isWriter", rc, out, len, "is_writer.hex");
    rc = bk_reg_enc_backup_by_version(3, &out, &len, &e);
    same("backupByVersion", rc, out, len, "backup_by_version.hex");
    rc = bk_reg_enc_noarg("stateVersion()", &out, &len, &e);
    same("stateVersion", rc, out, len, "state_version.hex");
    rc = bk_reg_enc_set_gateways("http://127.0.0.1:8080,https://gw.example.org", &out,
                                 &len, &e);
    same("setGateways", rc, out, len, "set_gateways.hex");
}

static void test_views(void) {
    size_t len;
    bk_err e;
    uint8_t *ar = fixture_bytes("ret_archive.hex", &len), ad[32];
    uint64_t pruned = 0;
    CHECK(bk_reg_dec_archive(ar, len, ad, &pruned, &e) == BK_OK, "archiveByVersion: %s",
          e.msg);
    CHECK(ad[0] == 0x33 && ad[31] == 0x33, "archive digest");
    CHECK_INT(pruned, 2);
    CHECK(bk_reg_dec_archive(ar, len - 1, ad, &pruned, &e) == BK_ERR,
          "a truncated archiveByVersion result was accepted");
    free(ar);
    uint8_t *b = fixture_bytes("ret_latest_backup.hex", &len);
    bk_reg_backup bk;
    CHECK(bk_reg_dec_backup(b, len, &bk, &e) == BK_OK, "latestBackup: %s", e.msg);
    CHECK_INT(bk.version, 3);
    CHECK_INT(bk.block, 42);
    CHECK(bk.digest[0] == 0x22 && bk.digest[31] == 0x22, "digest");
    /* truncated: every shorter prefix is refused */
    int refused = 1;
    for (size_t n = 0; n < len; n++)
        if (bk_reg_dec_backup(b, n, &bk, &e) == BK_OK)
            refused = 0;
    CHECK(refused, "a truncated latestBackup result was accepted");
    CHECK(bk_reg_dec_backup(b, 0, &bk, &e) == BK_ERR && e.code == BK_E_PROTO &&
              strstr(e.msg, "empty result from 'latestBackup'") != NULL,
          "empty result: %s", e.msg);
    CHECK(bk_reg_dec_backup(b, 40, &bk, &e) == BK_ERR &&
              strstr(e.msg, "malformed result from 'latestBackup'") != NULL,
          "truncated result: %s", e.msg);
    /* a version word with high bits set is not a uint64 */
    b[0] = 0x01;
    CHECK(bk_reg_dec_backup(b, len, &bk, &e) == BK_ERR, "stray high bits accepted");
    free(b);

    b = fixture_bytes("ret_leader.hex", &len);
    bk_reg_leader l;
    CHECK(bk_reg_dec_leader(b, len, &l, &e) == BK_OK, "leader: %s", e.msg);
    CHECK_STR(l.worker_id, "w2");
    CHECK_INT(l.epoch, 9);
    CHECK_STR(l.endpoint, "");
    bk_reg_leader_release(&l);
    CHECK(bk_reg_dec_leader(b, len - 32, &l, &e) == BK_ERR, "truncated leader accepted");
    CHECK(l.worker_id == NULL, "a failed decode leaves nothing to free");
    /* an offset pointing outside the data */
    b[31] = 0xff;
    CHECK(bk_reg_dec_leader(b, len, &l, &e) == BK_ERR && e.code == BK_E_PROTO,
          "bad offset accepted");
    bk_reg_leader_release(&l);
    free(b);

    b = fixture_bytes("ret_gateways.hex", &len);
    char *gws = NULL;
    CHECK(bk_reg_dec_gateways(b, len, &gws, &e) == BK_OK, "gateways: %s", e.msg);
    CHECK_STR(gws, "http://a:1,http://b:2");
    free(gws);
    CHECK(bk_reg_dec_gateways(b, len - 32, &gws, &e) == BK_ERR && gws == NULL &&
              strstr(e.msg, "malformed result from 'gateways'") != NULL,
          "truncated gateways: %s", e.msg);
    CHECK(bk_reg_dec_gateways(b, 0, &gws, &e) == BK_ERR && e.code == BK_E_PROTO,
          "empty gateways accepted");
    free(b);

    b = fixture_bytes("ret_access_info.hex", &len);
    bk_reg_access a;
    CHECK(bk_reg_dec_access_info(b, len, &a, &e) == BK_OK, "accessInfo: %s", e.msg);
    CHECK_STR(a.bootstrap, "k:9092");
    CHECK_STR(a.topic, "br2k.x.requests");
    CHECK_STR(a.results, "redis://r:6379");
    bk_reg_access_release(&a);
    bk_reg_access_release(&a); /* twice is fine */
    free(b);

    uint64_t sv = 0;
    b = fixture_bytes("ret_state_version.hex", &len);
    CHECK(bk_reg_dec_state_version(b, len, &sv, &e) == BK_OK && sv == 4,
          "stateVersion: %s", e.msg);
    CHECK(bk_reg_dec_state_version(b, 31, &sv, &e) == BK_ERR, "31 bytes accepted");
    free(b);

    int w = 0;
    b = fixture_bytes("ret_is_writer.hex", &len);
    CHECK(bk_reg_dec_bool(b, len, &w, &e) == BK_OK && w == 1, "isWriter: %s", e.msg);
    b[31] = 2;
    CHECK(bk_reg_dec_bool(b, len, &w, &e) == BK_ERR, "a bool of 2 accepted");
    free(b);

    uint8_t addr[20], want[20];
    b = fixture_bytes("ret_owner.hex", &len);
    CHECK(bk_eth_addr_parse(ADDR, want, &e) == BK_OK, "address");
    CHECK(bk_reg_dec_address(b, len, addr, &e) == BK_OK && memcmp(addr, want, 20) == 0,
          "owner: %s", e.msg);
    b[0] = 1;
    CHECK(bk_reg_dec_address(b, len, addr, &e) == BK_ERR, "dirty address accepted");
    free(b);
}

static void revert_case(const char *fix, const char *want_name, const char *want_line,
                        uint64_t a0, uint64_t a1) {
    size_t len;
    bk_err e;
    char name[64], line[256];
    uint64_t args[2];
    uint8_t *b = fixture_bytes(fix, &len);
    CHECK(bk_reg_revert_describe(b, len, name, sizeof(name), line, sizeof(line), args,
                                 &e) == BK_OK,
          "%s: %s", fix, e.msg);
    CHECK_STR(name, want_name);
    CHECK_STR(line, want_line);
    CHECK_INT(args[0], a0);
    CHECK_INT(args[1], a1);
    free(b);
}

static void test_reverts(void) {
    revert_case("revert_stale_epoch.hex", "StaleEpoch", "StaleEpoch(5, 5)", 5, 5);
    revert_case("revert_bad_version.hex", "BadVersion", "BadVersion(4, 3)", 4, 3);
    revert_case("revert_not_writer.hex", "NotWriter",
                "NotWriter(0x70997970C51812dc3A010C7d01b50e0d17dc79C8)", 0, 0);
    revert_case("revert_empty_log.hex", "EmptyLog", "EmptyLog()", 0, 0);
    revert_case("revert_bad_prune.hex", "BadPrune", "BadPrune(2, 3, 9)", 2, 3);

    char name[64], line[256];
    bk_err e;
    uint8_t unknown[4] = {0x12, 0x34, 0x56, 0x78};
    CHECK(bk_reg_revert_describe(unknown, 4, name, sizeof(name), line, sizeof(line), NULL,
                                 &e) == BK_OK,
          "unknown selector: %s", e.msg);
    CHECK_STR(name, "");
    CHECK_STR(line, "unknown error 0x12345678");
    CHECK(bk_reg_revert_describe(unknown, 0, name, sizeof(name), line, sizeof(line), NULL,
                                 &e) == BK_OK,
          "empty revert");
    CHECK_STR(line, "empty revert");
    /* truncated: a selector alone where arguments are due, or 3 bytes */
    size_t len;
    uint8_t *b = fixture_bytes("revert_stale_epoch.hex", &len);
    CHECK(bk_reg_revert_describe(b, 4 + 32, name, sizeof(name), line, sizeof(line), NULL,
                                 &e) == BK_ERR &&
              e.code == BK_E_PROTO && strstr(e.msg, "malformed revert data") != NULL,
          "truncated StaleEpoch: %s", e.msg);
    CHECK(bk_reg_revert_describe(b, 3, name, sizeof(name), line, sizeof(line), NULL,
                                 &e) == BK_ERR,
          "3 bytes of revert data accepted");
    free(b);
}

static void test_event(void) {
    uint8_t topics[2][32];
    size_t len;
    bk_err e;
    CHECK(bk_hex_decode_exact(BK_REG_TOPIC_BACKUP_LOGGED, topics[0], 32, &e) == BK_OK,
          "topic0");
    uint8_t *t1 = fixture_bytes("event_backup_logged_topic1.hex", &len);
    CHECK(len == 32, "topic1 length");
    if (t1 != NULL && len == 32)
        memcpy(topics[1], t1, 32);
    free(t1);
    uint8_t *data = fixture_bytes("event_backup_logged_data.hex", &len);
    bk_reg_backup_log bl;
    CHECK(bk_reg_dec_backup_logged((const uint8_t(*)[32])topics, 2, data, len, &bl, &e) ==
              BK_OK,
          "BackupLogged: %s", e.msg);
    CHECK_INT(bl.version, 5);
    CHECK(bl.digest[0] == 0x33, "digest");
    CHECK(bl.loglen == 5 && bl.log[0] == 1 && bl.log[4] == 5, "log bytes");
    CHECK(bk_reg_dec_backup_logged((const uint8_t(*)[32])topics, 1, data, len, &bl, &e) ==
              BK_ERR,
          "a missing topic accepted");
    CHECK(bk_reg_dec_backup_logged((const uint8_t(*)[32])topics, 2, data, len - 40, &bl,
                                   &e) == BK_ERR,
          "truncated event data accepted");
    topics[0][0] ^= 1;
    CHECK(bk_reg_dec_backup_logged((const uint8_t(*)[32])topics, 2, data, len, &bl, &e) ==
              BK_ERR,
          "another event accepted");
    free(data);
}

static void test_code(void) {
    uint8_t *code = NULL;
    size_t len = 0;
    bk_err e;
    CHECK(bk_reg_creation_code(&code, &len, &e) == BK_OK && len > 1000,
          "creation code: %s", e.msg);
    free(code);
    CHECK(strncmp(bk_reg_runtime_code_hex(), "0x6080", 6) == 0, "runtime code");
}

int main(void) {
    test_calls();
    test_views();
    test_reverts();
    test_event();
    test_code();
    return check_done();
}
