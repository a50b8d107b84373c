/* backups.c - `br2k keygen`, `br2k backups` and `br2k backup now`; see
 * backups.h.
 *
 * `backups` reads the registry contract only (stateVersion, then each
 * version's record and BackupLogged event) and decrypts each
 * state-backup-log with the service's private key (common/backup/backuplog.h):
 * what an operator, or a new node, can learn from the chain alone. `backup
 * now` writes one Redis key (backup-now, schemas/redis-keys.md) that
 * br2k-backupd takes, then watches SV. */
#include "backups.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <jansson.h>
#include <openssl/crypto.h>
#include <openssl/rand.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "backup/backuplog.h"
#include "base/clock.h"
#include "base/err.h"
#include "chain/ethkey.h"
#include "base/fileio.h"
#include "base/hex.h"
#include "chain/jsonrpc.h"
#include "redis/keys.h"
#include "base/log.h"
#include "redis/redis.h"
#include "chain/registry.h"

#define RPC_TIMEOUT_MS 10000
#define POLL_MS 200
/* where the last column of `backups` starts (the widths of print_table) */
#define STATE_COL (7 + 1 + 24 + 1 + 24 + 1 + 9 + 1 + 8 + 1 + 5 + 1 + 8 + 1 + 7 + 1)

/* ---- keygen ---- */

static bk_cfg_opt keygen_opts[] = {
    {"out", BK_CFG_STR, "", 0, 0, NULL,
     "write the private key (hex) to this new file, mode 0600 (an existing file is "
     "never overwritten); without it the private key is printed",
     NULL, 0, 0},
    {"json", BK_CFG_BOOL, "false", 0, 0, NULL, "print the result as JSON", NULL, 0, 0},
    BK_CFG_COMMON_OPTS};

static bk_cfg keygen_cfg = {
    "br2k keygen",
    "Make a new secp256k1 key pair for the service: backup logs and data keys are\n"
    "encrypted to its public key (br2k-backupd --service-pubkey), and only its\n"
    "private key (BR2K_SERVICE_KEY of workers and `br2k backups`) decrypts them.\n"
    "Prints the public key (0x04 and 128 hex digits) and the address.",
    "[OPTIONS]",
    keygen_opts,
    NULL,
    0,
    0};

/* A fresh valid private key, as 0x + 64 hex digits, into hex[67] and k. */
static int new_key(bk_eth_key *k, char hex[67], bk_err *e) {
    uint8_t raw[32];
    for (int tries = 0; tries < 16; tries++) {
        if (RAND_bytes(raw, sizeof(raw)) != 1)
            return bk_err_set(e, BK_E_IO, "keygen: no randomness (OpenSSL RAND_bytes)");
        bk_hex_encode(raw, sizeof(raw), 1, hex);
        OPENSSL_cleanse(raw, sizeof(raw));
        if (bk_eth_key_from_hex(hex, k, NULL) == BK_OK)
            return BK_OK; /* else zero or not below the order: draw again */
    }
    OPENSSL_cleanse(hex, 67);
    return bk_err_set(e, BK_E_IO, "keygen: no valid key drawn");
}

/* Write text to the new file path, mode 0600, never replacing one. */
static int write_new_file(const char *path, const char *text, bk_err *e) {
    int fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
    if (fd < 0) {
        if (errno == EEXIST)
            return bk_err_set(e, BK_E_STATE, "'%s' exists: refusing to overwrite it",
                              path);
        return bk_err_set(e, BK_E_IO, "cannot create '%s': %s", path, strerror(errno));
    }
    int rc = BK_OK;
    if (fchmod(fd, 0600) != 0 || bk_write_all(fd, text, strlen(text)) != 0 ||
        fsync(fd) != 0)
        rc = bk_err_set(e, BK_E_IO, "cannot write '%s': %s", path, strerror(errno));
    if (close(fd) != 0 && rc == BK_OK)
        rc = bk_err_set(e, BK_E_IO, "cannot write '%s': %s", path, strerror(errno));
    if (rc != BK_OK)
        unlink(path);
    return rc;
}

int cmd_keygen(const cli_globals *g, int argc, char **argv) {
    bk_cfg *c = &keygen_cfg;
    int rc = 2;
    bk_err e;
    bk_eth_key k;
    char hex[67] = "", line[72] = "", addr[43] = "", pubhex[133] = "";
    uint8_t pub[65];
    bk_err_clear(&e);
    memset(&k, 0, sizeof(k));
    if (cli_parse(c, g, argc, argv, &rc))
        goto out_cfg;
    int json = g->json || bk_cfg_bool(c, "json");
    const char *out = bk_cfg_str(c, "out");
    if (new_key(&k, hex, &e) != BK_OK || bk_eth_pubkey(&k, pub, &e) != BK_OK)
        goto fail;
    bk_hex_encode(pub, sizeof(pub), 1, pubhex);
    bk_eth_addr_hex(k.addr, addr);
    if (out[0] != '\0') {
        snprintf(line, sizeof(line), "%s\n", hex);
        int wrc = write_new_file(out, line, &e);
        OPENSSL_cleanse(line, sizeof(line));
        if (wrc != BK_OK)
            goto fail;
    } else {
        fprintf(stderr,
                "br2k keygen: warning: the private key is printed on stdout; keep "
                "it secret, or use --out FILE\n");
    }
    if (json) {
        json_t *j = json_pack("{ss ss}", "public_key", pubhex, "address", addr);
        if (out[0] != '\0')
            json_object_set_new(j, "private_key_file", json_string(out));
        else
            json_object_set_new(j, "private_key", json_string(hex));
        json_dumpf(j, stdout, JSON_COMPACT | JSON_SORT_KEYS);
        putchar('\n');
        json_decref(j);
    } else {
        printf("public-key  %s\naddress     %s\n", pubhex, addr);
        if (out[0] != '\0')
            printf("private-key written to %s (mode 0600)\n", out);
        else
            printf("private-key %s\n", hex);
    }
    fflush(stdout);
    rc = 0;
    goto out;
fail:
    fprintf(stderr, "br2k keygen: %s\n", e.msg);
    rc = e.code == BK_E_STATE ? 1 : 2;
out:
    OPENSSL_cleanse(hex, sizeof(hex));
    bk_eth_key_clear(&k);
out_cfg:
    bk_cfg_release(c);
    return rc;
}

/* ---- backups ---- */

static bk_cfg_opt backups_opts[] = {
    {"eth-rpc", BK_CFG_STR, "", 0, 0, NULL,
     "Ethereum JSON-RPC URLs, comma-separated (default: the global --eth-rpc)", NULL, 0,
     0},
    {"registry", BK_CFG_STR, "", 0, 0, NULL,
     "address of the registry contract (default: the global --registry)", NULL, 0, 0},
    {"service-key", BK_CFG_STR, "", 0, 0, NULL,
     "file holding the service's private key (hex); else env BR2K_SERVICE_KEY holds the "
     "key itself, or BR2K_SERVICE_KEY_FILE names its file",
     NULL, 0, 0},
    {"json", BK_CFG_BOOL, "false", 0, 0, NULL,
     "print a JSON array of {version, block, digest, log} (log: the decrypted "
     "state-backup-log; error instead when it cannot be read)",
     NULL, 0, 0},
    BK_CFG_COMMON_OPTS};

static bk_cfg backups_cfg = {
    "br2k backups",
    "List every backup version recorded in the registry contract, with its\n"
    "state-backup-log decrypted by the service's private key: start, end, duration,\n"
    "subject (the leader) and its epoch, cut offset, alive/members, the state object\n"
    "and its size, the state digest. Exit 1 when a log cannot be read or decrypted.",
    "[OPTIONS]",
    backups_opts,
    NULL,
    0,
    0};

/* One version: its registry record and its log, or the error reading it. */
static json_t *read_version(bk_rpc *rpc, const uint8_t reg[20], uint64_t v,
                            const bk_eth_key *k, int *ok) {
    bk_err e;
    bk_reg_backup b;
    uint8_t *raw = NULL, digest[32];
    size_t rawlen = 0;
    char dg[67];
    json_t *log = NULL;
    json_t *row = json_pack("{sI}", "version", (json_int_t)v);
    bk_err_clear(&e);
    memset(&b, 0, sizeof(b));
    *ok = 0;
    if (bk_reg_get_backup(rpc, reg, v, &b, &e) != BK_OK)
        goto fail;
    json_object_set_new(row, "block", json_integer((json_int_t)b.block));
    bk_hex_encode(b.digest, 32, 1, dg);
    json_object_set_new(row, "digest", json_string(dg));
    if (bk_reg_get_backup_log(rpc, reg, v, &raw, &rawlen, digest, &e) != BK_OK)
        goto fail;
    if (memcmp(digest, b.digest, 32) != 0) {
        bk_err_set(&e, BK_E_PROTO, "the BackupLogged event's digest is not the record's");
        goto fail;
    }
    if (bk_blog_decrypt_raw(raw, rawlen, k, &log, &e) != BK_OK)
        goto fail;
    json_object_set_new(row, "log", log);
    const char *sha =
        json_string_value(json_object_get(json_object_get(log, "state_data"), "sha256"));
    if (json_integer_value(json_object_get(log, "version")) != (json_int_t)v) {
        bk_err_set(&e, BK_E_INVAL, "the log says version %" JSON_INTEGER_FORMAT,
                   json_integer_value(json_object_get(log, "version")));
        goto fail;
    }
    if (sha == NULL || strcmp(sha, dg + 2) != 0) {
        bk_err_set(&e, BK_E_INVAL,
                   "the log's state_data.sha256 is not the digest on chain (%.18s...)",
                   dg);
        goto fail;
    }
    free(raw);
    *ok = 1;
    return row;
fail:
    free(raw);
    /* "backup log: cannot decrypt: ..." -> "backup log of version N: ..." */
    const char *msg = e.msg;
    if (strncmp(msg, "backup log: ", 12) == 0)
        msg += 12;
    char full[sizeof(e.msg) + 64];
    snprintf(full, sizeof(full), "backup log of version %" PRIu64 ": %s", v, msg);
    json_object_set_new(row, "error", json_string(full));
    return row;
}

static void human_size(json_int_t n, char *buf, size_t size) {
    if (n < 1024)
        snprintf(buf, size, "%" JSON_INTEGER_FORMAT " B", n);
    else if (n < 1024 * 1024)
        snprintf(buf, size, "%.1f KiB", (double)n / 1024.0);
    else
        snprintf(buf, size, "%.1f MiB", (double)n / (1024.0 * 1024.0));
}

static const char *str_of(const json_t *o, const char *name) {
    const char *s = json_string_value(json_object_get(o, name));
    return s != NULL ? s : "-";
}

static void print_table(const json_t *rows) {
    printf("%-7s %-24s %-24s %9s %-8s %5s %8s %-7s %-s\n", "VERSION", "START", "END",
           "DURATION", "SUBJECT", "EPOCH", "CUT", "ALIVE",
           "STATE OBJECT (SIZE) / STATE DIGEST");
    size_t i;
    const json_t *row;
    json_array_foreach(rows, i, row) {
        json_int_t v = json_integer_value(json_object_get(row, "version"));
        const json_t *err = json_object_get(row, "error");
        if (err != NULL) {
            printf("%-7" JSON_INTEGER_FORMAT " ERROR: %s\n", v, json_string_value(err));
            continue;
        }
        const json_t *log = json_object_get(row, "log");
        const json_t *sd = json_object_get(log, "state_data");
        int64_t t0 = 0, t1 = 0;
        char dur[32] = "-", alive[32], size[32];
        if (bk_blog_time_parse(str_of(log, "start"), &t0, NULL) == BK_OK &&
            bk_blog_time_parse(str_of(log, "end"), &t1, NULL) == BK_OK)
            snprintf(dur, sizeof(dur), "%.3fs", (double)(t1 - t0) / 1000.0);
        snprintf(alive, sizeof(alive), "%zu/%zu",
                 json_array_size(json_object_get(log, "alive_members")),
                 json_array_size(json_object_get(log, "members")));
        human_size(json_integer_value(json_object_get(sd, "size")), size, sizeof(size));
        printf("%-7" JSON_INTEGER_FORMAT " %-24s %-24s %9s %-8s %5" JSON_INTEGER_FORMAT
               " %8" JSON_INTEGER_FORMAT " %-7s %s (%s)\n%*s%s\n",
               v, str_of(log, "start"), str_of(log, "end"), dur, str_of(log, "subject"),
               json_integer_value(json_object_get(log, "epoch")),
               json_integer_value(json_object_get(log, "cut_offset")), alive,
               str_of(sd, "object"), size, STATE_COL, "", str_of(log, "state_digest"));
    }
}

int cmd_backups(const cli_globals *g, int argc, char **argv) {
    bk_cfg *c = &backups_cfg;
    int rc = 2;
    bk_err e;
    bk_eth_key k;
    bk_rpc *rpc = NULL;
    json_t *rows = NULL;
    uint8_t reg[20];
    uint64_t sv = 0;
    bk_err_clear(&e);
    memset(&k, 0, sizeof(k));
    for (bk_cfg_opt *o = c->opts; o->name != NULL; o++) {
        if (strcmp(o->name, "eth-rpc") == 0)
            o->def = g->eth_rpc;
        if (strcmp(o->name, "registry") == 0)
            o->def = g->registry;
    }
    if (cli_parse(c, g, argc, argv, &rc))
        goto out_cfg;
    int json = g->json || bk_cfg_bool(c, "json");
    /* BR2K_SERVICE_KEY holds the key itself, not a file name: from the
     * environment, the option is left to bk_service_key_load */
    const char *keyfile =
        bk_cfg_source(c, "service-key") == BK_SRC_ENV ? "" : bk_cfg_str(c, "service-key");
    if (bk_cfg_str(c, "eth-rpc")[0] == '\0') {
        bk_err_set(&e, BK_E_INVAL, "no Ethereum RPC URL: give --eth-rpc");
        goto fail;
    }
    if (bk_cfg_str(c, "registry")[0] == '\0' ||
        bk_eth_addr_parse(bk_cfg_str(c, "registry"), reg, NULL) != BK_OK) {
        bk_err_set(&e, BK_E_INVAL, "--registry needs the contract's address, got '%s'",
                   bk_cfg_str(c, "registry"));
        goto fail;
    }
    if (bk_service_key_load(keyfile, &k, &e) != BK_OK)
        goto fail;
    rpc = bk_rpc_new_list(bk_cfg_str(c, "eth-rpc"), RPC_TIMEOUT_MS, &e);
    if (rpc == NULL || bk_reg_get_state_version(rpc, reg, &sv, &e) != BK_OK)
        goto fail;
    rows = json_array();
    int all = 1;
    for (uint64_t v = 2; v <= sv; v++) {
        int ok = 0;
        json_array_append_new(rows, read_version(rpc, reg, v, &k, &ok));
        all = all && ok;
    }
    if (json) {
        json_dumpf(rows, stdout, JSON_COMPACT);
        putchar('\n');
    } else if (sv < 2) {
        printf("no backup yet: state version %" PRIu64 " (the initial, empty state)\n",
               sv);
    } else {
        print_table(rows);
    }
    fflush(stdout);
    rc = all ? 0 : 1;
    goto out;
fail:
    fprintf(stderr, "br2k backups: %s\n", e.msg);
out:
    json_decref(rows);
    bk_rpc_free(rpc);
    bk_eth_key_clear(&k);
out_cfg:
    bk_cfg_release(c);
    return rc;
}

/* ---- backup now ---- */

static bk_cfg_opt now_opts[] = {
    {"wait", BK_CFG_INT, "60", 0, 86400, NULL,
     "seconds to wait for the backup to finish (0: only ask)", NULL, 0, 0},
    {"force", BK_CFG_BOOL, "false", 0, 0, NULL,
     "ask even when no record was processed since the last backup (a new version "
     "with the same cut)",
     NULL, 0, 0},
    BK_CFG_COMMON_OPTS};

static bk_cfg now_cfg = {
    "br2k backup now",
    "Ask br2k-backupd for a state backup now (the paper's state-version-up), then\n"
    "wait until the state version SV is higher than before and print the new\n"
    "version and its cut offset. When no record was processed since the last\n"
    "backup (SSI is at most the cut of backup-last), there is nothing new to back\n"
    "up: it says so and exits 0 without asking, unless --force. Exit 1 when none\n"
    "finished within --wait.",
    "[OPTIONS]",
    now_opts,
    NULL,
    0,
    0};

static int cmd_backup_now(const cli_globals *g, int argc, char **argv) {
    bk_cfg *c = &now_cfg;
    int rc = 2;
    bk_err e;
    bk_redis *r = NULL;
    int64_t sv0 = 0, sv = 0, version = 0, cut = -1;
    bk_err_clear(&e);
    if (cli_parse(c, g, argc, argv, &rc))
        goto out_cfg;
    long long wait_s = bk_cfg_int(c, "wait");
    int force = bk_cfg_bool(c, "force");
    r = bk_redis_new(g->redis, g->timeout_ms, &e);
    if (r == NULL || bk_sv_get(r, g->service, &sv0, &e) != BK_OK)
        goto fail;
    if (!force) {
        int64_t ssi = -1;
        if (bk_ssi_get(r, g->service, &ssi, &e) != BK_OK ||
            bk_backup_last_get(r, g->service, &version, &cut, &e) != BK_OK)
            goto fail;
        /* backup-last absent (version 1): the first backup is always new */
        if (version > 1 && ssi <= cut) {
            printf("nothing new: no record since backup version %" PRId64
                   " (cut offset %" PRId64 ", SSI %" PRId64
                   "); no backup asked (--force asks anyway)\n",
                   version, cut, ssi);
            rc = 0;
            goto out;
        }
    }
    if (bk_backup_now_request(r, g->service, &e) != BK_OK)
        goto fail;
    if (wait_s == 0) {
        printf("backup requested (state version now %" PRId64 ")\n", sv0);
        rc = 0;
        goto out;
    }
    int64_t deadline = bk_mono_ms() + wait_s * 1000;
    char last_phase[64] = "";
    for (;;) {
        if (bk_sv_get(r, g->service, &sv, &e) != BK_OK)
            goto fail;
        if (sv > sv0)
            break;
        bk_backup_phase p;
        char raw[64] = "";
        if (bk_backup_phase_get(r, g->service, &p, raw, sizeof(raw), &e) != BK_OK)
            goto fail;
        if (strcmp(raw, last_phase) != 0) {
            BK_DEBUG("backup phase: %s", raw[0] ? raw : "(none)");
            snprintf(last_phase, sizeof(last_phase), "%s", raw);
        }
        if (bk_mono_ms() >= deadline) {
            fprintf(stderr,
                    "br2k backup now: no backup finished within %lld s (is br2k-backupd "
                    "running? see its log)\n",
                    wait_s);
            rc = 1;
            goto out;
        }
        bk_sleep_ms(POLL_MS);
    }
    if (bk_backup_last_get(r, g->service, &version, &cut, &e) != BK_OK)
        goto fail;
    printf("backup done: version %" PRId64 " (cut offset %" PRId64 ")\n", version, cut);
    rc = 0;
    goto out;
fail:
    fprintf(stderr, "br2k backup now: %s\n", e.msg);
out:
    bk_redis_free(r);
out_cfg:
    bk_cfg_release(c);
    return rc;
}

int cmd_backup(const cli_globals *g, int argc, char **argv) {
    const char *sub = argc > 1 ? argv[1] : "help";
    if (strcmp(sub, "now") == 0)
        return cmd_backup_now(g, argc - 1, argv + 1);
    FILE *out = strcmp(sub, "help") == 0 || strcmp(sub, "--help") == 0 ? stdout : stderr;
    if (out == stderr)
        fprintf(stderr, "br2k backup: unknown command '%s'\n", sub);
    fprintf(out,
            "Usage: br2k [--redis ADDR] [--service NAME] backup now [--wait SECONDS] "
            "[--force]\n"
            "See br2k backup now --help; `br2k backups` lists the backups.\n");
    return out == stdout ? 0 : 2;
}
